#!/usr/bin/env python3
"""How fast a held connection is asked about, and released once answered (root; real cell, OVS,
cellwalld, a TCP server on the test host).

A cell of an app with default = "prompt" opens TCP connections one at a time; for each, this
script waits for the question on cellwalld's control socket (a prompt.list long-poll, as
`cellwall prompt` and the UI do) and answers it at once over the same socket:
  asked   : the cell's connect() starts -> the question reaches the waiting client
  released: the answer is sent -> the cell's connect() returns (SYN forwarded, SYN-ACK back)
  acked   : the answer is sent -> its reply arrives
Answers alternate between "once" (no rule) and "forever" (a rule, committed to SQLite before
the reply; removed again so that the next connection asks). All times on CLOCK_MONOTONIC,
which the cell's process and this one share.

--web measures the web UI the same way, twice more:
  sse     : the question arrives on the UI's event stream (GET /events); the answer is a
            POST /api, as the page sends it
  browser : the page's script has shown the question's dialog in headless chromium (a
            MutationObserver in the page notes when; painting follows within a frame); the
            answer is a click on "Allow once" (the page's own handler: fetch, POST /api).
            These two compare the page's clock with the cell's (CLOCK_REALTIME, one machine).
            fetch_rtt: a bare POST /api (prompt.list) from the page, answer parsed: chromium's
            own share of "released".
    sudo bench/prompt_latency.py [--rounds N] [--web] [--json]
"""
import argparse
import http.client
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import TESTHOST_IP, Daemon, TestHost  # noqa: E402
from netbench import ACCEPT, pct  # noqa: E402
import urllib.parse  # noqa: E402

CLIENT = r"""
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
for line in sys.stdin:
    t0, r0 = time.clock_gettime(time.CLOCK_MONOTONIC), time.time()
    s = socket.create_connection((host, port), timeout=10)
    t1, r1 = time.clock_gettime(time.CLOCK_MONOTONIC), time.time()
    s.close()
    print("%.6f %.6f %.6f %.6f" % (t0, t1, r0, r1), flush=True)
"""


def mono():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class Control:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rw")

    def call(self, obj):
        self.f.write(json.dumps(obj) + "\n")
        self.f.flush()
        r = json.loads(self.f.readline())
        if not r.get("ok"):
            raise RuntimeError(r.get("error"))
        return r


class WebUi:
    """The UI's event stream and command endpoint, as the page uses them."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.token = urllib.parse.parse_qs(u.query)["token"][0]
        self.events = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.events.request("GET", "/events?token=" + self.token)
        self.stream = self.events.getresponse()
        assert self.stream.status == 200, self.stream.status
        self.api_conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def next_prompts(self, after_version):
        """Blocks until a `prompts` event newer than after_version; returns its data."""
        name = None
        while True:
            line = self.stream.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "prompts":
                data = json.loads(line[6:])
                if data.get("version", 0) > after_version:
                    return data

    def api(self, obj):
        self.api_conn.request("POST", "/api", body=json.dumps(obj),
                              headers={"Content-Type": "application/json", "Authorization": "Bearer " + self.token})
        r = json.loads(self.api_conn.getresponse().read())
        if not r.get("ok"):
            raise RuntimeError(r.get("error"))
        return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--web", action="store_true", help="also through the web UI (events, browser)")
    args = ap.parse_args()
    th = TestHost()
    d = Daemon(th)
    cell_proc = client = browser = None
    server = None
    try:
        d.start()
        th.start_servers()
        server = th.spawn(["/usr/bin/python3", "-c", ACCEPT, "9000"])
        time.sleep(0.5)
        policy = 'default = "prompt"\nprompt_timeout = "1d"\n'
        cell_proc, cell = d.start_cell(policy, ["sleep", "3600"], app="ask")
        client = subprocess.Popen(["ip", "netns", "exec", cell["netns"], "/usr/bin/python3", "-c", CLIENT,
                                   TESTHOST_IP, "9000"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ctl = Control(str(Path(d.state, "cellwall.sock")))
        version = ctl.call({"cmd": "prompt.list"}).get("version", 0)
        res = {"once": {"asked": [], "released": [], "acked": []},
               "rule": {"asked": [], "released": [], "acked": []}}
        for i in range(args.rounds):
            kind = "once" if i % 2 == 0 else "rule"
            client.stdin.write("go\n")
            client.stdin.flush()
            r = ctl.call({"cmd": "prompt.list", "after_version": version, "wait_ms": 10000})
            t_q = mono()
            if not r.get("prompts"):
                raise RuntimeError("no question within 10 s")
            q = r["prompts"][0]
            t_a = mono()
            ans = ctl.call({"cmd": "prompt.answer", "id": q["id"], "action": "allow",
                            "lifetime": "once" if kind == "once" else "forever"})
            t_ack = mono()
            version = ans.get("version", version)
            t0, t1, r0, r1 = (float(x) for x in client.stdout.readline().split())
            if i >= 4:  # warm-up rounds are not counted
                res[kind]["asked"].append((t_q - t0) * 1e3)
                res[kind]["released"].append((t1 - t_a) * 1e3)
                res[kind]["acked"].append((t_ack - t_a) * 1e3)
            if kind == "rule":
                ctl.call({"cmd": "rules.rm", "id": ans["rules"][0]["id"]})
                time.sleep(0.05)  # its flows are cut; the next connection asks again
        if args.web:
            ui = WebUi(d.ui_url())
            version = ui.next_prompts(-1)["version"]
            res["sse"] = {"asked": [], "released": []}
            for i in range(args.rounds):
                client.stdin.write("go\n")
                client.stdin.flush()
                q = ui.next_prompts(version)
                t_q = mono()
                version = q["version"]
                if not q.get("prompts"):
                    raise RuntimeError("the prompts event has no question")
                t_a = mono()
                ui.api({"cmd": "prompt.answer", "id": q["prompts"][0]["id"], "action": "allow", "lifetime": "once"})
                t0, t1, r0, r1 = (float(x) for x in client.stdout.readline().split())
                version = ui.next_prompts(version)["version"]  # the question closed
                if i >= 4:
                    res["sse"]["asked"].append((t_q - t0) * 1e3)
                    res["sse"]["released"].append((t1 - t_a) * 1e3)
            from browser import Browser
            browser = Browser()
            browser("goto", url=d.ui_url())
            browser("visible", testid="live")
            res["browser"] = {"asked": [], "released": []}
            for i in range(max(10, args.rounds // 4)):
                browser("mark_dialog")
                client.stdin.write("go\n")
                client.stdin.flush()
                shown = browser("dialog_shown_at") / 1e3  # the page's clock: epoch ms
                clicked = browser("click_now", button="Allow once") / 1e3
                t0, t1, r0, r1 = (float(x) for x in client.stdout.readline().split())
                browser("hidden", testid="prompt-dialog")
                if i >= 4:
                    res["browser"]["asked"].append((shown - r0) * 1e3)
                    res["browser"]["released"].append((r1 - clicked) * 1e3)
            res["browser"]["fetch_rtt"] = browser("fetch_rtt", n=100)
        out = {k: {m: {"p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99), "max": max(v)}
                   for m, v in ms.items()} for k, ms in res.items()}
        if args.json:
            print(json.dumps(out))
        else:
            print(f"{args.rounds} rounds (first 4 not counted; browser: rounds/4), ms:")
            for kind, ms in out.items():
                for m, s in ms.items():
                    print(f"  {kind:7} {m:9} p50 {s['p50']:7.2f}  p90 {s['p90']:7.2f}  "
                          f"p99 {s['p99']:7.2f}  max {s['max']:7.2f}")
    finally:
        if browser:
            browser.close()
        if client:
            client.kill()
            client.wait()
        if cell_proc:
            cell_proc.terminate()
            cell_proc.wait(timeout=30)
        if server:
            server.kill()
            server.wait()
        d.stop()
        th.close()
        shutil.rmtree(d.state, ignore_errors=True)


if __name__ == "__main__":
    main()
