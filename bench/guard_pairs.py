#!/usr/bin/env python3
"""The port-scan guard's flow-setup rate against the rate without scripts, through the OpenFlow
channel (bench/script_setups.py's set-up: cw-bench-controller on core 0, cw-ofload playing 16
switches on core 1), measured in back-to-back pairs: this VM's speed drifts by 10-40 % over
minutes, a pair's ratio much less.

    bench/guard_pairs.py [--pairs 5] [--seconds 3]
"""
import argparse
import statistics

import script_setups


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3)
    args = ap.parse_args()
    guard = ["--script", str(script_setups.ROOT / "lua" / "portscan_guard.lua"), "--script-setting", "hosts=1000000"]
    ratios = []
    for _ in range(args.pairs):
        none = script_setups.run([], "throughput", args.seconds)["setups_per_sec"]
        with_guard = script_setups.run(guard, "throughput", args.seconds)["setups_per_sec"]
        ratios.append(with_guard / none)
        print(f"none {none:9.0f}/s   guard {with_guard:9.0f}/s   ratio {ratios[-1]:.3f}", flush=True)
    print(f"ratio: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}")


if __name__ == "__main__":
    main()
