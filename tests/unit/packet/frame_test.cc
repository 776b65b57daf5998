#include "packet/frame.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "packet/builder.h"

namespace cw::packet {
namespace {

using Buf = std::vector<std::uint8_t>;

const MacAddr kCellMac = *MacAddr::parse("02:00:0a:c9:00:02");
const MacAddr kGwMac = *MacAddr::parse("02:00:0a:c9:00:01");
const EthSpec kEth{kCellMac, kGwMac};
const Ip4 kCell4 = *Ip4::parse("10.201.0.2");
const Ip4 kServer4 = *Ip4::parse("93.184.216.34");
const Ip6 kCell6 = *Ip6::parse("fd00:c9::2");
const Ip6 kServer6 = *Ip6::parse("2001:db8::80");

// Hand-made frames, for the shapes the builder never produces (bad ones included).
Buf ethHeader(std::uint16_t type) {
  Buf out;
  ByteWriter w(out);
  w.bytes(kGwMac.b);
  w.bytes(kCellMac.b);
  w.u16(type);
  return out;
}

void append(Buf& out, const Buf& more) {
  out.insert(out.end(), more.begin(), more.end());
}

struct Ip4Fields {
  std::uint8_t version_ihl = 0x45;
  std::uint8_t tos = 0;
  int total_length = -1;  // -1: header + l4
  std::uint16_t flags_offset = 0;
  std::uint8_t proto = kProtoTcp;
  Buf options;

  // Chainable, since designated initializers that skip members trip -Wextra.
  Ip4Fields& versionIhl(std::uint8_t v) {
    version_ihl = v;
    return *this;
  }
  Ip4Fields& totalLength(int v) {
    total_length = v;
    return *this;
  }
  Ip4Fields& flagsOffset(std::uint16_t v) {
    flags_offset = v;
    return *this;
  }
  Ip4Fields& protocol(std::uint8_t v) {
    proto = v;
    return *this;
  }
  Ip4Fields& withOptions(Buf v) {
    options = std::move(v);
    return *this;
  }
};

Buf ip4Frame(const Ip4Fields& h, const Buf& l4) {
  Buf out = ethHeader(kEthIpv4);
  ByteWriter w(out);
  const std::size_t header_size = 20 + h.options.size();
  w.u8(h.version_ihl);
  w.u8(h.tos);
  w.u16(h.total_length < 0 ? static_cast<std::uint16_t>(header_size + l4.size())
                           : static_cast<std::uint16_t>(h.total_length));
  w.u16(0x1234);
  w.u16(h.flags_offset);
  w.u8(64);
  w.u8(h.proto);
  w.u16(0);
  w.u32(kCell4.v);
  w.u32(kServer4.v);
  w.bytes(h.options);
  w.bytes(l4);
  return out;
}

Buf ip6Frame(std::uint8_t next, const Buf& rest, std::uint32_t first_word = 0x60000000,
             int payload_length = -1) {
  Buf out = ethHeader(kEthIpv6);
  ByteWriter w(out);
  w.u32(first_word);
  w.u16(payload_length < 0 ? static_cast<std::uint16_t>(rest.size())
                           : static_cast<std::uint16_t>(payload_length));
  w.u8(next);
  w.u8(255);
  w.bytes(kCell6.b);
  w.bytes(kServer6.b);
  w.bytes(rest);
  return out;
}

Buf tcpSeg(std::uint8_t flags, std::uint8_t data_offset_words = 5, const Buf& payload = {}) {
  Buf out;
  ByteWriter w(out);
  w.u16(40000);
  w.u16(443);
  w.u32(1);
  w.u32(0);
  w.u8(static_cast<std::uint8_t>(data_offset_words << 4));
  w.u8(flags);
  w.u16(1024);
  w.u16(0);
  w.u16(0);
  if (data_offset_words > 5) w.zeros((data_offset_words - 5u) * 4u);
  w.bytes(payload);
  return out;
}

Buf udpSeg(std::uint16_t length, std::size_t payload_size) {
  Buf out;
  ByteWriter w(out);
  w.u16(5353);
  w.u16(53);
  w.u16(length);
  w.u16(0);
  w.zeros(payload_size);
  return out;
}

// An IPv6 extension header in the 8-byte-unit format (hop-by-hop, routing, destination).
Buf extHeader(std::uint8_t next, std::uint8_t length_units) {
  Buf out;
  ByteWriter w(out);
  w.u8(next);
  w.u8(length_units);
  w.zeros(std::size_t{length_units} * 8 + 6);
  return out;
}

Buf fragHeader(std::uint8_t next, std::uint16_t offset_units, bool more) {
  Buf out;
  ByteWriter w(out);
  w.u8(next);
  w.u8(0);
  w.u16(static_cast<std::uint16_t>((offset_units << 3) | (more ? 1 : 0)));
  w.u32(0xdeadbeef);
  return out;
}

Buf arpFrame(std::uint16_t htype, std::uint16_t ptype, std::uint8_t hlen, std::uint8_t plen,
             std::uint16_t op, std::size_t body_size = 20) {
  Buf out = ethHeader(kEthArp);
  ByteWriter w(out);
  w.u16(htype);
  w.u16(ptype);
  w.u8(hlen);
  w.u8(plen);
  w.u16(op);
  w.zeros(body_size);
  return out;
}

// Every view must point into the caller's buffer: that is the zero-copy contract.
void expectViewsInside(const Frame& f, Bytes raw) {
  auto inside = [&](Bytes b) {
    if (b.empty()) return true;
    return b.data() >= raw.data() && b.data() + b.size() <= raw.data() + raw.size();
  };
  EXPECT_EQ(f.raw.data(), raw.data());
  EXPECT_TRUE(inside(f.payload));
  EXPECT_TRUE(inside(f.ip_payload));
  EXPECT_LE(f.l3_offset, raw.size());
  EXPECT_LE(f.l4_offset, raw.size());
}

TEST(ParseFrame, Tcp4AllFields) {
  const std::string body = "GET / HTTP/1.1\r\n";
  const Buf body_bytes(body.begin(), body.end());
  Buf buf = buildTcp4(kEth, kCell4, kServer4, 40000, 80, kTcpSyn | kTcpPsh, 7, 9, body_bytes);
  auto r = parseFrame(buf);
  ASSERT_TRUE(r) << parseErrorName(r.error());
  const Frame& f = *r;
  expectViewsInside(f, buf);
  EXPECT_EQ(f.eth_dst, kGwMac);
  EXPECT_EQ(f.eth_src, kCellMac);
  EXPECT_EQ(f.eth_type, kEthIpv4);
  EXPECT_EQ(f.vlan_count, 0);
  EXPECT_EQ(f.l3, L3::kIpv4);
  EXPECT_EQ(f.l3_offset, 14u);
  EXPECT_EQ(f.ip_src, IpAddr(kCell4));
  EXPECT_EQ(f.ip_dst, IpAddr(kServer4));
  EXPECT_EQ(f.ip_proto, kProtoTcp);
  EXPECT_EQ(f.ip_ttl, 64);
  EXPECT_EQ(f.ip_dscp, 0);
  EXPECT_FALSE(f.ip_fragment);
  EXPECT_FALSE(f.ip_later_fragment);
  EXPECT_EQ(f.l4, L4::kTcp);
  EXPECT_EQ(f.l4_offset, 34u);
  EXPECT_EQ(f.src_port, 40000);
  EXPECT_EQ(f.dst_port, 80);
  EXPECT_EQ(f.tcp_flags, kTcpSyn | kTcpPsh);
  EXPECT_EQ(std::string(f.payload.begin(), f.payload.end()), body);
  EXPECT_EQ(f.payload.data(), buf.data() + 54);
  EXPECT_EQ(f.ip_payload.size(), 20 + body.size());
  EXPECT_TRUE(f.isIp());
  EXPECT_TRUE(f.isTcpSyn());
}

struct KindCase {
  const char* what;
  Buf frame;
  L3 l3;
  L4 l4;
  std::uint16_t eth_type;
  std::size_t l3_offset, l4_offset;
  std::uint8_t vlan_count;
  std::uint16_t vlan_vid;
  std::uint16_t src_port, dst_port;
  std::uint8_t icmp_type, icmp_code;
  std::size_t payload_size;
};

Buf withTags(Buf frame, std::initializer_list<std::pair<std::uint16_t, std::uint16_t>> tags) {
  // Inserts (tpid, tci) pairs after the MACs, outermost first.
  Buf tag_bytes;
  ByteWriter w(tag_bytes);
  for (auto [tpid, tci] : tags) {
    w.u16(tpid);
    w.u16(tci);
  }
  frame.insert(frame.begin() + 12, tag_bytes.begin(), tag_bytes.end());
  return frame;
}

std::vector<KindCase> kindCases() {
  const Buf five = {1, 2, 3, 4, 5};
  const Buf echo = {0x12, 0x34, 0x00, 0x01, 'p', 'i', 'n', 'g'};
  EthSpec tagged = kEth;
  tagged.vlan_vid = 100;
  return {
      {"tcp4", buildTcp4(kEth, kCell4, kServer4, 40000, 443, kTcpAck, 1, 2, five), L3::kIpv4,
       L4::kTcp, kEthIpv4, 14, 34, 0, 0, 40000, 443, 0, 0, 5},
      {"udp4", buildUdp4(kEth, kCell4, kServer4, 5353, 53, five), L3::kIpv4, L4::kUdp, kEthIpv4, 14,
       34, 0, 0, 5353, 53, 0, 0, 5},
      {"icmp4", buildIcmp4(kEth, kCell4, kServer4, 8, 0, echo), L3::kIpv4, L4::kIcmp, kEthIpv4, 14,
       34, 0, 0, 0, 0, 8, 0, 8},
      {"tcp6", buildTcp6(kEth, kCell6, kServer6, 40001, 80, kTcpSyn), L3::kIpv6, L4::kTcp, kEthIpv6,
       14, 54, 0, 0, 40001, 80, 0, 0, 0},
      {"udp6", buildUdp6(kEth, kCell6, kServer6, 546, 547, five), L3::kIpv6, L4::kUdp, kEthIpv6, 14,
       54, 0, 0, 546, 547, 0, 0, 5},
      {"icmp6", buildIcmp6(kEth, kCell6, kServer6, 135, 0, Buf(20, 0)), L3::kIpv6, L4::kIcmpv6,
       kEthIpv6, 14, 54, 0, 0, 0, 0, 135, 0, 20},
      {"arp", buildArp(kEth, kArpRequest, kCellMac, kCell4, MacAddr{}, kServer4), L3::kArp,
       L4::kNone, kEthArp, 14, 0, 0, 0, 0, 0, 0, 0, 0},
      {"vlan tcp4", buildTcp4(tagged, kCell4, kServer4, 1, 2, kTcpSyn), L3::kIpv4, L4::kTcp,
       kEthIpv4, 18, 38, 1, 100, 1, 2, 0, 0, 0},
      {"qinq udp4",
       withTags(buildUdp4(kEth, kCell4, kServer4, 3, 4, five),
                {{kEthQinQ, 0x2007}, {kEthVlan, 42}}),
       L3::kIpv4, L4::kUdp, kEthIpv4, 22, 42, 2, 7, 3, 4, 0, 0, 5},
      {"double 802.1q",
       withTags(buildArp(kEth, kArpReply, kCellMac, kCell4, kGwMac, kServer4),
                {{kEthVlan, 0xffff}, {kEthVlan, 1}}),
       L3::kArp, L4::kNone, kEthArp, 22, 0, 2, 0xfff, 0, 0, 0, 0, 0},
      {"lldp",
       [] {
         Buf b = ethHeader(0x88cc);
         b.resize(60);
         return b;
       }(),
       L3::kOther, L4::kNone, 0x88cc, 14, 0, 0, 0, 0, 0, 0, 0, 0},
      {"802.3 length field",
       [] {
         Buf b = ethHeader(46);
         b.resize(60);
         return b;
       }(),
       L3::kOther, L4::kNone, 46, 14, 0, 0, 0, 0, 0, 0, 0, 0},
      {"arp over token ring", arpFrame(6, kEthIpv4, 6, 4, 1), L3::kOther, L4::kNone, kEthArp, 14, 0,
       0, 0, 0, 0, 0, 0, 0},
      {"arp with ipv6 ptype", arpFrame(1, kEthIpv6, 6, 16, 1, 0), L3::kOther, L4::kNone, kEthArp,
       14, 0, 0, 0, 0, 0, 0, 0, 0},
      {"ipv4 gre", ip4Frame(Ip4Fields().protocol(47), Buf(8, 0)), L3::kIpv4, L4::kOther, kEthIpv4,
       14, 34, 0, 0, 0, 0, 0, 0, 0},
      {"icmpv6 number inside ipv4", ip4Frame(Ip4Fields().protocol(kProtoIcmpv6), Buf(8, 0)),
       L3::kIpv4, L4::kOther, kEthIpv4, 14, 34, 0, 0, 0, 0, 0, 0, 0},
      {"ipv6 esp", ip6Frame(50, Buf(16, 0)), L3::kIpv6, L4::kOther, kEthIpv6, 14, 54, 0, 0, 0, 0, 0,
       0, 0},
      {"ipv6 no next header", ip6Frame(59, {}), L3::kIpv6, L4::kNone, kEthIpv6, 14, 0, 0, 0, 0, 0,
       0, 0, 0},
  };
}

TEST(ParseFrame, EachKindOfFrame) {
  for (const KindCase& c : kindCases()) {
    SCOPED_TRACE(c.what);
    auto r = parseFrame(c.frame);
    ASSERT_TRUE(r) << parseErrorName(r.error());
    const Frame& f = *r;
    expectViewsInside(f, c.frame);
    EXPECT_EQ(f.l3, c.l3);
    EXPECT_EQ(f.l4, c.l4);
    EXPECT_EQ(f.eth_type, c.eth_type);
    EXPECT_EQ(f.l3_offset, c.l3_offset);
    EXPECT_EQ(f.l4_offset, c.l4_offset);
    EXPECT_EQ(f.vlan_count, c.vlan_count);
    EXPECT_EQ(f.vlan_vid, c.vlan_vid);
    EXPECT_EQ(f.src_port, c.src_port);
    EXPECT_EQ(f.dst_port, c.dst_port);
    EXPECT_EQ(f.icmp_type, c.icmp_type);
    EXPECT_EQ(f.icmp_code, c.icmp_code);
    EXPECT_EQ(f.payload.size(), c.payload_size);
    if (f.isIp()) {
      EXPECT_EQ(f.ip_src.is_v4(), f.isIpv4());
      EXPECT_EQ(f.ip_dst, f.isIpv4() ? IpAddr(kServer4) : IpAddr(kServer6));
    }
  }
}

TEST(ParseFrame, ArpFields) {
  Buf buf = buildArp(kEth, kArpReply, kCellMac, kCell4, kGwMac, kServer4);
  auto r = parseFrame(buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->l3, L3::kArp);
  EXPECT_EQ(r->arp_op, kArpReply);
  EXPECT_EQ(r->arp_sha, kCellMac);
  EXPECT_EQ(r->arp_spa, kCell4);
  EXPECT_EQ(r->arp_tha, kGwMac);
  EXPECT_EQ(r->arp_tpa, kServer4);
  EXPECT_FALSE(r->isIp());
}

TEST(ParseFrame, Ipv4OptionsAndDscp) {
  Ip4Fields h;
  h.version_ihl = 0x47;                                          // 28-byte header
  h.tos = 0xb9;                                                  // DSCP 46 (EF), ECN 1
  h.options = {0x01, 0x01, 0x94, 0x04, 0x00, 0x00, 0x00, 0x00};  // NOP NOP router-alert
  Buf buf = ip4Frame(h, tcpSeg(kTcpSyn, 8, {0xaa, 0xbb}));
  auto r = parseFrame(buf);
  ASSERT_TRUE(r) << parseErrorName(r.error());
  EXPECT_EQ(r->ip_dscp, 46);
  EXPECT_EQ(r->l4_offset, 14u + 28u);
  EXPECT_EQ(r->l4, L4::kTcp);
  EXPECT_EQ(r->tcp_flags, kTcpSyn);
  ASSERT_EQ(r->payload.size(), 2u);  // after 12 bytes of TCP options
  EXPECT_EQ(r->payload[0], 0xaa);
}

TEST(ParseFrame, Ipv6TrafficClass) {
  Buf buf = ip6Frame(kProtoTcp, tcpSeg(kTcpAck), 0x6b812345);  // class 0xb8, flow 0x12345
  auto r = parseFrame(buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ip_dscp, 46);
  EXPECT_EQ(r->ip_ttl, 255);
  EXPECT_EQ(r->ip_src, IpAddr(kCell6));
}

TEST(ParseFrame, EthernetPaddingIsNotPayload) {
  const Buf five = {1, 2, 3, 4, 5};
  for (Buf buf : {buildUdp4(kEth, kCell4, kServer4, 1, 2, five),
                  buildTcp4(kEth, kCell4, kServer4, 1, 2, kTcpAck, 0, 0, five),
                  buildIcmp4(kEth, kCell4, kServer4, 0, 0, five)}) {
    const std::size_t unpadded = buf.size();
    buf.resize(60, 0xee);  // minimum Ethernet frame, padded with junk
    ASSERT_LT(unpadded, buf.size());
    auto r = parseFrame(buf);
    ASSERT_TRUE(r) << parseErrorName(r.error());
    EXPECT_EQ(r->payload.size(), 5u);
    EXPECT_EQ(r->payload.data() + r->payload.size(), buf.data() + unpadded);
    EXPECT_EQ(r->ip_payload.data() + r->ip_payload.size(), buf.data() + unpadded);
  }
}

TEST(ParseFrame, UdpLengthShorterThanIpPayload) {
  Buf buf = ip4Frame(Ip4Fields().protocol(kProtoUdp), udpSeg(10, 6));  // 4 bytes past UDP's own end
  auto r = parseFrame(buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->payload.size(), 2u);
  EXPECT_EQ(r->ip_payload.size(), 14u);
}

struct FragmentCase {
  const char* what;
  Buf frame;
  bool fragment, later;
  L4 l4;
  std::uint8_t ip_proto;
  std::size_t ip_payload_size;
};

TEST(ParseFrame, Fragments) {
  const Buf data(16, 0x77);
  auto concat = [](std::initializer_list<Buf> parts) {
    Buf out;
    for (const Buf& p : parts) append(out, p);
    return out;
  };
  const std::vector<FragmentCase> cases = {
      {"ipv4 first", ip4Frame(Ip4Fields().flagsOffset(0x2000), tcpSeg(kTcpSyn)), true, false,
       L4::kTcp, kProtoTcp, 20},
      {"ipv4 middle", ip4Frame(Ip4Fields().flagsOffset(0x2000 | 185), data), true, true, L4::kNone,
       kProtoTcp, 16},
      {"ipv4 last", ip4Frame(Ip4Fields().flagsOffset(370), data), true, true, L4::kNone, kProtoTcp,
       16},
      {"ipv4 df only", ip4Frame(Ip4Fields().flagsOffset(0x4000), tcpSeg(kTcpSyn)), false, false,
       L4::kTcp, kProtoTcp, 20},
      {"ipv6 first", ip6Frame(44, concat({fragHeader(kProtoUdp, 0, true), udpSeg(8, 0)})), true,
       false, L4::kUdp, kProtoUdp, 8},
      {"ipv6 later", ip6Frame(44, concat({fragHeader(kProtoUdp, 3, false), data})), true, true,
       L4::kNone, kProtoUdp, 16},
      {"ipv6 atomic", ip6Frame(44, concat({fragHeader(kProtoTcp, 0, false), tcpSeg(kTcpSyn)})),
       false, false, L4::kTcp, kProtoTcp, 20},
      {"ipv6 later after dest opts",
       ip6Frame(60, concat({extHeader(44, 0), fragHeader(kProtoTcp, 100, true), data})), true, true,
       L4::kNone, kProtoTcp, 16},
  };
  for (const FragmentCase& c : cases) {
    SCOPED_TRACE(c.what);
    auto r = parseFrame(c.frame);
    ASSERT_TRUE(r) << parseErrorName(r.error());
    expectViewsInside(*r, c.frame);
    EXPECT_EQ(r->ip_fragment, c.fragment);
    EXPECT_EQ(r->ip_later_fragment, c.later);
    EXPECT_EQ(r->l4, c.l4);
    EXPECT_EQ(r->ip_proto, c.ip_proto);
    EXPECT_EQ(r->ip_payload.size(), c.ip_payload_size);
    if (c.later) {
      EXPECT_EQ(r->src_port, 0);
      EXPECT_TRUE(r->payload.empty());
    }
  }
}

TEST(ParseFrame, Ipv6ExtensionHeaderChains) {
  Buf chain;
  append(chain, extHeader(43, 0));  // hop-by-hop, 8 bytes
  append(chain, extHeader(60, 2));  // routing, 24 bytes
  append(chain, extHeader(51, 1));  // destination options, 16 bytes
  Buf ah = {kProtoTcp, 4, 0, 0};    // AH: (4 + 2) * 4 = 24 bytes
  ah.resize(24, 0);
  append(chain, ah);
  append(chain, tcpSeg(kTcpSyn | kTcpAck));
  Buf buf = ip6Frame(0, chain);
  auto r = parseFrame(buf);
  ASSERT_TRUE(r) << parseErrorName(r.error());
  EXPECT_EQ(r->ip_proto, kProtoTcp);
  EXPECT_EQ(r->l4, L4::kTcp);
  EXPECT_EQ(r->l4_offset, 14u + 40u + 8u + 24u + 16u + 24u);
  EXPECT_EQ(r->tcp_flags, kTcpSyn | kTcpAck);
  EXPECT_FALSE(r->isTcpSyn());
  EXPECT_FALSE(r->ip_fragment);
}

TEST(ParseFrame, Ipv6PayloadLengthBoundsTheChain) {
  // Padding after the IPv6 payload must not be taken for the transport header.
  Buf buf = ip6Frame(60, extHeader(kProtoUdp, 0));
  buf.resize(buf.size() + 8, 0);
  auto r = parseFrame(buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ParseError::kTruncatedUdp);
}

struct ErrorCase {
  const char* what;
  Buf frame;
  ParseError error;
};

std::vector<ErrorCase> errorCases() {
  Buf short_eth = ethHeader(kEthIpv4);
  short_eth.pop_back();
  Buf short_vlan = ethHeader(kEthVlan);
  short_vlan.resize(short_vlan.size() + 3);
  Buf three_tags = withTags(ethHeader(kEthIpv4), {{kEthQinQ, 1}, {kEthVlan, 2}, {kEthVlan, 3}});
  Buf short_arp = arpFrame(1, kEthIpv4, 6, 4, 1);
  short_arp.pop_back();
  Buf short_arp_header = ethHeader(kEthArp);
  short_arp_header.resize(14 + 7);
  Buf short_ip4 = ip4Frame({}, {});
  short_ip4.pop_back();
  Buf short_ip6 = ip6Frame(kProtoTcp, {});
  short_ip6.pop_back();
  return {
      {"13-byte frame", short_eth, ParseError::kTruncatedEthernet},
      {"empty frame", {}, ParseError::kTruncatedEthernet},
      {"vlan tag cut", short_vlan, ParseError::kTruncatedVlan},
      {"three vlan tags", three_tags, ParseError::kTooManyVlans},
      {"arp header cut", short_arp_header, ParseError::kTruncatedArp},
      {"arp addresses cut", short_arp, ParseError::kTruncatedArp},
      {"arp opcode 3", arpFrame(1, kEthIpv4, 6, 4, 3), ParseError::kBadArp},
      {"arp opcode 0", arpFrame(1, kEthIpv4, 6, 4, 0), ParseError::kBadArp},
      {"ipv4 header cut", short_ip4, ParseError::kTruncatedIpv4},
      {"ipv4 shorter than total length", ip4Frame(Ip4Fields().totalLength(100), tcpSeg(kTcpSyn)),
       ParseError::kTruncatedIpv4},
      {"ipv4 options past frame", ip4Frame(Ip4Fields().versionIhl(0x4f).totalLength(60), {}),
       ParseError::kTruncatedIpv4},
      {"ipv4 version 5", ip4Frame(Ip4Fields().versionIhl(0x55), tcpSeg(kTcpSyn)),
       ParseError::kBadIpv4Version},
      {"ipv4 version 6", ip4Frame(Ip4Fields().versionIhl(0x65), tcpSeg(kTcpSyn)),
       ParseError::kBadIpv4Version},
      {"ipv4 ihl 4", ip4Frame(Ip4Fields().versionIhl(0x44), tcpSeg(kTcpSyn)),
       ParseError::kBadIpv4HeaderLength},
      {"ipv4 total length 19", ip4Frame(Ip4Fields().totalLength(19), tcpSeg(kTcpSyn)),
       ParseError::kBadIpv4TotalLength},
      {"ipv4 total length inside options",
       ip4Frame(Ip4Fields().versionIhl(0x46).totalLength(22).withOptions({1, 1, 1, 0}), {}),
       ParseError::kBadIpv4TotalLength},
      {"ipv6 header cut", short_ip6, ParseError::kTruncatedIpv6},
      {"ipv6 payload length past frame", ip6Frame(kProtoTcp, tcpSeg(kTcpSyn), 0x60000000, 21),
       ParseError::kTruncatedIpv6},
      {"ipv6 version 4", ip6Frame(kProtoTcp, tcpSeg(kTcpSyn), 0x40000000),
       ParseError::kBadIpv6Version},
      {"ipv6 ext header past payload", ip6Frame(60, extHeader(kProtoTcp, 1), 0x60000000, 8),
       ParseError::kBadIpv6ExtHeader},
      {"ipv6 ext header cut", ip6Frame(43, {kProtoTcp}), ParseError::kBadIpv6ExtHeader},
      {"ipv6 hop-by-hop not first",
       ip6Frame(60,
                [] {
                  Buf b = extHeader(0, 0);
                  append(b, extHeader(kProtoTcp, 0));
                  return b;
                }()),
       ParseError::kBadIpv6ExtHeader},
      {"ipv6 fragment header cut", ip6Frame(44, {kProtoTcp, 0, 0, 0}),
       ParseError::kBadIpv6ExtHeader},
      {"ipv6 ah past payload", ip6Frame(51, {kProtoTcp, 200, 0, 0, 0, 0, 0, 0}),
       ParseError::kBadIpv6ExtHeader},
      {"tcp 19 bytes", ip4Frame({}, Buf(19, 0x50)), ParseError::kTruncatedTcp},
      {"tcp over ipv6 cut", ip6Frame(kProtoTcp, Buf(10, 0)), ParseError::kTruncatedTcp},
      {"tcp data offset 4", ip4Frame({}, tcpSeg(kTcpSyn, 4)), ParseError::kBadTcpDataOffset},
      {"tcp data offset past segment",
       [] {
         Buf seg = tcpSeg(kTcpSyn, 6);
         seg.resize(22);  // options claim 4 bytes, only 2 inside the IP length
         return ip4Frame({}, seg);
       }(),
       ParseError::kBadTcpDataOffset},
      {"udp 7 bytes", ip4Frame(Ip4Fields().protocol(kProtoUdp), Buf(7, 0)),
       ParseError::kTruncatedUdp},
      {"udp length 7", ip4Frame(Ip4Fields().protocol(kProtoUdp), udpSeg(7, 4)),
       ParseError::kBadUdpLength},
      {"udp length past ip", ip4Frame(Ip4Fields().protocol(kProtoUdp), udpSeg(20, 4)),
       ParseError::kBadUdpLength},
      {"icmp 3 bytes", ip4Frame(Ip4Fields().protocol(kProtoIcmp), {8, 0, 0}),
       ParseError::kTruncatedIcmp},
      {"icmpv6 empty", ip6Frame(kProtoIcmpv6, {}), ParseError::kTruncatedIcmp},
  };
}

TEST(ParseFrame, EveryErrorIsReachable) {
  std::set<ParseError> seen;
  for (const ErrorCase& c : errorCases()) {
    SCOPED_TRACE(c.what);
    auto r = parseFrame(c.frame);
    ASSERT_FALSE(r) << describe(*r);
    EXPECT_EQ(r.error(), c.error) << parseErrorName(r.error());
    seen.insert(r.error());
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(ParseError::kCount));
}

TEST(ParseFrame, ErrorNamesAreStableSnakeCase) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < static_cast<std::size_t>(ParseError::kCount); ++i) {
    const std::string name = parseErrorName(static_cast<ParseError>(i));
    EXPECT_NE(name, "unknown");
    for (char c : name)
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') << name;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(ParseError::kCount));
  EXPECT_STREQ(parseErrorName(ParseError::kTruncatedEthernet), "truncated_ethernet");
  EXPECT_STREQ(parseErrorName(ParseError::kBadIpv6ExtHeader), "bad_ipv6_ext_header");
  EXPECT_STREQ(parseErrorName(ParseError::kTruncatedIcmp), "truncated_icmp");
  EXPECT_STREQ(parseErrorName(ParseError::kCount), "unknown");
}

// A frame cut anywhere must never be read past its end: it either fails or parses less.
TEST(ParseFrame, TruncationAtEveryOffset) {
  EthSpec tagged = kEth;
  tagged.vlan_vid = 5;
  const Buf payload = {'h', 'e', 'l', 'l', 'o'};
  Buf ext;
  append(ext, extHeader(44, 1));
  append(ext, fragHeader(kProtoTcp, 0, true));
  append(ext, tcpSeg(kTcpSyn, 6, payload));
  const std::vector<Buf> frames = {
      buildTcp4(tagged, kCell4, kServer4, 40000, 80, kTcpSyn, 1, 0, payload),
      buildTcp6(kEth, kCell6, kServer6, 40000, 80, kTcpSyn, 1, 0, payload),
      ip6Frame(0, ext),
  };
  for (const Buf& full : frames) {
    ASSERT_TRUE(parseFrame(full));
    for (std::size_t n = 0; n < full.size(); ++n) {
      SCOPED_TRACE(n);
      // Its own allocation, so AddressSanitizer catches a read one past the cut.
      Buf cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
      auto r = parseFrame(cut);
      if (r) {
        expectViewsInside(*r, cut);
        EXPECT_NE(r->l4, L4::kTcp);  // the TCP header is never complete in a cut frame
      }
    }
  }
}

}  // namespace
}  // namespace cw::packet
