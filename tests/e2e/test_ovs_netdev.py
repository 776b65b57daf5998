"""End-to-end test of src/ovs, src/netdev and src/env on the real system (root only).

Drives tests/e2e/tools/cw_sys_probe: embedded OVS in a temp state dir, one environment gateway
with a netns uplink to a test-host namespace made here, one cell plugged into the bridge.
Run: sudo /usr/bin/python3 -m pytest tests/e2e/test_ovs_netdev.py
The probe is found via $CW_SYS_PROBE or under build/*/. Traffic stays between namespaces
created here. Everything is removed at the end, also when a check fails.
"""
import glob
import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

HOST_NS = "cw-e2e-host"
CELL = "cw-e2e-c0"
ENV = "e2e"
BRIDGE = "cw-br-e2e"
GW_NS = "cw-g-" + ENV
UPLINK_GW = "10.254.77.2/30"
UPLINK_PEER = "10.254.77.1/30"
POOL = "10.231.0.0/16"
DNS_MARK = "--listen-address=10.231.0.1"

# ICMP echo via a raw socket: iputils-ping may not be installed.
PING = r"""
import socket, struct, sys, time
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1.0)
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
body = struct.pack("!BBHHH", 8, 0, 0, 0x4357, 1) + b"cellwall"
pkt = body[:2] + struct.pack("!H", csum(body)) + body[4:]
s.sendto(pkt, (dst, 0))
end = time.time() + 1.0
while time.time() < end:
    data, addr = s.recvfrom(2048)
    ihl = (data[0] & 0x0f) * 4
    if addr[0] == dst and data[ihl] == 0: sys.exit(0)
sys.exit(1)
"""


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


def ping(ns, dst):
    return subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", PING, dst],
                          capture_output=True, text=True, timeout=10).returncode == 0


def probe_binary():
    if os.environ.get("CW_SYS_PROBE"):
        return os.environ["CW_SYS_PROBE"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    found = sorted(glob.glob(os.path.join(root, "build", "*", "tests", "e2e", "tools", "cw_sys_probe")) +
                   glob.glob(os.path.join(root, "build", "*", "tools", "cw_sys_probe")), key=os.path.getmtime)
    if not found:
        pytest.fail("cw_sys_probe not built (cmake --build <dir> --target cw_sys_probe) or set CW_SYS_PROBE")
    return found[-1]


def netns_names():
    out = sh("ip", "-json", "netns", "list").stdout.strip()
    return [n["name"] for n in json.loads(out)] if out else []


def link_names():
    return [l["ifname"] for l in json.loads(sh("ip", "-json", "link", "show").stdout)]


def procs_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture
def world():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    state = tempfile.mkdtemp(prefix="cw-e2e-")
    sh("ip", "netns", "add", HOST_NS)
    proc = None
    ctx = {"state": state, "proc": None}
    try:
        yield ctx
    finally:
        proc = ctx["proc"]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        # Anything the probe failed to remove: its daemons (by state dir or the gateway's
        # address) and our names.
        for pid in procs_mentioning(state) + procs_mentioning(DNS_MARK):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for ns in (GW_NS, CELL, HOST_NS):
            sh("ip", "netns", "del", ns, check=False)
        for link in (CELL, GW_NS, "cw-u-" + ENV, BRIDGE):
            sh("ip", "link", "del", "dev", link, check=False)
        subprocess.run(["rm", "-rf", state], check=False)


def test_bridge_gateway_and_cleanup(world):
    state = world["state"]
    proc = subprocess.Popen(
        [probe_binary(), "--state", state, "--bridge", BRIDGE, "--env", ENV, "--pool", POOL,
         "--uplink-netns", HOST_NS, "--uplink-gw", UPLINK_GW, "--uplink-peer", UPLINK_PEER,
         "--cell-netns", CELL, "--cell-if", CELL],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    world["proc"] = proc
    made = json.loads(proc.stdout.readline())
    assert "error" not in made, made["error"]
    db = "--db=" + made["db"]

    # The bridge: secure, OpenFlow 1.0 + 1.3, our ports, out-of-band controller.
    def get(table, record, column):
        return sh("ovs-vsctl", db, "get", table, record, column).stdout.strip()
    assert get("Bridge", BRIDGE, "fail_mode") == "secure"
    assert get("Bridge", BRIDGE, "protocols") == "[OpenFlow10, OpenFlow13]"
    assert get("Bridge", BRIDGE, "datapath_type") == made["datapath_type"]
    assert get("Bridge", BRIDGE, "other_config:disable-in-band") == '"true"'
    assert int(get("Bridge", BRIDGE, "datapath_id").strip('"'), 16) == made["datapath_id"]
    assert sorted(sh("ovs-vsctl", db, "list-ports", BRIDGE).stdout.split()) == sorted([CELL, GW_NS])
    assert made["ports"][GW_NS] == 1
    assert made["ports"][CELL] == made["cell"]["ofport"] > 0

    # No flows at all: secure mode and no NORMAL, so nothing forwards without the controller.
    flows = sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", made["ofctl"]).stdout
    assert [l for l in flows.splitlines() if "actions=" in l] == []

    # The gateway reaches the test host over its uplink; dnsmasq runs on the gateway address.
    assert made["gateway"]["dns_alive"]
    assert ping(GW_NS, UPLINK_PEER.split("/")[0])
    listening = sh("ip", "netns", "exec", GW_NS, "ss", "-lun").stdout
    assert made["gateway"]["ip"] + ":53" in listening
    # The cell cannot reach the gateway: the switch has no flows.
    sh("ip", "-n", CELL, "addr", "add", "10.231.0.2/32", "dev", "eth0")
    sh("ip", "-n", CELL, "route", "add", "default", "via", made["gateway"]["ip"], "dev", "eth0", "onlink")
    assert not ping(CELL, made["gateway"]["ip"])

    # Stop: everything goes away.
    out, _ = proc.communicate("\n", timeout=60)
    final = json.loads(out.strip().splitlines()[-1])
    assert final["stopped"] and final["errors"] == []
    assert proc.returncode == 0
    left = [n for n in netns_names() if n.startswith("cw-") and n != HOST_NS]
    assert left == []
    assert [l for l in link_names() if l in (CELL, GW_NS, "cw-u-" + ENV, BRIDGE)] == []
    time.sleep(0.2)
    assert procs_mentioning(state) == []
    assert procs_mentioning(DNS_MARK) == []
    assert not os.path.exists(os.path.join(state, "ovs"))
