// The bridge's table layout (docs/pipeline.md) and the flows that implement it. Pure: builds
// FlowMod values; the daemon sends them.
//
//   table 0  ingress: per-port anti-spoofing (a cell may send only from its own MAC and IPv4
//            address), ARP answered by the switch, IPv6 dropped explicitly; -> table 1. Every
//            flow that admits anything matches untagged frames only (no 802.1Q tag, not even
//            a priority tag): cells and gateways may not send tagged frames.
//   table 1  scripts: the flows Lua scripts install (drop, allow past their lower flows, rate
//            limit through a meter); miss -> table 2. Only reached through table 0.
//   table 2  connections: exact flow pairs installed per decision (idle timeout: the flow
//            table is the per-connection cache); per-port miss -> meter -> controller.
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

// Priorities.
inline constexpr std::uint16_t kDnsPort = 53;
inline constexpr std::uint16_t kPrioResolver = 1100;  // a cell's DNS to its environment's resolver
inline constexpr std::uint16_t kPrioConn = 1000;     // per-connection exact flows
inline constexpr std::uint16_t kPrioIngress = 100;   // anti-spoofing / ARP answers
inline constexpr std::uint16_t kPrioIpv6Drop = 50;
inline constexpr std::uint16_t kPrioPortMiss = 1;    // per-port send-to-controller
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
enum class CookieKind : std::uint8_t {
  kBase = 0x01, kConnAllow = 0x02, kConnDeny = 0x03, kDnsAnswer = 0x04, kScript = 0x05
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

struct Timeouts {
  std::uint16_t tcp_idle = 300;
  std::uint16_t udp_idle = 60;
  std::uint16_t icmp_idle = 10;
  std::uint16_t deny_idle = 10;  // drop flows for denied connections: spare the controller
};

// Flows every switch gets regardless of cells: table-miss drops.
std::vector<ofp::FlowMod> switchBaseFlows(ofp::Version v);
// A cell's ingress and miss flows (all with cookie (kBase, cell_id, 0)), in inspect mode the
// flows that send all its packets to the controller (through its meter), and its DNS to the
// environment's resolver: queries straight through, or to the controller (through its meter)
// when resolvesByRules(cell); answers to the cell and copied to the controller (cookie
// (kDnsAnswer, cell_id, 0)) for DNS snooping. meter_id 0: none. Sending these again after the
// app's resolve setting changed replaces the query flows (same match and priority).
std::vector<ofp::FlowMod> cellBaseFlows(ofp::Version v, const CellPort& cell,
                                        const GatewayPort& gw, std::uint32_t meter_id);
// Deletes every flow of a cell (base and connections) in all tables.
std::vector<ofp::FlowMod> cellRemoveFlows(const CellPort& cell);
// A gateway port's ingress and miss flows (cookie (kBase, 0, 0)); needs the cells of its
// environment to answer the gateway's ARP requests for them.
std::vector<ofp::FlowMod> gatewayBaseFlows(ofp::Version v, const GatewayPort& gw,
                                           const std::vector<const CellPort*>& cells);
// The gateway's ARP answer for one cell (added with the cell, removed with it by cookie).
ofp::FlowMod gatewayArpForCell(const GatewayPort& gw, const CellPort& cell);

}  // namespace cw::decide
