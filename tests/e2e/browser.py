"""Python side of tests/web/browser.mjs: a real headless chromium (Debian's) driven by
playwright-core, one command at a time."""
import json
import subprocess
from pathlib import Path

WEB = Path(__file__).resolve().parents[1] / "web"


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self):
        if not (WEB / "node_modules" / "playwright-core").is_dir():
            raise BrowserError(f"playwright-core is not installed: run `npm ci` in {WEB} (scripts/setup.sh does)")
        self.p = subprocess.Popen(["node", str(WEB / "browser.mjs")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __call__(self, op, **kw):
        kw["op"] = op
        self.p.stdin.write(json.dumps(kw) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise BrowserError(f"the browser driver died during {op}: {self.p.stderr.read()[-3000:]}")
        r = json.loads(line)
        if not r["ok"]:
            raise BrowserError(f"{op} {kw}: {r['error']}")
        return r["value"]

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write('{"op": "quit"}\n')
                self.p.stdin.close()
                self.p.wait(timeout=20)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()
