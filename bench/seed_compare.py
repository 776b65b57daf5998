#!/usr/bin/env python3
"""Markdown tables from nginx_bench.py --json files, side by side (e.g. before and after a change):
per matrix cell, each mode's ratio to "off" as median [min-max] over its pairs, with the pairs'
count and failed measurements; for --decay files, each round's ratio and the bridge's flows.

    bench/seed_compare.py before=/tmp/before.json after=/tmp/after.json
"""
import json
import sys
from statistics import median

MODES = ["address", "process", "attribution", "ids"]


def cell(e):
    if e is None:
        return ""
    if "ratio_median" not in e:
        return f"no result ({e.get('errors', 0)} failed)"
    s = f"{e['ratio_median']:.2f} [{e['ratio_min']:.2f}–{e['ratio_max']:.2f}]"
    if e.get("pairs", 0) < 3:
        s += f" ({e['pairs']} pair{'s' if e['pairs'] != 1 else ''})"
    if e.get("errors"):
        s += f", {e['errors']} failed"
    return s


def matrix(runs):
    modes = [m for m in MODES if any(e["mode"] == m for _, d in runs for e in d["summary"])]
    keys = sorted({(e["direction"], e["sockets"], e["concurrency"]) for _, d in runs for e in d["summary"]},
                  key=lambda k: (k[0] != "in", k[1], k[2]))
    head = ["direction", "idle sockets", "-c", "off req/s (" + ", ".join(n for n, _ in runs) + ")"]
    head += [f"{m} ({n})" for m in modes for n, _ in runs]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for k in keys:
        def find(d, mode):
            return next((e for e in d["summary"] if (e["direction"], e["sockets"], e["concurrency"], e["mode"])
                         == k + (mode,)), None)
        offs = [find(d, "off") for _, d in runs]
        row = ["inbound" if k[0] == "in" else "outbound", f"{k[1]:,}", str(k[2]),
               " / ".join(f"{o['rps_median']:,.0f}" if o and o.get("count") else "–" for o in offs)]
        row += [cell(find(d, m)) for m in modes for _, d in runs]
        print("| " + " | ".join(row) + " |")


def ct(f):
    return f"{f['conntrack']:,}" if f.get("conntrack") is not None else "–"


def decay(name, d):
    """d["flows"]: one entry per mode and round (round -1: before the first)."""
    print(f"\n{name}:\n\n| mode | round | req/s | ratio to off: median [min–max] | flows on the bridge after "
          "| conntrack entries after |\n|---|---|---|---|---|---|")
    for mode in MODES:
        xs = []
        for f in (f for f in d["flows"] if f["mode"] == mode):
            if f["round"] == "stop":
                print(f"| {mode} | cell stopped: cellwalld answers again after | {f['busy_s']:.1f} s | | | |")
            elif f["round"] < 0:
                print(f"| {mode} | before | | | {f['flows']:,} | {ct(f)} |")
            elif f.get("ratio") is None:
                print(f"| {mode} | {f['round'] + 1} | failed | | {f['flows']:,} | {ct(f)} |")
            else:
                xs.append(f["ratio"])
                print(f"| {mode} | {f['round'] + 1} | {f['rps']:,.0f} | {f['ratio']:.2f} [{min(f['ratios']):.2f}–"
                      f"{max(f['ratios']):.2f}] | {f['flows']:,} | {ct(f)} |")
        if xs:
            print(f"| {mode} | last / first | | **{xs[-1] / xs[0]:.2f}** | | |")
        if len(xs) >= 6:
            print(f"| {mode} | median of last 3 / of first 3 | | **{median(xs[-3:]) / median(xs[:3]):.2f}** | | |")


def main():
    runs = []
    for a in sys.argv[1:]:
        name, _, path = a.rpartition("=")
        with open(path) as f:
            runs.append((name or path, json.load(f)))
    if not runs:
        sys.exit(__doc__)
    mat = [(n, d) for n, d in runs if not d.get("flows")]
    if mat:
        matrix(mat)
    for n, d in runs:
        if d.get("flows"):
            decay(n, d)


if __name__ == "__main__":
    main()
