"""Bypass attempts from inside a cell with root there (as a hostile app with a kernel exploit
or a VM guest would have): forged addresses, raw sockets and 802.1Q tags get nothing past the
switch; cells do not reach each other unless allowed; without the controller nothing new gets
out.

Every capture sees tagged frames too (conftest.with_tagged): a filter without a `vlan` term
can miss them."""
import json
import signal
import subprocess
import time
from pathlib import Path

from conftest import GATEWAY_UPLINK_IP, TESTHOST_IP, Capture, sh
from test_core import ALLOW_WEB, CURL, DENY_ALL

RAW = str(Path(__file__).with_name("rawframes.py"))


def gateway_mac():
    out = sh(["ip", "-n", "cw-g-default", "-json", "link", "show", "cwgw0"]).stdout
    return json.loads(out)[0]["address"]


def send_raw(cell, src_mac, src_ip, proto, sport, dport, count=5, vlan=None, bad_checksum=False):
    sh(["ip", "netns", "exec", cell["netns"], "/usr/bin/python3", RAW]
       + (["--bad-checksum"] if bad_checksum else []) + ["eth0", src_mac,
        gateway_mac(), src_ip, TESTHOST_IP, proto, str(sport), str(dport), str(count)]
       + ([] if vlan is None else [str(vlan)]))


def test_raw_frames_obey_the_switch(mdaemon, module_testhost):
    proc, cell = mdaemon.start_cell(ALLOW_WEB, ["sleep", "120"], app="hostile")
    try:
        # Control: a well-formed SYN from the cell's own addresses to the allowed port gets out.
        cap = module_testhost.capture("tcp dst port 8080")
        send_raw(cell, cell["mac"], cell["ip"], "tcp", 41000, 8080)
        assert cap.count() > 0, "the control frame should pass; the check below would be empty"

        # Forged source MAC.
        cap = module_testhost.capture("tcp dst port 8080")
        send_raw(cell, "02:66:66:66:66:66", cell["ip"], "tcp", 42000, 8080)
        assert cap.count() == 0
        # Forged source IP.
        cap = module_testhost.capture("tcp dst port 8080")
        send_raw(cell, cell["mac"], "10.200.77.77", "tcp", 43000, 8080)
        assert cap.count() == 0
        # Well-formed but to a port the policy does not allow.
        cap = module_testhost.capture("udp port 5353")
        send_raw(cell, cell["mac"], cell["ip"], "udp", 44000, 5353)
        assert cap.count() == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_tagged_frames_get_nothing_past_table_0(mdaemon, module_testhost):
    """802.1Q frames carrying a SYN the policy allows untagged: VID 5, and VID 0 (priority-
    tagged, which a Linux receiver takes for untagged and routes). Table 0 admits untagged
    frames only, so neither reaches the gateway port or the test host."""
    proc, cell = mdaemon.start_cell(ALLOW_WEB, ["sleep", "120"], app="tagger")
    try:
        uplink = module_testhost.capture("tcp dst port 8080")
        # Any tagged frame at all (`vlan` last: libpcap reads the terms after it 4 bytes on).
        at_gateway = Capture("cw-g-default", "cwgw0", "tcp dst port 8080 or vlan")
        # Control: the same SYN untagged gets out (so the captures below can see such frames).
        send_raw(cell, cell["mac"], cell["ip"], "tcp", 41500, 8080, count=3)
        send_raw(cell, cell["mac"], cell["ip"], "tcp", 45000, 8080, count=3, vlan=5)
        send_raw(cell, cell["mac"], cell["ip"], "tcp", 45100, 8080, count=3, vlan=0)
        up, gw = uplink.lines(), at_gateway.lines()
        for where, lines in (("gateway port", gw), ("test host", up)):
            assert any(".41500 >" in l for l in lines), f"the control SYN did not reach the {where}: {lines}"
            assert [l for l in lines if ".415" not in l] == [], f"tagged frames reached the {where}: {lines}"
        # In the switch, as Open vSwitch reads them: the table-0 flows that admit anything from
        # the cell (IPv4, the ARP answer) match untagged frames only (OFPVID_NONE).
        mgmt = next(Path(mdaemon.state).rglob("*.mgmt"))
        dump = sh(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", f"unix:{mgmt}",
                   f"table=0,in_port={cell['port']}"]).stdout
        admit = [l for l in dump.splitlines() if "actions=" in l and "actions=drop" not in l]
        assert len(admit) == 2 and all("vlan_tci=0x0000/0x1fff" in l for l in admit), dump
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


ALLOW_ECHO = f"""
default = "deny"
[[allow]]
proto = "udp"
to = "{TESTHOST_IP}"
ports = 5353
"""


def test_a_datagram_the_gateway_cannot_track_never_leaves_with_the_cells_address(mdaemon, module_testhost):
    """A datagram with a bad UDP checksum, to a port the policy allows: the switch passes it
    (it does not check L4 checksums), the gateway's conntrack calls it invalid, and an invalid
    packet is not NATed. The gateway drops it, so no packet leaves the uplink with a cell's own
    address."""
    proc, cell = mdaemon.start_cell(ALLOW_ECHO, ["sleep", "120"], app="badsum")
    try:
        cap = module_testhost.capture("udp dst port 5353")
        # Control: well-formed datagrams get out, NATed to the gateway's uplink address.
        send_raw(cell, cell["mac"], cell["ip"], "udp", 46000, 5353, count=3)
        send_raw(cell, cell["mac"], cell["ip"], "udp", 46100, 5353, count=3, bad_checksum=True)
        lines = cap.lines()
        good = [l for l in lines if ".460" in l.split(">")[0]]
        assert len(good) == 3 and all(GATEWAY_UPLINK_IP in l.split(">")[0] for l in good), lines
        assert not [l for l in lines if ".461" in l.split(">")[0]], f"bad-checksum datagrams left the uplink: {lines}"
        assert not [l for l in lines if "10.200." in l], f"a cell's address left the uplink: {lines}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_cells_do_not_reach_each_other_unless_allowed(mdaemon):
    server, b = mdaemon.start_cell(DENY_ALL, ["/usr/bin/python3", "-m", "http.server", "8000"],
                                   app="server")
    try:
        url = f"http://{b['ip']}:8000/"
        time.sleep(1.0)
        denied = mdaemon.run_cell(DENY_ALL, ["curl", "-sS", "--max-time", "3", url], app="client")
        assert denied.returncode != 0
        allow_b = f'default = "deny"\n[[allow]]\nproto = "tcp"\nto = "{b["ip"]}"\nports = 8000\n'
        ok = mdaemon.run_cell(allow_b, ["curl", "-sS", "--max-time", "5", "-o", "/dev/null",
                                        "-w", "%{http_code}", url], app="client")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout == "200"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
