#!/usr/bin/env python3
"""cellwalld's memory (VmRSS, /proc/PID/status) around a big policy that is imported and then
replaced (root; real cellwalld with its embedded Open vSwitch, as the end-to-end tests run it).

  start     : cellwalld ready, its bridge programmed
  imported  : after `cellwall rules import --app big` of N rules (half host names, half
              addresses, ports and protocols varied)
  replaced  : after importing a 2-rule policy for the same app (the N rules are gone), RSS
              read once it settled (it is read every 100 ms for up to --settle seconds and the
              lowest value kept, so a trim that comes a moment later is seen)
  again     : the big import once more, then replaced once more (is the memory reused?)

--cell keeps a cell of the app running throughout, which sends one packet (a ping, decided by
a switch thread) right after each big import: its compiled policy then also lives in the view
that switch thread last read, as with any app that is busy while its policy is replaced.

    sudo bench/import_memory.py [--rules 200000] [--cell] [--json]
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import TESTHOST_IP, Daemon, TestHost, leftovers  # noqa: E402

SMALL = 'default = "deny"\n\n[[allow]]\nproto = "tcp"\nports = 443\n\n[[deny]]\nto = "192.0.2.1"\n'


def big_policy(n):
    """N distinct rules: names and addresses the matcher indexes (trie, hash), ports, protocols."""
    out = ['default = "deny"\n']
    for i in range(n):
        if i % 2 == 0:
            out.append(f'\n[[allow]]\nproto = "tcp"\nhosts = "h{i}.s{i % 97}.example.com"\nports = {1 + i % 60000}\n')
        else:
            a, b, c = (i >> 16) & 255, (i >> 8) & 255, i & 255
            out.append(f'\n[[deny]]\nproto = "{"udp" if i % 3 else "tcp"}"\nto = "10.{a}.{b}.{c}"\n'
                       f'ports = "{1000 + i % 5000}-{2000 + i % 5000}"\n')
    return "".join(out)


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def settled_rss(pid, seconds):
    low = rss_kib(pid)
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(0.1)
        low = min(low, rss_kib(pid))
    return low


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=200000)
    ap.add_argument("--cell", action="store_true", help="a cell of the app runs throughout")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    big = tmp / "big.toml"
    big.write_text(big_policy(a.rules))
    small = tmp / "small.toml"
    small.write_text(SMALL)
    th = TestHost()
    d = Daemon(th)
    cell = None
    out = {"rules": a.rules, "policy_bytes": big.stat().st_size, "cell": a.cell}
    try:
        d.start()
        pid = d.proc.pid
        if a.cell:
            cell, cell_info = d.start_cell(SMALL, ["sleep", "600"], app="big")
        out["start_kib"] = settled_rss(pid, a.settle)
        for round_ in ("", "_again"):
            t0 = time.time()
            d.cli("rules", "import", "--app", "big", str(big), timeout=600)
            out["import_s" + round_] = round(time.time() - t0, 2)
            out["imported_kib" + round_] = rss_kib(pid)
            if a.cell:
                d.sh_in_cell(cell_info, ["ping", "-c", "1", "-W", "1", TESTHOST_IP])
            t0 = time.time()
            d.cli("rules", "import", "--app", "big", str(small), timeout=600)
            out["replace_s" + round_] = round(time.time() - t0, 2)
            out["replaced_kib" + round_] = settled_rss(pid, a.settle)
    finally:
        if cell is not None:
            cell.terminate()
            cell.wait(timeout=30)
        d.stop()
        th.close()
        ns, ls, procs = leftovers()
        if ns or ls or procs:
            d.force_cleanup()
        shutil.rmtree(d.state, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        print(json.dumps(out))
        return
    mib = lambda k: f"{k / 1024:7.1f} MiB"  # noqa: E731
    print(f"{a.rules} rules ({out['policy_bytes'] / 1e6:.1f} MB of TOML){', a cell of the app running' if a.cell else ''}")
    print(f"  start                 {mib(out['start_kib'])}")
    print(f"  imported              {mib(out['imported_kib'])}   (import {out['import_s']} s)")
    print(f"  replaced by 2 rules   {mib(out['replaced_kib'])}   (import {out['replace_s']} s)")
    print(f"  imported again        {mib(out['imported_kib_again'])}   (import {out['import_s_again']} s)")
    print(f"  replaced again        {mib(out['replaced_kib_again'])}")


if __name__ == "__main__":
    main()
