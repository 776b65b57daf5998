// Queries to the environment's resolver from a cell whose names are checked (resolve =
// "rules"): a table of {what, query, verdict, where it goes}, then the odd cases.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "decide/decider.h"
#include "dns/build.h"
#include "dns/dns.h"
#include "fixture.h"
#include "packet/frame.h"

namespace cw::decide {
namespace {

using policy::Action;
using testing::Net;

constexpr std::uint16_t kQueryPort = 41000;

std::vector<std::uint8_t> udpQuery(const Net& n, const std::vector<std::uint8_t>& message) {
  return packet::buildUdp4(n.fromCell(n.api), n.api.ip, n.gw.ip, kQueryPort, 53, Bytes(message));
}

std::vector<std::uint8_t> query(const Net& n, const std::string& name, std::uint16_t type = dns::kTypeA) {
  return udpQuery(n, dns::buildQuery(0x5151, name, type));
}

enum class Goes { kToResolver, kRefusedToCell, kResetToCell, kNowhere };

struct Case {
  const char* what;
  std::function<std::vector<std::uint8_t>(const Net&)> frame;
  Action action;
  Reason reason;
  std::string names;   // the query's name, as logged
  std::string detail;  // why a query that did not read cleanly was refused
  Goes goes;
  std::uint32_t rule_id = 0;
};

std::vector<std::uint8_t> twoQuestions(const Net& n) {
  auto m = dns::buildQuery(0x5151, "api.example.test", dns::kTypeA);
  auto second = dns::buildQuery(0x5151, "secret.evil.test", dns::kTypeA);
  m[5] = 2;  // QDCOUNT
  m.insert(m.end(), second.begin() + 12, second.end());
  return udpQuery(n, m);
}

std::vector<std::uint8_t> asResponse(const Net& n) {
  auto m = dns::buildQuery(0x5151, "api.example.test", dns::kTypeA);
  m[2] |= 0x80;  // QR
  return udpQuery(n, m);
}

const std::vector<Case>& cases() {
  static const std::vector<Case> k = {
      {"a name an allow rule names", [](const Net& n) { return query(n, "api.example.test"); },
       Action::kAllow, Reason::kDnsQuery, "api.example.test", "", Goes::kToResolver, 1},
      {"the same in upper case, with the root's dot",
       [](const Net& n) { return query(n, "API.Example.TEST."); }, Action::kAllow, Reason::kDnsQuery,
       "api.example.test", "", Goes::kToResolver, 1},
      {"any record type of an allowed name",
       [](const Net& n) { return query(n, "api.example.test", dns::kTypeTxt); }, Action::kAllow,
       Reason::kDnsQuery, "api.example.test", "", Goes::kToResolver, 1},
      {"a name below an allowed wildcard", [](const Net& n) { return query(n, "a.b.cdn.example.test"); },
       Action::kAllow, Reason::kDnsQuery, "a.b.cdn.example.test", "", Goes::kToResolver, 2},
      {"a wildcard does not name its apex", [](const Net& n) { return query(n, "cdn.example.test"); },
       Action::kReject, Reason::kDnsRefused, "cdn.example.test", "", Goes::kRefusedToCell},
      {"a name only a deny rule names", [](const Net& n) { return query(n, "other.example.test"); },
       Action::kReject, Reason::kDnsRefused, "other.example.test", "", Goes::kRefusedToCell},
      {"a name no rule names", [](const Net& n) { return query(n, "secret-data.evil.test"); },
       Action::kReject, Reason::kDnsRefused, "secret-data.evil.test", "", Goes::kRefusedToCell},
      {"an exfiltration-looking label under an allowed apex's sibling",
       [](const Net& n) { return query(n, "mzxw6ytboi4dcnjv.api.example.test.evil.test", dns::kTypeTxt); },
       Action::kReject, Reason::kDnsRefused, "mzxw6ytboi4dcnjv.api.example.test.evil.test", "",
       Goes::kRefusedToCell},
      {"two questions", twoQuestions, Action::kReject, Reason::kDnsRefused, "", "too_many_questions",
       Goes::kRefusedToCell},
      {"a response sent towards the resolver", asResponse, Action::kReject, Reason::kDnsRefused, "",
       "not_query", Goes::kRefusedToCell},
      {"not even a header",
       [](const Net& n) { return udpQuery(n, {0x51, 0x51, 0x01}); }, Action::kDeny, Reason::kDnsRefused, "",
       "truncated_header", Goes::kNowhere},
      {"DNS over TCP is reset",
       [](const Net& n) {
         return packet::buildTcp4(n.fromCell(n.api), n.api.ip, n.gw.ip, kQueryPort, 53, packet::kTcpSyn, 7);
       },
       Action::kReject, Reason::kDnsTcpRefused, "", "", Goes::kResetToCell},
  };
  return k;
}

TEST(ResolverQuery, Fixtures) {
  Net net;
  Decider decider;
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.what);
    const auto bytes = c.frame(net);
    auto frame = packet::parseFrame(bytes);
    ASSERT_TRUE(frame) << packet::parseErrorName(frame.error());
    const Decision d = decider.decide(net.view, net.api.ofport, *frame);
    EXPECT_TRUE(d.dns_query);
    EXPECT_EQ(d.action, c.action);
    EXPECT_EQ(d.reason, c.reason) << reasonName(d.reason);
    EXPECT_EQ(d.names, c.names);
    EXPECT_EQ(d.detail, c.detail);
    EXPECT_EQ(d.query_error.has_value(), !c.detail.empty());  // counted per stable name
    EXPECT_EQ(d.rule_id, c.rule_id);
    EXPECT_TRUE(d.legs.empty());  // nothing committed, nothing remembered: each query is checked
    if (c.goes == Goes::kNowhere) {
      EXPECT_TRUE(d.packet_outs.empty());
      continue;
    }
    ASSERT_EQ(d.packet_outs.size(), 1u);
    const ofp::PacketOut& po = d.packet_outs[0];
    ASSERT_EQ(po.actions.size(), 1u);
    const auto out = std::get<ofp::ActionOutput>(po.actions[0]).port;
    if (c.goes == Goes::kToResolver) {
      EXPECT_EQ(out, net.gw.ofport);
      EXPECT_EQ(po.in_port, net.api.ofport);
      EXPECT_EQ(po.data, bytes);  // unchanged
      continue;
    }
    EXPECT_EQ(out, net.api.ofport);
    EXPECT_EQ(po.in_port, ofp::kPortController);
    auto reply = packet::parseFrame(po.data);
    ASSERT_TRUE(reply);
    // As if the resolver had answered: its MAC, address and port, to the asking socket.
    EXPECT_EQ(reply->eth_src, net.gw.mac);
    EXPECT_EQ(reply->eth_dst, net.api.mac);
    EXPECT_EQ(reply->ip_src.v4(), net.gw.ip);
    EXPECT_EQ(reply->ip_dst.v4(), net.api.ip);
    EXPECT_EQ(reply->src_port, 53);
    EXPECT_EQ(reply->dst_port, kQueryPort);
    if (c.goes == Goes::kResetToCell) {
      EXPECT_TRUE(reply->isTcp());
      EXPECT_NE(reply->tcp_flags & packet::kTcpRst, 0);
      continue;
    }
    ASSERT_TRUE(reply->isUdp());
    ASSERT_GE(reply->payload.size(), dns::kHeaderSize);
    EXPECT_EQ(reply->payload[0], 0x51);  // the query's id
    EXPECT_EQ(reply->payload[1], 0x51);
    EXPECT_EQ(reply->payload[3] & 0x0f, dns::kRcodeRefused);
    if (!c.names.empty()) {
      auto answer = dns::parseResponse(reply->payload);
      ASSERT_TRUE(answer) << dns::parseErrorName(answer.error());
      EXPECT_EQ(answer->qname, c.names);
      EXPECT_TRUE(answer->mappings.empty());
    }
  }
}

TEST(ResolverQuery, ACellThatMayResolveAnyNameKeepsTheFastPath) {
  Net net;
  auto bytes = packet::buildUdp4(net.fromCell(net.web), net.web.ip, net.gw.ip, kQueryPort, 53,
                                 Bytes(dns::buildQuery(1, "secret-data.evil.test", dns::kTypeA)));
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  const Decision d = Decider().decide(net.view, net.web.ofport, *frame);
  EXPECT_FALSE(d.dns_query);
  EXPECT_EQ(d.reason, Reason::kEnvResolver);
  EXPECT_EQ(d.action, Action::kAllow);
}

TEST(ResolverQuery, EdnsOptionsAreRemovedFromWhatGoesOn) {
  Net net;
  auto message = dns::buildQuery(0x5151, "api.example.test", dns::kTypeA);
  message[11] = 1;  // ARCOUNT
  // OPT: root owner, UDP size 1232, a COOKIE option with 8 bytes the client chose.
  const std::vector<std::uint8_t> opt = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
  message.insert(message.end(), opt.begin(), opt.end());
  auto bytes = udpQuery(net, message);
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  const Decision d = Decider().decide(net.view, net.api.ofport, *frame);
  ASSERT_EQ(d.reason, Reason::kDnsQuery);
  ASSERT_EQ(d.packet_outs.size(), 1u);
  auto sent = packet::parseFrame(d.packet_outs[0].data);
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->ip_src.v4(), net.api.ip);
  EXPECT_EQ(sent->ip_dst.v4(), net.gw.ip);
  EXPECT_EQ(sent->src_port, kQueryPort);
  EXPECT_EQ(sent->eth_dst, net.gw.mac);
  auto q = dns::parseQuery(sent->payload);
  ASSERT_TRUE(q) << dns::parseErrorName(q.error());
  EXPECT_EQ(q->qname, "api.example.test");
  EXPECT_TRUE(q->edns);
  EXPECT_EQ(q->opt_rdata_size, 0);
  EXPECT_EQ(sent->payload.size(), message.size() - 12);
}

TEST(ResolverQuery, ARuleWhoseTimeRanOutNoLongerNamesAnything) {
  Net net;
  auto p = std::make_shared<CompiledPolicy>(*net.api.policy);
  auto limit = std::make_shared<RuleLimit>();
  limit->until_ms = 1000;
  p->limits[1] = limit;  // the api.example.test rule ended at unix 1 s
  CellPort cell = net.api;
  cell.policy = p;
  net.view.cells_by_port[cell.ofport] = cell;
  auto bytes = query(net, "api.example.test");
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  const Decision late = Decider().decide(net.view, cell.ofport, *frame, Now{0, 2000});
  EXPECT_EQ(late.reason, Reason::kDnsRefused);
  const Decision early = Decider().decide(net.view, cell.ofport, *frame, Now{0, 500});
  EXPECT_EQ(early.reason, Reason::kDnsQuery);
  EXPECT_EQ(limit->used.load(), 0u);  // a lookup is no connection: nothing charged
}

TEST(ResolverQuery, AFragmentIsRefusedWhole) {
  Net net;
  auto bytes = query(net, "api.example.test");
  // More fragments follow (MF), so the query seen here may not be all that would arrive.
  bytes[14 + 6] |= 0x20;
  const std::size_t ip_header = 14;
  std::uint32_t sum = 0;
  bytes[ip_header + 10] = bytes[ip_header + 11] = 0;
  sum = packet::checksumPartial(Bytes(bytes).subspan(ip_header, 20));
  const std::uint16_t c = packet::checksumFinish(sum);
  bytes[ip_header + 10] = static_cast<std::uint8_t>(c >> 8);
  bytes[ip_header + 11] = static_cast<std::uint8_t>(c);
  auto frame = packet::parseFrame(bytes);
  ASSERT_TRUE(frame);
  ASSERT_TRUE(frame->ip_fragment);
  const Decision d = Decider().decide(net.view, net.api.ofport, *frame);
  EXPECT_EQ(d.reason, Reason::kDnsRefused);
  EXPECT_EQ(d.detail, "fragment");
}

}  // namespace
}  // namespace cw::decide
