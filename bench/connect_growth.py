#!/usr/bin/env python3
"""How first-packet latency through cellwalld grows with the number of live connections.

Opens 8 rounds of 250 connections from one cell (each a new flow pair), printing the connect
p50/p90 and the bridge's flow count after each round, then waits for the datapath's flow cache
to expire (10 s idle) and measures once more. Root; uses the end-to-end fixtures.
    sudo /usr/bin/python3 bench/connect_growth.py
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netbench as nb  # noqa: E402


def main():
    with nb.bench_cell([["/usr/bin/python3", "-c", nb.ACCEPT, "9001"]]) as (d, cell):
        for r in range(8):
            xs = nb.connect_times(cell, 9001, 250)
            flows = len(d.cli("flows").stdout.splitlines())
            print(f"round {r}: p50 {nb.pct(xs, 50):.0f} us  p90 {nb.pct(xs, 90):.0f} us  "
                  f"OpenFlow flows {flows}", flush=True)
        time.sleep(12)
        xs = nb.connect_times(cell, 9001, 250)
        print(f"after 12 s idle: p50 {nb.pct(xs, 50):.0f} us  p90 {nb.pct(xs, 90):.0f} us", flush=True)


if __name__ == "__main__":
    main()
