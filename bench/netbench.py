#!/usr/bin/env python3
"""Data-path benchmarks through a real cell (root; real Open vSwitch, namespaces, iperf3).

1. TCP connect latency from a cell to the test host: every connect is a new connection whose
   first packet goes through cellwall (dynamic), against the same bridge with a static allow
   flow for another port (static), in interleaved blocks. The difference is cellwall's share of
   a connect. `--rule address` allows by address (a rule the switch can decide alone);
   `--rule process` names the connecting process, so the controller decides (attribution,
   then policy). The connects run in a process of the cell itself (bench/cell_jobs.py), so
   they are attributed as any app's.
2. iperf3 throughput cell -> test host, TCP and UDP (unlimited rate), with TX checksum
   offload on as cellwall leaves it: through cellwall's flows against the same bridge with a
   static allow flow, interleaved in --pairs A/B pairs; and TCP over a plain veth pair between
   two namespaces.

Uses the end-to-end fixtures (tests/e2e/conftest.py): a test host namespace as the uplink,
cellwalld with its own state directory, everything removed at the end.
    sudo bench/netbench.py [--connects N] [--blocks B] [--rule address|process] [--connect-only]
        [--seconds S] [--pairs N] [--json]
"""
import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import TESTHOST_IP, Daemon, TestHost, sh  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cell_jobs import CellJobs  # noqa: E402

CONNECT = """
import socket, sys, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    s = socket.socket()
    t0 = time.perf_counter_ns()
    s.connect((ip, port))
    out.append((time.perf_counter_ns() - t0) / 1000.0)
    s.close()
print(" ".join("%.1f" % x for x in out))
"""
ACCEPT = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def connect_times(cell, port, n):
    r = sh(["ip", "netns", "exec", cell["netns"], "/usr/bin/python3", "-c", CONNECT, TESTHOST_IP,
            str(port), str(n)], timeout=300)
    return [float(x) for x in r.stdout.split()]


def iperf(cell_ns, port, seconds, udp=False):
    """Gbit/s the test host received (UDP: what the sender sent less what was lost)."""
    r = sh(["ip", "netns", "exec", cell_ns, "iperf3", "-c", TESTHOST_IP, "-p", str(port), "-t",
            str(seconds), "-J"] + (["-u", "-b", "0", "-l", "1400"] if udp else []), timeout=seconds + 30)
    end = json.loads(r.stdout)["end"]
    if not udp:
        return end["sum_received"]["bits_per_second"] / 1e9
    total = end["sum"]
    return total["bits_per_second"] * (1 - total["lost_percent"] / 100.0) / 1e9


def plain_veth(seconds):
    a, b = "cw-bv-a", "cw-bv-b"
    try:
        for ns in (a, b):
            sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "add", "cw-bv0", "netns", a, "type", "veth", "peer", "cw-bv1", "netns", b])
        sh(["ip", "-n", a, "addr", "add", "10.251.0.1/24", "dev", "cw-bv0"])
        sh(["ip", "-n", b, "addr", "add", "10.251.0.2/24", "dev", "cw-bv1"])
        for ns, dev in ((a, "cw-bv0"), (b, "cw-bv1")):
            sh(["ip", "-n", ns, "link", "set", dev, "up"])
        srv = subprocess.Popen(["ip", "netns", "exec", b, "iperf3", "-s", "-1", "-p", "5210"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        r = sh(["ip", "netns", "exec", a, "iperf3", "-c", "10.251.0.2", "-p", "5210", "-t",
                str(seconds), "-J"], timeout=seconds + 30)
        srv.wait(timeout=10)
        return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        for ns in (a, b):
            sh(["ip", "netns", "del", ns], check=False)


@contextlib.contextmanager
def bench_cell(servers, daemon_args=(), policy=None, command=("sleep", "3600")):
    """cellwalld (with `daemon_args`), the test host running `servers` (argv lists), and one
    cell running `command`, allowed by `policy` (default: any TCP to the test host); yields
    (daemon, cell). Everything is removed afterwards."""
    th = TestHost()
    d = Daemon(th, daemon_args)
    cell_proc = None
    procs = []
    try:
        d.start()
        th.start_servers()
        procs = [th.spawn(argv) for argv in servers]
        time.sleep(0.5)
        policy = policy or f'default = "deny"\n[[allow]]\nproto = "tcp"\nto = "{TESTHOST_IP}"\n'
        cell_proc, cell = d.start_cell(policy, list(command), app="bench")
        yield d, cell
    finally:
        if cell_proc:
            cell_proc.terminate()
            cell_proc.wait(timeout=30)
        for p in procs:
            p.kill()
            p.wait()
        d.stop()
        th.close()
        shutil.rmtree(d.state, ignore_errors=True)


def policy_for(rule):
    """Anything to the test host: by address (the switch can decide it alone), or naming the
    measuring process (the controller decides: attribution, then policy)."""
    process = '\nprocess = "python3"' if rule == "process" else ""
    return f'default = "deny"\n[[allow]]\nto = "{TESTHOST_IP}"{process}\n'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connects", type=int, default=2000)
    ap.add_argument("--blocks", type=int, default=4, help="connect blocks per path, interleaved; the extra "
                    "latency is also given per pair of blocks")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ovs-other-config", action="append", default=[], metavar="KEY=VALUE",
                    help="set Open_vSwitch other_config:KEY=VALUE before measuring (tuning experiments)")
    ap.add_argument("--connect-only", action="store_true", help="skip the throughput part")
    ap.add_argument("--pairs", type=int, default=3, help="interleaved cellwall/static throughput pairs")
    ap.add_argument("--rule", choices=("address", "process"), default="address",
                    help="the cell's allow rule: by address, or naming the process (the controller decides)")
    ap.add_argument("--static-table", type=int, default=2, help="table of the static flows: where cellwall's "
                    "connection handling starts")
    args = ap.parse_args()

    servers = [["/usr/bin/python3", "-c", ACCEPT, str(port)] for port in (9000, 9001)]
    servers += [["iperf3", "-s", "-p", str(port)] for port in (5201, 5202)]
    tmp = tempfile.mkdtemp(prefix="cw-netbench-")
    os.chmod(tmp, 0o755)
    jobs = CellJobs(tmp)
    try:
        with bench_cell(servers, policy=policy_for(args.rule), command=jobs.command()) as (d, cell):
            run(d, cell, jobs, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def connect_times_in_cell(jobs, port, n):
    """Connects from a process of the cell itself (attributed like any of the cell's)."""
    rc, out, err = jobs.run(["/usr/bin/python3", "-c", CONNECT, TESTHOST_IP, str(port), str(n)], timeout=300)
    if rc != 0:
        raise RuntimeError(f"connects from the cell failed ({rc}): {err[-1000:]}")
    return [float(x) for x in out.split()]


def run(d, cell, jobs, args):
    gw_port = sh(["ovs-vsctl", f"--db=unix:{d.state}/ovs/db.sock", "get", "Interface",
                  "cw-g-default", "ofport"]).stdout.strip()
    ofctl = ["ovs-ofctl", "-O", "OpenFlow13"]
    target = f"unix:{d.state}/ovs/cw-br0.mgmt"
    for kv in args.ovs_other_config:
        sh(["ovs-vsctl", f"--db=unix:{d.state}/ovs/db.sock", "set", "Open_vSwitch", ".",
            f"other_config:{kv}"])
    # Static allow flows for ports 9000 and 5202 only: the same bridge, no controller; above
    # everything cellwall installs where its connection handling starts.
    for proto, port in (("tcp", 9000), ("tcp", 5202), ("udp", 5202)):
        sh(ofctl + ["add-flow", target, f"table={args.static_table},priority=60000,{proto},in_port={cell['port']},"
                    f"nw_dst={TESTHOST_IP},tp_dst={port},actions=output:{gw_port}"])
        sh(ofctl + ["add-flow", target, f"table={args.static_table},priority=60000,{proto},in_port={gw_port},"
                    f"nw_src={TESTHOST_IP},tp_src={port},nw_dst={cell['ip']},"
                    f"actions=output:{cell['port']}"])
    connect_times_in_cell(jobs, 9001, 50)  # warm up caches on both paths
    connect_times_in_cell(jobs, 9000, 50)
    dyn, sta, extra = [], [], []
    for b in range(args.blocks):  # interleaved, so drift affects both alike
        xs = {}
        for port in ((9001, 9000) if b % 2 == 0 else (9000, 9001)):
            xs[port] = connect_times_in_cell(jobs, port, args.connects // args.blocks)
        dyn += xs[9001]
        sta += xs[9000]
        extra.append(pct(xs[9001], 50) - pct(xs[9000], 50))
    res = {
        "rule": args.rule, "connects": len(dyn),
        "dynamic_p50_us": pct(dyn, 50), "dynamic_p90_us": pct(dyn, 90), "dynamic_p99_us": pct(dyn, 99),
        "static_p50_us": pct(sta, 50), "static_p90_us": pct(sta, 90), "static_p99_us": pct(sta, 99),
    }
    res["extra_p50_us"] = res["dynamic_p50_us"] - res["static_p50_us"]
    res["extra_mean_us"] = statistics.mean(dyn) - statistics.mean(sta)
    res["extra_p50_us_per_block_median"] = statistics.median(extra)
    res["extra_p50_us_per_block_min"] = min(extra)
    res["extra_p50_us_per_block_max"] = max(extra)
    if args.connect_only:
        return report(res, args.json)
    # As cellwall leaves them (docs/ovs.md, "Checksum offload"): the run says what it measured.
    res["tx_offload"] = {f"{ns}/{dev}": sh(["ip", "netns", "exec", ns, "ethtool", "-k", dev]).stdout
                         .split("tx-checksumming: ")[1].split()[0]
                         for ns, dev in ((cell["netns"], "eth0"), ("cw-g-default", "cwgw0"))}
    for proto in ("tcp", "udp"):
        dyn, sta = [], []
        for _ in range(args.pairs):  # interleaved A/B: drift hits both alike
            dyn.append(iperf(cell["netns"], 5201, args.seconds, udp=proto == "udp"))
            sta.append(iperf(cell["netns"], 5202, args.seconds, udp=proto == "udp"))
        res[f"iperf_{proto}_cellwall_gbps"] = dyn
        res[f"iperf_{proto}_static_gbps"] = sta
        res[f"iperf_{proto}_ratios"] = [a / b for a, b in zip(dyn, sta)]
        res[f"iperf_{proto}_median_ratio"] = statistics.median(dyn) / statistics.median(sta)
    res["iperf_plain_veth_gbps"] = plain_veth(args.seconds)
    report(res, args.json)


def report(res, as_json):
    if as_json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            if isinstance(v, list):
                v = " ".join(f"{x:.2f}" for x in v)
            print(f"{k:32s} {v:.2f}" if isinstance(v, float) else f"{k:32s} {v}")


if __name__ == "__main__":
    main()
