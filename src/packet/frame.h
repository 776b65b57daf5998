// Zero-copy views of an Ethernet frame: Ethernet (with up to two VLAN tags), ARP, IPv4, IPv6
// (with extension headers skipped up to the transport header), TCP, UDP, ICMP, ICMPv6.
// parseFrame() reads the frame once, bounds-checked, and fills a flat Frame whose spans point
// into the caller's buffer: valid while that buffer is. Nothing is allocated.
#pragma once

#include <cstdint>

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
                              kTcpAck = 0x10, kTcpUrg = 0x20;

enum class L3 : std::uint8_t { kNone, kArp, kIpv4, kIpv6, kOther };
enum class L4 : std::uint8_t { kNone, kTcp, kUdp, kIcmp, kIcmpv6, kOther };

// How a frame can be malformed; stable names for counters ("weirds").
enum class ParseError : std::uint8_t {
  kTruncatedEthernet, kTruncatedVlan, kTooManyVlans, kTruncatedArp, kBadArp,
  kTruncatedIpv4, kBadIpv4Version, kBadIpv4HeaderLength, kBadIpv4TotalLength,
  kTruncatedIpv6, kBadIpv6Version, kBadIpv6ExtHeader,
  kTruncatedTcp, kBadTcpDataOffset, kTruncatedUdp, kBadUdpLength, kTruncatedIcmp,
  kCount
};
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
  Bytes payload;                              // after the transport header

  bool isIpv4() const { return l3 == L3::kIpv4; }
  bool isIpv6() const { return l3 == L3::kIpv6; }
  bool isIp() const { return isIpv4() || isIpv6(); }
};

// Parses as far as the frame allows. A frame that stops early (a protocol we do not parse)
// is fine; one whose headers contradict their own lengths is an error.
Result<Frame, ParseError> parseFrame(Bytes raw);

}  // namespace cw::packet
