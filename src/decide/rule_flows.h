// Rules the switch can decide, compiled into flows: a cell's new connection is then committed
// in the datapath, with no controller round trip, exactly as the controller would have decided
// it (docs/pipeline.md, "Table 6 — rules"). Pure: builds FlowMod values from a compiled policy
// and the clock the caller passes; the daemon installs and removes them.
//
// Table 6 is reached (the daemon's table-3 flows) by a packet of a new connection (ct_state
// +new, ct_mark 0) from a cell's port, and by one towards the cell from its gateway. Each flow
// there either decides the connection itself or sends the packet to the controller, held, as
// the per-cell miss of table 3 does:
//   - allow: a copy of the first kCopyLength bytes to the controller (for the log; the packet
//     is not held, and the copy's cookie names the rule), then ct(commit, zone=<cell>,
//     table=4, exec(set_field:<epoch|allow>->ct_mark)): committed, and on to the route table
//     by recirculation (goto_table:4 from table 6 is refused: OpenFlow's goto only goes
//     forward; a recirculation is a new pass and may enter any table);
//   - deny: the copy, then the commit with the deny mark and no table (dropped);
//   - to the controller: meter:<cell's meter>, output:CONTROLLER (the whole packet).
//
// What goes to the controller, and why:
//   - reject rules (the controller builds the RST or ICMP answer) and a reject or prompt
//     default (the table's lowest flow for the cell);
//   - rules with a connection count (each admission is claimed there);
//   - a rule with a time limit, in the last second before it ends: its own flow's hard_timeout
//     is the whole seconds left (rounded down), and a controller flow just below it, with the
//     seconds rounded up, covers the rest, so the switch never outlives the rule nor drops it
//     early;
//   - what the cell sends its gateway's address (the gateway is not a service host: the
//     controller refuses it with reason gateway_service), and what the gateway's own address
//     sends the cell;
//   - from the gateway, everything but TCP: UDP is first checked as a reply to the cell's own
//     traffic (decider.cc fromGateway), ICMP and other protocols only so;
//   - everything, when the policy names processes (a connection must be attributed first),
//     or when its precedence does not fit 16-bit priorities, or when it needs more than
//     RuleFlowOptions::max_flows flows (RuleFlows::all_to_controller, with why).
// IPv6 prefixes are skipped (cells are IPv4 only).
//
// Inbound: the flows for packets from the gateway decide TCP segments that OPEN a connection
// (SYN without ACK) by the cell's inbound rules, as fromGateway does; a TCP segment without
// SYN that conntrack calls new (a reply whose connection it forgot) is decided there by the
// cell's outbound rules instead. So the daemon's entry into this table from the gateway must
// let through only TCP with tcp_flags=+syn-ack (and any non-TCP, which goes to the controller
// here anyway); everything else from the gateway goes to the controller from table 3, as now.
//
// Precedence (docs/policy.md, "Which rule wins"): every flow gets the Matcher's precedence key
// — destination specificity (an exact host name > a wildcard by labels > a prefix by length >
// no destination), then the narrowest port range, then a named protocol, then deny/reject over
// allow, then the lower rule id — and the distinct keys of the policy, ranked, are the
// priorities, highest first. The rule id is part of the key, so two overlapping flows of the
// same priority are always the same rule's, and the flow that matches a packet first is the
// rule the Matcher picks: the switch and the controller agree on the rule, not only on the
// verdict. The keys depend on the policy alone (not the clock, not the counts), so the flows
// nameFlows builds later rank consistently with ruleFlows's.
//
// Names: a host rule matches a connection only through a name the cell resolved to its
// address (DNS snooping). nameFlows builds the flows for one address and the names the cell
// has for it, ending when the names do; the daemon calls it for each answer it learns from.
// Host rules always outrank address rules, so these flows sit above the prefix flows of
// ruleFlows.
//
// Timeouts are a safety net, not the clock: Open vSwitch removes an expired flow at its next
// expiry sweep, a moment after its hard_timeout, so the daemon should delete a rule's flows by
// cookie when the rule ends (it moves the cell's epoch then anyway), and a name's when its
// name table evicts it early (kMaxNamesPerIp, max_entries).
//
// Cookies: [kind][cell id][rule id], rule id 0 for a cell's defaults and guards. Two kinds, so
// that a Packet-In from table 6 says what it is: kCookieRules, a copy of a packet whose
// connection the switch committed (log it, decide nothing); kCookieRulesAsk, a packet held for
// the controller to decide, as from table 3's miss. (The copy cannot be told apart otherwise:
// its ct_mark is not exposed before a recirculation, and a SYN fits in kCopyLength.) A cell's
// rule flows go with one cookie-masked delete per kind.
//
// Both functions only read the policy (and the RuleLimits' counts), and are safe to call from
// any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "decide/net_view.h"
#include "decide/pipeline.h"
#include "ofp/messages.h"

namespace cw::decide {

// Cookie kinds of table-6 flows (pipeline.h): decided in the switch (the Packet-In is a copy),
// and sent to the controller (the Packet-In is held).
inline constexpr CookieKind kCookieRules = CookieKind::kRules;
inline constexpr CookieKind kCookieRulesAsk = CookieKind::kRulesAsk;
// How much of a packet the switch copies to the controller when it decided the connection
// itself: enough for the log (Ethernet, IPv4 with options, TCP with options).
inline constexpr std::uint16_t kCopyLength = 128;
// Table-6 priorities: the guards on top, the ranked rules below them, the defaults at the
// bottom.
inline constexpr std::uint16_t kPrioRuleGuard = 0xffff;
inline constexpr std::uint16_t kPrioRuleTop = 0xfffe;
inline constexpr std::uint16_t kPrioRuleLowest = 3;
inline constexpr std::uint16_t kPrioRuleDefault = 2;
inline constexpr std::uint16_t kPrioRuleMiss = 1;

struct RuleFlowOptions {
  std::size_t max_flows = 20000;
};

struct RuleFlows {
  // For table kTableRules. With all_to_controller: only the cell's two flows that send
  // everything to the controller.
  std::vector<ofp::FlowMod> flows;
  bool all_to_controller = false;  // the switch decides nothing for this cell: `why`
  std::string why;
};

// The flows that decide `cell`'s outbound (from cell.ofport) and inbound (from gw.ofport to
// cell.ip) new connections exactly as the controller would (decider.cc), at now_unix_ms, for
// the rules the switch can decide; the rest goes to the controller through `meter_id` (0: no
// meter). Rules whose time ran out or whose count is used up at now_unix_ms are left out (the
// next rule decides, as in the Matcher). Host rules are not here: see nameFlows. The policy
// must be the cell's (cell.policy).
RuleFlows ruleFlows(const CompiledPolicy& p, const CellPort& cell, const GatewayPort& gw,
                    std::uint32_t meter_id, std::int64_t now_unix_ms, RuleFlowOptions options = {});

// A name the cell resolved to an address, and how much longer its name table keeps it (ms from
// now: NameTable's expiry, grace included, minus now).
struct ResolvedName {
  std::string_view name;  // any case, trailing dot allowed
  std::int64_t valid_ms = 0;
};

// The flows for the outbound host rules of `cell`'s policy that match the names the cell
// resolved to `ip` (exactly, or strictly below a wildcard): nw_dst=ip, priorities from the same
// ranking as ruleFlows. Each flow that decides ends (hard_timeout, whole seconds rounded down)
// before the name it stands for, or its rule, does; a controller flow under it covers the
// fraction after (as for a timed rule). Pass EVERY name the cell currently has for `ip`
// (NameTable::names), each time one is learnt or renewed: the flows of two names that reach one
// rule alike have the same match and priority, so the switch keeps one of them, the last sent —
// which must then live as long as the longer-lived name. Empty when no rule matches, or when the
// policy cannot be decided in the switch at all (it names processes, or its precedence does not
// fit). Cost: linear in the number of rules times names.
std::vector<ofp::FlowMod> nameFlows(const CompiledPolicy& p, const CellPort& cell,
                                    const GatewayPort& gw, std::uint32_t meter_id,
                                    std::span<const ResolvedName> names, Ip4 ip,
                                    std::int64_t now_unix_ms);
// The same for one name valid `ttl_s` seconds: only right when it is the only name the cell has
// for `ip` (see above). ttl_s 0: nothing.
std::vector<ofp::FlowMod> nameFlows(const CompiledPolicy& p, const CellPort& cell,
                                    const GatewayPort& gw, std::uint32_t meter_id,
                                    std::string_view name, Ip4 ip, std::uint32_t ttl_s,
                                    std::int64_t now_unix_ms);

// The labels (labelOf(kRule, id)) of the rules whose flows among `flows` commit and allow, each
// once: the count flows a cell needs up front when the controller hears of nothing the switch
// decides (CellPort::log_copies off).
std::vector<std::uint64_t> allowedLabels(const std::vector<ofp::FlowMod>& flows);

// Deletes a cell's table-6 flows (both cookie kinds): all of them, or only rule `rule_id`'s
// (when it ends or changes; 0 is the cell's defaults and guards).
std::vector<ofp::FlowMod> removeRuleFlows(const CellPort& cell);
std::vector<ofp::FlowMod> removeRuleFlows(const CellPort& cell, std::uint32_t rule_id);

// The port range lo..hi as (value, mask) prefix blocks, in ascending order: 1024-2047 is
// {0x400, 0xfc00}; 0-65535 is {0, 0}. At most 30 blocks.
struct PortBlock {
  std::uint16_t value = 0, mask = 0;
  bool operator==(const PortBlock&) const = default;
};
std::vector<PortBlock> portBlocks(std::uint16_t lo, std::uint16_t hi);

}  // namespace cw::decide
