#!/usr/bin/env python3
"""dnsq.py SERVER NAME TYPE [tcp]: one DNS query (over UDP, or TCP); prints the A/AAAA
addresses answered, one per line (in answer order, CNAMEs followed by the server), "rcode N"
for an error answer, "tcp reset" when a TCP connection is refused. Runs inside cells."""
import ipaddress
import random
import socket
import struct
import sys


def name_bytes(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"


def skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1


def main():
    server, name, qtype = sys.argv[1], sys.argv[2], sys.argv[3].upper()
    t = {"A": 1, "AAAA": 28, "TXT": 16}[qtype]
    qid = random.randrange(65536)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name_bytes(name) + struct.pack("!HH", t, 1)
    if sys.argv[4:] == ["tcp"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect((server, 53))
        except ConnectionRefusedError:
            print("tcp reset")
            return
        s.sendall(struct.pack("!H", len(q)) + q)
        msg = b""
        while len(msg) < 2 or len(msg) < 2 + struct.unpack("!H", msg[:2])[0]:
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("connection closed")
            msg += chunk
        msg = msg[2:]
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(q, (server, 53))
        msg, _ = s.recvfrom(4096)
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid:
        sys.exit("wrong id")
    if flags & 0xF:
        print(f"rcode {flags & 0xF}")
        return
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[i:i + 10])
        i += 10
        if rtype in (1, 28):
            print(ipaddress.ip_address(msg[i:i + rdlen]))
        i += rdlen


if __name__ == "__main__":
    main()
