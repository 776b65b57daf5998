// The packet path between the switch and the decider: what a verdict writes to the switch,
// what is reported, and how the next packets of a connection already decided are replayed
// as decided instead of decided again.
#include "path/packet_path.h"

#include <gtest/gtest.h>

#include <functional>
#include <mutex>

#include "decide/pipeline.h"
#include "fixture.h"

namespace cw::path {
namespace {

using decide::Reason;
using policy::Action;
using testing::ip;
using testing::outputs;
using testing::PathNet;
using testing::PathTest;

struct Case {
  const char* what;
  std::uint32_t in_port;
  std::function<std::vector<std::uint8_t>(const PathNet&)> frame;
  Reason reason;
  std::size_t flow_mods;    // written for the first packet (only ever its rule's count flows)
  std::size_t packet_outs;  // written for the first packet
  bool reported;            // handed to the observer (logged)
  // The same packet again, at once (the userspace datapath's next packets of a new connection):
  bool replayed;                   // forwarded or dropped as decided, not decided again
  std::size_t again_packet_outs;   // what the second packet writes (never a flow-mod when replayed)
};

const std::vector<Case>& cases() {
  static const std::vector<Case> k = {
      {"allowed: committed to conntrack and sent on, one packet-out; its rule's count flows", 2,
       [](const PathNet& t) { return t.tcpFrom(t.web, "192.0.2.10", 443); },
       Reason::kPolicyRule, 2, 1, true, true, 1},
      {"denied by default: committed as denied, sent nowhere, no flow", 2,
       [](const PathNet& t) { return t.tcpFrom(t.web, "192.0.2.10", 22); },
       Reason::kPolicyDefault, 0, 1, true, true, 0},
      {"rejected: a reset, no flow; each packet is answered again", 2,
       [](const PathNet& t) { return t.tcpFrom(t.web, "192.0.2.66", 80); },
       Reason::kPolicyRule, 0, 1, true, false, 1},
      {"a reply from the uplink to what the cell may open", 1,
       [](const PathNet& t) { return t.tcpTo(t.web, "192.0.2.10", 443); },
       Reason::kReturnTraffic, 2, 1, true, true, 1},
      {"a port that is no cell's: nothing written, nothing logged", 9,
       [](const PathNet& t) { return t.tcpFrom(t.web, "192.0.2.10", 443); },
       Reason::kUnknownPort, 0, 0, false, false, 0},
      {"IPv6: not routed, nothing written, nothing logged", 2,
       [](const PathNet& t) {
         return packet::buildUdp6(t.fromCell(t.web), *Ip6::parse("fe80::1"), *Ip6::parse("ff02::1"), 1, 2);
       },
       Reason::kNotIpv4, 0, 0, false, false, 0},
  };
  return k;
}

TEST(PacketPath, VerdictsWriteTheirPacketOutsAndAreReplayedAsDecided) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.what);
    PathNet t;
    const auto frame = c.frame(t);
    t.packetIn(c.in_port, frame);
    EXPECT_EQ(t.sw.flowMods().size(), c.flow_mods);
    ASSERT_EQ(t.sw.packetOuts().size(), c.packet_outs);
    EXPECT_EQ(t.sw.sent().size(), c.flow_mods + c.packet_outs) << "only flow-mods and packet-outs";
    // Flows go first: the re-injected packet must meet them.
    if (c.flow_mods > 0 && c.packet_outs > 0) {
      EXPECT_TRUE(std::holds_alternative<ofp::FlowMod>(t.sw.sent().front()));
    }
    EXPECT_EQ(t.path.reasonCount(c.reason), 1u);
    ASSERT_EQ(t.seen.decided.size(), c.reported ? 1u : 0u);
    if (c.reported) {
      EXPECT_EQ(t.seen.decided[0].d.reason, c.reason);
    }

    t.sw.clear();
    t.packetIn(c.in_port, frame);
    EXPECT_EQ(t.path.repeats(), c.replayed ? 1u : 0u);
    EXPECT_EQ(t.path.reasonCount(c.reason), c.replayed ? 1u : 2u) << "decided again";
    if (c.replayed) {
      EXPECT_TRUE(t.sw.flowMods().empty()) << "a replay installs nothing";
    }
    EXPECT_EQ(t.sw.packetOuts().size(), c.again_packet_outs);
    EXPECT_EQ(t.seen.decided.size(), c.reported ? (c.replayed ? 1u : 2u) : 0u);
    EXPECT_TRUE(t.seen.held.empty());
  }
}

// A replayed packet goes where the tables would send it (the commit is already on its way), and
// is counted once as allowed.
TEST_F(PathTest, ReplayForwardsLikeTheTables) {
  const auto syn = tcpFrom(web, "192.0.2.10", 443);
  packetIn(2, syn);
  ASSERT_EQ(sw.packetOuts().size(), 1u);
  EXPECT_TRUE(std::holds_alternative<ofp::ActionCt>(sw.packetOuts()[0].actions.front()));
  sw.clear();

  const auto ack = tcpFrom(web, "192.0.2.10", 443, packet::kTcpAck);
  packetIn(2, ack);
  ASSERT_EQ(sw.packetOuts().size(), 1u);
  const ofp::PacketOut po = sw.packetOuts()[0];
  EXPECT_EQ(po.in_port, 2u);
  EXPECT_EQ(outputs(po.actions), std::vector<std::uint32_t>{gw.ofport});
  EXPECT_EQ(po.data, ack);
  for (const auto& a : po.actions) EXPECT_FALSE(std::holds_alternative<ofp::ActionCt>(a));
  EXPECT_EQ(path.repeats(), 1u);
  EXPECT_EQ(path.allowed(), 1u);
  EXPECT_EQ(seen.decided.size(), 1u);
}

TEST_F(PathTest, AnotherConnectionIsDecidedNotReplayed) {
  packetIn(2, tcpFrom(web, "192.0.2.10", 443));
  packetIn(2, tcpFrom(web, "192.0.2.10", 443, packet::kTcpSyn, 40001));  // another source port
  packetIn(2, tcpFrom(web, "192.0.2.10", 80));                         // another destination port
  EXPECT_EQ(path.repeats(), 0u);
  EXPECT_EQ(path.allowed(), 3u);
  // The flow table holds no connection: one rule decided all three, its count flows once.
  ASSERT_EQ(sw.flowMods().size(), 2u);
  for (const auto& fm : sw.flowMods()) {
    EXPECT_EQ(fm.table_id, decide::kTableCount);
    EXPECT_EQ(fm.cookie, decide::makeCookie(decide::CookieKind::kCount, web.cell_id, 1));
  }
  EXPECT_EQ(sw.packetOuts().size(), 3u);
  EXPECT_EQ(seen.decided.size(), 3u);
}

// Count flows are installed lazily, once per (cell, label), by whatever first tells the
// controller of a connection that label decided: its own decision, or the switch's copy (table
// 6), whose cookie names the rule the switch committed. Denials count nothing.
TEST_F(PathTest, CountFlowsComeOncePerCellAndRuleBeforeThePacketOut) {
  packetIn(2, tcpFrom(web, "192.0.2.10", 22));  // denied by the default
  EXPECT_TRUE(sw.flowMods().empty());
  sw.clear();
  packetIn(2, tcpFrom(web, "192.0.2.10", 443));
  ASSERT_EQ(sw.sent().size(), 3u);
  EXPECT_TRUE(std::holds_alternative<ofp::FlowMod>(sw.sent()[0]));
  EXPECT_TRUE(std::holds_alternative<ofp::FlowMod>(sw.sent()[1]));
  EXPECT_EQ(sw.flowMods()[0].match.ct_label_lo, decide::labelOf(decide::LabelSource::kRule, 1));
  {
    std::lock_guard lock(web.runtime->mu);
    EXPECT_TRUE(web.runtime->counted.contains(decide::labelOf(decide::LabelSource::kRule, 1)));
  }
  // The switch's copy of a connection it committed by rule 1: nothing new to install.
  sw.clear();
  const auto other = tcpFrom(web, "192.0.2.10", 80, packet::kTcpSyn, 40009);
  const std::uint64_t cookie = decide::makeCookie(decide::CookieKind::kRules, web.cell_id, 1);
  packetIn(2, other, ofp::PacketInReason::kAction, cookie);
  EXPECT_EQ(path.switchDecided(), 1u);
  EXPECT_TRUE(sw.flowMods().empty());
  // Forgotten (the bridge programmed anew): the copy installs them again.
  {
    std::lock_guard lock(web.runtime->mu);
    web.runtime->counted.clear();
  }
  packetIn(2, other, ofp::PacketInReason::kAction, cookie);
  ASSERT_EQ(sw.flowMods().size(), 2u);
  EXPECT_EQ(sw.flowMods()[0].cookie, decide::makeCookie(decide::CookieKind::kCount, web.cell_id, 1));
}

// Any new view (a rule added or removed, a cell gone) may change the verdict: a connection
// decided under the old one is decided again.
TEST_F(PathTest, ANewViewDecidesAgain) {
  const auto syn = tcpFrom(web, "192.0.2.10", 443);
  packetIn(2, syn);
  web.policy = testing::compile("default = \"deny\"\n");
  publish();
  sw.clear();
  packetIn(2, syn);
  EXPECT_EQ(path.repeats(), 0u);
  ASSERT_EQ(seen.decided.size(), 2u);
  EXPECT_EQ(seen.decided[1].d.action, Action::kDeny);
  EXPECT_EQ(seen.decided[1].d.reason, Reason::kPolicyDefault);
  ASSERT_EQ(sw.packetOuts().size(), 1u);  // the denied commit
  EXPECT_EQ(outputs(sw.packetOuts()[0].actions), std::vector<std::uint32_t>{})
      << "the packet the old view allowed is not forwarded";
}

TEST_F(PathTest, MalformedFramesAreCountedAndDropped) {
  const std::vector<std::uint8_t> runt(10, 0xab);
  packetIn(2, runt);
  EXPECT_EQ(path.weirdCount(packet::ParseError::kTruncatedEthernet), 1u);
  EXPECT_TRUE(sw.sent().empty());
  EXPECT_TRUE(seen.decided.empty());
}

TEST_F(PathTest, ASwitchTheViewDoesNotKnowIsIgnored) {
  sw::FakeSwitch stranger(7);
  const auto syn = tcpFrom(web, "192.0.2.10", 443);
  ofp::PacketIn pi;
  pi.match.inPort(2);
  pi.data = Bytes(syn);
  pi.total_len = static_cast<std::uint16_t>(syn.size());
  path.handle(stranger, pi);
  EXPECT_TRUE(stranger.sent().empty());
  EXPECT_EQ(path.allowed() + path.denied(), 0u);
  EXPECT_TRUE(seen.decided.empty());
}

// The copy of a resolver answer (the answer flow's output to the controller, cookie
// dns-answer) is learned from, never decided: the switch already delivered the original.
TEST_F(PathTest, ResolverAnswerCopiesAreSnoopedNotDecided) {
  const auto answer = packet::buildUdp4(toCell(web), gw.ip, web.ip, 53, 5000);
  packetIn(1, answer, ofp::PacketInReason::kAction, decide::makeCookie(decide::CookieKind::kDnsAnswer, web.cell_id, 0));
  EXPECT_EQ(path.answersSnooped(), 1u);
  EXPECT_EQ(seen.answers, std::vector<std::string>{"web"});
  EXPECT_TRUE(sw.sent().empty());
  EXPECT_TRUE(seen.decided.empty());

  // A cookie naming another cell than the one the address now belongs to (the cell went away
  // and its address was reused): counted, not handed on.
  packetIn(1, answer, ofp::PacketInReason::kAction, decide::makeCookie(decide::CookieKind::kDnsAnswer, 99, 0));
  EXPECT_EQ(path.answersSnooped(), 2u);
  EXPECT_EQ(seen.answers.size(), 1u);

  // The same frame as a table miss (its flow missing) is decided, and learned from as well.
  packetIn(1, answer);
  ASSERT_EQ(seen.decided.size(), 1u);
  EXPECT_EQ(seen.decided[0].d.reason, Reason::kReturnTraffic);
  EXPECT_TRUE(sw.flowMods().empty());
  ASSERT_EQ(sw.packetOuts().size(), 1u);
  EXPECT_EQ(outputs(sw.packetOuts()[0].actions), std::vector<std::uint32_t>{web.ofport});
  EXPECT_EQ(path.answersSnooped(), 3u);
  EXPECT_EQ(seen.answers.size(), 2u);
}

// A Packet-In that went through conntrack carries what it said: a connection decided under an
// older epoch of its cell is decided again as open (not logged when nothing changed); one cut
// by the new rules is logged and committed as denied.
TEST_F(PathTest, APacketOfAnOpenConnectionIsDecidedAgainByItsMark) {
  const auto data = tcpFrom(web, "192.0.2.10", 443, packet::kTcpAck);
  auto in = [&](std::uint32_t mark) {
    ofp::PacketIn pi;
    pi.match.inPort(2).ctState(ofp::kCtTrk | ofp::kCtEst, 0xffffffff).ctZone(decide::zoneOf(web)).ctMark(mark);
    pi.table_id = decide::kTableVerdict;
    pi.data = Bytes(data);
    pi.total_len = static_cast<std::uint16_t>(data.size());
    path.handle(sw, pi);
  };
  web.epoch = 8;
  publish();
  in(decide::markOf(7, true, false));
  EXPECT_EQ(path.reasonCount(Reason::kOpenAgain), 1u);
  EXPECT_TRUE(seen.decided.empty()) << "still allowed: nothing new to log";
  EXPECT_EQ(path.allowed(), 0u);
  ASSERT_EQ(sw.packetOuts().size(), 1u);
  EXPECT_EQ(outputs(sw.packetOuts()[0].actions), std::vector<std::uint32_t>{gw.ofport});

  web.policy = testing::compile("default = \"deny\"\n");
  web.epoch = 9;
  publish();
  sw.clear();
  in(decide::markOf(8, true, false));
  ASSERT_EQ(seen.decided.size(), 1u);
  EXPECT_EQ(seen.decided[0].d.reason, Reason::kOpenAgain);
  EXPECT_EQ(seen.decided[0].d.action, Action::kDeny);
  ASSERT_EQ(sw.packetOuts().size(), 1u);
  EXPECT_TRUE(outputs(sw.packetOuts()[0].actions).empty());
  EXPECT_TRUE(sw.flowMods().empty());
}

}  // namespace
}  // namespace cw::path
