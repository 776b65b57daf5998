// A headless Debian chromium under playwright-core, driven one JSON command per stdin line,
// one JSON answer per stdout line; tests/e2e/browser.py is the Python side. It keeps every
// console error, page error and CSP violation the page causes, for the tests to check.
//   {"op": "goto", "url": ...}                 {"op": "visible", "testid": ..., "timeout": ms}
//   {"op": "hidden", "testid": ...}
//   {"op": "click", "button": "Allow once", "within": testid? | "within_css": selector?}
//   {"op": "click_testid", "testid": ..., "nth": 0}   {"op": "select", "testid": ..., "value": ...}
//   {"op": "fill", "testid": ..., "value": ...}      {"op": "check", "testid": ...}
//   {"op": "texts", "testid": ...}             {"op": "attr", "testid": ..., "name": ..., "nth": 0}
//   {"op": "wait_count", "testid": ..., "count": n, "timeout": ms}   (visible ones)
//   {"op": "screenshot", "path": ...}          {"op": "errors"}        {"op": "quit"}
//   {"op": "wait_css", "css": selector, "state": "visible"|"hidden"|"attached"|"detached", "timeout": ms}
//   {"op": "attr_css", "css": selector, "name": ..., "nth": 0}   {"op": "texts_css", "css": selector}
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const profile = mkdtempSync(join(tmpdir(), 'cw-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CW_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] || await context.newPage();
const errors = [];
page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
page.on('dialog', (d) => d.accept());  // confirm() of "Delete"

const byId = (id) => page.getByTestId(id);
const ops = {
  async goto(c) { await page.goto(c.url, { waitUntil: 'domcontentloaded' }); },
  async visible(c) { await byId(c.testid).first().waitFor({ state: 'visible', timeout: c.timeout ?? 10000 }); },
  async hidden(c) { await byId(c.testid).first().waitFor({ state: 'hidden', timeout: c.timeout ?? 10000 }); },
  async click(c) {
    const scope = c.within ? byId(c.within) : c.within_css ? page.locator(c.within_css) : page;
    await scope.getByRole('button', { name: c.button, exact: true }).first().click({ timeout: c.timeout ?? 10000 });
  },
  async click_testid(c) { await byId(c.testid).nth(c.nth ?? 0).click({ timeout: c.timeout ?? 10000 }); },
  async select(c) { await byId(c.testid).first().selectOption(c.value, { timeout: 10000 }); },
  async fill(c) { await byId(c.testid).first().fill(c.value, { timeout: 10000 }); },
  async check(c) { await byId(c.testid).first().check({ timeout: 10000 }); },
  async texts(c) { return await byId(c.testid).allInnerTexts(); },
  async attr(c) { return await byId(c.testid).nth(c.nth ?? 0).getAttribute(c.name, { timeout: 10000 }); },
  async wait_count(c) {
    const deadline = Date.now() + (c.timeout ?? 10000);
    let n = 0;
    while (Date.now() < deadline) {
      n = await byId(c.testid).filter({ visible: true }).count();
      if (n === c.count) return n;
      await page.waitForTimeout(50);
    }
    throw new Error(`${c.testid}: ${n} elements, not ${c.count}`);
  },
  async wait_css(c) {
    await page.locator(c.css).first().waitFor({ state: c.state ?? 'visible', timeout: c.timeout ?? 10000 });
  },
  async attr_css(c) { return await page.locator(c.css).nth(c.nth ?? 0).getAttribute(c.name, { timeout: 10000 }); },
  async texts_css(c) { return await page.locator(c.css).allInnerTexts(); },
  async screenshot(c) { await page.screenshot({ path: c.path, fullPage: false }); },
  async errors() { return errors; },
  // For bench/prompt_latency.py: when the page's own script shows the prompt dialog, and a
  // click by the page's clock (epoch ms, performance.timeOrigin + now()).
  async mark_dialog() {
    await page.evaluate(() => {
      const dialog = document.querySelector('[data-testid="prompt-dialog"]');
      window.cwShownAt = dialog.checkVisibility() ? -1 : null;
      if (window.cwObserver) return;
      window.cwObserver = new MutationObserver(() => {
        if (window.cwShownAt === null && dialog.checkVisibility()) window.cwShownAt = performance.timeOrigin + performance.now();
      });
      window.cwObserver.observe(document.body, { attributes: true, childList: true, subtree: true });
    });
  },
  async dialog_shown_at() {
    const h = await page.waitForFunction(() => window.cwShownAt, null, { timeout: 10000 });
    return await h.jsonValue();
  },
  // Round trips of a bare POST /api (status) from the page, ms: chromium's own share of a click.
  async fetch_rtt(c) {
    return await page.evaluate(async ([token, n]) => {
      const out = [];
      for (let i = 0; i < n; ++i) {
        const t = performance.now();
        const r = await fetch('api', { method: 'POST', headers: { Authorization: 'Bearer ' + token,
          'Content-Type': 'application/json' }, body: '{"cmd":"prompt.list"}' });
        await r.json();
        out.push(performance.now() - t);
      }
      return out;
    }, [new URL(page.url()).searchParams.get('token'), c.n ?? 50]);
  },
  async click_now(c) {
    return await page.evaluate((name) => {
      const b = [...document.querySelectorAll('[data-testid="prompt-dialog"] button')]
        .find((x) => x.textContent.trim() === name);
      const t = performance.timeOrigin + performance.now();
      b.click();
      return t;
    }, c.button);
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const c = JSON.parse(line);
  if (c.op === 'quit') break;
  try {
    const f = ops[c.op];
    if (!f) throw new Error('unknown op ' + c.op);
    const value = await f(c);
    process.stdout.write(JSON.stringify({ ok: true, value: value ?? null }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, error: String(e.message || e) }) + '\n');
  }
}
// The readline interface keeps stdin referenced after "quit": close it, bound the browser's
// close (an open event stream can hold it up), and exit explicitly.
lines.close();
process.stdin.destroy();
await Promise.race([context.close(), new Promise((r) => setTimeout(r, 5000))]);
rmSync(profile, { recursive: true, force: true });
process.exit(0);
