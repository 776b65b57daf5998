#!/usr/bin/env python3
"""VM cells (issue 8; targets with KVM: start to command <= 300 ms, <= 64 MiB host memory per
idle VM cell): how long `cellwall run --vm` takes until the command runs, and what an idle VM
cell costs in host memory. A namespace cell's start is measured alongside, as the reference.

One cellwalld (the end-to-end tests' fixture: a test-host namespace as the uplink), then:
- start to command, --runs times per backend: from just before `cellwall run` is started to the
  moment the command's first line ("started") reaches the launcher's stdout; and the guest
  kernel's uptime at that moment (/proc/uptime inside the guest: how much is the guest's boot);
  and start to exit (the VM powered off, the cell removed);
- memory, --runs times per --vm-memory size: a VM cell running `sleep`, 3 s after its command
  started: the VMM's RSS and PSS (/proc/PID/smaps_rollup) and the cell cgroup's memory.current.

KVM is used when /dev/kvm works (cellwall picks it); the report says which ran.

Root; takes /tmp/cw-e2e.lock (the end-to-end tests use the same names); everything it makes
carries cw- and is removed at the end, also on failure.

    flock /tmp/cw-e2e.lock /usr/bin/python3 bench/vm_bench.py [--runs 5] [--memory 256,128] [--json FILE]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import CELLWALL, Daemon, TestHost, cell_cgroups, leftovers, sh  # noqa: E402

POLICY = 'default = "deny"\n'


def run_argv(d, app, vm, memory=None):
    pf = Path(d.state, f"{app}.toml")
    pf.write_text(POLICY)
    argv = [str(CELLWALL), "--state-dir", d.state, "run"]
    if vm:
        argv += ["--vm"] + (["--vm-memory", str(memory)] if memory else [])
    return argv + ["--app", app, "--policy", str(pf), "--user", "nobody", "--"]


def start_to_command(d, vm):
    """(seconds to the command's first line, guest uptime then or None, seconds to exit)."""
    t0 = time.monotonic()
    p = subprocess.Popen(run_argv(d, "bench", vm) + ["/bin/sh", "-c", "echo started; cat /proc/uptime"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    t_cmd = time.monotonic() - t0
    rest, err = p.communicate(timeout=300)
    t_end = time.monotonic() - t0
    if first.strip() != "started" or p.returncode != 0:
        raise RuntimeError(f"run failed ({p.returncode}): {first}{rest}{err}")
    uptime = float(rest.split()[0]) if vm else None
    return t_cmd, uptime, t_end


def vmm_pid():
    out = sh(["pgrep", "-f", "name=cw.ctl"], check=False).stdout.split()
    if len(out) != 1:
        raise RuntimeError(f"expected one VMM, found {out}")
    return int(out[0])


def idle_memory(d, memory):
    """(VMM RSS MiB, VMM PSS MiB, cell cgroup memory.current MiB) of an idle VM cell."""
    p = subprocess.Popen(run_argv(d, "idle", True, memory) + ["/bin/sh", "-c", "echo up; exec sleep 600"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if p.stdout.readline().strip() != "up":
            raise RuntimeError("the idle VM cell did not start: " + p.stderr.read())
        time.sleep(3)
        pid = vmm_pid()
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            k, v = line.split(":")
            fields[k] = int(v.split()[0])
        cgs = cell_cgroups()
        cg = int(Path(cgs[0], "memory.current").read_text()) if len(cgs) == 1 and \
            Path(cgs[0], "memory.current").exists() else None
        return fields["Rss"] / 1024, fields["Pss"] / 1024, (cg / 2**20 if cg is not None else None)
    finally:
        p.terminate()
        p.wait(timeout=60)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--memory", default="256,128", help="--vm-memory sizes (MiB) for the memory runs")
    ap.add_argument("--json")
    args = ap.parse_args()
    accel = "kvm" if os.path.exists("/dev/kvm") else "tcg"
    th = TestHost()
    d = Daemon(th)
    result = {"accel": accel, "runs": args.runs}
    try:
        d.start()
        th.start_servers()
        for backend in ("netns", "vm"):
            samples = [start_to_command(d, backend == "vm") for _ in range(args.runs)]
            result[backend] = {"to_command_s": med([s[0] for s in samples]),
                               "to_command_all": [round(s[0], 3) for s in samples],
                               "guest_uptime_s": med([s[1] for s in samples]),
                               "to_exit_s": med([s[2] for s in samples])}
            print(backend, json.dumps(result[backend]), flush=True)
        result["memory"] = {}
        for m in [int(x) for x in args.memory.split(",")]:
            samples = [idle_memory(d, m) for _ in range(args.runs)]
            result["memory"][m] = {"rss_mib": med([s[0] for s in samples]), "pss_mib": med([s[1] for s in samples]),
                                   "cgroup_mib": med([s[2] for s in samples]),
                                   "rss_all": [round(s[0], 1) for s in samples]}
            print("memory", m, json.dumps(result["memory"][m]), flush=True)
    finally:
        d.stop()
        ns, ls, procs = leftovers()
        if ns or ls or procs:
            d.force_cleanup()
        shutil.rmtree(d.state, ignore_errors=True)
        th.close()
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
