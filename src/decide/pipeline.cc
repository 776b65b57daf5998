#include "decide/pipeline.h"

#include "packet/frame.h"

namespace cw::decide {

namespace {

using ofp::FlowMod;
using ofp::Match;

constexpr std::uint16_t kArpRequest = 1;
constexpr std::uint16_t kArpReply = 2;

FlowMod add(std::uint8_t table, std::uint16_t prio, std::uint64_t cookie, Match m,
            std::vector<ofp::Instruction> instr) {
  FlowMod fm;
  fm.table_id = table;
  fm.priority = prio;
  fm.cookie = cookie;
  fm.match = m;
  fm.instructions = std::move(instr);
  return fm;
}

ofp::Action setField(Match m) { return ofp::ActionSetField{m}; }

// An ARP request for `asked` arriving on `port` is answered from the switch with `answer_mac`,
// so ARP never crosses the bridge and a cell cannot learn or poison anything.
FlowMod arpResponder(std::uint32_t port, MacAddr requester_mac, Ip4 requester_ip, Ip4 asked,
                     MacAddr answer_mac, std::uint64_t cookie, bool check_sender) {
  Match m;
  m.inPort(port).vlanVid(ofp::kVlanNone).ethType(packet::kEthArp).arpOp(kArpRequest).arpTpa(asked);
  if (check_sender) m.ethSrc(requester_mac).arpSpa(requester_ip).arpSha(requester_mac);
  ofp::ActionList acts{
      setField(Match().ethDst(requester_mac)), setField(Match().ethSrc(answer_mac)),
      setField(Match().arpOp(kArpReply)),      setField(Match().arpTha(requester_mac)),
      setField(Match().arpTpa(requester_ip)),  setField(Match().arpSha(answer_mac)),
      setField(Match().arpSpa(asked)),         ofp::ActionOutput{ofp::kPortInPort, 0}};
  return add(kTableIngress, kPrioIngress, cookie, m, {ofp::InstrApplyActions{std::move(acts)}});
}

ofp::InstrApplyActions toController(std::uint16_t max_len) {
  return {{ofp::ActionOutput{ofp::kPortController, max_len}}};
}

// One delete per kind of the cell's flows, in every table.
std::vector<FlowMod> deleteKinds(const CellPort& cell, std::initializer_list<CookieKind> kinds) {
  std::vector<FlowMod> out;
  for (auto kind : kinds) {
    FlowMod fm;
    fm.command = ofp::FlowModCommand::kDelete;
    fm.table_id = ofp::kTableAll;
    fm.cookie = makeCookie(kind, cell.cell_id, 0);
    fm.cookie_mask = kCookieKindMask | kCookieCellMask;
    out.push_back(fm);
  }
  return out;
}

bool hasHostRules(const CellPort& cell) {
  if (!cell.policy || !cell.policy->matcher) return false;
  for (const auto& r : cell.policy->matcher->policy().rules)
    if (!r.match.hosts.empty()) return true;
  return false;
}

}  // namespace

std::vector<FlowMod> switchBaseFlows(ofp::Version /*v*/) {
  // Table-miss in the ingress and connection tables: no instructions = drop. Explicit rather
  // than relying on the OpenFlow 1.3 default, which switches may configure otherwise. What no
  // script flow matches goes on from the script table to the connections.
  const std::uint64_t cookie = makeCookie(CookieKind::kBase, 0, 0);
  std::vector<FlowMod> out;
  out.push_back(add(kTableIngress, 0, cookie, Match(), {}));
  out.push_back(add(kTableScript, 0, cookie, Match(), {ofp::InstrGotoTable{kTableConn}}));
  for (std::uint8_t t : {kTableConn, kTableVerdict, kTableRoute, kTablePeer, kTableRules, kTableCount})
    out.push_back(add(t, 0, cookie, Match(), {}));
  // What conntrack calls invalid (a segment outside the window, a bad checksum, a reply to
  // nothing in a state that needs one) goes nowhere, in either zone a packet passes through.
  for (std::uint8_t t : {kTableVerdict, kTablePeer})
    out.push_back(add(t, kPrioInvalid, cookie,
                      Match().ethType(packet::kEthIpv4).ctState(ofp::kCtTrk | ofp::kCtInv, ofp::kCtTrk | ofp::kCtInv),
                      {}));
  return out;
}

std::vector<FlowMod> cellBaseFlows(ofp::Version v, const CellPort& cell, const GatewayPort& gw,
                                   std::uint32_t meter_id, std::uint32_t ids_port) {
  std::uint64_t cookie = makeCookie(CookieKind::kBase, cell.cell_id, 0);
  std::vector<FlowMod> out;
  auto metered = [&](ofp::InstrApplyActions then) {
    std::vector<ofp::Instruction> ins;
    if (meter_id != 0 && v == ofp::Version::kOf13) ins.emplace_back(ofp::InstrMeter{meter_id});
    ins.emplace_back(std::move(then));
    return ins;
  };
  // Anti-spoofing: only the cell's own MAC and IPv4 source go on, untagged: the `ip` match
  // sees through an 802.1Q tag, which would then ride along on the connection (VLAN hopping
  // on a trunked uplink). Tagged and priority-tagged frames fall to the table-miss drop.
  out.push_back(add(kTableIngress, kPrioIngress, cookie,
                    Match().inPort(cell.ofport).ethSrc(cell.mac).vlanVid(ofp::kVlanNone).ethType(packet::kEthIpv4)
                        .ipv4Src(cell.ip),
                    {ofp::InstrGotoTable{kTableScript}}));
  out.push_back(arpResponder(cell.ofport, cell.mac, cell.ip, gw.ip, gw.mac, cookie, true));
  // IPv6 is not routed by cellwall yet: dropped on purpose, never a way around the policy.
  out.push_back(add(kTableIngress, kPrioIpv6Drop, cookie,
                    Match().inPort(cell.ofport).ethType(packet::kEthIpv6), {}));
  // DNS to the environment's resolver, UDP and TCP. A cell that may resolve any name: always
  // allowed, so decided once here rather than per query (a DNS-heavy app opens a new socket per
  // lookup). A cell whose names are checked (resolve = "rules"): every query goes to the
  // controller through the cell's meter, which forwards it, answers REFUSED, or resets a TCP
  // connection (docs/dns.md); nothing per query is installed. The answers also go to the
  // controller: DNS snooping. Delivered to the cell first, so the copy never delays an answer.
  const bool checked = resolvesByRules(cell);
  const bool hold_answers = cell.switch_rules && hasHostRules(cell);
  for (std::uint8_t proto : {packet::kProtoUdp, packet::kProtoTcp}) {
    Match q;
    q.inPort(cell.ofport).ethType(packet::kEthIpv4).ipProto(proto).ipv4Src(cell.ip).ipv4Dst(gw.ip);
    Match a;
    a.inPort(gw.ofport).ethType(packet::kEthIpv4).ipProto(proto).ipv4Src(gw.ip).ipv4Dst(cell.ip);
    if (proto == packet::kProtoUdp) {
      q.udpDst(kDnsPort);
      a.udpSrc(kDnsPort);
    } else {
      q.tcpDst(kDnsPort);
      a.tcpSrc(kDnsPort);
    }
    if (checked) {
      out.push_back(add(kTableConn, kPrioResolver, cookie, q, metered(toController(ofp::kControllerMaxLenNoBuffer))));
    } else {
      out.push_back(add(kTableConn, kPrioResolver, cookie, q,
                        {ofp::InstrApplyActions{{ofp::ActionOutput{gw.ofport, 0}}}}));
    }
    if (hold_answers) {
      // The switch decides the cell's connections, some by name: the answer waits at the
      // controller until its names are flows (PacketPath), then goes on.
      out.push_back(add(kTableConn, kPrioResolver, makeCookie(CookieKind::kDnsHeld, cell.cell_id, 0), a,
                        {toController(ofp::kControllerMaxLenNoBuffer)}));
    } else {
      out.push_back(add(kTableConn, kPrioResolver, makeCookie(CookieKind::kDnsAnswer, cell.cell_id, 0), a,
                        {ofp::InstrApplyActions{{ofp::ActionOutput{cell.ofport, 0},
                                                 ofp::ActionOutput{ofp::kPortController,
                                                                   ofp::kControllerMaxLenNoBuffer}}}}));
    }
  }
  if (cell.inspect) {
    // Inspect mode: every packet the cell sends, and every packet sent to it, goes to the
    // controller (through the cell's meter: inspect mode is bounded by the cell's Packet-In
    // rate), which forwards it itself once the scripts' inspect_* functions have seen it.
    for (bool from_cell : {true, false}) {
      Match m;
      if (from_cell) m.inPort(cell.ofport).ethType(packet::kEthIpv4).ipv4Src(cell.ip);
      else m.ethType(packet::kEthIpv4).ipv4Dst(cell.ip);
      out.push_back(add(kTableScript, kPrioInspect, cookie, m, metered(toController(ofp::kControllerMaxLenNoBuffer))));
    }
  }
  const std::uint16_t zone = zoneOf(cell);
  auto track = [zone](std::uint8_t then_table) {
    ofp::ActionCt ct;
    ct.zone = zone;
    ct.table = then_table;
    return ofp::InstrApplyActions{{ct}};
  };
  const Match from_cell = Match().inPort(cell.ofport).ethType(packet::kEthIpv4);
  const Match to_cell_from_gw = Match().inPort(gw.ofport).ethType(packet::kEthIpv4).ipv4Dst(cell.ip);
  // Table 2: everything the cell sends, and everything its gateway sends it, through
  // conntrack in the cell's zone.
  out.push_back(add(kTableConn, kPrioTrack, cookie, from_cell, {track(kTableVerdict)}));
  out.push_back(add(kTableConn, kPrioTrack, cookie, to_cell_from_gw, {track(kTableVerdict)}));
  // Table 3: a connection not decided under the cell's current epoch goes to the controller,
  // through the cell's meter so one cell cannot flood it (what its gateway sends it: the
  // gateway's own miss flow, gatewayBaseFlows).
  out.push_back(add(kTableVerdict, kPrioPortMiss, cookie, Match().inPort(cell.ofport),
                    metered(toController(ofp::kControllerMaxLenNoBuffer))));
  if (cell.scripts_see_invalid) {
    // What conntrack calls invalid from the cell goes to the scripts (through the meter) before
    // it is dropped: a scan of bare FINs is nothing else. Never forwarded.
    out.push_back(add(kTableVerdict, kPrioInvalid + 1, cookie,
                      Match(from_cell).ctState(ofp::kCtTrk | ofp::kCtInv, ofp::kCtTrk | ofp::kCtInv),
                      metered(toController(ofp::kControllerMaxLenNoBuffer))));
  }
  // Table 4: where an allowed packet goes. From the gateway: to the cell. From another cell:
  // through conntrack in this cell's zone too (table 5), so each cell's zone sees both
  // directions of each of its connections. From the cell: to its gateway, and a copy to the
  // IDS after the real output, so the copy never delays it.
  out.push_back(add(kTableRoute, kPrioRouteIn, cookie, to_cell_from_gw,
                    {ofp::InstrApplyActions{{ofp::ActionOutput{cell.ofport, 0}}}}));
  out.push_back(add(kTableRoute, kPrioRoutePeer, cookie, Match().ethType(packet::kEthIpv4).ipv4Dst(cell.ip),
                    {track(kTablePeer)}));
  ofp::ActionList to_gw{ofp::ActionOutput{gw.ofport, 0}};
  if (ids_port != 0 && cell.ids) to_gw.emplace_back(ofp::ActionOutput{ids_port, 0});
  out.push_back(add(kTableRoute, kPrioRouteOut, cookie, from_cell, {ofp::InstrApplyActions{std::move(to_gw)}}));
  // Table 5: cell-to-cell traffic this cell's zone has no current verdict for: the controller
  // decides it again (through this cell's meter).
  out.push_back(add(kTablePeer, kPrioPortMiss, cookie, Match().ethType(packet::kEthIpv4).ctZone(zone),
                    metered(toController(ofp::kControllerMaxLenNoBuffer))));
  if (cell.count) {
    // Table 7: what no rule's count flows count yet (connections decided before the controller
    // heard of their rule, or by an earlier daemon), per direction.
    const std::uint64_t other = makeCookie(CookieKind::kCount, cell.cell_id, kCountOther);
    const Match in_zone = Match().ethType(packet::kEthIpv4).ctZone(zone);
    out.push_back(add(kTableCount, kPrioCountOtherSent, other, Match(in_zone).inPort(cell.ofport), {}));
    out.push_back(add(kTableCount, kPrioCountOtherReceived, other, in_zone, {}));
  }
  for (auto& fm : cellVerdictFlows(cell, gw)) out.push_back(std::move(fm));
  return out;
}

std::vector<FlowMod> cellVerdictFlows(const CellPort& cell, const GatewayPort& gw) {
  const std::uint16_t zone = zoneOf(cell);
  std::vector<FlowMod> out;
  // The verdict flows of every other epoch go first: connections decided under them come to
  // the controller again.
  FlowMod del;
  del.command = ofp::FlowModCommand::kDelete;
  del.table_id = ofp::kTableAll;
  del.cookie = makeCookie(CookieKind::kVerdict, cell.cell_id, 0);
  del.cookie_mask = kCookieKindMask | kCookieCellMask;
  out.push_back(del);
  const std::uint64_t cookie = makeCookie(CookieKind::kVerdict, cell.cell_id, cell.epoch);
  auto verdict = [&](bool allow) {
    return Match().ethType(packet::kEthIpv4).ctZone(zone).ctMark(markOf(cell.epoch, allow, false), kMarkMatchMask);
  };
  // Allowed: counted in table 7 on the way (resubmit comes back; a goto could not), then routed.
  // Open vSwitch credits a datapath flow's packets to every OpenFlow flow its translation
  // touched, so the count costs nothing per packet once the datapath flow exists.
  std::vector<ofp::Instruction> allow;
  if (cell.count) allow.emplace_back(ofp::InstrApplyActions{{ofp::ActionResubmit{kTableCount}}});
  allow.emplace_back(ofp::InstrGotoTable{kTableRoute});
  out.push_back(add(kTableVerdict, kPrioVerdict, cookie, verdict(true), std::move(allow)));
  // Denied: dropped, except what the cell sends in the reply direction of a connection someone
  // opened towards it and was refused: that is the cell's own new connection (a remote host
  // must not be able to block the cell's future connection by opening it first), decided by
  // the controller. Replies to the cell's own denied (or cut) connections are dropped.
  out.push_back(add(kTableVerdict, kPrioVerdict, cookie, verdict(false).ctState(0, ofp::kCtRpl), {}));
  out.push_back(add(kTableVerdict, kPrioVerdict, cookie, verdict(false).inPort(gw.ofport), {}));
  // Cell to cell: delivered as if routed by the gateway.
  // Counted first in this cell's zone: what it receives from another cell.
  ofp::ActionList peer;
  if (cell.count) peer.emplace_back(ofp::ActionResubmit{kTableCount});
  peer.emplace_back(setField(Match().ethSrc(gw.mac)));
  peer.emplace_back(setField(Match().ethDst(cell.mac)));
  peer.emplace_back(ofp::ActionOutput{cell.ofport, 0});
  out.push_back(add(kTablePeer, kPrioVerdict, cookie, verdict(true), {ofp::InstrApplyActions{std::move(peer)}}));
  return out;
}

std::vector<FlowMod> cellRemoveFlows(const CellPort& cell) {
  // One delete per kind of the cell's flows: a script's flows carry the script's id where a
  // cell's carry the cell's, and are not the cell's to remove.
  std::vector<FlowMod> out = deleteKinds(cell, {CookieKind::kBase, CookieKind::kVerdict, CookieKind::kDnsAnswer,
                                                 CookieKind::kRules, CookieKind::kRulesAsk, CookieKind::kDnsHeld,
                                                 CookieKind::kCount});
  // Script flows about the cell's address (a port-scan guard's block of it): the address goes
  // back to the pool, and the next cell to get it must not inherit them. A non-strict delete
  // takes every flow of the script table whose match includes that source (or destination).
  for (bool src : {true, false}) {
    FlowMod fm;
    fm.command = ofp::FlowModCommand::kDelete;
    fm.table_id = kTableScript;
    fm.match.ethType(packet::kEthIpv4);
    if (src) fm.match.ipv4Src(cell.ip);
    else fm.match.ipv4Dst(cell.ip);
    out.push_back(fm);
  }
  return out;
}

std::vector<FlowMod> gatewayBaseFlows(ofp::Version /*v*/, const GatewayPort& gw,
                                      const std::vector<const CellPort*>& cells) {
  std::uint64_t cookie = makeCookie(CookieKind::kBase, 0, 0);
  std::vector<FlowMod> out;
  // Untagged only, as from a cell.
  out.push_back(add(kTableIngress, kPrioIngress, cookie,
                    Match().inPort(gw.ofport).ethSrc(gw.mac).vlanVid(ofp::kVlanNone).ethType(packet::kEthIpv4),
                    {ofp::InstrGotoTable{kTableScript}}));
  out.push_back(add(kTableIngress, kPrioIpv6Drop, cookie,
                    Match().inPort(gw.ofport).ethType(packet::kEthIpv6), {}));
  for (const CellPort* c : cells) out.push_back(gatewayArpForCell(gw, *c));
  // What comes from the uplink side and no cell's zone has a current verdict for: a new
  // connection into a cell (a published port), or a connection decided under an older epoch.
  out.push_back(add(kTableVerdict, kPrioPortMiss, cookie, Match().inPort(gw.ofport),
                    {toController(ofp::kControllerMaxLenNoBuffer)}));
  return out;
}

std::vector<FlowMod> cellRulesEntry(const CellPort& cell, const GatewayPort& gw) {
  // A connection never decided (new, no mark) goes to the cell's rules in table 6 instead of
  // the controller: what the cell opens, and TCP openings (SYN without ACK) towards it from its
  // gateway. Anything else from the uplink side that conntrack does not know may be a late
  // reply to the cell's own connection, which only the controller tells apart (fromGateway). A
  // stale mark still goes to the controller, to be decided again.
  const std::uint64_t cookie = makeCookie(CookieKind::kRules, cell.cell_id, kRulesEntry);
  const std::uint32_t fresh = ofp::kCtTrk | ofp::kCtNew;
  std::vector<FlowMod> out;
  auto leased = [&out] { out.back().hard_timeout = kRulesLeaseS; };
  out.push_back(add(kTableVerdict, kPrioRulesNew, cookie,
                    Match().inPort(cell.ofport).ethType(packet::kEthIpv4).ctState(fresh, fresh | ofp::kCtInv).ctMark(0),
                    {ofp::InstrGotoTable{kTableRules}}));
  leased();
  out.push_back(add(kTableVerdict, kPrioRulesNew, cookie,
                    Match().inPort(gw.ofport).ethType(packet::kEthIpv4).ipProto(packet::kProtoTcp).ipv4Dst(cell.ip)
                        .ctState(fresh, fresh | ofp::kCtInv).ctMark(0)
                        .tcpFlags(ofp::kTcpFlagSyn, ofp::kTcpFlagSyn | ofp::kTcpFlagAck),
                    {ofp::InstrGotoTable{kTableRules}}));
  leased();
  return out;
}

std::vector<FlowMod> cellRulesRemove(const CellPort& cell) {
  return deleteKinds(cell, {CookieKind::kRules, CookieKind::kRulesAsk});
}

std::vector<FlowMod> cellCountFlows(const CellPort& cell, std::uint64_t label) {
  const std::uint64_t cookie = makeCookie(CookieKind::kCount, cell.cell_id, countCookieRule(label));
  const Match m = Match().ethType(packet::kEthIpv4).ctZone(zoneOf(cell)).ctLabel(0, label);
  return {add(kTableCount, kPrioCountSent, cookie, Match(m).inPort(cell.ofport), {}),
          add(kTableCount, kPrioCountReceived, cookie, m, {})};
}

FlowMod cellCountRemove(const CellPort& cell, std::uint32_t rule_id) {
  FlowMod fm;
  fm.command = ofp::FlowModCommand::kDelete;
  fm.table_id = kTableCount;
  fm.cookie = makeCookie(CookieKind::kCount, cell.cell_id, rule_id);
  fm.cookie_mask = ~0ULL;
  return fm;
}

ofp::CtFlushZone ctFlushOf(const CellPort& cell) {
  ofp::CtFlushZone f;
  f.zone = zoneOf(cell);
  return f;
}

FlowMod gatewayArpForCell(const GatewayPort& gw, const CellPort& cell) {
  return arpResponder(gw.ofport, gw.mac, gw.ip, cell.ip, cell.mac,
                      makeCookie(CookieKind::kBase, cell.cell_id, 0), false);
}

}  // namespace cw::decide
