#include "daemon/rule_counters.h"

#include <gtest/gtest.h>

#include "decide/pipeline.h"

namespace cw::daemon {
namespace {

using decide::LabelSource;

ofp::FlowStats countFlow(std::uint32_t cell, std::uint32_t port, std::uint64_t label, bool sent, std::uint64_t packets,
                         std::uint64_t bytes) {
  decide::CellPort c;
  c.cell_id = cell;
  c.ofport = port;
  auto fm = decide::cellCountFlows(c, label).at(sent ? 0 : 1);
  ofp::FlowStats f;
  f.table_id = fm.table_id;
  f.priority = fm.priority;
  f.cookie = fm.cookie;
  f.match = fm.match;
  f.packet_count = packets;
  f.byte_count = bytes;
  return f;
}

TEST(RuleCounters, SumsEachRulePerAppOverItsCellsAndDirections) {
  const auto rule7 = decide::labelOf(LabelSource::kRule, 7);
  std::vector<ofp::FlowStats> flows{
      countFlow(1, 11, rule7, true, 10, 1000), countFlow(1, 11, rule7, false, 20, 200000),
      countFlow(2, 12, rule7, true, 1, 100),  // a second cell of the app
      countFlow(1, 11, decide::labelOf(LabelSource::kScript, 0), false, 3, 300),
      countFlow(9, 19, rule7, true, 5, 5),  // a cell not asked about
  };
  // The catch-all of cell 1: no label.
  ofp::FlowStats other;
  other.table_id = decide::kTableCount;
  other.cookie = decide::makeCookie(decide::CookieKind::kCount, 1, decide::kCountOther);
  other.match.ctZone(1).inPort(11);
  other.packet_count = 2;
  other.byte_count = 120;
  flows.push_back(other);
  // Not a count flow at all: skipped.
  ofp::FlowStats verdict;
  verdict.table_id = decide::kTableVerdict;
  verdict.cookie = decide::makeCookie(decide::CookieKind::kVerdict, 1, 5);
  verdict.packet_count = 99;
  flows.push_back(verdict);

  auto sums = sumRuleCounters(flows, {{1, "web"}, {2, "web"}});
  ASSERT_EQ(sums.size(), 3u);  // sorted by (app, source, rule)
  EXPECT_EQ(sums[0].source, "other");
  EXPECT_EQ(sums[0].sent_packets, 2u);
  EXPECT_EQ(sums[0].sent_bytes, 120u);
  EXPECT_EQ(sums[1].source, "rule");
  EXPECT_EQ(sums[1].rule, 7u);
  EXPECT_EQ(sums[1].app, "web");
  EXPECT_EQ(sums[1].sent_packets, 11u);
  EXPECT_EQ(sums[1].sent_bytes, 1100u);
  EXPECT_EQ(sums[1].received_packets, 20u);
  EXPECT_EQ(sums[1].received_bytes, 200000u);
  EXPECT_EQ(sums[2].source, "script");
  EXPECT_EQ(sums[2].received_bytes, 300u);
  EXPECT_EQ(sums[2].sent_bytes, 0u);
}

// The counts of cells that ended are added to the running cells', entry by entry, in order.
TEST(RuleCounters, EndedCellsCountsAddUpByAppSourceAndRule) {
  std::vector<api::RuleCounters> live{{"web", 7, "rule", 1, 100, 2, 200}, {"web", 0, "script", 0, 0, 1, 10}};
  std::vector<api::RuleCounters> ended{{"api", 3, "rule", 5, 500, 0, 0},
                                       {"web", 7, "rule", 10, 1000, 20, 2000},
                                       {"web", 9, "rule", 1, 1, 1, 1}};
  addRuleCounters(live, ended);
  ASSERT_EQ(live.size(), 4u);
  EXPECT_EQ(live[0].app, "api");
  EXPECT_EQ(live[1].rule, 7u);
  EXPECT_EQ(live[1].sent_packets, 11u);
  EXPECT_EQ(live[1].received_bytes, 2200u);
  EXPECT_EQ(live[2].rule, 9u);
  EXPECT_EQ(live[3].source, "script");
  EXPECT_EQ(live[3].received_bytes, 10u);
}

}  // namespace
}  // namespace cw::daemon
