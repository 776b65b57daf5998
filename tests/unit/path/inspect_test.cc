// Inspect mode: every packet of an inspected cell reaches the controller. A connection is
// decided once; the controller keeps what its flows would have done and forwards each packet
// itself (no flow is installed, or the packets would stop coming); scripts' inspect_*
// functions see each packet first and may refuse it.
#include <gtest/gtest.h>

#include <optional>

#include "decide/pipeline.h"
#include "fixture.h"

namespace cw::path {
namespace {

using decide::Reason;
using policy::Action;
using testing::outputs;
using testing::PathTest;

// A script host stand-in: says `inspect_says` about every inspected packet (nullopt: nothing)
// and, when asked, requests a flow of its own each time.
struct FakeJudge final : decide::PacketJudge {
  std::optional<Action> inspect_says;
  bool request_flow = false;
  int judged = 0, inspected = 0;

  std::optional<decide::ScriptVerdict> judge(const decide::SwitchView&, const decide::CellPort&,
                                             std::uint32_t, const packet::Frame&, bool, decide::Now,
                                             decide::Decision::ScriptRequests&) override {
    ++judged;
    return std::nullopt;
  }
  std::optional<decide::ScriptVerdict> inspect(const decide::SwitchView&, const decide::CellPort&,
                                               std::uint32_t, const packet::Frame&, bool,
                                               decide::Now,
                                               decide::Decision::ScriptRequests& out) override {
    ++inspected;
    if (request_flow) {
      ofp::FlowMod fm;
      fm.table_id = 5;
      fm.cookie = decide::makeCookie(decide::CookieKind::kScript, 1, 7);
      out.flows.push_back(fm);
    }
    if (!inspect_says) return std::nullopt;
    return decide::ScriptVerdict{*inspect_says, "watcher"};
  }
};

TEST_F(PathTest, InspectedConnectionIsDecidedOnceAndForwardedByTheController) {
  const auto syn = tcpFrom(watch, "192.0.2.10", 443);
  packetIn(4, syn);
  EXPECT_TRUE(sw.flowMods().empty()) << "no flow: the next packets must come to the controller too";
  ASSERT_EQ(sw.packetOuts().size(), 1u);
  EXPECT_EQ(outputs(sw.packetOuts()[0].actions), std::vector<std::uint32_t>{gw.ofport});
  EXPECT_EQ(sw.packetOuts()[0].data, syn);
  ASSERT_EQ(seen.decided.size(), 1u);
  EXPECT_EQ(seen.decided[0].app, "watch");
  EXPECT_EQ(seen.decided[0].d.reason, Reason::kPolicyRule);

  // The connection's next packets, both ways: forwarded as decided, not decided again.
  const auto ack = tcpFrom(watch, "192.0.2.10", 443, packet::kTcpAck);
  const auto reply = tcpTo(watch, "192.0.2.10", 443);
  packetIn(4, ack);
  packetIn(1, reply);
  EXPECT_TRUE(sw.flowMods().empty());
  ASSERT_EQ(sw.packetOuts().size(), 3u);
  EXPECT_EQ(sw.packetOuts()[1].data, ack);
  EXPECT_EQ(outputs(sw.packetOuts()[2].actions), std::vector<std::uint32_t>{watch.ofport});
  EXPECT_EQ(sw.packetOuts()[2].data, reply);
  EXPECT_EQ(seen.decided.size(), 1u);
  EXPECT_EQ(path.inspected(), 3u);
  EXPECT_EQ(path.allowed(), 1u);
  EXPECT_EQ(path.repeats(), 0u) << "inspect mode keeps its own table, not the replay cache";
}

TEST_F(PathTest, InspectedDeniedConnectionDropsEveryPacketDecidedOnce) {
  const auto syn = tcpFrom(watch, "192.0.2.99", 443);
  packetIn(4, syn);
  packetIn(4, syn);
  EXPECT_TRUE(sw.sent().empty());
  ASSERT_EQ(seen.decided.size(), 1u);
  EXPECT_EQ(seen.decided[0].d.action, Action::kDeny);
  EXPECT_EQ(path.inspected(), 2u);
  EXPECT_EQ(path.denied(), 1u);
}

// A cell not in inspect mode on the same switch takes the ordinary path: its connection is
// committed to conntrack, and the switch carries the rest.
TEST_F(PathTest, OtherCellsKeepTheOrdinaryPath) {
  packetIn(2, tcpFrom(web, "192.0.2.10", 443));
  ASSERT_EQ(sw.packetOuts().size(), 1u);
  EXPECT_TRUE(std::holds_alternative<ofp::ActionCt>(sw.packetOuts()[0].actions.front()));
  EXPECT_EQ(path.inspected(), 0u);
}

// Inspected packets never pass conntrack, so the controller commits nothing for them.
TEST_F(PathTest, InspectModeCommitsNothing) {
  packetIn(4, tcpFrom(watch, "192.0.2.10", 443));
  const auto outs = sw.packetOuts();
  ASSERT_EQ(outs.size(), 1u);
  for (const auto& a : outs[0].actions) EXPECT_FALSE(std::holds_alternative<ofp::ActionCt>(a));
}

// An inspect_* function refuses one packet: that packet only; the connection goes on and its
// next packet is asked again.
TEST_F(PathTest, InspectRefusesOnePacketAndTheConnectionGoesOn) {
  FakeJudge judge;
  path.setJudge(&judge);
  const auto syn = tcpFrom(watch, "192.0.2.10", 443);
  packetIn(4, syn);
  ASSERT_EQ(sw.packetOuts().size(), 1u);
  EXPECT_EQ(judge.judged, 1) << "the connection's decision asks the scripts once";

  judge.inspect_says = Action::kDeny;
  const auto data = tcpFrom(watch, "192.0.2.10", 443, packet::kTcpAck | packet::kTcpPsh);
  packetIn(4, data);
  EXPECT_EQ(sw.packetOuts().size(), 1u) << "the refused packet is not forwarded";
  EXPECT_EQ(path.inspectRefused(), 1u);

  judge.inspect_says = Action::kReject;
  packetIn(4, data);
  ASSERT_EQ(sw.packetOuts().size(), 2u) << "a rejected packet is answered";
  EXPECT_EQ(sw.packetOuts()[1].in_port, ofp::kPortController);
  EXPECT_EQ(outputs(sw.packetOuts()[1].actions), std::vector<std::uint32_t>{watch.ofport})
      << "back to the cell";
  EXPECT_EQ(path.inspectRefused(), 2u);

  judge.inspect_says.reset();
  packetIn(4, data);
  ASSERT_EQ(sw.packetOuts().size(), 3u);
  EXPECT_EQ(sw.packetOuts()[2].data, data);
  EXPECT_EQ(judge.inspected, 4);
  EXPECT_EQ(judge.judged, 1);
  EXPECT_EQ(seen.decided.size(), 1u);
}

// What an inspect_* function asks the switch for goes out before the packet it saw.
TEST_F(PathTest, InspectRequestsAreWrittenFirst) {
  FakeJudge judge;
  judge.request_flow = true;
  path.setJudge(&judge);
  packetIn(4, tcpFrom(watch, "192.0.2.10", 443));
  ASSERT_EQ(sw.sent().size(), 2u);
  ASSERT_TRUE(std::holds_alternative<ofp::FlowMod>(sw.sent()[0]));
  EXPECT_EQ(std::get<ofp::FlowMod>(sw.sent()[0]).table_id, 5);
  EXPECT_TRUE(std::holds_alternative<ofp::PacketOut>(sw.sent()[1]));
}

}  // namespace
}  // namespace cw::path
