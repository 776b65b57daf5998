"""The flow table holds policy, not connections (docs/pipeline.md): a decided connection lives in
Open vSwitch's conntrack, in its cell's own zone, with its verdict in the connection's mark. The
flows on the bridge do not grow with the connections a cell makes, and a denied connection's
retransmitted SYNs are dropped by the switch without reaching the controller again."""
import re
import signal
import time
from pathlib import Path

from conftest import TESTHOST_IP, sh

ALLOW = f"""
default = "deny"
[[allow]]
proto = "tcp"
to = "{TESTHOST_IP}"
ports = 8080
[[allow]]
proto = "udp"
to = "{TESTHOST_IP}"
ports = 5353
"""

# 120 HTTP requests over new TCP connections and 40 UDP exchanges, each from a new socket.
CLIENT = f"""
import socket
ok = 0
for i in range(120):
    c = socket.create_connection(("{TESTHOST_IP}", 8080), timeout=5)
    c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        data += d
    c.close()
    ok += b"hello from the test host" in data
for i in range(40):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.sendto(b"ping", ("{TESTHOST_IP}", 5353))
    ok += u.recv(100) == b"echo:ping"
    u.close()
print(ok)
"""


def bridge_flows(d):
    mgmt = next(Path(d.state).rglob("*.mgmt"))
    out = sh(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", f"unix:{mgmt}"]).stdout
    return [l for l in out.splitlines() if "actions=" in l]


def conntrack(d, zone):
    ctl = next(Path(d.state).rglob("ovs-vswitchd.ctl"))
    out = sh(["ovs-appctl", "-t", str(ctl), "dpctl/dump-conntrack", f"zone={zone}"]).stdout
    return [l for l in out.splitlines() if l.strip()]


def reason_count(d, reason):
    m = re.search(rf"^reason {reason} (\d+)$", d.cli("status").stdout, re.M)
    assert m, d.cli("status").stdout
    return int(m.group(1))


def test_connections_live_in_the_cells_zone_and_add_no_flow(mdaemon):
    proc, cell = mdaemon.start_cell(ALLOW, ["sleep", "120"], app="many")
    try:
        time.sleep(0.5)
        before = bridge_flows(mdaemon)
        r = mdaemon.sh_in_cell(cell, ["python3", "-c", CLIENT], timeout=120)
        assert r.stdout.strip() == "160", (r.stdout, r.stderr)
        after = bridge_flows(mdaemon)
        # Not one flow per connection: the same flows before and after 160 connections.
        strip = lambda fl: sorted(re.sub(r"(duration|n_packets|n_bytes|idle_age|idle_timeout)=[^,]*, ?", "", l)
                                  for l in fl)
        assert strip(after) == strip(before), "new flows:\n" + "\n".join(sorted(set(strip(after)) - set(strip(before))))
        # Every one of them is in the cell's zone (its id), allowed (mark's low bits 01).
        entries = conntrack(mdaemon, cell["id"])
        tcp = [l for l in entries if l.startswith("tcp,") and "dport=8080" in l]
        udp = [l for l in entries if l.startswith("udp,") and "dport=5353" in l]
        assert len(tcp) >= 120 and len(udp) >= 40, "\n".join(entries[:20])
        marks = {int(re.search(r"mark=(\d+)", l).group(1)) for l in tcp + udp}
        assert marks and all(m & 3 == 1 for m in marks), marks
        # Another zone (everyone's zone 0) holds none of the cell's connections.
        assert not [l for l in conntrack(mdaemon, 0) if f"src={cell['ip']}," in l]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_denied_connection_is_decided_once_and_its_retries_stay_in_the_switch(mdaemon):
    proc, cell = mdaemon.start_cell(ALLOW, ["sleep", "120"], app="denied")
    try:
        before = reason_count(mdaemon, "policy_default")
        # A SYN to a port no rule allows, retransmitted for ~3 s (at 1 s and 3 s).
        r = mdaemon.sh_in_cell(cell, ["curl", "-s", "--connect-timeout", "4", f"http://{TESTHOST_IP}:7777/"],
                               timeout=30)
        assert r.returncode != 0
        assert reason_count(mdaemon, "policy_default") == before + 1
        entries = [l for l in conntrack(mdaemon, cell["id"]) if "dport=7777" in l]
        assert len(entries) == 1 and int(re.search(r"mark=(\d+)", entries[0]).group(1)) & 3 == 2, entries
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

