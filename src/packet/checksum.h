// Finishing a frame's checksums in place, for frames the controller sends back out of the
// switch (PACKET_OUT) as they came in (PACKET_IN).
//
// Why: a sender with TX checksum offload on leaves its TCP/UDP checksum "partial" (only the
// pseudo-header's sum) and marks the packet so that the NIC, or whoever forwards it, finishes
// it. Open vSwitch's userspace datapath knows that mark while the packet is in the switch, but
// a PACKET_IN carries only the bytes: a frame that went through the controller comes back as an
// ordinary packet with a wrong checksum, which the gateway's conntrack calls invalid (and drops)
// and a receiving stack discards. The first packet of every connection takes that way.
//
// Pure: no I/O, no allocation. Threading: none of its own (the caller owns the bytes).
#pragma once

#include <cstdint>
#include <span>

namespace cw::packet {

// What finishChecksums() rewrote.
struct ChecksumsFinished {
  bool ip = false;  // the IPv4 header's checksum
  bool l4 = false;  // the TCP, UDP, ICMP or ICMPv6 checksum
  // A field whose value changed (it was partial, or plain wrong); for counters.
  bool changed = false;
};

// Recomputes, in place, the IPv4 header checksum and the TCP, UDP, ICMP (IPv4) or ICMPv6
// checksum of an Ethernet frame (untagged or with up to two VLAN tags), over the lengths the IP
// (and UDP) headers give; Ethernet padding is not summed. Left alone: frames that do not parse
// (packet::parseFrame), ARP and other non-IP frames, other transport protocols, fragments (the
// checksum covers the whole datagram) and an IPv4 UDP checksum of 0 ("no checksum", RFC 768).
// A computed UDP checksum of 0 is sent as 0xffff. A frame whose checksums were right is left
// byte for byte as it was.
ChecksumsFinished finishChecksums(std::span<std::uint8_t> frame);

}  // namespace cw::packet
