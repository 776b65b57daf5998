// Zero-copy views of an Ethernet frame: Ethernet (with up to two VLAN tags), ARP, IPv4, IPv6
// (with extension headers skipped up to the transport header), TCP, UDP, ICMP, ICMPv6.
// parseFrame() reads the frame once, bounds-checked, and fills a flat Frame whose spans point
// into the caller's buffer: valid while that buffer is. Nothing is allocated.
#pragma once

#include <cstdint>
#include <string>

#include "common/bytes.h"
#include "common/net.h"
#include "common/result.h"

namespace cw::packet {

inline constexpr std::uint16_t kEthIpv4 = 0x0800;
inline constexpr std::uint16_t kEthArp = 0x0806;
inline constexpr std::uint16_t kEthVlan = 0x8100;
inline constexpr std::uint16_t kEthQinQ = 0x88a8;
inline constexpr std::uint16_t kEthIpv6 = 0x86dd;
inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr std::uint8_t kProtoUdp = 17;
inline constexpr std::uint8_t kProtoIcmpv6 = 58;

inline constexpr std::uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08,
                              kTcpAck = 0x10, kTcpUrg = 0x20, kTcpEce = 0x40, kTcpCwr = 0x80;
inline constexpr std::uint16_t kArpRequest = 1, kArpReply = 2;

enum class L3 : std::uint8_t { kNone, kArp, kIpv4, kIpv6, kOther };
enum class L4 : std::uint8_t { kNone, kTcp, kUdp, kIcmp, kIcmpv6, kOther };

// How a frame can be malformed; stable names for counters ("weirds").
//   kTruncated*: fewer bytes than the fixed header needs, or than the IP header's own length
//                fields claim (a frame cut short, e.g. by a Packet-In's max_len).
//   kBad*:       the header contradicts itself or the protocol: wrong version, a length field
//                smaller than the header it describes, an impossible extension header chain,
//                an Ethernet/IPv4 ARP whose opcode is neither request nor reply.
// clang-format off
enum class ParseError : std::uint8_t {
  kTruncatedEthernet, kTruncatedVlan, kTooManyVlans, kTruncatedArp, kBadArp,
  kTruncatedIpv4, kBadIpv4Version, kBadIpv4HeaderLength, kBadIpv4TotalLength,
  kTruncatedIpv6, kBadIpv6Version, kBadIpv6ExtHeader,
  kTruncatedTcp, kBadTcpDataOffset, kTruncatedUdp, kBadUdpLength, kTruncatedIcmp,
  kCount
};
// clang-format on
const char* parseErrorName(ParseError e);

struct Frame {
  Bytes raw;  // the whole frame
  MacAddr eth_dst, eth_src;
  std::uint16_t eth_type = 0;  // innermost (after VLAN tags)
  std::uint8_t vlan_count = 0;
  std::uint16_t vlan_vid = 0;  // outermost tag's VID (12 bits) when vlan_count > 0

  L3 l3 = L3::kNone;
  std::size_t l3_offset = 0;  // from the start of raw

  // ARP (Ethernet/IPv4 only; other hardware/protocol types parse as L3::kOther)
  std::uint16_t arp_op = 0;
  MacAddr arp_sha, arp_tha;
  Ip4 arp_spa, arp_tpa;

  // IP (either family; IPv4 addresses are IPv4-mapped in IpAddr)
  IpAddr ip_src, ip_dst;
  std::uint8_t ip_proto = 0;  // IPv6: the transport protocol after extension headers
  std::uint8_t ip_ttl = 0;    // hop limit for IPv6
  std::uint8_t ip_dscp = 0;
  bool ip_fragment = false;        // any fragment
  bool ip_later_fragment = false;  // not the first fragment: no transport header

  L4 l4 = L4::kNone;
  std::size_t l4_offset = 0;
  std::uint16_t src_port = 0, dst_port = 0;  // TCP/UDP
  std::uint8_t tcp_flags = 0;
  std::uint8_t icmp_type = 0, icmp_code = 0;  // ICMP and ICMPv6
  // After the transport header, within the IP (or UDP) length; Ethernet padding is never
  // part of it. For ICMP/ICMPv6 the header is type, code and checksum only (RFC 4443's
  // "message body" follows), so an echo's identifier and sequence are payload's first bytes.
  // Empty when l4 is kNone or kOther.
  Bytes payload;
  // Everything after the IP header and its extension headers, within the IP length: the
  // transport header plus payload, or a later fragment's data. Empty unless isIp().
  Bytes ip_payload;

  bool isIpv4() const { return l3 == L3::kIpv4; }
  bool isIpv6() const { return l3 == L3::kIpv6; }
  bool isIp() const { return isIpv4() || isIpv6(); }
  bool isTcp() const { return l4 == L4::kTcp; }
  bool isUdp() const { return l4 == L4::kUdp; }
  // A connection opener: SYN without ACK.
  bool isTcpSyn() const { return isTcp() && (tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn; }
};

// Parses as far as the frame allows. A frame that stops early (a protocol we do not parse)
// is fine; one whose headers contradict their own lengths is an error.
Result<Frame, ParseError> parseFrame(Bytes raw);

// One line for logs, e.g. "tcp 10.0.0.2:40000 -> 10.0.0.1:80 [S]" (TCP flags as tcpdump
// prints them). Allocates; not for the per-packet fast path unless logging. (describe.cc)
std::string describe(const Frame& f);

}  // namespace cw::packet
