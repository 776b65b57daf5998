"""Builds raw Ethernet/IPv4/TCP|UDP frames for bypass attempts (run as root inside a cell)."""
import socket
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def frame(src_mac, dst_mac, src_ip, dst_ip, proto, sport, dport, payload=b"cw-bypass", bad_checksum=False):
    sip, dip = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    if proto == "tcp":
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0) + payload
        num = 6
        ck_off = 16
    else:
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        num = 17
        ck_off = 6
    pseudo = sip + dip + struct.pack("!BBH", 0, num, len(l4))
    c = csum(pseudo + l4)
    if bad_checksum:  # wrong, and not 0 (which means "none" for UDP)
        c = (c + 1) & 0xFFFF or 1
    l4 = l4[:ck_off] + struct.pack("!H", c) + l4[ck_off + 2:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, num, 0, sip, dip)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return mac(dst_mac) + mac(src_mac) + b"\x08\x00" + ip + l4


def tagged(data, vid, pcp=0):
    """The frame with an 802.1Q tag after the MAC addresses (vid 0: priority-tagged)."""
    return data[:12] + struct.pack("!HH", 0x8100, (pcp << 13) | vid) + data[12:]


if __name__ == "__main__":
    # rawframes.py [--bad-checksum] IFACE SRC_MAC DST_MAC SRC_IP DST_IP PROTO SPORT DPORT COUNT [VLAN_VID]
    # With VLAN_VID, each frame carries an 802.1Q tag (0: priority-tagged, PCP 5); with
    # --bad-checksum, a wrong TCP/UDP checksum.
    args = [a for a in sys.argv[1:] if a != "--bad-checksum"]
    bad = len(args) != len(sys.argv) - 1
    ifname, smac, dmac, sip, dip, proto, sport, dport, count = args[0:9]
    vid = int(args[9]) if len(args) > 9 else None
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    for i in range(int(count)):
        f = frame(smac, dmac, sip, dip, proto, int(sport) + i, int(dport), bad_checksum=bad)
        s.send(f if vid is None else tagged(f, vid, 5 if vid == 0 else 0))
