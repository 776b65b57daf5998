#include "decide/decider.h"

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

// The exact match of one direction of a connection as seen in `f` arriving on `in_port`.
ofp::Match connMatch(const Frame& f, std::uint32_t in_port, bool reverse) {
  ofp::Match m;
  Ip4 src = f.ip_src.v4(), dst = f.ip_dst.v4();
  std::uint16_t sp = f.src_port, dp = f.dst_port;
  if (reverse) {
    std::swap(src, dst);
    std::swap(sp, dp);
  }
  m.inPort(in_port).ethType(packet::kEthIpv4).ipProto(f.ip_proto).ipv4Src(src).ipv4Dst(dst);
  if (f.l4 == L4::kTcp) m.tcpSrc(sp).tcpDst(dp);
  if (f.l4 == L4::kUdp) m.udpSrc(sp).udpDst(dp);
  return m;
}

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
                          const HeldVerdict* held) const {
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
      allowPair(d, f, gw->ofport, cell.ofport, cell.cell_id, nullptr, nullptr, nullptr, gw->ofport);
      // Straight to the resolver, not back through the tables: while the app's resolve setting
      // changes, the tables may still send the cell's queries to the controller.
      d.packet_outs.back().actions = {ofp::ActionOutput{gw->ofport, 0}};
    } else {
      d.reason = Reason::kGatewayService;
      denyFlow(d, f, cell.ofport, cell.cell_id);
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

  if (d.action == Action::kAllow) {
    const std::uint32_t ids = cell.ids ? sw.ids_port : 0;
    if (const CellPort* peer = sw.cellWithIp(dst)) {
      // Cell to cell: straight across the bridge, addressed as if through the gateway.
      allowPair(d, f, peer->ofport, cell.ofport, cell.cell_id, &gw->mac, &peer->mac, &cell.mac, 0,
                cell.ofport, ids);
    } else {
      allowPair(d, f, gw->ofport, cell.ofport, cell.cell_id, nullptr, nullptr, nullptr, 0, cell.ofport, ids);
    }
  } else if (d.action == Action::kReject) {
    rejectReply(d, f, cell.ofport);
  } else {
    denyFlow(d, f, cell.ofport, cell.cell_id);
  }
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
      if (d.action == Action::kAllow)
        allowPair(d, f, cell->ofport, gw.ofport, cell->cell_id, nullptr, nullptr, nullptr);
      else if (d.action == Action::kReject)
        rejectReply(d, f, gw.ofport);
      else
        denyFlow(d, f, gw.ofport, cell->cell_id);
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
      if (d.action == Action::kAllow)
        allowPair(d, f, cell->ofport, gw.ofport, cell->cell_id, nullptr, nullptr, nullptr, 0, cell->ofport,
                  cell->ids ? sw.ids_port : 0);
      else if (d.action == Action::kReject)
        rejectReply(d, f, gw.ofport);
      else
        denyFlow(d, f, gw.ofport, cell->cell_id);
      return d;
    }
  }
  if (allowed) {
    d.action = Action::kAllow;
    d.reason = Reason::kReturnTraffic;
    // An answer of the environment's resolver whose flows had expired: learn from it too.
    d.dns_answer = resolver_answer;
    allowPair(d, f, cell->ofport, gw.ofport, cell->cell_id, nullptr, nullptr, nullptr,
              resolver_answer ? gw.ofport : 0);
  } else {
    d.reason = Reason::kInboundRefused;
    denyFlow(d, f, gw.ofport, cell->cell_id);
  }
  return d;
}

void Decider::allowPair(Decision& d, const Frame& f, std::uint32_t out_port,
                        std::uint32_t in_port, std::uint32_t cell_id, const MacAddr* rewrite_src,
                        const MacAddr* rewrite_dst_fwd, const MacAddr* rewrite_dst_rev,
                        std::uint32_t snoop_from, std::uint32_t copy_from, std::uint32_t copy_to) const {
  std::uint16_t idle = f.l4 == L4::kTcp   ? timeouts_.tcp_idle
                       : f.l4 == L4::kUdp ? timeouts_.udp_idle
                                          : timeouts_.icmp_idle;
  std::uint64_t cookie = makeCookie(CookieKind::kConnAllow, cell_id, d.rule_id);
  auto flow = [&](bool reverse, std::uint32_t from, std::uint32_t to, const MacAddr* dst_mac) {
    ofp::FlowMod fm;
    fm.table_id = kTableConn;
    fm.priority = kPrioConn;
    fm.idle_timeout = idle;
    fm.cookie = cookie;
    // When the flow ends its counters come back (FLOW_REMOVED): the connection log's packets
    // and bytes.
    fm.flags = ofp::kFlowSendFlowRem;
    fm.match = connMatch(f, from, reverse);
    ofp::ActionList acts;
    if (rewrite_src != nullptr) acts.emplace_back(ofp::ActionSetField{ofp::Match().ethSrc(*rewrite_src)});
    if (dst_mac != nullptr) acts.emplace_back(ofp::ActionSetField{ofp::Match().ethDst(*dst_mac)});
    acts.emplace_back(ofp::ActionOutput{to, 0});
    // The IDS's copy of what the cell sends: after the real output, so it never delays it.
    if (copy_to != 0 && from == copy_from) acts.emplace_back(ofp::ActionOutput{copy_to, 0});
    if (snoop_from != 0 && from == snoop_from) {
      // The resolver's answers go to the cell and, as a copy, to the controller (DNS
      // snooping). Delivered to the cell first: the copy never delays the answer.
      fm.cookie = makeCookie(CookieKind::kDnsAnswer, cell_id, d.rule_id);
      acts.emplace_back(ofp::ActionOutput{ofp::kPortController, ofp::kControllerMaxLenNoBuffer});
    }
    fm.instructions.emplace_back(ofp::InstrApplyActions{std::move(acts)});
    return fm;
  };
  d.flows.push_back(flow(false, in_port, out_port, rewrite_dst_fwd));
  d.flows.push_back(flow(true, out_port, in_port, rewrite_dst_rev));
  // Re-inject the held packet through the tables: it meets the flow just added (the switch
  // handles messages of one connection in order).
  ofp::PacketOut po;
  po.in_port = in_port;
  po.actions.emplace_back(ofp::ActionOutput{ofp::kPortTable, 0});
  po.data.assign(f.raw.begin(), f.raw.end());
  d.packet_outs.push_back(std::move(po));
}

Decision Decider::rejectOf(const Frame& f, std::uint32_t in_port) const {
  Decision d;
  d.action = Action::kReject;
  d.reason = Reason::kScript;
  rejectReply(d, f, in_port);
  return d;
}

void Decider::denyFlow(Decision& d, const Frame& f, std::uint32_t in_port,
                       std::uint32_t cell_id) const {
  ofp::FlowMod fm;
  fm.table_id = kTableConn;
  fm.priority = kPrioConn;
  fm.idle_timeout = timeouts_.deny_idle;
  fm.cookie = makeCookie(CookieKind::kConnDeny, cell_id, d.rule_id);
  fm.match = connMatch(f, in_port, false);
  d.flows.push_back(std::move(fm));  // no instructions: drop
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
