#!/usr/bin/env python3
"""A fake OpenFlow 1.3 switch that claims someone else's datapath id (the attacker of
test_switch_auth.py), and the few messages it needs, encoded by hand.

ofswitch.py JSON: JSON is {"targets": [...], "dpid": int, "cookie": int, "in_port": int,
"frame": hex}. Each target is "unix:PATH", "unix:@ABSTRACT" or "tcp:HOST:PORT". For each, it
connects, says HELLO, answers FEATURES_REQUEST with the datapath id and the port-description
request with no ports, then sends a PACKET_IN carrying the frame with the cookie (as the
switch does for a flow whose action copies packets to the controller), and listens for two
seconds. Prints one JSON line per target: what happened. Self-contained (standard library
only): the test runs it as an unprivileged user, with its source on the command line.
"""
import json
import socket
import struct
import sys
import time

OFP13 = 4
HELLO, ERROR, ECHO_REQUEST, ECHO_REPLY = 0, 1, 2, 3
FEATURES_REQUEST, FEATURES_REPLY = 5, 6
PACKET_IN, FLOW_MOD = 10, 14
MULTIPART_REQUEST, MULTIPART_REPLY = 18, 19
METER_MOD = 29
OFPMP_PORT_DESC = 13
OFPR_ACTION = 1
NO_BUFFER = 0xFFFFFFFF


def message(mtype, xid, body=b""):
    return struct.pack("!BBHI", OFP13, mtype, 8 + len(body), xid) + body


def hello():
    # One version-bitmap element: OpenFlow 1.3 only.
    return message(HELLO, 1, struct.pack("!HHI", 1, 8, 1 << OFP13))


def features_reply(xid, dpid):
    return message(FEATURES_REPLY, xid, struct.pack("!QIBBxxII", dpid, 0, 254, 0, 0, 0))


def port_desc_reply(xid):
    return message(MULTIPART_REPLY, xid, struct.pack("!HHxxxx", OFPMP_PORT_DESC, 0))


def packet_in(xid, cookie, in_port, frame):
    oxm_in_port = struct.pack("!HBBI", 0x8000, 0 << 1, 4, in_port)
    match = struct.pack("!HH", 1, 4 + len(oxm_in_port)) + oxm_in_port
    match += b"\0" * (-len(match) % 8)
    body = struct.pack("!IHBBQ", NO_BUFFER, len(frame), OFPR_ACTION, 0, cookie) + match + b"\0\0" + frame
    return message(PACKET_IN, xid, body)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def dns_answer_frame(src_ip, dst_ip, name, address, sport=53, dport=40000):
    """Ethernet/IPv4/UDP frame of a DNS response: NAME has the A record ADDRESS."""
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    dns = struct.pack("!HHHHHH", 0x4242, 0x8180, 1, 1, 0, 0) + qname + struct.pack("!HH", 1, 1)
    dns += struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + socket.inet_aton(address)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(dns), 0) + dns
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return bytes.fromhex("020000000001") + bytes.fromhex("020000000002") + b"\x08\x00" + ip + udp


def connect(target):
    if target.startswith("unix:"):
        path = target[5:]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\0" + path[1:] if path.startswith("@") else path)
        return s
    host, port = target[4:].rsplit(":", 1)
    s = socket.create_connection((host.strip("[]"), int(port)), timeout=3)
    return s


def attack(target, dpid, cookie, in_port, frame):
    """What one connection got: 'connect' (ok or the error), whether the handshake completed,
    how many FLOW_MOD/METER_MOD it received (a switch the controller took as its own gets
    them) and whether the controller closed the connection."""
    out = {"target": target, "connect": "ok", "handshake": False, "packet_in_sent": False,
           "flow_mods": 0, "meter_mods": 0, "closed_by_peer": False}
    try:
        s = connect(target)
    except OSError as e:
        out["connect"] = f"{type(e).__name__}: {e.strerror or e}"
        return out
    s.settimeout(0.2)
    buf = b""
    try:
        s.sendall(hello())
        deadline = time.time() + 4
        while time.time() < deadline:
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                out["closed_by_peer"] = True
                break
            buf += data
            while len(buf) >= 8:
                version, mtype, length, xid = struct.unpack("!BBHI", buf[:8])
                if length < 8 or version != OFP13:  # not OpenFlow 1.3 (an HTTP server, say)
                    buf = b""
                    break
                if len(buf) < length:
                    break
                body, buf = buf[8:length], buf[length:]
                if mtype == FEATURES_REQUEST:
                    s.sendall(features_reply(xid, dpid))
                elif mtype == MULTIPART_REQUEST and struct.unpack("!H", body[:2])[0] == OFPMP_PORT_DESC:
                    s.sendall(port_desc_reply(xid))
                    out["handshake"] = True
                    s.sendall(packet_in(0x77, cookie, in_port, frame))
                    out["packet_in_sent"] = True
                    deadline = time.time() + 2
                elif mtype == ECHO_REQUEST:
                    s.sendall(message(ECHO_REPLY, xid, body))
                elif mtype == FLOW_MOD:
                    out["flow_mods"] += 1
                elif mtype == METER_MOD:
                    out["meter_mods"] += 1
    except OSError as e:
        out["closed_by_peer"] = True
        out["error"] = f"{type(e).__name__}: {e.strerror or e}"
    finally:
        s.close()
    return out


def main():
    args = json.loads(sys.argv[1])
    frame = bytes.fromhex(args["frame"])
    for t in args["targets"]:
        print(json.dumps(attack(t, args["dpid"], args["cookie"], args["in_port"], frame)), flush=True)


if __name__ == "__main__":
    main()
