// Match setters and comparison, plus the per-field byte view that the OXM and 1.0 codecs and
// operator== share, so each field's layout is spelled once.
#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>

#include "ofp/internal.h"
#include "ofp/messages.h"

namespace cw::ofp {
namespace {

constexpr std::array<const char*, static_cast<std::size_t>(Field::kCount)> kFieldNames = {
    "in_port",    "metadata",   "eth_dst",     "eth_src",     "eth_type",  "vlan_vid",
    "vlan_pcp",   "ip_dscp",    "ip_proto",    "ipv4_src",    "ipv4_dst",  "tcp_src",
    "tcp_dst",    "udp_src",    "udp_dst",     "icmpv4_type", "icmpv4_code", "arp_op",
    "arp_spa",    "arp_tpa",    "arp_sha",     "arp_tha",     "ipv6_src",  "ipv6_dst",
    "icmpv6_type", "icmpv6_code", "ct_state",    "ct_zone",   "ct_mark",     "ct_label", "tcp_flags"};

constexpr std::array<std::uint8_t, static_cast<std::size_t>(Field::kCount)> kFieldSizes = {
    4, 8, 6, 6, 2, 2, 1, 1, 1, 4, 4, 2, 2, 2, 2, 1, 1, 2, 4, 4, 6, 6, 16, 16, 1, 1, 4, 2, 4, 16, 2};

void put(std::uint8_t* out, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(v >> (8 * (n - 1 - i)));
}
std::uint64_t get(const std::uint8_t* in, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | in[i];
  return v;
}
bool allOnes(const std::uint8_t* p, std::size_t n) {
  return std::all_of(p, p + n, [](std::uint8_t b) { return b == 0xff; });
}
MacAddr andMac(MacAddr a, MacAddr m) {
  for (std::size_t i = 0; i < a.b.size(); ++i) a.b[i] &= m.b[i];
  return a;
}
Ip6 andIp6(Ip6 a, const Ip6& m) {
  for (std::size_t i = 0; i < a.b.size(); ++i) a.b[i] &= m.b[i];
  return a;
}
constexpr MacAddr kMacOnes{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
Ip6 ip6Ones() {
  Ip6 a;
  a.b.fill(0xff);
  return a;
}

}  // namespace

const char* fieldName(Field f) {
  auto i = static_cast<std::size_t>(f);
  return i < kFieldNames.size() ? kFieldNames[i] : "unknown";
}

// ---- Setters: store the value already masked, so equal matches compare equal. ----
#define CW_MARK(field, is_masked)                          \
  present |= bit(field);                                   \
  if (is_masked) masked |= bit(field); else masked &= ~bit(field)

Match& Match::inPort(std::uint32_t p) { in_port = p; CW_MARK(Field::kInPort, false); return *this; }
Match& Match::metadataIs(std::uint64_t v, std::uint64_t mask) {
  metadata = v & mask; metadata_mask = mask;
  CW_MARK(Field::kMetadata, mask != ~0ULL);
  return *this;
}
Match& Match::ethDst(MacAddr a, std::optional<MacAddr> mask) {
  eth_dst_mask = mask.value_or(kMacOnes); eth_dst = andMac(a, eth_dst_mask);
  CW_MARK(Field::kEthDst, eth_dst_mask != kMacOnes);
  return *this;
}
Match& Match::ethSrc(MacAddr a, std::optional<MacAddr> mask) {
  eth_src_mask = mask.value_or(kMacOnes); eth_src = andMac(a, eth_src_mask);
  CW_MARK(Field::kEthSrc, eth_src_mask != kMacOnes);
  return *this;
}
Match& Match::ethType(std::uint16_t t) { eth_type = t; CW_MARK(Field::kEthType, false); return *this; }
Match& Match::vlanVid(std::uint16_t vid_with_present, std::uint16_t mask) {
  vlan_vid_mask = mask; vlan_vid = vid_with_present & mask;
  CW_MARK(Field::kVlanVid, mask != 0xffff);
  return *this;
}
Match& Match::vlanPcp(std::uint8_t p) { vlan_pcp = p; CW_MARK(Field::kVlanPcp, false); return *this; }
Match& Match::ipDscp(std::uint8_t d) { ip_dscp = d; CW_MARK(Field::kIpDscp, false); return *this; }
Match& Match::ipProto(std::uint8_t p) { ip_proto = p; CW_MARK(Field::kIpProto, false); return *this; }
Match& Match::ipv4Src(Ip4 a, Ip4 mask) {
  ipv4_src_mask = mask; ipv4_src = Ip4{a.v & mask.v};
  CW_MARK(Field::kIpv4Src, mask.v != 0xffffffff);
  return *this;
}
Match& Match::ipv4Dst(Ip4 a, Ip4 mask) {
  ipv4_dst_mask = mask; ipv4_dst = Ip4{a.v & mask.v};
  CW_MARK(Field::kIpv4Dst, mask.v != 0xffffffff);
  return *this;
}
Match& Match::tcpSrc(std::uint16_t p, std::uint16_t mask) {
  tcp_src_mask = mask; tcp_src = p & mask;
  CW_MARK(Field::kTcpSrc, mask != 0xffff);
  return *this;
}
Match& Match::tcpDst(std::uint16_t p, std::uint16_t mask) {
  tcp_dst_mask = mask; tcp_dst = p & mask;
  CW_MARK(Field::kTcpDst, mask != 0xffff);
  return *this;
}
Match& Match::udpSrc(std::uint16_t p, std::uint16_t mask) {
  udp_src_mask = mask; udp_src = p & mask;
  CW_MARK(Field::kUdpSrc, mask != 0xffff);
  return *this;
}
Match& Match::udpDst(std::uint16_t p, std::uint16_t mask) {
  udp_dst_mask = mask; udp_dst = p & mask;
  CW_MARK(Field::kUdpDst, mask != 0xffff);
  return *this;
}
Match& Match::icmpv4Type(std::uint8_t t) { icmpv4_type = t; CW_MARK(Field::kIcmpv4Type, false); return *this; }
Match& Match::icmpv4Code(std::uint8_t c) { icmpv4_code = c; CW_MARK(Field::kIcmpv4Code, false); return *this; }
Match& Match::arpOp(std::uint16_t op) { arp_op = op; CW_MARK(Field::kArpOp, false); return *this; }
Match& Match::arpSpa(Ip4 a, Ip4 mask) {
  arp_spa_mask = mask; arp_spa = Ip4{a.v & mask.v};
  CW_MARK(Field::kArpSpa, mask.v != 0xffffffff);
  return *this;
}
Match& Match::arpTpa(Ip4 a, Ip4 mask) {
  arp_tpa_mask = mask; arp_tpa = Ip4{a.v & mask.v};
  CW_MARK(Field::kArpTpa, mask.v != 0xffffffff);
  return *this;
}
Match& Match::arpSha(MacAddr a) { arp_sha = a; CW_MARK(Field::kArpSha, false); return *this; }
Match& Match::arpTha(MacAddr a) { arp_tha = a; CW_MARK(Field::kArpTha, false); return *this; }
Match& Match::ipv6Src(const Ip6& a, std::optional<Ip6> mask) {
  ipv6_src_mask = mask.value_or(ip6Ones()); ipv6_src = andIp6(a, ipv6_src_mask);
  CW_MARK(Field::kIpv6Src, ipv6_src_mask != ip6Ones());
  return *this;
}
Match& Match::ipv6Dst(const Ip6& a, std::optional<Ip6> mask) {
  ipv6_dst_mask = mask.value_or(ip6Ones()); ipv6_dst = andIp6(a, ipv6_dst_mask);
  CW_MARK(Field::kIpv6Dst, ipv6_dst_mask != ip6Ones());
  return *this;
}
Match& Match::icmpv6Type(std::uint8_t t) { icmpv6_type = t; CW_MARK(Field::kIcmpv6Type, false); return *this; }
Match& Match::icmpv6Code(std::uint8_t c) { icmpv6_code = c; CW_MARK(Field::kIcmpv6Code, false); return *this; }
Match& Match::ctState(std::uint32_t bits, std::uint32_t mask) {
  ct_state_mask = mask; ct_state = bits & mask;
  CW_MARK(Field::kCtState, mask != 0xffffffff);
  return *this;
}
Match& Match::tcpFlags(std::uint16_t bits, std::uint16_t mask) {
  // The 12 bits OVS matches; a mask of all of them is an exact match.
  mask &= 0x0fff;
  tcp_flags_mask = mask;
  tcp_flags = bits & mask;
  CW_MARK(Field::kTcpFlags, mask != 0x0fff);
  return *this;
}
Match& Match::ctZone(std::uint16_t z) { ct_zone = z; CW_MARK(Field::kCtZone, false); return *this; }
Match& Match::ctMark(std::uint32_t v, std::uint32_t mask) {
  ct_mark_mask = mask; ct_mark = v & mask;
  CW_MARK(Field::kCtMark, mask != 0xffffffff);
  return *this;
}
Match& Match::ctLabel(std::uint64_t hi, std::uint64_t lo, std::uint64_t hi_mask, std::uint64_t lo_mask) {
  ct_label_hi_mask = hi_mask; ct_label_lo_mask = lo_mask;
  ct_label_hi = hi & hi_mask; ct_label_lo = lo & lo_mask;
  CW_MARK(Field::kCtLabel, hi_mask != ~0ULL || lo_mask != ~0ULL);
  return *this;
}
#undef CW_MARK

bool Match::operator==(const Match& o) const {
  if (present != o.present || masked != o.masked) return false;
  std::array<std::uint8_t, 16> a{}, b{};
  for (unsigned i = 0; i < static_cast<unsigned>(Field::kCount); ++i) {
    auto f = static_cast<Field>(i);
    if (!has(f)) continue;
    std::size_t n = detail::fieldSize(f);
    detail::fieldBytes(*this, f, false, a.data());
    detail::fieldBytes(o, f, false, b.data());
    if (std::memcmp(a.data(), b.data(), n) != 0) return false;
    if (!hasMask(f)) continue;
    detail::fieldBytes(*this, f, true, a.data());
    detail::fieldBytes(o, f, true, b.data());
    if (std::memcmp(a.data(), b.data(), n) != 0) return false;
  }
  return true;
}

namespace detail {

std::size_t fieldSize(Field f) { return kFieldSizes[static_cast<std::size_t>(f)]; }

bool fieldMaskable(Field f) {
  switch (f) {
    case Field::kMetadata: case Field::kEthDst: case Field::kEthSrc: case Field::kVlanVid:
    case Field::kIpv4Src: case Field::kIpv4Dst: case Field::kArpSpa: case Field::kArpTpa:
    case Field::kTcpSrc: case Field::kTcpDst: case Field::kUdpSrc: case Field::kUdpDst:
    case Field::kIpv6Src: case Field::kIpv6Dst: case Field::kCtState: case Field::kCtMark: case Field::kTcpFlags:
    case Field::kCtLabel:
      return true;
    default:
      return false;
  }
}

void fieldBytes(const Match& m, Field f, bool mask, std::uint8_t* out) {
  switch (f) {
    case Field::kInPort: put(out, m.in_port, 4); break;
    case Field::kMetadata: put(out, mask ? m.metadata_mask : m.metadata, 8); break;
    case Field::kEthDst: std::memcpy(out, (mask ? m.eth_dst_mask : m.eth_dst).b.data(), 6); break;
    case Field::kEthSrc: std::memcpy(out, (mask ? m.eth_src_mask : m.eth_src).b.data(), 6); break;
    case Field::kEthType: put(out, m.eth_type, 2); break;
    case Field::kVlanVid: put(out, mask ? m.vlan_vid_mask : m.vlan_vid, 2); break;
    case Field::kVlanPcp: out[0] = m.vlan_pcp; break;
    case Field::kIpDscp: out[0] = m.ip_dscp; break;
    case Field::kIpProto: out[0] = m.ip_proto; break;
    case Field::kIpv4Src: put(out, (mask ? m.ipv4_src_mask : m.ipv4_src).v, 4); break;
    case Field::kIpv4Dst: put(out, (mask ? m.ipv4_dst_mask : m.ipv4_dst).v, 4); break;
    case Field::kTcpSrc: put(out, mask ? m.tcp_src_mask : m.tcp_src, 2); break;
    case Field::kTcpDst: put(out, mask ? m.tcp_dst_mask : m.tcp_dst, 2); break;
    case Field::kUdpSrc: put(out, mask ? m.udp_src_mask : m.udp_src, 2); break;
    case Field::kUdpDst: put(out, mask ? m.udp_dst_mask : m.udp_dst, 2); break;
    case Field::kIcmpv4Type: out[0] = m.icmpv4_type; break;
    case Field::kIcmpv4Code: out[0] = m.icmpv4_code; break;
    case Field::kArpOp: put(out, m.arp_op, 2); break;
    case Field::kArpSpa: put(out, (mask ? m.arp_spa_mask : m.arp_spa).v, 4); break;
    case Field::kArpTpa: put(out, (mask ? m.arp_tpa_mask : m.arp_tpa).v, 4); break;
    case Field::kArpSha: std::memcpy(out, m.arp_sha.b.data(), 6); break;
    case Field::kArpTha: std::memcpy(out, m.arp_tha.b.data(), 6); break;
    case Field::kIpv6Src: std::memcpy(out, (mask ? m.ipv6_src_mask : m.ipv6_src).b.data(), 16); break;
    case Field::kIpv6Dst: std::memcpy(out, (mask ? m.ipv6_dst_mask : m.ipv6_dst).b.data(), 16); break;
    case Field::kIcmpv6Type: out[0] = m.icmpv6_type; break;
    case Field::kIcmpv6Code: out[0] = m.icmpv6_code; break;
    case Field::kCtState: put(out, mask ? m.ct_state_mask : m.ct_state, 4); break;
    case Field::kTcpFlags: put(out, mask ? m.tcp_flags_mask : m.tcp_flags, 2); break;
    case Field::kCtZone: put(out, m.ct_zone, 2); break;
    case Field::kCtMark: put(out, mask ? m.ct_mark_mask : m.ct_mark, 4); break;
    case Field::kCtLabel:
      put(out, mask ? m.ct_label_hi_mask : m.ct_label_hi, 8);
      put(out + 8, mask ? m.ct_label_lo_mask : m.ct_label_lo, 8);
      break;
    case Field::kCount: assert(false); break;
  }
}

void setFieldBytes(Match& m, Field f, const std::uint8_t* v, const std::uint8_t* mk) {
  std::size_t n = fieldSize(f);
  if (mk != nullptr && allOnes(mk, n)) mk = nullptr;
  auto mac = [](const std::uint8_t* p) { MacAddr a; std::memcpy(a.b.data(), p, 6); return a; };
  auto ip4 = [](const std::uint8_t* p) { return Ip4{static_cast<std::uint32_t>(get(p, 4))}; };
  auto ip6 = [](const std::uint8_t* p) { Ip6 a; std::memcpy(a.b.data(), p, 16); return a; };
  auto u16 = [](const std::uint8_t* p) { return static_cast<std::uint16_t>(get(p, 2)); };
  // Masks are read only by the cases whose field has that width (mk holds fieldSize bytes).
  auto mac_mask = [&] { return mk ? std::optional(mac(mk)) : std::nullopt; };
  auto ip6_mask = [&] { return mk ? std::optional(ip6(mk)) : std::nullopt; };
  auto ip4_mask = [&] { return mk ? ip4(mk) : Ip4{0xffffffff}; };
  switch (f) {
    case Field::kInPort: m.inPort(static_cast<std::uint32_t>(get(v, 4))); break;
    case Field::kMetadata: m.metadataIs(get(v, 8), mk ? get(mk, 8) : ~0ULL); break;
    case Field::kEthDst: m.ethDst(mac(v), mac_mask()); break;
    case Field::kEthSrc: m.ethSrc(mac(v), mac_mask()); break;
    case Field::kEthType: m.ethType(u16(v)); break;
    case Field::kVlanVid: m.vlanVid(u16(v), mk ? u16(mk) : 0xffff); break;
    case Field::kVlanPcp: m.vlanPcp(v[0]); break;
    case Field::kIpDscp: m.ipDscp(v[0]); break;
    case Field::kIpProto: m.ipProto(v[0]); break;
    case Field::kIpv4Src: m.ipv4Src(ip4(v), ip4_mask()); break;
    case Field::kIpv4Dst: m.ipv4Dst(ip4(v), ip4_mask()); break;
    case Field::kTcpSrc: m.tcpSrc(u16(v), mk ? u16(mk) : 0xffff); break;
    case Field::kTcpDst: m.tcpDst(u16(v), mk ? u16(mk) : 0xffff); break;
    case Field::kUdpSrc: m.udpSrc(u16(v), mk ? u16(mk) : 0xffff); break;
    case Field::kUdpDst: m.udpDst(u16(v), mk ? u16(mk) : 0xffff); break;
    case Field::kIcmpv4Type: m.icmpv4Type(v[0]); break;
    case Field::kIcmpv4Code: m.icmpv4Code(v[0]); break;
    case Field::kArpOp: m.arpOp(u16(v)); break;
    case Field::kArpSpa: m.arpSpa(ip4(v), ip4_mask()); break;
    case Field::kArpTpa: m.arpTpa(ip4(v), ip4_mask()); break;
    case Field::kArpSha: m.arpSha(mac(v)); break;
    case Field::kArpTha: m.arpTha(mac(v)); break;
    case Field::kIpv6Src: m.ipv6Src(ip6(v), ip6_mask()); break;
    case Field::kIpv6Dst: m.ipv6Dst(ip6(v), ip6_mask()); break;
    case Field::kIcmpv6Type: m.icmpv6Type(v[0]); break;
    case Field::kIcmpv6Code: m.icmpv6Code(v[0]); break;
    case Field::kCtState:
      m.ctState(static_cast<std::uint32_t>(get(v, 4)), mk ? static_cast<std::uint32_t>(get(mk, 4)) : 0xffffffff);
      break;
    case Field::kCtZone: m.ctZone(u16(v)); break;
    case Field::kTcpFlags: m.tcpFlags(u16(v), mk ? u16(mk) : 0x0fff); break;
    case Field::kCtMark:
      m.ctMark(static_cast<std::uint32_t>(get(v, 4)), mk ? static_cast<std::uint32_t>(get(mk, 4)) : 0xffffffff);
      break;
    case Field::kCtLabel:
      m.ctLabel(get(v, 8), get(v + 8, 8), mk ? get(mk, 8) : ~0ULL, mk ? get(mk + 8, 8) : ~0ULL);
      break;
    case Field::kCount: assert(false); break;
  }
}

}  // namespace detail
}  // namespace cw::ofp
