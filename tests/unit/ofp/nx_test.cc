// Nicira (Open vSwitch) conntrack extensions: fixed bytes checked against Open vSwitch 3.1
// (`ovs-ofctl ofp-print` reads them back as the text in the comments; the CT_FLUSH bytes are
// what `ovs-ofctl -O OpenFlow13 ct-flush` itself sent to a test listener), text, canEncode.
// Round trips of every ct sample are in codec_test.cc (samples13 / samples10).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "ofp/codec.h"
#include "test_messages.h"

namespace cw::ofp {
namespace {

using testing::ip;

using testing::fromHex;

struct Fixed {
  const char* name;
  Message msg;
  std::uint32_t xid;
  std::string hex;
  std::string text;
};

std::vector<Fixed> fixed() {
  std::vector<Fixed> f;
  // ovs-ofctl: "ADD table:2 priority=200,ct_state=+est+trk,ct_zone=7,ct_mark=0x5/0x7 actions=goto_table:4"
  FlowMod fm;
  fm.table_id = 2;
  fm.priority = 200;
  fm.match.ctState(kCtTrk | kCtEst, kCtTrk | kCtEst).ctZone(7).ctMark(0x5, 0x7);
  fm.instructions = {InstrGotoTable{4}};
  f.push_back({"flow_mod", fm, 7,
               "04 0e 0060 00000007 0000000000000000 0000000000000000 02 00 0000 0000 00c8 ffffffff ffffffff "
               "ffffffff 0000 0000  0001 0022 0001d308 00000022 00000022 0001d402 0007 0001d708 00000005 "
               "00000007 000000000000  0001 0008 04 000000",
               "FLOW_MOD xid=0x7 add table=2 cookie=0x0 priority=200 ct_state=+est+trk,ct_zone=7,ct_mark=0x5/0x7 "
               "actions=goto_table:4"});
  // ovs-ofctl: "in_port=CONTROLLER actions=ct(commit,zone=5,exec(set_field:0x9->ct_mark)),ct_clear,output:5"
  Match mark;
  mark.ctMark(0x9);
  PacketOut po;
  po.actions = {ActionCt{kCtCommit, 5, kCtNoRecirc, 0, {{mark}}}, ActionCtClear{}, ActionOutput{5, 0}};
  po.data = testing::payload();
  f.push_back({"packet_out", po, 8,
               "04 0d 0068 00000008 ffffffff fffffffd 0048 000000000000 "
               "ffff 0028 00002320 0023 0001 00000000 0005 ff 000000 0000 "
               "  0019 0010 0001d604 00000009 00000000 "
               "ffff 0010 00002320 002b 000000000000 "
               "0000 0010 00000005 0000 000000000000 deadbeef00010203",
               "PACKET_OUT xid=0x8 buffer_id=0xffffffff in_port=CONTROLLER "
               "actions=ct(commit,zone=5,exec(set_field:0x9->ct_mark)),ct_clear,output:5 data_len=8"});
  // Sent by `ovs-ofctl -O OpenFlow13 ct-flush-zone <sw> 5`.
  f.push_back({"ct_flush_zone", CtFlushZone{5}, 2, "0404001800000002000023200000001d0000000000000005",
               "CT_FLUSH_ZONE xid=0x2 zone=5"});
  // Sent by `ovs-ofctl -O OpenFlow13 ct-flush <sw> zone=5
  //   'ct_nw_src=10.1.2.3,ct_nw_dst=10.4.5.6,ct_nw_proto=6,ct_tp_src=1234,ct_tp_dst=80'`:
  // ip_proto 6 and seven zero bytes (no family byte), the tuple as nested properties after 4
  // bytes of pad, addresses IPv4-mapped IPv6, ports as 4-byte values, zone last.
  CtTuple tcp{6, ip("10.1.2.3"), ip("10.4.5.6"), 1234, 80, 0, 0, 0};
  f.push_back({"ct_flush_tcp", CtFlush{5, tcp, std::nullopt}, 2,
               "04 04 0068 00000002 00002320 00000020 06 00000000000000 "
               "0000 0048 00000000 "
               "  0000 0014 00000000000000000000ffff0a010203 00000000 "
               "  0001 0014 00000000000000000000ffff0a040506 00000000 "
               "  0002 0008 04d2 0000  0003 0008 0050 0000 "
               "0002 0008 0005 0000",
               "CT_FLUSH xid=0x2 zone=5 orig(ct_nw_proto=6,ct_nw_src=10.1.2.3,ct_nw_dst=10.4.5.6,ct_tp_src=1234,"
               "ct_tp_dst=80)"});
  // The same without zone=5: no zone property (Open vSwitch then flushes in zone 0).
  f.push_back({"ct_flush_tcp_no_zone", CtFlush{std::nullopt, tcp, std::nullopt}, 2,
               "04 04 0060 00000002 00002320 00000020 06 00000000000000 "
               "0000 0048 00000000 "
               "  0000 0014 00000000000000000000ffff0a010203 00000000 "
               "  0001 0014 00000000000000000000ffff0a040506 00000000 "
               "  0002 0008 04d2 0000  0003 0008 0050 0000",
               "CT_FLUSH xid=0x2 orig(ct_nw_proto=6,ct_nw_src=10.1.2.3,ct_nw_dst=10.4.5.6,ct_tp_src=1234,"
               "ct_tp_dst=80)"});
  // Sent by `ovs-ofctl -O OpenFlow13 ct-flush <sw> 'ct_nw_src=10.1.2.3,ct_nw_dst=10.4.5.6,ct_nw_proto=1,
  //   icmp_id=7,icmp_type=8,icmp_code=0' 'ct_nw_src=10.4.5.6,ct_nw_dst=10.1.2.3,ct_nw_proto=1,icmp_id=7,
  //   icmp_type=0,icmp_code=0'`: ICMP id/type/code always present, u8 values 5 bytes long.
  CtTuple echo{1, ip("10.1.2.3"), ip("10.4.5.6"), 0, 0, 8, 0, 7};
  CtTuple echo_reply{1, ip("10.4.5.6"), ip("10.1.2.3"), 0, 0, 0, 0, 7};
  f.push_back({"ct_flush_icmp", CtFlush{std::nullopt, echo, echo_reply}, 2,
               "040400b8000000020000232000000020010000000000000000000050000000000000001400000000000000000000ffff"
               "0a010203000000000001001400000000000000000000ffff0a0405060000000000040008000700000005000508000000"
               "000600050000000000010050000000000000001400000000000000000000ffff0a040506000000000001001400000000"
               "000000000000ffff0a01020300000000000400080007000000050005000000000006000500000000",
               "CT_FLUSH xid=0x2 orig(ct_nw_proto=1,ct_nw_src=10.1.2.3,ct_nw_dst=10.4.5.6,icmp_id=7,icmp_type=8,"
               "icmp_code=0) reply(ct_nw_proto=1,ct_nw_src=10.4.5.6,ct_nw_dst=10.1.2.3,icmp_id=7,icmp_type=0,"
               "icmp_code=0)"});
  // Sent by `ovs-ofctl -O OpenFlow13 ct-flush <sw>`.
  f.push_back({"ct_flush_all", CtFlush{}, 2, "040400180000000200002320000000200000000000000000", "CT_FLUSH xid=0x2"});
  return f;
}

TEST(OfpConntrack, FixedBytesAndText) {
  for (const auto& c : fixed()) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(canEncode(Version::kOf13, c.msg));
    std::vector<std::uint8_t> buf;
    encode(Version::kOf13, c.xid, c.msg, buf);
    EXPECT_EQ(buf, fromHex(c.hex));
    auto d = decode(fromHex(c.hex));
    ASSERT_TRUE(d) << decodeErrorName(d.error());
    EXPECT_TRUE(sameMessage(d->msg, c.msg)) << format(*d);
    EXPECT_EQ(format(*d), c.text);
  }
}

TEST(OfpConntrack, PacketInCarriesCtFieldsAndSkipsOtherNxm) {
  // A Packet-In after ct(table=3): in_port, ct_state=+est+trk, ct_zone=7, ct_mark=5,
  // ct_label=1, then NXM_NX_CT_NW_PROTO (not modelled: skipped).
  auto bytes = fromHex(
      "04 0a 0062 00000001 ffffffff 0008 01 03 0000000000000000 "
      "0001 003b 80000004 00000004 0001d204 00000022 0001d402 0007 0001d604 00000005 "
      "0001d810 00000000000000000000000000000001 0001e001 06 0000000000 "
      "0000 deadbeef00010203");
  auto d = decode(bytes);
  ASSERT_TRUE(d) << decodeErrorName(d.error());
  const auto& pi = std::get<PacketIn>(d->msg);
  EXPECT_EQ(pi.inPort(), 4u);
  EXPECT_EQ(pi.match.ct_state, kCtEst | kCtTrk);
  EXPECT_FALSE(pi.match.hasMask(Field::kCtState));
  EXPECT_EQ(pi.match.ct_zone, 7);
  EXPECT_EQ(pi.match.ct_mark, 5u);
  EXPECT_EQ(pi.match.ct_label_hi, 0u);
  EXPECT_EQ(pi.match.ct_label_lo, 1u);
  EXPECT_EQ(pi.data.size(), 8u);
  EXPECT_EQ(format(*d), "PACKET_IN xid=0x1 buffer_id=0xffffffff total_len=8 reason=action table=3 cookie=0x0 in_port=4,"
                        "ct_state=est|trk,ct_zone=7,ct_mark=0x5,ct_label=0x1 data_len=8");
}

// A flow-stats reply as Open vSwitch 3.1 (netdev datapath) sent it after we installed the
// ct_recirc13, ct_flow_mod13 and ct_commit13 flows of tests/interop/ofp_emit.cc: its own
// encoding of ct matches and ct()/exec actions decodes to what we installed.
TEST(OfpConntrack, DecodesOpenVswitchFlowDump) {
  auto bytes = fromHex(
      "041301a0000000770001000000000000009001000000000000000000000a000000000000000000000000000000000000"
      "000000000000000000000000000000000001003a80000a0208000001d30800000020000000300001d920000000000000"
      "00000000000000000010000000000000000000000000000000ff0000000000000004002000000000ffff001800002320"
      "0023000000000000000703000000000000600200000000000000000000c8000000000000000000000000000000000000"
      "00000000000000000000000000000000000100220001d30800000022000000220001d40200070001d708000000050000"
      "0007000000000000000100080400000000a0030000000000000000008000000000000000000000000000000000000000"
      "000000000000000000000000000000000001001680000a0208000001d308000000210000002100000004005800000000"
      "ffff00400000232000230003000000000009ff0000000000001900100001d6040000000900000000001900180001d810"
      "0000000000000001000000000000000200000010000000020000000000000000");
  auto d = decode(bytes);
  ASSERT_TRUE(d) << decodeErrorName(d.error());
  const auto& flows = std::get<std::vector<FlowStats>>(std::get<MultipartReply>(d->msg).body);
  ASSERT_EQ(flows.size(), 3u);

  Match recirc;
  recirc.ethType(0x0800).ctState(kCtTrk, kCtTrk | kCtInv).ctLabel(0, 0x10, 0, 0xff);
  EXPECT_EQ(flows[0].table_id, 1);
  EXPECT_EQ(flows[0].match, recirc) << formatMatch(flows[0].match);
  EXPECT_EQ(flows[0].instructions, (std::vector<Instruction>{InstrApplyActions{{ActionCt{0, 7, 3, 0, {}}}}}));

  Match est;
  est.ctState(kCtTrk | kCtEst, kCtTrk | kCtEst).ctZone(7).ctMark(0x5, 0x7);
  EXPECT_EQ(flows[1].match, est) << formatMatch(flows[1].match);
  EXPECT_EQ(flows[1].instructions, (std::vector<Instruction>{InstrGotoTable{4}}));

  Match fresh;
  fresh.ethType(0x0800).ctState(kCtTrk | kCtNew, kCtTrk | kCtNew);
  Match mark;
  mark.ctMark(0x9);
  Match label;
  label.ctLabel(0x1, 0x2);
  EXPECT_EQ(flows[2].match, fresh) << formatMatch(flows[2].match);
  EXPECT_EQ(flows[2].instructions,
            (std::vector<Instruction>{InstrApplyActions{
                {ActionCt{kCtCommit | kCtForce, 9, kCtNoRecirc, 0, {{mark}, {label}}}, ActionOutput{2, 0}}}}));
}

TEST(OfpConntrack, MatchSettersAndText) {
  Match a, b;
  a.ctState(kCtTrk | kCtNew | kCtInv, kCtTrk | kCtNew);  // bits outside the mask are dropped
  b.ctState(kCtTrk | kCtNew, kCtTrk | kCtNew);
  EXPECT_EQ(a, b);
  EXPECT_EQ(formatMatch(b), "ct_state=+new+trk");
  Match c;
  c.ctState(kCtTrk, kCtTrk | kCtInv);
  EXPECT_EQ(formatMatch(c), "ct_state=+trk-inv");
  EXPECT_NE(b, c);
  Match d;
  d.ctMark(0x1, 0x3).ctZone(5).ctLabel(0x1, 0x0, ~0ULL, 0);
  EXPECT_TRUE(d.hasMask(Field::kCtMark));
  EXPECT_FALSE(d.hasMask(Field::kCtZone));
  EXPECT_EQ(formatMatch(d), "ct_zone=5,ct_mark=0x1/0x3,ct_label=0x10000000000000000/0xffffffffffffffff0000000000000000");
  Match e;
  e.ctMark(0x7, 0xffffffff).ctLabel(0, 0x1234);
  EXPECT_FALSE(e.hasMask(Field::kCtMark));
  EXPECT_FALSE(e.hasMask(Field::kCtLabel));
  EXPECT_EQ(formatMatch(e), "ct_mark=0x7,ct_label=0x1234");
  EXPECT_STREQ(fieldName(Field::kCtLabel), "ct_label");
}

// A TCP opening (SYN without ACK), as table 3 sends it to the rules from a gateway: NXM_NX_TCP_FLAGS
// inside an OpenFlow 1.3 match, masked.
TEST(OfpConntrack, TcpFlagsMatchRoundTripsAndReads) {
  FlowMod fm;
  fm.table_id = 3;
  fm.priority = 2;
  fm.match.ethType(0x0800).ipProto(6).tcpFlags(kTcpFlagSyn, kTcpFlagSyn | kTcpFlagAck);
  fm.instructions.emplace_back(InstrGotoTable{6});
  EXPECT_TRUE(fm.match.hasMask(Field::kTcpFlags));
  EXPECT_EQ(formatMatch(fm.match), "tcp,tcp_flags=+syn-ack");
  std::vector<std::uint8_t> buf;
  encode(Version::kOf13, 7, fm, buf);
  auto d = decode(buf);
  ASSERT_TRUE(d);
  EXPECT_EQ(std::get<FlowMod>(d->msg), fm);
  // The TLV: class 0x0001, field 34, hasmask, 4 bytes: 0x0002 / 0x0012.
  const std::vector<std::uint8_t> tlv = {0x00, 0x01, 0x45, 0x04, 0x00, 0x02, 0x00, 0x12};
  EXPECT_NE(std::search(buf.begin(), buf.end(), tlv.begin(), tlv.end()), buf.end());
  Match exact;
  exact.tcpFlags(kTcpFlagSyn);
  EXPECT_FALSE(exact.hasMask(Field::kTcpFlags));
  EXPECT_FALSE(canEncode(Version::kOf10, Message{fm}));
}

TEST(OfpConntrack, Controller2CopiesThroughAMeter) {
  FlowMod fm;
  fm.table_id = 6;
  fm.match.inPort(3).ethType(0x0800);
  fm.instructions.emplace_back(InstrApplyActions{{ActionController2{128, 7}, ActionOutput{2, 0}}});
  std::vector<std::uint8_t> buf;
  encode(Version::kOf13, 3, fm, buf);
  auto d = decode(buf);
  ASSERT_TRUE(d);
  EXPECT_NE(format(*d).find("actions=controller(max_len=128,meter_id=7),output:2"), std::string::npos) << format(*d);
  EXPECT_EQ(std::get<FlowMod>(d->msg), fm);
  // The action: vendor header, 6 zeros, max_len (16 bits padded to 32), meter_id.
  const std::vector<std::uint8_t> act = fromHex("ffff 0020 00002320 0025 000000000000 0000 0008 0080 0000 0005 0008 00000007");
  EXPECT_NE(std::search(buf.begin(), buf.end(), act.begin(), act.end()), buf.end());
  EXPECT_FALSE(canEncode(Version::kOf10, Message{fm}));
}

TEST(OfpConntrack, ResubmitRoundTripsWithItsBytes) {
  FlowMod fm;
  fm.table_id = 3;
  fm.priority = 200;
  fm.match.ethType(0x0800).ctZone(7).ctMark(0x9, 0xfffffffb);
  fm.instructions = {InstrApplyActions{{ActionResubmit{7}}}, InstrGotoTable{4}};
  std::vector<std::uint8_t> buf;
  encode(Version::kOf13, 5, fm, buf);
  auto d = decode(buf);
  ASSERT_TRUE(d);
  EXPECT_EQ(std::get<FlowMod>(d->msg), fm);
  EXPECT_NE(format(*d).find("actions=resubmit(,7),goto_table:4"), std::string::npos) << format(*d);
  // nx_action_resubmit: vendor header, subtype 14, in_port OFPP_IN_PORT (16 bits), table, 3 zeros.
  const std::vector<std::uint8_t> act = fromHex("ffff 0010 00002320 000e fff8 07 000000");
  EXPECT_NE(std::search(buf.begin(), buf.end(), act.begin(), act.end()), buf.end());
  EXPECT_FALSE(canEncode(Version::kOf10, Message{fm}));
  // What is not modelled is refused, not misread: another in_port, a non-zero pad, a longer action.
  auto at = std::search(buf.begin(), buf.end(), act.begin(), act.end()) - buf.begin();
  for (auto [off, val] : {std::pair<long, std::uint8_t>{11, 0x01}, {15, 0x01}}) {
    auto bad = buf;
    bad[static_cast<std::size_t>(at + off)] = val;
    EXPECT_FALSE(decode(bad)) << "byte " << off;
  }
}

TEST(OfpConntrack, ActionText) {
  Match label;
  label.ctLabel(0, 0x2);
  FlowMod fm;
  fm.instructions = {InstrApplyActions{{ActionCt{0, 7, 3, 0, {}}, ActionCt{kCtCommit | kCtForce, 0, kCtNoRecirc, 21, {{label}}}}}};
  std::vector<std::uint8_t> buf;
  encode(Version::kOf13, 1, fm, buf);
  auto d = decode(buf);
  ASSERT_TRUE(d);
  EXPECT_NE(format(*d).find("actions=ct(zone=7,table=3),ct(commit,force,alg=21,exec(set_field:0x2->ct_label))"),
            std::string::npos)
      << format(*d);
}

TEST(OfpConntrack, CanEncodeRefusesWhatTheWireCannotSay) {
  Match mark;
  mark.ctMark(1);
  Match masked_mark;
  masked_mark.ctMark(1, 0xf);
  Match ip_dst;
  ip_dst.ipv4Dst(ip("10.0.0.1"));
  Match ct_match;
  ct_match.ctZone(1);
  auto po = [](Action a) {
    PacketOut p;
    p.actions = {std::move(a)};
    return Message{p};
  };
  // 1.0: no ct actions, no ct match fields (flushes are fine: vendor messages exist there).
  EXPECT_FALSE(canEncode(Version::kOf10, po(ActionCt{})));
  EXPECT_FALSE(canEncode(Version::kOf10, po(ActionCtClear{})));
  FlowMod fm;
  fm.match = ct_match;
  EXPECT_FALSE(canEncode(Version::kOf10, fm));
  EXPECT_TRUE(canEncode(Version::kOf13, fm));
  EXPECT_TRUE(canEncode(Version::kOf10, CtFlushZone{1}));
  // exec: only unmasked ct_mark / ct_label.
  EXPECT_TRUE(canEncode(Version::kOf13, po(ActionCt{kCtCommit, 0, kCtNoRecirc, 0, {{mark}}})));
  EXPECT_FALSE(canEncode(Version::kOf13, po(ActionCt{kCtCommit, 0, kCtNoRecirc, 0, {{masked_mark}}})));
  EXPECT_FALSE(canEncode(Version::kOf13, po(ActionCt{kCtCommit, 0, kCtNoRecirc, 0, {{ip_dst}}})));
  // CT_FLUSH: one protocol for both tuples, ports only without ICMP, ICMP fields only with it,
  // no tuple that writes nothing.
  CtTuple tcp{6, ip("10.0.0.1"), ip("10.0.0.2"), 1, 2, 0, 0, 0};
  CtTuple udp{17, ip("10.0.0.2"), ip("10.0.0.1"), 2, 1, 0, 0, 0};
  EXPECT_FALSE(canEncode(Version::kOf13, CtFlush{std::nullopt, tcp, udp}));
  CtTuple tcp_icmp = tcp;
  tcp_icmp.icmp_type = 3;
  EXPECT_FALSE(canEncode(Version::kOf13, CtFlush{std::nullopt, tcp_icmp, std::nullopt}));
  CtTuple icmp_ports{1, ip("10.0.0.1"), ip("10.0.0.2"), 1, 0, 8, 0, 1};
  EXPECT_FALSE(canEncode(Version::kOf13, CtFlush{std::nullopt, icmp_ports, std::nullopt}));
  EXPECT_FALSE(canEncode(Version::kOf13, CtFlush{std::nullopt, tcp, CtTuple{6, Ip4{}, Ip4{}, 0, 0, 0, 0, 0}}));
  EXPECT_FALSE(canEncode(Version::kOf13, CtFlush{std::nullopt, CtTuple{}, std::nullopt}));
  EXPECT_TRUE(canEncode(Version::kOf13, CtFlush{std::nullopt, CtTuple{6, Ip4{}, Ip4{}, 0, 0, 0, 0, 0}, std::nullopt}));
}

}  // namespace
}  // namespace cw::ofp
