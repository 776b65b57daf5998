#!/usr/bin/env python3
"""Network environments' uplinks (issue 7): throughput, TCP connect latency and bring-up time per
uplink type, each against the same path set up by hand without cellwall.

Uses the two sites of the end-to-end tests (tests/e2e/sites.py): a local site (lan, also the
"internet router") and a remote site reachable only through its WireGuard or OpenVPN server,
both with a host 192.168.11.5. Each site's host runs an iperf3 server and a TCP accept loop.

Uplink types, and the baseline each is compared with:

  nat        cellwall: a cell in the "local" environment, whose uplink is a veth into the local
             site (kind "netns"; it stands for host NAT: nothing may route on the real host).
             bare: a ClientNs (a namespace with a veth into lan), no tunnel.
  wireguard  cellwall: a cell in the "remote" environment, uplink wireguard-go in the gateway
             over a netns carrier through lan. bare: a ClientNs with bare_wireguard_client (the
             same wireguard-go, the same file, set up by hand).
  openvpn    the same with openvpn and bare_openvpn_client.

A third path, "gateway", runs the same measurement from inside the environment's gateway
namespace: cellwall's own tunnel (or uplink) without the cell, the switch and the forwarding
hop, which tells the tunnel's cost from the switch's.

Measured from the cell's network namespace (ip netns exec: the packets take the cell's real
path, cell -> Open vSwitch -> gateway -> uplink or tunnel), from the gateway namespace and from
the client namespace:
- iperf3 TCP, one stream, --seconds each way (client sends; with -R the site's host sends);
- TCP connect latency: --connects connect() calls to the site's host, each a new connection
  (through cellwall every one is a flow setup by cellwalld, policy default allow).

The remote site's WireGuard server has one peer: the cellwall gateway and the bare client never
run at once. Each round starts one cellwalld per tunnel type (both environments), measures,
stops it, then measures the bare paths (or the other way round: the order alternates per round).

Bring-up, from every daemon start (rounds and --bringups extra starts per tunnel type), from the
daemon's log (millisecond timestamps): cellwalld builds the environments one after another,
in name order, and logs "environment 'X': gateway ... on port N" when X's gateway, uplink, tunnel
(WireGuard: configured and routed; OpenVPN: process started) and DNS forwarder are in place. A
throwaway first environment "boot" takes the bridge's own setup, so:
  gateway ready   = X's line - the previous environment's line;
  first packet    = a probe in X's gateway namespace (entered as soon as the namespace exists)
                    completes a TCP connect to the site's host: the tunnel really carries traffic;
  tunnel up (log) = OpenVPN only: "environment remote: tunnel cw-o-remote is up" (cellwalld's
                    supervisor saw the up script's record and routed through the tunnel; it
                    looks once a second) - the previous environment's line;
  connected       = OpenVPN only: when the up script wrote its record (openvpn connected).

Root; takes /tmp/cw-e2e.lock (end-to-end tests use the same names); everything it makes carries
cw- and is removed at the end, also on failure.

    flock /tmp/cw-e2e.lock /usr/bin/python3 bench/env_bench.py [--rounds 3] [--seconds 3]
        [--connects 200] [--bringups 1] [--no-reverse] [--json FILE]
"""
import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "tests" / "e2e"))
sys.path.insert(0, str(HERE))
from conftest import Daemon, leftovers, sh  # noqa: E402
from netbench import ACCEPT, CONNECT, pct  # noqa: E402
from nginx_bench import take_lock  # noqa: E402
from sites import HOST, ClientNs, Sites, bare_openvpn_client, bare_wireguard_client  # noqa: E402

POOL = "10.201.0.0/24"
IPERF_PORT = 5201
ACCEPT_PORT = 9000
ALLOW = 'default = "allow"\nenv = "{env}"\n'
TUNNELS = ("wireguard", "openvpn")
TYPES = ("nat",) + TUNNELS
PATHS = ("cellwall", "gateway", "bare")
ENV_OF = {"nat": "local", "wireguard": "remote", "openvpn": "remote"}
LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\] \[(\w+)\] (.*)$")
ENV_LINE = re.compile(r"^environment '([a-z0-9-]+)': gateway ")

# Enters namespace argv[1] as soon as it exists, then connects to argv[2]:argv[3] until a connect
# succeeds; prints the wall-clock times it entered and connected. Exit 1: no connect in argv[4] s.
PROBE = r"""
import ctypes, os, socket, sys, time
ns, ip, port, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
libc = ctypes.CDLL(None, use_errno=True)
end = time.time() + limit
entered = None
while time.time() < end and entered is None:
    try:
        fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    except FileNotFoundError:
        time.sleep(0.005)
        continue
    if libc.setns(fd, 0x40000000) == 0:   # CLONE_NEWNET; fails until ip has mounted it
        entered = time.time()
    os.close(fd)
    if entered is None:
        time.sleep(0.005)
while entered is not None and time.time() < end:
    s = socket.socket()
    s.settimeout(0.25)
    try:
        s.connect((ip, port))
        print("%.6f %.6f" % (entered, time.time()), flush=True)
        sys.exit(0)
    except OSError:
        pass
    finally:
        s.close()
    time.sleep(0.005)
sys.exit(1)
"""


def config(sites, kind, tunnel_file):
    """cellwalld.toml: boot and local (netns uplinks into lan), remote (`kind` over a netns
    carrier through lan). Environments are built in name order."""
    def env(name, n, uplink, dns):
        return (f"\n[env.{name}]\npool = \"{POOL}\"\n{dns}[env.{name}.uplink]\n{uplink}\n"
                f"netns = \"{sites.lan_ns}\"\naddress = \"10.254.{n}.2/30\"\npeer_address = \"10.254.{n}.1/30\"\n")
    dns = f'dns = ["{sites.LOCAL_DNS}"]\n'
    tunnel = f'kind = "{kind}"\nconfig = "{tunnel_file}"\ncarrier = "netns"'
    return env("boot", 2, 'kind = "netns"', dns) + env("local", 0, 'kind = "netns"', dns) + env("remote", 1, tunnel, "")


def wait_listening(ns, port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if f":{port} " in sh(["ip", "netns", "exec", ns, "ss", "-Hltn"], check=False).stdout:
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} in {ns}")


def start_servers(sites):
    for site, ns in (("local", sites.lan_ns), ("remote", sites.remote_ns)):
        sites.spawn(ns, ["iperf3", "-s", "-B", HOST, "-p", str(IPERF_PORT),
                         "--logfile", str(Path(sites.dir, f"iperf3-{site}.log"))])
        sites.spawn(ns, ["/usr/bin/python3", "-c", ACCEPT, str(ACCEPT_PORT), sites.tag])
        wait_listening(ns, IPERF_PORT)
        wait_listening(ns, ACCEPT_PORT)


def iperf(ns, seconds, reverse):
    argv = ["ip", "netns", "exec", ns, "iperf3", "-c", HOST, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"]
    r = sh(argv + (["-R"] if reverse else []), check=False, timeout=seconds + 60)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        raise RuntimeError(f"iperf3 in {ns}: {r.stderr.strip()} {r.stdout[-500:]}")
    if "error" in j:
        raise RuntimeError(f"iperf3 in {ns}: {j['error']}")
    return {"gbps": j["end"]["sum_received"]["bits_per_second"] / 1e9,
            "retransmits": j["end"]["sum_sent"].get("retransmits"),
            "mss": j["start"].get("tcp_mss_default")}


def connects(ns, n):
    r = sh(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", CONNECT, HOST, str(ACCEPT_PORT), str(n)],
           timeout=300)
    return [float(x) for x in r.stdout.split()]


def mtus(ns):
    out = sh(["ip", "-n", ns, "-j", "link", "show"], check=False).stdout
    return {l["ifname"]: l.get("mtu") for l in json.loads(out or "[]") if l["ifname"] != "lo"}


def measure(ns, args):
    connects(ns, 20)  # warm-up: ARP, the tunnel's handshake, the interpreter's caches
    res = {"connect_us": connects(ns, args.connects), "fwd": iperf(ns, args.seconds, False)}
    if args.reverse:
        res["rev"] = iperf(ns, args.seconds, True)
    res["mtu"] = mtus(ns)
    return res


def log_events(text):
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if m:
            out.append((datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f").timestamp(), m[3]))
    return out


def bring_up(d, kind, probes, timeout=40):
    """Waits for the remote environment's tunnel (OpenVPN: the daemon's "is up") and the probes;
    returns the bring-up times in seconds."""
    deadline = time.time() + timeout
    up_line = "environment remote: tunnel cw-o-remote is up"
    while time.time() < deadline:
        if ((kind != "openvpn" or up_line in d.new_log())
                and all(p.poll() is not None for p in probes.values())):
            break
        time.sleep(0.05)
    events = log_events(d.new_log())
    first = events[0][0]
    t = {}
    for ts, msg in events:
        m = ENV_LINE.match(msg)
        if msg.startswith("Open vSwitch:"):
            t.setdefault("ovs", ts)
        elif m:
            t.setdefault(m[1], ts)
        elif msg.startswith("cellwalld ready"):
            t.setdefault("ready", ts)
        elif msg.startswith(up_line):
            t.setdefault("tunnel_up", ts)
    res = {"daemon_ready_s": t["ready"] - first, "bridge_and_boot_env_s": t["boot"] - t["ovs"]}
    start = {"local": t["boot"], "remote": t["local"]}
    for env, t0 in start.items():
        typ = "nat" if env == "local" else kind
        r = {"gateway_s": t[env] - t0}
        p = probes[env]
        if p.poll() is None:
            p.kill()
        out, _ = p.communicate()
        r["first_packet_s"] = float(out.split()[1]) - t0 if p.returncode == 0 and out.split() else None
        if typ == "openvpn":
            r["tunnel_up_log_s"] = t["tunnel_up"] - t0 if "tunnel_up" in t else None
            rec = Path(d.state, "env", "remote", "openvpn.up")
            r["connected_s"] = rec.stat().st_mtime - t0 if rec.exists() else None
        res[typ] = r
    return res


def start_probe(env):
    return subprocess.Popen(["/usr/bin/python3", "-c", PROBE, f"cw-g-{env}", HOST, str(ACCEPT_PORT), "40"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def cellwall_run(sites, kind, tunnel_file, args, measure_it):
    """One cellwalld with the environments boot, local and remote (over `kind`): its bring-up
    and, if measure_it, the measurements from a cell of local (nat, WireGuard runs only) and of
    remote."""
    d = Daemon(None, config_text=config(sites, kind, tunnel_file))
    probes, cells = {}, []
    try:
        probes = {env: start_probe(env) for env in ("local", "remote")}
        d.start()
        res = {"bringup": bring_up(d, kind, probes)}
        if not measure_it:
            return res
        res["cellwall"], res["gateway"] = {}, {}
        for typ in (("nat", kind) if kind == "wireguard" else (kind,)):
            env = ENV_OF[typ]
            p, cell = d.start_cell(ALLOW.format(env=env), ["sleep", "3600"], app=f"bench-{env}")
            cells.append(p)
            res["cellwall"][typ] = measure(cell["netns"], args)
            # The same uplink or tunnel from inside the gateway: no switch, no forwarding.
            res["gateway"][typ] = measure(f"cw-g-{env}", args)
        return res
    finally:
        for p in list(probes.values()) + cells:
            if p.poll() is None:
                p.terminate()
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
        d.stop()
        ns, links, procs = leftovers()
        if ns or links or procs:
            print(f"cellwalld left behind: netns={ns} links={links} procs={procs}; cleaning up", file=sys.stderr)
            d.force_cleanup()
        shutil.rmtree(d.state, ignore_errors=True)


def bare_run(sites, kind, args, with_nat):
    res = {}
    if with_nat:
        with ClientNs(sites, 0) as c:
            res["nat"] = measure(c.ns, args)
    with ClientNs(sites, 1) as c:
        make = bare_wireguard_client if kind == "wireguard" else bare_openvpn_client
        with make(sites, c.ns):
            res[kind] = measure(c.ns, args)
    return res


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(rounds, bringups, args):
    s = {"throughput": {}, "latency": {}, "bringup": {}}
    for typ in TYPES:
        row = {}
        for way in ("fwd", "rev") if args.reverse else ("fwd",):
            g = {who: [r[who][typ][way]["gbps"] for r in rounds] for who in PATHS}
            row[way] = {f"{who}_gbps": med(g[who]) for who in PATHS}
            for name, a, b in (("ratio", "cellwall", "bare"), ("gateway_vs_bare", "gateway", "bare"),
                               ("cellwall_vs_gateway", "cellwall", "gateway")):
                row[way][name] = med([x / y for x, y in zip(g[a], g[b])])
                row[way][name + "_all"] = [round(x / y, 3) for x, y in zip(g[a], g[b])]
            row[way]["mss"] = {who: rounds[0][who][typ][way]["mss"] for who in PATHS}
            row[way]["retransmits"] = {who: [r[who][typ][way]["retransmits"] for r in rounds] for who in PATHS}
        s["throughput"][typ] = row
        lat = {}
        for who in PATHS:
            xs = [x for r in rounds for x in r[who][typ]["connect_us"]]
            lat[who] = {"n": len(xs), "p50_us": pct(xs, 50), "p90_us": pct(xs, 90), "p99_us": pct(xs, 99)}
        lat["extra_p50_us"] = lat["cellwall"]["p50_us"] - lat["bare"]["p50_us"]
        lat["extra_p99_us"] = lat["cellwall"]["p99_us"] - lat["bare"]["p99_us"]
        s["latency"][typ] = lat
    for typ in TYPES:
        rows = [b[typ] for b in bringups if typ in b]
        s["bringup"][typ] = {k: {"median": med([r.get(k) for r in rows]),
                                 "all": [None if r.get(k) is None else round(r[k], 3) for r in rows]}
                             for k in ("gateway_s", "first_packet_s", "tunnel_up_log_s", "connected_s")
                             if any(k in r for r in rows)}
    s["bringup"]["daemon_ready_s"] = med([b["daemon_ready_s"] for b in bringups])
    s["bringup"]["bridge_and_boot_env_s"] = med([b["bridge_and_boot_env_s"] for b in bringups])
    s["mtu"] = {typ: {who: rounds[0][who][typ]["mtu"] for who in PATHS} for typ in TYPES}
    return s


def report(s, args):
    f = lambda x, fmt="{:.3f}": "-" if x is None else fmt.format(x)  # noqa: E731
    print(f"\nthroughput, iperf3 TCP {args.seconds} s, 1 stream, Gbit/s (medians of {args.rounds} rounds; ratios: "
          "median of the per-round ratios). gateway: from the gateway namespace itself (same uplink or tunnel, "
          "no switch)")
    print(f"{'uplink':10s} {'way':4s} {'cellwall':>9s} {'gateway':>9s} {'bare':>9s} {'cw/bare':>8s} {'gw/bare':>8s} "
          f"{'cw/gw':>6s}  per round cw/bare   MSS cw/gw/bare")
    for typ, row in s["throughput"].items():
        for way, r in row.items():
            print(f"{typ:10s} {way:4s} {f(r['cellwall_gbps']):>9s} {f(r['gateway_gbps']):>9s} {f(r['bare_gbps']):>9s} "
                  f"{f(r['ratio']):>8s} {f(r['gateway_vs_bare']):>8s} {f(r['cellwall_vs_gateway']):>6s}  "
                  f"{str(r['ratio_all']):18s} {'/'.join(str(r['mss'][w]) for w in PATHS)}")
    print(f"\nTCP connect latency, µs ({args.connects} connects a round, all rounds pooled): p50/p90/p99")
    print(f"{'uplink':10s} {'cellwall':>18s} {'gateway':>18s} {'bare':>18s} {'extra p50':>10s} {'extra p99':>10s}")
    for typ, lat in s["latency"].items():
        cols = ["{:.0f}/{:.0f}/{:.0f}".format(lat[w]["p50_us"], lat[w]["p90_us"], lat[w]["p99_us"]) for w in PATHS]
        print(f"{typ:10s} " + " ".join(f"{c:>18s}" for c in cols)
              + f" {lat['extra_p50_us']:10.0f} {lat['extra_p99_us']:10.0f}")
    print("\nbring-up, s from the start of the environment's gateway (median; every daemon start)")
    for typ in TYPES:
        for k, v in s["bringup"][typ].items():
            print(f"{typ:10s} {k:16s} {f(v['median'])}  {v['all']}")
    print(f"daemon start -> ready {f(s['bringup']['daemon_ready_s'])} s; Open vSwitch line -> first environment "
          f"(bridge + boot env) {f(s['bringup']['bridge_and_boot_env_s'])} s")
    print("\nMTUs", json.dumps(s["mtu"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3, help="iperf3 time each way")
    ap.add_argument("--connects", type=int, default=200)
    ap.add_argument("--bringups", type=int, default=1,
                    help="extra daemon starts per tunnel type for bring-up times only")
    ap.add_argument("--no-reverse", dest="reverse", action="store_false", help="skip iperf3 -R")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()

    take_lock()
    t0 = time.time()
    rounds, bringups = [], []
    tmp = tempfile.mkdtemp(prefix="cw-envbench-")
    try:
        with Sites(openvpn=True) as sites:
            files = {"wireguard": Path(tmp, "remote.conf"), "openvpn": Path(tmp, "remote.ovpn")}
            files["wireguard"].write_text(sites.wireguard_client_config())
            files["openvpn"].write_text(sites.openvpn_client_config())
            start_servers(sites)
            for i in range(args.rounds):
                rnd = {who: {} for who in PATHS}
                for kind in TUNNELS:
                    order = ("cellwall", "bare") if i % 2 == 0 else ("bare", "cellwall")
                    for who in order:
                        if who == "cellwall":
                            r = cellwall_run(sites, kind, files[kind], args, True)
                            bringups.append(r.pop("bringup"))
                        else:
                            r = {"bare": bare_run(sites, kind, args, with_nat=kind == "wireguard")}
                        t = time.time() - t0
                        for path, byp in r.items():
                            rnd[path].update(byp)
                            print(f"round {i + 1} {kind:9s} {path:8s} " + "  ".join(
                                f"{typ} {v['fwd']['gbps']:.3f}" + (f"/{v['rev']['gbps']:.3f}" if "rev" in v else "")
                                + f" Gbit/s p50 {pct(v['connect_us'], 50):.0f} µs" for typ, v in byp.items())
                                + f"  (at {t:.0f} s)", file=sys.stderr, flush=True)
                rounds.append(rnd)
            for _ in range(args.bringups):
                for kind in TUNNELS:
                    bringups.append(cellwall_run(sites, kind, files[kind], args, False)["bringup"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    s = summarize(rounds, bringups, args)
    s["elapsed_s"] = round(time.time() - t0, 1)
    report(s, args)
    print(f"\nelapsed {s['elapsed_s']} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": s, "rounds": rounds, "bringups": bringups,
                                               "args": vars(args)}, indent=1))


if __name__ == "__main__":
    main()
