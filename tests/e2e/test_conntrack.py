"""The flow table holds policy, not connections (docs/pipeline.md): a decided connection lives in
Open vSwitch's conntrack, in its cell's own zone, with its verdict in the connection's mark. The
flows on the bridge do not grow with the connections a cell makes, and a denied connection's
retransmitted SYNs are dropped by the switch without reaching the controller again."""
import json
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
import json, socket
ok = 0
tcp_ports, udp_ports = set(), set()
for i in range(120):
    c = socket.create_connection(("{TESTHOST_IP}", 8080), timeout=5)
    tcp_ports.add(c.getsockname()[1])
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
    udp_ports.add(u.getsockname()[1])
    ok += u.recv(100) == b"echo:ping"
    u.close()
# A source port the kernel picked twice is one connection to conntrack (the same 5-tuple).
print(json.dumps([ok, len(tcp_ports), len(udp_ports)]))
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
        ok, tcp_tuples, udp_tuples = json.loads(r.stdout)
        assert ok == 160, (r.stdout, r.stderr)
        after = bridge_flows(mdaemon)
        # Not one flow per connection: the same flows before and after 160 connections, but for
        # the count flows of the two rules they used (docs/pipeline.md, table 7): two per rule.
        counted = [l for l in after if "table=7" in l and "ct_label=" in l]
        assert len(counted) == 4, counted
        strip = lambda fl: sorted(re.sub(r"(duration|n_packets|n_bytes|idle_age|idle_timeout)=[^,]*, ?", "", l)
                                  for l in fl if l not in counted)
        assert strip(after) == strip(before), "new flows:\n" + "\n".join(sorted(set(strip(after)) - set(strip(before))))
        # Every one of them is in the cell's zone (its id), allowed (mark's low bits 01).
        entries = conntrack(mdaemon, cell["id"])
        tcp = [l for l in entries if l.startswith("tcp,") and "dport=8080" in l]
        udp = [l for l in entries if l.startswith("udp,") and "dport=5353" in l]
        assert len(tcp) >= tcp_tuples > 100 and len(udp) >= udp_tuples > 30, (
            len(tcp), tcp_tuples, len(udp), udp_tuples, "\n".join(entries[:10]))
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



def test_cell_to_cell_is_tracked_in_both_cells_zones(mdaemon):
    """An allowed connection from one cell to another is committed in both zones (each zone sees
    both directions of it), and crosses the bridge as if routed by the gateway."""
    server, srv = mdaemon.start_cell('default = "deny"\n', ["python3", "-m", "http.server", "8000", "--bind",
                                                             "0.0.0.0", "--directory", "/"], app="srv")
    try:
        allow = f'default = "deny"\n[[allow]]\nproto = "tcp"\nto = "{srv["ip"]}"\nports = 8000\n'
        code = ""
        for _ in range(20):  # until the server listens
            code = mdaemon.run_cell(allow, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
                                            f"http://{srv['ip']}:8000/"], app="cli").stdout
            if code == "200":
                break
            time.sleep(0.3)
        assert code == "200"
        entries = [l for l in conntrack(mdaemon, srv["id"]) if "dport=8000" in l]
        assert entries and all(int(re.search(r"mark=(\d+)", l).group(1)) & 3 == 1 for l in entries), entries
        # The server cell's own rules allow nothing: its connections out are refused.
        r = mdaemon.sh_in_cell(srv, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
                                     f"http://{TESTHOST_IP}:8080/"])
        assert r.stdout == "000"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
