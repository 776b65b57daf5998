#!/usr/bin/env python3
"""Does the IDS keep up? (issue 6 target: 1 Gbit/s of egress on one core.)

A cell watched by the IDS sends to the test host with iperf3 (TCP, one stream) for S seconds
through cellwall's per-connection flows, whose copies go to the IDS port. Reported: iperf3's
throughput, what the IDS inspected (frames, bytes, ring drops: `cellwall status`), and the
CPU time of the IDS's reader thread (the thread named cw-ids in cellwalld), from which the
rate one core of it could inspect follows: inspected bits / its CPU seconds.

The same run without --ids gives the data path's own throughput for comparison.
    sudo flock /tmp/cw-e2e.lock bench/ids_net.py [--seconds S] [--rules FILE] [--json]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import TESTHOST_IP, sh  # noqa: E402
from netbench import bench_cell  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid, name):
    """CPU seconds of the threads of `pid` named `name`."""
    total = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (t / "comm").read_text().strip() != name:
                continue
            f = (t / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])  # utime, stime
        except OSError:
            pass
    return total / TICK


def ids_status(d):
    for line in d.cli("status").stdout.splitlines():
        if line.startswith("ids "):
            return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    return {}


def run(extra_args, seconds):
    with bench_cell([["iperf3", "-s", "-p", "5201"]], extra_args) as (d, cell):
        before = ids_status(d)
        cpu0 = thread_cpu(d.proc.pid, "cw-ids")
        r = sh(["ip", "netns", "exec", cell["netns"], "iperf3", "-c", TESTHOST_IP, "-p", "5201", "-t",
                str(seconds), "-J"], timeout=seconds + 60)
        time.sleep(0.5)  # the reader's last stats
        after = ids_status(d)
        cpu = thread_cpu(d.proc.pid, "cw-ids") - cpu0
        gbps = json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
        out = {"iperf3_gbps": round(gbps, 3)}
        if after:
            inspected = after["bytes"] - before.get("bytes", 0)
            out.update({
                "ids_frames": after["frames"] - before.get("frames", 0),
                "ids_bytes": inspected,
                "ring_drops": after["ring_drops"] - before.get("ring_drops", 0),
                "ids_cpu_s": round(cpu, 2),
                "inspected_gbps": round(inspected * 8 / seconds / 1e9, 3),
                "one_core_gbps": round(inspected * 8 / cpu / 1e9, 2) if cpu > 0 else None,
            })
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rules", help="IDS rules file (default: the shipped rules)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ids_args = ["--ids"] + (["--ids-rules", args.rules] if args.rules else [])
    results = {"without_ids": run([], args.seconds), "with_ids": run(ids_args, args.seconds)}
    if args.json:
        print(json.dumps(results))
    else:
        for k, v in results.items():
            print(k, " ".join(f"{a}={b}" for a, b in v.items()))


if __name__ == "__main__":
    main()
