#!/usr/bin/env python3
"""A second, independent OpenFlow 1.3 latency probe, to check cw-ofload's latency mode.

It shares no code with cw-ofload (or with cellwall's codec): the few messages a switch needs
are packed here with `struct` from the OpenFlow 1.3.5 specification. It plays one switch,
answers the controller's handshake, then sends table-miss Packet-Ins, one at a time, each a
TCP SYN of a new connection from cw-ofload's default first cell (port 1, 02:00:00:c8:00:01,
10.200.0.2) to --dst-ip:--dst-port, and blocks in recv() until the controller's PACKET_OUT
arrives. A round trip is timed with time.perf_counter_ns() just before sendall() and just
after the recv() that completed the PACKET_OUT, like cw-ofload --complete-on packet_out.

Python's own cost is inside each round trip (a few microseconds), so this reads a little
high; it is a check that cw-ofload is not reading far higher, not a better tool.

  bench/ofload_ref.py --controller 127.0.0.1:16653 --seconds 5 --warmup 1   # one JSON line
"""
import argparse
import json
import socket
import struct
import sys
import time

OFP_VERSION = 0x04
HELLO, ERROR, ECHO_REQUEST, ECHO_REPLY = 0, 1, 2, 3
FEATURES_REQUEST, FEATURES_REPLY = 5, 6
GET_CONFIG_REQUEST, GET_CONFIG_REPLY = 7, 8
PACKET_IN, PACKET_OUT, FLOW_MOD = 10, 13, 14
MULTIPART_REQUEST, MULTIPART_REPLY = 18, 19
BARRIER_REQUEST, BARRIER_REPLY = 20, 21
ROLE_REQUEST, ROLE_REPLY = 24, 25
NO_BUFFER = 0xFFFFFFFF


def header(msg_type, length, xid):
    return struct.pack("!BBHI", OFP_VERSION, msg_type, length, xid)


def message(msg_type, xid, body=b""):
    return header(msg_type, 8 + len(body), xid) + body


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_frame(src_mac, dst_mac, src_ip, dst_ip, sport, dport, seq):
    eth = dst_mac + src_mac + struct.pack("!H", 0x0800)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return eth + ip + tcp


def packet_in(xid, in_port, frame):
    # ofp_match with one OXM (OFPXMC_OPENFLOW_BASIC, OFPXMT_OFB_IN_PORT, 4 bytes), padded to 8.
    oxm = struct.pack("!II", 0x80000004, in_port)
    match = struct.pack("!HH", 1, 4 + len(oxm)) + oxm
    match += b"\0" * (-len(match) % 8)
    body = struct.pack("!IHBBQ", NO_BUFFER, len(frame), 0, 0, 0) + match + b"\0\0" + frame
    return message(PACKET_IN, xid, body)


class Switch:
    def __init__(self, sock, dpid):
        self.sock = sock
        self.dpid = dpid
        self.buf = bytearray()
        self.view = bytearray(1 << 16)

    def read_messages(self):
        """Blocks for at least one whole message; returns (receive time ns, [(type, xid, body)])."""
        while True:
            n = self.sock.recv_into(self.view)
            now = time.perf_counter_ns()
            if n == 0:
                sys.exit("ofload_ref: the controller closed the connection")
            self.buf += self.view[:n]
            msgs = []
            while len(self.buf) >= 8:
                _, msg_type, length, xid = struct.unpack_from("!BBHI", self.buf)
                if length < 8:
                    sys.exit("ofload_ref: malformed message from the controller")
                if len(self.buf) < length:
                    break
                msgs.append((msg_type, xid, bytes(self.buf[8:length])))
                del self.buf[:length]
            if msgs:
                return now, msgs

    def answer(self, msg_type, xid, body):
        """Plays the switch side of the controller's requests; returns True for a PACKET_OUT."""
        out = None
        if msg_type == ECHO_REQUEST:
            out = message(ECHO_REPLY, xid, body)
        elif msg_type == FEATURES_REQUEST:
            out = message(FEATURES_REPLY, xid, struct.pack("!QIBBHII", self.dpid, 0, 254, 0, 0, 0x7, 0))
        elif msg_type == GET_CONFIG_REQUEST:
            out = message(GET_CONFIG_REPLY, xid, struct.pack("!HH", 0, 0xFFFF))
        elif msg_type == BARRIER_REQUEST:
            out = message(BARRIER_REPLY, xid)
        elif msg_type == ROLE_REQUEST:
            role = struct.unpack_from("!I", body)[0] or 1  # NOCHANGE answers EQUAL
            out = message(ROLE_REPLY, xid, struct.pack("!IIQ", role, 0, 0))
        elif msg_type == MULTIPART_REQUEST:
            mp_type = struct.unpack_from("!H", body)[0]
            out = message(MULTIPART_REPLY, xid, struct.pack("!HHI", mp_type, 0, 0))
        elif msg_type == ERROR:
            print("ofload_ref: controller sent an ERROR: %s" % body[:4].hex(), file=sys.stderr)
        if out is not None:
            self.sock.sendall(out)
        return msg_type == PACKET_OUT


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--controller", default="127.0.0.1:6653")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--settle", type=float, default=1.0, help="quiet time after FEATURES_REPLY")
    ap.add_argument("--dpid", type=lambda s: int(s, 0), default=1)
    ap.add_argument("--dst-ip", default="93.184.216.34")
    ap.add_argument("--dst-port", type=int, default=443)
    args = ap.parse_args()

    host, _, port = args.controller.rpartition(":")
    try:
        sock = socket.create_connection((host, int(port)))
    except OSError as e:
        sys.exit("ofload_ref: cannot connect to the controller at %s: %s" % (args.controller, e))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sw = Switch(sock, args.dpid)
    sock.sendall(message(HELLO, 1, struct.pack("!HHI", 1, 8, 1 << OFP_VERSION)))

    # Handshake: answer everything until the controller has been quiet for --settle seconds
    # after FEATURES_REPLY.
    featured = False
    sock.settimeout(args.settle)
    while True:
        try:
            _, msgs = sw.read_messages()
        except socket.timeout:
            if featured:
                break
            continue
        for msg_type, xid, body in msgs:
            sw.answer(msg_type, xid, body)
            featured |= msg_type == FEATURES_REQUEST
    sock.settimeout(None)

    src_mac, dst_mac = bytes.fromhex("020000c80001"), bytes.fromhex("020000c800fe")
    src_ip, dst_ip = socket.inet_aton("10.200.0.2"), socket.inet_aton(args.dst_ip)
    samples = []
    xid = 100
    begin = time.perf_counter_ns()
    measure_from = begin + int(args.warmup * 1e9)
    measure_until = measure_from + int(args.seconds * 1e9)
    n = 0
    while True:
        sport = 1024 + n % 64512
        pin = packet_in(xid, 1, syn_frame(src_mac, dst_mac, src_ip, dst_ip, sport, args.dst_port, n))
        xid += 1
        n += 1
        sent = time.perf_counter_ns()
        sock.sendall(pin)
        done = False
        while not done:
            now, msgs = sw.read_messages()
            for msg_type, mxid, body in msgs:
                done |= sw.answer(msg_type, mxid, body)
        if now >= measure_until:
            break
        if sent >= measure_from:
            samples.append(now - sent)

    samples.sort()

    def pct(p):
        return samples[max(0, min(len(samples) - 1, int(-(-p * len(samples) // 1)) - 1))] / 1000

    print(json.dumps({
        "tool": "ofload_ref", "controller": args.controller, "count": len(samples),
        "setups_per_sec": round(len(samples) / args.seconds, 1),
        "mean_us": round(sum(samples) / len(samples) / 1000, 1) if samples else 0,
        "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99),
    }))


if __name__ == "__main__":
    main()
