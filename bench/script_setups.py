#!/usr/bin/env python3
"""Flow setups/s and latency through cellwalld's OpenFlow channel and Packet-In path with 0, 1
and 10 scripts loaded and with the shipped port-scan guard (issue 5). cw-bench-controller (the
daemon's SwitchServer + PacketPath + ScriptHost) on core 0, cw-ofload playing 16 switches on
core 1, as in bench/RESULTS.md section 1. Configurations are interleaved, ROUNDS times, and the
median is reported: this VM's speed drifts by 10-40 % over minutes.

    bench/script_setups.py [--rounds 3] [--seconds 5] [--json]
"""
import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "release"
CTL = BUILD / "bench" / "ofcontroller" / "cw-bench-controller"
LOAD = BUILD / "bench" / "ofload" / "cw-ofload"
TYPICAL = "function on_packet(pkt) if pkt.port_dst == 23 then return 'drop' end end\n"


def run(script_args, mode, seconds, port=16700):
    ctl = subprocess.Popen(["taskset", "-c", "0", str(CTL), "--port", str(port), "--threads", "1"] + script_args,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        common = ["--controller", f"127.0.0.1:{port}", "--seconds", str(seconds), "--warmup", "1",
                  "--src-ip-step", "0.0.0.1", "--dst-ip", "93.184.216.34", "--dst-port", "443", "--json"]
        if mode == "throughput":
            extra = ["--mode", "throughput", "--switches", "16", "--ports", "4", "--window", "64"]
        else:
            extra = ["--mode", "latency", "--switches", "1", "--ports", "4"]
        out = subprocess.run(["taskset", "-c", "1", str(LOAD)] + extra + common, capture_output=True, text=True,
                             timeout=seconds + 60).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        ctl.terminate()
        ctl.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        typical = Path(tmp, "typical.lua")
        typical.write_text(TYPICAL)
        configs = {
            "0 scripts": [],
            "1 script": ["--script", str(typical)],
            "10 scripts": sum([["--script", str(typical)] for _ in range(10)], []),
            # Host limit raised: this load is 64 cells each opening connections to one host.
            "port-scan guard": ["--script", str(ROOT / "lua" / "portscan_guard.lua"),
                                "--script-setting", "hosts=1000000"],
        }
        res = {name: {"setups_per_s": [], "lat_p50_us": [], "lat_p90_us": []} for name in configs}
        for _ in range(args.rounds):
            for name, sargs in configs.items():
                t = run(sargs, "throughput", args.seconds)
                res[name]["setups_per_s"].append(t["setups_per_sec"])
                lat = run(sargs, "latency", args.seconds)
                res[name]["lat_p50_us"].append(lat["p50_us"])
                res[name]["lat_p90_us"].append(lat["p90_us"])
    out = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in res.items()}
    base = out["0 scripts"]["setups_per_s"]
    for r in out.values():
        r["rate_vs_no_scripts"] = r["setups_per_s"] / base
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{'':18s} {'setups/s':>10s} {'vs none':>8s} {'p50 µs':>8s} {'p90 µs':>8s}")
        for name, r in out.items():
            print(f"{name:18s} {r['setups_per_s']:10.0f} {r['rate_vs_no_scripts']:8.2f} "
                  f"{r['lat_p50_us']:8.1f} {r['lat_p90_us']:8.1f}")


if __name__ == "__main__":
    main()
