// OpenFlow 1.0 ofp_match (fixed 40 bytes with a wildcard bitmap) and 16-bit port numbers.
//
// 1.0 overloads fields by ethertype and protocol: nw_src/nw_dst are the ARP SPA/TPA for ARP,
// nw_proto is the ARP opcode, tp_src/tp_dst are the ICMP type/code for ICMP. The encoder
// therefore only accepts matches whose prerequisites say which meaning applies
// (canExpressMatch10), and the decoder reads the fields back the same way, so a 1.0 match
// round-trips to the same Match.
#include "ofp/internal.h"
#include "ofp/wire.h"

namespace cw::ofp::detail {
namespace {

namespace w10 = wire::v10;
constexpr std::uint16_t kEthIp = 0x0800, kEthArp = 0x0806;
constexpr std::uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17;

constexpr std::uint32_t bitOf(Field f) { return Match::bit(f); }

// Wildcard bit count (0..32) for a CIDR mask, or -1 when the mask is not a prefix.
int wildBits(Ip4 mask) {
  std::uint32_t inv = ~mask.v;
  if ((inv & (inv + 1)) != 0) return -1;  // inverse of a prefix mask is 2^n - 1
  int n = 0;
  while (n < 32 && ((inv >> n) & 1) != 0) ++n;
  return n;
}
Ip4 maskOf(unsigned wild) {
  if (wild >= 32) return Ip4{0};
  return Ip4{wild == 0 ? 0xffffffffu : ~((1u << wild) - 1)};
}

bool hasEthType(const Match& m, std::uint16_t t) { return m.has(Field::kEthType) && m.eth_type == t; }
bool hasProto(const Match& m, std::uint8_t p) {
  return hasEthType(m, kEthIp) && m.has(Field::kIpProto) && m.ip_proto == p;
}

}  // namespace

std::uint16_t port10(std::uint32_t port) {
  if (port >= kPortMax) return static_cast<std::uint16_t>(port & 0xffff);
  return static_cast<std::uint16_t>(port);
}
std::uint32_t port13(std::uint16_t port) {
  return port >= 0xff00 ? (0xffff0000u | port) : port;
}
bool canExpressPort10(std::uint32_t port) { return port < 0xff00 || port >= kPortMax; }

bool canExpressMatch10(const Match& m) {
  constexpr std::uint32_t kNever = bitOf(Field::kMetadata) | bitOf(Field::kArpSha) |
      bitOf(Field::kArpTha) | bitOf(Field::kIpv6Src) | bitOf(Field::kIpv6Dst) |
      bitOf(Field::kIcmpv6Type) | bitOf(Field::kIcmpv6Code) | bitOf(Field::kCtState) |
      bitOf(Field::kCtZone) | bitOf(Field::kCtMark) | bitOf(Field::kCtLabel) | bitOf(Field::kTcpFlags);
  constexpr std::uint32_t kNoMask = bitOf(Field::kEthSrc) | bitOf(Field::kEthDst) |
      bitOf(Field::kVlanVid) | bitOf(Field::kTcpSrc) | bitOf(Field::kTcpDst) |
      bitOf(Field::kUdpSrc) | bitOf(Field::kUdpDst);
  if ((m.present & kNever) != 0 || (m.masked & kNoMask) != 0) return false;
  if (m.has(Field::kInPort) && !canExpressPort10(m.in_port)) return false;
  if (m.has(Field::kVlanVid) && m.vlan_vid != 0 && (m.vlan_vid & kVlanPresent) == 0) return false;
  if (m.has(Field::kVlanVid) && m.vlan_vid > (kVlanPresent | 0xfff)) return false;
  if (m.has(Field::kIpv4Src) && wildBits(m.ipv4_src_mask) < 0) return false;
  if (m.has(Field::kIpv4Dst) && wildBits(m.ipv4_dst_mask) < 0) return false;
  if (m.has(Field::kArpSpa) && wildBits(m.arp_spa_mask) < 0) return false;
  if (m.has(Field::kArpTpa) && wildBits(m.arp_tpa_mask) < 0) return false;
  // Each overloaded field needs the prerequisite that tells the decoder what it means.
  bool ip = hasEthType(m, kEthIp), arp = hasEthType(m, kEthArp);
  constexpr std::uint32_t kIpFields = bitOf(Field::kIpDscp) | bitOf(Field::kIpProto) |
      bitOf(Field::kIpv4Src) | bitOf(Field::kIpv4Dst);
  constexpr std::uint32_t kArpFields = bitOf(Field::kArpOp) | bitOf(Field::kArpSpa) | bitOf(Field::kArpTpa);
  if ((m.present & kIpFields) != 0 && !ip) return false;
  if ((m.present & kArpFields) != 0 && !arp) return false;
  if ((m.has(Field::kTcpSrc) || m.has(Field::kTcpDst)) && !hasProto(m, kProtoTcp)) return false;
  if ((m.has(Field::kUdpSrc) || m.has(Field::kUdpDst)) && !hasProto(m, kProtoUdp)) return false;
  if ((m.has(Field::kIcmpv4Type) || m.has(Field::kIcmpv4Code)) && !hasProto(m, kProtoIcmp)) return false;
  if (m.has(Field::kIpDscp) && m.ip_dscp > 63) return false;
  if (m.has(Field::kArpOp) && m.arp_op > 0xff) return false;
  return true;
}

void encodeMatch10(ByteWriter& w, const Match& m) {
  std::uint32_t wild = w10::kFwAll;
  auto use = [&](Field f, std::uint32_t bit) {
    if (!m.has(f)) return false;
    wild &= ~bit;
    return true;
  };
  std::uint16_t in_port = use(Field::kInPort, w10::kFwInPort) ? port10(m.in_port) : 0;
  MacAddr dl_src = use(Field::kEthSrc, w10::kFwDlSrc) ? m.eth_src : MacAddr{};
  MacAddr dl_dst = use(Field::kEthDst, w10::kFwDlDst) ? m.eth_dst : MacAddr{};
  std::uint16_t dl_vlan = 0;
  if (use(Field::kVlanVid, w10::kFwDlVlan)) {
    dl_vlan = m.vlan_vid == 0 ? w10::kVlanNone : static_cast<std::uint16_t>(m.vlan_vid & 0xfff);
  }
  std::uint8_t pcp = use(Field::kVlanPcp, w10::kFwDlVlanPcp) ? m.vlan_pcp : 0;
  std::uint16_t dl_type = use(Field::kEthType, w10::kFwDlType) ? m.eth_type : 0;
  std::uint8_t nw_tos = use(Field::kIpDscp, w10::kFwNwTos) ? static_cast<std::uint8_t>(m.ip_dscp << 2) : 0;
  std::uint8_t nw_proto = 0;
  if (use(Field::kIpProto, w10::kFwNwProto)) nw_proto = m.ip_proto;
  if (use(Field::kArpOp, w10::kFwNwProto)) nw_proto = static_cast<std::uint8_t>(m.arp_op);
  Ip4 nw_src, nw_dst;
  auto addr = [&](Field f, Ip4 v, Ip4 mask, unsigned shift, Ip4& out) {
    if (!m.has(f)) return;
    int bits = wildBits(mask);
    wild = (wild & ~(w10::kFwNwBits << shift)) | (static_cast<std::uint32_t>(bits < 0 ? 32 : bits) << shift);
    out = v;
  };
  addr(Field::kIpv4Src, m.ipv4_src, m.ipv4_src_mask, w10::kFwNwSrcShift, nw_src);
  addr(Field::kArpSpa, m.arp_spa, m.arp_spa_mask, w10::kFwNwSrcShift, nw_src);
  addr(Field::kIpv4Dst, m.ipv4_dst, m.ipv4_dst_mask, w10::kFwNwDstShift, nw_dst);
  addr(Field::kArpTpa, m.arp_tpa, m.arp_tpa_mask, w10::kFwNwDstShift, nw_dst);
  std::uint16_t tp_src = 0, tp_dst = 0;
  if (use(Field::kTcpSrc, w10::kFwTpSrc)) tp_src = m.tcp_src;
  if (use(Field::kUdpSrc, w10::kFwTpSrc)) tp_src = m.udp_src;
  if (use(Field::kIcmpv4Type, w10::kFwTpSrc)) tp_src = m.icmpv4_type;
  if (use(Field::kTcpDst, w10::kFwTpDst)) tp_dst = m.tcp_dst;
  if (use(Field::kUdpDst, w10::kFwTpDst)) tp_dst = m.udp_dst;
  if (use(Field::kIcmpv4Code, w10::kFwTpDst)) tp_dst = m.icmpv4_code;

  w.u32(wild);
  w.u16(in_port);
  w.bytes(dl_src.b);
  w.bytes(dl_dst.b);
  w.u16(dl_vlan);
  w.u8(pcp);
  w.zeros(1);
  w.u16(dl_type);
  w.u8(nw_tos);
  w.u8(nw_proto);
  w.zeros(2);
  w.u32(nw_src.v);
  w.u32(nw_dst.v);
  w.u16(tp_src);
  w.u16(tp_dst);
}

Status decodeMatch10(ByteReader& r, Match& m) {
  m = Match{};
  if (r.remaining() < sizeof(w10::Match)) return fail(DecodeError::kBadMatch);
  std::uint32_t wild = r.u32();
  std::uint16_t in_port = r.u16();
  MacAddr dl_src, dl_dst;
  r.copy(dl_src.b.data(), 6);
  r.copy(dl_dst.b.data(), 6);
  std::uint16_t dl_vlan = r.u16();
  std::uint8_t pcp = r.u8();
  r.skip(1);
  std::uint16_t dl_type = r.u16();
  std::uint8_t nw_tos = r.u8();
  std::uint8_t nw_proto = r.u8();
  r.skip(2);
  Ip4 nw_src{r.u32()}, nw_dst{r.u32()};
  std::uint16_t tp_src = r.u16(), tp_dst = r.u16();
  if (!r.ok()) return fail(DecodeError::kBadMatch);

  auto exact = [&](std::uint32_t bit) { return (wild & bit) == 0; };
  unsigned src_wild = (wild >> w10::kFwNwSrcShift) & w10::kFwNwBits;
  unsigned dst_wild = (wild >> w10::kFwNwDstShift) & w10::kFwNwBits;
  if (exact(w10::kFwInPort)) m.inPort(port13(in_port));
  if (exact(w10::kFwDlSrc)) m.ethSrc(dl_src);
  if (exact(w10::kFwDlDst)) m.ethDst(dl_dst);
  if (exact(w10::kFwDlVlan)) {
    m.vlanVid(dl_vlan == w10::kVlanNone ? 0 : static_cast<std::uint16_t>(kVlanPresent | (dl_vlan & 0xfff)));
  }
  if (exact(w10::kFwDlVlanPcp)) m.vlanPcp(pcp);
  if (!exact(w10::kFwDlType)) return {};
  m.ethType(dl_type);
  // Fields below have a meaning only under a known ethertype/protocol; elsewhere switches
  // ignore them, and so do we.
  if (dl_type == kEthArp) {
    if (exact(w10::kFwNwProto)) m.arpOp(nw_proto);
    if (src_wild < 32) m.arpSpa(nw_src, maskOf(src_wild));
    if (dst_wild < 32) m.arpTpa(nw_dst, maskOf(dst_wild));
    return {};
  }
  if (dl_type != kEthIp) return {};
  if (exact(w10::kFwNwTos)) m.ipDscp(static_cast<std::uint8_t>(nw_tos >> 2));
  if (src_wild < 32) m.ipv4Src(nw_src, maskOf(src_wild));
  if (dst_wild < 32) m.ipv4Dst(nw_dst, maskOf(dst_wild));
  if (!exact(w10::kFwNwProto)) return {};
  m.ipProto(nw_proto);
  bool src = exact(w10::kFwTpSrc), dst = exact(w10::kFwTpDst);
  switch (nw_proto) {
    case kProtoTcp:
      if (src) m.tcpSrc(tp_src);
      if (dst) m.tcpDst(tp_dst);
      break;
    case kProtoUdp:
      if (src) m.udpSrc(tp_src);
      if (dst) m.udpDst(tp_dst);
      break;
    case kProtoIcmp:
      if (src) m.icmpv4Type(static_cast<std::uint8_t>(tp_src));
      if (dst) m.icmpv4Code(static_cast<std::uint8_t>(tp_dst));
      break;
    default:
      break;
  }
  return {};
}

}  // namespace cw::ofp::detail
