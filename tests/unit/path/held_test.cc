// Held (prompt) decisions: what no rule covers for an app whose default is "prompt" is handed
// to the observer with where it came from, nothing is written; release() decides it again,
// by the policy as it is then or by the answer's own verdict.
#include <gtest/gtest.h>

#include "fixture.h"

namespace cw::path {
namespace {

using decide::HeldVerdict;
using decide::Reason;
using policy::Action;
using testing::outputs;
using testing::PathTest;

TEST_F(PathTest, WhatNoRuleCoversIsHeldWithWhereItCameFrom) {
  const auto syn = tcpFrom(ask, "192.0.2.77", 443);
  packetIn(3, syn);
  EXPECT_TRUE(sw.sent().empty()) << "nothing installed, nothing forwarded";
  ASSERT_EQ(seen.held.size(), 1u);
  EXPECT_EQ(seen.held[0].app, "ask");
  EXPECT_EQ(seen.held[0].reason, Reason::kPrompt);
  EXPECT_EQ(seen.held[0].dpid, 1u);
  EXPECT_EQ(seen.held[0].in_port, 3u);
  EXPECT_EQ(seen.held[0].frame, syn);
  EXPECT_TRUE(seen.decided.empty()) << "a question is not a decision (it is logged when answered)";
  EXPECT_EQ(path.reasonCount(Reason::kPrompt), 1u);
  EXPECT_EQ(path.allowed() + path.denied(), 0u);

  // Its retransmission is held too (the daemon's question store joins it to the question).
  packetIn(3, syn);
  EXPECT_EQ(seen.held.size(), 2u);
  EXPECT_EQ(path.repeats(), 0u);
  EXPECT_TRUE(sw.sent().empty());

  // What a rule covers is decided as ever.
  packetIn(3, tcpFrom(ask, "192.0.2.10", 443));
  EXPECT_EQ(seen.held.size(), 2u);
  ASSERT_EQ(seen.decided.size(), 1u);
  EXPECT_EQ(seen.decided[0].d.reason, Reason::kPolicyRule);
}

// An answer that made no rule ("allow once"): the held packet is decided by that verdict and
// goes on; its retransmission, released with it, follows the decision instead of being decided
// (and logged) a second time.
TEST_F(PathTest, ReleasedByAnAnswerThenItsCopiesReplayed) {
  const auto syn = tcpFrom(ask, "192.0.2.77", 443);
  packetIn(3, syn);
  ASSERT_EQ(seen.held.size(), 1u);

  const HeldVerdict once{Action::kAllow, Reason::kPromptAnswer};
  path.release(sw, 3, seen.held[0].frame, &once);
  EXPECT_TRUE(sw.flowMods().empty());
  ASSERT_EQ(sw.packetOuts().size(), 1u);  // committed (kept: the rules do not undo an answer), sent on
  EXPECT_TRUE(std::holds_alternative<ofp::ActionCt>(sw.packetOuts()[0].actions.front()));
  EXPECT_EQ(sw.packetOuts()[0].data, syn);
  ASSERT_EQ(seen.decided.size(), 1u);
  EXPECT_EQ(seen.decided[0].app, "ask");
  EXPECT_EQ(seen.decided[0].d.action, Action::kAllow);
  EXPECT_EQ(seen.decided[0].d.reason, Reason::kPromptAnswer);
  EXPECT_EQ(path.allowed(), 1u);

  sw.clear();
  path.release(sw, 3, syn, &once);
  EXPECT_EQ(path.repeats(), 1u);
  EXPECT_TRUE(sw.flowMods().empty());
  ASSERT_EQ(sw.packetOuts().size(), 1u);
  EXPECT_EQ(outputs(sw.packetOuts()[0].actions), std::vector<std::uint32_t>{gw.ofport});
  EXPECT_EQ(seen.decided.size(), 1u);
  EXPECT_EQ(path.allowed(), 1u);
}

TEST_F(PathTest, ATimeoutDeniesWithItsOwnReason) {
  const auto syn = tcpFrom(ask, "192.0.2.77", 443);
  packetIn(3, syn);
  const HeldVerdict timeout{Action::kDeny, Reason::kPromptTimeout};
  path.release(sw, 3, syn, &timeout);
  // Committed as denied, which spares the controller its retransmissions; sent nowhere.
  ASSERT_EQ(sw.packetOuts().size(), 1u);
  EXPECT_TRUE(outputs(sw.packetOuts()[0].actions).empty()) << "a denied packet is not forwarded";
  EXPECT_TRUE(sw.flowMods().empty());
  ASSERT_EQ(seen.decided.size(), 1u);
  EXPECT_EQ(seen.decided[0].d.reason, Reason::kPromptTimeout);
  EXPECT_EQ(path.denied(), 1u);
}

// Released without a verdict (an answer that made a rule): the policy as it is now decides,
// and holds the packet again while it still has no answer for it.
TEST_F(PathTest, ReleasedUnderThePolicyAsItIsNow) {
  const auto syn = tcpFrom(ask, "192.0.2.77", 443);
  packetIn(3, syn);
  path.release(sw, 3, syn, nullptr);
  EXPECT_EQ(seen.held.size(), 2u) << "still no rule: held again";
  EXPECT_TRUE(sw.sent().empty());

  ask.policy =
      testing::compile("default = \"prompt\"\n[[allow]]\nproto = \"tcp\"\nto = \"192.0.2.77\"\n");
  publish();
  path.release(sw, 3, syn, nullptr);
  EXPECT_EQ(seen.held.size(), 2u);
  EXPECT_TRUE(sw.flowMods().empty());
  EXPECT_EQ(sw.packetOuts().size(), 1u);
  ASSERT_EQ(seen.decided.size(), 1u);
  EXPECT_EQ(seen.decided[0].d.reason, Reason::kPolicyRule);
}

}  // namespace
}  // namespace cw::path
