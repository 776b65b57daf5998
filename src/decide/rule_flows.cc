#include "decide/rule_flows.h"

#include <algorithm>
#include <cassert>
#include <optional>
#include <tuple>

#include "packet/frame.h"

namespace cw::decide {

namespace {

using ofp::FlowMod;
using ofp::Match;
using policy::Action;
using policy::Direction;
using policy::Protocol;
using policy::Rule;

// Destination specificity, larger is more specific (docs/policy.md step 1).
constexpr std::uint32_t kDestNone = 0;
constexpr std::uint32_t kDestPrefix = 1;      // + prefix length: 1..33
constexpr std::uint32_t kDestWildcard = 100;  // + labels of the wildcard's suffix
constexpr std::uint32_t kDestExact = 1000;
constexpr std::uint32_t kAnyPortWidth = 65537;  // wider than 0-65535, as in the Matcher

// The Matcher's precedence key of one flow, plus which of a timed rule's two flows it is.
// operator< is "ranks before".
struct Key {
  std::uint32_t dest = kDestNone;
  std::uint32_t width = kAnyPortWidth;
  bool any_protocol = true;
  bool is_allow = true;
  std::uint32_t id = 0;
  bool shadow = false;  // the controller flow under a timed rule's (or a name's) own
  auto tie() const { return std::make_tuple(~dest, width, any_protocol, is_allow, id, shadow); }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
  bool operator==(const Key& o) const { return tie() == o.tie(); }
};

// Rule r's own flow at destination class `dest` and port width `width`.
Key keyOf(const Rule& r, std::uint32_t dest, std::uint32_t width) {
  return Key{dest, width, r.match.protocol == Protocol::kAny, r.action == Action::kAllow,
             r.id, false};
}

// One rule's ports at one width: the union of its ranges of that width (a rule competes at a
// port with the narrowest of its ranges containing it; its wider flows then lose to its own
// narrower one).
struct PortGroup {
  std::uint32_t width = kAnyPortWidth;
  std::vector<std::pair<std::uint16_t, std::uint16_t>> ranges;  // disjoint, ascending; empty: any
};

std::vector<PortGroup> portGroups(const Rule& r) {
  if (r.match.ports.empty()) return {PortGroup{}};
  std::vector<PortGroup> out;
  for (const auto& pr : r.match.ports) {
    if (pr.lo > pr.hi) continue;  // an empty range matches nothing (Matcher)
    const std::uint32_t w = std::uint32_t{pr.hi} - pr.lo + 1;
    auto it =
        std::find_if(out.begin(), out.end(), [w](const PortGroup& g) { return g.width == w; });
    if (it == out.end()) it = out.insert(out.end(), PortGroup{w, {}});
    it->ranges.emplace_back(pr.lo, pr.hi);
  }
  for (auto& g : out) {
    std::sort(g.ranges.begin(), g.ranges.end());
    std::vector<std::pair<std::uint16_t, std::uint16_t>> merged;
    for (const auto& range : g.ranges) {
      if (!merged.empty() && std::uint32_t{range.first} <= std::uint32_t{merged.back().second} + 1)
        merged.back().second = std::max(merged.back().second, range.second);
      else
        merged.push_back(range);
    }
    g.ranges = std::move(merged);
  }
  return out;
}

// The IPv4 prefixes a rule names (IPv6 ones never match a cell's IPv4 traffic).
std::vector<std::pair<Ip4, std::uint8_t>> ipv4Prefixes(const Rule& r) {
  std::vector<std::pair<Ip4, std::uint8_t>> out;
  for (const auto& c : r.match.addresses) {
    if (!c.is_v4() || c.length > 32) continue;
    const std::uint32_t mask = c.length == 0 ? 0 : ~std::uint32_t{0} << (32 - c.length);
    std::pair<Ip4, std::uint8_t> p{Ip4{c.addr.v4().v & mask}, c.length};
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

std::uint32_t labelCount(std::string_view s) {
  return static_cast<std::uint32_t>(std::count(s.begin(), s.end(), '.')) + 1;
}

std::string normalName(std::string_view n) {
  if (!n.empty() && n.back() == '.') n.remove_suffix(1);
  std::string s(n);
  for (char& c : s) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return s;
}

// The destination classes of a rule's hosts that `name` (normalised) falls under; all of
// them when name is null (the ranking wants every key the rule can ever have).
std::vector<std::uint32_t> hostDests(const Rule& r, const std::string* name) {
  std::vector<std::uint32_t> out;
  for (const auto& h : r.match.hosts) {
    const std::string pat = normalName(h.name);
    std::uint32_t d = 0;
    if (!h.wildcard) {
      if (name != nullptr && *name != pat) continue;
      d = kDestExact;
    } else {
      if (name != nullptr && !(name->size() > pat.size() + 1 && name->ends_with(pat) &&
                               (*name)[name->size() - pat.size() - 1] == '.'))
        continue;
      d = kDestWildcard + labelCount(pat);
    }
    if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
  }
  return out;
}

// The IP protocols a rule's flows match (0: any protocol, no ip_proto in the match).
// Inbound: TCP only (see the header: everything else from the gateway goes to the controller).
std::vector<std::uint8_t> protocols(const Rule& r) {
  const bool ports = !r.match.ports.empty();
  const bool inbound = r.match.direction == Direction::kInbound;
  switch (r.match.protocol) {
    case Protocol::kTcp:
      return {packet::kProtoTcp};
    case Protocol::kUdp:
      return inbound ? std::vector<std::uint8_t>{} : std::vector<std::uint8_t>{packet::kProtoUdp};
    case Protocol::kIcmp:
      if (inbound || ports) return {};  // ports match only TCP and UDP (Matcher)
      return {packet::kProtoIcmp};
    case Protocol::kAny:
      if (inbound) return {packet::kProtoTcp};
      if (ports) return {packet::kProtoTcp, packet::kProtoUdp};
      return {0};
  }
  return {};
}

// The rule's lifetime as the packet path enforces it (decideWithPolicy): the daemon's limits.
struct Life {
  bool usable = true;
  bool counted = false;
  std::int64_t until_ms = 0;
};
Life lifeOf(const CompiledPolicy& p, const Rule& r, std::int64_t now) {
  const RuleLimit* l = p.limitOf(r.id);
  if (l == nullptr) return {};
  return Life{l->usable(now), l->max != 0, l->until_ms};
}

bool toController(const Rule& r, const Life& life) {
  return r.action == Action::kReject || life.counted;
}

// Every key the policy's flows can have, in rank order. Depends on the policy alone, so that
// ruleFlows and the nameFlows of later answers rank alike.
std::vector<Key> computeRanking(const CompiledPolicy& p) {
  std::vector<Key> keys;
  for (const Rule& r : p.matcher->policy().rules) {
    const RuleLimit* l = p.limitOf(r.id);
    const bool timed = l != nullptr && l->until_ms != 0;
    std::vector<std::uint32_t> dests;
    if (r.match.addresses.empty() && r.match.hosts.empty()) dests.push_back(kDestNone);
    for (const auto& pr : ipv4Prefixes(r)) dests.push_back(kDestPrefix + pr.second);
    if (r.match.direction == Direction::kOutbound)
      for (std::uint32_t d : hostDests(r, nullptr)) dests.push_back(d);
    for (std::uint32_t d : dests) {
      for (const PortGroup& g : portGroups(r)) {
        Key k = keyOf(r, d, g.width);
        keys.push_back(k);
        if (timed || d >= kDestWildcard) {  // a name's flows end too
          k.shadow = true;
          keys.push_back(k);
        }
      }
    }
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

// The ranking, computed once per policy.
std::shared_ptr<const std::vector<Key>> ranking(const CompiledPolicy& p) {
  return p.flow_ranking.get<std::vector<Key>>([&] { return computeRanking(p); });
}

constexpr std::size_t kRankedPriorities = kPrioRuleTop - kPrioRuleLowest + 1;

// Why the switch can decide nothing of this policy, or nullopt.
std::optional<std::string> undecidable(const CompiledPolicy& p, const std::vector<Key>& keys) {
  if (p.matcher->namesProcesses())
    return "the policy names processes (exe, process, user, parent or pid): the controller decides "
           "every connection, once it knows whose it is";
  if (keys.size() > kRankedPriorities)
    return "the policy's precedence needs " + std::to_string(keys.size()) +
           " distinct priorities; a table has " + std::to_string(kRankedPriorities) +
           ": the controller decides every connection (fewer rules, or fewer with a time limit, "
           "would fit)";
  return std::nullopt;
}

// What a table-6 flow does with the packet.
enum class Does { kAllow, kDeny, kAsk };
Does doesFor(bool allow) {
  return allow ? Does::kAllow : Does::kDeny;
}

// Builds one cell's table-6 flows.
class Builder {
 public:
  Builder(const CompiledPolicy& p, const CellPort& cell, const GatewayPort& gw,
          std::uint32_t meter_id, std::int64_t now, const std::vector<Key>& keys)
      : p_(p), cell_(cell), gw_(gw), meter_id_(meter_id), now_(now), keys_(keys) {}

  std::vector<FlowMod>& out() { return out_; }

  std::uint16_t priorityOf(const Key& k) const {
    auto it = std::lower_bound(keys_.begin(), keys_.end(), k);
    assert(it != keys_.end() && *it == k);  // ranking() lists every key a flow can have
    return static_cast<std::uint16_t>(kPrioRuleTop - (it - keys_.begin()));
  }

  void add(std::uint16_t prio, std::uint32_t rule_id, const Match& m, Does does,
           std::uint16_t hard = 0) {
    FlowMod fm;
    fm.table_id = kTableRules;
    fm.priority = prio;
    fm.cookie =
        makeCookie(does == Does::kAsk ? kCookieRulesAsk : kCookieRules, cell_.cell_id, rule_id);
    fm.hard_timeout = hard;
    fm.match = m;
    if (does == Does::kAsk) {
      // Held for the controller, through the cell's meter, as from table 3's miss.
      if (meter_id_ != 0) fm.instructions.emplace_back(ofp::InstrMeter{meter_id_});
      fm.instructions.emplace_back(ofp::InstrApplyActions{
          {ofp::ActionOutput{ofp::kPortController, ofp::kControllerMaxLenNoBuffer}}});
    } else {
      // Committed here, as Decider::commit would. An allowed packet goes on through the route
      // table at once, by a resubmit (goto_table cannot go back from this table to it,
      // OFPBIC_BAD_TABLE_ID; a commit with table=4 would cost a recirculation), and only then
      // does the controller get its copy to log: the datapath's actions are ct(commit), the
      // output, then the upcall, so the packet never waits for the copy (ofproto/trace on
      // Open vSwitch 3.1, docs/pipeline.md).
      const bool allow = does == Does::kAllow;
      ofp::ActionCt ct;
      ct.flags = ofp::kCtCommit;
      ct.zone = zoneOf(cell_);
      ct.exec.push_back(ofp::ActionSetField{Match().ctMark(markOf(cell_.epoch, allow, false))});
      // The label names the rule (0: the app's default), as the controller's commit does, so the
      // count table counts the connection under it.
      ct.exec.push_back(ofp::ActionSetField{Match().ctLabel(0, labelOf(LabelSource::kRule, rule_id))});
      ofp::ActionList acts;
      acts.emplace_back(std::move(ct));
      if (allow) acts.push_back(ofp::ActionResubmit{kTableRoute});
      if (cell_.log_copies) acts.push_back(copyAction());
      fm.instructions.emplace_back(ofp::InstrApplyActions{std::move(acts)});
    }
    out_.push_back(std::move(fm));
  }

  // The controller's copy of the first packet, for the log: through the cell's meter when it
  // has one (a copy over the rate is dropped, never the packet), so a cell opening connections
  // as fast as it can costs the controller no more than its meter allows.
  ofp::Action copyAction() const {
    if (meter_id_ != 0) return ofp::ActionController2{kCopyLength, meter_id_};
    return ofp::ActionOutput{ofp::kPortController, kCopyLength};
  }

  Match outbound() const { return Match().inPort(cell_.ofport).ethType(packet::kEthIpv4); }
  Match inbound() const {
    return Match().inPort(gw_.ofport).ethType(packet::kEthIpv4).ipv4Dst(cell_.ip);
  }

  // The flows of rule `r` at destination class `dest`, whose address part `where` adds to a
  // match. `name_left_ms` (names, > 0): how long the name the flows stand for stays valid.
  // Skips rules not usable at now.
  template <class Where>
  void rule(const Rule& r, std::uint32_t dest, Where where, std::int64_t name_left_ms = 0) {
    const Life life = lifeOf(p_, r, now_);
    if (!life.usable) return;
    const bool to_ctl = toController(r, life);
    // How long the flows may decide: until the rule ends or the name does, whichever is first.
    std::int64_t left = name_left_ms;
    if (life.until_ms != 0)
      left = left == 0 ? life.until_ms - now_ : std::min(left, life.until_ms - now_);
    // hard_timeouts (0: none): the flow that decides ends before `left` does (whole seconds,
    // rounded down; none at all under a second), the controller flow under it after (rounded
    // up; longer than a hard_timeout can say: none, the controller is exact meanwhile).
    std::optional<std::uint16_t> own_hard = 0;
    std::uint16_t shadow_hard = 0;
    const bool ends = left != 0;
    // No controller flow where the own flow ends exactly when the rule or name does.
    const bool shadowed = ends && !to_ctl && (left % 1000 != 0 || left / 1000 > 0xffff);
    if (ends) {
      const std::int64_t down = left / 1000, up = (left + 999) / 1000;
      own_hard = down < 1 ? std::nullopt
                          : std::optional<std::uint16_t>(std::min<std::int64_t>(down, 0xffff));
      shadow_hard = up > 0xffff ? 0 : static_cast<std::uint16_t>(up);
      if (to_ctl) own_hard = shadow_hard;
    }
    const bool inbound_rule = r.match.direction == Direction::kInbound;
    for (const PortGroup& g : portGroups(r)) {
      const Key k = keyOf(r, dest, g.width);
      for (std::uint8_t proto : protocols(r)) {
        Match base = inbound_rule ? inbound() : outbound();
        where(base);
        if (proto != 0) base.ipProto(proto);
        std::vector<Match> ms;
        if (g.ranges.empty()) {
          ms.push_back(base);
        } else {
          for (const auto& [lo, hi] : g.ranges) {
            for (const PortBlock& b : portBlocks(lo, hi)) {
              Match m = base;
              if (b.mask == 0) {
                // 0-65535: every port (a zero mask is no match at all; ranked as a range).
              } else if (proto == packet::kProtoTcp) {
                m.tcpDst(b.value, b.mask);
              } else {
                m.udpDst(b.value, b.mask);
              }
              ms.push_back(m);
            }
          }
        }
        for (const Match& m : ms) {
          if (own_hard)
            add(priorityOf(k), r.id, m, to_ctl ? Does::kAsk : doesFor(r.action == Action::kAllow),
                *own_hard);
          if (shadowed) {
            Key s = k;
            s.shadow = true;
            add(priorityOf(s), r.id, m, Does::kAsk, shadow_hard);
          }
        }
      }
    }
  }

 private:
  const CompiledPolicy& p_;
  const CellPort& cell_;
  const GatewayPort& gw_;
  std::uint32_t meter_id_;
  std::int64_t now_;
  const std::vector<Key>& keys_;
  std::vector<FlowMod> out_;
};

}  // namespace

namespace {

std::vector<FlowMod> deletes(const CellPort& cell, std::uint32_t rule_id, std::uint64_t rule_mask) {
  std::vector<FlowMod> out;
  for (CookieKind kind : {kCookieRules, kCookieRulesAsk}) {
    FlowMod fm;
    fm.command = ofp::FlowModCommand::kDelete;
    fm.table_id = kTableRules;
    fm.cookie = makeCookie(kind, cell.cell_id, rule_id);
    fm.cookie_mask = kCookieKindMask | kCookieCellMask | rule_mask;
    out.push_back(fm);
  }
  return out;
}

}  // namespace

std::vector<FlowMod> removeRuleFlows(const CellPort& cell) {
  return deletes(cell, 0, 0);
}

std::vector<FlowMod> removeRuleFlows(const CellPort& cell, std::uint32_t rule_id) {
  return deletes(cell, rule_id, kCookieRuleMask);
}

std::vector<PortBlock> portBlocks(std::uint16_t lo, std::uint16_t hi) {
  std::vector<PortBlock> out;
  std::uint32_t at = lo;
  while (at <= hi) {
    // The largest aligned block starting at `at` that stays within hi.
    std::uint32_t size = at == 0 ? 0x10000 : (at & (~at + 1));
    while (at + size - 1 > hi) size >>= 1;
    out.push_back(PortBlock{static_cast<std::uint16_t>(at),
                            static_cast<std::uint16_t>(~(size - 1) & 0xffff)});
    at += size;
  }
  return out;
}

RuleFlows ruleFlows(const CompiledPolicy& p, const CellPort& cell, const GatewayPort& gw,
                    std::uint32_t meter_id, std::int64_t now_unix_ms, RuleFlowOptions options) {
  const auto ranked = ranking(p);
  const std::vector<Key>& keys = *ranked;
  Builder b(p, cell, gw, meter_id, now_unix_ms, keys);
  RuleFlows out;
  auto everything = [&](std::string why) {
    Builder all(p, cell, gw, meter_id, now_unix_ms, keys);
    all.add(kPrioRuleMiss, 0, all.outbound(), Does::kAsk);
    all.add(kPrioRuleMiss, 0, all.inbound(), Does::kAsk);
    out.flows = std::move(all.out());
    out.all_to_controller = true;
    out.why = std::move(why);
    return out;
  };
  if (auto why = undecidable(p, keys)) return everything(std::move(*why));

  // Guards: the gateway's own address, either way, is the controller's (gateway_service; what
  // the gateway sends from its own address is its resolver's, never an inbound connection).
  b.add(kPrioRuleGuard, 0, b.outbound().ipv4Dst(gw.ip), Does::kAsk);
  b.add(kPrioRuleGuard, 0, b.inbound().ipv4Src(gw.ip), Does::kAsk);
  for (const Rule& r : p.matcher->policy().rules) {
    if (r.match.addresses.empty() && r.match.hosts.empty()) {
      b.rule(r, kDestNone, [](Match&) {});
      continue;
    }
    const bool in = r.match.direction == Direction::kInbound;
    for (const auto& [addr, len] : ipv4Prefixes(r)) {
      const Ip4 mask{len == 0 ? 0 : ~std::uint32_t{0} << (32 - len)};
      b.rule(r, kDestPrefix + len, [&, addr = addr](Match& m) {
        if (len == 0) return;  // 0.0.0.0/0: any address, but ranked as a prefix
        if (in)
          m.ipv4Src(addr, mask);
        else
          m.ipv4Dst(addr, mask);
      });
    }
  }
  // Defaults, below every rule. Outbound: the app's `default`. Inbound: a TCP opening no rule
  // admits is refused (an app's default is about the connections it opens); anything else from
  // the gateway is the controller's.
  const auto def = p.matcher->policy().default_action;
  if (def == policy::DefaultAction::kAllow || def == policy::DefaultAction::kDeny)
    b.add(kPrioRuleDefault, 0, b.outbound(), doesFor(def == policy::DefaultAction::kAllow));
  else
    b.add(kPrioRuleDefault, 0, b.outbound(), Does::kAsk);
  b.add(kPrioRuleDefault, 0, b.inbound().ipProto(packet::kProtoTcp), Does::kDeny);
  b.add(kPrioRuleMiss, 0, b.inbound(), Does::kAsk);
  if (b.out().size() > options.max_flows)
    return everything("the policy needs " + std::to_string(b.out().size()) +
                      " flows, more than the limit of " + std::to_string(options.max_flows) +
                      ": the controller decides every connection (port ranges that are not "
                      "aligned blocks cost up to 30 flows each)");
  out.flows = std::move(b.out());
  return out;
}

std::vector<std::uint64_t> allowedLabels(const std::vector<FlowMod>& flows) {
  std::vector<std::uint64_t> out;
  for (const auto& fm : flows) {
    if (cookieKind(fm.cookie) != kCookieRules) continue;
    bool allows = false;
    for (const auto& ins : fm.instructions)
      if (const auto* apply = std::get_if<ofp::InstrApplyActions>(&ins))
        for (const auto& a : apply->actions)
          allows = allows || std::holds_alternative<ofp::ActionResubmit>(a);
    const std::uint64_t label = labelOf(LabelSource::kRule, static_cast<std::uint32_t>(fm.cookie & kCookieRuleMask));
    if (allows && std::find(out.begin(), out.end(), label) == out.end()) out.push_back(label);
  }
  return out;
}

std::vector<FlowMod> nameFlows(const CompiledPolicy& p, const CellPort& cell, const GatewayPort& gw,
                               std::uint32_t meter_id, std::span<const ResolvedName> names, Ip4 ip,
                               std::int64_t now_unix_ms) {
  const auto ranked = ranking(p);
  const std::vector<Key>& keys = *ranked;
  if (undecidable(p, keys)) return {};
  std::vector<std::pair<std::string, std::int64_t>> valid;
  for (const auto& n : names)
    if (n.valid_ms > 0) valid.emplace_back(normalName(n.name), n.valid_ms);
  Builder b(p, cell, gw, meter_id, now_unix_ms, keys);
  for (const Rule& r : p.matcher->policy().rules) {
    if (r.match.direction != Direction::kOutbound || r.match.hosts.empty()) continue;
    // One flow set per destination class, living as long as the longest-lived name that
    // reaches it: names of one class give the same match and priority, one flow.
    std::vector<std::pair<std::uint32_t, std::int64_t>> dests;
    for (const auto& [n, ms] : valid) {
      for (std::uint32_t d : hostDests(r, &n)) {
        auto it =
            std::find_if(dests.begin(), dests.end(), [d](const auto& x) { return x.first == d; });
        if (it == dests.end())
          dests.emplace_back(d, ms);
        else
          it->second = std::max(it->second, ms);
      }
    }
    for (const auto& [d, ms] : dests)
      b.rule(
          r, d, [ip](Match& m) { m.ipv4Dst(ip); }, ms);
  }
  return std::move(b.out());
}

std::vector<FlowMod> nameFlows(const CompiledPolicy& p, const CellPort& cell, const GatewayPort& gw,
                               std::uint32_t meter_id, std::string_view name, Ip4 ip,
                               std::uint32_t ttl_s, std::int64_t now_unix_ms) {
  const ResolvedName one{name, std::int64_t{ttl_s} * 1000};
  return nameFlows(p, cell, gw, meter_id, std::span<const ResolvedName>(&one, 1), ip, now_unix_ms);
}

}  // namespace cw::decide
