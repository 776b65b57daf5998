#include "ofp/codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_messages.h"

namespace cw::ofp {
namespace {

using testing::ip;
using testing::mac;

using testing::fromHex;

std::string toHex(const std::vector<std::uint8_t>& b) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (auto v : b) {
    s.push_back(kDigits[v >> 4]);
    s.push_back(kDigits[v & 15]);
  }
  return s;
}

void roundTrip(Version v, const std::vector<testing::Sample>& samples) {
  std::uint32_t xid = 1;
  for (const auto& s : samples) {
    SCOPED_TRACE(s.name);
    ASSERT_TRUE(canEncode(v, s.msg));
    std::vector<std::uint8_t> buf;
    encode(v, xid, s.msg, buf);
    auto len = frameLength(buf);
    ASSERT_TRUE(len);
    EXPECT_EQ(*len, buf.size());
    auto d = decode(buf);
    ASSERT_TRUE(d) << decodeErrorName(d.error()) << " " << toHex(buf);
    EXPECT_EQ(d->header.version, static_cast<std::uint8_t>(v));
    EXPECT_EQ(d->header.xid, xid);
    EXPECT_EQ(d->header.length, buf.size());
    EXPECT_TRUE(sameMessage(d->msg, s.msg)) << format(*d);
    EXPECT_FALSE(format(*d).empty());
    // Encoding the decoded value gives the same bytes.
    std::vector<std::uint8_t> again;
    encode(v, xid, d->msg, again);
    EXPECT_EQ(toHex(again), toHex(buf));
    ++xid;
  }
}

TEST(OfpCodec, RoundTripsEveryMessage13) { roundTrip(Version::kOf13, testing::samples13()); }
TEST(OfpCodec, RoundTripsEveryMessage10) { roundTrip(Version::kOf10, testing::samples10()); }

TEST(OfpCodec, FastPathsMatchEncode) {
  for (auto v : {Version::kOf13, Version::kOf10}) {
    for (const auto& s : v == Version::kOf13 ? testing::samples13() : testing::samples10()) {
      std::vector<std::uint8_t> a, b;
      encode(v, 9, s.msg, a);
      if (const auto* fm = std::get_if<FlowMod>(&s.msg)) {
        encodeFlowMod(v, 9, *fm, b);
      } else if (const auto* po = std::get_if<PacketOut>(&s.msg)) {
        encodePacketOut(v, 9, *po, b);
      } else {
        continue;
      }
      EXPECT_EQ(a, b) << s.name;
    }
  }
}

// Fixed encodings, written from the spec's struct layouts, paired with their text.
struct Fixed {
  const char* name;
  Version version;
  std::uint32_t xid;
  Message msg;
  const char* hex;
  const char* text;
};

std::vector<Fixed> fixedCases() {
  std::vector<Fixed> c;
  c.push_back({"hello13", Version::kOf13, 1, Hello{0x12},
               "04 00 0010 00000001  0001 0008 00000012", "HELLO xid=0x1 versions=0x12"});
  c.push_back({"hello10", Version::kOf10, 2, Hello{0}, "01 00 0008 00000002", "HELLO xid=0x2"});
  c.push_back({"echo10", Version::kOf10, 3, Echo{false, {0xab}}, "01 02 0009 00000003 ab",
               "ECHO_REQUEST xid=0x3 data_len=1"});
  c.push_back({"barrier13", Version::kOf13, 4, BarrierRequest{}, "04 14 0008 00000004", "BARRIER_REQUEST xid=0x4"});
  c.push_back({"set_config13", Version::kOf13, 5, SwitchConfig{true, 0, 0xffff}, "04 09 000c 00000005 0000 ffff",
               "SET_CONFIG xid=0x5 flags=0x0 miss_send_len=65535"});
  c.push_back({"role13", Version::kOf13, 6, RoleMsg{false, ControllerRole::kMaster, 7},
               "04 18 0018 00000006 00000002 00000000 0000000000000007",
               "ROLE_REQUEST xid=0x6 role=master generation_id=7"});

  FlowMod fm;
  fm.cookie = 1;
  fm.table_id = 1;
  fm.idle_timeout = 60;
  fm.priority = 100;
  fm.match.inPort(3).ethType(0x0800).ipProto(6).ipv4Src(ip("10.0.0.2")).tcpDst(80);
  fm.instructions = {InstrApplyActions{{ActionOutput{2, 0}}}};
  c.push_back({"flow_mod13", Version::kOf13, 5, fm,
               "04 0e 0070 00000005"
               "0000000000000001 0000000000000000 01 00 003c 0000 0064 ffffffff ffffffff ffffffff 0000 0000"
               "0001 0025"
               "  8000 00 04 00000003  8000 0a 02 0800  8000 14 01 06  8000 16 04 0a000002  8000 1c 02 0050"
               "  000000"
               "0004 0018 00000000  0000 0010 00000002 0000 000000000000",
               "FLOW_MOD xid=0x5 add table=1 cookie=0x1 priority=100 idle_timeout=60 "
               "tcp,in_port=3,nw_src=10.0.0.2,tp_dst=80 actions=output:2"});
  FlowMod fm10 = fm;
  fm10.table_id = 0;
  c.push_back({"flow_mod10", Version::kOf10, 5, fm10,
               "01 0e 0050 00000005"
               "003fc04e 0003 000000000000 000000000000 0000 00 00 0800 00 06 0000 0a000002 00000000 0000 0050"
               "0000000000000001 0000 003c 0000 0064 ffffffff ffff 0000"
               "0000 0008 0002 0000",
               "FLOW_MOD xid=0x5 add table=0 cookie=0x1 priority=100 idle_timeout=60 "
               "tcp,in_port=3,nw_src=10.0.0.2,tp_dst=80 actions=output:2"});
  // Table 0's admit flows: untagged frames only. VLAN_VID OFPVID_NONE (0x0000, no mask) in 1.3;
  // dl_vlan OFP_VLAN_NONE (0xffff), not wildcarded, in 1.0.
  FlowMod untagged = fm;
  untagged.match = Match();
  untagged.match.inPort(3).vlanVid(kVlanNone).ethType(0x0800).ipv4Src(ip("10.0.0.2"));
  c.push_back({"flow_mod_untagged13", Version::kOf13, 9, untagged,
               "04 0e 0068 00000009"
               "0000000000000001 0000000000000000 01 00 003c 0000 0064 ffffffff ffffffff ffffffff 0000 0000"
               "0001 0020"
               "  8000 00 04 00000003  8000 0a 02 0800  8000 0c 02 0000  8000 16 04 0a000002"
               "0004 0018 00000000  0000 0010 00000002 0000 000000000000",
               "FLOW_MOD xid=0x9 add table=1 cookie=0x1 priority=100 idle_timeout=60 "
               "ip,in_port=3,vlan_vid=none,nw_src=10.0.0.2 actions=output:2"});
  FlowMod untagged10 = untagged;
  untagged10.table_id = 0;
  c.push_back({"flow_mod_untagged10", Version::kOf10, 9, untagged10,
               "01 0e 0050 00000009"
               "003fc0ec 0003 000000000000 000000000000 ffff 00 00 0800 00 00 0000 0a000002 00000000 0000 0000"
               "0000000000000001 0000 003c 0000 0064 ffffffff ffff 0000"
               "0000 0008 0002 0000",
               "FLOW_MOD xid=0x9 add table=0 cookie=0x1 priority=100 idle_timeout=60 "
               "ip,in_port=3,vlan_vid=none,nw_src=10.0.0.2 actions=output:2"});
  // A port range as prefix blocks (rule flows, src/decide/rule_flows.h): TCP_DST with hasmask.
  // `ovs-ofctl -O OpenFlow13 ofp-print` reads these bytes as
  // "ADD table:6 priority=7,tcp,in_port=3,tp_dst=0x400/0xfc00 actions=drop" (OVS 3.1).
  FlowMod ports;
  ports.table_id = 6;
  ports.priority = 7;
  ports.match.inPort(3).ethType(0x0800).ipProto(6).tcpDst(0x0400, 0xfc00);
  c.push_back({"flow_mod_port_mask13", Version::kOf13, 10, ports,
               "04 0e 0050 0000000a"
               "0000000000000000 0000000000000000 06 00 0000 0000 0007 ffffffff ffffffff ffffffff 0000 0000"
               "0001 001f"
               "  8000 00 04 00000003  8000 0a 02 0800  8000 14 01 06  8000 1d 04 0400 fc00"
               "  00",
               "FLOW_MOD xid=0xa add table=6 cookie=0x0 priority=7 "
               "tcp,in_port=3,tp_dst=0x400/0xfc00 actions=drop"});
  PacketOut po;
  po.actions = {ActionOutput{kPortFlood, 0}};
  po.data = {0xaa, 0xbb};
  c.push_back({"packet_out10", Version::kOf10, 7, po,
               "01 0d 001a 00000007 ffffffff fffd 0008  0000 0008 fffb 0000  aabb",
               "PACKET_OUT xid=0x7 buffer_id=0xffffffff in_port=CONTROLLER actions=output:FLOOD data_len=2"});
  c.push_back({"packet_out13", Version::kOf13, 7, po,
               "04 0d 002a 00000007 ffffffff fffffffd 0010 000000000000"
               "0000 0010 fffffffb 0000 000000000000 aabb",
               "PACKET_OUT xid=0x7 buffer_id=0xffffffff in_port=CONTROLLER actions=output:FLOOD data_len=2"});
  MeterMod mm{MeterModCommand::kAdd, kMeterPktps, 3, {{100, 0}}};
  c.push_back({"meter_mod13", Version::kOf13, 8, mm,
               "04 1d 0020 00000008 0000 0002 00000003  0001 0010 00000064 00000000 00000000",
               "METER_MOD xid=0x8 add meter=3 flags=0x2 bands=drop:rate=100:burst=0"});
  return c;
}

TEST(OfpCodec, FixedEncodingsAndText) {
  for (const auto& c : fixedCases()) {
    SCOPED_TRACE(c.name);
    std::vector<std::uint8_t> buf;
    encode(c.version, c.xid, c.msg, buf);
    EXPECT_EQ(toHex(buf), toHex(fromHex(c.hex)));
    auto d = decode(fromHex(c.hex));
    ASSERT_TRUE(d) << decodeErrorName(d.error());
    EXPECT_EQ(format(*d), c.text);
    EXPECT_TRUE(sameMessage(d->msg, c.msg));
  }
}

TEST(OfpCodec, PacketInPointsIntoInputAndNamesTheMatch) {
  auto bytes = fromHex(
      "04 0a 002e 00000000 ffffffff 0004 00 00 0000000000000000"
      "0001 000c 80000004 00000001 00000000  0000  deadbeef");
  auto d = decode(bytes);
  ASSERT_TRUE(d) << decodeErrorName(d.error());
  const auto& pi = std::get<PacketIn>(d->msg);
  EXPECT_EQ(pi.inPort(), 1u);
  ASSERT_EQ(pi.data.size(), 4u);
  EXPECT_EQ(pi.data.data(), bytes.data() + 42);
  EXPECT_EQ(format(*d),
            "PACKET_IN xid=0x0 buffer_id=0xffffffff total_len=4 reason=no_match table=0 cookie=0x0 "
            "in_port=1 data_len=4");
}

TEST(OfpCodec, PacketInSkipsUnknownOxmFields) {
  // in_port, then an NXM tunnel field (class 0x0001), an experimenter OXM (class 0xffff with
  // its 4-byte experimenter id), and OXM_OF_IP_ECN (basic class, not modelled).
  auto bytes = fromHex(
      "04 0a 0046 00000009 ffffffff 0004 01 02 0000000000000abc"
      "0001 0025 80000004 00000005  00012604 11223344  ffff0408 00002320 00000001  80001201 02"
      "  000000  0000  deadbeef");
  auto d = decode(bytes);
  ASSERT_TRUE(d) << decodeErrorName(d.error());
  const auto& pi = std::get<PacketIn>(d->msg);
  EXPECT_EQ(pi.inPort(), 5u);
  EXPECT_EQ(pi.match.present, Match::bit(Field::kInPort));
  EXPECT_EQ(pi.table_id, 2);
  EXPECT_EQ(pi.cookie, 0xabcu);
  EXPECT_EQ(pi.data.size(), 4u);
  // The same unknown OXM in a FLOW_MOD is rejected.
  auto bad = decode(fromHex(
      "04 0e 0040 00000001 0000000000000000 0000000000000000 00 00 0000 0000 8000 ffffffff ffffffff"
      "ffffffff 0000 0000  0001 0009 80001201 02 00000000000000"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), DecodeError::kBadField);
}

TEST(OfpCodec, HelloAcceptsAnyVersionAndUnknownElements) {
  auto d = decode(fromHex("06 00 0018 00000001  0002 0005 aa 000000  0001 0008 00000052"));
  ASSERT_TRUE(d) << decodeErrorName(d.error());
  EXPECT_EQ(d->header.version, 6);
  EXPECT_EQ(std::get<Hello>(d->msg).version_bitmap, 0x52u);
  auto bad = decode(fromHex("04 00 000c 00000001  0001 0010"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), DecodeError::kBadLength);
}

TEST(OfpCodec, ErrorNumbersTranslateFor10) {
  // 1.0 OFPET_FLOW_MOD_FAILED/OFPFMFC_OVERLAP is 1.3 OFPET_FLOW_MOD_FAILED/OFPFMFC_OVERLAP.
  auto d = decode(fromHex("01 01 000c 00000001 0003 0001"));
  ASSERT_TRUE(d);
  const auto& e = std::get<ErrorMsg>(d->msg);
  EXPECT_EQ(e.type, 5);
  EXPECT_EQ(e.code, 3);
}

TEST(OfpCodec, CanEncodeRefusesWhat10CannotSay) {
  EXPECT_FALSE(canEncode(Version::kOf10, MeterMod{}));
  EXPECT_FALSE(canEncode(Version::kOf10, RoleMsg{}));
  EXPECT_FALSE(canEncode(Version::kOf10, MultipartRequest{0, PortDescRequest{}}));
  FlowMod fm;
  EXPECT_TRUE(canEncode(Version::kOf10, fm));
  fm.instructions = {InstrGotoTable{1}};
  EXPECT_FALSE(canEncode(Version::kOf10, fm));
  fm.instructions = {InstrApplyActions{{ActionGroup{1}}}};
  EXPECT_FALSE(canEncode(Version::kOf10, fm));
  fm.instructions.clear();
  fm.table_id = 1;
  EXPECT_FALSE(canEncode(Version::kOf10, fm));
  fm.table_id = 0;
  fm.match.metadataIs(1);
  EXPECT_FALSE(canEncode(Version::kOf10, fm));
  fm.match = Match{};
  fm.match.ethSrc(mac("02:00:00:00:00:01"), mac("ff:ff:ff:00:00:00"));
  EXPECT_FALSE(canEncode(Version::kOf10, fm));
  fm.match = Match{};
  fm.match.tcpDst(80);  // no ip_proto: 1.0 could not tell TCP from UDP
  EXPECT_FALSE(canEncode(Version::kOf10, fm));
  fm.match = Match{};
  fm.match.ethType(0x0800).ipProto(6).tcpDst(0x400, 0xfc00);  // 1.0 has no port masks
  EXPECT_FALSE(canEncode(Version::kOf10, fm));
  fm.match = Match{};
  fm.match.ethType(0x0800).ipv4Src(ip("10.0.0.0"), ip("255.0.255.0"));  // not a prefix
  EXPECT_FALSE(canEncode(Version::kOf10, fm));
  FeaturesReply fr;
  fr.ports.push_back(PortDesc{});
  EXPECT_FALSE(canEncode(Version::kOf13, fr));
}

TEST(OfpCodec, FrameLength) {
  EXPECT_FALSE(frameLength(fromHex("04 00 00")));
  EXPECT_EQ(*frameLength(fromHex("04 00 0010 00000001")), 16u);
  EXPECT_EQ(*frameLength(fromHex("04 00 0004 00000001")), 4u);
}

TEST(OfpMatch, SettersCanonicalizeAndCompare) {
  Match a, b;
  a.ipv4Src(ip("10.1.2.3"), ip("255.255.0.0"));
  b.ipv4Src(ip("10.1.9.9"), ip("255.255.0.0"));
  EXPECT_EQ(a, b);
  EXPECT_TRUE(a.hasMask(Field::kIpv4Src));
  Match c;
  c.ipv4Src(ip("10.1.2.3"), ip("255.255.255.255"));
  EXPECT_FALSE(c.hasMask(Field::kIpv4Src));
  Match p, q;
  p.tcpDst(0x4d2, 0xfc00);  // stored masked: 1234 in the block 1024-2047
  q.tcpDst(0x400, 0xfc00);
  EXPECT_EQ(p, q);
  EXPECT_TRUE(p.hasMask(Field::kTcpDst));
  EXPECT_EQ(p.tcp_dst, 0x400);
  Match r;
  r.udpSrc(53, 0xffff);
  EXPECT_FALSE(r.hasMask(Field::kUdpSrc));
  EXPECT_FALSE(a == c);
  Match d;
  d.tcpDst(80);
  d.tcp_src = 99;  // not present: ignored by ==
  Match e;
  e.tcpDst(80);
  EXPECT_EQ(d, e);
  EXPECT_EQ(formatMatch(Match{}), "any");
  Match f;
  f.ethType(0x86dd).ipProto(58).icmpv6Type(135).ipv6Dst(testing::ip6("ff02::1"));
  EXPECT_EQ(formatMatch(f), "icmp6,ipv6_dst=ff02::1,icmpv6_type=135");
  Match g;
  g.vlanVid(kVlanPresent | 5).ethType(0x0806).arpTpa(ip("10.0.0.0"), ip("255.255.255.0"));
  EXPECT_EQ(formatMatch(g), "arp,dl_vlan=5,arp_tpa=10.0.0.0/24");
}

}  // namespace
}  // namespace cw::ofp
