#include "decide/decider.h"

#include <algorithm>
#include <array>
#include <mutex>

#include "packet/builder.h"

namespace cw::decide {

namespace {

using packet::Frame;
using packet::L4;
using policy::Action;


constexpr std::uint8_t kIcmpUnreachable = 3;
constexpr std::uint8_t kIcmpPortUnreachable = 3;
constexpr std::uint8_t kIcmpAdminProhibited = 13;

bool hasPorts(const Frame& f) { return f.l4 == L4::kTcp || f.l4 == L4::kUdp; }

// Untagged IPv4. Table 0 admits no tagged frame; should one reach us anyway (flows of an older
// daemon), it is not decided: the flows below match `ip` through a tag, and the re-injected
// frame would carry its tag out.
bool routable(const Frame& f) { return f.isIpv4() && f.vlan_count == 0; }

std::uint32_t tcpSeq(const Frame& f) {
  ByteReader r(f.raw);
  r.skip(f.l4_offset + 4);
  return r.u32();
}

// Appends the names, comma-separated (the log's and the prompt's form).
void joinNames(std::span<const std::string_view> names, std::string& out) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i != 0) out.push_back(',');
    out.append(names[i]);
  }
}

}  // namespace

policy::Protocol protocolOf(const Frame& f) {
  switch (f.l4) {
    case L4::kTcp: return policy::Protocol::kTcp;
    case L4::kUdp: return policy::Protocol::kUdp;
    case L4::kIcmp: return policy::Protocol::kIcmp;
    default: return policy::Protocol::kAny;
  }
}

const char* reasonName(Reason r) {
  switch (r) {
    case Reason::kPolicyRule: return "policy_rule";
    case Reason::kPolicyDefault: return "policy_default";
    case Reason::kEnvResolver: return "env_resolver";
    case Reason::kGatewayService: return "gateway_service";
    case Reason::kReturnTraffic: return "return_traffic";
    case Reason::kInboundRefused: return "inbound_refused";
    case Reason::kInboundRule: return "inbound_rule";
    case Reason::kNotIpv4: return "not_ipv4";
    case Reason::kUnknownPort: return "unknown_port";
    case Reason::kNoGateway: return "no_gateway";
    case Reason::kMalformed: return "malformed";
    case Reason::kPrompt: return "prompt";
    case Reason::kPromptAnswer: return "prompt_answer";
    case Reason::kPromptTimeout: return "prompt_timeout";
    case Reason::kScript: return "script";
    case Reason::kDnsQuery: return "dns_query";
    case Reason::kDnsRefused: return "dns_refused";
    case Reason::kDnsTcpRefused: return "dns_tcp_refused";
    case Reason::kOpenAgain: return "open_again";
    case Reason::kCtInvalid: return "ct_invalid";
    case Reason::kCount: break;
  }
  return "unknown";
}

ResolvedNames::ResolvedNames(const CellRuntime* runtime, const IpAddr& ip, std::int64_t now_mono_ms) {
  if (runtime == nullptr) return;
  lock_ = std::unique_lock(runtime->mu);
  n_ = runtime->names.names(ip, now_mono_ms, buf_);
}

policy::Verdict verdictForOpen(const CompiledPolicy& p, policy::ConnKey key, Now now,
                               const CellRuntime* runtime, const policy::ProcessKey* process) {
  ResolvedNames names(runtime, key.remote, now.mono_ms);
  key.names = names.get();
  key.process = process;
  auto timely = [&p, unix_now = now.unix_ms](const policy::Rule& r) {
    const RuleLimit* l = p.limitOf(r.id);
    return l == nullptr || l->until_ms == 0 || unix_now < l->until_ms;
  };
  return p.matcher->decide(key, policy::RuleFilter::of(timely));
}

PolicyOutcome decideWithPolicy(const CompiledPolicy& p, policy::ConnKey key, Now now,
                               const CellRuntime* runtime, std::string* names_out) {
  p.matcher->prefetch(key);  // overlaps the name lookup
  // The views point into the name table: it stays locked until the decision is made.
  ResolvedNames names(runtime, key.remote, now.mono_ms);
  key.names = names.get();
  if (names_out != nullptr) joinNames(key.names, *names_out);
  struct Ctx {
    const CompiledPolicy& p;
    std::int64_t now;
  } ctx{p, now.unix_ms};
  auto usable = [&ctx](const policy::Rule& r) {
    const RuleLimit* l = ctx.p.limitOf(r.id);
    return l == nullptr || l->usable(ctx.now);
  };
  auto filter = policy::RuleFilter::of(usable);
  PolicyOutcome out;
  // A count can run out between the filter's look and the claim (another switch thread took
  // the last connection): then decide again without that rule. Bounded: each round retires one.
  for (int round = 0; round < 8; ++round) {
    out.verdict = p.matcher->decide(key, p.limits.empty() ? policy::RuleFilter{} : filter);
    RuleLimit* l = out.verdict.rule != nullptr ? p.limitOf(out.verdict.rule->id) : nullptr;
    if (l == nullptr || l->max == 0) return out;
    if (l->claim()) {
      out.counted_rule = out.verdict.rule->id;
      return out;
    }
  }
  // Still racing after 8 rounds: refuse rather than admit beyond a count.
  out.verdict = policy::Verdict{policy::Action::kDeny, nullptr, policy::DefaultAction::kDeny};
  return out;
}

std::shared_ptr<const ProcessInfo> Decider::attribute(const CellPort& cell, const ConnTuple& t) const {
  if (finder_ == nullptr || (t.proto != packet::kProtoTcp && t.proto != packet::kProtoUdp)) return nullptr;
  if (!finder_->always() && (!cell.policy || !cell.policy->matcher->namesProcesses())) return nullptr;
  return finder_->find(cell, t);
}

Decision Decider::decide(const SwitchView& sw, std::uint32_t in_port, const Frame& f, Now now,
                          const HeldVerdict* held, const CtSeen* ct) const {
  // Decided before, under an older epoch of a cell (or not yet in the receiving cell's zone,
  // cell to cell): an open connection, decided again. A connection denied before is decided
  // like a new one: it never opened.
  if (ct != nullptr && (ct->state & ofp::kCtInv) != 0) {
    // Invalid to conntrack: never forwarded, never committed; the scripts may count it.
    Decision d;
    d.reason = Reason::kCtInvalid;
    const CellPort* cell = sw.cellOnPort(in_port);
    if (cell != nullptr && routable(f)) {
      d.cell_id = cell->cell_id;
      if (judge_ != nullptr) {
        if (auto v = judge_->judge(sw, *cell, in_port, f, false, now, d.scripts)) d.script = std::move(v->script);
      }
    }
    return d;
  }
  if (ct != nullptr && held == nullptr && routable(f) &&
      ((ct->mark & kMarkVerdictMask) == kMarkAllow || (ct->table == kTablePeer && ct->mark == 0)))
    return again(sw, in_port, f, now, *ct);
  if (const CellPort* cell = sw.cellOnPort(in_port)) return fromCell(sw, *cell, f, now, held);
  if (const GatewayPort* gw = sw.gatewayOnPort(in_port)) return fromGateway(sw, *gw, f, now);
  Decision d;
  d.reason = Reason::kUnknownPort;
  return d;
}

Decision Decider::fromCell(const SwitchView& sw, const CellPort& cell, const Frame& f, Now now,
                            const HeldVerdict* held) const {
  Decision d;
  d.cell_id = cell.cell_id;
  if (!routable(f)) {
    d.reason = Reason::kNotIpv4;
    return d;
  }
  const GatewayPort* gw = sw.gatewayFor(cell.env);
  if (gw == nullptr) {
    d.reason = Reason::kNoGateway;
    return d;
  }
  Ip4 dst = f.ip_dst.v4();
  if (dst == gw->ip) {
    if (hasPorts(f) && f.dst_port == kDnsPort && resolvesByRules(cell)) {
      resolverQuery(d, cell, *gw, f, now);
    } else if (hasPorts(f) && f.dst_port == kDnsPort) {
      d.action = Action::kAllow;
      d.reason = Reason::kEnvResolver;
      // Straight to the resolver, not back through the tables: while the app's resolve setting
      // changes, the tables may still send the cell's queries to the controller.
      resolverLeg(d, f, cell.ofport, gw->ofport, false);
    } else {
      d.reason = Reason::kGatewayService;
      commit(d, sw, f, cell.ofport, false, false);
    }
    return d;
  }

  policy::ConnKey key{protocolOf(f), policy::Direction::kOutbound, f.ip_dst,
                      hasPorts(f) ? f.dst_port : std::uint16_t{0}};
  policy::ProcessKey pkey;
  if (held == nullptr && hasPorts(f)) {
    d.process = attribute(cell, ConnTuple{f.ip_proto, f.ip_src.v4(), dst, f.src_port, f.dst_port, false});
    if (d.process) {
      pkey = d.process->key();
      key.process = &pkey;
    }
  }
  std::optional<ScriptVerdict> sv;
  if (held == nullptr && judge_ != nullptr)
    sv = judge_->judge(sw, cell, cell.ofport, f, false, now, d.scripts);
  if (sv) {
    d.action = sv->action;
    d.reason = Reason::kScript;
    d.script = std::move(sv->script);
    joinNames(ResolvedNames(cell.runtime.get(), key.remote, now.mono_ms).get(), d.names);
  } else if (held != nullptr) {
    d.action = held->action;
    d.reason = held->reason;
    joinNames(ResolvedNames(cell.runtime.get(), key.remote, now.mono_ms).get(), d.names);
  } else {
    PolicyOutcome o = decideWithPolicy(*cell.policy, key, now, cell.runtime.get(), &d.names);
    const policy::Verdict& v = o.verdict;
    d.counted_rule = o.counted_rule;
    d.action = v.action;
    d.reason = v.rule != nullptr ? Reason::kPolicyRule : Reason::kPolicyDefault;
    d.rule_id = v.rule != nullptr ? v.rule->id : 0;
    // Only what can open a connection is asked about: a TCP segment without SYN (the late
    // FIN or ACK of a connection that ended or was cut) is refused like any unknown packet.
    const bool opens = f.l4 != L4::kTcp || ((f.tcp_flags & packet::kTcpSyn) != 0 &&
                                            (f.tcp_flags & packet::kTcpAck) == 0);
    if (v.rule == nullptr && v.fallback == policy::DefaultAction::kPrompt && opens) {
      // Nothing installed, nothing sent: the packet waits for an answer (and its
      // retransmissions come back here and join the same question).
      d.reason = Reason::kPrompt;
      d.held = true;
      return d;
    }
  }

  // A script's verdict, a prompt's answer and a counted rule's admission are kept when the
  // rules change later (a rule whose count is used up leaves; what it admitted stays open).
  const bool kept = (d.reason != Reason::kPolicyRule && d.reason != Reason::kPolicyDefault) || d.counted_rule != 0;
  if (d.action == Action::kReject) rejectReply(d, f, cell.ofport);
  else commit(d, sw, f, cell.ofport, d.action == Action::kAllow, kept);
  return d;
}

Decision Decider::fromGateway(const SwitchView& sw, const GatewayPort& gw, const Frame& f,
                               Now now) const {
  Decision d;
  if (!routable(f)) {
    d.reason = Reason::kNotIpv4;
    return d;
  }
  const CellPort* cell = sw.cellWithIp(f.ip_dst.v4());
  if (cell == nullptr || cell->env != gw.env) {
    d.reason = Reason::kUnknownPort;
    return d;
  }
  d.cell_id = cell->cell_id;
  if (judge_ != nullptr && f.ip_src.v4() != gw.ip) {
    // Scripts see everything that comes in from the uplink side (a host probing the cell's
    // published ports), but not the environment's resolver.
    if (auto v = judge_->judge(sw, *cell, gw.ofport, f, true, now, d.scripts)) {
      d.action = v->action;
      d.reason = Reason::kScript;
      d.script = std::move(v->script);
      d.inbound = true;
      if (d.action == Action::kReject) rejectReply(d, f, gw.ofport);
      else commit(d, sw, f, gw.ofport, d.action == Action::kAllow, true);
      return d;
    }
  }
  // A reply whose flows timed out comes back here. It may pass only if it is the reverse of a
  // connection the cell's policy lets it open, and is not itself an opening (TCP SYN).
  bool opening = f.l4 == L4::kTcp && (f.tcp_flags & packet::kTcpSyn) != 0 &&
                 (f.tcp_flags & packet::kTcpAck) == 0;
  bool allowed = false;
  bool resolver_answer = false;
  if (!opening) {
    if (f.ip_src.v4() == gw.ip) {
      allowed = resolver_answer = hasPorts(f) && f.src_port == kDnsPort;
    } else {
      // A reply re-admitted: it charges no connection count (the connection was counted
      // when it opened), and rules that ended no longer re-admit anything.
      policy::ConnKey key{protocolOf(f), policy::Direction::kOutbound, f.ip_src,
                          hasPorts(f) ? f.src_port : std::uint16_t{0}};
      // The cell's end owns the connection: process rules decide its replies too.
      std::shared_ptr<const ProcessInfo> owner;
      if (hasPorts(f) && cell->policy->matcher->namesProcesses())
        owner = attribute(*cell, ConnTuple{f.ip_proto, f.ip_dst.v4(), f.ip_src.v4(), f.dst_port, f.src_port, false});
      policy::ProcessKey pkey;
      if (owner) pkey = owner->key();
      policy::Verdict v = verdictForOpen(*cell->policy, key, now, cell->runtime.get(), owner ? &pkey : nullptr);
      allowed = v.action == Action::kAllow;
      d.rule_id = v.rule != nullptr ? v.rule->id : 0;
    }
  }
  if (!allowed && !resolver_answer && f.ip_src.v4() != gw.ip && (opening || f.l4 == L4::kUdp)) {
    // A new connection into the cell: the gateway forwarded it because the cell published the
    // port. The cell's inbound rules decide; with no inbound rule it is refused (an app's
    // `default` is about the connections it opens).
    policy::ConnKey key{protocolOf(f), policy::Direction::kInbound, f.ip_src,
                        hasPorts(f) ? f.dst_port : std::uint16_t{0}};
    // The process that will accept it: the owner of the listening socket.
    if (hasPorts(f))
      d.process = attribute(*cell, ConnTuple{f.ip_proto, f.ip_dst.v4(), f.ip_src.v4(), f.dst_port, f.src_port, true});
    policy::ProcessKey pkey;
    if (d.process) {
      pkey = d.process->key();
      key.process = &pkey;
    }
    PolicyOutcome o = decideWithPolicy(*cell->policy, key, now, nullptr, nullptr);
    if (o.verdict.rule != nullptr) {
      d.rule_id = o.verdict.rule->id;
      d.counted_rule = o.counted_rule;
      d.action = o.verdict.action;
      d.reason = Reason::kInboundRule;
      if (d.action == Action::kReject) rejectReply(d, f, gw.ofport);
      else commit(d, sw, f, gw.ofport, d.action == Action::kAllow, d.counted_rule != 0);
      return d;
    }
  }
  if (allowed) {
    d.action = Action::kAllow;
    d.reason = Reason::kReturnTraffic;
    // An answer of the environment's resolver that missed its flow: learn from it too.
    d.dns_answer = resolver_answer;
    if (resolver_answer) resolverLeg(d, f, gw.ofport, cell->ofport, true);
    else commit(d, sw, f, gw.ofport, true, false);
  } else {
    d.reason = Reason::kInboundRefused;
    commit(d, sw, f, gw.ofport, false, false);
  }
  return d;
}

namespace {

// label: nullopt leaves the connection's label as it is.
ofp::ActionCt commitAction(std::uint16_t zone, std::uint32_t mark, std::optional<std::uint64_t> label) {
  ofp::ActionCt ct;
  ct.flags = ofp::kCtCommit;
  ct.zone = zone;
  ct.exec.push_back(ofp::ActionSetField{ofp::Match().ctMark(mark)});
  if (label) ct.exec.push_back(ofp::ActionSetField{ofp::Match().ctLabel(0, *label)});
  return ct;
}

// What decided a connection, as its label says it (pipeline.h, LabelSource).
std::uint64_t labelFor(const Decision& d) {
  switch (d.reason) {
    case Reason::kScript: return labelOf(LabelSource::kScript, 0);
    case Reason::kPromptAnswer:
    case Reason::kPromptTimeout: return labelOf(LabelSource::kPrompt, 0);
    case Reason::kPolicyRule:
    case Reason::kPolicyDefault:
    case Reason::kInboundRule:
    case Reason::kReturnTraffic:
    case Reason::kOpenAgain: return labelOf(LabelSource::kRule, d.rule_id);
    default: return labelOf(LabelSource::kController, 0);
  }
}

// How the tables send a packet on from `from` (a cell, or null: a gateway) to `to` (a cell,
// or null: `gw`'s side): cell to cell as if routed by the receiver's gateway, and a copy for
// the IDS of what a watched cell sends, after the real output.
ofp::ActionList forwardTo(const SwitchView& sw, const CellPort* from, const CellPort* to, const GatewayPort& gw) {
  ofp::ActionList acts;
  if (to != nullptr) {
    if (from != nullptr) {
      const GatewayPort* their_gw = sw.gatewayFor(to->env);
      acts.emplace_back(ofp::ActionSetField{ofp::Match().ethSrc(their_gw != nullptr ? their_gw->mac : gw.mac)});
      acts.emplace_back(ofp::ActionSetField{ofp::Match().ethDst(to->mac)});
    }
    acts.emplace_back(ofp::ActionOutput{to->ofport, 0});
  } else {
    acts.emplace_back(ofp::ActionOutput{gw.ofport, 0});
  }
  if (from != nullptr && from->ids && sw.ids_port != 0) acts.emplace_back(ofp::ActionOutput{sw.ids_port, 0});
  return acts;
}

}  // namespace

void Decider::commit(Decision& d, const SwitchView& sw, const Frame& f, std::uint32_t in_port, bool allow,
                     bool kept, bool keep_label) const {
  const CellPort* from = sw.cellOnPort(in_port);
  const CellPort* to = sw.cellWithIp(f.ip_dst.v4());
  if (to == from) to = nullptr;
  const CellPort* owner = from != nullptr ? from : to;
  const GatewayPort* gw = owner != nullptr ? sw.gatewayFor(owner->env) : nullptr;
  if (owner == nullptr || gw == nullptr) return;  // the view changed under it: nothing to commit to
  const std::uint16_t idle = f.l4 == L4::kTcp   ? timeouts_.tcp_idle
                             : f.l4 == L4::kUdp ? timeouts_.udp_idle
                                                : timeouts_.icmp_idle;
  ofp::PacketOut po;
  po.in_port = in_port;
  const std::uint64_t label = labelFor(d);
  po.actions.emplace_back(commitAction(zoneOf(*owner), markOf(owner->epoch, allow, kept),
                                       keep_label ? std::nullopt : std::optional(label)));
  if (allow && !keep_label) d.counts.push_back(Decision::Counted{owner->ofport, owner->cell_id, label});
  if (!allow) {
    // Committed as denied: the connection's next packets (a retransmitted SYN) are dropped by
    // the switch until the cell's epoch moves. The packet itself goes nowhere.
    d.legs.push_back(Leg{in_port, false, {}, false, timeouts_.deny_idle});
  } else {
    if (from != nullptr && to != nullptr) {
      // Cell to cell: the receiver's zone tracks the connection too (table 5).
      po.actions.emplace_back(ofp::ActionCtClear{});
      // In the receiver's zone no rule of its own decided it: counted apart from its rules.
      const std::uint64_t theirs = labelOf(LabelSource::kController, 0);
      po.actions.emplace_back(commitAction(zoneOf(*to), markOf(to->epoch, true, kept),
                                           keep_label ? std::nullopt : std::optional(theirs)));
      if (!keep_label) d.counts.push_back(Decision::Counted{to->ofport, to->cell_id, theirs});
    }
    ofp::ActionList there = forwardTo(sw, from, to, *gw);
    ofp::ActionList back = forwardTo(sw, to, from, *gw);
    const std::uint32_t back_port = to != nullptr ? to->ofport : gw->ofport;
    po.actions.insert(po.actions.end(), there.begin(), there.end());
    d.legs.push_back(Leg{in_port, false, std::move(there), false, idle});
    d.legs.push_back(Leg{back_port, true, std::move(back), false, idle});
  }
  po.data.assign(f.raw.begin(), f.raw.end());
  d.packet_outs.push_back(std::move(po));
}

void Decider::resolverLeg(Decision& d, const Frame& f, std::uint32_t in_port, std::uint32_t out_port,
                          bool answer) const {
  const std::uint16_t idle = f.l4 == L4::kTcp ? timeouts_.tcp_idle : timeouts_.udp_idle;
  ofp::PacketOut po;
  po.in_port = in_port;
  po.actions.emplace_back(ofp::ActionOutput{out_port, 0});
  po.data.assign(f.raw.begin(), f.raw.end());
  d.packet_outs.push_back(std::move(po));
  d.legs.push_back(Leg{in_port, false, {ofp::ActionOutput{out_port, 0}}, answer, idle});
  d.legs.push_back(Leg{out_port, true, {ofp::ActionOutput{in_port, 0}}, !answer, idle});
}

Decision Decider::again(const SwitchView& sw, std::uint32_t in_port, const Frame& f, Now now,
                        const CtSeen& ct) const {
  Decision d;
  d.again = true;
  d.reason = Reason::kOpenAgain;
  const CellPort* from = sw.cellOnPort(in_port);
  const CellPort* to = sw.cellWithIp(f.ip_dst.v4());
  if (to == from) to = nullptr;
  const CellPort* owner = from != nullptr ? from : to;
  if (owner == nullptr) {
    d.reason = Reason::kUnknownPort;
    return d;
  }
  d.cell_id = owner->cell_id;
  const bool reply = (ct.state & ofp::kCtRpl) != 0;
  const std::uint16_t fport = hasPorts(f) ? f.src_port : 0, tport = hasPorts(f) ? f.dst_port : 0;
  // Whether the cell at one end may have opened the connection (outbound), or accepted it
  // through a published port (inbound), as when it opened, without counts. `sender`: the end
  // that sent this packet (its remote end is the packet's destination), else the receiver.
  auto opens = [&](const CellPort& cell, bool sender, bool inbound) {
    const IpAddr remote = sender ? f.ip_dst : f.ip_src;
    const std::uint16_t remote_port = sender ? tport : fport, local_port = sender ? fport : tport;
    const Ip4 local = sender ? f.ip_src.v4() : f.ip_dst.v4();
    policy::ConnKey key{protocolOf(f), inbound ? policy::Direction::kInbound : policy::Direction::kOutbound,
                        remote, inbound ? local_port : remote_port};
    std::shared_ptr<const ProcessInfo> proc;
    if (hasPorts(f) && cell.policy->matcher->namesProcesses())
      proc = attribute(cell, ConnTuple{f.ip_proto, local, remote.v4(), local_port, remote_port, inbound});
    policy::ProcessKey pkey;
    if (proc) pkey = proc->key();
    policy::Verdict v = verdictForOpen(*cell.policy, key, now, inbound ? nullptr : cell.runtime.get(),
                                       proc ? &pkey : nullptr);
    d.rule_id = v.rule != nullptr ? v.rule->id : 0;
    return v.action == Action::kAllow;
  };
  // In either zone a packet passes, a reply is one whose receiver opened the connection.
  bool allow = false;
  bool kept = (ct.mark & kMarkKept) != 0 && (ct.mark & kMarkVerdictMask) == kMarkAllow;
  if (kept && labelSource(ct.label) == LabelSource::kRule && labelRule(ct.label) != 0) {
    // A counted rule's admission stays while the rule does, and after its count ran out; a
    // rule someone removed takes what it admitted with it. (A script's or a prompt's verdict
    // names no rule: it stays.)
    const CellPort* zone_cell = from != nullptr && zoneOf(*from) == ct.zone ? from
                                : to != nullptr && zoneOf(*to) == ct.zone   ? to
                                                                            : nullptr;
    const std::uint32_t rid = labelRule(ct.label);
    if (zone_cell != nullptr && !zone_cell->policy->usedUp(rid)) {
      const auto& rules = zone_cell->policy->matcher->policy().rules;
      kept = std::any_of(rules.begin(), rules.end(), [rid](const policy::Rule& r) { return r.id == rid; });
    }
  }
  if (kept) {
    allow = true;  // a script's or a prompt's verdict: not the rules' to undo
  } else if (from != nullptr && to != nullptr) {
    // Cell to cell: the opener's rules decide; when the receiver's zone has no entry at all,
    // either end may have opened it.
    if (ct.table == kTablePeer && ct.mark == 0) allow = opens(*from, true, false) || opens(*to, false, false);
    else allow = reply ? opens(*to, false, false) : opens(*from, true, false);
  } else if (from != nullptr) {
    // From the cell: its own connection, or (a reply) one into it through a published port.
    allow = opens(*from, true, reply);
  } else {
    // From the uplink side: a reply to the cell's connection, or a connection into it.
    allow = opens(*to, false, !reply);
    d.inbound = !reply;
  }
  d.action = allow ? Action::kAllow : Action::kDeny;
  commit(d, sw, f, in_port, allow, kept, kept);
  return d;
}

Decision Decider::asTheSwitchDecided(const SwitchView& sw, std::uint32_t in_port, const Frame& f,
                                      Now now) const {
  Decision d;
  const CellPort* cell = sw.cellOnPort(in_port);
  const bool inbound = cell == nullptr;
  if (inbound) cell = routable(f) ? sw.cellWithIp(f.ip_dst.v4()) : nullptr;
  if (cell == nullptr || !routable(f)) {
    d.reason = Reason::kUnknownPort;
    return d;
  }
  d.cell_id = cell->cell_id;
  d.inbound = inbound;
  policy::ConnKey key{protocolOf(f), inbound ? policy::Direction::kInbound : policy::Direction::kOutbound,
                      inbound ? f.ip_src : f.ip_dst, hasPorts(f) ? f.dst_port : std::uint16_t{0}};
  policy::Verdict v = verdictForOpen(*cell->policy, key, now, inbound ? nullptr : cell->runtime.get());
  if (!inbound) joinNames(ResolvedNames(cell->runtime.get(), key.remote, now.mono_ms).get(), d.names);
  d.action = v.action;
  d.rule_id = v.rule != nullptr ? v.rule->id : 0;
  d.reason = inbound ? (v.rule != nullptr ? Reason::kInboundRule : Reason::kInboundRefused)
                     : (v.rule != nullptr ? Reason::kPolicyRule : Reason::kPolicyDefault);
  return d;
}

Decision Decider::rejectOf(const Frame& f, std::uint32_t in_port) const {
  Decision d;
  d.action = Action::kReject;
  d.reason = Reason::kScript;
  rejectReply(d, f, in_port);
  return d;
}

void Decider::rejectReply(Decision& d, const Frame& f, std::uint32_t in_port) const {
  // Answer at once so the application fails fast: TCP RST, or ICMP unreachable carrying the
  // offending IP header and 8 bytes. No flow is installed, so every attempt gets its answer
  // (the cell's meter bounds how often).
  packet::EthSpec eth{f.eth_dst, f.eth_src, 0};
  Ip4 src = f.ip_src.v4(), dst = f.ip_dst.v4();
  std::vector<std::uint8_t> reply;
  if (f.l4 == L4::kTcp) {
    if ((f.tcp_flags & packet::kTcpRst) != 0) return;
    std::uint32_t seg = static_cast<std::uint32_t>(f.payload.size()) +
                        ((f.tcp_flags & packet::kTcpSyn) != 0 ? 1u : 0u) +
                        ((f.tcp_flags & packet::kTcpFin) != 0 ? 1u : 0u);
    reply = packet::buildTcp4(eth, dst, src, f.dst_port, f.src_port,
                              packet::kTcpRst | packet::kTcpAck, 0, tcpSeq(f) + seg);
  } else {
    // The IP header and 8 bytes of what follows (RFC 792); without a parsed transport
    // header, a minimal IPv4 header's worth.
    std::size_t ip_header = f.l4_offset > f.l3_offset ? f.l4_offset - f.l3_offset : 20;
    std::size_t quoted = std::min<std::size_t>(f.raw.size() - f.l3_offset, ip_header + 8);
    std::uint8_t code = f.l4 == L4::kUdp ? kIcmpPortUnreachable : kIcmpAdminProhibited;
    // ICMP unreachable: 4 unused bytes, then the quoted datagram.
    std::vector<std::uint8_t> body(4, 0);
    auto q = f.raw.subspan(f.l3_offset, quoted);
    body.insert(body.end(), q.begin(), q.end());
    reply = packet::buildIcmp4(eth, dst, src, kIcmpUnreachable, code, Bytes(body));
  }
  ofp::PacketOut po;
  po.in_port = ofp::kPortController;
  po.actions.emplace_back(ofp::ActionOutput{in_port, 0});
  po.data = std::move(reply);
  d.packet_outs.push_back(std::move(po));
}

}  // namespace cw::decide
