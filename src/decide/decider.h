// The decision path: a Packet-In (already parsed) becomes a verdict and the flows that carry
// it out. Pure and synchronous: no I/O, no locks; reads one SwitchView.
//
//   Packet-In -> parse -> which cell / gateway port -> special destinations (the env's DNS
//   resolver, the gateway itself, other cells) -> the app's policy -> flows + packet-out.
//
// With default = "prompt" and no rule, the decision is only marked held (the caller keeps the
// packet for an answer). Later stages (process, scripts) plug in between "special
// destinations" and "policy" without changing the shape of Decision.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "decide/net_view.h"
#include "decide/pipeline.h"
#include "dns/dns.h"
#include "ofp/messages.h"
#include "packet/frame.h"
#include "policy/policy.h"

namespace cw::decide {

// Why a Packet-In got its verdict. Stable names (decisionReasonName) for logs and counters.
enum class Reason : std::uint8_t {
  kPolicyRule,       // a rule of the app's policy matched
  kPolicyDefault,    // no rule matched: the app's default
  kEnvResolver,      // DNS to the environment's own resolver (always allowed, snooped)
  kGatewayService,   // anything else to the gateway address: refused
  kReturnTraffic,    // from the uplink side, the reverse of a connection the cell may open
  kInboundRefused,   // from the uplink side, not a reply, and no inbound rule admits it
  kInboundRule,      // a new connection into the cell (a published port), by an inbound rule
  kNotIpv4,          // a protocol the pipeline does not route (or a frame with an 802.1Q tag)
  kUnknownPort,      // a port that belongs to no cell or gateway
  kNoGateway,        // the cell's environment has no gateway on this switch
  kMalformed,        // frame did not parse
  kPrompt,           // no rule matched and the app's default is "prompt": held for an answer
  kPromptAnswer,     // a held connection, decided by an answer that made no rule ("once")
  kPromptTimeout,    // a held connection nobody answered: the app's prompt_timeout_action
  kScript,           // a Lua script's verdict (before the app's rules)
  // resolve = "rules" (docs/dns.md): the controller checks each query to the environment's
  // resolver. kDnsQuery: its name is one an allow rule names, forwarded; kDnsRefused: any other
  // name, or a query that does not read cleanly, answered REFUSED at once; kDnsTcpRefused: DNS
  // over TCP to the resolver, reset (its name cannot be checked before the resolver has it).
  kDnsQuery,
  kDnsRefused,
  kDnsTcpRefused,
  // An open connection decided again after its app's rules changed (its mark carries an older
  // epoch), with its new verdict.
  kOpenAgain,
  // What conntrack calls invalid, from a cell while scripts are loaded: the scripts see it, then
  // it is dropped.
  kCtInvalid,
  kCount
};
const char* reasonName(Reason r);

// The policy's protocol for a frame (kAny for what is neither TCP, UDP nor ICMP).
policy::Protocol protocolOf(const packet::Frame& f);

// Who owns a connection inside its cell (docs/attribution.md): from kernel state the app
// cannot forge.
struct ProcessInfo {
  std::uint32_t pid = 0;
  std::uint32_t uid = 0;
  std::string user;        // the uid's name ("" if it has none)
  std::string exe;         // "" if unknown: the process exited before it was read
  std::string comm;        // the process name the kernel recorded (15 bytes at most)
  std::string cmdline;     // arguments joined by spaces (bounded); "" if unknown
  std::string parent_exe;  // "" if unknown
  bool exited = false;     // gone by the time its details were read
  const char* how = "";    // where the owner came from: "socket", "listener", "port", "fd-scan"
  // The rules' view (views into this object).
  policy::ProcessKey key() const { return policy::ProcessKey{pid, uid, user, exe, comm, parent_exe}; }
};

// A connection as seen from its cell: the cell's end is `local`.
struct ConnTuple {
  std::uint8_t proto = 0;  // IPPROTO_TCP or IPPROTO_UDP
  Ip4 local, remote;
  std::uint16_t local_port = 0, remote_port = 0;
  bool inbound = false;  // a connection into the cell: attributed through its listener
};

// Finds the process behind a connection (the daemon's attrib/ code). Called on switch threads,
// concurrently.
class ProcessFinder {
 public:
  virtual ~ProcessFinder() = default;
  // null: not attributable (not TCP/UDP, the socket is gone and nothing recorded it, the cell
  // has no cgroup).
  virtual std::shared_ptr<const ProcessInfo> find(const CellPort& cell, const ConnTuple& t) = 0;
  // Attribute every connection (for the log), not only those of apps whose rules name a
  // process.
  virtual bool always() const { return false; }
};

// One direction of a decided connection, as the controller forwards it itself when it must
// (inspect mode; a packet that reaches it again moments after its connection was decided):
// packets arriving on `in_port` with the connection's addresses and ports (`reverse`: swapped)
// get `actions` — no conntrack, no copy to the controller; none for a denied connection.
struct Leg {
  std::uint32_t in_port = 0;
  bool reverse = false;
  ofp::ActionList actions;
  bool snoop = false;        // these are the environment resolver's answers: learn from them
  std::uint16_t idle_s = 0;  // how long inspect mode keeps the direction decided
};

// What conntrack said about a packet that reached the controller after it (the Packet-In's
// ct_* fields, docs/pipeline.md). Absent: the packet never went through conntrack (the
// resolver's flows, inspect mode, an older pipeline).
struct CtSeen {
  std::uint32_t state = 0;  // ofp::kCt* bits
  std::uint16_t zone = 0;
  std::uint32_t mark = 0;   // 0: not decided
  std::uint8_t table = 0;   // the table whose flow sent it: kTableVerdict or kTablePeer
  std::uint64_t label = 0;  // its low 64 bits: what decided it (pipeline.h, labelOf)
};

struct Decision {
  policy::Action action = policy::Action::kDeny;
  Reason reason = Reason::kMalformed;
  std::uint32_t rule_id = 0;
  std::uint32_t cell_id = 0;
  // The held packet, with the conntrack commit of the connection's verdict in front of its
  // outputs (nothing is added to the flow table per connection), or a reject's reply.
  std::vector<ofp::PacketOut> packet_outs;
  std::vector<Leg> legs;  // an allowed connection: both directions; a denied one: its own
  // An open connection decided again (its cell's epoch moved): nothing was charged, and the
  // log hears of it only when the verdict changed (it was cut).
  bool again = false;
  bool dns_answer = false;  // the packet is an answer of the environment's resolver: snoop it
  // An allowed connection committed with a label (pipeline.h, LabelSource) in a cell's zone:
  // the count flows (cell, label) the packet path installs if the cell has none yet, before
  // the packet-outs. One per zone the connection was committed in (two, cell to cell); none
  // for a denial, or an open connection whose label the commit kept.
  struct Counted {
    std::uint32_t ofport = 0;  // the cell's port (with its id: the cell may have gone meanwhile)
    std::uint32_t cell_id = 0;
    std::uint64_t label = 0;
  };
  std::vector<Counted> counts;
  // A rule with a connection count admitted this connection (0: none): the daemon persists
  // the count and retires the rule when it is used up.
  std::uint32_t counted_rule = 0;
  std::string names;  // the names the cell resolved for the remote address, comma-separated
  // Reason::kPrompt: nothing was installed or sent; the caller holds the packet for an answer.
  bool held = false;
  // Reason::kScript: the script that decided.
  std::string script;
  // A query to the environment's resolver that the controller handles itself (Reason kDnsQuery,
  // kDnsRefused, kDnsTcpRefused): `flows` stays empty, `packet_outs` forwards it or answers it;
  // `names` is the query's name. `detail` says why a query was refused when it did not read
  // cleanly (the DNS parse error's stable name).
  bool dns_query = false;
  std::string detail;
  std::optional<dns::ParseError> query_error;  // the same, for the counters
  bool inbound = false;  // a connection into the cell (from its gateway)
  // The process that owns the connection, when it was attributed.
  std::shared_ptr<const ProcessInfo> process;
  // What scripts asked for while deciding (their own table): sent before `flows`.
  struct ScriptRequests {
    std::vector<ofp::MeterMod> meters;  // first: the flows may use them
    std::vector<ofp::FlowMod> flows;
  } scripts;
};

// What scripts say about a packet (src/daemon/scripts.h). Asked on the switch threads,
// concurrently, after anti-spoofing and the special destinations (the environment's resolver
// and gateway), before the app's rules; never about a held packet being released.
struct ScriptVerdict {
  policy::Action action = policy::Action::kDeny;
  std::string script;  // the one that decided
};
class PacketJudge {
 public:
  virtual ~PacketJudge() = default;
  // `inbound`: the packet goes towards `cell` (it came from the cell's gateway). Meters and
  // flows the scripts asked for are appended to `out`. nullopt: no script decided.
  virtual std::optional<ScriptVerdict> judge(const SwitchView& sw, const CellPort& cell,
                                             std::uint32_t in_port, const packet::Frame& f,
                                             bool inbound, Now now,
                                             Decision::ScriptRequests& out) = 0;
  // Inspect mode: a packet of an inspected cell (any packet, not only a connection's first),
  // before its connection's verdict is applied. nullopt: no script decided.
  virtual std::optional<ScriptVerdict> inspect(const SwitchView& /*sw*/, const CellPort& /*cell*/,
                                               std::uint32_t /*in_port*/, const packet::Frame& /*f*/,
                                               bool /*inbound*/, Now /*now*/,
                                               Decision::ScriptRequests& /*out*/) {
    return std::nullopt;
  }
};

// A verdict for a held connection that no rule gives (an answer "once", a timeout): decide()
// applies it instead of the policy, with the same flows a rule's verdict would install.
struct HeldVerdict {
  policy::Action action = policy::Action::kDeny;
  Reason reason = Reason::kPromptTimeout;  // kPromptAnswer or kPromptTimeout
};

// Decides one connection of `cell` against its app's policy: the names the cell resolved for
// the remote address take part, rules whose lifetime ended are skipped, and a rule with a
// connection count is charged one connection. Used by the decider and by `rules explain`.
struct PolicyOutcome {
  policy::Verdict verdict;
  std::uint32_t counted_rule = 0;
};
PolicyOutcome decideWithPolicy(const CompiledPolicy& p, policy::ConnKey key, Now now,
                               const CellRuntime* runtime, std::string* names_out);

// The verdict for a connection that is already open (a reply whose flows expired, a re-check
// after the rules changed): the cell's names take part and rules whose time ran out are
// skipped, but connection counts are neither checked nor charged — the connection was counted
// when it opened.
policy::Verdict verdictForOpen(const CompiledPolicy& p, policy::ConnKey key, Now now,
                               const CellRuntime* runtime, const policy::ProcessKey* process = nullptr);

// The names a cell resolved for one address, valid while this object lives: it holds the
// cell's name-table lock (null runtime: no names).
class ResolvedNames {
 public:
  ResolvedNames(const CellRuntime* runtime, const IpAddr& ip, std::int64_t now_mono_ms);
  std::span<const std::string_view> get() const { return {buf_.data(), n_}; }

 private:
  std::unique_lock<std::mutex> lock_;
  std::array<std::string_view, names::kMaxNamesPerIp> buf_;
  std::size_t n_ = 0;
};

class Decider {
 public:
  explicit Decider(Timeouts timeouts = {}) : timeouts_(timeouts) {}
  // Scripts to ask before the app's rules (null: none). Set before the first decide().
  void setJudge(PacketJudge* judge) { judge_ = judge; }
  // Who owns connections (null: nobody is asked, process rules never match). Set before the
  // first decide().
  void setProcessFinder(ProcessFinder* finder) { finder_ = finder; }
  // A reject's answer to a packet (TCP RST or ICMP unreachable), without a decision.
  Decision rejectOf(const packet::Frame& f, std::uint32_t in_port) const;

  // A new connection the switch decided by itself (table 6: the first packet of a connection
  // of a cell's, or a TCP opening towards one from its gateway): the verdict, rule and names
  // the controller gives it, for the log. Nothing is charged, committed or sent.
  Decision asTheSwitchDecided(const SwitchView& sw, std::uint32_t in_port, const packet::Frame& f,
                              Now now) const;

  // `raw` is the Packet-In's frame; the PacketOut re-injects it through the tables so it
  // follows the flows just installed.
  // `held`: decide a held connection by that verdict instead of the policy.
  // `ct`: what conntrack said (null: the packet did not pass it). A packet whose connection was
  // decided under an older epoch of its cell is decided again as an open connection: connection
  // counts are neither checked nor charged, scripts are not asked again, and a verdict that was
  // not the rules' (kept in the mark) stays.
  Decision decide(const SwitchView& sw, std::uint32_t in_port, const packet::Frame& frame,
                  Now now = {}, const HeldVerdict* held = nullptr, const CtSeen* ct = nullptr) const;

 private:
  Decision fromCell(const SwitchView& sw, const CellPort& cell, const packet::Frame& f, Now now,
                    const HeldVerdict* held) const;
  Decision fromGateway(const SwitchView& sw, const GatewayPort& gw, const packet::Frame& f,
                       Now now) const;
  Decision again(const SwitchView& sw, std::uint32_t in_port, const packet::Frame& f, Now now,
                 const CtSeen& ct) const;
  // Carries out an allow (`allow`) or a deny of the packet that arrived on `in_port`: commits
  // its connection in the zone of the cell that sent it or, from a gateway, of the cell it is
  // for (cell to cell, an allow: in both), with the verdict in its mark, and for an allow sends
  // the packet on as the tables would. `kept`: a verdict not the rules' to undo (a script's, a
  // prompt's answer, a counted rule's). The connection's label names what decided it (d's
  // reason and rule); `keep_label`: an open connection decided again by a kept verdict, whose
  // label stays as it was.
  void commit(Decision& d, const SwitchView& sw, const packet::Frame& f, std::uint32_t in_port,
              bool allow, bool kept, bool keep_label = false) const;
  // The environment resolver's traffic, which never passes conntrack: straight on to `out_port`
  // (`snoop`: the packet is an answer, learned from).
  void resolverLeg(Decision& d, const packet::Frame& f, std::uint32_t in_port, std::uint32_t out_port,
                   bool snoop) const;
  void rejectReply(Decision& d, const packet::Frame& f, std::uint32_t in_port) const;
  // A query of `cell` to its environment's resolver when resolvesByRules(cell)
  // (resolver_query.cc).
  void resolverQuery(Decision& d, const CellPort& cell, const GatewayPort& gw, const packet::Frame& f,
                     Now now) const;

  // The owner of a connection of `cell`, when its policy or the log needs it.
  std::shared_ptr<const ProcessInfo> attribute(const CellPort& cell, const ConnTuple& t) const;

  Timeouts timeouts_;
  PacketJudge* judge_ = nullptr;
  ProcessFinder* finder_ = nullptr;
};

}  // namespace cw::decide
