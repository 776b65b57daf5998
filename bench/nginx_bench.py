#!/usr/bin/env python3
"""New connections through a cell at the speed of the bridge: nginx in a cell loaded by
ApacheBench without keep-alive (every request a new connection), with cellwall deciding each
connection, against the same bridge, cell, server and port with a static allow flow ("off").

Inbound: nginx (one worker) runs in a cell and publishes one port (18080 -> 8080); ab runs in
the test host namespace. A second process in the cell holds N idle sockets (N/2 loopback TCP
connections, both ends open). Outbound: ab runs inside the same cell (a small job runner there
starts it, so it is the cell's own process) against nginx on the test host.

Modes (--modes):
  off          static allow flows for the measured port, both directions, in table
               --static-table (2, where cellwall's connection handling starts) at priority
               60000, above anything cellwall installs there; put in right before the
               measurement and removed right after, so every other measurement of the same port
               goes through cellwall. They do not depend on table 2's layout.
  address      a rule by address and port (inbound `from` + `ports`, outbound `to` + `ports`):
               a rule the switch can decide alone (DESIGN.md, "The data path").
  process      the same rule naming the process (`process = "nginx"` / `"ab"`): the controller
               decides (attribution, then policy).
  attribution  the address rule, cellwalld --attribution always.
  ids          the address rule, cellwalld --attribution always --ids.
  uncounted    the address rule, cellwalld --rule-counters off: no per-rule counting (table 7);
               address / uncounted is what counting costs (bench/RESULTS.md 15, per-rule counters).
  address-nolog  the address rule, cellwalld --log-switch-decided off: the switch decides and
               sends the controller no copy (counted per rule, not logged).
  ctl-address  the address rule, cellwalld --decide controller: the controller decides every
               connection, without attribution (the floor of a controller decision).
  (controller  an old name of `address`.)
address and process share one cellwalld (its default --attribution rules); the policy is
switched with `cellwall rules import`. attribution and ids need daemons of their own.

Each round starts each daemon once (order rotated) and, for each socket count, a new cell; in
that cell, for each concurrency, "off" and each mode of the daemon are measured back to back in
rotated order (one "slot"). A mode's ratio is its req/s over the "off" of the same slot; the
summary gives the median and range of those ratios over rounds: this VM's speed drifts
10-40 % within minutes, a slot's ratio much less.

Every inbound measurement uses a fresh source address on the test host (10.250.0.10...) whose
ephemeral ports span 1024-65535; every outbound one a fresh server port (19000...): no 5-tuple
repeats, so each connection is new to the bridge. "decided" is the share of the measured
connections that cellwalld counted as allowed decisions (`cellwall status`): ~1 where the
controller decides each one, ~0 for "off".

--decay: 10 rounds (--decay-rounds) of 5,000 new connections (--decay-requests) per mode, in
one cell without idle sockets, each round paired with "off"; records each round's ratio and
the bridge's flow count (`ovs-ofctl dump-flows`, every table) after the round.

Root; uses the end-to-end fixtures (tests/e2e/conftest.py); takes /tmp/cw-e2e.lock (other
end-to-end runs use the same bridge name); everything it makes is removed at the end, also on
failure or Ctrl-C.

    flock /tmp/cw-e2e.lock /usr/bin/python3 bench/nginx_bench.py --quick [--json FILE]
    flock /tmp/cw-e2e.lock /usr/bin/python3 bench/nginx_bench.py --decay [--json FILE]
    flock /tmp/cw-e2e.lock /usr/bin/python3 bench/nginx_bench.py --modes off,address,attribution,ids \\
        --socket-counts 0,100,1000,10000 --concurrency 16 --outbound-concurrency "" --rounds 4 --attrib-bench
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
from conftest import BUILD, GATEWAY_UPLINK_IP, TESTHOST_IP, Daemon, TestHost, leftovers, sh  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cell_jobs import CellJobs  # noqa: E402
import sysprof  # noqa: E402

LOCK = "/tmp/cw-e2e.lock"
CELL_PORT = 8080                  # nginx in the cell; published as 18080
PUBLISHED = 10000 + CELL_PORT
OUT_PORTS = list(range(19000, 19040))  # nginx on the test host, for outbound
UPLINK = "cw-u-default"           # the test host's end of the uplink
CHUNK = 5000  # connections per source address: below one pass over the test host's ports
SOURCES = [f"10.250.0.{i}" for i in range(10, 250)]
PROFILE = False  # --profile: CPU per request by thread group and Open vSwitch's coverage counters
STATIC_COOKIE = "0xfe0000000000c0de"  # kind 0xfe: no kind cellwall uses
STATIC_PRIORITY = 60000
MIN_PACKETS = 5  # per connection, both directions: at least SYN, SYN-ACK, ACK, request, answer
DAEMONS = {"default": [], "always": ["--attribution", "always"], "ids": ["--attribution", "always", "--ids"],
           "controller": ["--decide", "controller"], "uncounted": ["--rule-counters", "off"],
           "nolog": ["--log-switch-decided", "off"]}
MODE_DAEMON = {"address": "default", "process": "default", "attribution": "always", "ids": "ids",
               "ctl-address": "controller", "uncounted": "uncounted",
               "address-nolog": "nolog"}
MODES = ["off", "address", "uncounted", "process", "attribution", "ids", "ctl-address", "address-nolog"]
ALIASES = {"controller": "address"}


def policy(kind):
    """The app's policy: both directions by address and port, or the same naming the process."""
    proc_in = '\nprocess = "nginx"' if kind == "process" else ""
    proc_out = '\nprocess = "ab"' if kind == "process" else ""
    return ('default = "deny"\n'
            f'[[allow]]\ndirection = "inbound"\nproto = "tcp"\nfrom = "10.250.0.0/24"\nports = {CELL_PORT}{proc_in}\n'
            f'[[allow]]\nproto = "tcp"\nto = "{TESTHOST_IP}"\nports = "{OUT_PORTS[0]}-{OUT_PORTS[-1]}"{proc_out}\n')


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
{extra}
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
{listen}
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


def d_cellwall():
    return BUILD / "src" / "cli" / "cellwall"


class Web:
    """nginx, the job runner and (n > 0) the idle sockets' holder in one cell of `d`. Files live
    in a temporary directory; the cell's output goes to a file there."""

    def __init__(self, d, n, tmp, kind, jobs):
        self.d, self.n, self.tmp, self.kind, self.jobs = d, n, tmp, kind, jobs
        self.out = Path(tmp, f"cell-{n}.log")
        cmd = (" ".join(jobs.command()) + " & "
               f"exec /usr/sbin/nginx -p {tmp} -c {tmp}/nginx.conf -e stderr -g 'daemon off;'")
        if n:
            cmd = f"/usr/bin/python3 {tmp}/idle.py {n} & " + cmd
        pf = Path(d.state, "web.toml")
        pf.write_text(policy(kind))
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(
                [str(d_cellwall()), "--state-dir", d.state, "run", "--app", "web",
                 "--publish", f"{PUBLISHED}:{CELL_PORT}", "--policy", str(pf), "--user", "nobody",
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
        sh(["ip", "netns", "exec", self.cell["netns"], "sysctl", "-q", "-w",
            "net.ipv4.ip_local_port_range=1024 65535"])

    def set_policy(self, kind):
        """Replaces the app's policy (the cell keeps running)."""
        if kind != self.kind:
            pf = Path(self.d.state, "web.toml")
            pf.write_text(policy(kind))
            self.d.cli("rules", "import", "--app", "web", str(pf))
            self.kind = kind

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def run(self, argv):
        """argv run in the cell, as its own process; (returncode, stdout, stderr)."""
        try:
            return self.jobs.run(argv, alive=lambda: self.proc.poll() is None)
        except RuntimeError as e:
            raise RuntimeError(f"{e}:\n" + self.out.read_text()[-2000:]) from None

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
        code, fds = "", 0
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the nginx cell exited:\n" + self.out.read_text())
            code = th.exec(["curl", "-s", "-o", "/dev/null", "--max-time", "2", "-w", "%{http_code}",
                            f"http://{GATEWAY_UPLINK_IP}:{PUBLISHED}/"], check=False).stdout
            estab, fds = self.sockets()
            if code == "200" and (fds >= want or "idle: stopped" in self.out.read_text()):
                return self.sockets()  # again: ss may have run before the last connections
            time.sleep(0.3)
        raise RuntimeError(f"nginx or the idle sockets not ready in {timeout} s (HTTP {code}, idle fds {fds}):\n"
                           + self.out.read_text()
                           + self.d.new_log()[-2000:])


class Bridge:
    """ovs-ofctl on the daemon's bridge."""

    def __init__(self, d, table):
        self.target = f"unix:{d.state}/ovs/cw-br0.mgmt"
        self.appctl = f"{d.state}/ovs/ovs-vswitchd.ctl"
        self.table = table
        self.gw = sh(["ovs-vsctl", f"--db=unix:{d.state}/ovs/db.sock", "get", "Interface", "cw-g-default",
                      "ofport"]).stdout.strip()

    def ofctl(self, *args):
        return sh(["ovs-ofctl", "-O", "OpenFlow13", *args], timeout=120)

    def static_on(self, cell, direction, port):
        """Allow flows for one TCP port of the cell, both directions, above all of cellwall's."""
        ip, cp, gw = cell["ip"], cell["port"], self.gw
        if direction == "in":
            flows = [f"tcp,in_port={gw},nw_dst={ip},tp_dst={port},actions=output:{cp}",
                     f"tcp,in_port={cp},nw_src={ip},tp_src={port},actions=output:{gw}"]
        else:
            flows = [f"tcp,in_port={cp},nw_src={ip},nw_dst={TESTHOST_IP},tp_dst={port},actions=output:{gw}",
                     f"tcp,in_port={gw},nw_src={TESTHOST_IP},tp_src={port},nw_dst={ip},actions=output:{cp}"]
        for f in flows:
            self.ofctl("add-flow", self.target,
                       f"table={self.table},priority={STATIC_PRIORITY},cookie={STATIC_COOKIE},{f}")

    def static_packets(self):
        out = self.ofctl("dump-flows", self.target, f"cookie={STATIC_COOKIE}/-1").stdout
        return sum(int(m.group(1)) for m in re.finditer(r"n_packets=(\d+)", out))

    def static_off(self, want):
        """Removes the static flows; returns the packets they carried. Open vSwitch copies the
        datapath's counters into its flows' every ~0.5 s: waits up to 3 s for `want` packets."""
        deadline = time.time() + 3
        packets = self.static_packets()
        while packets < want and time.time() < deadline:
            time.sleep(0.1)
            packets = self.static_packets()
        self.ofctl("del-flows", self.target, f"cookie={STATIC_COOKIE}/-1")
        return packets

    def conntrack_count(self):
        """Connections in Open vSwitch's (userspace) connection tracker, all zones; None if unknown."""
        r = sh(["ovs-appctl", "-t", self.appctl, "dpctl/ct-get-nconns"], check=False)
        return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else None

    def flow_count(self):
        out = self.ofctl("dump-flows", self.target).stdout
        return sum(1 for l in out.splitlines() if "actions=" in l)


class Sources:
    """A fresh source address of the test host for each inbound measurement."""

    def __init__(self, th):
        self.th, self.i = th, 0
        self.th.exec(["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"])

    def next(self):
        src = SOURCES[self.i % len(SOURCES)]
        self.i += 1
        self.th.exec(["ip", "addr", "replace", src + "/32", "dev", UPLINK])
        self.th.exec(["ip", "route", "replace", GATEWAY_UPLINK_IP + "/32", "dev", UPLINK, "src", src])
        return src


class OutPorts:
    """A fresh server port on the test host for each outbound measurement."""

    def __init__(self):
        self.i = 0

    def next(self):
        self.i += 1
        return OUT_PORTS[(self.i - 1) % len(OUT_PORTS)]


class AbError(RuntimeError):
    """ab gave no result (e.g. a request got no answer in 10 s: ab -s 10 stops then)."""


def parse_ab(rc, stdout, stderr):
    def field(name):
        m = re.search(rf"^{name}:\s+([0-9.]+)", stdout, re.M)
        return float(m.group(1)) if m else None

    res = {"rps": field("Requests per second"), "mean_ms": field(r"Time per request"),
           "complete": field("Complete requests"), "failed": field("Failed requests") or 0,
           "non2xx": field("Non-2xx responses") or 0}
    if res["rps"] is None:
        raise AbError(f"ab failed ({rc}): " + " ".join((stdout[-300:] + " " + stderr[-300:]).split()))
    return res


def ab_argv(url, n, c):
    return ["ab", "-q", "-r", "-s", "10", "-n", str(n), "-c", str(c), url]


def decisions(d):
    """cellwalld's counts of (allowed, denied) decisions."""
    m = re.search(r"decisions allowed=(\d+) denied=(\d+)", d.cli("status").stdout)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


class Target:
    """Where one measurement's connections come from and go to, fresh for each measurement."""

    def __init__(self, th, web, direction, sources, out_ports):
        self.th, self.web, self.direction = th, web, direction
        self.sources, self.out_ports = sources, out_ports

    def fresh(self):
        """A new source address (inbound) or server port (outbound); returns the port measured."""
        if self.direction == "in":
            self.sources.next()
            return CELL_PORT
        self.port = self.out_ports.next()
        return self.port

    def ab(self, n, c):
        if self.direction == "in":
            r = self.th.exec(ab_argv(f"http://{GATEWAY_UPLINK_IP}:{PUBLISHED}/", n, c), check=False, timeout=600)
            return parse_ab(r.returncode, r.stdout, r.stderr)
        return parse_ab(*self.web.run(ab_argv(f"http://{TESTHOST_IP}:{self.port}/", n, c)))


def measure(d, bridge, target, mode, total, c, warmup):
    """measure_once(); a measurement whose ab got no answer for a request (which stops ab) is
    repeated once from a fresh source, and the failure kept in "errors"."""
    errors = []
    for _ in range(2):
        r = measure_once(d, bridge, target, mode, total, c, warmup)
        if r["rps"] is not None:
            break
        errors.append(r)
    r["errors"] = errors if r["rps"] is not None else errors[:-1]  # the failures before this one
    return r


def denied_sample(d):
    """The newest denied connection in the log, if any: says why a request got no answer."""
    out = d.cli("log", "--app", "web", "--json", "-n", "500", check=False).stdout
    for line in out.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if "allow" not in json.dumps(e.get("verdict", e.get("action", ""))):
            return e
    return None


def measure_once(d, bridge, target, mode, total, c, warmup):
    """`total` requests in chunks of at most CHUNK, each chunk from a fresh source address or to a
    fresh server port (the first after `warmup` requests of its own); requests/s over the whole."""
    chunks, left, dec, den, static_pkts = [], total, 0, 0, 0
    prof = sysprof.Profile(bridge.appctl) if PROFILE else None
    while left > 0:
        n = min(CHUNK - warmup, left) if not chunks else min(CHUNK, left)
        port = target.fresh()
        if mode == "off":
            bridge.static_on(target.web.cell, target.direction, port)
        try:
            before = decisions(d)
            if not chunks and warmup:
                target.ab(warmup, c)
                before = decisions(d)
            if prof:
                prof.start()
            chunks.append(target.ab(n, c))
            if prof:
                prof.stop()
        except AbError as e:
            # Kept as a failed measurement: which connections were denied says why.
            after = decisions(d)
            return {"requests": total, "rps": None, "error": str(e), "decided": None,
                    "denied_during_error": after[1] - before[1],
                    "denied_sample": denied_sample(d) if after[1] > before[1] else None}
        finally:
            if mode == "off":
                static_pkts += bridge.static_off(MIN_PACKETS * (n + (0 if len(chunks) > 1 else warmup)))
        after = decisions(d)
        dec += after[0] - before[0]
        den += after[1] - before[1]
        left -= n
    r = {"requests": total, "chunks": len(chunks), "denied": den,
         "rps": total / sum(x["complete"] / x["rps"] for x in chunks),
         "mean_ms": sum(x["mean_ms"] * x["complete"] for x in chunks) / total,
         "failed": sum(x["failed"] for x in chunks), "non2xx": sum(x["non2xx"] for x in chunks),
         "decided": dec / total}
    if prof:
        r["cpu_us"], r["coverage"] = prof.per_request(total)
    if mode == "off":
        # A connection is >= 5 packets (SYN, SYN-ACK, ACK, request, answer, FINs): fewer means
        # the static flows were not the path.
        r["static_packets_per_request"] = static_pkts / (total + warmup)
        if r["static_packets_per_request"] < MIN_PACKETS:
            raise RuntimeError(f"the static flows carried {static_pkts} packets for {total + warmup} requests: "
                               f"they are not the path (is table {bridge.table} where cellwall's connection "
                               "handling starts? see --static-table)")
    return r


def measure_slot(d, bridge, web, target, modes, c, args, meta, log):
    """"off" and each mode back to back, in an order rotated by the slot's number."""
    order = ["off"] + modes
    k = args.slot % len(order)
    args.slot += 1
    rows = []
    for mode in order[k:] + order[:k]:
        if mode != "off":
            web.set_policy("process" if mode == "process" else "address")
        r = measure(d, bridge, target, mode, args.requests, c, max(args.warmup, 2 * c))
        r.update(meta, mode=mode, concurrency=c)
        rows.append(r)
        for e in r["errors"] + ([r] if r["rps"] is None else []):
            log(f"  round {r['round']} {r['direction']:<3} sockets {r['sockets']:>5} c {c:>3} {mode:<11} "
                f"FAILED: {e['error'][-120:]}; denied meanwhile {e['denied_during_error']}: "
                f"{json.dumps(e['denied_sample'])}")
        if r["rps"] is None:
            continue
        log(f"  round {r['round']} {r['direction']:<3} sockets {r['sockets']:>5} c {c:>3} {mode:<11} "
            f"{r['rps']:8.0f} req/s {r['mean_ms']:7.3f} ms  decided {r['decided']:.3f}"
            + (f"  denied {r['denied']}" if r["denied"] else "")
            + (f"  FAILED {r['failed']:.0f}" if r["failed"] else ""))
        if mode in ("process", "attribution", "ids") and mode not in args.sample:
            out = d.cli("log", "--app", "web", "--json", "-n", "1", check=False).stdout
            e = next((json.loads(l) for l in out.splitlines() if l.strip()), {})
            args.sample[mode] = e.get("process")
    return rows


def measure_cell(d, th, bridge, sources, out_ports, n, dkey, modes, args, rnd, log):
    """One cell with n idle sockets: every inbound concurrency, and outbound in the first cell."""
    w = Web(d, n, args.tmp, "process" if modes == ["process"] else "address", args.jobs)
    try:
        estab, fds = w.wait_ready(th)
        rows = []
        cs = rotate(args.concurrency, rnd)
        for c in cs:
            meta = {"round": rnd, "direction": "in", "sockets": n, "estab": estab, "idle_fds": fds,
                    "daemon": dkey}
            rows += measure_slot(d, bridge, w, Target(th, w, "in", sources, out_ports), modes, c, args, meta, log)
        if n == args.socket_counts[0]:
            for c in rotate(args.outbound_concurrency, rnd):
                meta = {"round": rnd, "direction": "out", "sockets": n, "estab": estab, "idle_fds": fds,
                        "daemon": dkey}
                rows += measure_slot(d, bridge, w, Target(th, w, "out", sources, out_ports), modes, c, args, meta,
                                     log)
        return rows
    finally:
        w.stop()


def rotate(xs, k):
    k %= max(1, len(xs))
    return xs[k:] + xs[:k]


class Running:
    """A started cellwalld; on exit stops it and checks it left nothing behind."""

    def __init__(self, th, dkey, log):
        self.d = Daemon(th, DAEMONS[dkey])
        self.dkey, self.log = dkey, log

    def __enter__(self):
        self.d.start()
        if self.dkey == "ids" and "ids" not in self.d.new_log().lower():
            self.log("  warning: the daemon's log does not mention the IDS")
        return self.d

    def __exit__(self, *exc):
        self.d.stop()
        ns, ls, procs = leftovers()
        if ns or ls or procs:
            self.log(f"  cellwalld left behind netns={ns} links={ls} procs={procs}: cleaning up")
            self.d.force_cleanup()
        else:
            shutil.rmtree(self.d.state, ignore_errors=True)


def run_matrix(th, args, log, t0):
    rows = []
    groups = {}
    for m in args.modes:
        if m != "off":
            groups.setdefault(MODE_DAEMON[m], []).append(m)
    if not groups:
        groups = {"default": []}
    keys = list(groups)
    for rnd in range(args.rounds):
        for dkey in rotate(keys, rnd):
            log(f"round {rnd}: cellwalld {' '.join(DAEMONS[dkey])}  ({time.time() - t0:.0f} s)")
            with Running(th, dkey, log) as d:
                bridge = Bridge(d, args.static_table)
                sources, out_ports = Sources(th), OutPorts()
                for n in rotate(args.socket_counts, rnd):
                    rows += measure_cell(d, th, bridge, sources, out_ports, n, dkey, groups[dkey], args, rnd, log)
    return rows


def run_decay(th, args, log, t0):
    """For each mode: a new cell without idle sockets (its policy never changes: replacing it cuts
    the connections of the old rules, flows included) and --decay-rounds rounds of
    --decay-requests new connections, in --decay-pairs parts each paired with as many through
    "off" (order alternating); a round's ratio is the median of its parts' ratios. The bridge's
    flow count and Open vSwitch's conntrack entries after each round."""
    modes = [m for m in args.modes if m != "off"]
    if not modes or any(MODE_DAEMON[m] != "default" for m in modes):
        raise SystemExit("--decay takes the modes off and address and/or process")
    rows, rounds = [], []
    c = args.decay_concurrency
    part = args.decay_requests // args.decay_pairs
    with Running(th, "default", log) as d:
        bridge = Bridge(d, args.static_table)
        sources, out_ports = Sources(th), OutPorts()
        for mode in modes:
            w = Web(d, 0, args.tmp, "process" if mode == "process" else "address", args.jobs)
            try:
                w.wait_ready(th)
                target = Target(th, w, "in", sources, out_ports)
                rounds.append({"mode": mode, "round": -1, "flows": bridge.flow_count(),
                               "conntrack": bridge.conntrack_count()})
                for rnd in range(args.decay_rounds):
                    ratios_, mine = [], []
                    for j in range(args.decay_pairs):
                        pair = {}
                        for m in rotate(["off", mode], rnd + j):
                            r = measure(d, bridge, target, m, part, c, 2 * c)
                            r.update(round=rnd, part=j, mode=m, direction="in", sockets=0, concurrency=c, daemon=mode)
                            pair[m] = r
                            rows.append(r)
                        mine.append(pair[mode])
                        if pair["off"]["rps"] is not None and pair[mode]["rps"] is not None:
                            ratios_.append(pair[mode]["rps"] / pair["off"]["rps"])
                    e = {"mode": mode, "round": rnd, "flows": bridge.flow_count(),
                         "conntrack": bridge.conntrack_count(), "ratios": ratios_,
                         "ratio": statistics.median(ratios_) if ratios_ else None,
                         "failed": sum(1 for r in mine if r["rps"] is None)}
                    ok = [r for r in mine if r["rps"] is not None]
                    e["rps"] = sum(r["requests"] for r in ok) / sum(r["requests"] / r["rps"] for r in ok) if ok else None
                    rounds.append(e)
                    log(f"  decay {mode} round {rnd}: {mode} {e['rps'] or 0:.0f} req/s, ratio to off (median of "
                        f"{len(ratios_)}) {e['ratio'] or 0:.3f} [{min(ratios_, default=0):.3f}-"
                        f"{max(ratios_, default=0):.3f}], flows on the bridge {e['flows']}, conntrack entries "
                        f"{e['conntrack']}" + (f", {e['failed']} parts failed" if e["failed"] else "")
                        + f"  ({time.time() - t0:.0f} s)")
            finally:
                w.stop()
                # The daemon removes the cell's flows (and, with per-connection flows, hears of each
                # one's end): wait until it answers again, and say how long that took.
                t = time.time()
                d.cli("ps", timeout=900)
                rounds.append({"mode": mode, "round": "stop", "busy_s": time.time() - t})
                log(f"  decay {mode}: cellwalld answered {time.time() - t:.1f} s after the cell stopped")
    return rows, rounds


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


def ratios(rows):
    """{(direction, sockets, concurrency, mode): [ratio per slot]} against the slot's "off"."""
    out = {}
    for r in rows:
        if r["mode"] == "off" or r["rps"] is None:
            continue
        o = next((x for x in rows if x["mode"] == "off" and x["rps"] is not None and x["round"] == r["round"]
                  and x["direction"] == r["direction"] and x["sockets"] == r["sockets"]
                  and x["concurrency"] == r["concurrency"] and x.get("daemon") == r.get("daemon")
                  and x.get("part") == r.get("part")), None)
        if o:
            out.setdefault((r["direction"], r["sockets"], r["concurrency"], r["mode"]), []).append(r["rps"] / o["rps"])
    return out


def summarize(rows):
    table = []
    rs = ratios(rows)
    keys = sorted({(r["direction"], r["sockets"], r["concurrency"], r["mode"]) for r in rows},
                  key=lambda k: (k[0] != "in", k[1], k[2], MODES.index(k[3])))
    for k in keys:
        all_xs = [r for r in rows if (r["direction"], r["sockets"], r["concurrency"], r["mode"]) == k]
        xs = [r for r in all_xs if r["rps"] is not None]
        e = {"direction": k[0], "sockets": k[1], "concurrency": k[2], "mode": k[3], "count": len(xs),
             "errors": sum(len(r.get("errors", [])) for r in all_xs) + len(all_xs) - len(xs),
             "denied": sum(r.get("denied", 0) for r in xs)}
        table.append(e)
        if not xs:
            continue
        e.update({
             "rps_median": statistics.median(r["rps"] for r in xs),
             "rps_min": min(r["rps"] for r in xs), "rps_max": max(r["rps"] for r in xs),
             "mean_ms_median": statistics.median(r["mean_ms"] for r in xs),
             "failed": sum(r["failed"] for r in xs), "decided_min": min(r["decided"] for r in xs),
             "decided_max": max(r["decided"] for r in xs)})
        if k in rs:
            e.update(ratio_median=statistics.median(rs[k]), ratio_min=min(rs[k]), ratio_max=max(rs[k]),
                     pairs=len(rs[k]))
    return table


def print_table(table):
    print("\ndir sockets    c  mode         n  req/s median [min-max]     mean ms  ratio to off median [min-max]"
          "  decided")
    for e in table:
        if not e["count"]:
            print(f"{e['direction']:<3} {e['sockets']:>7} {e['concurrency']:>4}  {e['mode']:<11}  0  "
                  f"no result: {e['errors']} failed measurements")
            continue
        line = (f"{e['direction']:<3} {e['sockets']:>7} {e['concurrency']:>4}  {e['mode']:<11} {e['count']:>2}  "
                f"{e['rps_median']:8.0f} [{e['rps_min']:6.0f}-{e['rps_max']:6.0f}]  {e['mean_ms_median']:8.3f}")
        line += (f"  {e['ratio_median']:.3f} [{e['ratio_min']:.3f}-{e['ratio_max']:.3f}]"
                 if "ratio_median" in e else " " * 29)
        line += f"  {e['decided_min']:.2f}-{e['decided_max']:.2f}"
        if e["failed"]:
            line += f"  failed {e['failed']:.0f}"
        if e["denied"]:
            line += f"  denied {e['denied']}"
        if e["errors"]:
            line += f"  ({e['errors']} failed measurements: ab got no answer)"
        print(line)
    modes = [m for m in MODES if any(e["mode"] == m and "ratio_median" in e for e in table)]
    if not modes:
        return
    print("\nratio to off, median [min-max] over pairs\ndir sockets    c  " + "".join(f"{m:<22}" for m in modes))
    cells = sorted({(e["direction"], e["sockets"], e["concurrency"]) for e in table},
                   key=lambda k: (k[0] != "in", k[1], k[2]))
    for cell in cells:
        line = f"{cell[0]:<3} {cell[1]:>7} {cell[2]:>4}  "
        for m in modes:
            e = next((e for e in table if (e["direction"], e["sockets"], e["concurrency"], e["mode"]) == cell + (m,)
                      and "ratio_median" in e), None)
            line += (f"{e['ratio_median']:.2f} [{e['ratio_min']:.2f}-{e['ratio_max']:.2f}]".ljust(22) if e
                     else " " * 22)
        print(line)


def print_profile(rows):
    """Per cell of the matrix and mode: the median over rounds of each group's CPU µs per request,
    and of each coverage counter per request (the ones that moved)."""
    cells = sorted({(r["direction"], r["sockets"], r["concurrency"]) for r in rows if "cpu_us" in r},
                   key=lambda k: (k[0] != "in", k[1], k[2]))
    for cell in cells:
        xs = {m: [r for r in rows if (r["direction"], r["sockets"], r["concurrency"]) == cell and r["mode"] == m
                  and "cpu_us" in r] for m in MODES}
        xs = {m: v for m, v in xs.items() if v}
        print(f"\nprofile {cell[0]} sockets {cell[1]} c {cell[2]}: per request, median over {len(next(iter(xs.values())))}"
              " rounds")
        print("  " + " " * 34 + "".join(f"{m:>12}" for m in xs))
        for what, key in (("CPU us", "cpu_us"), ("events", "coverage")):
            names = []
            for m in xs:
                for r in xs[m]:
                    names += [k for k in r[key] if k not in names]
            for k in names:
                vals = [statistics.median(r[key].get(k, 0) for r in xs[m]) for m in xs]
                if max(vals) < (1.0 if key == "cpu_us" else 0.01):
                    continue
                print(f"  {what:<7}{k:<27}" + "".join(f"{v:12.2f}" for v in vals))


def print_decay(rounds):
    print("\nmode         round  req/s   ratio to off: median [min-max]  flows after  conntrack after")
    for mode in [m for m in MODES if any(f["mode"] == m for f in rounds)]:
        xs = []
        for f in (f for f in rounds if f["mode"] == mode):
            if f["round"] == "stop":
                print(f"{mode:<12} cellwalld answered {f['busy_s']:.1f} s after the cell stopped")
                continue
            if f["round"] < 0:
                print(f"{mode:<12} start{'':>42}{f['flows']:>11}  {f['conntrack']}")
                continue
            if f["ratio"] is None:
                print(f"{mode:<12} {f['round']:>5}  failed{'':>34}{f['flows']:>11}  {f['conntrack']}")
                continue
            xs.append(f["ratio"])
            print(f"{mode:<12} {f['round']:>5}  {f['rps']:6.0f}  {f['ratio']:.3f} [{min(f['ratios']):.3f}-"
                  f"{max(f['ratios']):.3f}]{'':>11}{f['flows']:>11}  {f['conntrack']}")
        if xs:
            print(f"{mode}: last round's ratio / first round's = {xs[-1] / xs[0]:.3f}"
                  + (f"; median of the last 3 / of the first 3 = "
                     f"{statistics.median(xs[-3:]) / statistics.median(xs[:3]):.3f}" if len(xs) >= 6 else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the whole matrix in about 7 minutes: 3 rounds, "
                    "2,000 requests per measurement")
    ap.add_argument("--socket-counts", default="0,100,1000", help="idle sockets in the cell, comma-separated")
    ap.add_argument("--modes", default="off,address,process", help="of " + ",".join(MODES))
    ap.add_argument("--requests", type=int, default=5000, help="requests (each a new connection) per measurement, "
                    "in chunks of at most 5,000, each from its own source address or to its own server port")
    ap.add_argument("--concurrency", "--concurrency-list", default="1,16,100", help="inbound ab -c, comma-separated")
    ap.add_argument("--outbound-concurrency", default="1,16", help="outbound ab -c (ab in the cell), "
                    "comma-separated; empty: no outbound")
    ap.add_argument("--warmup", type=int, default=300, help="requests before each measurement (at least 2 x c)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--static-table", type=int, default=2, help="table of the static \"off\" flows: where "
                    "cellwall's connection handling starts")
    ap.add_argument("--decay", action="store_true", help="instead of the matrix: rounds of new connections, "
                    "ratio and flow count per round")
    ap.add_argument("--decay-rounds", type=int, default=10)
    ap.add_argument("--decay-requests", type=int, default=5000)
    ap.add_argument("--decay-concurrency", type=int, default=16)
    ap.add_argument("--decay-pairs", type=int, default=5, help="parts of a round, each paired with \"off\"")
    ap.add_argument("--attrib-bench", action="store_true", help="also run cw-attrib-bench (µs per attribution "
                    "against open sockets)")
    ap.add_argument("--profile", action="store_true", help="per measurement, CPU µs per request of every "
                    "thread group (ovs-vswitchd's threads by name, cellwalld, nginx, softirq, ...) and Open "
                    "vSwitch's coverage counters per request (bench/sysprof.py); printed per cell and mode")
    ap.add_argument("--json", metavar="FILE", help="write every measurement and the summary here as JSON")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.warmup, args.rounds = 2000, 100, 3
    global PROFILE
    PROFILE = args.profile
    args.socket_counts = [int(x) for x in args.socket_counts.split(",") if x]
    args.concurrency = [int(x) for x in args.concurrency.split(",") if x]
    args.outbound_concurrency = [int(x) for x in args.outbound_concurrency.split(",") if x]
    args.modes = [ALIASES.get(m, m) for m in args.modes.split(",") if m]
    bad = set(args.modes) - set(MODES)
    if bad:
        ap.error(f"unknown modes {sorted(bad)}; known: {MODES}")
    if args.warmup >= CHUNK:
        ap.error(f"--warmup must stay below {CHUNK}")
    if os.geteuid() != 0:
        ap.error("run as root (namespaces, Open vSwitch, cellwalld)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def log(s):
        print(s, file=sys.stderr, flush=True)

    take_lock()
    t0 = time.time()
    args.tmp = tempfile.mkdtemp(prefix="cw-nginx-")
    args.sample, args.slot = {}, 0
    th = server = None
    rows, flows, attrib = [], [], []
    try:
        tmp = Path(args.tmp)
        os.chmod(tmp, 0o755)
        (tmp / "www").mkdir(mode=0o755)
        (tmp / "www" / "index.html").write_text("<html><body>" + "cellwall nginx bench " * 28 + "</body></html>\n")
        nobody = pwd.getpwnam("nobody")
        (tmp / "run").mkdir(mode=0o755)
        os.chown(tmp / "run", nobody.pw_uid, nobody.pw_gid)
        (tmp / "host-run").mkdir(mode=0o755)
        (tmp / "nginx.conf").write_text(NGINX.format(run=tmp / "run", dir=tmp, extra="",
                                                     listen=f"        listen {CELL_PORT} backlog=4096;"))
        # The test host's server: one process (no master), so killing it leaves nothing behind.
        (tmp / "host-nginx.conf").write_text(NGINX.format(
            run=tmp / "host-run", dir=tmp, extra="master_process off;",
            listen="\n".join(f"        listen {p} backlog=4096;" for p in OUT_PORTS)))
        (tmp / "idle.py").write_text(IDLE)
        for p in tmp.rglob("*"):
            if p.is_file():
                p.chmod(0o644)
        args.jobs = CellJobs(tmp)
        th = TestHost()
        if args.outbound_concurrency and not args.decay:
            server = subprocess.Popen(["ip", "netns", "exec", th.ns, "/usr/sbin/nginx", "-p", str(tmp / "host-run"),
                                       "-c", str(tmp / "host-nginx.conf"), "-e", "stderr", "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=open(tmp / "host-nginx.log", "w"))
        if args.decay:
            rows, flows = run_decay(th, args, log, t0)
        else:
            rows = run_matrix(th, args, log, t0)
        if args.attrib_bench:
            attrib = attrib_bench(log)
    finally:
        if server:
            server.kill()
            server.wait()
        if th:
            th.close()
        shutil.rmtree(args.tmp, ignore_errors=True)
    table = summarize(rows)
    print_table(table)
    if args.profile:
        print_profile(rows)
    if flows:
        print_decay(flows)
    for mode, s in args.sample.items():
        print(f"\n{mode}: a measured connection was attributed to {json.dumps(s)}")
    if attrib:
        print("\ncw-attrib-bench (median of 3):")
        for a in attrib:
            print(f"  {a['name']:<28} {a['ns'] / 1000:7.2f} us  ({a['sockets']:.0f} sockets)")
    print(f"\ntotal {time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k not in ("tmp", "jobs")},
                                               "summary": table, "runs": rows, "flows": flows,
                                               "attrib_bench": attrib}, indent=1))


if __name__ == "__main__":
    main()
