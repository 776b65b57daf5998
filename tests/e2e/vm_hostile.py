"""Bypass attempts by a VM cell's guest root (run inside the guest): raw frames on the guest's
NIC with forged addresses, ARP games, IPv6, VLAN and priority tags, traffic to another cell and
to the gateway. Each attempt has its own source port (or kind) so the captures outside tell them apart.

vm_hostile.py OWN_MAC OWN_IP GW_MAC GW_IP TESTHOST_IP VICTIM_MAC VICTIM_IP

test_vm_cells.py hands it to the guest on stdin, with rawframes.py (its LOADER).
"""
import socket
import struct
import sys
import time

from rawframes import frame, mac, tagged

own_mac, own_ip, gw_mac, gw_ip, testhost_ip, victim_mac, victim_ip = sys.argv[1:8]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))


def send(data, count=3):
    for _ in range(count):
        s.send(data)
        time.sleep(0.02)


def arp(op, sha, spa, tha, tpa, dst):
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac(sha), socket.inet_aton(spa),
                       mac(tha), socket.inet_aton(tpa))
    return mac(dst) + mac(sha) + b"\x08\x06" + body


# Control: a well-formed SYN to the allowed port (it must get out, or the checks see nothing).
send(frame(own_mac, gw_mac, own_ip, testhost_ip, "tcp", 41000, 8080))
# Forged source MAC, forged source IP, a port the policy does not allow.
send(frame("02:66:66:66:66:66", gw_mac, own_ip, testhost_ip, "tcp", 42000, 8080))
send(frame(own_mac, gw_mac, "10.200.77.77", testhost_ip, "tcp", 43000, 8080))
send(frame(own_mac, gw_mac, own_ip, testhost_ip, "udp", 44000, 5353))
# A VLAN tag around an allowed SYN, and a priority tag (VID 0: a receiver's kernel takes it for
# an untagged frame and routes it).
send(tagged(frame(own_mac, gw_mac, own_ip, testhost_ip, "tcp", 45000, 8080), 5))
send(tagged(frame(own_mac, gw_mac, own_ip, testhost_ip, "tcp", 45100, 8080), 0, 5))
# IPv6: a UDP datagram to the all-nodes group and one to the gateway's MAC.
ip6 = struct.pack("!IHBB16s16s", 6 << 28, 8 + 6, 17, 64, socket.inet_pton(socket.AF_INET6, "fe80::66"),
                  socket.inet_pton(socket.AF_INET6, "ff02::1")) + struct.pack("!HHHH", 46000, 46000, 14, 0) + b"cw-v6!"
send(mac("33:33:00:00:00:01") + mac(own_mac) + b"\x86\xdd" + ip6)
send(mac(gw_mac) + mac(own_mac) + b"\x86\xdd" + ip6)
# ARP: claim the gateway's address (gratuitous, broadcast) and answer the victim for it.
send(arp(1, own_mac, gw_ip, "00:00:00:00:00:00", gw_ip, "ff:ff:ff:ff:ff:ff"))
send(arp(2, own_mac, gw_ip, victim_mac, victim_ip, victim_mac))
# Another cell: routed through the gateway's MAC, and straight to its MAC.
send(frame(own_mac, gw_mac, own_ip, victim_ip, "tcp", 47000, 8000))
send(frame(own_mac, victim_mac, own_ip, victim_ip, "tcp", 47001, 8000))
# The gateway itself, on a port it does not serve to cells.
send(frame(own_mac, gw_mac, own_ip, gw_ip, "tcp", 48000, 22))
print("sent")
