// Finishing checksums that TX offload left partial, in place, for frames the controller sends
// back out of the switch (PACKET_OUT) as they came in (PACKET_IN).
//
// Why: a sender with TX checksum offload on leaves its TCP/UDP checksum "partial" (the field
// holds only the pseudo-header's sum) and marks the packet so that the NIC, or whoever forwards
// it, finishes it. Open vSwitch's userspace datapath keeps that mark while the packet is in the
// switch, but a PACKET_IN carries only the bytes: a frame that went through the controller
// would come back as an ordinary packet with a wrong checksum, which the gateway's conntrack
// calls invalid (and drops) and a receiving stack discards. The first packet of every
// connection takes that way.
//
// A checksum that is wrong in any other way is left wrong: the controller does not vouch for
// bytes it did not write (a corrupted or forged frame stays one, and the gateway drops it).
//
// Pure: no I/O, no allocation. Threading: none of its own (the caller owns the bytes).
#pragma once

#include <cstdint>
#include <span>

namespace cw::packet {

// If `frame` (Ethernet, untagged or with up to two VLAN tags) is IPv4 or IPv6 TCP or UDP whose
// checksum field holds exactly the partial sum TX offload leaves (the pseudo-header's sum,
// folded, not inverted, over the length the IP or UDP header gives), writes the finished
// checksum there and returns true. A computed UDP checksum of 0 is written as 0xffff.
// Everything else is left byte for byte as it was, and false returned: a right or otherwise
// wrong checksum, an IPv4 UDP checksum of 0 ("none"), fragments, other protocols (ICMP is never
// offloaded), frames that do not parse (packet::parseFrame). Ethernet padding is not summed.
bool finishChecksums(std::span<std::uint8_t> frame);

}  // namespace cw::packet
