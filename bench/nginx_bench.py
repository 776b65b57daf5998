#!/usr/bin/env python3
"""HTTP server throughput in a cell against the number of open sockets, with cellwall's
filtering off, through the controller, with process attribution and with attribution + IDS
(docs/attribution.md, "Order of work" step 4; the published experiment it reproduces: a
VMM-level per-process filter lost 10 % of an HTTP server's throughput at 1,000 open sockets
with a cache, 43 % without).

nginx (one worker) runs in a cell and publishes two ports: 18080 -> 8080 goes through
cellwalld (every connection a Packet-In decided by an inbound rule), 18081 -> 8081 has static
allow flows in table 2 put there with ovs-ofctl, so it never reaches the controller ("off").
A second process in the cell holds N idle sockets (N/2 loopback TCP connections, both ends
open). ApacheBench loads the server from the test host namespace without keep-alive, so every
request is a new connection.

Modes (--modes): off (static flows), controller (cellwalld --attribution off), attribution
(--attribution always: each connection attributed to nginx through its listening socket),
ids (--attribution always --ids: the cell's answers are also copied to the IDS). Each
controller mode needs its own cellwalld; "off" is measured in every cell, right before or
after the controller mode (the order alternates), and a mode's overhead is taken per such
pair, then the median over rounds: this VM's speed drifts 10-40 % within minutes, a pair's
ratio much less. Each round starts each daemon once (order rotated) and, for each socket
count, a new cell.

Every measurement uses a fresh source address on the test host (10.250.0.100...) and the test
host's ephemeral ports span 1024-65535, so no 5-tuple repeats: a repeat would hit the 300 s
flow of an earlier connection and skip the controller. The script checks this: "new" is the
share of the measured connections that got a flow of their own.

Root; uses the end-to-end fixtures (tests/e2e/conftest.py); takes /tmp/cw-e2e.lock (other
end-to-end runs use the same bridge name); everything it makes is removed at the end, also on
failure or Ctrl-C.

    flock /tmp/cw-e2e.lock /usr/bin/python3 bench/nginx_bench.py \\
        [--socket-counts 0,100,1000,10000] [--modes off,controller,attribution,ids] \\
        [--requests 6000] [--off-requests 18000] [--concurrency 16] [--rounds 3] [--attrib-bench] [--json FILE]
"""
import argparse
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import BUILD, GATEWAY_UPLINK_IP, Daemon, TestHost, leftovers, sh  # noqa: E402

LOCK = "/tmp/cw-e2e.lock"
DYN_PORT, STATIC_PORT = 8080, 8081  # in the cell; published as 10000 + port
UPLINK = "cw-u-default"             # the test host's end of the uplink
CHUNK = 5000  # connections per source address: below one pass over the test host's ports
SOURCES = [f"10.250.0.{i}" for i in range(100, 250)]
DAEMON_ARGS = {
    "controller": ["--attribution", "off"],
    "attribution": ["--attribution", "always"],
    "ids": ["--attribution", "always", "--ids"],
}
MODES = ["off", "controller", "attribution", "ids"]
POLICY = ('default = "deny"\n[[allow]]\ndirection = "inbound"\nproto = "tcp"\n'
          f'from = "10.250.0.0/24"\nports = {DYN_PORT}\n')

# N idle sockets: N/2 loopback TCP connections, both ends kept. Says how many it got.
IDLE = r"""
import resource, signal, socket, sys
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4096)
kept = []
try:
    for _ in range(n // 2):
        c = socket.socket(); c.connect(l.getsockname()); s, _ = l.accept()
        kept += [c, s]
except OSError as e:
    print(f"idle: stopped at {len(kept)} sockets: {e} (RLIMIT_NOFILE hard {hard})", file=sys.stderr)
l.close()
print(f"idle: {len(kept)} sockets", file=sys.stderr, flush=True)
while True:
    signal.pause()
"""

NGINX = """worker_processes 1;
pid {run}/nginx.pid;
error_log stderr;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/html;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen {dyn} backlog=4096;
        listen {static} backlog=4096;
        root {dir}/www;
    }}
}}
"""


def take_lock():
    """Blocks until this process holds /tmp/cw-e2e.lock. Under `flock /tmp/cw-e2e.lock CMD` the
    lock is already held through an inherited descriptor: locking that one again returns at once
    (a new open() would wait for ourselves)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == LOCK:
                fcntl.flock(int(fd), fcntl.LOCK_EX)
                return int(fd)
        except OSError:
            pass
    f = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


class Web:
    """nginx (and, for n > 0, the idle sockets' holder) in one cell of `d`. Files live in a
    temporary directory readable by nobody; the cell's output goes to a file there."""

    def __init__(self, d, n, tmp):
        self.d, self.n, self.tmp = d, n, tmp
        self.out = Path(tmp, f"cell-{n}.log")
        cmd = (f"exec /usr/sbin/nginx -p {tmp} -c {tmp}/nginx.conf -e stderr -g 'daemon off;'")
        if n:
            cmd = f"/usr/bin/python3 {tmp}/idle.py {n} & " + cmd
        pf = Path(d.state, "web.toml")
        pf.write_text(POLICY)
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(
                [str(d_cellwall()), "--state-dir", d.state, "run", "--app", "web",
                 "--publish", f"{10000 + DYN_PORT}:{DYN_PORT}", "--publish",
                 f"{10000 + STATIC_PORT}:{STATIC_PORT}", "--policy", str(pf), "--user", "nobody",
                 "--", "/bin/sh", "-c", cmd], stdout=out, stderr=subprocess.STDOUT)
        self.cell = None
        deadline = time.time() + 30
        while time.time() < deadline and self.cell is None:
            self.cell = next((c for c in d.cells() if c["app"] == "web"), None)
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        if self.cell is None:
            self.stop()
            raise RuntimeError("the nginx cell did not start:\n" + self.out.read_text() + d.new_log()[-2000:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def sockets(self):
        """(established TCP sockets in the cell, socket fds of the idle holder)."""
        ss = sh(["ip", "netns", "exec", self.cell["netns"], "ss", "-H", "-t", "-n", "state",
                 "established"], check=False).stdout
        estab = len([l for l in ss.splitlines() if l.strip()])
        fds = 0
        for pid in sh(["ip", "netns", "pids", self.cell["netns"]], check=False).stdout.split():
            try:
                if b"idle.py" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                fds += sum(1 for f in os.listdir(f"/proc/{pid}/fd")
                           if os.readlink(f"/proc/{pid}/fd/{f}").startswith("socket:"))
            except OSError:
                pass
        return estab, fds

    def wait_ready(self, th, timeout=90):
        deadline = time.time() + timeout
        want = self.n // 2 * 2
        codes, fds = {}, 0
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the nginx cell exited:\n" + self.out.read_text())
            codes = {p: th.exec(["curl", "-s", "-o", "/dev/null", "--max-time", "2", "-w", "%{http_code}",
                                 f"http://{GATEWAY_UPLINK_IP}:{10000 + p}/"], check=False).stdout
                     for p in (STATIC_PORT, DYN_PORT)}
            estab, fds = self.sockets()
            if all(c == "200" for c in codes.values()) and (fds >= want or "idle: stopped" in self.out.read_text()):
                return self.sockets()  # again: ss may have run before the last connections
            time.sleep(0.3)
        raise RuntimeError(f"nginx or the idle sockets not ready in {timeout} s (HTTP {codes}, idle fds {fds}):\n"
                           + self.out.read_text()
                           + self.d.new_log()[-2000:])


def d_cellwall():
    return BUILD / "src" / "cli" / "cellwall"


class Bridge:
    """ovs-ofctl on the daemon's bridge."""

    def __init__(self, d):
        self.target = f"unix:{d.state}/ovs/cw-br0.mgmt"
        self.gw = sh(["ovs-vsctl", f"--db=unix:{d.state}/ovs/db.sock", "get", "Interface", "cw-g-default",
                      "ofport"]).stdout.strip()

    def ofctl(self, *args):
        return sh(["ovs-ofctl", "-O", "OpenFlow13", *args], timeout=120)

    def allow_static(self, cell):
        self.ofctl("add-flow", self.target, f"table=2,priority=2000,tcp,in_port={self.gw},nw_dst={cell['ip']},"
                   f"tp_dst={STATIC_PORT},actions=output:{cell['port']}")
        self.ofctl("add-flow", self.target, f"table=2,priority=2000,tcp,in_port={cell['port']},"
                   f"nw_src={cell['ip']},tp_src={STATIC_PORT},actions=output:{self.gw}")

    def inbound_flows(self, cell, src):
        """Per-connection flows from `src` to the cell's controller port: one per new connection."""
        out = self.ofctl("dump-flows", self.target, f"table=2,tcp,in_port={self.gw},nw_src={src},"
                         f"nw_dst={cell['ip']},tp_dst={DYN_PORT}").stdout
        return sum(1 for l in out.splitlines() if "cookie=" in l and "priority=1000" in l)


class Sources:
    """A fresh source address of the test host for each measurement."""

    def __init__(self, th):
        self.th, self.i = th, 0
        self.th.exec(["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"])

    def next(self):
        src = SOURCES[self.i % len(SOURCES)]
        self.i += 1
        self.th.exec(["ip", "addr", "replace", src + "/32", "dev", UPLINK])
        self.th.exec(["ip", "route", "replace", GATEWAY_UPLINK_IP + "/32", "dev", UPLINK, "src", src])
        return src


def ab(th, port, n, c):
    r = th.exec(["ab", "-q", "-r", "-s", "10", "-n", str(n), "-c", str(c),
                 f"http://{GATEWAY_UPLINK_IP}:{10000 + port}/"], check=False, timeout=600)

    def field(name):
        m = re.search(rf"^{name}:\s+([0-9.]+)", r.stdout, re.M)
        return float(m.group(1)) if m else None

    res = {"rps": field("Requests per second"), "mean_ms": field(r"Time per request"),
           "complete": field("Complete requests"), "failed": field("Failed requests") or 0,
           "non2xx": field("Non-2xx responses") or 0}
    if res["rps"] is None:
        raise RuntimeError(f"ab failed ({r.returncode}): {r.stdout[-1000:]} {r.stderr[-1000:]}")
    return res


def measure(th, bridge, sources, cell, port, total, c):
    """ab with `total` requests in chunks of at most CHUNK, each from a fresh source address;
    requests/s over the whole, mean ms per request weighted by chunk."""
    chunks, left, new = [], total, 0
    while left > 0:
        n = min(CHUNK, left)
        src = sources.next()
        before = bridge.inbound_flows(cell, src) if port == DYN_PORT else 0
        chunks.append(ab(th, port, n, c))
        if port == DYN_PORT:
            new += bridge.inbound_flows(cell, src) - before
        left -= n
    r = {"requests": total, "chunks": len(chunks),
         "rps": total / sum(x["complete"] / x["rps"] for x in chunks),
         "mean_ms": sum(x["mean_ms"] * x["complete"] for x in chunks) / total,
         "failed": sum(x["failed"] for x in chunks), "non2xx": sum(x["non2xx"] for x in chunks)}
    if port == DYN_PORT:
        r["new"] = new / total
    return r


def measure_cell(d, th, bridge, sources, n, dmode, args, rnd, log):
    """One cell with n idle sockets: off and the daemon's mode, back to back."""
    w = Web(d, n, args.tmp)
    try:
        bridge.allow_static(w.cell)
        estab, fds = w.wait_ready(th)
        for port in (STATIC_PORT, DYN_PORT):  # warm up both paths
            sources.next()
            ab(th, port, args.warmup, args.concurrency)
        order = [("off", STATIC_PORT), (dmode, DYN_PORT)]
        if rnd % 2:
            order.reverse()
        rows = []
        for mode, port in order:
            if mode not in args.modes:
                continue
            r = measure(th, bridge, sources, w.cell, port, args.off_requests if mode == "off" else args.requests,
                        args.concurrency)
            r.update(mode=mode, sockets=n, round=rnd, daemon=dmode, estab=estab, idle_fds=fds)
            rows.append(r)
            log(f"  round {rnd} sockets {n:>5} (estab {estab:>5}, idle fds {fds:>5}) {mode:<11} "
                f"{r['rps']:8.0f} req/s {r['mean_ms']:7.3f} ms"
                + (f"  new {r['new']:.3f}" if "new" in r else "")
                + (f"  FAILED {r['failed']:.0f}" if r["failed"] else ""))
        if dmode != "controller" and "attrib" not in args.sample.get(dmode, {}):
            out = d.cli("log", "--app", "web", "--json", "-n", "1", check=False).stdout
            e = next((json.loads(l) for l in out.splitlines() if l.strip()), {})
            args.sample.setdefault(dmode, {})["attrib"] = e.get("process")
        return rows
    finally:
        w.stop()


def run_daemon(th, dmode, args, rnd, log):
    d = Daemon(th, DAEMON_ARGS[dmode])
    try:
        d.start()
        if dmode == "ids" and "ids" not in d.new_log().lower():
            log("  warning: the daemon's log does not mention the IDS")
        bridge = Bridge(d)
        sources = Sources(th)
        counts = args.socket_counts[rnd % len(args.socket_counts):] + args.socket_counts[:rnd % len(args.socket_counts)]
        rows = []
        for n in counts:
            rows += measure_cell(d, th, bridge, sources, n, dmode, args, rnd, log)
        return rows
    finally:
        d.stop()
        ns, ls, procs = leftovers()
        if ns or ls or procs:
            log(f"  cellwalld left behind netns={ns} links={ls} procs={procs}: cleaning up")
            d.force_cleanup()
        else:
            shutil.rmtree(d.state, ignore_errors=True)


def attrib_bench(log):
    """cw-attrib-bench's BM_Attribute (sock_diag + BPF owner lookup) against open sockets."""
    exe = BUILD / "bench" / "attrib" / "cw-attrib-bench"
    r = sh(["taskset", "-c", "0", str(exe), "--benchmark_filter=BM_Attribute|BM_SockDiagFind",
            "--benchmark_min_time=0.2", "--benchmark_repetitions=3", "--benchmark_report_aggregates_only=true",
            "--benchmark_format=json"], check=False, timeout=600)
    if r.returncode != 0:
        log(f"cw-attrib-bench failed: {r.stderr[-500:]}")
        return []
    out = []
    for b in json.loads(r.stdout)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            out.append({"name": b["run_name"], "sockets": b.get("sockets"), "ns": b["real_time"]})
    return out


def summarize(rows, args):
    table = []
    for n in args.socket_counts:
        off = [r for r in rows if r["sockets"] == n and r["mode"] == "off"]
        for mode in args.modes:
            xs = [r for r in rows if r["sockets"] == n and r["mode"] == mode]
            if not xs:
                continue
            e = {"sockets": n, "mode": mode, "count": len(xs),
                 "rps_median": statistics.median(r["rps"] for r in xs),
                 "rps_min": min(r["rps"] for r in xs), "rps_max": max(r["rps"] for r in xs),
                 "mean_ms_median": statistics.median(r["mean_ms"] for r in xs),
                 "failed": sum(r["failed"] for r in xs), "estab_min": min(r["estab"] for r in xs)}
            if mode != "off":
                e["new_min"] = min(r["new"] for r in xs)
                pairs = []
                for r in xs:  # its "off" of the same cell
                    o = next((x for x in off if x["round"] == r["round"] and x["daemon"] == mode), None)
                    if o:
                        pairs.append(100.0 * (1 - r["rps"] / o["rps"]))
                if pairs:
                    e["overhead_pct_paired_median"] = statistics.median(pairs)
                    e["overhead_pct_paired_min"] = min(pairs)
                    e["overhead_pct_paired_max"] = max(pairs)
                if off:
                    e["overhead_pct_vs_off_median"] = 100.0 * (1 - e["rps_median"] /
                                                               statistics.median(r["rps"] for r in off))
            table.append(e)
    return table


def print_table(table):
    print("\nsockets  mode          n   req/s median [min-max]       mean ms   overhead % (paired median "
          "[min..max]; vs off median)   new")
    for e in table:
        line = (f"{e['sockets']:>7}  {e['mode']:<11} {e['count']:>2}  {e['rps_median']:8.0f} "
                f"[{e['rps_min']:6.0f}-{e['rps_max']:6.0f}]  {e['mean_ms_median']:8.3f}")
        if "overhead_pct_paired_median" in e:
            line += (f"   {e['overhead_pct_paired_median']:5.1f} [{e['overhead_pct_paired_min']:5.1f}.."
                     f"{e['overhead_pct_paired_max']:5.1f}]; {e['overhead_pct_vs_off_median']:5.1f}"
                     f"   {e['new_min']:.3f}")
        if e["failed"]:
            line += f"  failed {e['failed']:.0f}"
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket-counts", default="0,100,1000,10000", help="idle sockets in the cell, comma-separated")
    ap.add_argument("--modes", default=",".join(MODES), help="of " + ",".join(MODES))
    ap.add_argument("--requests", type=int, default=6000, help="requests (each a new connection) per measurement "
                    "through the controller; ab runs in chunks of 5,000, each from its own source address")
    ap.add_argument("--off-requests", type=int, default=18000, help="the same for \"off\" (about 3x faster)")
    ap.add_argument("--concurrency", type=int, default=16, help="ab -c")
    ap.add_argument("--warmup", type=int, default=300, help="ab -n per path before measuring, in each cell")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--attrib-bench", action="store_true", help="also run cw-attrib-bench (µs per attribution "
                    "against open sockets)")
    ap.add_argument("--json", metavar="FILE", help="write every measurement and the summary here as JSON")
    args = ap.parse_args()
    args.socket_counts = [int(x) for x in args.socket_counts.split(",")]
    args.modes = [m for m in args.modes.split(",") if m]
    bad = set(args.modes) - set(MODES)
    if bad:
        ap.error(f"unknown modes {sorted(bad)}; known: {MODES}")
    if os.geteuid() != 0:
        ap.error("run as root (namespaces, Open vSwitch, cellwalld)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def log(s):
        print(s, file=sys.stderr, flush=True)

    take_lock()
    t0 = time.time()
    args.tmp = tempfile.mkdtemp(prefix="cw-nginx-")
    args.sample = {}
    th = None
    rows, attrib = [], []
    try:
        tmp = Path(args.tmp)
        os.chmod(tmp, 0o755)
        (tmp / "www").mkdir(mode=0o755)
        (tmp / "www" / "index.html").write_text("<html><body>" + "cellwall nginx bench " * 28 + "</body></html>\n")
        run = tmp / "run"
        run.mkdir(mode=0o755)
        nobody = pwd.getpwnam("nobody")
        os.chown(run, nobody.pw_uid, nobody.pw_gid)
        (tmp / "nginx.conf").write_text(NGINX.format(run=run, dir=tmp, dyn=DYN_PORT, static=STATIC_PORT))
        (tmp / "idle.py").write_text(IDLE)
        for p in tmp.rglob("*"):
            if p.is_file():
                p.chmod(0o644)
        th = TestHost()
        dmodes = [m for m in DAEMON_ARGS if m in args.modes] or ["controller"]  # "off" alone: any daemon
        for rnd in range(args.rounds):
            for dmode in dmodes[rnd % len(dmodes):] + dmodes[:rnd % len(dmodes)]:
                log(f"round {rnd}: cellwalld {' '.join(DAEMON_ARGS[dmode])}  ({time.time() - t0:.0f} s)")
                rows += run_daemon(th, dmode, args, rnd, log)
        if args.attrib_bench:
            attrib = attrib_bench(log)
    finally:
        if th:
            th.close()
        shutil.rmtree(args.tmp, ignore_errors=True)
    table = summarize(rows, args)
    print_table(table)
    for dmode, s in args.sample.items():
        print(f"\n{dmode}: a measured connection was attributed to {json.dumps(s.get('attrib'))}")
    if attrib:
        print("\ncw-attrib-bench (median of 3):")
        for a in attrib:
            print(f"  {a['name']:<28} {a['ns'] / 1000:7.2f} us  ({a['sockets']:.0f} sockets)")
    print(f"\ntotal {time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k not in ("tmp",)},
                                               "summary": table, "runs": rows, "attrib_bench": attrib}, indent=1))


if __name__ == "__main__":
    main()
