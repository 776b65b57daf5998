"""TX checksum offload stays on in cells and gateways (docs/ovs.md, "Checksum offload").

A sender with TX offload on leaves its TCP/UDP checksum for the "hardware" to finish. Open vSwitch
3.1's userspace datapath finishes TCP's but not UDP's, a frame that went through the controller
(PACKET_IN, PACKET_OUT) comes back with only the bytes, and the gateway's conntrack drops what it
cannot validate. cellwall makes the kernel finish UDP checksums as packets leave a cell's or a
gateway's namespace, and finishes every PACKET_OUT's checksums itself. These tests check the
outcomes: DNS answered at the first try, nothing with a bad checksum or a cell's own address on
the uplink, iperf3 over UDP without loss."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import GATEWAY_IP, GATEWAY_UPLINK_IP, TESTHOST_IP, Capture, sh

DNSQ = str(Path(__file__).with_name("dnsq.py"))
ALLOW_ALL = 'default = "allow"\n'
# Under default deny a cell may resolve only the names its rules name, so cellwalld reads every
# query and sends it on to the resolver itself, as a PACKET_OUT (docs/dns.md).
RESOLVE_BY_RULES = """default = "deny"
[[allow]]
proto = "tcp"
hosts = "api.example.test"
ports = 8080
"""


def offloads(ns, dev):
    out = sh(["ip", "netns", "exec", ns, "ethtool", "-k", dev]).stdout
    return dict(re.findall(r"^\s*([a-z0-9-]+): (on|off)", out, re.M))


def assert_offload_on(cell):
    for ns, dev in ((cell["netns"], "eth0"), ("cw-g-default", "cwgw0")):
        assert offloads(ns, dev)["tx-checksum-ip-generic"] == "on", f"TX checksum offload is off on {dev} in {ns}"


class VerboseCapture:
    """tcpdump into a file, whole frames (a cut one cannot be checked); lines() reads it back
    with -vv, which checks every checksum."""

    def __init__(self, ns, dev, bpf):
        self.file = tempfile.mktemp(prefix="cw-cap-", suffix=".pcap")
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "--immediate-mode", "-U", "-n",
                                   "-i", dev, "-w", self.file, bpf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line, deadline = "", time.time() + 10
        while time.time() < deadline and "listening" not in line:
            line = self.p.stderr.readline()
        assert "listening" in line, "tcpdump did not start"

    def lines(self):
        time.sleep(0.5)
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=10)
        try:
            return sh(["tcpdump", "-vv", "-n", "-r", self.file], check=False).stdout.splitlines()
        finally:
            os.unlink(self.file)


def test_a_cells_first_dns_query_is_answered_at_the_first_try(mdaemon, module_testhost):
    """Both ways a query goes to the environment's resolver: through the switch's own flow
    (default allow) and through cellwalld, which checks it and sends it on (resolve by rules).
    dnsq.py asks once and never again; the capture shows it was the cell's only query."""
    for app, policy in (("dns-switch", ALLOW_ALL), ("dns-checked", RESOLVE_BY_RULES)):
        proc, cell = mdaemon.start_cell(policy, ["sleep", "60"], app=app)
        try:
            assert_offload_on(cell)
            sent = Capture(cell["netns"], "eth0", f"udp dst port 53 and src host {cell['ip']}")
            r = mdaemon.sh_in_cell(cell, ["/usr/bin/python3", DNSQ, GATEWAY_IP, "api.example.test", "A"])
            queries = sent.lines()
            assert r.stdout.split() == ["10.250.1.10"], f"{app}: no answer to the first query: {r.stderr}"
            assert len(queries) == 1, f"{app}: {queries}"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


UDP_EXCHANGE = f"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
got = 0
for size in (1, 100, 511, 1000, 1400):
    s.sendto(bytes([size % 251]) * size, ("{TESTHOST_IP}", 5353))
    got += len(s.recvfrom(2048)[0]) == size + 5  # "echo:" + the datagram
print(got)
"""
TCP_ECHO = f"""
import socket
s = socket.create_connection(("{TESTHOST_IP}", 7777), timeout=10)
data = bytes(range(256)) * 8192  # 2 MiB
s.sendall(data); s.shutdown(socket.SHUT_WR)
back = b""
while len(back) < len(data):
    chunk = s.recv(1 << 16)
    if not chunk: break
    back += chunk
print(back == data)
"""


def test_nothing_leaves_the_uplink_with_a_bad_checksum_or_a_cells_address(mdaemon, module_testhost):
    """A UDP exchange, a TCP download and a TCP upload; tcpdump -vv checks every checksum that
    reaches the test host from the gateway. The uplink here is a veth, whose far end shows a
    checksum left for the "hardware" as wrong although the receiver takes it as good; a real NIC
    would finish it. With TX offload off on the gateway's uplink end the kernel finishes it
    instead, so the capture shows what a real uplink would send, and a checksum that is really
    wrong (sent as finished) stays wrong. The cell's SYNs are counted too: a first SYN lost
    to a bad checksum would be sent again."""
    Path(module_testhost.www, "big.bin").write_bytes(os.urandom(4 << 20))
    proc, cell = mdaemon.start_cell(ALLOW_ALL, ["sleep", "60"], app="csum")
    sh(["ip", "netns", "exec", "cw-g-default", "ethtool", "-K", "cwup0", "tx", "off"])
    try:
        assert_offload_on(cell)
        # Everything from the gateway's side: not from the test host's own addresses.
        uplink = VerboseCapture(module_testhost.ns, "cw-u-default",
                                f"(udp or tcp) and not src host {TESTHOST_IP} and not src net 10.250.1.0/24")
        syns = Capture(cell["netns"], "eth0", f"tcp[tcpflags] & tcp-syn != 0 and src host {cell['ip']}")
        udp = mdaemon.sh_in_cell(cell, ["/usr/bin/python3", "-c", UDP_EXCHANGE])
        down = mdaemon.sh_in_cell(cell, ["curl", "-s", "-o", "/dev/null", "--max-time", "20", "-w",
                                         "%{http_code} %{size_download}", f"http://{TESTHOST_IP}:8080/big.bin"])
        up = mdaemon.sh_in_cell(cell, ["/usr/bin/python3", "-c", TCP_ECHO])
        lines = uplink.lines()
        sent_syns = syns.lines()
        assert udp.stdout.strip() == "5", f"UDP echoes: {udp.stdout} {udp.stderr}"
        assert down.stdout == f"200 {4 << 20}", down.stdout
        assert up.stdout.strip() == "True", f"TCP echo: {up.stdout} {up.stderr}"
        text = "\n".join(lines)
        bad = [l.strip() for l in lines if re.search(r"incorrect|bad udp cksum|bad cksum", l)]
        assert not bad, f"{len(bad)} packets with a bad checksum on the uplink, e.g. {bad[:3]}"
        assert "10.200." not in text, "a cell's own address left the uplink"
        # The checks ran: tcpdump printed a verdict for each packet.
        assert text.count("udp sum ok") >= 5 and text.count("(correct)") >= 100, text[-2000:]
        assert GATEWAY_UPLINK_IP in text
        assert len(sent_syns) == 2, f"the cell sent a SYN again (the first was lost): {sent_syns}"
    finally:
        sh(["ip", "netns", "exec", "cw-g-default", "ethtool", "-K", "cwup0", "tx", "on"], check=False)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_iperf3_over_udp_through_a_cell_loses_nothing(mdaemon, module_testhost):
    server = module_testhost.spawn(["iperf3", "-s", "-p", "5211"])
    proc, cell = mdaemon.start_cell(ALLOW_ALL, ["sleep", "60"], app="iperf-udp")
    try:
        assert_offload_on(cell)
        time.sleep(0.3)
        # `timeout`: without its first datagram iperf3 waits for ever.
        r = mdaemon.sh_in_cell(cell, ["timeout", "20", "iperf3", "-c", TESTHOST_IP, "-p", "5211", "-u", "-b", "50M",
                                      "-t", "2", "-J"], timeout=40)
        assert r.returncode == 0, f"iperf3 failed: {r.stdout[-500:]} {r.stderr[-500:]}"
        total = json.loads(r.stdout)["end"]["sum"]
        assert total["packets"] > 1000, total
        assert total["lost_packets"] == 0, total
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        server.kill()
        server.wait()


UDP_GSO = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b"first", ("{TESTHOST_IP}", 5353)); s.recvfrom(100)  # the connection is decided
s.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT: one send, four 1000-byte datagrams
s.sendto(bytes(4000), ("{TESTHOST_IP}", 5353))
got = 0
try:
    while got < 4:
        got += len(s.recvfrom(2048)[0]) == 1005
except OSError:
    pass
print(got)
"""


def test_udp_segmentation_offload_from_a_cell_arrives(mdaemon, module_testhost):
    """A UDP_SEGMENT send (QUIC stacks use it) leaves the cell as one large datagram when UDP
    segmentation offload is on, passes the checksum rule unsegmented and is dropped by Open
    vSwitch 3.1; with that offload off in the cell the kernel segments it in software."""
    proc, cell = mdaemon.start_cell(ALLOW_ALL, ["sleep", "60"], app="udp-gso")
    try:
        assert_offload_on(cell)
        assert offloads(cell["netns"], "eth0")["tx-udp-segmentation"] == "off"
        r = mdaemon.sh_in_cell(cell, ["/usr/bin/python3", "-c", UDP_GSO])
        assert r.stdout.strip() == "4", f"echoes of the four segments: {r.stdout} {r.stderr}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
