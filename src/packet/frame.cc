#include "packet/frame.h"

#include <array>

namespace cw::packet {

namespace {

using Status = Result<void, ParseError>;

Unexpected<ParseError> err(ParseError e) {
  return Unexpected<ParseError>(e);
}

constexpr std::uint8_t kMaxVlans = 2;
constexpr std::uint8_t kExtHopByHop = 0, kExtRouting = 43, kExtFragment = 44, kExtAuth = 51,
                       kExtDestOpts = 60, kNoNextHeader = 59;
constexpr std::size_t kIpv4MinHeaderSize = 20, kIpv6HeaderSize = 40, kTcpMinHeaderSize = 20,
                      kUdpHeaderSize = 8;

// `seg` is the transport segment bounded by the IP length; `offset` is where it starts in raw.
Status parseL4(Frame& f, Bytes seg, std::size_t offset) {
  ByteReader r(seg);
  const bool v6 = f.isIpv6();
  if (f.ip_proto == kProtoTcp) {
    f.src_port = r.u16();
    f.dst_port = r.u16();
    r.skip(8);  // sequence and acknowledgement numbers
    const std::uint8_t data_offset = r.u8();
    f.tcp_flags = r.u8();
    r.skip(6);  // window, checksum, urgent pointer
    if (!r.ok()) return err(ParseError::kTruncatedTcp);
    const std::size_t header_size = std::size_t{data_offset} / 16 * 4;
    if (header_size < kTcpMinHeaderSize || header_size > seg.size())
      return err(ParseError::kBadTcpDataOffset);
    r.skip(header_size - kTcpMinHeaderSize);  // options
    f.l4 = L4::kTcp;
    f.l4_offset = offset;
    f.payload = r.rest();
    return {};
  }
  if (f.ip_proto == kProtoUdp) {
    f.src_port = r.u16();
    f.dst_port = r.u16();
    const std::uint16_t length = r.u16();
    r.skip(2);  // checksum
    if (!r.ok()) return err(ParseError::kTruncatedUdp);
    // The UDP length may be shorter than the IP payload (the rest is not UDP's), never longer.
    if (length < kUdpHeaderSize || length > seg.size()) return err(ParseError::kBadUdpLength);
    f.l4 = L4::kUdp;
    f.l4_offset = offset;
    f.payload = r.bytes(length - kUdpHeaderSize);
    return {};
  }
  if ((!v6 && f.ip_proto == kProtoIcmp) || (v6 && f.ip_proto == kProtoIcmpv6)) {
    f.icmp_type = r.u8();
    f.icmp_code = r.u8();
    r.skip(2);  // checksum
    if (!r.ok()) return err(ParseError::kTruncatedIcmp);
    f.l4 = v6 ? L4::kIcmpv6 : L4::kIcmp;
    f.l4_offset = offset;
    f.payload = r.rest();
    return {};
  }
  if (v6 && f.ip_proto == kNoNextHeader) return {};
  f.l4 = L4::kOther;
  f.l4_offset = offset;
  return {};
}

Status parseArp(Frame& f, Bytes l3) {
  ByteReader r(l3);
  const std::uint16_t htype = r.u16();
  const std::uint16_t ptype = r.u16();
  const std::uint8_t hlen = r.u8();
  const std::uint8_t plen = r.u8();
  const std::uint16_t op = r.u16();
  if (!r.ok()) return err(ParseError::kTruncatedArp);
  if (htype != 1 || ptype != kEthIpv4 || hlen != 6 || plen != 4) {
    f.l3 = L3::kOther;  // some other hardware or protocol: not ours to judge
    return {};
  }
  r.copy(f.arp_sha.b.data(), f.arp_sha.b.size());
  f.arp_spa = Ip4{r.u32()};
  r.copy(f.arp_tha.b.data(), f.arp_tha.b.size());
  f.arp_tpa = Ip4{r.u32()};
  if (!r.ok()) return err(ParseError::kTruncatedArp);
  // RARP and InARP use other ethertypes or links; anything else here is a probe or a forgery.
  if (op != kArpRequest && op != kArpReply) return err(ParseError::kBadArp);
  f.l3 = L3::kArp;
  f.arp_op = op;
  return {};
}

Status parseIpv4(Frame& f, Bytes l3) {
  ByteReader r(l3);
  const std::uint8_t version_ihl = r.u8();
  const std::uint8_t tos = r.u8();
  const std::uint16_t total_length = r.u16();
  r.skip(2);  // identification
  const std::uint16_t flags_offset = r.u16();
  const std::uint8_t ttl = r.u8();
  const std::uint8_t proto = r.u8();
  r.skip(2);  // header checksum: the switch delivered it, the kernel will judge it
  const Ip4 src{r.u32()};
  const Ip4 dst{r.u32()};
  if (!r.ok()) return err(ParseError::kTruncatedIpv4);
  if ((version_ihl >> 4) != 4) return err(ParseError::kBadIpv4Version);
  const std::size_t header_size = std::size_t{version_ihl & 0x0fu} * 4;
  if (header_size < kIpv4MinHeaderSize) return err(ParseError::kBadIpv4HeaderLength);
  if (total_length < header_size) return err(ParseError::kBadIpv4TotalLength);
  // Bytes past total_length are Ethernet padding; fewer bytes than it means a cut frame.
  if (total_length > l3.size()) return err(ParseError::kTruncatedIpv4);

  f.l3 = L3::kIpv4;
  f.ip_src = IpAddr(src);
  f.ip_dst = IpAddr(dst);
  f.ip_proto = proto;
  f.ip_ttl = ttl;
  f.ip_dscp = static_cast<std::uint8_t>(tos >> 2);
  const bool more_fragments = (flags_offset & 0x2000) != 0;
  const std::uint16_t fragment_offset = flags_offset & 0x1fff;
  f.ip_fragment = more_fragments || fragment_offset != 0;
  f.ip_later_fragment = fragment_offset != 0;

  ByteReader body(l3.first(total_length));
  body.skip(header_size);  // fits: total_length >= header_size
  const std::size_t l4_offset = f.l3_offset + header_size;
  f.ip_payload = body.rest();
  if (f.ip_later_fragment) return {};
  return parseL4(f, f.ip_payload, l4_offset);
}

Status parseIpv6(Frame& f, Bytes l3) {
  ByteReader r(l3);
  const std::uint32_t version_class_flow = r.u32();
  const std::uint16_t payload_length = r.u16();
  std::uint8_t next = r.u8();
  const std::uint8_t hop_limit = r.u8();
  Ip6 src;
  Ip6 dst;
  r.copy(src.b.data(), src.b.size());
  r.copy(dst.b.data(), dst.b.size());
  if (!r.ok()) return err(ParseError::kTruncatedIpv6);
  if ((version_class_flow >> 28) != 6) return err(ParseError::kBadIpv6Version);
  if (payload_length > r.remaining()) return err(ParseError::kTruncatedIpv6);

  f.l3 = L3::kIpv6;
  f.ip_src = IpAddr(src);
  f.ip_dst = IpAddr(dst);
  f.ip_ttl = hop_limit;
  f.ip_dscp = static_cast<std::uint8_t>((version_class_flow >> 22) & 0x3f);

  // Each extension header is at least 8 bytes and must fit in the payload, so this loop ends
  // after at most payload_length / 8 rounds.
  ByteReader body(r.bytes(payload_length));
  bool first = true;
  bool in_chain = true;
  while (in_chain) {
    switch (next) {
      case kExtHopByHop:
      case kExtRouting:
      case kExtDestOpts: {
        // Hop-by-hop options are only valid right after the fixed header (RFC 8200 4.1).
        if (next == kExtHopByHop && !first) return err(ParseError::kBadIpv6ExtHeader);
        const std::uint8_t following = body.u8();
        const std::uint8_t length = body.u8();
        body.skip(std::size_t{length} * 8 + 6);
        if (!body.ok()) return err(ParseError::kBadIpv6ExtHeader);
        next = following;
        break;
      }
      case kExtAuth: {
        const std::uint8_t following = body.u8();
        const std::uint8_t length = body.u8();  // in 4-byte units, minus 2
        body.skip(std::size_t{length} * 4 + 6);
        if (!body.ok()) return err(ParseError::kBadIpv6ExtHeader);
        next = following;
        break;
      }
      case kExtFragment: {
        const std::uint8_t following = body.u8();
        body.skip(1);  // reserved
        const std::uint16_t offset_flags = body.u16();
        body.skip(4);  // identification
        if (!body.ok()) return err(ParseError::kBadIpv6ExtHeader);
        const bool more_fragments = (offset_flags & 1) != 0;
        const bool later = (offset_flags >> 3) != 0;
        // An atomic fragment (offset 0, no more) is a whole datagram (RFC 6946).
        f.ip_fragment = f.ip_fragment || more_fragments || later;
        f.ip_later_fragment = f.ip_later_fragment || later;
        next = following;
        break;
      }
      default:
        in_chain = false;
        break;
    }
    first = false;
    if (f.ip_later_fragment) in_chain = false;
  }
  f.ip_proto = next;
  const std::size_t l4_offset = f.l3_offset + kIpv6HeaderSize + body.position();
  f.ip_payload = body.rest();
  if (f.ip_later_fragment) return {};
  return parseL4(f, f.ip_payload, l4_offset);
}

}  // namespace

const char* parseErrorName(ParseError e) {
  static constexpr std::array<const char*, static_cast<std::size_t>(ParseError::kCount)> kNames = {
      "truncated_ethernet",
      "truncated_vlan",
      "too_many_vlans",
      "truncated_arp",
      "bad_arp",
      "truncated_ipv4",
      "bad_ipv4_version",
      "bad_ipv4_header_length",
      "bad_ipv4_total_length",
      "truncated_ipv6",
      "bad_ipv6_version",
      "bad_ipv6_ext_header",
      "truncated_tcp",
      "bad_tcp_data_offset",
      "truncated_udp",
      "bad_udp_length",
      "truncated_icmp",
  };
  const auto i = static_cast<std::size_t>(e);
  return i < kNames.size() ? kNames[i] : "unknown";
}

Result<Frame, ParseError> parseFrame(Bytes raw) {
  Frame f;
  f.raw = raw;
  ByteReader r(raw);
  r.copy(f.eth_dst.b.data(), f.eth_dst.b.size());
  r.copy(f.eth_src.b.data(), f.eth_src.b.size());
  std::uint16_t type = r.u16();
  if (!r.ok()) return err(ParseError::kTruncatedEthernet);
  while (type == kEthVlan || type == kEthQinQ) {
    if (f.vlan_count == kMaxVlans) return err(ParseError::kTooManyVlans);
    const std::uint16_t tci = r.u16();
    type = r.u16();
    if (!r.ok()) return err(ParseError::kTruncatedVlan);
    if (f.vlan_count == 0) f.vlan_vid = tci & 0x0fff;
    ++f.vlan_count;
  }
  f.eth_type = type;
  f.l3_offset = r.position();
  const Bytes l3 = r.rest();

  Status status;
  switch (type) {
    case kEthArp:
      status = parseArp(f, l3);
      break;
    case kEthIpv4:
      status = parseIpv4(f, l3);
      break;
    case kEthIpv6:
      status = parseIpv6(f, l3);
      break;
    default:
      f.l3 = L3::kOther;
      break;
  }
  if (!status) return err(status.error());
  return f;
}

}  // namespace cw::packet
