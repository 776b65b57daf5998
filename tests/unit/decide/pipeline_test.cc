#include "decide/pipeline.h"

#include <gtest/gtest.h>

#include "fixture.h"
#include "ofp/codec.h"
#include "packet/frame.h"

namespace cw::decide {
namespace {

using testing::Net;

TEST(Pipeline, CellIngressAdmitsOnlyItsOwnAddresses) {
  Net net;
  auto flows = cellBaseFlows(ofp::Version::kOf13, net.web, net.gw, 7);
  const ofp::FlowMod* ingress = nullptr;
  for (const auto& f : flows)
    if (f.table_id == kTableIngress && f.match.has(ofp::Field::kIpv4Src)) ingress = &f;
  ASSERT_NE(ingress, nullptr);
  EXPECT_EQ(ingress->match.in_port, net.web.ofport);
  EXPECT_EQ(ingress->match.eth_src, net.web.mac);
  EXPECT_EQ(ingress->match.ipv4_src, net.web.ip);
  EXPECT_FALSE(ingress->match.hasMask(ofp::Field::kIpv4Src));
  // On to the scripts' table, whose miss goes on to the connections.
  EXPECT_EQ(std::get<ofp::InstrGotoTable>(ingress->instructions[0]).table_id, kTableScript);
  bool script_miss = false;
  for (const auto& f : switchBaseFlows(ofp::Version::kOf13))
    if (f.table_id == kTableScript && f.priority == 0)
      script_miss = std::get<ofp::InstrGotoTable>(f.instructions.at(0)).table_id == kTableConn;
  EXPECT_TRUE(script_miss);
  // No inspect-mode flows for a cell that is not inspected.
  for (const auto& f : flows) EXPECT_NE(f.priority, kPrioInspect);
}

TEST(Pipeline, AnInspectedCellSendsEveryPacketBothWaysThroughItsMeterToTheController) {
  Net net;
  decide::CellPort c = net.web;
  c.inspect = true;
  int n = 0;
  for (const auto& f : cellBaseFlows(ofp::Version::kOf13, c, net.gw, 7)) {
    if (f.priority != kPrioInspect) continue;
    ++n;
    EXPECT_EQ(f.table_id, kTableScript);  // after anti-spoofing, before every script flow
    ASSERT_EQ(f.instructions.size(), 2u);
    EXPECT_EQ(std::get<ofp::InstrMeter>(f.instructions[0]).meter_id, 7u);
    const auto& out = std::get<ofp::ActionOutput>(std::get<ofp::InstrApplyActions>(f.instructions[1]).actions.at(0));
    EXPECT_EQ(out.port, ofp::kPortController);
    if (f.match.has(ofp::Field::kInPort)) EXPECT_EQ(f.match.ipv4_src, c.ip);
    else EXPECT_EQ(f.match.ipv4_dst, c.ip);
  }
  EXPECT_EQ(n, 2);
}

TEST(Pipeline, NoFlowForwardsWithoutTheController) {
  // No NORMAL, FLOOD or ALL output anywhere in the base pipeline.
  Net net;
  std::vector<ofp::FlowMod> all = switchBaseFlows(ofp::Version::kOf13);
  for (const auto& f : cellBaseFlows(ofp::Version::kOf13, net.web, net.gw, 1)) all.push_back(f);
  for (const auto& f : gatewayBaseFlows(ofp::Version::kOf13, net.gw, {&net.web, &net.db})) all.push_back(f);
  for (const auto& f : all)
    for (const auto& i : f.instructions)
      if (const auto* a = std::get_if<ofp::InstrApplyActions>(&i))
        for (const auto& act : a->actions)
          if (const auto* o = std::get_if<ofp::ActionOutput>(&act)) {
            EXPECT_NE(o->port, ofp::kPortNormal);
            EXPECT_NE(o->port, ofp::kPortFlood);
            EXPECT_NE(o->port, ofp::kPortAll);
          }
}

// The `ip` and `arp` matches see through one 802.1Q tag: every table-0 flow that lets a frame
// on (or answers it) must also say "no tag", or a tagged frame rides along on an allowed
// connection (VLAN hopping on a trunked uplink). A priority-tagged frame (VID 0) has a tag too.
TEST(Pipeline, TableZeroAdmitsUntaggedFramesOnly) {
  Net net;
  decide::CellPort inspected = net.web;
  inspected.inspect = true;
  std::vector<ofp::FlowMod> all = switchBaseFlows(ofp::Version::kOf13);
  for (const auto* c : {&net.web, &net.db, &inspected})
    for (const auto& f : cellBaseFlows(ofp::Version::kOf13, *c, net.gw, 7)) all.push_back(f);
  for (const auto& f : gatewayBaseFlows(ofp::Version::kOf13, net.gw, {&net.web, &net.db})) all.push_back(f);
  all.push_back(gatewayArpForCell(net.gw, net.db));
  int admitting = 0;
  for (const auto& f : all) {
    if (f.table_id != kTableIngress || f.instructions.empty()) continue;  // drops
    ++admitting;
    SCOPED_TRACE(ofp::formatMatch(f.match));
    EXPECT_TRUE(f.match.has(ofp::Field::kVlanVid));
    EXPECT_FALSE(f.match.hasMask(ofp::Field::kVlanVid));
    EXPECT_EQ(f.match.vlan_vid, ofp::kVlanNone);
  }
  EXPECT_EQ(admitting, 3 * 2 + 1 + 2 + 1);  // per cell: IPv4 + ARP; the gateway: IPv4 + ARPs
}

TEST(Pipeline, MissGoesThroughTheCellsMeter) {
  Net net;
  auto flows = cellBaseFlows(ofp::Version::kOf13, net.web, net.gw, 7);
  bool found = false;
  for (const auto& f : flows) {
    if (f.table_id != kTableVerdict || f.priority != kPrioPortMiss) continue;
    found = true;
    ASSERT_EQ(f.instructions.size(), 2u);
    EXPECT_EQ(std::get<ofp::InstrMeter>(f.instructions[0]).meter_id, 7u);
  }
  EXPECT_TRUE(found);
}

TEST(Pipeline, ResolverDnsIsStaticAndItsAnswersAreCopied) {
  Net net;
  auto flows = cellBaseFlows(ofp::Version::kOf13, net.web, net.gw, 7);
  int queries = 0, answers = 0;
  for (const auto& f : flows) {
    if (f.priority != kPrioResolver) continue;
    const auto& acts = std::get<ofp::InstrApplyActions>(f.instructions[0]).actions;
    if (f.match.in_port == net.web.ofport) {
      ++queries;
      EXPECT_EQ(f.match.ipv4_src, net.web.ip);  // only the cell's own address
      EXPECT_EQ(f.match.ipv4_dst, net.gw.ip);   // only to the resolver
      EXPECT_TRUE(f.match.udp_dst == kDnsPort || f.match.tcp_dst == kDnsPort);
      ASSERT_EQ(acts.size(), 1u);
      EXPECT_EQ(std::get<ofp::ActionOutput>(acts[0]).port, net.gw.ofport);
    } else {
      ++answers;
      EXPECT_EQ(f.match.in_port, net.gw.ofport);
      EXPECT_EQ(f.match.ipv4_src, net.gw.ip);  // only the resolver's answers are snooped
      EXPECT_TRUE(f.match.udp_src == kDnsPort || f.match.tcp_src == kDnsPort);
      EXPECT_EQ(cookieKind(f.cookie), CookieKind::kDnsAnswer);
      EXPECT_EQ(cookieCell(f.cookie), net.web.cell_id);
      ASSERT_EQ(acts.size(), 2u);
      EXPECT_EQ(std::get<ofp::ActionOutput>(acts[0]).port, net.web.ofport);  // the cell first
      EXPECT_EQ(std::get<ofp::ActionOutput>(acts[1]).port, ofp::kPortController);
    }
  }
  EXPECT_EQ(queries, 2);  // UDP and TCP
  EXPECT_EQ(answers, 2);
}

TEST(Pipeline, ACheckedCellsQueriesGoThroughItsMeterToTheController) {
  // resolve = "rules" (here from default = "deny"): every query, UDP and TCP, to the
  // controller through the cell's meter; the answers are copied exactly as for any cell.
  Net net;
  ASSERT_TRUE(resolvesByRules(net.api));
  ASSERT_FALSE(resolvesByRules(net.web));  // resolve = "any"
  int queries = 0, answers = 0;
  for (const auto& f : cellBaseFlows(ofp::Version::kOf13, net.api, net.gw, 7)) {
    if (f.priority != kPrioResolver) continue;
    if (f.match.in_port != net.api.ofport) {
      ++answers;
      EXPECT_EQ(cookieKind(f.cookie), CookieKind::kDnsAnswer);
      continue;
    }
    ++queries;
    EXPECT_EQ(f.match.ipv4_dst, net.gw.ip);
    ASSERT_EQ(f.instructions.size(), 2u);
    EXPECT_EQ(std::get<ofp::InstrMeter>(f.instructions[0]).meter_id, 7u);
    const auto& acts = std::get<ofp::InstrApplyActions>(f.instructions[1]).actions;
    ASSERT_EQ(acts.size(), 1u);
    EXPECT_EQ(std::get<ofp::ActionOutput>(acts[0]).port, ofp::kPortController);
    EXPECT_EQ(cookieKind(f.cookie), CookieKind::kBase);
  }
  EXPECT_EQ(queries, 2);
  EXPECT_EQ(answers, 2);
  // The same matches and priority as an unchecked cell's: re-sending a cell's base flows after
  // its setting changed replaces them in place.
  std::vector<ofp::Match> checked, direct;
  decide::CellPort same = net.api;
  same.policy = net.web.policy;
  for (const auto& f : cellBaseFlows(ofp::Version::kOf13, net.api, net.gw, 7))
    if (f.priority == kPrioResolver) checked.push_back(f.match);
  for (const auto& f : cellBaseFlows(ofp::Version::kOf13, same, net.gw, 7))
    if (f.priority == kPrioResolver) direct.push_back(f.match);
  EXPECT_EQ(checked, direct);
}

TEST(Pipeline, ArpAnswerIsAWellFormedReply) {
  Net net;
  ofp::FlowMod f = gatewayArpForCell(net.gw, net.web);
  EXPECT_EQ(f.match.in_port, net.gw.ofport);
  EXPECT_EQ(f.match.arp_tpa, net.web.ip);
  const auto& acts = std::get<ofp::InstrApplyActions>(f.instructions[0]).actions;
  bool op_reply = false, sha = false, out_in_port = false;
  for (const auto& a : acts) {
    if (const auto* s = std::get_if<ofp::ActionSetField>(&a)) {
      if (s->field.has(ofp::Field::kArpOp)) op_reply = s->field.arp_op == 2;
      if (s->field.has(ofp::Field::kArpSha)) sha = s->field.arp_sha == net.web.mac;
    }
    if (const auto* o = std::get_if<ofp::ActionOutput>(&a)) out_in_port = o->port == ofp::kPortInPort;
  }
  EXPECT_TRUE(op_reply);
  EXPECT_TRUE(sha);
  EXPECT_TRUE(out_in_port);
}

TEST(Pipeline, CookiesSelectCellsAndRules) {
  std::uint64_t c = makeCookie(CookieKind::kConnAllow, 0x123456, 0xdeadbeef);
  EXPECT_EQ(cookieKind(c), CookieKind::kConnAllow);
  EXPECT_EQ(cookieCell(c), 0x123456u);
  EXPECT_EQ(c & kCookieRuleMask, 0xdeadbeefu);
  Net net;
  auto del = cellRemoveFlows(net.web);
  ASSERT_EQ(del.size(), 9u);
  // Script flows about the cell's address go with it (its address goes back to the pool).
  EXPECT_EQ(del[7].table_id, kTableScript);
  EXPECT_EQ(del[7].match.ipv4_src, net.web.ip);
  EXPECT_EQ(del[8].match.ipv4_dst, net.web.ip);
  del.resize(7);
  EXPECT_EQ(cookieKind(del[6].cookie), CookieKind::kCount);  // its count flows too
  for (const auto& d : del) {
    EXPECT_EQ(d.cookie_mask, kCookieKindMask | kCookieCellMask);
    EXPECT_EQ(cookieCell(d.cookie), net.web.cell_id);
    // Never a script's flows, whose cookies carry the script's id in the cell's place.
    EXPECT_NE(cookieKind(d.cookie), CookieKind::kScript);
  }
}

// The flow table holds policy, never connections: what a cell gets does not depend on how many
// connections it has, and every decided connection is carried by a handful of flows on its
// conntrack zone and mark.
TEST(Pipeline, ACellsConnectionsPassConntrackInItsOwnZone) {
  Net net;
  net.web.epoch = 5;
  auto flows = cellBaseFlows(ofp::Version::kOf13, net.web, net.gw, 7);
  int tracked = 0, allow = 0, deny = 0;
  for (const auto& f : flows) {
    for (const auto& i : f.instructions)
      if (const auto* a = std::get_if<ofp::InstrApplyActions>(&i))
        for (const auto& act : a->actions)
          if (const auto* ct = std::get_if<ofp::ActionCt>(&act)) {
            // Looked up (never committed by a flow: only the controller commits), in the cell's
            // zone, then on in the verdict table (or the receiver's verdict table, cell to cell).
            EXPECT_EQ(ct->flags & ofp::kCtCommit, 0);
            EXPECT_EQ(ct->zone, zoneOf(net.web));
            EXPECT_TRUE(ct->table == kTableVerdict || ct->table == kTablePeer);
            ++tracked;
          }
    if (f.table_id == kTableVerdict && f.priority == kPrioVerdict) {
      EXPECT_EQ(f.match.ct_zone, zoneOf(net.web));
      EXPECT_EQ(f.match.ct_mark_mask, kMarkMatchMask);  // kept or not
      EXPECT_EQ(markEpoch(f.match.ct_mark), 5u);
      EXPECT_EQ(cookieKind(f.cookie), CookieKind::kVerdict);
      ((f.match.ct_mark & kMarkVerdictMask) == kMarkAllow ? allow : deny)++;
    }
  }
  EXPECT_EQ(tracked, 3);  // from the cell, to it from its gateway, to it from another cell
  EXPECT_EQ(allow, 1);
  EXPECT_EQ(deny, 2);  // what the cell sends in the opening direction, and all from its gateway
  // The verdict flows of other epochs are deleted before this epoch's are added.
  auto v = cellVerdictFlows(net.web, net.gw);
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v[0].command, ofp::FlowModCommand::kDelete);
  EXPECT_EQ(v[0].cookie_mask, kCookieKindMask | kCookieCellMask);
  EXPECT_EQ(cookieKind(v[0].cookie), CookieKind::kVerdict);
  // Conntrack's invalid is dropped in both verdict tables, before any verdict.
  int invalid = 0;
  for (const auto& f : switchBaseFlows(ofp::Version::kOf13))
    if (f.match.has(ofp::Field::kCtState) && (f.match.ct_state & ofp::kCtInv) != 0) {
      EXPECT_TRUE(f.instructions.empty());
      EXPECT_GT(f.priority, kPrioVerdict);
      ++invalid;
    }
  EXPECT_EQ(invalid, 2);
}

// Per-rule counters: an allowed packet is counted in table 7 by a resubmit (which comes back)
// and goes on to table 4; a cell has two count flows per label it used (what it sent, what it
// received), under them a catch-all pair, and nothing per connection.
TEST(Pipeline, AllowedPacketsAreCountedPerCellRuleAndDirection) {
  Net net;
  auto flows = cellBaseFlows(ofp::Version::kOf13, net.web, net.gw, 7);
  int counted = 0, others = 0;
  for (const auto& f : flows) {
    if (f.table_id == kTableCount) {
      // The catch-all: the cell's zone, any label; what the cell sent above what it received.
      EXPECT_TRUE(f.instructions.empty());
      EXPECT_EQ(f.cookie, makeCookie(CookieKind::kCount, net.web.cell_id, kCountOther));
      EXPECT_EQ(f.match.ct_zone, zoneOf(net.web));
      EXPECT_FALSE(f.match.has(ofp::Field::kCtLabel));
      EXPECT_EQ(f.priority, f.match.has(ofp::Field::kInPort) ? kPrioCountOtherSent : kPrioCountOtherReceived);
      ++others;
      continue;
    }
    const bool allow_verdict = f.priority == kPrioVerdict && f.match.has(ofp::Field::kCtMark) &&
                               (f.match.ct_mark & kMarkVerdictMask) == kMarkAllow;
    if (!allow_verdict) continue;
    // Table 3: resubmit(,7) then goto_table:4. Table 5: resubmit(,7) before the MAC rewrite.
    const auto& first = std::get<ofp::InstrApplyActions>(f.instructions.at(0)).actions;
    EXPECT_EQ(std::get<ofp::ActionResubmit>(first.at(0)).table, kTableCount);
    if (f.table_id == kTableVerdict) {
      EXPECT_EQ(std::get<ofp::InstrGotoTable>(f.instructions.at(1)).table_id, kTableRoute);
    } else {
      EXPECT_EQ(f.table_id, kTablePeer);
    }
    ++counted;
  }
  EXPECT_EQ(counted, 2);
  EXPECT_EQ(others, 2);
  // A rule's pair, exact on the label.
  const std::uint64_t label = labelOf(LabelSource::kRule, 42);
  auto pair = cellCountFlows(net.web, label);
  ASSERT_EQ(pair.size(), 2u);
  for (const auto& f : pair) {
    EXPECT_EQ(f.table_id, kTableCount);
    EXPECT_EQ(f.command, ofp::FlowModCommand::kAdd);
    EXPECT_TRUE(f.instructions.empty());
    EXPECT_EQ(f.cookie, makeCookie(CookieKind::kCount, net.web.cell_id, 42));
    EXPECT_EQ(f.match.ct_zone, zoneOf(net.web));
    EXPECT_EQ(f.match.ct_label_lo, 42u);
    EXPECT_EQ(f.match.ct_label_hi, 0u);
    EXPECT_FALSE(f.match.hasMask(ofp::Field::kCtLabel));
  }
  EXPECT_EQ(pair[0].match.in_port, net.web.ofport);
  EXPECT_EQ(pair[0].priority, kPrioCountSent);
  EXPECT_FALSE(pair[1].match.has(ofp::Field::kInPort));
  EXPECT_EQ(pair[1].priority, kPrioCountReceived);
  EXPECT_GT(kPrioCountReceived, kPrioCountOtherSent);  // a rule's flows win over the catch-all
  // What no rule decided has its own cookie field; one rule's flows go with one delete.
  EXPECT_EQ(cellCountFlows(net.web, labelOf(LabelSource::kScript, 0))[0].cookie & kCookieRuleMask, 0xffffff01u);
  auto del = cellCountRemove(net.web, 42);
  EXPECT_EQ(del.command, ofp::FlowModCommand::kDelete);
  EXPECT_EQ(del.table_id, kTableCount);
  EXPECT_EQ(del.cookie, pair[0].cookie);
  EXPECT_EQ(del.cookie_mask, ~0ULL);
  // Off (cellwalld --rule-counters off): no resubmit, no catch-all.
  net.web.count = false;
  for (const auto& f : cellBaseFlows(ofp::Version::kOf13, net.web, net.gw, 7)) {
    EXPECT_NE(f.table_id, kTableCount);
    for (const auto& i : f.instructions) {
      if (const auto* a = std::get_if<ofp::InstrApplyActions>(&i)) {
        for (const auto& act : a->actions) EXPECT_FALSE(std::holds_alternative<ofp::ActionResubmit>(act));
      }
    }
  }
  // The count table's miss is explicit, like the others'.
  bool miss = false;
  for (const auto& f : switchBaseFlows(ofp::Version::kOf13))
    miss = miss || (f.table_id == kTableCount && f.priority == 0 && f.instructions.empty());
  EXPECT_TRUE(miss);
}

TEST(Pipeline, MarksCarryEpochVerdictAndWhetherKept) {
  EXPECT_EQ(markOf(5, true, false) & kMarkMatchMask, markOf(5, true, true) & kMarkMatchMask);
  EXPECT_NE(markOf(5, true, false), markOf(6, true, false));
  EXPECT_NE(markOf(5, true, false) & kMarkMatchMask, markOf(5, false, false) & kMarkMatchMask);
  EXPECT_EQ(markEpoch(markOf(123456, false, true)), 123456u);
  EXPECT_NE(markOf(1, false, false), 0u);
  // Epochs wrap within 29 bits and skip 0.
  EXPECT_EQ(nextEpoch(kMarkEpochMask >> kMarkEpochShift), 1u);
  EXPECT_EQ(nextEpoch(1), 2u);
}

}  // namespace
}  // namespace cw::decide
