// Rule flows (src/decide/rule_flows.h) are proved exact against the controller itself: a small
// flow-table simulator (priorities, masked matches on the fields rule flows use, hard timeouts,
// OVS's replace-on-same-match-and-priority) runs each packet through the flows, and the real
// Decider decides the same packet as a Packet-In. Wherever the switch decides, it must decide
// as the Decider does, rule included; wherever it sends the packet to the controller, the flow
// that did must be one whose reason the header lists. Two flows of equal priority matching the
// same packet fail the test: OpenFlow leaves their order undefined.
#include "decide/rule_flows.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>

#include "decide/decider.h"
#include "fixture.h"
#include "ofp/codec.h"

namespace cw::decide {
namespace {

using policy::Action;
using policy::DefaultAction;
using policy::Direction;
using policy::Protocol;
using testing::ip;

constexpr std::uint8_t kProtoGre = 47;
constexpr std::uint32_t kMeter = 9;
constexpr std::int64_t kNow = 1'800'000'000'000;  // unix ms
constexpr std::int64_t kMono = 5'000'000;

struct Pkt {
  std::uint32_t in_port = 0;
  std::uint8_t proto = packet::kProtoTcp;
  Ip4 src, dst;
  std::uint16_t sport = 40000, dport = 80;
};

bool fieldMatches(const ofp::Match& m, const Pkt& p) {
  using ofp::Field;
  for (unsigned i = 0; i < static_cast<unsigned>(Field::kCount); ++i) {
    auto f = static_cast<Field>(i);
    if (!m.has(f)) continue;
    switch (f) {
      case Field::kInPort:
        if (m.in_port != p.in_port) return false;
        break;
      case Field::kEthType:
        if (m.eth_type != packet::kEthIpv4) return false;
        break;
      case Field::kIpProto:
        if (m.ip_proto != p.proto) return false;
        break;
      case Field::kIpv4Src:
        if ((p.src.v & m.ipv4_src_mask.v) != m.ipv4_src.v) return false;
        break;
      case Field::kIpv4Dst:
        if ((p.dst.v & m.ipv4_dst_mask.v) != m.ipv4_dst.v) return false;
        break;
      case Field::kTcpDst:
        EXPECT_TRUE(m.has(Field::kIpProto) && m.ip_proto == packet::kProtoTcp)
            << "tcp_dst without ip_proto=6";
        if (p.proto != packet::kProtoTcp || (p.dport & m.tcp_dst_mask) != m.tcp_dst) return false;
        break;
      case Field::kUdpDst:
        EXPECT_TRUE(m.has(Field::kIpProto) && m.ip_proto == packet::kProtoUdp)
            << "udp_dst without ip_proto=17";
        if (p.proto != packet::kProtoUdp || (p.dport & m.udp_dst_mask) != m.udp_dst) return false;
        break;
      default:
        ADD_FAILURE() << "the simulator does not model " << ofp::fieldName(f);
        return false;
    }
  }
  return true;
}

// One flow table, as Open vSwitch keeps it for these flows.
class Table {
 public:
  void install(const std::vector<ofp::FlowMod>& flows, std::int64_t at_ms) {
    for (const auto& fm : flows) {
      EXPECT_EQ(fm.table_id, kTableRules);
      EXPECT_EQ(fm.command, ofp::FlowModCommand::kAdd);
      Entry e{fm, fm.hard_timeout == 0 ? 0 : at_ms + std::int64_t{fm.hard_timeout} * 1000};
      auto same = std::find_if(flows_.begin(), flows_.end(), [&](const Entry& o) {
        return o.fm.priority == fm.priority && o.fm.match == fm.match;
      });
      if (same != flows_.end())
        *same = e;  // an add with the same match and priority replaces
      else
        flows_.push_back(e);
    }
  }
  // The flow a packet meets at t_ms; null: none (the table has no miss flow of ours).
  const ofp::FlowMod* lookup(const Pkt& p, std::int64_t t_ms) const {
    const Entry* best = nullptr;
    for (const Entry& e : flows_) {
      if (e.expires_ms != 0 && t_ms >= e.expires_ms) continue;
      if (!fieldMatches(e.fm.match, p)) continue;
      if (best != nullptr && best->fm.priority == e.fm.priority) {
        ADD_FAILURE() << "two flows of priority " << e.fm.priority
                      << " match the same packet: " << ofp::formatMatch(best->fm.match) << " / "
                      << ofp::formatMatch(e.fm.match);
      }
      if (best == nullptr || e.fm.priority > best->fm.priority) best = &e;
    }
    return best == nullptr ? nullptr : &best->fm;
  }
  std::size_t size() const { return flows_.size(); }
  // Whether the flow right above `fm` with its match (a timed rule's own, or a name's) is gone
  // at t_ms, or was never there.
  bool ownFlowGone(const ofp::FlowMod& fm, std::int64_t t_ms) const {
    return std::none_of(flows_.begin(), flows_.end(), [&](const Entry& e) {
      return e.fm.priority == fm.priority + 1 && e.fm.match == fm.match &&
             e.fm.cookie != fm.cookie && (e.expires_ms == 0 || t_ms < e.expires_ms);
    });
  }

 private:
  struct Entry {
    ofp::FlowMod fm;
    std::int64_t expires_ms;
  };
  std::vector<Entry> flows_;
};

enum class Kind { kAllow, kDeny, kController, kNothing };
struct Outcome {
  Kind kind = Kind::kNothing;
  std::uint32_t rule = 0;
};

// What a flow does, checked against the header's three shapes.
Outcome outcomeOf(const ofp::FlowMod& fm, const CellPort& cell) {
  Outcome o;
  o.rule = static_cast<std::uint32_t>(fm.cookie & kCookieRuleMask);
  EXPECT_EQ(cookieCell(fm.cookie), cell.cell_id);
  const auto& ins = fm.instructions;
  if (!ins.empty() && std::holds_alternative<ofp::InstrMeter>(ins[0])) {
    EXPECT_EQ(cookieKind(fm.cookie), kCookieRulesAsk);
    EXPECT_EQ(std::get<ofp::InstrMeter>(ins[0]).meter_id, kMeter);
    EXPECT_EQ(ins.size(), 2u);
    const auto& acts = std::get<ofp::InstrApplyActions>(ins[1]).actions;
    EXPECT_EQ(acts.size(), 1u);
    EXPECT_EQ(std::get<ofp::ActionOutput>(acts[0]).port, ofp::kPortController);
    EXPECT_EQ(std::get<ofp::ActionOutput>(acts[0]).max_len, ofp::kControllerMaxLenNoBuffer);
    o.kind = Kind::kController;
    return o;
  }
  EXPECT_EQ(cookieKind(fm.cookie), kCookieRules);
  EXPECT_EQ(ins.size(), 1u);
  const auto& acts = std::get<ofp::InstrApplyActions>(ins.at(0)).actions;
  // The commit first; an allowed packet then goes through the route table (resubmit) before the
  // copy for the log, which goes through the cell's meter (only the copy: never the packet).
  const auto& copy = acts.back();
  EXPECT_EQ(std::get<ofp::ActionController2>(copy).meter_id, kMeter);
  EXPECT_EQ(std::get<ofp::ActionController2>(copy).max_len, kCopyLength);
  const auto& ct = std::get<ofp::ActionCt>(acts.at(0));
  EXPECT_EQ(ct.flags, ofp::kCtCommit);
  EXPECT_EQ(ct.zone, zoneOf(cell));
  EXPECT_EQ(ct.table, ofp::kCtNoRecirc);
  const std::uint32_t mark = ct.exec.at(0).field.ct_mark;
  // The label names the flow's rule (0: the default), as the controller's commit would.
  EXPECT_EQ(ct.exec.size(), 2u);
  EXPECT_EQ(ct.exec.at(1).field.ct_label_lo, labelOf(LabelSource::kRule, static_cast<std::uint32_t>(fm.cookie)));
  EXPECT_EQ(ct.exec.at(1).field.ct_label_hi, 0u);
  const bool routed = acts.size() == 3 && std::holds_alternative<ofp::ActionResubmit>(acts.at(1)) &&
                      std::get<ofp::ActionResubmit>(acts.at(1)).table == kTableRoute;
  if (mark == markOf(cell.epoch, true, false) && routed)
    o.kind = Kind::kAllow;
  else if (mark == markOf(cell.epoch, false, false) && acts.size() == 2)
    o.kind = Kind::kDeny;
  else
    ADD_FAILURE() << "a commit flow that is neither allow nor deny";
  return o;
}

std::vector<std::uint8_t> frameOf(const Pkt& p, const packet::EthSpec& eth) {
  switch (p.proto) {
    case packet::kProtoTcp:
      return packet::buildTcp4(eth, p.src, p.dst, p.sport, p.dport, packet::kTcpSyn);
    case packet::kProtoUdp:
      return packet::buildUdp4(eth, p.src, p.dst, p.sport, p.dport);
    case packet::kProtoIcmp:
      return packet::buildIcmp4(eth, p.src, p.dst, 8, 0);
    default: {
      // Another IP protocol: a UDP datagram with its protocol number changed and the IPv4
      // header checksum fixed.
      auto raw = packet::buildUdp4(eth, p.src, p.dst, p.sport, p.dport);
      raw[14 + 9] = p.proto;
      raw[14 + 10] = raw[14 + 11] = 0;
      std::uint32_t sum = 0;
      for (std::size_t i = 0; i < 20; i += 2)
        sum += std::uint32_t{raw[14 + i]} << 8 | raw[14 + i + 1];
      while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
      raw[14 + 10] = static_cast<std::uint8_t>(~sum >> 8);
      raw[14 + 11] = static_cast<std::uint8_t>(~sum);
      return raw;
    }
  }
}

// One cell (port 2) on one gateway (port 1), with a policy and the names it resolved.
struct World {
  testing::Net net;
  CellPort cell;
  SwitchView sw;
  Decider decider;
  std::shared_ptr<CompiledPolicy> policy;

  explicit World(policy::AppPolicy app,
                 std::vector<std::tuple<std::uint32_t, std::int64_t, std::uint32_t, std::uint32_t>>
                     limits = {}) {
    policy = std::make_shared<CompiledPolicy>();
    policy->matcher = std::make_shared<const policy::Matcher>(std::move(app));
    for (auto [id, until, max, used] : limits) {
      auto l = std::make_shared<RuleLimit>();
      l->until_ms = until;
      l->max = max;
      l->used = used;
      policy->limits[id] = l;
    }
    cell = net.web;
    cell.cell_id = 7;
    cell.epoch = 12345;
    cell.policy = policy;
    names::Limits nl;
    nl.grace_s = 0;  // a name is valid exactly its TTL: the flows must end with it
    cell.runtime = std::make_shared<CellRuntime>(nl);
    sw.dpid = 1;
    sw.gateways_by_port[net.gw.ofport] = net.gw;
    sw.gateway_port_by_env[net.gw.env] = net.gw.ofport;
    sw.cells_by_port[cell.ofport] = cell;
    sw.cell_port_by_ip[cell.ip.v] = cell.ofport;
  }
  // The cell resolved `name` to `a` for ttl_s seconds (at kNow / kMono); returns the flows the
  // daemon would send: those for every name the cell has for `a`, each with its time left.
  // `ago_ms`: the answer came that long before now, so the name has a fraction of a second left.
  std::vector<ofp::FlowMod> resolve(const std::string& name, Ip4 a, std::uint32_t ttl_s = 3600,
                                    std::int64_t ago_ms = 0) {
    {
      std::lock_guard lock(cell.runtime->mu);
      cell.runtime->names.record(name, IpAddr(a), ttl_s, kMono - ago_ms);
    }
    auto& mine = valid[a.v];
    mine[name] = std::max(mine[name], std::int64_t{ttl_s} * 1000 - ago_ms);
    std::vector<ResolvedName> all;
    for (const auto& [n, ms] : mine) all.push_back(ResolvedName{n, ms});
    return nameFlows(*policy, cell, net.gw, kMeter, all, a, kNow);
  }
  std::map<std::uint32_t, std::map<std::string, std::int64_t>> valid;  // address -> name -> ms

  // What the controller does with the packet as a Packet-In (a count it charged is given back:
  // the switch would have asked the controller for that one anyway).
  Decision reference(const Pkt& p, std::int64_t t) const {
    const bool out = p.in_port == cell.ofport;
    auto raw = frameOf(p, out ? net.fromCell(cell) : net.toCell(cell));
    auto f = packet::parseFrame(raw);
    EXPECT_TRUE(f);
    Decision d = decider.decide(sw, p.in_port, *f, Now{kMono + (t - kNow), t});
    if (d.counted_rule != 0) policy->limitOf(d.counted_rule)->used.fetch_sub(1);
    return d;
  }
};

// Why the switch may send a packet to the controller (rule_flows.h); "" when it may not.
std::string controllerReason(const World& w, const Table& table, const ofp::FlowMod& fm,
                             const Pkt& p, std::int64_t t, const RuleFlows& rf) {
  if (rf.all_to_controller) return "all";
  const std::uint32_t id = static_cast<std::uint32_t>(fm.cookie & kCookieRuleMask);
  if (id != 0) {
    const policy::Rule* r = nullptr;
    for (const auto& x : w.policy->matcher->policy().rules)
      if (x.id == id) r = &x;
    if (r == nullptr) return "";
    const RuleLimit* l = w.policy->limitOf(id);
    if (r->action == Action::kReject) return "reject";
    if (l != nullptr && l->max != 0) return "counted";
    // The last second of a timed rule, or of the name a host rule's flow stands for: the flow
    // that decides (whole seconds, rounded down) has gone, this one is right under it.
    if (!table.ownFlowGone(fm, t)) return "";
    if (l != nullptr && l->until_ms != 0) return "until";
    return r->match.hosts.empty() ? "" : "name";
  }
  const bool out = p.in_port == w.cell.ofport;
  if (fm.priority == kPrioRuleGuard)
    return (out ? p.dst == w.net.gw.ip : p.src == w.net.gw.ip) ? "gateway" : "";
  if (!out) return p.proto != packet::kProtoTcp ? "inbound-not-tcp" : "";
  auto def = w.policy->matcher->policy().default_action;
  return def == DefaultAction::kPrompt || def == DefaultAction::kReject ? "default" : "";
}

struct Tally {
  std::size_t packets = 0, in_switch = 0, to_controller = 0;
  std::map<std::string, std::size_t> why;
};

// Runs `p` through the table and the Decider at time t; fails the test on any disagreement.
void check(const World& w, const Table& table, const RuleFlows& rf, const Pkt& p, std::int64_t t,
           Tally& tally, const std::string& what) {
  SCOPED_TRACE(what);
  const ofp::FlowMod* fm = table.lookup(p, t);
  ASSERT_NE(fm, nullptr) << "no flow matched (the defaults should)";
  const Outcome sw = outcomeOf(*fm, w.cell);
  const Decision ref = w.reference(p, t);
  ++tally.packets;
  if (sw.kind == Kind::kController) {
    ++tally.to_controller;
    const std::string why = controllerReason(w, table, *fm, p, t, rf);
    EXPECT_NE(why, "") << "sent to the controller for no listed reason by "
                       << ofp::formatMatch(fm->match) << " priority " << fm->priority;
    ++tally.why[why];
    return;
  }
  ++tally.in_switch;
  const bool plain = !ref.held && ref.counted_rule == 0 && ref.action != Action::kReject &&
                     (ref.reason == Reason::kPolicyRule || ref.reason == Reason::kPolicyDefault ||
                      ref.reason == Reason::kInboundRule || ref.reason == Reason::kInboundRefused);
  EXPECT_TRUE(plain) << "the switch decided what the controller must: " << reasonName(ref.reason);
  EXPECT_EQ(sw.kind == Kind::kAllow, ref.action == Action::kAllow)
      << "switch " << (sw.kind == Kind::kAllow ? "allows" : "denies") << " (rule " << sw.rule
      << ", flow " << ofp::formatMatch(fm->match) << " priority " << fm->priority
      << "), controller says " << policy::actionName(ref.action) << " (rule " << ref.rule_id << ", "
      << reasonName(ref.reason) << ")";
  EXPECT_EQ(sw.rule, ref.rule_id) << "same verdict, another rule";
}

// ---- random policies ----

struct Gen {
  std::mt19937_64 rng;
  explicit Gen(std::uint64_t seed) : rng(seed) {}
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); }
  bool chance(double p) { return std::uniform_real_distribution<>(0, 1)(rng) < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(static_cast<std::uint32_t>(v.size()))];
  }
};

const std::vector<std::string> kNames = {"api.example.org", "www.example.org", "a.cdn.example.org",
                                         "example.org",     "x.test",          "deep.x.test"};
const std::vector<std::pair<std::string, bool>> kHosts = {
    {"api.example.org", false}, {"example.org", true}, {"cdn.example.org", true},
    {"x.test", false},          {"test", true},        {"example.org", false}};

Ip4 randomIp(Gen& g) {
  static const std::vector<std::uint32_t> bases = {0x0a000000, 0x0a010000, 0x0a010200, 0xc0000200,
                                                   0x08080800};
  return Ip4{g.pick(bases) | (g.chance(0.5) ? g.below(4) : g.below(0x400))};
}

policy::AppPolicy randomPolicy(
    Gen& g,
    std::vector<std::tuple<std::uint32_t, std::int64_t, std::uint32_t, std::uint32_t>>& limits) {
  policy::AppPolicy app;
  app.default_action =
      std::vector<DefaultAction>{DefaultAction::kAllow, DefaultAction::kDeny,
                                 DefaultAction::kPrompt, DefaultAction::kReject}[g.below(4)];
  const std::uint32_t n = 1 + g.below(10);
  for (std::uint32_t i = 0; i < n; ++i) {
    policy::Rule r;
    r.id = i + 1;
    r.action = g.chance(0.15) ? Action::kReject : g.chance(0.5) ? Action::kAllow : Action::kDeny;
    r.match.direction = g.chance(0.25) ? Direction::kInbound : Direction::kOutbound;
    r.match.protocol = std::vector<Protocol>{Protocol::kAny, Protocol::kTcp, Protocol::kUdp,
                                             Protocol::kIcmp}[g.below(4)];
    if (r.match.protocol == Protocol::kIcmp && g.chance(0.8)) r.match.protocol = Protocol::kAny;
    const std::uint32_t kind = g.below(10);
    if (kind < 5) {
      for (std::uint32_t k = 1 + g.below(2); k > 0; --k) {
        static const std::vector<std::uint8_t> lens = {0, 8, 16, 22, 24, 30, 32};
        const std::uint8_t len = g.pick(lens);
        const Ip4 a = randomIp(g);
        const std::uint32_t mask = len == 0 ? 0 : ~std::uint32_t{0} << (32 - len);
        r.match.addresses.push_back(Cidr{IpAddr(Ip4{a.v & mask}), len});
      }
      if (g.chance(0.05)) r.match.addresses.push_back(*Cidr::parse("2001:db8::/32"));
    } else if (kind < 7 && r.match.direction == Direction::kOutbound) {
      for (std::uint32_t k = 1 + g.below(2); k > 0; --k) {
        const auto& [name, wild] = g.pick(kHosts);
        r.match.hosts.push_back(policy::HostPattern{name, wild});
      }
    }
    if (r.match.protocol != Protocol::kIcmp && g.chance(0.6)) {
      for (std::uint32_t k = 1 + g.below(3); k > 0; --k) {
        static const std::vector<std::uint16_t> singles = {22, 53, 80, 443, 8080, 0, 65535};
        if (g.chance(0.4)) {
          const std::uint16_t p = g.pick(singles);
          r.match.ports.push_back({p, p});
        } else if (g.chance(0.1)) {
          r.match.ports.push_back({0, 65535});
        } else {
          static const std::vector<std::uint32_t> widths = {2, 10, 100, 1000, 1024, 30000};
          const std::uint32_t lo = g.below(2000),
                              hi = std::min<std::uint32_t>(65535, lo + g.pick(widths) - 1);
          r.match.ports.push_back({static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi)});
        }
      }
    }
    const std::uint32_t life = g.below(10);
    if (life == 0) {
      const std::uint32_t max = 1 + g.below(3);
      limits.emplace_back(r.id, 0, max, g.below(max + 1));
    } else if (life == 1) {
      // until: passed, in the next second, or a few seconds away
      limits.emplace_back(r.id, kNow - 1000 + static_cast<std::int64_t>(g.below(6000)), 0, 0);
    }
    app.rules.push_back(std::move(r));
  }
  return app;
}

Pkt randomPacket(Gen& g, const World& w, const std::vector<Ip4>& ips) {
  Pkt p;
  const bool out = g.chance(0.7);
  p.in_port = out ? w.cell.ofport : w.net.gw.ofport;
  const Ip4 remote = g.chance(0.05) ? w.net.gw.ip : g.chance(0.8) ? g.pick(ips) : randomIp(g);
  p.src = out ? w.cell.ip : remote;
  p.dst = out ? remote : w.cell.ip;
  const std::uint32_t pr = g.below(20);
  p.proto = pr < 11   ? packet::kProtoTcp
            : pr < 17 ? packet::kProtoUdp
            : pr < 19 ? packet::kProtoIcmp
                      : kProtoGre;
  if (!out && g.chance(0.8)) p.proto = packet::kProtoTcp;
  std::vector<std::uint16_t> ports = {22, 53, 80, 443, 8080, 0, 65535, 1023, 1024, 1999};
  for (const auto& r : w.policy->matcher->policy().rules)
    for (const auto& range : r.match.ports)
      for (int d : {-1, 0, 1}) {
        ports.push_back(static_cast<std::uint16_t>(range.lo + d));
        ports.push_back(static_cast<std::uint16_t>(range.hi + d));
      }
  p.dport = g.pick(ports);
  p.sport = static_cast<std::uint16_t>(1024 + g.below(60000));
  return p;
}

TEST(RuleFlows, TheSwitchDecidesExactlyAsTheControllerOnRandomPolicies) {
  constexpr int kPolicies = 2500, kPacketsEach = 40;
  Gen g(20261207);
  Tally tally;
  std::size_t flows = 0, rules = 0, all_ctl = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kPolicies && !::testing::Test::HasFailure(); ++i) {
    std::vector<std::tuple<std::uint32_t, std::int64_t, std::uint32_t, std::uint32_t>> limits;
    policy::AppPolicy app = randomPolicy(g, limits);  // fills limits first
    World w(std::move(app), limits);
    rules += w.policy->matcher->policy().rules.size();
    const RuleFlows rf = ruleFlows(*w.policy, w.cell, w.net.gw, kMeter, kNow);
    all_ctl += rf.all_to_controller;
    Table table;
    table.install(rf.flows, kNow);
    std::vector<Ip4> ips;
    for (const auto& r : w.policy->matcher->policy().rules)
      for (const auto& c : r.match.addresses)
        if (c.is_v4()) {
          const std::uint32_t size = c.length == 0 ? 0 : (1u << (32 - c.length));
          ips.push_back(c.addr.v4());
          ips.push_back(Ip4{c.addr.v4().v + size - 1});
          ips.push_back(Ip4{c.addr.v4().v + size});
          ips.push_back(Ip4{c.addr.v4().v - 1});
        }
    for (std::uint32_t k = g.below(5); k > 0; --k) {
      const std::string& name = g.pick(kNames);
      // Often one of a few addresses, so that several names (CNAME chains, shared CDNs) meet.
      const Ip4 a = g.chance(0.6)
                        ? g.pick(std::vector<Ip4>{ip("192.0.2.1"), ip("192.0.2.2"), ip("10.1.2.3")})
                        : randomIp(g);
      table.install(w.resolve(name, a, g.chance(0.5) ? 3600 : 1 + g.below(5), g.below(1000)), kNow);
      ips.push_back(a);
    }
    flows += table.size();
    if (ips.empty()) ips.push_back(randomIp(g));
    for (int k = 0; k < kPacketsEach; ++k) {
      const Pkt p = randomPacket(g, w, ips);
      const std::int64_t t = kNow + (g.chance(0.5) ? 0 : g.below(6000));
      check(w, table, rf, p, t, tally,
            "policy " + std::to_string(i) + " packet " + std::to_string(k));
    }
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::string whys;
  for (const auto& [why, n] : tally.why) whys += " " + why + "=" + std::to_string(n);
  std::printf(
      "%d policies, %zu rules, %zu flows (%.1f per rule), %zu all-to-controller; %zu packets: %zu "
      "decided "
      "in the switch, %zu to the controller (%s); %.0f ms\n",
      kPolicies, rules, flows, double(flows) / double(rules), all_ctl, tally.packets,
      tally.in_switch, tally.to_controller, whys.c_str(), ms);
  EXPECT_GT(tally.in_switch, tally.packets / 3);
}

// ---- fixed examples: docs/policy.md, "Which rule wins" ----

policy::AppPolicy parse(const std::string& toml) {
  auto p = policy::parsePolicy(toml, "test.toml");
  EXPECT_TRUE(p) << p.error().str();
  return std::move(p.value());
}

struct Case {
  std::string what;
  Pkt p;
  Kind kind;
  std::uint32_t rule;
};

void runCases(World& w, const std::vector<Case>& cases,
              std::vector<std::pair<std::string, Ip4>> names = {}) {
  const RuleFlows rf = ruleFlows(*w.policy, w.cell, w.net.gw, kMeter, kNow);
  ASSERT_FALSE(rf.all_to_controller) << rf.why;
  Table table;
  table.install(rf.flows, kNow);
  for (const auto& [n, a] : names) {
    table.install(w.resolve(n, a, 300), kNow);
  }
  Tally tally;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const ofp::FlowMod* fm = table.lookup(c.p, kNow);
    ASSERT_NE(fm, nullptr);
    Outcome o = outcomeOf(*fm, w.cell);
    EXPECT_EQ(o.kind, c.kind);
    EXPECT_EQ(o.rule, c.rule);
    check(w, table, rf, c.p, kNow, tally, c.what);
  }
}

Pkt out(const World& w, const char* dst, std::uint16_t port,
        std::uint8_t proto = packet::kProtoTcp) {
  Pkt p;
  p.in_port = w.cell.ofport;
  p.src = w.cell.ip;
  p.dst = ip(dst);
  p.dport = port;
  p.proto = proto;
  return p;
}

TEST(RuleFlows, LongerPrefixWinsAndPortsNarrowIt) {
  World w(
      parse("default = \"deny\"\n[[allow]]\nto = \"10.0.0.0/8\"\n"
            "[[deny]]\nto = \"10.1.0.0/16\"\nports = 22\n"));
  runCases(w, {{"10.1.0.5:22 denied (longer prefix)", out(w, "10.1.0.5", 22), Kind::kDeny, 2},
               {"10.1.0.5:80 allowed (the /16 rule does not match 80)", out(w, "10.1.0.5", 80),
                Kind::kAllow, 1},
               {"10.2.0.1:22 allowed", out(w, "10.2.0.1", 22), Kind::kAllow, 1},
               {"11.0.0.1 default deny", out(w, "11.0.0.1", 22), Kind::kDeny, 0}});
}

TEST(RuleFlows, ExactHostBeatsWildcardWhichDoesNotMatchItsApex) {
  World w(
      parse("default = \"allow\"\n[[deny]]\nhosts = \"*.example.org\"\n"
            "[[allow]]\nhosts = \"api.example.org\"\n"));
  runCases(w,
           {{"api.example.org allowed (exact beats wildcard)", out(w, "192.0.2.1", 443),
             Kind::kAllow, 2},
            {"www.example.org denied", out(w, "192.0.2.2", 443), Kind::kDeny, 1},
            {"example.org itself: the default", out(w, "192.0.2.3", 443), Kind::kAllow, 0},
            {"an address no name was resolved to: the default", out(w, "192.0.2.4", 443),
             Kind::kAllow, 0}},
           {{"api.example.org", ip("192.0.2.1")},
            {"www.example.org", ip("192.0.2.2")},
            {"example.org", ip("192.0.2.3")}});
}

TEST(RuleFlows, ACountedRuleIsTheControllersUntilItIsUsedUp) {
  const std::string toml =
      "default = \"allow\"\n[[allow]]\nhosts = \"api.example.org\"\nconnections = 1\n"
      "[[deny]]\nhosts = \"*.example.org\"\n";
  World fresh(parse(toml), {{1, 0, 1, 0}});
  runCases(fresh,
           {{"the first connection: the controller claims the count", out(fresh, "192.0.2.1", 443),
             Kind::kController, 1}},
           {{"api.example.org", ip("192.0.2.1")}});
  World used(parse(toml), {{1, 0, 1, 1}});
  runCases(used,
           {{"used up: the wildcard deny decides in the switch", out(used, "192.0.2.1", 443),
             Kind::kDeny, 2}},
           {{"api.example.org", ip("192.0.2.1")}});
}

TEST(RuleFlows, WithoutLogCopiesTheyCommitAndRouteOnlyAndNameTheirLabels) {
  World w(parse("default = \"deny\"\n[[allow]]\nto = \"192.0.2.0/24\"\nports = 443\n"
                "[[deny]]\nto = \"192.0.2.66\"\n[[allow]]\nhosts = \"api.example.org\"\n"));
  w.cell.log_copies = false;
  RuleFlows rf = ruleFlows(*w.policy, w.cell, w.net.gw, kMeter, 0);
  ASSERT_FALSE(rf.all_to_controller) << rf.why;
  std::size_t commits = 0;
  for (const auto& fm : rf.flows) {
    if (cookieKind(fm.cookie) != kCookieRules) continue;
    ++commits;
    const auto& acts = std::get<ofp::InstrApplyActions>(fm.instructions.at(0)).actions;
    for (const auto& a : acts)
      EXPECT_FALSE(std::holds_alternative<ofp::ActionController2>(a) || std::holds_alternative<ofp::ActionOutput>(a))
          << "a copy for the log";
  }
  EXPECT_GT(commits, 0u);
  // The allow rule by address (1) and nothing that denies (2, the default); the host rule's
  // flows come with the names the cell resolves.
  EXPECT_EQ(allowedLabels(rf.flows), std::vector<std::uint64_t>{labelOf(LabelSource::kRule, 1)});
  const ResolvedName api{"api.example.org", 60000};
  auto named = nameFlows(*w.policy, w.cell, w.net.gw, kMeter, std::span<const ResolvedName>(&api, 1), ip("198.51.100.9"), 0);
  EXPECT_EQ(allowedLabels(named), std::vector<std::uint64_t>{labelOf(LabelSource::kRule, 3)});
}

TEST(RuleFlows, ControllerOnlyWhatTheSwitchCannotDo) {
  World w(
      parse("default = \"prompt\"\n[[rule]]\naction = \"reject\"\nto = \"192.0.2.66\"\n"
            "[[allow]]\ndirection = \"inbound\"\nproto = \"tcp\"\nports = 8080\n"));
  Pkt in;
  in.in_port = w.net.gw.ofport;
  in.src = ip("198.51.100.7");
  in.dst = w.cell.ip;
  in.dport = 8080;
  Pkt in_other = in;
  in_other.dport = 8081;
  Pkt in_udp = in;
  in_udp.proto = packet::kProtoUdp;
  runCases(w, {{"reject: the controller answers", out(w, "192.0.2.66", 80), Kind::kController, 1},
               {"prompt default: held by the controller", out(w, "192.0.2.67", 80),
                Kind::kController, 0},
               {"to the gateway's address", out(w, "10.200.0.1", 80), Kind::kController, 0},
               {"inbound TCP by its rule", in, Kind::kAllow, 2},
               {"inbound TCP without a rule: refused", in_other, Kind::kDeny, 0},
               {"inbound UDP: first a reply?", in_udp, Kind::kController, 0}});
}

TEST(RuleFlows, ATimedRuleEndsInTheSwitchBeforeItEndsAndTheControllerCoversTheRest) {
  World w(parse("default = \"deny\"\n[[allow]]\nto = \"10.0.0.0/8\"\n"), {{1, kNow + 2500, 0, 0}});
  const RuleFlows rf = ruleFlows(*w.policy, w.cell, w.net.gw, kMeter, kNow);
  Table table;
  table.install(rf.flows, kNow);
  const Pkt p = out(w, "10.0.0.1", 80);
  EXPECT_EQ(outcomeOf(*table.lookup(p, kNow + 1999), w.cell).kind, Kind::kAllow);
  EXPECT_EQ(outcomeOf(*table.lookup(p, kNow + 2000), w.cell).kind, Kind::kController);  // 2 s down
  EXPECT_EQ(outcomeOf(*table.lookup(p, kNow + 2999), w.cell).kind, Kind::kController);  // 3 s up
  EXPECT_EQ(outcomeOf(*table.lookup(p, kNow + 3000), w.cell).kind, Kind::kDeny);
  // Less than a second left: no flow of its own at all.
  const RuleFlows late = ruleFlows(*w.policy, w.cell, w.net.gw, kMeter, kNow + 2000);
  for (const auto& fm : late.flows)
    if ((fm.cookie & kCookieRuleMask) == 1) {
      EXPECT_EQ(outcomeOf(fm, w.cell).kind, Kind::kController);
    }
}

TEST(RuleFlows, WhatTheSwitchCannotDecideAtAll) {
  World procs(parse("default = \"deny\"\n[[allow]]\nexe = \"/usr/bin/curl\"\n"));
  RuleFlows rf = ruleFlows(*procs.policy, procs.cell, procs.net.gw, kMeter, kNow);
  EXPECT_TRUE(rf.all_to_controller);
  EXPECT_NE(rf.why.find("names processes"), std::string::npos) << rf.why;
  ASSERT_EQ(rf.flows.size(), 2u);
  for (const auto& fm : rf.flows) EXPECT_EQ(outcomeOf(fm, procs.cell).kind, Kind::kController);
  EXPECT_TRUE(nameFlows(*procs.policy, procs.cell, procs.net.gw, kMeter, "x.test", ip("192.0.2.1"),
                        60, kNow)
                  .empty());
  World hosts(parse("default = \"deny\"\n[[allow]]\nhosts = \"x.test\"\n"));
  EXPECT_EQ(nameFlows(*hosts.policy, hosts.cell, hosts.net.gw, kMeter, "X.Test.", ip("192.0.2.1"),
                      60, kNow)
                .size(),
            1u);
  EXPECT_TRUE(
      nameFlows(*hosts.policy, hosts.cell, hosts.net.gw, kMeter, "x.test", ip("192.0.2.1"), 0, kNow)
          .empty());
  EXPECT_TRUE(nameFlows(*hosts.policy, hosts.cell, hosts.net.gw, kMeter, "y.test", ip("192.0.2.1"),
                        60, kNow)
                  .empty());

  // Each rule's keys carry its id: 33,000 timed rules (own flow and controller flow) need more
  // priorities than a table has.
  policy::AppPolicy timed;
  std::vector<std::tuple<std::uint32_t, std::int64_t, std::uint32_t, std::uint32_t>> limits;
  for (std::uint32_t i = 1; i <= 33000; ++i) {
    policy::Rule r;
    r.id = i;
    r.action = Action::kAllow;
    timed.rules.push_back(r);
    limits.emplace_back(i, kNow + 10500, 0, 0);
  }
  World lots(std::move(timed), limits);
  rf = ruleFlows(*lots.policy, lots.cell, lots.net.gw, kMeter, kNow);
  EXPECT_TRUE(rf.all_to_controller);
  EXPECT_NE(rf.why.find("needs 66000 distinct priorities; a table has 65532"), std::string::npos)
      << rf.why;

  World many(
      parse("default = \"deny\"\n[[allow]]\nports = \"1-65534\"\n"));  // 30 blocks × TCP, UDP
  rf = ruleFlows(*many.policy, many.cell, many.net.gw, kMeter, kNow, RuleFlowOptions{40});
  EXPECT_TRUE(rf.all_to_controller);
  EXPECT_NE(rf.why.find("more than the limit of 40"), std::string::npos) << rf.why;
  EXPECT_FALSE(ruleFlows(*many.policy, many.cell, many.net.gw, kMeter, kNow).all_to_controller);
}

TEST(RuleFlows, RemovalTakesBothKindsByCookie) {
  World w(
      parse("default = \"deny\"\n[[allow]]\nto = \"10.0.0.0/8\"\n[[rule]]\naction = \"reject\"\n"
            "to = \"10.1.0.0/16\"\n"));
  const RuleFlows rf = ruleFlows(*w.policy, w.cell, w.net.gw, kMeter, kNow);
  // What a cookie-masked delete (table 6) takes, as a switch applies it.
  auto taken = [&](const std::vector<ofp::FlowMod>& dels) {
    std::size_t n = 0;
    for (const auto& fm : rf.flows)
      for (const auto& d : dels)
        if (d.table_id == fm.table_id &&
            (fm.cookie & d.cookie_mask) == (d.cookie & d.cookie_mask)) {
          ++n;
          break;
        }
    return n;
  };
  EXPECT_EQ(taken(removeRuleFlows(w.cell)), rf.flows.size());
  EXPECT_EQ(taken(removeRuleFlows(w.cell, 1)), 1u);  // the /8 allow
  EXPECT_EQ(taken(removeRuleFlows(w.cell, 2)), 1u);  // the reject, a flow that asks
  CellPort other = w.cell;
  other.cell_id = 8;
  EXPECT_EQ(taken(removeRuleFlows(other)), 0u);
  for (const auto& d : removeRuleFlows(w.cell)) EXPECT_EQ(d.command, ofp::FlowModCommand::kDelete);
}

TEST(RuleFlows, PortRangesBecomePrefixBlocks) {
  EXPECT_EQ(portBlocks(1024, 2047), (std::vector<PortBlock>{{0x400, 0xfc00}}));
  EXPECT_EQ(portBlocks(0, 65535), (std::vector<PortBlock>{{0, 0}}));
  EXPECT_EQ(portBlocks(80, 80), (std::vector<PortBlock>{{80, 0xffff}}));
  EXPECT_EQ(portBlocks(1, 65534).size(), 30u);
  EXPECT_EQ(portBlocks(65535, 65535), (std::vector<PortBlock>{{65535, 0xffff}}));
  // Every range covers exactly its ports.
  Gen g(7);
  for (int i = 0; i < 2000; ++i) {
    std::uint16_t lo = static_cast<std::uint16_t>(g.below(65536)),
                  hi = static_cast<std::uint16_t>(g.below(65536));
    if (lo > hi) std::swap(lo, hi);
    const auto blocks = portBlocks(lo, hi);
    for (std::uint32_t port :
         {std::uint32_t{lo}, std::uint32_t{hi}, lo - 1u, hi + 1u, (lo + hi) / 2u}) {
      if (port > 65535) continue;
      const int hits =
          static_cast<int>(std::count_if(blocks.begin(), blocks.end(), [&](const PortBlock& b) {
            return (port & b.mask) == b.value;
          }));
      EXPECT_EQ(hits, port >= lo && port <= hi ? 1 : 0) << lo << "-" << hi << " port " << port;
    }
  }
}

}  // namespace
}  // namespace cw::decide
