#!/usr/bin/env python3
"""Checks cw-ofload's latency mode against a reference controller and an independent probe.

One controller runs for the whole check, pinned to core 0: ovs-testcontroller (Open vSwitch's
learning switch, package openvswitch-testcontroller; it answers each Packet-In with a
PACKET_OUT) or cw-bench-controller (cellwalld's SwitchServer and PacketPath, bench/README.md).
Against it the probes take turns, ROUNDS times, the order rotated each round (this VM's speed
drifts by 10-40 % over minutes, so only figures from the same round are compared). A probe is
NAME@CPU, the core it is pinned to (0 is the controller's own):

  before   a cw-ofload built before this check's change (--before PATH), if given
  epoll    cw-ofload --wait epoll
  block    cw-ofload --wait block (latency mode's default with one switch)
  busy     cw-ofload --wait busy
  ref      bench/ofload_ref.py: an independent switch in Python, blocking recv()

Each probe's p50 is divided by ref's on the same core in the same round.

Each probe is one switch with one Packet-In outstanding, complete on PACKET_OUT. Besides the
round-trip percentiles, the controller's and the probe's CPU time per round trip are read
from /proc/PID/task/*/schedstat (time on CPU, ns) over the middle of the measured window:
the controller's figure is its own cost, kernel work of its system calls included, measured
without any load generator's help.

    bench/ofload_check.py --controller testcontroller [--rounds 3] [--seconds 5] \
        [--before /tmp/ofload-before/cw-ofload] [--json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("CW_BUILD_DIR", ROOT / "build" / "release"))
LOAD = BUILD / "bench" / "ofload" / "cw-ofload"
BENCH_CTL = BUILD / "bench" / "ofcontroller" / "cw-bench-controller"
REF = ROOT / "bench" / "ofload_ref.py"
SETTLE_S = 0.5
WARMUP_S = 1.0


def cpu_ns(pid):
    """Time on CPU of every thread of `pid`, in ns (first field of schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def start_controller(kind, port, tmp):
    if kind == "testcontroller":
        exe = shutil.which("ovs-testcontroller")
        if not exe:
            sys.exit("ofload_check: ovs-testcontroller not found (apt-get install openvswitch-testcontroller)")
        cmd = [exe, "-O", "OpenFlow13", f"ptcp:{port}:127.0.0.1", "--no-chdir", "-vconsole:off",
               f"--unixctl={tmp}/testcontroller.ctl"]
    else:
        cmd = [str(BENCH_CTL), "--port", str(port), "--threads", "1"]
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    if proc.poll() is not None:
        sys.exit(f"ofload_check: the controller exited at start: {' '.join(cmd)}")
    return proc, cmd


def probe_command(name, port, seconds, before):
    target = f"127.0.0.1:{port}"
    if name == "ref":
        return [sys.executable, str(REF), "--controller", target, "--seconds", str(seconds),
                "--warmup", str(WARMUP_S), "--settle", str(SETTLE_S)]
    exe = before if name == "before" else str(LOAD)
    cmd = [exe, "--controller", target, "--mode", "latency", "--switches", "1", "--ports", "4",
           "--seconds", str(seconds), "--warmup", str(WARMUP_S), "--settle-ms", str(int(SETTLE_S * 1000)),
           "--complete-on", "packet_out", "--src-ip-step", "0.0.0.1", "--dst-ip", "93.184.216.34",
           "--dst-port", "443", "--json"]
    if name != "before":
        cmd += ["--wait", name]
    return cmd


def run_probe(cmd, cpu, ctl_pid, seconds):
    """Runs one probe on core `cpu`; returns its JSON plus CPU per round trip of both sides."""
    proc = subprocess.Popen(["taskset", "-c", cpu] + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    sample = {}

    def sampler():
        # The measured window starts after the handshake, the settle time and the warmup;
        # sample its middle, away from both ends.
        time.sleep(SETTLE_S + WARMUP_S + 1.0)
        t0, c0, g0 = time.monotonic(), cpu_ns(ctl_pid), cpu_ns(proc.pid)
        time.sleep(max(seconds - 2.0, 1.0))
        t1, c1, g1 = time.monotonic(), cpu_ns(ctl_pid), cpu_ns(proc.pid)
        sample.update(dt=t1 - t0, ctl=c1 - c0, gen=g1 - g0)

    th = threading.Thread(target=sampler)
    th.start()
    out, err = proc.communicate(timeout=seconds + 60)
    th.join()
    if proc.returncode != 0:
        sys.exit(f"ofload_check: {' '.join(cmd)} failed ({proc.returncode}): {err.strip()}")
    r = json.loads(out.strip().splitlines()[-1])
    rate = r["setups_per_sec"]
    if sample and rate > 0:
        r["ctl_cpu_us"] = sample["ctl"] / sample["dt"] / rate / 1000
        r["gen_cpu_us"] = sample["gen"] / sample["dt"] / rate / 1000
    return r


def main():
    ap = argparse.ArgumentParser(description="cw-ofload latency mode vs an independent probe")
    ap.add_argument("--controller", choices=["testcontroller", "bench"], default="testcontroller")
    ap.add_argument("--port", type=int, default=16653)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--before", help="a cw-ofload built before the change, run as probe 'before'")
    ap.add_argument("--probes", default="before@1,epoll@1,block@1,busy@1,ref@1,before@0,block@0,ref@0")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = [n for n in args.probes.split(",") if not n.startswith("before") or args.before]

    rows = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="cw-ofload-check-") as tmp:
        ctl, ctl_cmd = start_controller(args.controller, args.port, tmp)
        try:
            for rnd in range(args.rounds):
                order = names[rnd % len(names):] + names[:rnd % len(names)]
                for name in order:
                    kind, _, cpu = name.partition("@")
                    r = run_probe(probe_command(kind, args.port, args.seconds, args.before), cpu or "1",
                                  ctl.pid, args.seconds)
                    r["round"] = rnd
                    rows[name].append(r)
                    print(f"round {rnd} {name:8s} p50 {r['p50_us']:7.1f}  p90 {r['p90_us']:7.1f}  "
                          f"p99 {r['p99_us']:7.1f}  "
                          f"mean {r['mean_us']:7.1f} us  {r['setups_per_sec']:8.0f}/s  "
                          f"cpu/rt ctl {r.get('ctl_cpu_us', 0):5.1f} gen {r.get('gen_cpu_us', 0):5.1f} us",
                          file=sys.stderr, flush=True)
        finally:
            ctl.terminate()
            ctl.wait(timeout=30)

    summary = {"controller": " ".join(["taskset", "-c", "0"] + ctl_cmd), "probes": {}}
    for name in names:
        rs = rows[name]
        s = {k: statistics.median(r[k] for r in rs) for k in ("p50_us", "p90_us", "p99_us", "mean_us", "setups_per_sec")}
        for k in ("ctl_cpu_us", "gen_cpu_us"):
            if all(k in r for r in rs):
                s[k] = statistics.median(r[k] for r in rs)
        ref_name = "ref@" + (name.partition("@")[2] or "1")
        if ref_name in rows and name != ref_name:
            # Same-round ratios only: the VM's drift cancels within a round.
            ratios = [r["p50_us"] / ref["p50_us"] for r, ref in zip(rs, rows[ref_name])]
            s["p50_vs_ref"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
        s["runs"] = rs
        summary["probes"][name] = s
    if args.json:
        print(json.dumps(summary))
        return
    print(f"controller: {summary['controller']}")
    print(f"{'probe':9s} {'p50 us':>7s} {'p90 us':>7s} {'p99 us':>7s} {'mean':>7s} {'p50/ref (min-max)':>20s} "
          f"{'ctl cpu/rt':>10s} {'gen cpu/rt':>10s}")
    for name, s in summary["probes"].items():
        vs = s.get("p50_vs_ref")
        vs_text = f"{vs['median']:.2f} ({vs['min']:.2f}-{vs['max']:.2f})" if vs else "1"
        print(f"{name:9s} {s['p50_us']:7.1f} {s['p90_us']:7.1f} {s['p99_us']:7.1f} {s['mean_us']:7.1f} {vs_text:>20s} "
              f"{s.get('ctl_cpu_us', 0):10.1f} {s.get('gen_cpu_us', 0):10.1f}")


if __name__ == "__main__":
    main()
