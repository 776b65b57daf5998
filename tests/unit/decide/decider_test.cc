#include "decide/decider.h"

#include <gtest/gtest.h>

#include <unordered_set>

#include <functional>
#include <iterator>
#include <optional>

#include "fixture.h"
#include "packet/frame.h"

namespace cw::decide {
namespace {

using testing::ip;
using testing::Net;
using policy::Action;

struct Case {
  const char* what;
  std::uint32_t in_port;
  std::function<std::vector<std::uint8_t>(const Net&)> frame;
  Action action;
  Reason reason;
  std::size_t legs;         // directions described (allow: 2, deny: 1)
  std::size_t packet_outs;  // PACKET_OUTs (a commit, a forward, a reject's answer)
  std::uint32_t out_port;   // first leg's output port (0: drop / none)
};

std::uint32_t firstOutput(const Decision& d) {
  if (d.legs.empty()) return 0;
  for (const auto& a : d.legs[0].actions)
    if (const auto* o = std::get_if<ofp::ActionOutput>(&a)) return o->port;
  return 0;
}

// The conntrack commits of a PACKET_OUT, in order.
std::vector<ofp::ActionCt> commits(const ofp::PacketOut& po) {
  std::vector<ofp::ActionCt> out;
  for (const auto& a : po.actions)
    if (const auto* ct = std::get_if<ofp::ActionCt>(&a)) out.push_back(*ct);
  return out;
}
std::uint32_t markOfCommit(const ofp::ActionCt& ct) {
  for (const auto& sf : ct.exec)
    if (sf.field.has(ofp::Field::kCtMark)) return sf.field.ct_mark;
  return 0;
}
// The label a commit sets; nullopt: it leaves the connection's label as it is.
std::optional<std::uint64_t> labelOfCommit(const ofp::ActionCt& ct) {
  for (const auto& sf : ct.exec)
    if (sf.field.has(ofp::Field::kCtLabel)) {
      EXPECT_EQ(sf.field.ct_label_hi, 0u);
      return sf.field.ct_label_lo;
    }
  return std::nullopt;
}
std::vector<std::uint32_t> outputs(const ofp::ActionList& acts) {
  std::vector<std::uint32_t> out;
  for (const auto& a : acts)
    if (const auto* o = std::get_if<ofp::ActionOutput>(&a)) out.push_back(o->port);
  return out;
}

// A frame with an 802.1Q tag of `vid` (0: priority-tagged, PCP 5) after the MAC addresses.
std::vector<std::uint8_t> tagged(std::vector<std::uint8_t> f, std::uint16_t vid) {
  const std::uint8_t tag[] = {0x81, 0x00, static_cast<std::uint8_t>(0xa0 | vid >> 8), static_cast<std::uint8_t>(vid)};
  f.insert(f.begin() + 12, std::begin(tag), std::end(tag));
  return f;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> k = {
      {"allowed tcp to a rule's address and port", 2,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.10"), 40000, 443, packet::kTcpSyn); },
       Action::kAllow, Reason::kPolicyRule, 2, 1, 1},
      {"same address, port not in the rule: default deny", 2,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.10"), 40000, 22, packet::kTcpSyn); },
       Action::kDeny, Reason::kPolicyDefault, 1, 1, 0},
      {"udp allowed by a proto-only rule", 2,
       [](const Net& n) { return packet::buildUdp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.53"), 5000, 53); },
       Action::kAllow, Reason::kPolicyRule, 2, 1, 1},
      {"icmp to an address with only tcp rules: default", 2,
       [](const Net& n) { return packet::buildIcmp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.10"), 8, 0); },
       Action::kDeny, Reason::kPolicyDefault, 1, 1, 0},
      {"reject answers without a flow", 2,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.66"), 40000, 80, packet::kTcpSyn, 1000); },
       Action::kReject, Reason::kPolicyRule, 0, 1, 0},
      {"dns to the environment resolver", 2,
       [](const Net& n) { return packet::buildUdp4(n.fromCell(n.web), n.web.ip, n.gw.ip, 5000, 53); },
       Action::kAllow, Reason::kEnvResolver, 2, 1, 1},
      {"anything else to the gateway is refused", 2,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.web), n.web.ip, n.gw.ip, 40000, 22, packet::kTcpSyn); },
       Action::kDeny, Reason::kGatewayService, 1, 1, 0},
      {"cell to cell when allowed goes straight across", 2,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.web), n.web.ip, n.db.ip, 40000, 8000, packet::kTcpSyn); },
       Action::kAllow, Reason::kPolicyRule, 2, 1, 3},
      {"cell to cell not allowed", 3,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.db), n.db.ip, n.web.ip, 40000, 80, packet::kTcpSyn); },
       Action::kDeny, Reason::kPolicyDefault, 1, 1, 0},
      {"reply from the uplink to an allowed connection", 1,
       [](const Net& n) { return packet::buildTcp4(n.toCell(n.web), ip("192.0.2.10"), n.web.ip, 443, 40000, packet::kTcpAck); },
       Action::kAllow, Reason::kReturnTraffic, 2, 1, 2},
      {"a SYN from the uplink is an inbound opening: refused", 1,
       [](const Net& n) { return packet::buildTcp4(n.toCell(n.web), ip("192.0.2.10"), n.web.ip, 443, 40000, packet::kTcpSyn); },
       Action::kDeny, Reason::kInboundRefused, 1, 1, 0},
      {"from the uplink, not the reverse of anything allowed", 1,
       [](const Net& n) { return packet::buildTcp4(n.toCell(n.web), ip("198.51.100.1"), n.web.ip, 443, 40000, packet::kTcpAck); },
       Action::kDeny, Reason::kInboundRefused, 1, 1, 0},
      {"a port that is no cell's", 9,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.10"), 40000, 443, packet::kTcpSyn); },
       Action::kDeny, Reason::kUnknownPort, 0, 0, 0},
      // The allowed SYN of the first case, tagged: not routed (table 0 drops it; should one
      // get here, nothing is installed and nothing re-injected with its tag).
      {"a tagged frame from a cell", 2,
       [](const Net& n) { return tagged(packet::buildTcp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.10"), 40000, 443, packet::kTcpSyn), 5); },
       Action::kDeny, Reason::kNotIpv4, 0, 0, 0},
      {"a priority-tagged frame (VID 0) from a cell", 2,
       [](const Net& n) { return tagged(packet::buildTcp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.10"), 40000, 443, packet::kTcpSyn), 0); },
       Action::kDeny, Reason::kNotIpv4, 0, 0, 0},
      {"a tagged reply from the uplink", 1,
       [](const Net& n) { return tagged(packet::buildTcp4(n.toCell(n.web), ip("192.0.2.10"), n.web.ip, 443, 40000, packet::kTcpAck), 7); },
       Action::kDeny, Reason::kNotIpv4, 0, 0, 0},
      {"ipv6 from a cell", 2,
       [](const Net& n) { return packet::buildUdp6(n.fromCell(n.web), *Ip6::parse("fe80::1"), *Ip6::parse("ff02::1"), 1, 2); },
       Action::kDeny, Reason::kNotIpv4, 0, 0, 0},
  };
  return k;
}

TEST(Decider, Fixtures) {
  Net net;
  Decider decider;
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.what);
    auto bytes = c.frame(net);
    auto frame = packet::parseFrame(bytes);
    ASSERT_TRUE(frame) << packet::parseErrorName(frame.error());
    Decision d = decider.decide(net.view, c.in_port, *frame);
    EXPECT_EQ(d.action, c.action);
    EXPECT_EQ(d.reason, c.reason) << reasonName(d.reason);
    EXPECT_EQ(d.legs.size(), c.legs);
    EXPECT_EQ(d.packet_outs.size(), c.packet_outs);
    EXPECT_EQ(firstOutput(d), c.out_port);
  }
}

TEST(Decider, AnAllowCommitsTheConnectionInTheCellsZoneAndSendsItOn) {
  Net net;
  net.web.epoch = 77;
  net.view.cells_by_port[net.web.ofport] = net.web;
  auto bytes = packet::buildTcp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.10"), 40000, 443,
                                 packet::kTcpSyn);
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  Decision d = Decider().decide(net.view, 2, *frame);
  EXPECT_EQ(d.rule_id, 1u);  // the first [[allow]]
  // One PACKET_OUT: committed in the cell's zone with the verdict and the cell's epoch in the
  // mark, then on to the gateway, unchanged. Nothing for the flow table.
  ASSERT_EQ(d.packet_outs.size(), 1u);
  const ofp::PacketOut& po = d.packet_outs[0];
  EXPECT_EQ(po.in_port, 2u);
  EXPECT_EQ(po.data, bytes);
  auto cts = commits(po);
  ASSERT_EQ(cts.size(), 1u);
  EXPECT_EQ(cts[0].flags, ofp::kCtCommit);
  EXPECT_EQ(cts[0].zone, zoneOf(net.web));
  EXPECT_EQ(cts[0].table, ofp::kCtNoRecirc);
  EXPECT_EQ(markOfCommit(cts[0]), markOf(77, true, false));
  EXPECT_TRUE(std::holds_alternative<ofp::ActionCt>(po.actions.front()));  // commit first
  EXPECT_EQ(outputs(po.actions), std::vector<std::uint32_t>{1});
  // Both directions described, for inspect mode and repeats: the reply comes from the gateway.
  ASSERT_EQ(d.legs.size(), 2u);
  EXPECT_EQ(d.legs[0].in_port, 2u);
  EXPECT_FALSE(d.legs[0].reverse);
  EXPECT_EQ(d.legs[1].in_port, 1u);
  EXPECT_TRUE(d.legs[1].reverse);
  EXPECT_EQ(outputs(d.legs[1].actions), std::vector<std::uint32_t>{2});
  EXPECT_EQ(d.legs[0].idle_s, Timeouts{}.tcp_idle);
}

TEST(Decider, ADenyCommitsTheConnectionAsDeniedAndSendsNothingOn) {
  Net net;
  auto bytes = packet::buildTcp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.10"), 40000, 22, packet::kTcpSyn);
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  Decision d = Decider().decide(net.view, 2, *frame);
  EXPECT_EQ(d.action, Action::kDeny);
  ASSERT_EQ(d.packet_outs.size(), 1u);
  auto cts = commits(d.packet_outs[0]);
  ASSERT_EQ(cts.size(), 1u);
  EXPECT_EQ(cts[0].zone, zoneOf(net.web));
  EXPECT_EQ(markOfCommit(cts[0]), markOf(net.web.epoch, false, false));
  EXPECT_TRUE(outputs(d.packet_outs[0].actions).empty());  // retransmissions: dropped by the switch
}

TEST(Decider, ResolverTrafficNeverPassesConntrack) {
  Net net;
  // A query to the environment's resolver that missed its flow: straight on, no commit; its
  // answers are the snooped direction.
  auto q = packet::buildUdp4(net.fromCell(net.web), net.web.ip, net.gw.ip, 5000, 53);
  auto qf = packet::parseFrame(q);
  ASSERT_TRUE(qf);
  Decision d = Decider().decide(net.view, 2, *qf);
  EXPECT_FALSE(d.dns_answer);
  ASSERT_EQ(d.packet_outs.size(), 1u);
  EXPECT_TRUE(commits(d.packet_outs[0]).empty());
  EXPECT_EQ(outputs(d.packet_outs[0].actions), std::vector<std::uint32_t>{1});
  ASSERT_EQ(d.legs.size(), 2u);
  EXPECT_FALSE(d.legs[0].snoop);
  EXPECT_TRUE(d.legs[1].snoop);

  // An answer that missed its flow: allowed, snooped, straight to the cell.
  auto a = packet::buildUdp4(net.toCell(net.web), net.gw.ip, net.web.ip, 53, 5000);
  auto af = packet::parseFrame(a);
  ASSERT_TRUE(af);
  Decision r = Decider().decide(net.view, 1, *af);
  EXPECT_TRUE(r.dns_answer);
  ASSERT_EQ(r.packet_outs.size(), 1u);
  EXPECT_TRUE(commits(r.packet_outs[0]).empty());
  EXPECT_EQ(outputs(r.packet_outs[0].actions), std::vector<std::uint32_t>{2});
  EXPECT_TRUE(r.legs[0].snoop);

  // DNS from anywhere else is an ordinary connection: committed, never a name source.
  auto other = packet::buildUdp4(net.toCell(net.web), ip("192.0.2.53"), net.web.ip, 53, 5000);
  auto of = packet::parseFrame(other);
  ASSERT_TRUE(of);
  Decision o = Decider().decide(net.view, 1, *of);
  EXPECT_FALSE(o.dns_answer);
  ASSERT_EQ(o.packet_outs.size(), 1u);
  EXPECT_EQ(commits(o.packet_outs[0]).size(), 1u);
  for (const auto& leg : o.legs) EXPECT_FALSE(leg.snoop);
}

TEST(Decider, RejectSendsRstAcknowledgingTheSyn) {
  Net net;
  auto bytes = packet::buildTcp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.66"), 40000, 80,
                                 packet::kTcpSyn, 1000);
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  Decision d = Decider().decide(net.view, 2, *frame);
  ASSERT_EQ(d.packet_outs.size(), 1u);
  auto rst = packet::parseFrame(d.packet_outs[0].data);
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->ip_src.v4(), ip("192.0.2.66"));
  EXPECT_EQ(rst->ip_dst.v4(), net.web.ip);
  EXPECT_EQ(rst->src_port, 80);
  EXPECT_EQ(rst->dst_port, 40000);
  EXPECT_EQ(rst->tcp_flags, packet::kTcpRst | packet::kTcpAck);
  EXPECT_EQ(rst->eth_dst, net.web.mac);
  ByteReader r(rst->raw);
  r.skip(rst->l4_offset + 8);
  EXPECT_EQ(r.u32(), 1001u);  // ack = syn seq + 1
  const auto* out = std::get_if<ofp::ActionOutput>(&d.packet_outs[0].actions[0]);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->port, 2u);
}

// default = "prompt": what no rule covers is held (no flow, nothing sent); what a rule covers
// is decided as ever; a held verdict decides like a rule would, with its own reason.
TEST(Decider, PromptHoldsWhatNoRuleCoversAndHeldVerdictsDecide) {
  Net net;
  net.web.policy = testing::compile("default = \"prompt\"\n[[allow]]\nproto = \"tcp\"\nto = \"192.0.2.10\"\n");
  net.view.cells_by_port[net.web.ofport] = net.web;
  auto unknown = packet::buildTcp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.99"), 40000, 443, packet::kTcpSyn);
  auto f = packet::parseFrame(unknown);
  ASSERT_TRUE(f);
  Decision held = Decider().decide(net.view, 2, *f);
  EXPECT_TRUE(held.held);
  EXPECT_EQ(held.reason, Reason::kPrompt);
  EXPECT_TRUE(held.legs.empty());
  EXPECT_TRUE(held.packet_outs.empty());

  auto known = packet::buildTcp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.10"), 40000, 443, packet::kTcpSyn);
  auto k = packet::parseFrame(known);
  ASSERT_TRUE(k);
  Decision ruled = Decider().decide(net.view, 2, *k);
  EXPECT_FALSE(ruled.held);
  EXPECT_EQ(ruled.reason, Reason::kPolicyRule);

  // A segment without SYN opens nothing: refused as unknown, never asked about.
  auto late = packet::buildTcp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.99"), 40000, 443,
                                packet::kTcpFin | packet::kTcpAck);
  auto lf = packet::parseFrame(late);
  ASSERT_TRUE(lf);
  Decision stray = Decider().decide(net.view, 2, *lf);
  EXPECT_FALSE(stray.held);
  EXPECT_EQ(stray.action, Action::kDeny);
  EXPECT_EQ(stray.reason, Reason::kPolicyDefault);

  const HeldVerdict allow{Action::kAllow, Reason::kPromptAnswer};
  Decision a = Decider().decide(net.view, 2, *f, {}, &allow);
  EXPECT_FALSE(a.held);
  EXPECT_EQ(a.action, Action::kAllow);
  EXPECT_EQ(a.reason, Reason::kPromptAnswer);
  EXPECT_EQ(a.legs.size(), 2u);  // both directions, as for a rule
  ASSERT_EQ(a.packet_outs.size(), 1u);  // the held packet goes on, committed
  EXPECT_EQ(firstOutput(a), 1u);  // to the gateway
  // An answer is not the rules' to undo when they change: kept in the mark.
  auto kept = commits(a.packet_outs[0]);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(markOfCommit(kept[0]), markOf(net.web.epoch, true, true));

  const HeldVerdict reject{Action::kReject, Reason::kPromptTimeout};
  Decision r = Decider().decide(net.view, 2, *f, {}, &reject);
  EXPECT_EQ(r.reason, Reason::kPromptTimeout);
  EXPECT_TRUE(r.legs.empty());
  ASSERT_EQ(r.packet_outs.size(), 1u);  // the RST
  auto rst = packet::parseFrame(r.packet_outs[0].data);
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->tcp_flags, packet::kTcpRst | packet::kTcpAck);

  const HeldVerdict deny{Action::kDeny, Reason::kPromptTimeout};
  Decision dn = Decider().decide(net.view, 2, *f, {}, &deny);
  ASSERT_EQ(dn.packet_outs.size(), 1u);  // committed as denied, sent nowhere
  EXPECT_EQ(commits(dn.packet_outs[0]).size(), 1u);
  EXPECT_TRUE(outputs(dn.packet_outs[0].actions).empty());
  EXPECT_STREQ(reasonName(Reason::kPrompt), "prompt");
  EXPECT_STREQ(reasonName(Reason::kPromptAnswer), "prompt_answer");
  EXPECT_STREQ(reasonName(Reason::kPromptTimeout), "prompt_timeout");
}

TEST(Decider, UdpRejectIsPortUnreachableQuotingTheDatagram) {
  Net net;
  auto bytes = packet::buildUdp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.66"), 5000, 53);
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  Decision d = Decider().decide(net.view, 2, *frame);
  ASSERT_EQ(d.packet_outs.size(), 1u);
  auto icmp = packet::parseFrame(d.packet_outs[0].data);
  ASSERT_TRUE(icmp);
  EXPECT_EQ(icmp->l4, packet::L4::kIcmp);
  EXPECT_EQ(icmp->icmp_type, 3);
  EXPECT_EQ(icmp->icmp_code, 3);
  EXPECT_GE(icmp->payload.size(), 4u + 20u + 8u);  // unused + IP header + 8 bytes
}

TEST(Decider, CellToCellCommitsInBothZonesAndRewritesMacsAsTheGatewayWould) {
  Net net;
  net.db.epoch = 9;
  net.view.cells_by_port[net.db.ofport] = net.db;
  auto bytes = packet::buildTcp4(net.fromCell(net.web), net.web.ip, net.db.ip, 40000, 8000,
                                 packet::kTcpSyn);
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  Decision d = Decider().decide(net.view, 2, *frame);
  ASSERT_EQ(d.packet_outs.size(), 1u);
  const auto& acts = d.packet_outs[0].actions;
  // ct(commit, web's zone), ct_clear, ct(commit, db's zone), the MACs, output to db.
  ASSERT_EQ(acts.size(), 6u);
  EXPECT_EQ(std::get<ofp::ActionCt>(acts[0]).zone, zoneOf(net.web));
  EXPECT_TRUE(std::holds_alternative<ofp::ActionCtClear>(acts[1]));
  EXPECT_EQ(std::get<ofp::ActionCt>(acts[2]).zone, zoneOf(net.db));
  EXPECT_EQ(markOfCommit(std::get<ofp::ActionCt>(acts[2])), markOf(9, true, false));
  EXPECT_EQ(std::get<ofp::ActionSetField>(acts[3]).field.eth_src, net.gw.mac);
  EXPECT_EQ(std::get<ofp::ActionSetField>(acts[4]).field.eth_dst, net.db.mac);
  EXPECT_EQ(std::get<ofp::ActionOutput>(acts[5]).port, net.db.ofport);
  ASSERT_EQ(d.legs.size(), 2u);
  EXPECT_EQ(std::get<ofp::ActionSetField>(d.legs[1].actions[1]).field.eth_dst, net.web.mac);
}

// What the switch sends back after a cell's epoch moved: an open connection, decided again.
struct Again {
  Net net;
  Decider decider;
  Decision decide(std::uint32_t in_port, const std::vector<std::uint8_t>& bytes, std::uint32_t state,
                  std::uint32_t mark, std::uint8_t table = kTableVerdict, const HeldVerdict* held = nullptr,
                  std::uint64_t label = 0) {
    auto f = packet::parseFrame(bytes);
    EXPECT_TRUE(f);
    CtSeen ct{state, zoneOf(net.web), mark, table, label};
    return decider.decide(net.view, in_port, *f, {}, held, &ct);
  }
  void policy(const char* toml) {
    net.web.policy = testing::compile(toml);
    net.web.epoch = 2;
    net.view.cells_by_port[net.web.ofport] = net.web;
  }
};

constexpr std::uint32_t kEst = ofp::kCtTrk | ofp::kCtEst;

TEST(Decider, AnOpenConnectionIsDecidedAgainUnderTheRulesInForce) {
  Again t;
  auto data = packet::buildTcp4(t.net.fromCell(t.net.web), t.net.web.ip, ip("192.0.2.10"), 40000, 443, packet::kTcpAck);
  // Still allowed: committed again with the new epoch; nothing to log or charge.
  t.policy("default = \"deny\"\n[[allow]]\nto = \"192.0.2.10\"\n");
  Decision d = t.decide(2, data, kEst, markOf(1, true, false));
  EXPECT_TRUE(d.again);
  EXPECT_EQ(d.reason, Reason::kOpenAgain);
  EXPECT_EQ(d.action, Action::kAllow);
  ASSERT_EQ(d.packet_outs.size(), 1u);
  EXPECT_EQ(markOfCommit(commits(d.packet_outs[0]).at(0)), markOf(2, true, false));
  EXPECT_EQ(outputs(d.packet_outs[0].actions), std::vector<std::uint32_t>{1});
  // No longer allowed: cut (committed as denied, the packet goes nowhere).
  t.policy("default = \"deny\"\n");
  Decision cut = t.decide(2, data, kEst, markOf(1, true, false));
  EXPECT_EQ(cut.action, Action::kDeny);
  EXPECT_EQ(markOfCommit(commits(cut.packet_outs.at(0)).at(0)), markOf(2, false, false));
  EXPECT_TRUE(outputs(cut.packet_outs[0].actions).empty());
  // Its replies from the uplink (conntrack: the reply direction) are the cell's connection too.
  auto reply = packet::buildTcp4(t.net.toCell(t.net.web), ip("192.0.2.10"), t.net.web.ip, 443, 40000, packet::kTcpAck);
  EXPECT_EQ(t.decide(1, reply, kEst | ofp::kCtRpl, markOf(1, true, false)).action, Action::kDeny);
  t.policy("default = \"deny\"\n[[allow]]\nto = \"192.0.2.10\"\nports = 443\n");
  EXPECT_EQ(t.decide(1, reply, kEst | ofp::kCtRpl, markOf(1, true, false)).action, Action::kAllow);
}

// Every commit names what decided the connection in its label (the count table counts it under
// that), and the decision lists the (cell, label) count flows the connection needs.
TEST(Decider, TheLabelNamesTheRuleOrWhatElseDecided) {
  Net net;
  net.view.cells_by_port[net.web.ofport] = net.web;
  auto decide = [&](const std::vector<std::uint8_t>& bytes, std::uint32_t in_port, const HeldVerdict* held = nullptr) {
    auto f = packet::parseFrame(bytes);
    EXPECT_TRUE(f);
    return Decider().decide(net.view, in_port, *f, {}, held);
  };
  using C = Decision::Counted;
  auto same = [](const std::vector<C>& a, const std::vector<C>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (a[i].ofport != b[i].ofport || a[i].cell_id != b[i].cell_id || a[i].label != b[i].label) return false;
    return true;
  };
  // A rule: its id (the third rule allows web -> db:8000, the fourth UDP to 192.0.2.53).
  Decision by_rule = decide(packet::buildUdp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.53"), 40000, 53, {}), 2);
  ASSERT_EQ(by_rule.rule_id, 4u);
  EXPECT_EQ(labelOfCommit(commits(by_rule.packet_outs.at(0)).at(0)), labelOf(LabelSource::kRule, 4));
  EXPECT_TRUE(same(by_rule.counts, {C{2, 2, labelOf(LabelSource::kRule, 4)}}));
  EXPECT_EQ(labelOf(LabelSource::kRule, 4), 4u);  // the rule id, nothing else, in the low bits
  // Denied by the default: labelled (rule 0), but nothing to count: the switch drops its packets.
  Decision denied = decide(packet::buildTcp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.99"), 40000, 443,
                                             packet::kTcpSyn), 2);
  EXPECT_EQ(denied.reason, Reason::kPolicyDefault);
  EXPECT_EQ(labelOfCommit(commits(denied.packet_outs.at(0)).at(0)), labelOf(LabelSource::kRule, 0));
  EXPECT_TRUE(denied.counts.empty());
  // A prompt's answer "once": no rule, its own source.
  const HeldVerdict once{Action::kAllow, Reason::kPromptAnswer};
  Decision answered = decide(packet::buildTcp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.99"), 40000, 443,
                                               packet::kTcpSyn), 2, &once);
  EXPECT_EQ(labelOfCommit(commits(answered.packet_outs.at(0)).at(0)), labelOf(LabelSource::kPrompt, 0));
  EXPECT_EQ(labelSource(labelOf(LabelSource::kPrompt, 7)), LabelSource::kPrompt);
  EXPECT_EQ(labelRule(labelOf(LabelSource::kPrompt, 7)), 0u);  // only rules carry an id
  // Cell to cell: the opener's rule in its zone; in the receiver's zone no rule of the
  // receiver's decided it: counted apart.
  net.view.cells_by_port[net.db.ofport] = net.db;
  Decision peer = decide(packet::buildTcp4(net.fromCell(net.web), net.web.ip, net.db.ip, 40000, 8000, packet::kTcpSyn), 2);
  auto cts = commits(peer.packet_outs.at(0));
  ASSERT_EQ(cts.size(), 2u);
  EXPECT_EQ(labelOfCommit(cts[0]), labelOf(LabelSource::kRule, 3));
  EXPECT_EQ(labelOfCommit(cts[1]), labelOf(LabelSource::kController, 0));
  EXPECT_TRUE(same(peer.counts, {C{2, 2, labelOf(LabelSource::kRule, 3)}, C{3, 3, labelOf(LabelSource::kController, 0)}}));
}

TEST(Decider, AKeptVerdictDecidedAgainKeepsItsLabel) {
  Again t;
  t.policy("default = \"deny\"\n[[allow]]\nto = \"192.0.2.10\"\n");
  auto data = packet::buildTcp4(t.net.fromCell(t.net.web), t.net.web.ip, ip("192.0.2.99"), 40000, 443, packet::kTcpAck);
  // A script's verdict (kept): committed with the new epoch, the label left as the script set it.
  Decision kept = t.decide(2, data, kEst, markOf(1, true, true));
  EXPECT_EQ(labelOfCommit(commits(kept.packet_outs.at(0)).at(0)), std::nullopt);
  EXPECT_TRUE(kept.counts.empty());
  // The rules' verdict: labelled by the rule that allows it now.
  auto to_rule = packet::buildTcp4(t.net.fromCell(t.net.web), t.net.web.ip, ip("192.0.2.10"), 40000, 443, packet::kTcpAck);
  Decision again = t.decide(2, to_rule, kEst, markOf(1, true, false));
  EXPECT_EQ(labelOfCommit(commits(again.packet_outs.at(0)).at(0)), labelOf(LabelSource::kRule, 1));
}

TEST(Decider, AScriptsOrAPromptsVerdictOutlivesARuleChange) {
  Again t;
  t.policy("default = \"deny\"\n");
  auto data = packet::buildTcp4(t.net.fromCell(t.net.web), t.net.web.ip, ip("192.0.2.99"), 40000, 443, packet::kTcpAck);
  Decision d = t.decide(2, data, kEst, markOf(1, true, true));
  EXPECT_EQ(d.action, Action::kAllow);
  EXPECT_EQ(markOfCommit(commits(d.packet_outs.at(0)).at(0)), markOf(2, true, true));
}

// A counted rule's admission is kept (its count running out must not cut what it admitted),
// but removing the rule takes its connections with it.
TEST(Decider, ACountedRulesAdmissionsGoWithTheRuleUnlessItsCountRanOut) {
  Again t;
  t.policy("default = \"deny\"\n");  // rule 7, which admitted the connection, is gone
  auto data = packet::buildTcp4(t.net.fromCell(t.net.web), t.net.web.ip, ip("192.0.2.10"), 40000, 443, packet::kTcpAck);
  const std::uint32_t kept = markOf(1, true, true);
  // Removed by someone: decided by the rules in force, which refuse it.
  Decision removed = t.decide(2, data, kEst, kept, kTableVerdict, nullptr, labelOf(LabelSource::kRule, 7));
  EXPECT_EQ(removed.action, Action::kDeny);
  EXPECT_EQ(markOfCommit(commits(removed.packet_outs.at(0)).at(0)), markOf(2, false, false));
  // Retired because its count ran out: what it admitted stays.
  auto p = std::make_shared<CompiledPolicy>(*t.net.web.policy);
  p->used_up = std::make_shared<const std::unordered_set<std::uint32_t>>(std::unordered_set<std::uint32_t>{7});
  t.net.web.policy = p;
  t.net.view.cells_by_port[t.net.web.ofport] = t.net.web;
  Decision used_up = t.decide(2, data, kEst, kept, kTableVerdict, nullptr, labelOf(LabelSource::kRule, 7));
  EXPECT_EQ(used_up.action, Action::kAllow);
  EXPECT_EQ(markOfCommit(commits(used_up.packet_outs.at(0)).at(0)), markOf(2, true, true));
  // Still in the policy: kept.
  t.policy("default = \"deny\"\n[[allow]]\nto = \"192.0.2.99\"\n");  // rule 1
  EXPECT_EQ(t.decide(2, data, kEst, kept, kTableVerdict, nullptr, labelOf(LabelSource::kRule, 1)).action,
            Action::kAllow);
  // A script's verdict names no rule: kept whatever the rules say.
  EXPECT_EQ(t.decide(2, data, kEst, kept, kTableVerdict, nullptr, labelOf(LabelSource::kScript, 0)).action,
            Action::kAllow);
}

TEST(Decider, DecidingAgainNeverChargesAConnectionCount) {
  Again t;
  t.policy("default = \"deny\"\n[[allow]]\nto = \"192.0.2.10\"\nconnections = 1\n");
  auto syn = packet::buildTcp4(t.net.fromCell(t.net.web), t.net.web.ip, ip("192.0.2.10"), 40000, 443, packet::kTcpSyn);
  auto f = packet::parseFrame(syn);
  ASSERT_TRUE(f);
  // A compiled policy's limits are the daemon's; give the rule one here.
  auto p = std::make_shared<CompiledPolicy>(*t.net.web.policy);
  auto limit = std::make_shared<RuleLimit>();
  limit->max = 1;
  p->limits[1] = limit;
  t.net.web.policy = p;
  t.net.view.cells_by_port[t.net.web.ofport] = t.net.web;
  Decision first = t.decider.decide(t.net.view, 2, *f);
  EXPECT_EQ(first.action, Action::kAllow);
  EXPECT_EQ(first.counted_rule, 1u);
  EXPECT_EQ(limit->used.load(), 1u);
  // What a counted rule admitted is kept: it stays open after the rule is used up and gone.
  EXPECT_EQ(markOfCommit(commits(first.packet_outs.at(0)).at(0)), markOf(2, true, true));
  // Decided again (another source port, the same rule): allowed, nothing charged.
  auto data = packet::buildTcp4(t.net.fromCell(t.net.web), t.net.web.ip, ip("192.0.2.10"), 40001, 443, packet::kTcpAck);
  Decision again = t.decide(2, data, kEst, markOf(1, true, false));
  EXPECT_EQ(again.action, Action::kAllow);
  EXPECT_EQ(again.counted_rule, 0u);
  EXPECT_EQ(limit->used.load(), 1u);
  // A connection denied before never opened: decided as a new one (here: the count is used up).
  Decision denied_before = t.decide(2, syn, ofp::kCtTrk | ofp::kCtNew, markOf(1, false, false));
  EXPECT_FALSE(denied_before.again);
  EXPECT_EQ(denied_before.action, Action::kDeny);
}

TEST(Decider, AConnectionIntoTheCellIsDecidedAgainByItsInboundRules) {
  Again t;
  t.policy("default = \"deny\"\n[[allow]]\ndirection = \"inbound\"\nproto = \"tcp\"\nports = 8080\n");
  // From the uplink, the original direction: a connection into the cell's port 8080.
  auto in = packet::buildTcp4(t.net.toCell(t.net.web), ip("198.51.100.7"), t.net.web.ip, 50000, 8080, packet::kTcpAck);
  Decision d = t.decide(1, in, kEst, markOf(1, true, false));
  EXPECT_EQ(d.action, Action::kAllow);
  EXPECT_TRUE(d.inbound);
  EXPECT_EQ(outputs(d.packet_outs.at(0).actions), std::vector<std::uint32_t>{2});
  // The cell's answers (conntrack: replies) belong to the same inbound connection.
  auto out = packet::buildTcp4(t.net.fromCell(t.net.web), t.net.web.ip, ip("198.51.100.7"), 8080, 50000, packet::kTcpAck);
  EXPECT_EQ(t.decide(2, out, kEst | ofp::kCtRpl, markOf(1, true, false)).action, Action::kAllow);
  t.policy("default = \"deny\"\n");
  EXPECT_EQ(t.decide(2, out, kEst | ofp::kCtRpl, markOf(1, true, false)).action, Action::kDeny);
}

TEST(Decider, CellToCellIsDecidedAgainByTheOpenersRules) {
  Again t;
  // db opened a connection to web:5000; web's rules allow nothing, db's allow nothing either.
  auto from_db = packet::buildTcp4(t.net.fromCell(t.net.db), t.net.db.ip, t.net.web.ip, 40000, 5000, packet::kTcpAck);
  EXPECT_EQ(t.decide(3, from_db, kEst, markOf(1, true, false), kTablePeer).action, Action::kDeny);
  // web's rules allow web -> db:8000; db's answers to it, in web's zone (table 5): replies.
  auto answer = packet::buildTcp4(t.net.fromCell(t.net.db), t.net.db.ip, t.net.web.ip, 8000, 40000, packet::kTcpAck);
  Decision d = t.decide(3, answer, kEst | ofp::kCtRpl, markOf(1, true, false), kTablePeer);
  EXPECT_EQ(d.action, Action::kAllow);
  EXPECT_EQ(commits(d.packet_outs.at(0)).size(), 2u);  // both zones
  // No entry in web's zone at all: either end's rules may have opened it.
  EXPECT_EQ(t.decide(3, answer, ofp::kCtTrk | ofp::kCtNew, 0, kTablePeer).action, Action::kAllow);
  EXPECT_EQ(t.decide(3, from_db, ofp::kCtTrk | ofp::kCtNew, 0, kTablePeer).action, Action::kDeny);
}

}  // namespace
}  // namespace cw::decide
