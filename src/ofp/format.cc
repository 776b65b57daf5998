// One-line, stable text for messages and matches, close to what ovs-ofctl prints, so logs and
// `cellwall flows` read like the tools people already know. Tests pin these strings: change
// them only on purpose.
#include <cinttypes>
#include <cstdio>
#include <string>
#include <variant>

#include "ofp/codec.h"

namespace cw::ofp {
namespace {

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}
std::string dec(std::uint64_t v) { return std::to_string(v); }

std::string portName(std::uint32_t p) {
  switch (p) {
    case kPortInPort: return "IN_PORT";
    case kPortTable: return "TABLE";
    case kPortNormal: return "NORMAL";
    case kPortFlood: return "FLOOD";
    case kPortAll: return "ALL";
    case kPortController: return "CONTROLLER";
    case kPortLocal: return "LOCAL";
    case kPortAny: return "ANY";
    default: return dec(p);
  }
}

int prefixLen(std::uint32_t mask) {
  std::uint32_t inv = ~mask;
  if ((inv & (inv + 1)) != 0) return -1;
  int n = 32;
  while (n > 0 && ((mask >> (32 - n)) & 1) == 0) --n;
  return n;
}
std::string ip4(Ip4 a, Ip4 mask, bool masked) {
  if (!masked) return a.str();
  int n = prefixLen(mask.v);
  return a.str() + "/" + (n >= 0 ? dec(static_cast<unsigned>(n)) : mask.str());
}

// 128-bit value as one hex number without leading zeros ("0x1", "0x10000000000000000").
std::string hex128(std::uint64_t hi, std::uint64_t lo) {
  if (hi == 0) return hex(lo);
  char buf[40];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64 "%016" PRIx64, hi, lo);
  return buf;
}

// Masked (a flow's match): "+new+trk", "+trk-inv": the flags in mask, set ones (+) first, then
// clear ones (-), each in bit order (ovs-ofctl accepts any order). Exact (what a Packet-In
// reports): "est|trk" as ovs-ofctl prints packet metadata. Other bits: value/mask in hex.
// "+syn-ack" as ovs-ofctl writes a masked tcp_flags match (flags in mask: set ones first).
std::string tcpFlagsText(std::uint16_t bits, std::uint16_t mask) {
  static constexpr struct { std::uint16_t bit; const char* name; } kFlags[] = {
      {kTcpFlagFin, "fin"}, {kTcpFlagSyn, "syn"}, {kTcpFlagRst, "rst"}, {kTcpFlagPsh, "psh"},
      {kTcpFlagAck, "ack"}, {kTcpFlagUrg, "urg"}, {0x040, "ece"}, {0x080, "cwr"}, {0x100, "ns"}};
  if ((mask & ~0x1ffu) != 0) return hex(bits) + "/" + hex(mask);
  std::string s;
  for (bool set : {true, false})
    for (const auto& f : kFlags)
      if ((mask & f.bit) != 0 && ((bits & f.bit) != 0) == set) s += std::string(set ? "+" : "-") + f.name;
  return s;
}

std::string ctStateText(std::uint32_t bits, std::uint32_t mask) {
  static constexpr struct { std::uint32_t bit; const char* name; } kFlags[] = {
      {kCtNew, "new"}, {kCtEst, "est"}, {kCtRel, "rel"}, {kCtRpl, "rpl"},
      {kCtInv, "inv"}, {kCtTrk, "trk"}, {kCtSnat, "snat"}, {kCtDnat, "dnat"}};
  if (mask == 0xffffffff && (bits & ~0xffu) == 0) {
    std::string s;
    for (const auto& f : kFlags) {
      if ((bits & f.bit) == 0) continue;
      if (!s.empty()) s += '|';
      s += f.name;
    }
    return s.empty() ? "0" : s;
  }
  if ((mask & ~0xffu) != 0) return hex(bits) + "/" + hex(mask);
  std::string s;
  for (bool set : {true, false}) {
    for (const auto& f : kFlags) {
      if ((mask & f.bit) == 0 || ((bits & f.bit) != 0) != set) continue;
      s += set ? '+' : '-';
      s += f.name;
    }
  }
  return s.empty() ? "0/0" : s;
}

// ovs-ofctl's names where it has one.
void appendField(std::string& s, const Match& m, Field f) {
  bool mk = m.hasMask(f);
  auto kv = [&](const char* k, const std::string& v) {
    if (!s.empty()) s += ',';
    s += k;
    s += '=';
    s += v;
  };
  switch (f) {
    case Field::kInPort: kv("in_port", portName(m.in_port)); break;
    case Field::kMetadata: kv("metadata", hex(m.metadata) + (mk ? "/" + hex(m.metadata_mask) : "")); break;
    case Field::kEthDst: kv("dl_dst", m.eth_dst.str() + (mk ? "/" + m.eth_dst_mask.str() : "")); break;
    case Field::kEthSrc: kv("dl_src", m.eth_src.str() + (mk ? "/" + m.eth_src_mask.str() : "")); break;
    case Field::kEthType: kv("dl_type", hex(m.eth_type)); break;
    case Field::kVlanVid:
      if (mk) {
        kv("vlan_vid", hex(m.vlan_vid) + "/" + hex(m.vlan_vid_mask));
      } else if ((m.vlan_vid & kVlanPresent) == 0) {
        kv("vlan_vid", m.vlan_vid == 0 ? "none" : hex(m.vlan_vid));
      } else {
        kv("dl_vlan", dec(m.vlan_vid & 0xfffu));
      }
      break;
    case Field::kVlanPcp: kv("dl_vlan_pcp", dec(m.vlan_pcp)); break;
    case Field::kIpDscp: kv("ip_dscp", dec(m.ip_dscp)); break;
    case Field::kIpProto: kv("nw_proto", dec(m.ip_proto)); break;
    case Field::kIpv4Src: kv("nw_src", ip4(m.ipv4_src, m.ipv4_src_mask, mk)); break;
    case Field::kIpv4Dst: kv("nw_dst", ip4(m.ipv4_dst, m.ipv4_dst_mask, mk)); break;
    case Field::kTcpSrc: kv("tp_src", mk ? hex(m.tcp_src) + "/" + hex(m.tcp_src_mask) : dec(m.tcp_src)); break;
    case Field::kTcpDst: kv("tp_dst", mk ? hex(m.tcp_dst) + "/" + hex(m.tcp_dst_mask) : dec(m.tcp_dst)); break;
    case Field::kUdpSrc: kv("udp_src", mk ? hex(m.udp_src) + "/" + hex(m.udp_src_mask) : dec(m.udp_src)); break;
    case Field::kUdpDst: kv("udp_dst", mk ? hex(m.udp_dst) + "/" + hex(m.udp_dst_mask) : dec(m.udp_dst)); break;
    case Field::kIcmpv4Type: kv("icmp_type", dec(m.icmpv4_type)); break;
    case Field::kIcmpv4Code: kv("icmp_code", dec(m.icmpv4_code)); break;
    case Field::kArpOp: kv("arp_op", dec(m.arp_op)); break;
    case Field::kArpSpa: kv("arp_spa", ip4(m.arp_spa, m.arp_spa_mask, mk)); break;
    case Field::kArpTpa: kv("arp_tpa", ip4(m.arp_tpa, m.arp_tpa_mask, mk)); break;
    case Field::kArpSha: kv("arp_sha", m.arp_sha.str()); break;
    case Field::kArpTha: kv("arp_tha", m.arp_tha.str()); break;
    case Field::kIpv6Src: kv("ipv6_src", m.ipv6_src.str() + (mk ? "/" + m.ipv6_src_mask.str() : "")); break;
    case Field::kIpv6Dst: kv("ipv6_dst", m.ipv6_dst.str() + (mk ? "/" + m.ipv6_dst_mask.str() : "")); break;
    case Field::kIcmpv6Type: kv("icmpv6_type", dec(m.icmpv6_type)); break;
    case Field::kIcmpv6Code: kv("icmpv6_code", dec(m.icmpv6_code)); break;
    case Field::kCtState: kv("ct_state", ctStateText(m.ct_state, m.ct_state_mask)); break;
    case Field::kCtZone: kv("ct_zone", dec(m.ct_zone)); break;
    case Field::kTcpFlags: kv("tcp_flags", tcpFlagsText(m.tcp_flags, m.tcp_flags_mask)); break;
    case Field::kCtMark: kv("ct_mark", hex(m.ct_mark) + (mk ? "/" + hex(m.ct_mark_mask) : "")); break;
    case Field::kCtLabel:
      kv("ct_label", hex128(m.ct_label_hi, m.ct_label_lo) +
                         (mk ? "/" + hex128(m.ct_label_hi_mask, m.ct_label_lo_mask) : ""));
      break;
    case Field::kCount: break;
  }
}

// "tcp", "udp6", ... for the eth_type/ip_proto pair, as ovs-ofctl abbreviates them.
const char* shorthand(const Match& m, bool& used_proto) {
  used_proto = false;
  if (!m.has(Field::kEthType) || m.hasMask(Field::kEthType)) return nullptr;
  bool v4 = m.eth_type == 0x0800, v6 = m.eth_type == 0x86dd;
  if (m.eth_type == 0x0806) return "arp";
  if (!v4 && !v6) return nullptr;
  if (m.has(Field::kIpProto)) {
    used_proto = true;
    switch (m.ip_proto) {
      case 6: return v4 ? "tcp" : "tcp6";
      case 17: return v4 ? "udp" : "udp6";
      case 1: if (v4) return "icmp"; break;
      case 58: if (v6) return "icmp6"; break;
      default: break;
    }
    used_proto = false;
  }
  return v4 ? "ip" : "ipv6";
}

std::string formatActions(const ActionList& actions);

struct ActionText {
  std::string operator()(const ActionOutput& a) const {
    if (a.port == kPortController) return "output:CONTROLLER:" + dec(a.max_len);
    return "output:" + portName(a.port);
  }
  std::string operator()(const ActionSetField& a) const {
    std::string s;
    for (unsigned i = 0; i < static_cast<unsigned>(Field::kCount); ++i) {
      if (a.field.has(static_cast<Field>(i))) appendField(s, a.field, static_cast<Field>(i));
    }
    auto eq = s.find('=');
    if (eq == std::string::npos) return "set_field:?";
    return "set_field:" + s.substr(eq + 1) + "->" + s.substr(0, eq);
  }
  std::string operator()(const ActionPushVlan& a) const { return "push_vlan:" + hex(a.ethertype); }
  std::string operator()(const ActionPopVlan&) const { return "pop_vlan"; }
  std::string operator()(const ActionGroup& a) const { return "group:" + dec(a.group_id); }
  std::string operator()(const ActionCt& a) const {
    std::string s = "ct(";
    auto add = [&](const std::string& part) {
      if (s.size() > 3) s += ',';
      s += part;
    };
    if ((a.flags & kCtCommit) != 0) add("commit");
    if ((a.flags & kCtForce) != 0) add("force");
    if ((a.flags & ~(kCtCommit | kCtForce)) != 0) add("flags=" + hex(a.flags));
    if (a.zone != 0) add("zone=" + dec(a.zone));
    if (a.table != kCtNoRecirc) add("table=" + dec(a.table));
    if (a.alg != 0) add("alg=" + dec(a.alg));
    if (!a.exec.empty()) {
      ActionList nested(a.exec.begin(), a.exec.end());
      add("exec(" + formatActions(nested) + ")");
    }
    return s + ")";
  }
  std::string operator()(const ActionCtClear&) const { return "ct_clear"; }
  std::string operator()(const ActionController2& a) const {
    std::string s = "controller(max_len=" + dec(a.max_len);
    if (a.meter_id != 0) s += ",meter_id=" + dec(a.meter_id);
    return s + ")";
  }
  std::string operator()(const ActionResubmit& a) const { return "resubmit(," + dec(a.table) + ")"; }
};

std::string formatActions(const ActionList& actions) {
  std::string s;
  for (const auto& a : actions) {
    if (!s.empty()) s += ',';
    s += std::visit(ActionText{}, a);
  }
  return s;
}

struct InstructionText {
  std::string operator()(const InstrGotoTable& i) const { return "goto_table:" + dec(i.table_id); }
  std::string operator()(const InstrWriteMetadata& i) const {
    return "write_metadata:" + hex(i.metadata) + "/" + hex(i.mask);
  }
  std::string operator()(const InstrWriteActions& i) const { return "write_actions(" + formatActions(i.actions) + ")"; }
  std::string operator()(const InstrApplyActions& i) const { return formatActions(i.actions); }
  std::string operator()(const InstrClearActions&) const { return "clear_actions"; }
  std::string operator()(const InstrMeter& i) const { return "meter:" + dec(i.meter_id); }
};

std::string formatInstructions(const std::vector<Instruction>& instructions) {
  std::string s;
  for (const auto& i : instructions) {
    std::string t = std::visit(InstructionText{}, i);
    if (t.empty()) continue;
    if (!s.empty()) s += ',';
    s += t;
  }
  return "actions=" + (s.empty() ? std::string("drop") : s);
}

const char* commandName(FlowModCommand c) {
  switch (c) {
    case FlowModCommand::kAdd: return "add";
    case FlowModCommand::kModify: return "modify";
    case FlowModCommand::kModifyStrict: return "modify_strict";
    case FlowModCommand::kDelete: return "delete";
    case FlowModCommand::kDeleteStrict: return "delete_strict";
  }
  return "?";
}

std::string tableName(std::uint8_t t) { return t == kTableAll ? "all" : dec(t); }

std::string portText(const PortDesc& p) {
  return "port=" + portName(p.port_no) + " name=" + (p.name.empty() ? "\"\"" : p.name) + " addr=" + p.hw_addr.str() +
         " config=" + hex(p.config) + " state=" + hex(p.state) + " curr=" + hex(p.curr) +
         " speed=" + dec(p.curr_speed) + "/" + dec(p.max_speed);
}

std::string flowStatsText(const FlowStats& f) {
  return "{table=" + dec(f.table_id) + " cookie=" + hex(f.cookie) + " duration=" + dec(f.duration_sec) + "." +
         dec(f.duration_nsec / 1000000) + "s priority=" + dec(f.priority) +
         " idle_timeout=" + dec(f.idle_timeout) + " hard_timeout=" + dec(f.hard_timeout) +
         " flags=" + hex(f.flags) + " n_packets=" + dec(f.packet_count) + " n_bytes=" + dec(f.byte_count) + " " +
         formatMatch(f.match) + " " + formatInstructions(f.instructions) + "}";
}

// "ct_nw_proto=6,ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.2,ct_tp_src=1,ct_tp_dst=2", the keys
// ovs-ofctl ct-flush takes; zero parts are left out as they are on the wire.
std::string ctTupleText(const CtTuple& t) {
  std::string s = "ct_nw_proto=" + dec(t.proto);
  if (t.src.v != 0) s += ",ct_nw_src=" + t.src.str();
  if (t.dst.v != 0) s += ",ct_nw_dst=" + t.dst.str();
  if (t.proto == 1 || t.proto == 58) {
    s += ",icmp_id=" + dec(t.icmp_id) + ",icmp_type=" + dec(t.icmp_type) + ",icmp_code=" + dec(t.icmp_code);
  } else {
    if (t.src_port != 0) s += ",ct_tp_src=" + dec(t.src_port);
    if (t.dst_port != 0) s += ",ct_tp_dst=" + dec(t.dst_port);
  }
  return s;
}

struct MessageText {
  std::string operator()(const CtFlushZone& m) const { return "CT_FLUSH_ZONE zone=" + dec(m.zone); }
  std::string operator()(const CtFlush& m) const {
    std::string s = "CT_FLUSH";
    if (m.zone) s += " zone=" + dec(*m.zone);
    if (m.orig) s += " orig(" + ctTupleText(*m.orig) + ")";
    if (m.reply) s += " reply(" + ctTupleText(*m.reply) + ")";
    return s;
  }
  std::string operator()(const Hello& m) const {
    std::string s = "HELLO";
    if (m.version_bitmap != 0) s += " versions=" + hex(m.version_bitmap);
    return s;
  }
  std::string operator()(const ErrorMsg& m) const {
    return "ERROR type=" + dec(m.type) + " code=" + dec(m.code) + " data_len=" + dec(m.data.size());
  }
  std::string operator()(const Echo& m) const {
    return std::string(m.reply ? "ECHO_REPLY" : "ECHO_REQUEST") + " data_len=" + dec(m.data.size());
  }
  std::string operator()(const FeaturesRequest&) const { return "FEATURES_REQUEST"; }
  std::string operator()(const FeaturesReply& m) const {
    return "FEATURES_REPLY dpid=" + hex(m.datapath_id) + " n_buffers=" + dec(m.n_buffers) +
           " n_tables=" + dec(m.n_tables) + " aux_id=" + dec(m.auxiliary_id) + " capabilities=" +
           hex(m.capabilities) + " actions=" + hex(m.actions) + " ports=" + dec(m.ports.size());
  }
  std::string operator()(const GetConfigRequest&) const { return "GET_CONFIG_REQUEST"; }
  std::string operator()(const SwitchConfig& m) const {
    return std::string(m.set ? "SET_CONFIG" : "GET_CONFIG_REPLY") + " flags=" + hex(m.flags) +
           " miss_send_len=" + dec(m.miss_send_len);
  }
  std::string operator()(const PacketIn& m) const {
    static constexpr const char* kReasons[] = {"no_match", "action", "invalid_ttl"};
    auto r = static_cast<unsigned>(m.reason);
    return "PACKET_IN buffer_id=" + hex(m.buffer_id) + " total_len=" + dec(m.total_len) +
           " reason=" + (r < 3 ? kReasons[r] : dec(r)) + " table=" + dec(m.table_id) + " cookie=" +
           hex(m.cookie) + " " + formatMatch(m.match) + " data_len=" + dec(m.data.size());
  }
  std::string operator()(const PacketOut& m) const {
    return "PACKET_OUT buffer_id=" + hex(m.buffer_id) + " in_port=" + portName(m.in_port) +
           " actions=" + (m.actions.empty() ? std::string("drop") : formatActions(m.actions)) +
           " data_len=" + dec(m.data.size());
  }
  std::string operator()(const FlowMod& m) const {
    std::string s = std::string("FLOW_MOD ") + commandName(m.command) + " table=" + tableName(m.table_id) +
                    " cookie=" + hex(m.cookie);
    if (m.cookie_mask != 0) s += "/" + hex(m.cookie_mask);
    s += " priority=" + dec(m.priority);
    if (m.idle_timeout != 0) s += " idle_timeout=" + dec(m.idle_timeout);
    if (m.hard_timeout != 0) s += " hard_timeout=" + dec(m.hard_timeout);
    if (m.buffer_id != kNoBuffer) s += " buffer_id=" + hex(m.buffer_id);
    if (m.out_port != kPortAny) s += " out_port=" + portName(m.out_port);
    if (m.out_group != kGroupAny) s += " out_group=" + dec(m.out_group);
    if (m.flags != 0) s += " flags=" + hex(m.flags);
    return s + " " + formatMatch(m.match) + " " + formatInstructions(m.instructions);
  }
  std::string operator()(const FlowRemoved& m) const {
    static constexpr const char* kReasons[] = {"idle", "hard", "delete", "group_delete", "meter_delete"};
    auto r = static_cast<unsigned>(m.reason);
    return "FLOW_REMOVED reason=" + (r < 5 ? std::string(kReasons[r]) : dec(r)) + " table=" + dec(m.table_id) +
           " cookie=" + hex(m.cookie) + " priority=" + dec(m.priority) + " duration=" + dec(m.duration_sec) +
           "." + dec(m.duration_nsec / 1000000) + "s idle_timeout=" + dec(m.idle_timeout) +
           " hard_timeout=" + dec(m.hard_timeout) + " n_packets=" + dec(m.packet_count) +
           " n_bytes=" + dec(m.byte_count) + " " + formatMatch(m.match);
  }
  std::string operator()(const PortStatus& m) const {
    static constexpr const char* kReasons[] = {"add", "delete", "modify"};
    auto r = static_cast<unsigned>(m.reason);
    return "PORT_STATUS reason=" + (r < 3 ? std::string(kReasons[r]) : dec(r)) + " " + portText(m.desc);
  }
  std::string operator()(const BarrierRequest&) const { return "BARRIER_REQUEST"; }
  std::string operator()(const BarrierReply&) const { return "BARRIER_REPLY"; }
  std::string operator()(const RoleMsg& m) const {
    static constexpr const char* kRoles[] = {"nochange", "equal", "master", "slave"};
    auto r = static_cast<unsigned>(m.role);
    return std::string(m.reply ? "ROLE_REPLY" : "ROLE_REQUEST") + " role=" + (r < 4 ? kRoles[r] : dec(r)) +
           " generation_id=" + dec(m.generation_id);
  }
  std::string operator()(const MeterMod& m) const {
    static constexpr const char* kCommands[] = {"add", "modify", "delete"};
    auto c = static_cast<unsigned>(m.command);
    std::string s = std::string("METER_MOD ") + (c < 3 ? kCommands[c] : "?") + " meter=" + dec(m.meter_id) +
                    " flags=" + hex(m.flags) + " bands=";
    if (m.bands.empty()) s += "none";
    for (std::size_t i = 0; i < m.bands.size(); ++i) {
      if (i != 0) s += ',';
      s += "drop:rate=" + dec(m.bands[i].rate) + ":burst=" + dec(m.bands[i].burst_size);
    }
    return s;
  }
  std::string operator()(const MultipartRequest& m) const {
    std::string s = "MULTIPART_REQUEST flags=" + hex(m.flags);
    if (std::holds_alternative<PortDescRequest>(m.body)) return s + " port_desc";
    if (std::holds_alternative<TableStatsRequest>(m.body)) return s + " table";
    const auto& f = std::get<FlowStatsRequest>(m.body);
    return s + " flow table=" + tableName(f.table_id) + " out_port=" + portName(f.out_port) + " out_group=" +
           (f.out_group == kGroupAny ? std::string("ANY") : dec(f.out_group)) + " cookie=" + hex(f.cookie) + "/" +
           hex(f.cookie_mask) + " " + formatMatch(f.match);
  }
  std::string operator()(const MultipartReply& m) const {
    std::string s = "MULTIPART_REPLY flags=" + hex(m.flags);
    if (const auto* ports = std::get_if<std::vector<PortDesc>>(&m.body)) {
      s += " port_desc n=" + dec(ports->size());
      for (const auto& p : *ports) s += " {" + portText(p) + "}";
    } else if (const auto* flows = std::get_if<std::vector<FlowStats>>(&m.body)) {
      s += " flow n=" + dec(flows->size());
      for (const auto& f : *flows) s += " " + flowStatsText(f);
    } else if (const auto* tables = std::get_if<std::vector<TableStats>>(&m.body)) {
      s += " table n=" + dec(tables->size());
      for (const auto& t : *tables) {
        s += " {table=" + dec(t.table_id) + " active=" + dec(t.active_count) + " lookup=" + dec(t.lookup_count) +
             " matched=" + dec(t.matched_count) + "}";
      }
    }
    return s;
  }
};

}  // namespace

std::string formatMatch(const Match& m) {
  bool used_proto = false;
  const char* sh = shorthand(m, used_proto);
  std::string s = sh != nullptr ? sh : "";
  for (unsigned i = 0; i < static_cast<unsigned>(Field::kCount); ++i) {
    auto f = static_cast<Field>(i);
    if (!m.has(f)) continue;
    if (sh != nullptr && f == Field::kEthType) continue;
    if (used_proto && f == Field::kIpProto) continue;
    appendField(s, m, f);
  }
  return s.empty() ? "any" : s;
}

std::string format(const Decoded& d) {
  std::string body = std::visit(MessageText{}, d.msg);
  auto sp = body.find(' ');
  std::string name = body.substr(0, sp);
  std::string rest = sp == std::string::npos ? "" : body.substr(sp);
  return name + " xid=" + hex(d.header.xid) + rest;
}

}  // namespace cw::ofp
