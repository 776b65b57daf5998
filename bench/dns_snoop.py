#!/usr/bin/env python3
"""What DNS snooping costs a DNS-heavy workload (root; real cell, OVS, cellwalld, dnsmasq).

A cell sends N queries to its environment's resolver, each from a new UDP socket (as glibc
does), for a name the resolver has cached, and times each answer. Three runs, interleaved:
  static  : a static flow pair for DNS on the bridge, no copy to the controller;
  snooped : the same static pair, the answer direction also copied to the controller (what
            cellwall's resolver-answer flows do), so the controller parses every answer;
  cellwall: cellwall's own path for a cell that may resolve any name (resolve = "any"): its
            static resolver flows, the answer snooped;
  checked : cellwall's path for a cell whose names are checked (resolve = "rules", a rule
            naming the name): every query goes to the controller, which forwards it by
            Packet-Out (docs/dns.md), the answer snooped.
snooped vs static is the cost of snooping; checked vs cellwall the cost of checking names.
    sudo bench/dns_snoop.py [--queries N] [--json]
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import TESTHOST_IP, sh  # noqa: E402
from netbench import bench_cell, pct  # noqa: E402

QUERIES = r"""
import random, socket, struct, sys, time
server, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
out = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    qid = random.randrange(65536)
    t0 = time.perf_counter_ns()
    s.sendto(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q, (server, 53))
    try:
        s.recvfrom(2048)
        out.append((time.perf_counter_ns() - t0) / 1000.0)
    except socket.timeout:
        out.append(2e6)
    s.close()
print(" ".join("%.1f" % x for x in out))
"""

PRIO_STATIC = 3000  # above cellwall's per-connection flows (1000)

ANY = f'default = "deny"\nresolve = "any"\n[[allow]]\nproto = "tcp"\nto = "{TESTHOST_IP}"\n'
CHECKED = 'default = "deny"\n[[allow]]\nproto = "tcp"\nhosts = "test.example"\n'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with bench_cell([]) as (d, cell):
        gw_port = sh(["ovs-vsctl", f"--db=unix:{d.state}/ovs/db.sock", "get", "Interface",
                      "cw-g-default", "ofport"]).stdout.strip()
        ofctl = ["ovs-ofctl", "-O", "OpenFlow13"]
        target = f"unix:{d.state}/ovs/cw-br0.mgmt"
        gw_ip = cell["ip"].rsplit(".", 2)[0] + ".0.1"

        def static(copy):
            unstatic()
            sh(ofctl + ["add-flow", target, f"table=2,cookie=0xcafe,priority={PRIO_STATIC},udp,"
                        f"in_port={cell['port']},nw_dst={gw_ip},tp_dst=53,actions=output:{gw_port}"])
            answer = f"output:{cell['port']}" + (",controller" if copy else "")
            # The copy carries cellwall's dns-answer cookie for this cell, as its own
            # resolver-answer flows do, so the controller snoops it and decides nothing.
            cookie = (0x04 << 56) | (int(cell["id"]) << 32) | 0xcafe
            sh(ofctl + ["add-flow", target, f"table=2,cookie={cookie:#x},priority={PRIO_STATIC},udp,"
                        f"in_port={gw_port},nw_src={gw_ip},tp_src=53,nw_dst={cell['ip']},"
                        f"actions={answer}"])

        def unstatic():
            sh(ofctl + ["del-flows", target, "table=2,cookie=0xcafe/0xffffffff"])

        def run(n):
            r = sh(["ip", "netns", "exec", cell["netns"], "/usr/bin/python3", "-c", QUERIES, gw_ip,
                    "test.example", str(n)], timeout=600)
            return [float(x) for x in r.stdout.split()]

        def policy(text):
            # Importing switches the running cell's resolver flows (docs/dns.md).
            pf = Path(d.state, "bench-dns.toml")
            pf.write_text(text)
            d.cli("rules", "import", "--app", "bench", str(pf))
            time.sleep(0.3)

        res = {"static": [], "snooped": [], "cellwall": [], "checked": []}
        policy(ANY)
        run(50)  # warm the resolver's cache and the datapath
        for _ in range(4):
            static(False)
            res["static"] += run(args.queries // 4)
            static(True)
            res["snooped"] += run(args.queries // 4)
            unstatic()
            res["cellwall"] += run(args.queries // 4)
            policy(CHECKED)
            res["checked"] += run(args.queries // 4)
            policy(ANY)
        answers = [l for l in d.cli("status").stdout.splitlines() if l.startswith("dns answers")]
    out = {"queries_per_path": args.queries}
    for k, v in res.items():
        out[f"{k}_p50_us"] = pct(v, 50)
        out[f"{k}_p90_us"] = pct(v, 90)
        out[f"{k}_p99_us"] = pct(v, 99)
    out["snooping_overhead_p50_pct"] = 100.0 * (out["snooped_p50_us"] / out["static_p50_us"] - 1)
    out["cellwall_overhead_p50_pct"] = 100.0 * (out["cellwall_p50_us"] / out["static_p50_us"] - 1)
    out["checking_overhead_p50_pct"] = 100.0 * (out["checked_p50_us"] / out["cellwall_p50_us"] - 1)
    out["controller_status"] = answers[0] if answers else ""
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:32s} {v:.1f}" if isinstance(v, float) else f"{k:32s} {v}")


if __name__ == "__main__":
    main()
