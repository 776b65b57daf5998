// Sample messages shared by the ofp unit tests: one or more of every message type, per
// version, each something that version can express exactly (so encode → decode gives it back).
#pragma once

#include <cctype>
#include <string>
#include <vector>

#include "ofp/codec.h"

namespace cw::ofp::testing {

// Bytes from hex text; anything but hex digits (spaces, newlines) is skipped.
inline std::vector<std::uint8_t> fromHex(const std::string& text) {
  std::vector<std::uint8_t> out;
  std::string digits;
  for (char c : text) {
    if (std::isxdigit(static_cast<unsigned char>(c))) digits.push_back(c);
  }
  for (std::size_t i = 0; i + 1 < digits.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoul(digits.substr(i, 2), nullptr, 16)));
  }
  return out;
}

struct Sample {
  std::string name;
  Message msg;
};

inline MacAddr mac(const char* s) { return *MacAddr::parse(s); }
inline Ip4 ip(const char* s) { return *Ip4::parse(s); }
inline Ip6 ip6(const char* s) { return *Ip6::parse(s); }

inline const std::vector<std::uint8_t>& payload() {
  static const std::vector<std::uint8_t> p = {0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03};
  return p;
}

inline PortDesc port(std::uint32_t no, const char* name, bool speeds) {
  PortDesc p;
  p.port_no = no;
  p.hw_addr = mac("02:00:00:00:00:01");
  p.name = name;
  p.config = 1;
  p.state = 4;
  p.curr = 0x802;
  p.advertised = 0x2;
  p.supported = 0x82;
  p.peer = 0;
  if (speeds) {
    p.curr_speed = 10000000;
    p.max_speed = 10000000;
  }
  return p;
}

// Conntrack (Nicira extensions): matches on every ct field, ct()/ct_clear actions, in every
// message that carries matches or actions. 1.3 only.
inline std::vector<Sample> conntrack13() {
  std::vector<Sample> s;
  Match set_mark;
  set_mark.ctMark(0x9);
  Match set_label;
  set_label.ctLabel(0x1, 0x2);
  FlowMod fm;
  fm.table_id = 2;
  fm.priority = 200;
  fm.match.ethType(0x0800).ctState(kCtTrk | kCtEst, kCtTrk | kCtEst).ctZone(7).ctMark(0x5, 0x7)
      .ctLabel(0, 0x10, 0, 0xff);
  fm.instructions = {InstrApplyActions{{ActionCtClear{}, ActionCt{kCtCommit | kCtForce, 9, 3, 0, {{set_mark}, {set_label}}},
                                        ActionOutput{2, 0}}},
                     InstrGotoTable{4}};
  s.push_back({"ct_flow_mod", fm});
  FlowMod recirc;
  recirc.table_id = 1;
  recirc.match.ethType(0x0800).ctState(kCtTrk, kCtTrk | kCtInv).ctLabel(~0ULL, 0);
  recirc.instructions = {InstrApplyActions{{ActionCt{0, 7, 3, 0, {}}}}};
  s.push_back({"ct_flow_mod_recirc", recirc});
  FlowMod counted;  // a verdict flow that counts the packet in table 7 on its way to table 4
  counted.table_id = 3;
  counted.priority = 200;
  counted.match.ethType(0x0800).ctZone(7).ctMark(0x9, 0xfffffffb);
  counted.instructions = {InstrApplyActions{{ActionResubmit{7}}}, InstrGotoTable{4}};
  s.push_back({"resubmit_flow_mod", counted});
  PacketOut po;
  po.actions = {ActionCt{kCtCommit, 5, kCtNoRecirc, 0, {{set_mark}}}, ActionCtClear{}, ActionOutput{5, 0}};
  po.data = payload();
  s.push_back({"ct_packet_out", po});
  FlowRemoved rm;
  rm.table_id = 3;
  rm.match.ctState(kCtNew | kCtTrk, kCtNew | kCtTrk).ctZone(65535).ctMark(0xffffffff);
  s.push_back({"ct_flow_removed", rm});
  FlowStats fs;
  fs.table_id = 3;
  fs.match.ethType(0x0800).ctState(kCtTrk | kCtRpl, 0xff).ctZone(1);
  fs.instructions = {InstrApplyActions{{ActionCt{kCtCommit, 1, kCtNoRecirc, 0, {{set_mark}, {set_label}}}}}};
  s.push_back({"ct_mp_flow_reply", MultipartReply{0, std::vector<FlowStats>{fs}}});
  return s;
}

// Conntrack flushes: the same bytes in 1.0 (OFPT_VENDOR) and 1.3 (OFPT_EXPERIMENTER).
inline std::vector<Sample> ctFlushes() {
  std::vector<Sample> s;
  s.push_back({"ct_flush_zone", CtFlushZone{5}});
  s.push_back({"ct_flush_all", CtFlush{}});
  s.push_back({"ct_flush_zone_only", CtFlush{0, std::nullopt, std::nullopt}});
  CtTuple tcp{6, ip("10.1.2.3"), ip("10.4.5.6"), 1234, 80, 0, 0, 0};
  CtTuple tcp_reply{6, ip("10.4.5.6"), ip("10.1.2.3"), 80, 1234, 0, 0, 0};
  s.push_back({"ct_flush_tcp", CtFlush{5, tcp, tcp_reply}});
  s.push_back({"ct_flush_reply_only", CtFlush{std::nullopt, std::nullopt, tcp_reply}});
  s.push_back({"ct_flush_udp_src_only", CtFlush{9, CtTuple{17, ip("10.1.2.3"), Ip4{}, 0, 0, 0, 0, 0}, std::nullopt}});
  s.push_back({"ct_flush_proto_only", CtFlush{3, CtTuple{17, Ip4{}, Ip4{}, 0, 0, 0, 0, 0}, std::nullopt}});
  CtTuple icmp{1, ip("10.1.2.3"), ip("10.4.5.6"), 0, 0, 8, 0, 7};
  CtTuple icmp_reply{1, ip("10.4.5.6"), ip("10.1.2.3"), 0, 0, 0, 0, 7};
  s.push_back({"ct_flush_icmp", CtFlush{std::nullopt, icmp, icmp_reply}});
  return s;
}

inline std::vector<Sample> samples13() {
  std::vector<Sample> s;
  s.push_back({"hello", Hello{0x12}});
  s.push_back({"hello_plain", Hello{0}});
  s.push_back({"error", ErrorMsg{4, 6, {1, 2, 3, 4}}});
  s.push_back({"echo_request", Echo{false, {1, 2, 3}}});
  s.push_back({"echo_reply", Echo{true, {}}});
  s.push_back({"features_request", FeaturesRequest{}});
  FeaturesReply fr;
  fr.datapath_id = 0x0000aabbccddeeff;
  fr.n_buffers = 256;
  fr.n_tables = 254;
  fr.auxiliary_id = 1;
  fr.capabilities = 0x4f;
  s.push_back({"features_reply", fr});
  s.push_back({"get_config_request", GetConfigRequest{}});
  s.push_back({"set_config", SwitchConfig{true, 0, 0xffff}});
  s.push_back({"get_config_reply", SwitchConfig{false, 1, 128}});

  FlowMod fm;
  fm.cookie = 0x1234;
  fm.cookie_mask = 0;
  fm.table_id = 1;
  fm.idle_timeout = 60;
  fm.hard_timeout = 300;
  fm.priority = 100;
  fm.flags = kFlowSendFlowRem;
  fm.match.inPort(3).metadataIs(0x10, 0xff).ethSrc(mac("02:00:0a:c9:00:02")).ethDst(mac("01:00:00:00:00:00"), mac("01:00:00:00:00:00"))
      .ethType(0x0800).vlanVid(kVlanPresent | 5).vlanPcp(3).ipDscp(46).ipProto(6)
      .ipv4Src(ip("10.201.0.2")).ipv4Dst(ip("192.168.0.0"), ip("255.255.0.0")).tcpSrc(1234).tcpDst(443);
  Match set_ip;
  set_ip.ipv4Dst(ip("10.0.0.9"));
  Match set_vlan;
  set_vlan.vlanVid(kVlanPresent | 7);
  fm.instructions = {InstrMeter{3},
                     InstrApplyActions{{ActionPushVlan{0x8100}, ActionSetField{set_vlan}, ActionSetField{set_ip},
                                        ActionOutput{2, 0}, ActionPopVlan{}, ActionGroup{9},
                                        ActionOutput{kPortController, 128}}},
                     InstrClearActions{},
                     InstrWriteActions{{ActionOutput{4, 0}}},
                     InstrWriteMetadata{0x5, 0xf},
                     InstrGotoTable{2}};
  s.push_back({"flow_mod", fm});
  FlowMod del;
  del.command = FlowModCommand::kDeleteStrict;
  del.table_id = kTableAll;
  del.cookie = 0x99;
  del.cookie_mask = 0xff;
  del.out_port = 7;
  del.match.ethType(0x86dd).ipProto(17).ipv6Src(ip6("2001:db8::1")).ipv6Dst(ip6("2001:db8::"), ip6("ffff:ffff::"))
      .udpSrc(53).udpDst(5353);
  s.push_back({"flow_mod_delete_v6", del});
  FlowMod ranges;  // port ranges as prefix blocks (hasmask), both ends, TCP and UDP
  ranges.table_id = 6;
  ranges.match.ethType(0x0800).ipProto(17).udpSrc(0x8000, 0x8000).udpDst(0x0400, 0xfc00);
  s.push_back({"flow_mod_udp_port_masks", ranges});
  FlowMod tcp_ranges = ranges;
  tcp_ranges.match = Match();
  tcp_ranges.match.ethType(0x0800).ipProto(6).tcpSrc(0, 0xff00).tcpDst(1024, 0xfff0);
  s.push_back({"flow_mod_tcp_port_masks", tcp_ranges});
  FlowMod arp;
  arp.match.ethType(0x0806).arpOp(1).arpSpa(ip("10.0.0.1")).arpTpa(ip("10.0.0.0"), ip("255.255.255.0"))
      .arpSha(mac("02:00:00:00:00:01")).arpTha(mac("00:00:00:00:00:00"));
  s.push_back({"flow_mod_arp", arp});
  FlowMod icmp;
  icmp.match.ethType(0x0800).ipProto(1).icmpv4Type(8).icmpv4Code(0).vlanVid(0);
  s.push_back({"flow_mod_icmp", icmp});
  FlowMod icmp6;
  icmp6.match.ethType(0x86dd).ipProto(58).icmpv6Type(135).icmpv6Code(0).vlanVid(kVlanPresent, kVlanPresent);
  s.push_back({"flow_mod_icmp6", icmp6});

  PacketOut po;
  po.buffer_id = kNoBuffer;
  po.in_port = kPortController;
  po.actions = {ActionOutput{5, 0}, ActionSetField{set_ip}};
  po.data = payload();
  s.push_back({"packet_out", po});
  FlowRemoved rm;
  rm.cookie = 0x77;
  rm.priority = 200;
  rm.reason = FlowRemovedReason::kDelete;
  rm.table_id = 3;
  rm.duration_sec = 10;
  rm.duration_nsec = 500000000;
  rm.idle_timeout = 30;
  rm.hard_timeout = 60;
  rm.packet_count = 1000;
  rm.byte_count = 64000;
  rm.match.inPort(1).ethType(0x0800).ipProto(17).udpDst(53);
  s.push_back({"flow_removed", rm});
  s.push_back({"port_status", PortStatus{PortReason::kModify, port(1, "cw-firefox-1", true)}});
  s.push_back({"barrier_request", BarrierRequest{}});
  s.push_back({"barrier_reply", BarrierReply{}});
  s.push_back({"role_request", RoleMsg{false, ControllerRole::kMaster, 42}});
  s.push_back({"role_reply", RoleMsg{true, ControllerRole::kSlave, 43}});
  s.push_back({"meter_mod", MeterMod{MeterModCommand::kAdd, kMeterPktps | kMeterBurst, 3, {{1000, 100}, {5000, 0}}}});
  s.push_back({"mp_port_desc_request", MultipartRequest{0, PortDescRequest{}}});
  s.push_back({"mp_table_request", MultipartRequest{0, TableStatsRequest{}}});
  FlowStatsRequest fsr;
  fsr.table_id = 1;
  fsr.out_port = 2;
  fsr.cookie = 0x100;
  fsr.cookie_mask = 0xf00;
  fsr.match.inPort(5);
  s.push_back({"mp_flow_request", MultipartRequest{0, fsr}});
  s.push_back({"mp_port_desc_reply",
               MultipartReply{kMultipartMore, std::vector<PortDesc>{port(1, "eth0", true), port(kPortLocal, "br0", true)}}});
  FlowStats fs;
  fs.table_id = 1;
  fs.duration_sec = 5;
  fs.priority = 100;
  fs.idle_timeout = 60;
  fs.flags = 1;
  fs.cookie = 0xabc;
  fs.packet_count = 3;
  fs.byte_count = 180;
  fs.match.inPort(3).ethType(0x0800);
  fs.instructions = {InstrApplyActions{{ActionOutput{2, 0}}}, InstrGotoTable{2}};
  FlowStats fs2;
  s.push_back({"mp_flow_reply", MultipartReply{0, std::vector<FlowStats>{fs, fs2}}});
  s.push_back({"mp_table_reply", MultipartReply{0, std::vector<TableStats>{{0, 10, 1000, 900}, {1, 0, 0, 0}}}});
  for (auto& c : conntrack13()) s.push_back(std::move(c));
  for (auto& c : ctFlushes()) s.push_back(std::move(c));
  return s;
}

inline std::vector<Sample> samples10() {
  std::vector<Sample> s;
  s.push_back({"hello", Hello{0}});
  s.push_back({"hello_bitmap", Hello{0x2}});
  s.push_back({"error_flow_mod_failed", ErrorMsg{5, 3, {9, 9}}});  // 1.3 numbering: overlap
  s.push_back({"error_bad_request", ErrorMsg{1, 6, {}}});
  s.push_back({"echo_request", Echo{false, {7}}});
  s.push_back({"echo_reply", Echo{true, {7}}});
  s.push_back({"features_request", FeaturesRequest{}});
  FeaturesReply fr;
  fr.datapath_id = 0x1;
  fr.n_buffers = 256;
  fr.n_tables = 1;
  fr.capabilities = 0xc7;
  fr.actions = 0xfff;
  fr.ports = {port(1, "eth0", false), port(kPortLocal, "br0", false)};
  s.push_back({"features_reply", fr});
  s.push_back({"get_config_request", GetConfigRequest{}});
  s.push_back({"set_config", SwitchConfig{true, 0, 128}});
  s.push_back({"get_config_reply", SwitchConfig{false, 0, 0xffff}});

  FlowMod fm;
  fm.cookie = 0x1;
  fm.idle_timeout = 60;
  fm.priority = 100;
  fm.flags = kFlowSendFlowRem | kFlowCheckOverlap;
  fm.match.inPort(3).ethSrc(mac("02:00:0a:c9:00:02")).ethDst(mac("02:00:0a:c9:00:01")).vlanVid(kVlanPresent | 10)
      .vlanPcp(2).ethType(0x0800).ipDscp(10).ipProto(17).ipv4Src(ip("10.0.0.0"), ip("255.0.0.0"))
      .ipv4Dst(ip("8.8.8.8")).udpSrc(5000).udpDst(53);
  Match f1, f2, f3, f4, f5, f6, f7;
  f1.ethSrc(mac("02:00:00:00:00:aa"));
  f2.ethDst(mac("02:00:00:00:00:bb"));
  f3.ipv4Src(ip("1.2.3.4"));
  f4.ipv4Dst(ip("5.6.7.8"));
  f5.udpSrc(1000);  // ip_proto 17 in the match: SET_TP_SRC reads back as UDP
  f6.vlanVid(kVlanPresent | 3);
  f7.ipDscp(8);
  Match pcp;
  pcp.vlanPcp(5);
  fm.instructions = {InstrApplyActions{{ActionSetField{f1}, ActionSetField{f2}, ActionSetField{f3}, ActionSetField{f4},
                                        ActionSetField{f5}, ActionSetField{f6}, ActionSetField{f7},
                                        ActionSetField{pcp}, ActionPopVlan{}, ActionOutput{2, 0},
                                        ActionOutput{kPortController, 128}}}};
  s.push_back({"flow_mod", fm});
  FlowMod arp;
  arp.command = FlowModCommand::kModify;
  arp.match.ethType(0x0806).arpOp(2).arpSpa(ip("10.0.0.1")).arpTpa(ip("10.0.0.0"), ip("255.255.255.0")).vlanVid(0);
  s.push_back({"flow_mod_arp_drop", arp});
  FlowMod icmp;
  icmp.command = FlowModCommand::kDelete;
  icmp.out_port = 4;
  icmp.match.ethType(0x0800).ipProto(1).icmpv4Type(3).icmpv4Code(1);
  s.push_back({"flow_mod_delete_icmp", icmp});
  FlowMod tcp;
  tcp.match.ethType(0x0800).ipProto(6).tcpSrc(1).tcpDst(2);
  Match tp;
  tp.tcpDst(8080);
  tcp.instructions = {InstrApplyActions{{ActionSetField{tp}, ActionOutput{kPortInPort, 0}}}};
  s.push_back({"flow_mod_tcp", tcp});

  PacketIn pi;
  pi.buffer_id = 0x100;
  pi.total_len = 8;
  pi.reason = PacketInReason::kAction;
  pi.match.inPort(7);
  pi.data = Bytes(payload());
  s.push_back({"packet_in", pi});
  PacketOut po;
  po.buffer_id = kNoBuffer;
  po.in_port = kPortController;
  po.actions = {ActionOutput{kPortFlood, 0}, ActionPopVlan{}};
  po.data = payload();
  s.push_back({"packet_out", po});
  FlowRemoved rm;
  rm.cookie = 0x77;
  rm.priority = 200;
  rm.reason = FlowRemovedReason::kHardTimeout;
  rm.duration_sec = 10;
  rm.duration_nsec = 5;
  rm.idle_timeout = 30;
  rm.packet_count = 1000;
  rm.byte_count = 64000;
  rm.match.inPort(1);
  s.push_back({"flow_removed", rm});
  s.push_back({"port_status", PortStatus{PortReason::kAdd, port(2, "cw-slack-1", false)}});
  for (auto& c : ctFlushes()) s.push_back(std::move(c));
  s.push_back({"barrier_request", BarrierRequest{}});
  s.push_back({"barrier_reply", BarrierReply{}});
  FlowStatsRequest fsr;
  fsr.table_id = kTableAll;
  fsr.out_port = kPortAny;
  fsr.match.ethType(0x0800);
  s.push_back({"stats_flow_request", MultipartRequest{0, fsr}});
  s.push_back({"stats_table_request", MultipartRequest{0, TableStatsRequest{}}});
  FlowStats fs;
  fs.duration_sec = 5;
  fs.duration_nsec = 7;
  fs.priority = 100;
  fs.idle_timeout = 60;
  fs.hard_timeout = 10;
  fs.cookie = 0xabc;
  fs.packet_count = 3;
  fs.byte_count = 180;
  fs.match.inPort(3);
  fs.instructions = {InstrApplyActions{{ActionOutput{2, 0}}}};
  s.push_back({"stats_flow_reply", MultipartReply{kMultipartMore, std::vector<FlowStats>{fs, FlowStats{}}}});
  s.push_back({"stats_table_reply", MultipartReply{0, std::vector<TableStats>{{0, 10, 1000, 900}}}});
  return s;
}

}  // namespace cw::ofp::testing
