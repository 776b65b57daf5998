// Encodes a fixed set of OpenFlow 1.3 and 1.0 messages with cw_ofp and prints one line per
// message: "<name> <version> <xid> <type> <length> <hex>". With a file argument it also writes
// them as a pcap (TCP over IPv4, 127.0.0.1 → 127.0.0.1:6653, one message per segment) so
// check_ofp.py can compare our bytes with what ovs-ofctl and Wireshark's dissectors read.
// The values here are mirrored by the expectations in check_ofp.py: change both together.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ofp/codec.h"

namespace {

using namespace cw::ofp;

struct Item {
  std::string name;
  Version version;
  std::uint32_t xid;
  Message msg;
};

cw::MacAddr mac(const char* s) { return *cw::MacAddr::parse(s); }
cw::Ip4 ip(const char* s) { return *cw::Ip4::parse(s); }
cw::Ip6 ip6(const char* s) { return *cw::Ip6::parse(s); }

std::vector<std::uint8_t> frame() {
  std::vector<std::uint8_t> f(60, 0);
  const std::uint8_t head[] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00};
  std::memcpy(f.data(), head, sizeof head);
  return f;
}

std::vector<Item> items() {
  std::vector<Item> v;
  auto both = [&](const std::string& name, std::uint32_t xid, const Message& m) {
    v.push_back({name + "13", Version::kOf13, xid, m});
    v.push_back({name + "10", Version::kOf10, xid + 100, m});
  };
  v.push_back({"hello13", Version::kOf13, 1, Hello{0x12}});
  v.push_back({"hello10", Version::kOf10, 101, Hello{0}});
  both("echo", 2, Echo{false, {1, 2, 3, 4}});
  both("barrier", 3, BarrierRequest{});
  both("set_config", 4, SwitchConfig{true, 0, 1500});
  v.push_back({"role13", Version::kOf13, 5, RoleMsg{false, ControllerRole::kMaster, 17}});

  FlowMod fm;
  fm.cookie = 0xc0ffee;
  fm.table_id = 1;
  fm.priority = 100;
  fm.idle_timeout = 60;
  fm.hard_timeout = 300;
  fm.flags = kFlowSendFlowRem;
  fm.match.inPort(3).metadataIs(0x10, 0xff).ethSrc(mac("02:00:0a:c9:00:02"))
      .ethDst(mac("01:00:00:00:00:00"), mac("01:00:00:00:00:00")).ethType(0x0800).vlanVid(kVlanPresent | 5)
      .ipProto(6).ipv4Src(ip("10.201.0.2")).ipv4Dst(ip("192.168.0.0"), ip("255.255.0.0")).tcpDst(80);
  Match set_dst;
  set_dst.ipv4Dst(ip("10.0.0.9"));
  fm.instructions = {InstrMeter{3}, InstrApplyActions{{ActionSetField{set_dst}, ActionOutput{2, 0}}},
                     InstrWriteMetadata{0x5, 0xf}, InstrGotoTable{2}};
  v.push_back({"flow_mod13", Version::kOf13, 6, fm});

  FlowMod fm10;
  fm10.cookie = 0xc0ffee;
  fm10.priority = 100;
  fm10.idle_timeout = 60;
  fm10.hard_timeout = 300;
  fm10.flags = kFlowSendFlowRem;
  fm10.match.inPort(3).ethSrc(mac("02:00:0a:c9:00:02")).vlanVid(kVlanPresent | 5).ethType(0x0800).ipProto(6)
      .ipv4Src(ip("10.0.0.0"), ip("255.0.0.0")).ipv4Dst(ip("8.8.8.8")).tcpDst(80);
  Match set_mac;
  set_mac.ethDst(mac("02:00:00:00:00:bb"));
  fm10.instructions = {InstrApplyActions{{ActionSetField{set_mac}, ActionSetField{set_dst}, ActionOutput{2, 0}}}};
  v.push_back({"flow_mod10", Version::kOf10, 106, fm10});

  FlowMod v6;
  v6.command = FlowModCommand::kDeleteStrict;
  v6.out_port = 7;
  v6.priority = 10;
  v6.match.ethType(0x86dd).ipProto(17).ipv6Src(ip6("2001:db8::1")).ipv6Dst(ip6("2001:db8::"), ip6("ffff:ffff::"))
      .udpDst(53);
  v.push_back({"flow_mod_v6_13", Version::kOf13, 7, v6});

  // Table 0's admit flow for a cell: untagged frames only (OFPVID_NONE).
  FlowMod untagged;
  untagged.priority = 100;
  untagged.match.inPort(3).ethSrc(mac("02:00:0a:c9:00:02")).vlanVid(kVlanNone).ethType(0x0800)
      .ipv4Src(ip("10.201.0.2"));
  untagged.instructions = {InstrGotoTable{1}};
  v.push_back({"flow_mod_untagged13", Version::kOf13, 15, untagged});
  FlowMod untagged10 = untagged;  // 1.0 has one table: an output instead of the goto
  untagged10.table_id = 0;
  untagged10.instructions = {InstrApplyActions{{ActionOutput{2, 0}}}};
  v.push_back({"flow_mod_untagged10", Version::kOf10, 115, untagged10});

  PacketOut po;
  po.actions = {ActionOutput{5, 0}};
  po.data = frame();
  PacketOut po13 = po;
  Match vid;
  vid.vlanVid(kVlanPresent | 10);
  po13.actions = {ActionPushVlan{0x8100}, ActionSetField{vid}, ActionOutput{5, 0}};
  v.push_back({"packet_out13", Version::kOf13, 8, po13});
  v.push_back({"packet_out10", Version::kOf10, 108, po});

  static const std::vector<std::uint8_t> kFrame = frame();
  PacketIn pi;
  pi.total_len = 60;
  pi.reason = PacketInReason::kAction;
  pi.table_id = 2;
  pi.cookie = 0xabc;
  pi.match.inPort(4);
  pi.data = cw::Bytes(kFrame);
  both("packet_in", 9, pi);

  v.push_back({"meter_mod13", Version::kOf13, 10,
               MeterMod{MeterModCommand::kAdd, kMeterPktps | kMeterBurst, 3, {{1000, 100}}}});

  FlowStatsRequest fsr;
  fsr.table_id = 1;
  fsr.match.inPort(3);
  FlowStatsRequest fsr10 = fsr;
  fsr10.table_id = kTableAll;
  fsr.cookie = 0x1;
  fsr.cookie_mask = 0xff;
  v.push_back({"flow_stats13", Version::kOf13, 11, MultipartRequest{0, fsr}});
  v.push_back({"flow_stats10", Version::kOf10, 111, MultipartRequest{0, fsr10}});

  FlowRemoved rm;
  rm.cookie = 0x77;
  rm.priority = 200;
  rm.reason = FlowRemovedReason::kIdleTimeout;
  rm.table_id = 3;
  rm.duration_sec = 10;
  rm.duration_nsec = 500000000;
  rm.idle_timeout = 30;
  rm.packet_count = 1000;
  rm.byte_count = 64000;
  rm.match.inPort(1).ethType(0x0800).ipProto(17).udpDst(53);
  FlowRemoved rm10 = rm;
  rm10.table_id = 0;
  v.push_back({"flow_removed13", Version::kOf13, 12, rm});
  v.push_back({"flow_removed10", Version::kOf10, 112, rm10});

  PortDesc port;
  port.port_no = 1;
  port.hw_addr = mac("02:00:00:00:00:01");
  port.name = "cw-firefox-1";
  port.state = 4;
  port.curr_speed = 10000000;
  port.max_speed = 10000000;
  PortDesc port10 = port;
  port10.curr_speed = port10.max_speed = 0;
  port10.state = 0;
  v.push_back({"port_status13", Version::kOf13, 13, PortStatus{PortReason::kModify, port}});
  v.push_back({"port_status10", Version::kOf10, 113, PortStatus{PortReason::kModify, port10}});
  v.push_back({"port_desc13", Version::kOf13, 14, MultipartRequest{0, PortDescRequest{}}});

  // Conntrack (Nicira extensions).
  FlowMod ct;
  ct.table_id = 2;
  ct.priority = 200;
  ct.match.ctState(kCtTrk | kCtEst, kCtTrk | kCtEst).ctZone(7).ctMark(0x5, 0x7);
  ct.instructions = {InstrGotoTable{4}};
  v.push_back({"ct_flow_mod13", Version::kOf13, 0x20, ct});
  FlowMod recirc;
  recirc.table_id = 1;
  recirc.priority = 10;
  recirc.match.ethType(0x0800).ctState(kCtTrk, kCtTrk | kCtInv).ctLabel(0, 0x10, 0, 0xff);
  recirc.instructions = {InstrApplyActions{{ActionCt{0, 7, 3, 0, {}}}}};
  v.push_back({"ct_recirc13", Version::kOf13, 0x21, recirc});
  Match set_mark;
  set_mark.ctMark(0x9);
  Match set_label;
  set_label.ctLabel(0x1, 0x2);
  PacketOut ct_po;
  ct_po.actions = {ActionCt{kCtCommit, 5, kCtNoRecirc, 0, {{set_mark}}}, ActionCtClear{}, ActionOutput{5, 0}};
  ct_po.data = frame();
  v.push_back({"ct_packet_out13", Version::kOf13, 0x22, ct_po});
  FlowMod commit;
  commit.table_id = 3;
  commit.match.ethType(0x0800).ctState(kCtTrk | kCtNew, kCtTrk | kCtNew);  // ct() needs ip or ipv6
  commit.instructions = {InstrApplyActions{{ActionCt{kCtCommit | kCtForce, 9, kCtNoRecirc, 0, {{set_mark}, {set_label}}},
                                            ActionOutput{2, 0}}}};
  v.push_back({"ct_commit13", Version::kOf13, 0x23, commit});
  PacketIn ct_pi;
  ct_pi.total_len = 60;
  ct_pi.reason = PacketInReason::kAction;
  ct_pi.table_id = 3;
  ct_pi.match.inPort(4).ctState(kCtTrk | kCtEst, 0xffffffff).ctZone(7).ctMark(5).ctLabel(0, 1);
  ct_pi.data = cw::Bytes(kFrame);
  v.push_back({"ct_packet_in13", Version::kOf13, 0x24, ct_pi});
  v.push_back({"ct_flush_zone13", Version::kOf13, 0x25, CtFlushZone{5}});
  v.push_back({"ct_flush_zone10", Version::kOf10, 0x125, CtFlushZone{5}});
  CtTuple tcp{6, ip("10.1.2.3"), ip("10.4.5.6"), 1234, 80, 0, 0, 0};
  CtTuple tcp_reply{6, ip("10.4.5.6"), ip("10.1.2.3"), 80, 1234, 0, 0, 0};
  v.push_back({"ct_flush13", Version::kOf13, 0x26, CtFlush{5, tcp, tcp_reply}});
  CtTuple icmp{1, ip("10.1.2.3"), ip("10.4.5.6"), 0, 0, 8, 0, 7};
  v.push_back({"ct_flush_icmp13", Version::kOf13, 0x27, CtFlush{std::nullopt, icmp, std::nullopt}});
  CtTuple udp_from{17, ip("10.1.2.3"), cw::Ip4{}, 0, 0, 0, 0, 0};
  v.push_back({"ct_flush_partial13", Version::kOf13, 0x28, CtFlush{6, udp_from, std::nullopt}});
  v.push_back({"ct_flush_all13", Version::kOf13, 0x29, CtFlush{}});

  // Rule flows (src/decide/rule_flows.h): a port range as prefix blocks, OXM TCP_DST / UDP_SRC
  // with hasmask.
  FlowMod ports;
  ports.table_id = 6;
  ports.priority = 7;
  ports.match.inPort(3).ethType(0x0800).ipProto(6).tcpDst(0x400, 0xfc00);
  v.push_back({"port_mask13", Version::kOf13, 0x2a, ports});
  FlowMod udp_ports = ports;
  udp_ports.match = Match();
  udp_ports.match.ethType(0x0800).ipProto(17).udpSrc(0x8000, 0x8000).udpDst(53);
  v.push_back({"udp_port_mask13", Version::kOf13, 0x2b, udp_ports});
  // Table 3's entry to the rules from a gateway: a TCP opening (SYN without ACK).
  FlowMod opening;
  opening.table_id = 3;
  opening.priority = 2;
  opening.match.inPort(1).ethType(0x0800).ipProto(6).ctState(0x21, 0x31).ctMark(0).tcpFlags(0x002, 0x012);
  opening.instructions.emplace_back(InstrGotoTable{6});
  v.push_back({"tcp_flags13", Version::kOf13, 0x2c, opening});
  // A rule flow's copy to the controller through the cell's meter (NXAST_CONTROLLER2).
  FlowMod copy;
  copy.table_id = 6;
  copy.priority = 9;
  copy.match.inPort(3).ethType(0x0800);
  copy.instructions.emplace_back(InstrApplyActions{{ActionController2{128, 7}, ActionOutput{2, 0}}});
  v.push_back({"controller2_13", Version::kOf13, 0x2d, copy});
  // A verdict flow that counts the packet in the count table (NXAST_RESUBMIT_TABLE), then goes on.
  FlowMod counted;
  counted.table_id = 3;
  counted.priority = 200;
  counted.match.ethType(0x0800).ctZone(7).ctMark(0x9, 0xfffffffb);
  counted.instructions = {InstrApplyActions{{ActionResubmit{7}}}, InstrGotoTable{4}};
  v.push_back({"resubmit13", Version::kOf13, 0x2e, counted});
  // A count flow: a cell's zone, a rule's label, what the cell sent. No actions.
  FlowMod count;
  count.table_id = 7;
  count.priority = 101;
  count.match.inPort(3).ethType(0x0800).ctZone(7).ctLabel(0, 0x2a);
  v.push_back({"count13", Version::kOf13, 0x2f, count});
  return v;
}

// ---- pcap (libpcap format 2.4, LINKTYPE_ETHERNET) ----
void le32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void le16(std::vector<std::uint8_t>& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
}
void be16(std::vector<std::uint8_t>& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
void be32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint16_t ipChecksum(const std::uint8_t* p, std::size_t n) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += static_cast<std::uint32_t>((p[i] << 8) | p[i + 1]);
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// One TCP stream per OpenFlow version (a switch speaks one version per connection).
void addPacket(std::vector<std::uint8_t>& pcap, std::uint32_t index, std::uint16_t src_port, std::uint32_t seq,
               const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> f;
  const std::uint8_t macs[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  f.insert(f.end(), macs, macs + 12);
  be16(f, 0x0800);
  std::size_t ip_at = f.size();
  f.push_back(0x45);
  f.push_back(0);
  be16(f, static_cast<std::uint16_t>(20 + 20 + payload.size()));
  be16(f, static_cast<std::uint16_t>(index));
  be16(f, 0x4000);  // don't fragment
  f.push_back(64);
  f.push_back(6);
  be16(f, 0);
  be32(f, 0x7f000001);
  be32(f, 0x7f000001);
  std::uint16_t sum = ipChecksum(f.data() + ip_at, 20);
  f[ip_at + 10] = static_cast<std::uint8_t>(sum >> 8);
  f[ip_at + 11] = static_cast<std::uint8_t>(sum);
  be16(f, src_port);
  be16(f, 6653);
  be32(f, seq);
  be32(f, 1);
  f.push_back(0x50);  // data offset 5 words
  f.push_back(0x18);  // PSH, ACK
  be16(f, 65535);
  be16(f, 0);  // checksum not verified by tshark by default
  be16(f, 0);
  f.insert(f.end(), payload.begin(), payload.end());

  le32(pcap, 1700000000 + index);
  le32(pcap, 0);
  le32(pcap, static_cast<std::uint32_t>(f.size()));
  le32(pcap, static_cast<std::uint32_t>(f.size()));
  pcap.insert(pcap.end(), f.begin(), f.end());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::uint8_t> pcap;
  le32(pcap, 0xa1b2c3d4);
  le16(pcap, 2);
  le16(pcap, 4);
  le32(pcap, 0);
  le32(pcap, 0);
  le32(pcap, 65535);
  le32(pcap, 1);
  std::uint32_t seq13 = 1000, seq10 = 5000, index = 0;
  for (const auto& it : items()) {
    std::vector<std::uint8_t> b;
    encode(it.version, it.xid, it.msg, b);
    std::printf("%s %d %u %u %zu ", it.name.c_str(), static_cast<int>(it.version), it.xid, b[1], b.size());
    for (auto x : b) std::printf("%02x", x);
    std::printf("\n");
    std::uint32_t& seq = it.version == Version::kOf13 ? seq13 : seq10;
    addPacket(pcap, ++index, it.version == Version::kOf13 ? 40013 : 40010, seq, b);
    seq += static_cast<std::uint32_t>(b.size());
  }
  if (argc > 1) {
    FILE* f = std::fopen(argv[1], "wb");
    if (f == nullptr || std::fwrite(pcap.data(), 1, pcap.size(), f) != pcap.size()) {
      std::fprintf(stderr, "cannot write pcap %s\n", argv[1]);
      return 1;
    }
    std::fclose(f);
  }
  return 0;
}
