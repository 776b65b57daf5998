// cellwall web UI. Plain DOM, no framework, no build step.
//
// Everything shown here comes from apps we do not trust (host names from DNS answers, app names,
// rule text): it is put into the page only as text (textContent, createTextNode, option.text),
// never parsed as HTML. The page runs under a strict CSP (no inline script or style).
'use strict';

(() => {
  const TOKEN = new URLSearchParams(location.search).get('token') || '';

  const MAX_LOG = 1000;          // connection rows kept
  const TRAFFIC_WINDOW_MS = 300 * 1000;
  const ANSWERED_HIDE_MS = 10 * 1000;  // an answered prompt stays hidden this long without confirmation
  const SUM = '*sum';            // traffic selector value: the sum of all apps

  // ---------------------------------------------------------------- helpers

  const q = (id) => document.querySelector(`[data-testid="${id}"]`);

  // el('tag', {class, text, testid, dataset, title, on*: fn, ...attrs}, ...children)
  const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'title', 'type',
    'placeholder', 'rows', 'spellcheck']);
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = String(v);
        else if (k === 'testid') e.dataset.testid = v;
        else if (k === 'dataset') Object.assign(e.dataset, v);
        else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
        else if (PROPS.has(k)) e[k] = v;
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  const arr = (x) => (Array.isArray(x) ? x : []);
  const str = (x) => (x === null || x === undefined ? '' : String(x));
  const num = (x) => (Number.isFinite(Number(x)) ? Number(x) : 0);
  const pad2 = (n) => String(n).padStart(2, '0');

  function splitNames(names) {
    return str(names).split(',').map((s) => s.trim()).filter(Boolean);
  }

  function fmtBytes(n) {
    n = num(n);
    if (n < 1000) return `${Math.round(n)} B`;
    const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
    let v = n;
    let i = -1;
    do { v /= 1000; i++; } while (v >= 999.5 && i < units.length - 1);
    return `${v < 99.95 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
  }
  const fmtRate = (n) => `${fmtBytes(n)}/s`;

  function fmtClock(ms) {
    const d = new Date(num(ms));
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }
  function fmtDate(ms) {
    const d = new Date(num(ms));
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  }
  function fmtDateTime(ms) {
    if (!num(ms)) return '—';
    return `${fmtDate(ms)} ${fmtClock(ms)}`;
  }
  // Today: the time; another day: the date (the title has both).
  function fmtDayOrTime(ms) {
    if (!num(ms)) return '—';
    return fmtDate(ms) === fmtDate(Date.now()) ? fmtClock(ms) : fmtDate(ms);
  }
  // 4m 12s, 1h 5m, 2d 3h, 12s
  function fmtLeft(ms) {
    let s = Math.max(0, Math.ceil(ms / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s}s`;
    return `${s}s`;
  }

  function hostPort(ip, port, proto) {
    ip = str(ip);
    const withBrackets = ip.includes(':') ? `[${ip}]` : ip;
    if (proto === 'icmp' || !num(port)) return ip;
    return `${withBrackets}:${num(port)}`;
  }

  // ---------------------------------------------------------------- processes

  // What a process put in its argv (or its name) is shown, never obeyed: controls, line
  // separators and the bidi marks and overrides (which would reorder what follows them) are
  // written as escapes, as `cellwall log` does.
  const HIDDEN_CHARS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
  function visible(s) {
    return str(s).replace(HIDDEN_CHARS, (c) => {
      const n = c.codePointAt(0);
      return n < 0x80 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16).padStart(4, '0')}}`;
    });
  }
  const attributed = (p) => !!p && num(p.pid) > 0;
  const baseName = (path) => path.slice(path.lastIndexOf('/') + 1);
  const withoutDeleted = (exe) => (exe.endsWith(' (deleted)') ? exe.slice(0, -' (deleted)'.length) : exe);
  // "[curl]": cellwalld's stand-in for the exe of a process gone before it was read.
  const placeholder = (exe) => exe.startsWith('[');

  // The executable's file name ("curl"; "[curl]" when it had exited).
  function procName(p) {
    const exe = str(p.exe);
    if (exe) return visible(placeholder(exe) ? exe : baseName(withoutDeleted(exe)));
    return visible(baseName(str(p.cmdline).split(' ')[0])) || '?';
  }
  function procWho(p) {
    const user = str(p.user) ? `user ${visible(p.user)}` : `uid ${num(p.uid)}`;
    return `pid ${num(p.pid)}, ${user}${p.exited ? ', exited' : ''}`;
  }
  // What it runs: the full path in place of argv[0] when both name the same program, both
  // when they do not (a multi-call binary, a process that renamed itself).
  function procCommand(p) {
    const exe = str(p.exe);
    const cmd = str(p.cmdline);
    if (!exe || placeholder(exe)) return visible(cmd);
    if (!cmd) return visible(exe);
    const space = cmd.indexOf(' ');
    const argv0 = space < 0 ? cmd : cmd.slice(0, space);
    const args = space < 0 ? '' : cmd.slice(space);
    const real = withoutDeleted(exe);
    if (argv0 === real || baseName(argv0) === baseName(real)) return visible(exe + args);
    return visible(`${exe} (argv: ${cmd})`);
  }
  // Why a connection has no process, when cellwalld knows it (its note), and what that means.
  const NOTE_TITLES = new Map([
    ['not visible (VM cell)', "the app runs in a VM cell: the guest's kernel is not the host's, " +
      'so process attribution cannot see into it'],
  ]);
  function procNote(p) {
    if (!p || attributed(p) || !str(p.note)) return null;
    const text = visible(p.note);
    return { text, title: NOTE_TITLES.get(str(p.note)) || `no process: ${text}` };
  }
  function procTitle(p) {
    const lines = [`${procName(p)} (${procWho(p)}${str(p.user) ? `, uid ${num(p.uid)}` : ''})`];
    const exe = str(p.exe);
    if (exe && !placeholder(exe)) lines.push(`executable: ${visible(exe)}`);
    if (str(p.cmdline)) lines.push(`command line: ${visible(p.cmdline)}`);
    return lines.join('\n');
  }

  function sortApps(set) {
    return [...set].filter((a) => a !== '').sort((a, b) => a.localeCompare(b));
  }

  // ---------------------------------------------------------------- errors

  const errorBox = q('error');
  const errorText = errorBox.querySelector('.error-text');
  function showError(msg) {
    errorText.textContent = str(msg);
    errorBox.hidden = false;
  }
  function clearError() {
    errorText.textContent = '';
    errorBox.hidden = true;
  }
  errorBox.querySelector('.error-close').addEventListener('click', clearError);

  // ---------------------------------------------------------------- API

  class ApiError extends Error {}

  async function api(command) {
    let res;
    try {
      res = await fetch('api', {
        method: 'POST',
        cache: 'no-store',
        headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(command),
      });
    } catch (e) {
      throw new ApiError(`${command.cmd}: cannot reach cellwalld (${e && e.message ? e.message : e})`);
    }
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!data || typeof data !== 'object') {
      throw new ApiError(`${command.cmd}: HTTP ${res.status} ${res.statusText}`.trim());
    }
    if (!data.ok) throw new ApiError(str(data.error) || `${command.cmd}: HTTP ${res.status}`);
    return data;
  }

  // A command the user asked for: the previous error goes away, a new one is shown.
  async function userApi(command) {
    clearError();
    try {
      return await api(command);
    } catch (e) {
      showError(e.message);
      return null;
    }
  }
  // A background fetch: errors are shown, never cleared.
  async function bgApi(command) {
    try {
      return await api(command);
    } catch (e) {
      showError(e.message);
      return null;
    }
  }

  // ---------------------------------------------------------------- apps seen

  const apps = new Set();
  let appsTimer = 0;
  function addApp(name) {
    name = str(name);
    if (!name || apps.has(name)) return;
    apps.add(name);
    if (!appsTimer) appsTimer = setTimeout(() => { appsTimer = 0; renderAppSelects(); }, 0);
  }

  // Replaces a select's app options (after `fixed` leading options) only when they changed,
  // keeping the selected value.
  function setAppOptions(select, fixed) {
    const list = sortApps(apps);
    const current = [...select.options].slice(fixed).map((o) => o.value);
    if (current.length === list.length && current.every((v, i) => v === list[i])) return;
    const value = select.value;
    while (select.options.length > fixed) select.remove(fixed);
    for (const a of list) select.add(el('option', { value: a, text: a }));
    if ([...select.options].some((o) => o.value === value)) select.value = value;
  }

  function renderAppSelects() {
    setAppOptions(q('app-filter'), 1);
    setAppOptions(q('traffic-app'), 2);
    const rs = q('rules-app');
    setAppOptions(rs, 0);
    if (!rulesView.app && rs.options.length) {
      rs.value = rs.options[0].value;
      selectRulesApp(rs.value);
    } else if (rulesView.app) {
      rs.value = rulesView.app;
    }
  }

  // ---------------------------------------------------------------- tabs

  let activeView = 'connections';
  function showView(name) {
    activeView = name;
    for (const t of document.querySelectorAll('.tab')) {
      const on = t.dataset.view === name;
      t.classList.toggle('active', on);
      t.setAttribute('aria-pressed', on ? 'true' : 'false');
    }
    for (const v of document.querySelectorAll('.view')) v.hidden = v.dataset.view !== name;
    if (name === 'traffic') drawTrafficNow();
    if (name === 'rules') renderRules();
    if (name === 'connections' && log.dirty) renderLog();
  }
  for (const t of document.querySelectorAll('.tab')) {
    t.addEventListener('click', () => showView(t.dataset.view));
  }

  // ---------------------------------------------------------------- rules cache

  const rulesByApp = new Map();  // app -> [RuleInfo]
  const rulesById = new Map();   // id -> RuleInfo
  const rulesApplied = new Map();  // app -> sequence number of the answer it shows
  let rulesSeq = 0;

  function applyRules(app, list, seq) {
    if ((rulesApplied.get(app) || 0) > seq) return false;
    rulesApplied.set(app, seq);
    for (const r of rulesByApp.get(app) || []) rulesById.delete(r.id);
    list.sort((a, b) => num(a.id) - num(b.id));
    rulesByApp.set(app, list);
    for (const r of list) rulesById.set(r.id, r);
    return true;
  }

  // app '' = every app.
  async function refreshRules(app) {
    const seq = ++rulesSeq;
    const r = await bgApi({ cmd: 'rules.list', app });
    if (!r) return;
    const byApp = new Map();
    for (const rule of arr(r.rules)) {
      const a = str(rule.app) || app;
      if (!byApp.has(a)) byApp.set(a, []);
      byApp.get(a).push(rule);
      addApp(a);
    }
    if (app === '') {
      for (const a of new Set([...rulesByApp.keys(), ...byApp.keys()])) {
        applyRules(a, byApp.get(a) || [], seq);
      }
    } else {
      applyRules(app, byApp.get(app) || [], seq);
    }
    if (app === '' || app === rulesView.app) renderRules();
    updateLogRuleTitles();
  }

  // ---------------------------------------------------------------- prompts

  const promptState = {
    raw: [],                 // the last `prompts` set, each with _deadline (performance.now() ms)
    list: [],                // raw minus those answered here, oldest first
    selected: null,          // id picked by the user; null: the oldest
    formFor: null,           // the prompt id the "More options" form was filled for
    answered: new Map(),     // id -> Date.now() of the answer
  };

  function currentPrompt() {
    const l = promptState.list;
    return l.find((p) => p.id === promptState.selected) || l[0] || null;
  }

  function derivePrompts() {
    const now = Date.now();
    for (const [id, t] of promptState.answered) {
      if (now - t > ANSWERED_HIDE_MS) promptState.answered.delete(id);
    }
    promptState.list = promptState.raw
      .filter((p) => !promptState.answered.has(p.id))
      .sort((a, b) => num(a.asked_ms) - num(b.asked_ms) || num(a.id) - num(b.id));
    if (!promptState.list.some((p) => p.id === promptState.selected)) promptState.selected = null;
    renderPrompts();
  }

  function onPrompts(d) {
    const now = performance.now();
    promptState.raw = arr(d.prompts).map((p) => ({ ...p, _deadline: now + num(p.timeout_in_ms) }));
    for (const p of promptState.raw) addApp(p.app);
    derivePrompts();
  }

  function promptTargetText(p) {
    const names = splitNames(p.names);
    const proto = str(p.proto) || '?';
    const addr = str(p.remote_ip);
    const port = proto === 'icmp' || !num(p.remote_port) ? '' : ` port ${num(p.remote_port)}`;
    if (names.length) return `${proto} ${names.join(', ')} (${addr}${port})`;
    return `${proto} ${addr}${port}`;
  }
  function promptShortText(p) {
    const names = splitNames(p.names);
    const dest = names.length ? names[0] : str(p.remote_ip);
    const port = p.proto === 'icmp' || !num(p.remote_port) ? '' : `:${num(p.remote_port)}`;
    return `${str(p.proto)} ${dest}${port}`;
  }
  function secondsLeft(p) {
    return Math.max(0, Math.ceil((p._deadline - performance.now()) / 1000));
  }
  function countdownText(p) {
    return `${str(p.timeout_action) || 'deny'} in ${secondsLeft(p)} s`;
  }

  const dlg = q('prompt-dialog');
  const promptItemEls = new Map();  // id -> {item, countdown}

  function renderPrompts() {
    const list = promptState.list;
    const n = list.length;
    const count = q('prompt-count');
    count.textContent = `${n} pending`;
    count.classList.toggle('has-pending', n > 0);
    count.title = n ? `${n} connection request${n === 1 ? '' : 's'} waiting for an answer` : 'no connection requests';
    document.title = n ? `(${n}) cellwall` : 'cellwall';
    dlg.hidden = n === 0;
    if (!n) {
      promptItemEls.clear();
      q('prompt-list').replaceChildren();
      return;
    }

    const p = currentPrompt();
    q('prompt-dialog-count').textContent = n > 1 ? `${list.indexOf(p) + 1} of ${n} pending` : '1 pending';
    q('prompt-app').textContent = str(p.app);
    q('prompt-cell').textContent = num(p.cell) ? `(cell ${num(p.cell)})` : '';
    q('prompt-target').textContent = promptTargetText(p);
    showPromptProcess(p.process);
    const c = Math.max(1, num(p.connections));
    q('prompt-connections').textContent = `${c} connection${c === 1 ? '' : 's'} waiting`;
    q('prompt-countdown').textContent = countdownText(p);
    q('prompt-countdown').dataset.action = str(p.timeout_action);
    const qs = quickScope(p);
    q('prompt-quick-scope').textContent =
      `Quick answers apply to ${qs.scope === 'host' ? qs.host : `address ${str(p.remote_ip)}`}` +
      (p.proto === 'icmp' || !num(p.remote_port) ? '' : `, port ${num(p.remote_port)}`) + '.';

    if (promptState.formFor !== p.id) fillAnswerForm(p);

    // The list of every pending prompt (one item when only one is pending: the count of
    // items is always the count of open questions).
    const items = [];
    promptItemEls.clear();
    for (const x of list) {
      const cd = el('span', { class: 'item-countdown', text: `${secondsLeft(x)} s` });
      const note = procNote(x.process);
      const conns = Math.max(1, num(x.connections));
      const item = el('button', {
        type: 'button',
        class: `prompt-item${x.id === p.id ? ' selected' : ''}`,
        testid: 'prompt-item',
        dataset: { promptId: String(x.id) },
        'aria-pressed': x.id === p.id ? 'true' : 'false',
        title: `${str(x.app)}: ${promptTargetText(x)}` +
          (attributed(x.process) ? `\nasked by ${procName(x.process)} (${procWho(x.process)})` : '') +
          (note ? `\nprocess: ${note.text}` : ''),
        onclick: () => { promptState.selected = x.id; renderPrompts(); },
      },
      el('span', { class: 'item-app', text: str(x.app) }),
      el('span', { class: 'item-dest', text: promptShortText(x) }),
      conns > 1 ? el('span', { class: 'item-conns', text: `×${conns}` }) : null,
      cd);
      promptItemEls.set(x.id, { item, cd });
      items.push(item);
    }
    const box = q('prompt-list');
    box.replaceChildren(...items);
  }

  function showPromptProcess(proc) {
    const box = q('prompt-process');
    const has = attributed(proc);
    const note = procNote(proc);
    box.hidden = !has && !note;
    box.title = has ? procTitle(proc) : note ? note.title : '';
    q('prompt-process-label').textContent = has ? 'asked by' : 'process:';
    const name = q('prompt-process-name');
    name.textContent = has ? procName(proc) : note ? note.text : '';
    name.classList.toggle('muted', !has);
    q('prompt-process-who').textContent = has ? `(${procWho(proc)})` : '';
    q('prompt-process-cmd').textContent = has ? procCommand(proc) : '';
  }

  function tickPrompts() {
    const p = currentPrompt();
    if (!p) return;
    const t = countdownText(p);
    const cd = q('prompt-countdown');
    if (cd.textContent !== t) cd.textContent = t;
    cd.classList.toggle('urgent', secondsLeft(p) <= 10);
    for (const x of promptState.list) {
      const e = promptItemEls.get(x.id);
      if (!e) continue;
      const s = `${secondsLeft(x)} s`;
      if (e.cd.textContent !== s) e.cd.textContent = s;
    }
  }

  function quickScope(p) {
    const names = splitNames(p.names);
    return names.length ? { scope: 'host', host: names[0] } : { scope: 'ip', host: '' };
  }

  // scope select value -> {scope, host}
  let scopeChoices = new Map();

  function parentDomain(name) {
    const labels = name.split('.').filter(Boolean);
    // A 2-label name's parent is a top-level domain: "*.org" is never offered.
    if (labels.length < 3) return null;
    return labels.slice(1).join('.');
  }

  function fillAnswerForm(p) {
    promptState.formFor = p.id;
    const names = splitNames(p.names);
    const sel = q('ans-scope');
    scopeChoices = new Map();
    const opts = [];
    const addChoice = (value, label, scope, host, title) => {
      if (scopeChoices.has(value)) return;
      scopeChoices.set(value, { scope, host });
      opts.push(el('option', { value, text: label, title }));
    };
    addChoice(str(p.remote_ip), `this IP (${str(p.remote_ip)})`, 'ip', '', 'only this address');
    for (const n of names) addChoice(n, n, 'host', n, 'this host name, whatever address it resolves to');
    for (const n of names) {
      const parent = parentDomain(n);
      if (parent) addChoice(`*.${parent}`, `*.${parent}`, 'domain', n, `${parent} and every name below it`);
    }
    sel.replaceChildren(...opts);
    sel.value = names.length ? names[0] : str(p.remote_ip);
    q('ans-action').value = 'allow';
    q('ans-anyport').checked = false;
    q('ans-anyport').disabled = p.proto === 'icmp';
    q('ans-lifetime').value = 'once';
    q('ans-connections').value = '1';
    q('ans-custom').value = '';
    syncLifetimeFields();
  }

  function syncLifetimeFields() {
    const v = q('ans-lifetime').value;
    document.querySelector('[data-field="connections"]').hidden = v !== 'connections';
    document.querySelector('[data-field="custom"]').hidden = v !== 'custom';
  }
  q('ans-lifetime').addEventListener('change', syncLifetimeFields);
  q('ans-lifetime').addEventListener('input', syncLifetimeFields);

  q('more-options').addEventListener('click', () => {
    const panel = q('more-panel');
    panel.hidden = !panel.hidden;
    q('more-options').setAttribute('aria-expanded', panel.hidden ? 'false' : 'true');
    q('more-options').classList.toggle('open', !panel.hidden);
  });

  async function sendAnswer(p, fields) {
    const cmd = {
      cmd: 'prompt.answer',
      id: p.id,
      action: fields.action,
      scope: fields.scope,
      host: fields.host || '',
      any_port: !!fields.any_port,
      lifetime: fields.lifetime,
    };
    // A count only when one was chosen: the daemon refuses 0 (as a policy file does) rather than
    // reading it as "no limit".
    if (fields.connections) cmd.connections = fields.connections;
    // Sent before anything is redrawn: a connection is held until it arrives.
    const sent = userApi(cmd);
    // Gone from the dialog at once; back if the daemon refuses the answer.
    promptState.answered.set(p.id, Date.now());
    if (promptState.selected === p.id) promptState.selected = null;
    derivePrompts();
    const r = await sent;
    if (!r) {
      promptState.answered.delete(p.id);
      derivePrompts();
      return;
    }
    // Confirmed: the question is closed.
    promptState.raw = promptState.raw.filter((x) => x.id !== p.id);
    if (cmd.lifetime !== 'once' || arr(r.rules).length) refreshRules(str(p.app));
  }

  for (const b of document.querySelectorAll('[data-quick]')) {
    b.addEventListener('click', () => {
      const p = currentPrompt();
      if (!p) return;
      const [action, lifetime] = b.dataset.quick.split(':');
      sendAnswer(p, { action, lifetime, ...quickScope(p), any_port: false });
    });
  }

  q('ans-submit').addEventListener('click', () => {
    const p = currentPrompt();
    if (!p) return;
    const choice = scopeChoices.get(q('ans-scope').value) || { scope: 'ip', host: '' };
    let lifetime = q('ans-lifetime').value;
    let connections = null;
    if (lifetime === 'connections') {
      const n = Number(q('ans-connections').value);
      if (!Number.isInteger(n) || n < 1 || n > 1000000) {
        showError('Connections: a whole number from 1 to 1000000');
        return;
      }
      lifetime = 'forever';
      connections = n;
    } else if (lifetime === 'custom') {
      lifetime = q('ans-custom').value.trim();
      if (!lifetime) {
        showError('Custom lifetime: a duration such as 30s, 15m, 2h or 1d');
        return;
      }
    }
    sendAnswer(p, {
      action: q('ans-action').value,
      scope: choice.scope,
      host: choice.host,
      any_port: q('ans-anyport').checked && p.proto !== 'icmp',
      lifetime,
      connections,
    });
  });

  // ---------------------------------------------------------------- connection log

  const log = {
    entries: [],          // oldest first
    byId: new Map(),
    renderQueued: false,
    dirty: false,         // entries came while the view was hidden
    shown: null,          // {app, newest, count}: what the table holds, for adding to it
  };

  function onLog(d) {
    let unordered = false;
    const last = () => (log.entries.length ? log.entries[log.entries.length - 1].id : -Infinity);
    for (const raw of arr(d.log)) {
      const id = num(raw.id);
      const old = log.byId.get(id);
      if (old) {  // already shown: take the newer counters
        old.packets = num(raw.packets);
        old.bytes = num(raw.bytes);
        updateLogCounters(old);
        continue;
      }
      const e = { ...raw, id, packets: num(raw.packets), bytes: num(raw.bytes), open: undefined, el: null };
      if (id < last()) unordered = true;
      log.entries.push(e);
      log.byId.set(id, e);
      addApp(e.app);
    }
    if (unordered) {
      log.entries.sort((a, b) => a.id - b.id);
      log.shown = null;  // not only newer rows: draw the table again
    }
    while (log.entries.length > MAX_LOG) log.byId.delete(log.entries.shift().id);
    queueLogRender();
  }

  function onCounters(d) {
    for (const c of arr(d.conns)) {
      const e = log.byId.get(num(c.id));
      if (!e) continue;
      if (c.packets !== undefined) e.packets = num(c.packets);
      if (c.bytes !== undefined) e.bytes = num(c.bytes);
      if (c.open !== undefined) e.open = !!c.open;
      updateLogCounters(e);
    }
  }

  function ruleTitle(id) {
    const r = rulesById.get(id);
    return r ? str(r.text) : `rule #${id} (not loaded)`;
  }

  function processCell(p) {
    if (!attributed(p)) {
      const note = procNote(p);
      return el('td', { class: 'proc muted', testid: 'conn-process', text: note ? note.text : '—',
        title: note ? note.title : 'not attributed to a process (see cellwalld --attribution)' });
    }
    return el('td', { class: `proc${p.exited ? ' exited' : ''}`, testid: 'conn-process', title: procTitle(p),
      dataset: { pid: String(num(p.pid)) } },
    el('span', { class: 'proc-name', text: procName(p) }), ' ',
    el('span', { class: 'proc-pid', text: String(num(p.pid)) }));
  }

  function buildLogRow(e) {
    const names = splitNames(e.names);
    const verdict = str(e.verdict);
    const ruleId = num(e.rule_id);
    const ruleCell = el('td', { class: 'rule-ref' });
    const by = str(e.decided_by);  // the daemon's api::decidedBy, as `cellwall log` shows it
    if (ruleId) {
      ruleCell.textContent = `#${ruleId}`;
      ruleCell.title = ruleTitle(ruleId);
    } else if (by.startsWith('script:')) {
      // A Lua script's verdict: name the script.
      ruleCell.textContent = by;
      ruleCell.title = `the verdict of the script ${by.slice(7)}`;
    } else {
      ruleCell.textContent = 'default';
      ruleCell.title = "the app's default";
    }
    const dot = el('span', { class: 'open-dot', title: 'connection open' });
    const packets = el('td', { class: 'num', text: String(e.packets) });
    const bytesText = el('span', { text: fmtBytes(e.bytes) });
    const bytes = el('td', { class: 'num', title: `${e.bytes} bytes` }, dot, bytesText);
    const tr = el('tr', { testid: 'conn-row', dataset: { verdict, logId: String(e.id), app: str(e.app) } },
      el('td', { class: 'nowrap', text: fmtClock(e.time_ms), title: fmtDateTime(e.time_ms) }),
      el('td', { class: 'app', text: str(e.app) }),
      el('td', { class: 'num', text: num(e.cell) ? String(num(e.cell)) : '—' }),
      el('td', { text: str(e.proto) }),
      el('td', { class: 'dest', title: names.length ? `${names.join(', ')}\n${hostPort(e.remote_ip, e.remote_port, e.proto)}` : null },
        names.length ? el('span', { class: 'dest-name', text: names.join(', ') }) : null,
        el('span', { class: names.length ? 'dest-addr' : 'dest-addr dest-only', text: hostPort(e.remote_ip, e.remote_port, e.proto) })),
      processCell(e.process),
      el('td', {}, el('span', { class: `badge badge-${verdict || 'unknown'}`, text: verdict || '?' })),
      ruleCell,
      el('td', { class: 'muted', text: str(e.reason) }),
      packets,
      bytes);
    e.el = tr;
    e.cells = { packets, bytes, bytesText, ruleCell };
    paintOpen(e);
    return tr;
  }

  function paintOpen(e) {
    if (!e.el) return;
    e.el.classList.toggle('is-open', e.open === true);
    if (e.open === true) e.el.dataset.open = 'true';
    else if (e.open === false) e.el.dataset.open = 'false';
  }

  function updateLogCounters(e) {
    if (!e.el) return;
    e.cells.packets.textContent = String(e.packets);
    e.cells.bytesText.textContent = fmtBytes(e.bytes);
    e.cells.bytes.title = `${e.bytes} bytes`;
    paintOpen(e);
  }

  function updateLogRuleTitles() {
    for (const e of log.entries) {
      if (!e.el || !num(e.rule_id)) continue;
      e.cells.ruleCell.title = ruleTitle(num(e.rule_id));
    }
  }

  function queueLogRender() {
    if (log.renderQueued) return;
    log.renderQueued = true;
    setTimeout(() => { log.renderQueued = false; renderLog(); }, 50);
  }

  // Rows are built once per entry. New entries go on top of the table as it is; the whole
  // table is laid out again only when the filter changed or entries came out of order. A
  // hidden view is drawn when it is shown: a busy log must not delay a question.
  function renderLog() {
    const app = q('app-filter').value;
    if (activeView !== 'connections') {
      log.dirty = true;
      return;
    }
    log.dirty = false;
    const body = q('conn-body');
    const shown = log.shown;
    if (shown && shown.app === app && shown.count > 0) {
      const fresh = [];
      for (let i = log.entries.length - 1; i >= 0 && log.entries[i].id > shown.newest; i--) {
        const e = log.entries[i];
        if (!app || e.app === app) fresh.push(e.el || buildLogRow(e));
      }
      if (log.entries.length) shown.newest = log.entries[log.entries.length - 1].id;
      if (fresh.length) {
        body.prepend(...fresh);
        shown.count += fresh.length;
        while (shown.count > MAX_LOG && body.lastElementChild) {
          body.lastElementChild.remove();
          shown.count--;
        }
      }
      showLogCount(shown.count);
      return;
    }
    const rows = [];
    for (let i = log.entries.length - 1; i >= 0; i--) {
      const e = log.entries[i];
      if (app && e.app !== app) continue;
      rows.push(e.el || buildLogRow(e));
    }
    if (!rows.length) {
      body.replaceChildren(el('tr', { class: 'empty' },
        el('td', { colspan: '11', text: app ? `No connections of ${app} yet.` : 'No connections yet.' })));
    } else {
      body.replaceChildren(...rows);
    }
    const newest = log.entries.length ? log.entries[log.entries.length - 1].id : -Infinity;
    log.shown = { app, newest, count: rows.length };
    showLogCount(rows.length);
  }

  function showLogCount(n) {
    q('conn-count').textContent = `${n} connection${n === 1 ? '' : 's'}` +
      (log.entries.length >= MAX_LOG ? ` (the newest ${MAX_LOG} kept)` : '');
  }
  q('app-filter').addEventListener('change', renderLog);

  // ---------------------------------------------------------------- rules view

  const rulesView = {
    app: '',
    expiring: [],   // [{el, rule}] refreshed every second
    editing: null,  // rule id in the editor
  };

  function selectRulesApp(app) {
    rulesView.app = app;
    q('rule-new-title').textContent = app ? `New rule for ${app}` : 'New rule';
    renderRules();
    if (app) refreshRules(app);
  }
  q('rules-app').addEventListener('change', () => selectRulesApp(q('rules-app').value));

  function expiresParts(r, now) {
    const parts = [];
    if (num(r.expires_ms)) {
      const left = num(r.expires_ms) - now;
      parts.push(left > 0 ? fmtLeft(left) : 'expired');
    }
    if (r.until_exit) parts.push('until exit');
    if (num(r.connections_max)) parts.push(`${num(r.connections_used)}/${num(r.connections_max)} connections`);
    if (!parts.length) parts.push('never');
    return parts;
  }

  function renderRules() {
    const body = q('rules-body');
    const app = rulesView.app;
    const list = rulesByApp.get(app) || [];
    rulesView.expiring = [];
    const now = Date.now();
    const rows = list.map((r) => {
      const action = str(r.action);
      const exp = el('td', { class: 'expires' });
      const fillExp = (t) => {
        exp.replaceChildren(...expiresParts(r, t).map((s) => el('div', { text: s })));
      };
      fillExp(now);
      if (num(r.expires_ms)) rulesView.expiring.push(fillExp);
      return el('tr', {
        testid: 'rule-row',
        class: rulesView.editing === r.id ? 'editing' : null,
        dataset: { ruleId: String(r.id), action },
      },
      el('td', { class: 'num', text: `#${r.id}` }),
      el('td', {}, el('span', { class: `badge badge-${action || 'unknown'}`, text: action || '?' })),
      el('td', { class: 'rule-text-cell' }, el('pre', { class: 'rule-text', text: str(r.text).trim() })),
      el('td', { class: 'muted', text: str(r.origin) }),
      el('td', { class: 'nowrap', text: fmtDayOrTime(r.created_ms), title: fmtDateTime(r.created_ms) }),
      exp,
      el('td', { class: 'actions' },
        el('button', { type: 'button', class: 'btn btn-small', text: 'Edit', onclick: () => openEditor(r) }),
        el('button', { type: 'button', class: 'btn btn-small btn-danger-outline', text: 'Delete', onclick: () => deleteRule(r) })));
    });
    if (!rows.length) {
      const msg = !app ? 'No apps known yet: start one with `cellwall run`.' : `No rules for ${app}.`;
      body.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: '7', text: msg })));
    } else {
      body.replaceChildren(...rows);
    }
    q('rules-count').textContent = app ? `${list.length} rule${list.length === 1 ? '' : 's'}` : '';
  }

  function tickRules() {
    if (activeView !== 'rules') return;
    const now = Date.now();
    for (const f of rulesView.expiring) f(now);
  }

  function openEditor(r) {
    rulesView.editing = r.id;
    rulesView.editingApp = str(r.app) || rulesView.app;
    q('rule-editor-title').textContent = `Edit rule #${r.id} of ${rulesView.editingApp}`;
    q('rule-editor').value = str(r.text);
    q('rule-editor-panel').hidden = false;
    for (const tr of q('rules-body').querySelectorAll('tr')) {
      tr.classList.toggle('editing', tr.dataset.ruleId === String(r.id));
    }
    q('rule-editor').focus();
  }
  function closeEditor() {
    rulesView.editing = null;
    q('rule-editor-panel').hidden = true;
    for (const tr of q('rules-body').querySelectorAll('tr.editing')) tr.classList.remove('editing');
  }
  q('rule-cancel').addEventListener('click', closeEditor);
  q('rule-save').addEventListener('click', async () => {
    const id = rulesView.editing;
    if (id === null) return;
    const app = rulesView.editingApp;
    const save = q('rule-save');
    save.disabled = true;
    const r = await userApi({ cmd: 'rules.replace', id, rule_text: q('rule-editor').value });
    save.disabled = false;
    if (r) closeEditor();
    refreshRules(app);
  });

  async function deleteRule(r) {
    // eslint-disable-next-line no-alert
    if (!window.confirm(`Delete rule #${r.id} of ${str(r.app)}?\n\n${str(r.text).trim()}`)) return;
    const res = await userApi({ cmd: 'rules.rm', id: r.id });
    if (res && rulesView.editing === r.id) closeEditor();
    refreshRules(str(r.app) || rulesView.app);
  }

  // The builder writes TOML into the textarea; the textarea is what is sent.
  function tomlString(s) {
    return `"${String(s).replace(/[\\"]/g, (c) => `\\${c}`)
      .replace(/[\u0000-\u001f\u007f]/g, (c) => {
        const named = { '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r' }[c];
        return named || `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
      })}"`;
  }
  const listOf = (s) => String(s).split(',').map((x) => x.trim()).filter(Boolean);

  function builderText() {
    const lines = [];
    lines.push(`action = ${tomlString(q('rb-action').value)}`);
    const proto = q('rb-proto').value;
    if (proto && proto !== 'any') lines.push(`proto = ${tomlString(proto)}`);
    const hosts = listOf(q('rb-hosts').value);
    if (hosts.length) lines.push(`hosts = [${hosts.map(tomlString).join(', ')}]`);
    const to = listOf(q('rb-to').value);
    if (to.length) lines.push(`to = [${to.map(tomlString).join(', ')}]`);
    const ports = listOf(q('rb-ports').value);
    if (ports.length) {
      lines.push(`ports = [${ports.map((p) => (/^\d+$/.test(p) ? String(Number(p)) : tomlString(p.replace(/\s+/g, '')))).join(', ')}]`);
    }
    const dur = q('rb-for').value.trim();
    if (dur) lines.push(`for = ${tomlString(dur)}`);
    const conns = q('rb-connections').value.trim();
    if (conns) lines.push(`connections = ${/^\d+$/.test(conns) ? String(Number(conns)) : tomlString(conns)}`);
    return `${lines.join('\n')}\n`;
  }
  const BUILDER = ['rb-action', 'rb-proto', 'rb-hosts', 'rb-to', 'rb-ports', 'rb-for', 'rb-connections'];
  function syncBuilder() { q('rule-new-text').value = builderText(); }
  for (const id of BUILDER) {
    q(id).addEventListener('input', syncBuilder);
    q(id).addEventListener('change', syncBuilder);
  }
  function resetBuilder() {
    q('rb-action').value = 'allow';
    q('rb-proto').value = 'any';
    for (const id of ['rb-hosts', 'rb-to', 'rb-ports', 'rb-for', 'rb-connections']) q(id).value = '';
    syncBuilder();
  }

  q('rule-add').addEventListener('click', async () => {
    const app = rulesView.app;
    if (!app) {
      showError('Choose an app first.');
      return;
    }
    const text = q('rule-new-text').value;
    if (!text.trim()) {
      showError('The rule is empty.');
      return;
    }
    const btn = q('rule-add');
    btn.disabled = true;
    const r = await userApi({ cmd: 'rules.add', app, rule_text: text });
    btn.disabled = false;
    if (r) resetBuilder();
    refreshRules(app);
  });

  // ---------------------------------------------------------------- cells

  let cells = [];
  function onCells(d) {
    cells = arr(d.cells).slice().sort((a, b) => num(a.id) - num(b.id));
    for (const c of cells) addApp(c.app);
    renderCells();
  }
  // A namespace cell, or a micro-VM (its own kernel; the host cannot attribute its connections).
  function backendCell(c) {
    if (str(c.backend) !== 'vm') return { text: 'namespace', testid: 'cell-backend' };
    const kvm = str(c.vm_accel) === 'kvm';
    return { text: kvm ? 'VM (KVM)' : 'VM (emulated)', testid: 'cell-backend',
      title: 'a micro-VM with its own kernel' + (kvm ? '' : ', under software emulation (no KVM)') +
        ': processes inside are not visible to attribution' };
  }
  function renderCells() {
    const rows = cells.map((c) => {
      const pubs = arr(c.published_at).length ? arr(c.published_at) : arr(c.published);
      return el('tr', { testid: 'cell-row', dataset: { cellId: String(num(c.id)), app: str(c.app) } },
        el('td', { class: 'num', text: String(num(c.id)) }),
        el('td', { class: 'app', text: str(c.app) }),
        el('td', { text: str(c.env) }),
        el('td', backendCell(c)),
        el('td', { class: 'mono', text: c.ip ? `${str(c.ip)}/${num(c.prefix_length)}` : '—', title: c.mac ? `MAC ${str(c.mac)}` : null }),
        el('td', { class: 'mono', text: str(c.gateway) || '—' }),
        el('td', { class: 'mono', text: str(c.netns) || '—' }),
        el('td', { class: 'mono', text: str(c.ifname_host) || '—', title: num(c.ofport) ? `OpenFlow port ${num(c.ofport)}` : null }),
        el('td', { class: 'nowrap', text: num(c.created_unix) ? fmtDateTime(num(c.created_unix) * 1000) : '—' }),
        el('td', { class: 'published' }, pubs.length ? pubs.map((s) => el('div', { text: str(s) })) : '—'));
    });
    const body = q('cells-body');
    if (!rows.length) body.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: '10', text: 'No cells running.' })));
    else body.replaceChildren(...rows);
    q('cells-count').textContent = `${rows.length} cell${rows.length === 1 ? '' : 's'}`;
  }

  // ---------------------------------------------------------------- traffic

  const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777',
    '#65a30d', '#4b5563', '#b45309', '#0d9488', '#9333ea'];
  const traffic = {
    samples: [],         // {t, apps: {app: {out, in}}}, oldest first
    colors: new Map(),   // app -> color, in order of first appearance
    lastDraw: 0,
    timer: 0,
  };
  function colorOf(app) {
    if (!traffic.colors.has(app)) traffic.colors.set(app, PALETTE[traffic.colors.size % PALETTE.length]);
    return traffic.colors.get(app);
  }

  function onTraffic(d) {
    const t = num(d.t);
    const appsIn = d.apps && typeof d.apps === 'object' ? d.apps : {};
    const sample = { t, apps: {} };
    for (const [a, v] of Object.entries(appsIn)) {
      sample.apps[a] = { out: num(v && v.out), in: num(v && v.in) };
      addApp(a);
      colorOf(a);
    }
    const s = traffic.samples;
    if (s.length && t < s[s.length - 1].t) {
      s.push(sample);
      s.sort((a, b) => a.t - b.t);
    } else {
      s.push(sample);
    }
    const cutoff = s[s.length - 1].t - TRAFFIC_WINDOW_MS - 2000;
    while (s.length && (s[0].t < cutoff || s.length > 400)) s.shift();
    scheduleTrafficDraw();
  }

  function scheduleTrafficDraw() {
    if (activeView !== 'traffic' || traffic.timer) return;
    const wait = Math.max(0, 1000 - (performance.now() - traffic.lastDraw));
    traffic.timer = setTimeout(() => {
      traffic.timer = 0;
      drawTraffic();
    }, wait);
  }
  function drawTrafficNow() {
    if (traffic.timer) { clearTimeout(traffic.timer); traffic.timer = 0; }
    drawTraffic();
  }

  function niceStep(max, ticks) {
    const raw = max / ticks;
    const mag = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  function trafficSeries() {
    const sel = q('traffic-app').value;
    const s = traffic.samples;
    const pick = (fn) => s.map((x) => ({ t: x.t, v: fn(x) }));
    if (sel === SUM) {
      const sum = (x, k) => Object.values(x.apps).reduce((acc, v) => acc + v[k], 0);
      return [{ app: 'all apps', color: '#111827', out: pick((x) => sum(x, 'out')), in: pick((x) => sum(x, 'in')) }];
    }
    const names = sel ? [sel] : [...traffic.colors.keys()];
    return names.map((a) => ({
      app: a,
      color: colorOf(a),
      out: pick((x) => (x.apps[a] ? x.apps[a].out : 0)),
      in: pick((x) => (x.apps[a] ? x.apps[a].in : 0)),
    }));
  }

  function drawTraffic() {
    traffic.lastDraw = performance.now();
    const canvas = q('traffic-canvas');
    const rect = canvas.getBoundingClientRect();
    if (rect.width < 10 || rect.height < 10) return;
    const dpr = window.devicePixelRatio || 1;
    const pw = Math.round(rect.width * dpr);
    const ph = Math.round(rect.height * dpr);
    if (canvas.width !== pw || canvas.height !== ph) { canvas.width = pw; canvas.height = ph; }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const W = rect.width;
    const H = rect.height;
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, W, H);

    const series = trafficSeries();
    const s = traffic.samples;
    const tEnd = s.length ? s[s.length - 1].t : Date.now();
    const tStart = tEnd - TRAFFIC_WINDOW_MS;
    let max = 0;
    for (const se of series) {
      for (const p of se.out) if (p.t >= tStart && p.v > max) max = p.v;
      for (const p of se.in) if (p.t >= tStart && p.v > max) max = p.v;
    }
    const step = niceStep(Math.max(max, 1000), 4);
    const yMax = Math.max(step, Math.ceil(max / step) * step);

    ctx.font = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
    const yLabels = [];
    for (let v = 0; v <= yMax + step / 2; v += step) yLabels.push([v, fmtRate(v)]);
    const left = Math.ceil(Math.max(...yLabels.map(([, l]) => ctx.measureText(l).width))) + 14;
    const right = 14;
    const top = 12;
    const bottom = 26;
    const pw2 = W - left - right;
    const ph2 = H - top - bottom;
    const x = (t) => left + ((t - tStart) / TRAFFIC_WINDOW_MS) * pw2;
    const y = (v) => top + ph2 - (v / yMax) * ph2;

    // grid and y labels
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const [v, label] of yLabels) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.strokeStyle = v === 0 ? '#9ca3af' : '#e5e7eb';
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(left + pw2, yy); ctx.stroke();
      ctx.fillStyle = '#4b5563';
      ctx.fillText(label, left - 6, yy);
    }
    // x ticks: every minute (every 30 s as faint lines)
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const first = Math.ceil(tStart / 30000) * 30000;
    for (let t = first; t <= tEnd; t += 30000) {
      const xx = Math.round(x(t)) + 0.5;
      const minute = t % 60000 === 0;
      ctx.strokeStyle = minute ? '#e5e7eb' : '#f3f4f6';
      ctx.beginPath(); ctx.moveTo(xx, top); ctx.lineTo(xx, top + ph2); ctx.stroke();
      if (minute) {
        const d = new Date(t);
        ctx.fillStyle = '#4b5563';
        ctx.fillText(`${pad2(d.getHours())}:${pad2(d.getMinutes())}`, xx, top + ph2 + 6);
      }
    }
    ctx.strokeStyle = '#9ca3af';
    ctx.beginPath(); ctx.moveTo(left + 0.5, top); ctx.lineTo(left + 0.5, top + ph2); ctx.stroke();

    // lines
    ctx.save();
    ctx.beginPath(); ctx.rect(left, top - 1, pw2 + 1, ph2 + 2); ctx.clip();
    const line = (pts, color, dashed) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = dashed ? 1.5 : 2;
      ctx.setLineDash(dashed ? [5, 4] : []);
      ctx.lineJoin = 'round';
      ctx.beginPath();
      let prev = null;
      for (const p of pts) {
        if (p.t < tStart - 2000) { prev = p; continue; }
        if (!prev || p.t - prev.t > 3000) ctx.moveTo(x(p.t), y(p.v));  // a gap: no line across
        else ctx.lineTo(x(p.t), y(p.v));
        prev = p;
      }
      ctx.stroke();
    };
    for (const se of series) {
      line(se.in, se.color, true);
      line(se.out, se.color, false);
    }
    ctx.restore();
    ctx.setLineDash([]);

    if (!s.length) {
      ctx.fillStyle = '#6b7280';
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.font = '13px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
      ctx.fillText('waiting for traffic samples…', left + pw2 / 2, top + ph2 / 2);
    }
    renderLegend(series);
  }

  function renderLegend(series) {
    const items = series.map((se) => {
      const lastOut = se.out.length ? se.out[se.out.length - 1].v : 0;
      const lastIn = se.in.length ? se.in[se.in.length - 1].v : 0;
      let peak = 0;
      for (const p of se.out) peak = Math.max(peak, p.v);
      for (const p of se.in) peak = Math.max(peak, p.v);
      const sw = el('span', { class: 'swatch' });
      sw.style.backgroundColor = se.color;
      return el('li', { class: 'legend-item', dataset: { app: se.app } },
        sw,
        el('span', { class: 'legend-app', text: se.app }),
        el('span', { class: 'legend-rates', text: `out ${fmtRate(lastOut)} · in ${fmtRate(lastIn)}` }),
        el('span', { class: 'legend-peak', text: `peak ${fmtRate(peak)}` }));
    });
    if (!items.length) items.push(el('li', { class: 'legend-item muted', text: 'no apps yet' }));
    q('traffic-legend').replaceChildren(...items);
  }

  q('traffic-app').addEventListener('change', drawTrafficNow);
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(() => { if (activeView === 'traffic') scheduleTrafficDraw(); }).observe(q('traffic-canvas'));
  }

  // ---------------------------------------------------------------- scripts

  // A card per script, kept across updates (the list comes again every 2 s): an open log, the
  // focus and a click in progress survive; only the texts that changed are written.
  const scriptsView = {
    known: false,        // a `scripts` event came (before it: nothing to say yet)
    list: [],            // [ScriptInfo] in the daemon's order (shipped, then user scripts by name)
    cards: new Map(),    // name -> card
  };

  function fmtMemory(n) {
    n = num(n);
    if (n < 1024) return `${Math.round(n)} B`;
    const units = ['KiB', 'MiB', 'GiB'];
    let v = n;
    let i = -1;
    do { v /= 1024; i++; } while (v >= 1023.5 && i < units.length - 1);
    return `${v < 99.95 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
  }
  const fmtCount = (n) => num(n).toLocaleString('en-US');
  const setText = (e, t) => { if (e.textContent !== t) e.textContent = t; };

  function onScripts(d) {
    scriptsView.known = true;
    scriptsView.list = arr(d.scripts).filter((s) => s && typeof s === 'object' && str(s.name));
    renderScripts();
  }

  const SCRIPT_STATS = [
    ['calls', 'Calls', 'packets, timers and filters it was asked about'],
    ['allowed', 'Allowed', 'connections it allowed'],
    ['dropped', 'Dropped', 'connections it dropped'],
    ['rejected', 'Rejected', 'connections it rejected'],
    ['flows', 'Flows', 'flows it put in the script table'],
    ['inspected', 'Inspected', 'packets of inspected cells it saw (inspect mode)'],
    ['memory', 'Memory', 'Lua memory in use (at most 16 MiB)'],
  ];

  function buildScriptCard(name) {
    const c = { name, lastCounters: null, lastLogs: null };
    c.state = el('span', { class: 'badge' });
    c.origin = el('span', { class: 'badge badge-plain', title: 'shipped: from the scripts directory; user: cellwall script load' });
    c.mode = el('span', { class: 'badge badge-plain' });
    c.loaded = el('span', { class: 'muted nowrap' });
    c.reload = el('button', {
      type: 'button',
      class: 'btn btn-small',
      testid: 'script-reload',
      text: 'Reload',
      title: `read ${name}'s file again and run it (a disabled script runs again)`,
      onclick: () => reloadScript(c),
    });
    c.why = el('span', { class: 'script-why-text', testid: 'script-why' });
    c.whyBox = el('div', { class: 'script-why', role: 'status', hidden: true },
      el('span', { class: 'script-why-label', text: 'Disabled:' }),
      c.why,
      el('span', { class: 'script-why-hint', text: 'Traffic goes on without it; Reload runs it again.' }));
    c.path = el('div', { class: 'script-path mono muted' });
    c.stats = new Map();
    const stats = el('dl', { class: 'script-stats' });
    for (const [key, label, title] of SCRIPT_STATS) {
      const v = el('dd', { class: `stat-value stat-${key}`, dataset: { stat: key } });
      c.stats.set(key, v);
      stats.append(el('div', { class: 'stat', title }, el('dt', { class: 'stat-label', text: label }), v));
    }
    c.counters = el('div', { class: 'script-counters', testid: 'script-counters' });
    c.logsSummary = el('summary', {});
    c.logsText = el('pre', { class: 'script-log-lines' });
    c.logs = el('details', { class: 'script-logs', testid: 'script-logs' }, c.logsSummary, c.logsText);
    c.logs.addEventListener('toggle', () => {
      if (c.logs.open) c.logsText.scrollTop = c.logsText.scrollHeight;
    });
    c.root = el('article', { class: 'script-card', testid: 'script-row', dataset: { script: name } },
      el('div', { class: 'script-head' },
        el('span', { class: 'script-name', text: name }),
        c.state, c.origin, c.mode, c.loaded,
        el('span', { class: 'script-head-gap' }),
        c.reload),
      c.whyBox,
      c.path,
      stats,
      el('div', { class: 'script-section' },
        el('span', { class: 'script-section-label', text: 'Counters' }),
        c.counters),
      c.logs);
    return c;
  }

  function updateScriptCard(c, s) {
    const state = str(s.state) || 'running';
    const disabled = state === 'disabled';
    c.info = s;
    if (c.root.dataset.state !== state) c.root.dataset.state = state;
    c.root.classList.toggle('is-disabled', disabled);
    setText(c.state, state);
    c.state.className = `badge badge-${disabled ? 'disabled' : 'running'}`;
    setText(c.origin, str(s.origin) || '?');
    setText(c.mode, str(s.mode) || 'in-process');
    c.mode.title = s.mode === 'helper' ? 'runs in a confined helper process' : 'runs inside cellwalld';
    setText(c.loaded, num(s.loaded_ms) ? `loaded ${fmtDayOrTime(s.loaded_ms)}` : '');
    c.loaded.title = num(s.loaded_ms) ? fmtDateTime(s.loaded_ms) : '';
    c.whyBox.hidden = !disabled;
    setText(c.why, disabled ? (str(s.why) || 'no reason given') : '');
    setText(c.path, str(s.path));
    c.path.title = str(s.path);
    for (const [key, v] of c.stats) {
      const t = key === 'memory' ? fmtMemory(s.memory) : fmtCount(s[key]);
      setText(v, t);
      v.classList.toggle('zero', key !== 'memory' && num(s[key]) === 0);
    }
    if (num(s.filters)) c.stats.get('calls').title = `${num(s.filters)} filter_* function${num(s.filters) === 1 ? '' : 's'}`;

    // Counters: [[name, value], ...]; drawn again only when they changed.
    const counters = arr(s.counters).filter((x) => Array.isArray(x) && x.length >= 2)
      .map(([k, v]) => [str(k), num(v)]);
    const ckey = JSON.stringify(counters);
    if (ckey !== c.lastCounters) {
      c.lastCounters = ckey;
      if (!counters.length) {
        c.counters.replaceChildren(el('span', { class: 'muted', text: 'none (count("name") makes one)' }));
      } else {
        c.counters.replaceChildren(...counters.map(([k, v]) => el('span', {
          class: 'counter', testid: 'script-counter', dataset: { counter: k, value: String(v) }, title: `${k} = ${v}`,
        },
        el('span', { class: 'counter-name', text: k }),
        el('span', { class: 'counter-value', text: fmtCount(v) }))));
      }
    }

    // Log lines, newest last; the box stays as the user left it (open or not, scrolled).
    const logs = arr(s.logs).map(str);
    const lkey = JSON.stringify(logs);
    if (lkey !== c.lastLogs) {
      c.lastLogs = lkey;
      const pre = c.logsText;
      const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
      setText(c.logsSummary, logs.length ? `Log: newest ${logs.length} line${logs.length === 1 ? '' : 's'}` : 'Log: nothing logged');
      pre.textContent = logs.length ? logs.join('\n') : 'log("…") lines show here.';
      pre.classList.toggle('muted', !logs.length);
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
  }

  function renderScripts() {
    const list = scriptsView.list;
    const box = q('scripts-list');
    const disabled = list.filter((s) => s.state === 'disabled').length;

    const alert = q('scripts-alert');
    alert.hidden = disabled === 0;
    setText(alert, disabled ? String(disabled) : '');
    alert.title = disabled ? `${disabled} script${disabled === 1 ? '' : 's'} disabled` : '';
    setText(q('scripts-count'), !scriptsView.known ? '' :
      `${list.length} script${list.length === 1 ? '' : 's'}` + (disabled ? ` · ${disabled} disabled` : ''));

    if (!list.length) {
      for (const c of scriptsView.cards.values()) c.root.remove();
      scriptsView.cards.clear();
      q('scripts-empty').hidden = !scriptsView.known;
      q('scripts-waiting').hidden = scriptsView.known;
      return;
    }
    q('scripts-empty').hidden = true;
    q('scripts-waiting').hidden = true;

    const names = new Set(list.map((s) => str(s.name)));
    for (const [name, c] of scriptsView.cards) {
      if (!names.has(name)) {
        c.root.remove();
        scriptsView.cards.delete(name);
      }
    }
    const order = [];
    for (const s of list) {
      const name = str(s.name);
      let c = scriptsView.cards.get(name);
      if (!c) {
        c = buildScriptCard(name);
        scriptsView.cards.set(name, c);
      }
      updateScriptCard(c, s);
      order.push(c.root);
    }
    // Moved only when the order changed (moving a node loses its focus and a click under way).
    const current = [...box.querySelectorAll(':scope > .script-card')];
    if (current.length !== order.length || current.some((e, i) => e !== order[i])) {
      for (const e of order) box.append(e);
    }
  }

  async function reloadScript(c) {
    const btn = c.reload;
    btn.disabled = true;
    setText(btn, 'Reloading…');
    const r = await userApi({ cmd: 'script.reload', name: c.name });
    btn.disabled = false;
    setText(btn, 'Reload');
    // A reload's answer lists every script loaded; the `scripts` event that follows says the same.
    if (r && Array.isArray(r.scripts)) onScripts(r);
  }

  // ---------------------------------------------------------------- events

  function resetSnapshotState() {
    log.entries = [];
    log.byId.clear();
    log.shown = null;
    queueLogRender();
    traffic.samples = [];
    scheduleTrafficDraw();
    promptState.raw = [];
    derivePrompts();
    cells = [];
    renderCells();
  }

  // Open vSwitch down, restarting, or restarted: said in the top bar (nothing while all is well).
  function onSwitch(d) {
    const el = q('switch-state');
    el.dataset.state = str(d.state);
    el.textContent = str(d.text);
    el.hidden = !d.text;
  }

  const handlers = {
    switch: onSwitch,
    prompts: onPrompts,
    cells: onCells,
    log: onLog,
    counters: onCounters,
    traffic: onTraffic,
    scripts: onScripts,
    rules: (d) => refreshRules(str(d.app)),
    resync: () => setLive('reconnecting'),
  };

  function setLive(state) {
    const live = q('live');
    live.dataset.state = state;
    live.textContent = state === 'open' ? 'live' : state === 'connecting' ? 'connecting…' : 'reconnecting…';
    live.title = state === 'open' ? 'receiving updates from cellwalld' : 'not connected to cellwalld; retrying';
  }

  let source = null;
  let retryTimer = 0;
  function connect() {
    retryTimer = 0;
    if (source) source.close();
    const es = new EventSource(`events?token=${encodeURIComponent(TOKEN)}`);
    source = es;
    es.addEventListener('open', () => {
      if (source !== es) return;
      setLive('open');
      resetSnapshotState();
      refreshRules('');
    });
    es.addEventListener('error', () => {
      if (source !== es) return;
      setLive('reconnecting');
      // The browser retries by itself unless it gave up (a non-200 answer, a wrong type).
      if (es.readyState === EventSource.CLOSED && !retryTimer) {
        es.close();
        retryTimer = setTimeout(connect, 3000);
      }
    });
    for (const [name, fn] of Object.entries(handlers)) {
      es.addEventListener(name, (ev) => {
        if (source !== es) return;
        let d;
        try {
          d = JSON.parse(ev.data);
        } catch (e) {
          return;  // not JSON: ignored
        }
        try {
          fn(d && typeof d === 'object' ? d : {});
        } catch (e) {
          showError(`UI error handling "${name}": ${e && e.message ? e.message : e}`);
        }
      });
    }
  }

  // ---------------------------------------------------------------- start

  showView('connections');
  resetBuilder();
  renderLog();
  renderRules();
  renderCells();
  renderScripts();
  renderPrompts();
  setLive('connecting');
  setInterval(tickPrompts, 250);
  setInterval(tickRules, 1000);
  if (!TOKEN) {
    showError('No token in the address: open the link cellwalld printed (http://127.0.0.1:PORT/?token=...).');
  } else {
    connect();
    refreshRules('');
  }
})();
