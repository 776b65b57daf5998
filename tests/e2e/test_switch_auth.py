"""Nobody poses as the bridge (issue 19): an unprivileged local process speaks OpenFlow, as a
switch claiming the bridge's datapath id, to every socket and port cellwalld listens on, and
sends a forged Packet-In with the DNS-answer cookie that would bind api.example.test to an
address of its choosing in a running cell's name table. It must never be taken as a switch:
the bridge's connection stays, the name table does not change, and the cell, allowed only
api.example.test, still reaches the real address and not the forged one."""
import json
import re
from pathlib import Path

import pytest

from conftest import GATEWAY_IP, NAMES, _daemon, free_port, sh
from ofswitch import dns_answer_frame

OFSWITCH = Path(__file__).with_name("ofswitch.py")
DNSQ = str(Path(__file__).with_name("dnsq.py"))
REAL = NAMES["api.example.test"]
FORGED = NAMES["evil.test"]  # on the test host too: reachable if the forged name were believed
POLICY = """default = "deny"
[[allow]]
proto = "tcp"
hosts = ["api.example.test"]
ports = 8080
"""
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
COOKIE_DNS_ANSWER = 0x04  # decide/pipeline.h: kind in bits 63..56, cell id in 55..32


@pytest.fixture
def tcp_daemon(testhost):
    """A daemon with the plain TCP listener switched on (--of-port)."""
    yield from _daemon(testhost, ["--of-port", str(free_port())])


def listeners(pid):
    """Every TCP port and UNIX socket the process listens on, as ofswitch.py targets, from ss."""
    out = []
    for line in sh(["ss", "-H", "-l", "-n", "-p", "-t"]).stdout.splitlines():
        if f"pid={pid}," not in line:
            continue
        host, port = line.split()[3].rsplit(":", 1)
        host = {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "::1"}.get(host, host)
        out.append(f"tcp:{host}:{port}")
    for line in sh(["ss", "-H", "-l", "-n", "-p", "-x"]).stdout.splitlines():
        if f"pid={pid}," in line:
            out.append("unix:" + line.split()[4])  # u_str LISTEN recv-q send-q PATH inode ...
    return out


def ovs_get(d, *what):
    return sh(["ovs-vsctl", f"--db=unix:{d.state}/ovs/db.sock", "get", *what]).stdout.strip().strip('"')


def switch_lines(d):
    return [l for l in d.cli("status").stdout.splitlines() if l.startswith("switch ")]


def reach(d, cell, ip):
    r = d.sh_in_cell(cell, ["curl", "-s", "-o", "/dev/null", "--max-time", "3", "-w", "%{http_code}",
                            f"http://{ip}:8080/"])
    return r.stdout.strip()


def pose_as_the_bridge(d, targets, cell):
    """Runs the fake switch as uid 65534 against each target; its results, one per target."""
    dpid = int(ovs_get(d, "Bridge", "cw-br0", "other_config:datapath-id"), 16)
    gw_port = int(ovs_get(d, "Interface", "cw-g-default", "ofport"))
    # The resolver's answer to the cell, as the switch would copy it to the controller.
    frame = dns_answer_frame(GATEWAY_IP, cell["ip"], "api.example.test", FORGED).hex()
    args = {"targets": targets, "dpid": dpid, "in_port": gw_port, "frame": frame,
            "cookie": (COOKIE_DNS_ANSWER << 56) | ((int(cell["id"]) & 0xFFFFFF) << 32)}
    source = OFSWITCH.read_text()  # on the command line: the checkout may be unreadable to nobody
    r = sh(NOBODY + ["/usr/bin/python3", "-c", source, json.dumps(args)], timeout=120)
    return [json.loads(l) for l in r.stdout.splitlines()]


def check_nobody_took_the_bridge(d, cell, before_switches, connected_before, results):
    names = d.cli("names", cell["id"]).stdout
    assert FORGED not in names, names
    # The cell resolves the real name through its resolver and reaches it; the forged address
    # stays closed.
    r = d.sh_in_cell(cell, ["python3", DNSQ, GATEWAY_IP, "api.example.test", "A"])
    assert r.stdout.split() == [REAL], r.stdout + r.stderr
    assert reach(d, cell, REAL) == "200"
    assert reach(d, cell, FORGED) == "000"
    # Taken as a switch, the fake would have been programmed (flows, meters) and the bridge's
    # own connection closed as replaced.
    assert [r for r in results if r["flow_mods"] or r["meter_mods"]] == [], results
    log = d.new_log()
    assert "replaces the one from" not in log and "replaced by a new connection" not in log, log
    assert log.count("connected from") == connected_before, log
    assert switch_lines(d) == before_switches


def attack_and_check(d):
    p, cell = d.start_cell(POLICY, ["sleep", "120"], app="victim")
    try:
        targets = listeners(d.proc.pid)
        assert targets, "cellwalld listens on nothing?"
        before_switches = switch_lines(d)
        connected_before = d.new_log().count("connected from")
        results = pose_as_the_bridge(d, targets, cell)
        assert [r["target"] for r in results] == targets, results
        check_nobody_took_the_bridge(d, cell, before_switches, connected_before, results)
        return targets, results, before_switches
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_an_unprivileged_process_cannot_pose_as_the_bridge(daemon):
    targets, results, switches = attack_and_check(daemon)
    # No plain TCP listener speaks OpenFlow by default; the bridge came over the UNIX socket.
    assert len(switches) == 1 and " auth=unix-peercred " in switches[0], switches
    for r in results:
        if r["target"].startswith("unix:") and not r["target"].startswith("unix:@"):
            assert "PermissionError" in r["connect"], r  # root-only directories


def test_plain_tcp_when_configured_never_takes_the_bridge(tcp_daemon):
    d = tcp_daemon
    port = re.search(r"--of-port (\d+)", " ".join(d.extra_args)).group(1)
    targets, results, switches = attack_and_check(d)
    tcp = [r for r in results if r["target"].endswith(":" + port)]
    assert len(tcp) == 1, (targets, results)
    # It got as far as the handshake and the forged Packet-In, and was then shut out.
    assert tcp[0]["handshake"] and tcp[0]["packet_in_sent"] and tcp[0]["closed_by_peer"], tcp
    status = d.cli("status").stdout
    assert re.search(r"switches_refused peer_credentials=0 takeovers=[1-9]", status), status
    assert "any local user can connect" in d.log.read_text()  # the start-up warning
