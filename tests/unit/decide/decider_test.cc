#include "decide/decider.h"

#include <gtest/gtest.h>

#include <functional>
#include <iterator>

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
  std::size_t flows;        // FLOW_MODs
  std::size_t packet_outs;  // PACKET_OUTs
  std::uint32_t out_port;   // first flow's output port (0: drop / none)
};

std::uint32_t firstOutput(const Decision& d) {
  if (d.flows.empty() || d.flows[0].instructions.empty()) return 0;
  const auto* apply = std::get_if<ofp::InstrApplyActions>(&d.flows[0].instructions[0]);
  if (apply == nullptr) return 0;
  for (const auto& a : apply->actions)
    if (const auto* o = std::get_if<ofp::ActionOutput>(&a)) return o->port;
  return 0;
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
       Action::kDeny, Reason::kPolicyDefault, 1, 0, 0},
      {"udp allowed by a proto-only rule", 2,
       [](const Net& n) { return packet::buildUdp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.53"), 5000, 53); },
       Action::kAllow, Reason::kPolicyRule, 2, 1, 1},
      {"icmp to an address with only tcp rules: default", 2,
       [](const Net& n) { return packet::buildIcmp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.10"), 8, 0); },
       Action::kDeny, Reason::kPolicyDefault, 1, 0, 0},
      {"reject answers without a flow", 2,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.web), n.web.ip, ip("192.0.2.66"), 40000, 80, packet::kTcpSyn, 1000); },
       Action::kReject, Reason::kPolicyRule, 0, 1, 0},
      {"dns to the environment resolver", 2,
       [](const Net& n) { return packet::buildUdp4(n.fromCell(n.web), n.web.ip, n.gw.ip, 5000, 53); },
       Action::kAllow, Reason::kEnvResolver, 2, 1, 1},
      {"anything else to the gateway is refused", 2,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.web), n.web.ip, n.gw.ip, 40000, 22, packet::kTcpSyn); },
       Action::kDeny, Reason::kGatewayService, 1, 0, 0},
      {"cell to cell when allowed goes straight across", 2,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.web), n.web.ip, n.db.ip, 40000, 8000, packet::kTcpSyn); },
       Action::kAllow, Reason::kPolicyRule, 2, 1, 3},
      {"cell to cell not allowed", 3,
       [](const Net& n) { return packet::buildTcp4(n.fromCell(n.db), n.db.ip, n.web.ip, 40000, 80, packet::kTcpSyn); },
       Action::kDeny, Reason::kPolicyDefault, 1, 0, 0},
      {"reply from the uplink to an allowed connection", 1,
       [](const Net& n) { return packet::buildTcp4(n.toCell(n.web), ip("192.0.2.10"), n.web.ip, 443, 40000, packet::kTcpAck); },
       Action::kAllow, Reason::kReturnTraffic, 2, 1, 2},
      {"a SYN from the uplink is an inbound opening: refused", 1,
       [](const Net& n) { return packet::buildTcp4(n.toCell(n.web), ip("192.0.2.10"), n.web.ip, 443, 40000, packet::kTcpSyn); },
       Action::kDeny, Reason::kInboundRefused, 1, 0, 0},
      {"from the uplink, not the reverse of anything allowed", 1,
       [](const Net& n) { return packet::buildTcp4(n.toCell(n.web), ip("198.51.100.1"), n.web.ip, 443, 40000, packet::kTcpAck); },
       Action::kDeny, Reason::kInboundRefused, 1, 0, 0},
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
    EXPECT_EQ(d.flows.size(), c.flows);
    EXPECT_EQ(d.packet_outs.size(), c.packet_outs);
    EXPECT_EQ(firstOutput(d), c.out_port);
  }
}

TEST(Decider, AllowedPairIsExactBothWays) {
  Net net;
  auto bytes = packet::buildTcp4(net.fromCell(net.web), net.web.ip, ip("192.0.2.10"), 40000, 443,
                                 packet::kTcpSyn);
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  Decision d = Decider().decide(net.view, 2, *frame);
  ASSERT_EQ(d.flows.size(), 2u);
  const auto& fwd = d.flows[0].match;
  EXPECT_EQ(fwd.in_port, 2u);
  EXPECT_EQ(fwd.ipv4_src, net.web.ip);
  EXPECT_EQ(fwd.ipv4_dst, ip("192.0.2.10"));
  EXPECT_EQ(fwd.tcp_src, 40000);
  EXPECT_EQ(fwd.tcp_dst, 443);
  const auto& rev = d.flows[1].match;
  EXPECT_EQ(rev.in_port, 1u);
  EXPECT_EQ(rev.ipv4_src, ip("192.0.2.10"));
  EXPECT_EQ(rev.ipv4_dst, net.web.ip);
  EXPECT_EQ(rev.tcp_src, 443);
  EXPECT_EQ(rev.tcp_dst, 40000);
  EXPECT_EQ(d.flows[0].idle_timeout, Timeouts{}.tcp_idle);
  EXPECT_EQ(d.flows[0].table_id, kTableConn);
  // The cookie names the cell and the deciding rule (rule 1: the first [[allow]]).
  EXPECT_EQ(cookieCell(d.flows[0].cookie), net.web.cell_id);
  EXPECT_EQ(d.flows[0].cookie & kCookieRuleMask, 1u);
  EXPECT_EQ(d.rule_id, 1u);
  // The held packet is re-injected through the tables, unchanged.
  ASSERT_EQ(d.packet_outs.size(), 1u);
  EXPECT_EQ(d.packet_outs[0].in_port, 2u);
  EXPECT_EQ(d.packet_outs[0].data, bytes);
}

std::vector<std::uint32_t> outputs(const ofp::FlowMod& fm) {
  std::vector<std::uint32_t> out;
  for (const auto& i : fm.instructions)
    if (const auto* apply = std::get_if<ofp::InstrApplyActions>(&i))
      for (const auto& a : apply->actions)
        if (const auto* o = std::get_if<ofp::ActionOutput>(&a)) out.push_back(o->port);
  return out;
}

TEST(Decider, ResolverAnswersAreCopiedToTheControllerOnly) {
  Net net;
  // A query to the environment's resolver: the answer direction also goes to the controller.
  auto q = packet::buildUdp4(net.fromCell(net.web), net.web.ip, net.gw.ip, 5000, 53);
  auto qf = packet::parseFrame(q);
  ASSERT_TRUE(qf);
  Decision d = Decider().decide(net.view, 2, *qf);
  ASSERT_EQ(d.flows.size(), 2u);
  EXPECT_FALSE(d.dns_answer);
  EXPECT_EQ(cookieKind(d.flows[0].cookie), CookieKind::kConnAllow);
  EXPECT_EQ(outputs(d.flows[0]), std::vector<std::uint32_t>{1});
  EXPECT_EQ(cookieKind(d.flows[1].cookie), CookieKind::kDnsAnswer);
  EXPECT_EQ(cookieCell(d.flows[1].cookie), net.web.cell_id);
  EXPECT_EQ(outputs(d.flows[1]), (std::vector<std::uint32_t>{2, ofp::kPortController}));

  // An answer whose flows expired comes back as a miss: allowed, snooped, same flows.
  auto a = packet::buildUdp4(net.toCell(net.web), net.gw.ip, net.web.ip, 53, 5000);
  auto af = packet::parseFrame(a);
  ASSERT_TRUE(af);
  Decision r = Decider().decide(net.view, 1, *af);
  EXPECT_TRUE(r.dns_answer);
  ASSERT_EQ(r.flows.size(), 2u);
  EXPECT_EQ(cookieKind(r.flows[0].cookie), CookieKind::kDnsAnswer);
  EXPECT_EQ(outputs(r.flows[0]), (std::vector<std::uint32_t>{2, ofp::kPortController}));
  EXPECT_EQ(cookieKind(r.flows[1].cookie), CookieKind::kConnAllow);

  // DNS from anywhere else is an ordinary connection: never copied, never a name source.
  auto other = packet::buildUdp4(net.toCell(net.web), ip("192.0.2.53"), net.web.ip, 53, 5000);
  auto of = packet::parseFrame(other);
  ASSERT_TRUE(of);
  Decision o = Decider().decide(net.view, 1, *of);
  EXPECT_FALSE(o.dns_answer);
  for (const auto& fm : o.flows) {
    EXPECT_NE(cookieKind(fm.cookie), CookieKind::kDnsAnswer);
    for (auto port : outputs(fm)) EXPECT_NE(port, ofp::kPortController);
  }
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
  EXPECT_TRUE(held.flows.empty());
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
  EXPECT_EQ(a.flows.size(), 2u);  // both directions, as for a rule
  EXPECT_EQ(a.packet_outs.size(), 1u);  // the held packet goes on
  EXPECT_EQ(firstOutput(a), 1u);  // to the gateway

  const HeldVerdict reject{Action::kReject, Reason::kPromptTimeout};
  Decision r = Decider().decide(net.view, 2, *f, {}, &reject);
  EXPECT_EQ(r.reason, Reason::kPromptTimeout);
  EXPECT_TRUE(r.flows.empty());
  ASSERT_EQ(r.packet_outs.size(), 1u);  // the RST
  auto rst = packet::parseFrame(r.packet_outs[0].data);
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->tcp_flags, packet::kTcpRst | packet::kTcpAck);

  const HeldVerdict deny{Action::kDeny, Reason::kPromptTimeout};
  Decision dn = Decider().decide(net.view, 2, *f, {}, &deny);
  EXPECT_EQ(dn.flows.size(), 1u);  // a drop flow for the connection
  EXPECT_TRUE(dn.packet_outs.empty());
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

TEST(Decider, CellToCellRewritesMacsAsTheGatewayWould) {
  Net net;
  auto bytes = packet::buildTcp4(net.fromCell(net.web), net.web.ip, net.db.ip, 40000, 8000,
                                 packet::kTcpSyn);
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  Decision d = Decider().decide(net.view, 2, *frame);
  ASSERT_EQ(d.flows.size(), 2u);
  const auto& acts = std::get<ofp::InstrApplyActions>(d.flows[0].instructions[0]).actions;
  ASSERT_EQ(acts.size(), 3u);
  EXPECT_EQ(std::get<ofp::ActionSetField>(acts[0]).field.eth_src, net.gw.mac);
  EXPECT_EQ(std::get<ofp::ActionSetField>(acts[1]).field.eth_dst, net.db.mac);
  const auto& back = std::get<ofp::InstrApplyActions>(d.flows[1].instructions[0]).actions;
  EXPECT_EQ(std::get<ofp::ActionSetField>(back[1]).field.eth_dst, net.web.mac);
}

}  // namespace
}  // namespace cw::decide
