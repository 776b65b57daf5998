"""End-to-end fixtures: real Open vSwitch, real namespaces, real servers.

Everything a test creates carries a cw- name and is removed by a finalizer, even when the
test fails. Traffic only ever goes between namespaces these fixtures create.
"""
import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CW_BUILD_DIR", ROOT / "build" / "release"))
CELLWALL = BUILD / "src" / "cli" / "cellwall"
CELLWALLD = BUILD / "src" / "daemon" / "cellwalld"

TESTHOST_IP = "10.250.0.1"
GATEWAY_UPLINK_IP = "10.250.0.2"
# How long the switch goes on deciding new connections by a cell's rules after cellwalld is
# gone (decide::kRulesLeaseS, docs/pipeline.md): the lease of the flows that send them there.
RULES_LEASE_S = 3
POOL = "10.200.0.0/16"
GATEWAY_IP = "10.200.0.1"
# Names the test host's DNS server knows (beyond test.example), and the addresses it serves
# them from: every address is on the test host, so each name is a reachable, distinct host.
NAMES = {
    "api.example.test": "10.250.1.10",
    "evil.test": "10.250.1.66",
    "cdn.example.net": "10.250.1.20",
    "direct.example.test": "10.250.1.30",
    "v6.example.test": "fd00:250::10",
}
CNAMES = {"www.example.test": "cdn.example.net"}


def sh(cmd, check=True, timeout=60, **kw):
    """Runs a command (list) and returns CompletedProcess with text output."""
    return subprocess.run(cmd, check=check, timeout=timeout, capture_output=True, text=True, **kw)


def netns_list():
    out = sh(["ip", "-json", "netns", "list"], check=False).stdout.strip()
    return [n["name"] for n in json.loads(out)] if out else []


def links(prefix="cw-"):
    out = sh(["ip", "-json", "link", "show"]).stdout
    return [l["ifname"] for l in json.loads(out) if l["ifname"].startswith(prefix)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestHost:
    """A namespace standing in for the internet: the default environment's uplink peer.

    Serves HTTP on 8080, a UDP echo on 5353, DNS for test.example and answers ping, all on TESTHOST_IP (the address
    is put on the uplink veth by cellwall's gateway; the servers bind 0.0.0.0).
    """

    def __init__(self):
        self.ns = "cw-th%04x" % random.randrange(0x10000)
        self.procs = []
        sh(["ip", "netns", "add", self.ns])
        sh(["ip", "-n", self.ns, "link", "set", "lo", "up"])
        self.www = tempfile.mkdtemp(prefix="cw-www-")
        Path(self.www, "index.html").write_text("hello from the test host\n")

    def start_servers(self):
        self.add_addresses()
        self.spawn(["/usr/bin/python3", "-m", "http.server", "8080", "--bind", "0.0.0.0",
                    "--directory", self.www])
        echo = ("import socket\n"
                "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "s.bind(('0.0.0.0',5353))\n"
                "while True:\n"
                "  d,a=s.recvfrom(2048); s.sendto(b'echo:'+d,a)\n")
        self.spawn(["/usr/bin/python3", "-c", echo])
        # A TCP echo server (long-lived connections: cutting them is observable).
        techo = ("import socket,threading\n"
                 "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                 "s.bind(('0.0.0.0',7777)); s.listen(64)\n"
                 "def serve(c):\n"
                 "  while True:\n"
                 "    d=c.recv(4096)\n"
                 "    if not d: break\n"
                 "    c.sendall(d)\n"
                 "while True:\n"
                 "  c,_=s.accept(); threading.Thread(target=serve,args=(c,),daemon=True).start()\n")
        self.spawn(["/usr/bin/python3", "-c", techo])
        # The environment's upstream resolver: knows test.example and the names of NAMES,
        # refuses the rest at once.
        records = [f"--host-record={n},{a}" for n, a in NAMES.items()]
        records += [f"--cname={alias},{target}" for alias, target in CNAMES.items()]
        self.spawn(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                    "--bind-interfaces", f"--listen-address={TESTHOST_IP}", "--pid-file=",
                    "--user=root", f"--address=/test.example/{TESTHOST_IP}", "--log-facility=-"]
                   + records)
        time.sleep(0.3)

    def add_addresses(self):
        """Puts the addresses NAMES resolve to on the test host, so they answer too."""
        for a in set(NAMES.values()):
            if ":" not in a:
                self.exec(["ip", "addr", "add", a + "/32", "dev", "cw-u-default"], check=False)

    def spawn(self, argv):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns] + argv,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def exec(self, argv, **kw):
        return sh(["ip", "netns", "exec", self.ns] + argv, **kw)

    def capture(self, bpf):
        return Capture(self.ns, "cw-u-default", bpf)

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        sh(["ip", "netns", "del", self.ns], check=False)
        shutil.rmtree(self.www, ignore_errors=True)


def with_tagged(bpf):
    """The filter, also for the same frames inside an 802.1Q tag. A filter without a `vlan`
    term reads a frame whose tag is still in its bytes 4 bytes off, so a tagged frame that got
    out could go unnoticed; with the `vlan` branch it is matched whether the kernel left the tag
    in the frame or moved it into metadata. A filter that names `vlan` already is left as
    written. (`vlan` must come last: libpcap reads every term after it 4 bytes further on.)"""
    return bpf if "vlan" in bpf else f"({bpf}) or (vlan and ({bpf}))"


class Capture:
    """tcpdump on an interface inside a namespace; count() stops it and counts packets. It
    sees tagged frames too (with_tagged)."""

    def __init__(self, ns, ifname, bpf):
        self.file = tempfile.mktemp(prefix="cw-cap-", suffix=".pcap")
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", ns, "tcpdump", "--immediate-mode", "-i", ifname, "-U", "-n", "-w", self.file,
             with_tagged(bpf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # tcpdump says "listening on" once the capture is armed.
        deadline = time.time() + 10
        line = ""
        while time.time() < deadline and "listening" not in line:
            line = self.p.stderr.readline()
        assert "listening" in line, "tcpdump did not start"
        # A test that fails before lines() still leaves nothing behind.
        atexit.register(self.discard)

    def discard(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if os.path.exists(self.file):
            os.unlink(self.file)

    def lines(self):
        """Stops the capture; the packets as tcpdump prints them, one line each."""
        time.sleep(0.5)
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=10)
        out = sh(["tcpdump", "-n", "-r", self.file], check=False).stdout
        os.unlink(self.file)
        return [l for l in out.splitlines() if l.strip()]

    def count(self):
        return len(self.lines())


class Daemon:
    """cellwalld with its own state directory, an embedded Open vSwitch and one environment
    whose uplink is the test host namespace."""

    def __init__(self, testhost, extra_args=(), config_text=None):
        self.extra_args = list(extra_args)
        self.state = tempfile.mkdtemp(prefix="cw-state-")
        self.testhost = testhost
        self.config = Path(self.state, "cellwalld.toml")
        self.config.write_text(config_text if config_text is not None else f"""
[env.default]
pool = "{POOL}"
dns = ["{TESTHOST_IP}"]
[env.default.uplink]
kind = "netns"
netns = "{testhost.ns}"
address = "{GATEWAY_UPLINK_IP}/24"
peer_address = "{TESTHOST_IP}/24"
""")
        self.log = Path(self.state, "cellwalld.log")
        self.proc = None

    def new_log(self):
        return self.log.read_text()[self.log_offset:]

    def start(self):
        self.log_offset = len(self.log.read_text()) if self.log.exists() else 0
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [str(CELLWALLD), "--state-dir", self.state, "--config", str(self.config)]
            + ([] if "--ui-listen" in self.extra_args else ["--ui-listen", "127.0.0.1:0"])
            + self.extra_args
            + os.environ.get("CW_DAEMON_ARGS", "").split(),
            stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("cellwalld exited at start:\n" + self.log.read_text())
            if "cellwalld ready" in self.new_log():
                break
            time.sleep(0.1)
        else:
            raise AssertionError("cellwalld not ready in 60 s:\n" + self.log.read_text())
        self.wait_programmed()

    def ui_url(self):
        """The web UI's address with its token, as `cellwall ui` prints it."""
        return self.cli("ui").stdout.strip()

    def wait_programmed(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "programmed" in self.new_log():
                return
            time.sleep(0.1)
        raise AssertionError("bridge never programmed:\n" + self.log.read_text())

    def cli(self, *args, check=True, timeout=60):
        return sh([str(CELLWALL), "--state-dir", self.state] + list(args), check=check,
                  timeout=timeout)

    def run_cell(self, policy, command, app="test", user="nobody", timeout=60):
        pf = Path(self.state, f"{app}.toml")
        pf.write_text(policy)
        return sh([str(CELLWALL), "--state-dir", self.state, "run", "--app", app, "--policy",
                   str(pf), "--user", user, "--"] + command, check=False, timeout=timeout)

    def start_cell(self, policy, command, app="bg", user="nobody", run_args=()):
        """A cell in the background; returns (Popen, cell dict from `cellwall ps`).
        run_args: more `cellwall run` flags (--inspect, --publish ...)."""
        pf = Path(self.state, f"{app}.toml")
        pf.write_text(policy)
        p = subprocess.Popen([str(CELLWALL), "--state-dir", self.state, "run", "--app", app, *run_args,
                              "--policy", str(pf), "--user", user, "--"] + command,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            for c in self.cells():
                if c["app"] == app:
                    return p, c
            time.sleep(0.1)
        p.kill()
        out, err = p.communicate()
        raise AssertionError("background cell did not appear: " + err + "\n" + self.new_log())

    def cells(self):
        out = self.cli("ps", check=False).stdout.splitlines()[1:]
        cells = []
        for line in out:
            f = line.split()
            cells.append({"id": f[0], "app": f[1], "env": f[2], "backend": f[3], "ip": f[4], "mac": f[5],
                          "port": f[6], "netns": f[7]})
        return cells

    def sh_in_cell(self, cell, argv, check=False, timeout=30):
        """Runs argv in the cell's network namespace (as root, outside its mount namespace)."""
        return sh(["ip", "netns", "exec", cell["netns"]] + argv, check=check, timeout=timeout)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def force_cleanup(self):
        """Last resort after a failed stop: kill the embedded OVS and remove our objects."""
        for pidfile in Path(self.state).rglob("*.pid"):
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError, OSError):
                pass
        for pidfile in Path(self.state).rglob("*.pid"):
            pass
        sh(["pkill", "-9", "-f", "wireguard-go -f cw-w-"], check=False)
        sh(["pkill", "-9", "-f", "name=cw.ctl"], check=False)
        for sock in Path("/run/wireguard").glob("cw-w-*.sock"):
            sock.unlink(missing_ok=True)
        for ns in netns_list():
            if ns.startswith("cw-c") or ns.startswith("cw-g-") or ns == "cw-ids":
                sh(["ip", "netns", "del", ns], check=False)
        for l in links():
            if l.startswith("cw-c") or l.startswith("cw-g-") or l.startswith("cw-br") or l == "cw-ids":
                sh(["ip", "link", "del", l], check=False)
        for cg in cell_cgroups():
            try:
                Path(cg, "cgroup.kill").write_text("1\n")
                time.sleep(0.2)
                os.rmdir(cg)
            except OSError:
                pass
        shutil.rmtree(self.state, ignore_errors=True)


def curl_in_cell(d, policy, app, port=8080, max_time=20, host=TESTHOST_IP):
    """curl in a new cell of `app`, in the background; returns the Popen, whose stdout is the
    HTTP code ("000": no answer). policy None: the app's stored policy (no --policy)."""
    argv = [str(CELLWALL), "--state-dir", d.state, "run", "--app", app]
    if policy is not None:
        pf = Path(d.state, f"{app}.toml")
        pf.write_text(policy)
        argv += ["--policy", str(pf)]
    return subprocess.Popen(argv + ["--", "curl", "-s", "-o", "/dev/null", "--max-time", str(max_time),
                                    "-w", "%{http_code}", f"http://{host}:{port}/"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p, timeout=30):
    """(stdout stripped, stderr) of a process from curl_in_cell, once it ends."""
    out, err = p.communicate(timeout=timeout)
    return out.strip(), err


def leftovers():
    ns = [n for n in netns_list() if n.startswith("cw-c") or n.startswith("cw-g-") or n == "cw-ids"]
    ls = [l for l in links() if l.startswith("cw-c") or l.startswith("cw-g-") or l in ("cw-br0", "cw-ids")]
    procs = (sh(["pgrep", "-a", "-f", "cw-state-"], check=False).stdout +
             sh(["pgrep", "-a", "-f", "netns/cw-g-"], check=False).stdout +
             sh(["pgrep", "-a", "-f", "wireguard-go -f cw-w-"], check=False).stdout +
             # a VM cell's VMM (its control port's name is cellwall's)
             sh(["pgrep", "-a", "-f", "name=cw.ctl"], check=False).stdout).strip()
    procs += " ".join(str(p) for p in Path("/run/wireguard").glob("cw-w-*.sock"))
    procs += " ".join(cell_cgroups())
    return ns, ls, procs


def cell_cgroups():
    """Cells' cgroups (cellwall/cw-c*) that exist now."""
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    return [str(p) for m in mounts for p in Path(m, "cellwall").glob("cw-c*")]


@pytest.fixture
def testhost():
    th = TestHost()
    try:
        yield th
    finally:
        th.close()


def _daemon(testhost, extra_args=()):
    d = Daemon(testhost, extra_args)
    try:
        d.start()
        testhost.start_servers()
        yield d
    finally:
        d.stop()
        ns, ls, procs = leftovers()
        clean = not ns and not ls and not procs
        if not clean:
            d.force_cleanup()
        else:
            shutil.rmtree(d.state, ignore_errors=True)
        assert clean, f"cellwalld left behind: netns={ns} links={ls} procs={procs}"


@pytest.fixture
def daemon(testhost):
    yield from _daemon(testhost)


@pytest.fixture
def metered_daemon(testhost):
    """A daemon whose cells may send at most 100 Packet-Ins/s to the controller."""
    yield from _daemon(testhost, ["--cell-packet-in-rate", "100"])


@pytest.fixture(scope="module")
def module_testhost():
    th = TestHost()
    try:
        yield th
    finally:
        th.close()


@pytest.fixture(scope="module")
def mdaemon(module_testhost):
    yield from _daemon(module_testhost)
