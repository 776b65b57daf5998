#!/usr/bin/env python3
"""dnsq.py SERVER NAME TYPE: one DNS query over UDP; prints the A/AAAA addresses answered,
one per line (in answer order, CNAMEs followed by the server). Runs inside cells."""
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
    t = {"A": 1, "AAAA": 28}[qtype]
    qid = random.randrange(65536)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name_bytes(name) + struct.pack("!HH", t, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(q, (server, 53))
    msg, _ = s.recvfrom(4096)
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid:
        sys.exit("wrong id")
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
