#!/usr/bin/env python3
"""Scripts through a real cell (root; real Open vSwitch, namespaces, iperf3): issue 5's costs.

1. TCP connect latency from a cell to the test host (every connect a new connection decided
   by cellwalld) with 0, 1 and 10 scripts loaded and with the shipped port-scan guard; each
   script reads a field of every Packet-In and lets the connection go on.
2. Inspect mode: iperf3 TCP throughput from an inspected cell, where every packet goes through
   the controller (and the scripts' inspect_* functions) both ways, with no inspect function
   and with one; packets/s from cellwalld's own count. Run with the cells' Packet-In meter
   (the default, 10,000/s) and without its limit, for the controller's own
   capacity (a meter of 200,000/s: with the meters off, Open vSwitch's own switch-wide limit of
   1,000 Packet-Ins/s applies instead).

    sudo bench/script_net.py [--connects N] [--seconds S] [--json]
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import TESTHOST_IP, Daemon, TestHost, sh  # noqa: E402
from netbench import ACCEPT, connect_times, pct  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TYPICAL = "function on_packet(pkt) if pkt.port_dst == 23 then return 'drop' end end\n"
INSPECT = "function inspect_count(pkt) if pkt.port_dst == 23 then return 'drop' end end\n"
POLICY = f'default = "deny"\n[[allow]]\nproto = "tcp"\nto = "{TESTHOST_IP}"\n'


def status_counter(d, prefix):
    for line in d.cli("status").stdout.splitlines():
        if line.startswith(prefix):
            return int(line.split("packets=")[1].split()[0])
    raise AssertionError("no " + prefix + " in status")


def unload_all(d):
    out = d.cli("script", "list", "--json").stdout
    for l in out.splitlines():
        if l.strip():
            d.cli("script", "unload", json.loads(l)["name"])


def run(extra_args, args, res, tmp, prefix, connects):
    th = TestHost()
    d = Daemon(th, extra_args)
    procs, cells = [], []
    try:
        d.start()
        th.start_servers()
        procs = [th.spawn(["/usr/bin/python3", "-c", ACCEPT, "9001"]), th.spawn(["iperf3", "-s", "-p", "5201"])]
        time.sleep(0.5)
        if connects:
            p, cell = d.start_cell(POLICY, ["sleep", "3600"], app="bench")
            cells.append(p)
            connect_times(cell, 9001, 100)  # warm-up
            typical = Path(tmp, "typical.lua")
            typical.write_text(TYPICAL)
            configs = [("0", []), ("1", ["s0"]), ("10", [f"s{i}" for i in range(10)]), ("guard", None)]
            samples = {label: [] for label, _ in configs}
            walls = {label: 0.0 for label, _ in configs}
            # Interleaved rounds: the bridge and the VM drift over minutes, and every config
            # should see the same drift.
            for rnd in range(args.rounds):
                for label, load in configs[rnd % len(configs):] + configs[:rnd % len(configs)]:
                    unload_all(d)
                    if load is None:
                        d.cli("script", "load", str(ROOT / "lua" / "portscan_guard.lua"), "--name", "guard")
                    for name in load or []:
                        d.cli("script", "load", str(typical), "--name", name)
                    connect_times(cell, 9001, 20)
                    t0 = time.perf_counter()
                    samples[label] += connect_times(cell, 9001, args.connects // args.rounds)
                    walls[label] += time.perf_counter() - t0
            for label, xs in samples.items():
                res[f"connect_{label}_p50_us"] = pct(xs, 50)
                res[f"connect_{label}_p90_us"] = pct(xs, 90)
                res[f"connect_{label}_p99_us"] = pct(xs, 99)
                res[f"connect_{label}_per_s"] = len(xs) / walls[label]
            unload_all(d)
        p, icell = d.start_cell(POLICY, ["sleep", "3600"], app="inspected", run_args=["--inspect"])
        cells.append(p)
        ins = Path(tmp, "inspector.lua")
        ins.write_text(INSPECT)
        for label in ("none", "one"):
            if label == "one":
                d.cli("script", "load", str(ins))
            before = status_counter(d, "inspect ")
            t0 = time.perf_counter()
            r = sh(["ip", "netns", "exec", icell["netns"], "iperf3", "-c", TESTHOST_IP, "-p", "5201", "-t",
                    str(args.seconds), "-J"], timeout=args.seconds + 60)
            wall = time.perf_counter() - t0
            after = status_counter(d, "inspect ")
            res[f"{prefix}inspect_{label}_mbps"] = json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
            res[f"{prefix}inspect_{label}_pps"] = (after - before) / wall
    finally:
        for p in cells:
            p.terminate()
            p.wait(timeout=30)
        for p in procs:
            p.kill()
            p.wait()
        d.stop()
        th.close()
        shutil.rmtree(d.state, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connects", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = {}
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        run([], args, res, tmp, "metered_", True)
        run(["--cell-packet-in-rate", "200000"], args, res, tmp, "fast_meter_", False)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:32s} {v:.1f}" if isinstance(v, float) else f"{k:32s} {v}")


if __name__ == "__main__":
    main()
