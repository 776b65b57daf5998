// The bridge's table layout (docs/pipeline.md) and the flows that implement it. Pure: builds
// FlowMod values; the daemon sends them. The flow table holds policy, never connections:
// decided connections live in Open vSwitch's conntrack, one zone per cell, their verdict and the
// cell's policy epoch in the connection's mark.
//
//   table 0  ingress: per-port anti-spoofing (a cell may send only from its own MAC and IPv4
//            address), ARP answered by the switch, IPv6 dropped explicitly; -> table 1. Every
//            flow that admits anything matches untagged frames only (no 802.1Q tag, not even
//            a priority tag): cells and gateways may not send tagged frames.
//   table 1  scripts: the flows Lua scripts install (drop, allow past their lower flows, rate
//            limit through a meter); inspect mode; miss -> table 2. Only reached through table 0.
//   table 2  conntrack: a cell's DNS to its environment's resolver (static, snooped); every
//            other packet of a cell, or to it from its gateway, through conntrack in the cell's
//            zone -> table 3.
//   table 3  verdict: a connection whose mark carries the cell's current epoch and "allow" ->
//            table 4; "deny" -> drop; conntrack's invalid -> drop; anything else (new, or decided
//            under an older epoch) -> the cell's meter -> the controller, which commits it.
//   table 4  route: to a cell from its gateway -> its port; from a cell to another cell ->
//            through conntrack in the receiver's zone -> table 5; from a cell -> its gateway.
//   table 5  the receiving cell's verdict on cell-to-cell traffic, as in table 3.
//   table 6  rules the switch decides (rule_flows.h): a new connection of a cell whose rules
//            allow it commits it there, with a copy of its first packet to the controller.
//   table 7  count: reached only by resubmit(,7) from the allow verdicts of tables 3 and 5;
//            one flow per (cell, rule, direction) the cell has used, no actions: their
//            counters are the rules' packets and bytes (cellwall rules --counters).
//   everything else: table-miss drop. No NORMAL action anywhere; fail_mode=secure.
#pragma once

#include <cstdint>
#include <vector>

#include "decide/net_view.h"
#include "ofp/messages.h"

namespace cw::decide {

inline constexpr std::uint8_t kTableIngress = 0;
inline constexpr std::uint8_t kTableScript = 1;
inline constexpr std::uint8_t kTableConn = 2;
inline constexpr std::uint8_t kTableVerdict = 3;
inline constexpr std::uint8_t kTableRoute = 4;
inline constexpr std::uint8_t kTablePeer = 5;
inline constexpr std::uint8_t kTableRules = 6;
inline constexpr std::uint8_t kTableCount = 7;

// Priorities.
inline constexpr std::uint16_t kDnsPort = 53;
inline constexpr std::uint16_t kPrioResolver = 1100;  // a cell's DNS to its environment's resolver
inline constexpr std::uint16_t kPrioInvalid = 300;   // conntrack says invalid: dropped
inline constexpr std::uint16_t kPrioVerdict = 200;   // a decided connection of the current epoch
inline constexpr std::uint16_t kPrioTrack = 100;     // table 2: into conntrack
inline constexpr std::uint16_t kPrioRulesNew = 2;    // table 3: a new connection to the rules (table 6)
inline constexpr std::uint16_t kPrioRouteIn = 100;   // table 4: from the gateway to its cell
inline constexpr std::uint16_t kPrioRoutePeer = 90;  // table 4: from another cell
inline constexpr std::uint16_t kPrioRouteOut = 10;   // table 4: from a cell to its gateway
inline constexpr std::uint16_t kPrioIngress = 100;   // anti-spoofing / ARP answers
inline constexpr std::uint16_t kPrioIpv6Drop = 50;
inline constexpr std::uint16_t kPrioPortMiss = 1;    // per-port send-to-controller
// Count table: a rule's flows (what the cell sent matches in_port, above what it received),
// and under them the cell's catch-all pair for what no rule's flows count yet.
inline constexpr std::uint16_t kPrioCountSent = 101, kPrioCountReceived = 100;
inline constexpr std::uint16_t kPrioCountOtherSent = 2, kPrioCountOtherReceived = 1;
// Script table: a script's priority p (0..999) is kPrioScriptBase + p.
inline constexpr std::uint16_t kPrioScriptBase = 1000;
// Script table: every packet of an inspected cell, both ways, to the controller.
inline constexpr std::uint16_t kPrioInspect = 2100;

// Cookie layout: [63..56] kind, [55..32] cell id, [31..0] rule id. Flows of one cell, one
// rule, or one kind can be deleted with a cookie mask.
// kDnsAnswer marks the flow that carries the environment resolver's answers to a cell: it also
// copies each answer to the controller (DNS snooping), and a Packet-In with that cookie is an
// answer to learn from, never a connection to decide.
// kScript: a flow a script installed; [55..32] is then the script's id, [31..0] its own cookie.
// kVerdict: a cell's verdict flows (tables 3 and 5), [31..0] its epoch: replaced when it moves.
// kConnAllow / kConnDeny were per-connection flows of earlier versions: stale wherever found.
// kDnsHeld: the resolver-answer flow of a cell whose host rules the switch decides: the answer
// goes to the controller only, which writes the names' flows and then sends it on.
// kRules: a flow of table 6 that decides a cell's new connections in the switch ([31..0] the
// rule, 0 the app's default); the copy it sends the controller carries the same cookie and is
// logged, never decided. kRulesAsk: a flow of table 6 that sends the packet to the controller,
// held, to be decided there (rule_flows.h says which).
// kCount: a count flow of table 7, [31..0] countCookieRule(label) (kCountOther: the cell's
// catch-all).
enum class CookieKind : std::uint8_t {
  kBase = 0x01, kConnAllow = 0x02, kConnDeny = 0x03, kDnsAnswer = 0x04, kScript = 0x05, kVerdict = 0x06,
  kRules = 0x07, kRulesAsk = 0x08, kDnsHeld = 0x09, kCount = 0x0a
};
inline constexpr std::uint64_t kCookieKindMask = 0xff00000000000000ULL;
inline constexpr std::uint64_t kCookieCellMask = 0x00ffffff00000000ULL;
inline constexpr std::uint64_t kCookieRuleMask = 0x00000000ffffffffULL;
constexpr std::uint64_t makeCookie(CookieKind k, std::uint32_t cell_id, std::uint32_t rule_id) {
  return (std::uint64_t{static_cast<std::uint8_t>(k)} << 56) |
         (std::uint64_t{cell_id & 0xffffff} << 32) | rule_id;
}
constexpr CookieKind cookieKind(std::uint64_t c) { return static_cast<CookieKind>(c >> 56); }
constexpr std::uint32_t cookieCell(std::uint64_t c) {
  return static_cast<std::uint32_t>((c >> 32) & 0xffffff);
}

// A connection's conntrack mark: [31..3] the cell's policy epoch when it was decided, [2] kept
// (decided by something other than the rules — a script, a prompt's answer "once", a timeout —
// which a change of the rules does not undo), [1..0] the verdict. Never 0: 0 is "not decided".
inline constexpr std::uint32_t kMarkAllow = 1;
inline constexpr std::uint32_t kMarkDeny = 2;
inline constexpr std::uint32_t kMarkVerdictMask = 3;
inline constexpr std::uint32_t kMarkKept = 4;
inline constexpr std::uint32_t kMarkEpochShift = 3;
inline constexpr std::uint32_t kMarkEpochMask = ~std::uint32_t{7};
// What a verdict flow matches: epoch and verdict, whether kept or not.
inline constexpr std::uint32_t kMarkMatchMask = kMarkEpochMask | kMarkVerdictMask;
constexpr std::uint32_t markOf(std::uint32_t epoch, bool allow, bool kept) {
  return (epoch << kMarkEpochShift) | (allow ? kMarkAllow : kMarkDeny) | (kept ? kMarkKept : 0);
}
constexpr std::uint32_t markEpoch(std::uint32_t mark) { return mark >> kMarkEpochShift; }
// Epochs wrap within the mark's 29 bits and are never 0.
constexpr std::uint32_t nextEpoch(std::uint32_t e) {
  std::uint32_t n = (e + 1) & (kMarkEpochMask >> kMarkEpochShift);
  return n == 0 ? 1 : n;
}

// A connection's conntrack label names what decided it, so the count table can count its
// packets per rule: [127..64] 0, [63..32] the source, [31..0] the rule id (kRule; 0 is the
// app's default) or 0. Every commit sets it, the controller's and the switch's alike.
enum class LabelSource : std::uint32_t {
  kRule = 0,        // a rule of the app's policy, or its default (rule 0)
  kScript = 1,      // a Lua script's verdict
  kPrompt = 2,      // a prompt's answer that made no rule ("once"), or its timeout
  kController = 3,  // no rule: the receiving cell's side of a cell-to-cell connection, a refusal
};
constexpr std::uint64_t labelOf(LabelSource s, std::uint32_t rule_id) {
  return (std::uint64_t{static_cast<std::uint32_t>(s)} << 32) | (s == LabelSource::kRule ? rule_id : 0);
}
constexpr LabelSource labelSource(std::uint64_t label) { return static_cast<LabelSource>(label >> 32); }
constexpr std::uint32_t labelRule(std::uint64_t label) { return static_cast<std::uint32_t>(label); }
// The count flows' cookie field [31..0]: the rule id, or for another source 0xffffff00 | source
// (rule ids are far below), kCountOther for the catch-all. One rule's flows in every table can
// so be deleted with one cookie-masked delete.
inline constexpr std::uint32_t kCountOther = 0xffffffff;
constexpr std::uint32_t countCookieRule(std::uint64_t label) {
  return labelSource(label) == LabelSource::kRule ? labelRule(label)
                                                  : 0xffffff00u | static_cast<std::uint32_t>(labelSource(label));
}

struct Timeouts {
  // Inspect mode only: how long a connection the controller forwards itself stays decided.
  std::uint16_t tcp_idle = 300;
  std::uint16_t udp_idle = 60;
  std::uint16_t icmp_idle = 10;
  std::uint16_t deny_idle = 10;
};

// Flows every switch gets regardless of cells: table-miss drops.
std::vector<ofp::FlowMod> switchBaseFlows(ofp::Version v);
// A cell's ingress, conntrack, route and miss flows (all with cookie (kBase, cell_id, 0)), in
// inspect mode the flows that send all its packets to the controller (through its meter), its
// DNS to the environment's resolver: queries straight through, or to the controller (through
// its meter) when resolvesByRules(cell); answers to the cell and copied to the controller
// (cookie (kDnsAnswer, cell_id, 0)) for DNS snooping; and its verdict flows for its current
// epoch (cookie (kVerdict, cell_id, epoch)), after a delete of those of every other epoch.
// `ids_port` 0: no copies for the IDS. meter_id 0: none. Sending these again after the app's
// resolve setting or the cell's epoch changed replaces what changed.
std::vector<ofp::FlowMod> cellBaseFlows(ofp::Version v, const CellPort& cell,
                                        const GatewayPort& gw, std::uint32_t meter_id,
                                        std::uint32_t ids_port = 0);
// The cell's verdict flows for its current epoch (tables 3 and 5), after a delete of those of
// every epoch: part of cellBaseFlows, and alone when only the epoch moved.
std::vector<ofp::FlowMod> cellVerdictFlows(const CellPort& cell, const GatewayPort& gw);
// Deletes every flow of a cell in all tables (its connections in conntrack: ctFlushOf).
std::vector<ofp::FlowMod> cellRemoveFlows(const CellPort& cell);
// A gateway port's ingress and miss flows (cookie (kBase, 0, 0)); needs the cells of its
// environment to answer the gateway's ARP requests for them.
std::vector<ofp::FlowMod> gatewayBaseFlows(ofp::Version v, const GatewayPort& gw,
                                           const std::vector<const CellPort*>& cells);
// The flows that send a cell's new connections to its rules in table 6 (cookie (kRules, cell,
// kRulesEntry)): for a cell the switch decides (CellPort::switch_rules), with the rules' flows.
inline constexpr std::uint32_t kRulesEntry = 0xffffffff;
// They are a lease the controller renews every second (hard timeout kRulesLeaseS): should
// cellwalld die, the switch stops deciding new connections on its own within that time, and
// every new connection then waits for a controller that is not there — fail-secure, as without
// switch rules, after at most kRulesLeaseS seconds.
inline constexpr std::uint16_t kRulesLeaseS = 3;
std::vector<ofp::FlowMod> cellRulesEntry(const CellPort& cell, const GatewayPort& gw);
// Deletes those and the cell's rule flows (cookie kinds kRules and kRulesAsk, every table).
std::vector<ofp::FlowMod> cellRulesRemove(const CellPort& cell);
// The count flows of one (cell, label) in table 7 (cookie (kCount, cell, countCookieRule)): what
// the cell sent (in_port = its port) and what it received, of the connections that label names.
// Installed lazily, when the controller first hears of such a connection (PacketPath), so a
// policy of 10,000 rules costs flows only for the rules a cell uses. No actions: only counters.
std::vector<ofp::FlowMod> cellCountFlows(const CellPort& cell, std::uint64_t label);
// Deletes the count flows of one rule of a cell (a rule that no longer exists: its counts go).
ofp::FlowMod cellCountRemove(const CellPort& cell, std::uint32_t rule_id);
// Forgets every connection of a cell (its conntrack zone): when it goes, and before a new cell
// takes its id.
ofp::CtFlushZone ctFlushOf(const CellPort& cell);
// The gateway's ARP answer for one cell (added with the cell, removed with it by cookie).
ofp::FlowMod gatewayArpForCell(const GatewayPort& gw, const CellPort& cell);

}  // namespace cw::decide
