// OpenFlow value types: what the rest of cellwall works with. Independent of the wire
// version; codec.h turns them into OpenFlow 1.3 or 1.0 bytes and back. Wire structs live only
// in the codec's .cc files.
//
// Ownership: value types own their data (std::vector), except PacketIn::data which the decoder
// may point into the received buffer (see PacketInView) to keep the Packet-In path
// allocation-free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/bytes.h"
#include "common/net.h"

namespace cw::ofp {

enum class Version : std::uint8_t { kOf10 = 0x01, kOf13 = 0x04 };

// Reserved port numbers, in OpenFlow 1.3 numbering (the 1.0 codec maps them to 16 bits).
inline constexpr std::uint32_t kPortMax = 0xffffff00;
inline constexpr std::uint32_t kPortInPort = 0xfffffff8;
inline constexpr std::uint32_t kPortTable = 0xfffffff9;
inline constexpr std::uint32_t kPortNormal = 0xfffffffa;
inline constexpr std::uint32_t kPortFlood = 0xfffffffb;
inline constexpr std::uint32_t kPortAll = 0xfffffffc;
inline constexpr std::uint32_t kPortController = 0xfffffffd;
inline constexpr std::uint32_t kPortLocal = 0xfffffffe;
inline constexpr std::uint32_t kPortAny = 0xffffffff;
inline constexpr std::uint32_t kNoBuffer = 0xffffffff;
inline constexpr std::uint16_t kControllerMaxLenNoBuffer = 0xffff;
inline constexpr std::uint8_t kTableAll = 0xff;
inline constexpr std::uint32_t kGroupAny = 0xffffffff;

// OXM fields we use (OpenFlow 1.3 basic class). The 1.0 codec supports the subset that
// ofp_match can express and reports kBadField for the rest.
enum class Field : std::uint8_t {
  kInPort, kMetadata, kEthDst, kEthSrc, kEthType, kVlanVid, kVlanPcp, kIpDscp, kIpProto,
  kIpv4Src, kIpv4Dst, kTcpSrc, kTcpDst, kUdpSrc, kUdpDst, kIcmpv4Type, kIcmpv4Code,
  kArpOp, kArpSpa, kArpTpa, kArpSha, kArpTha, kIpv6Src, kIpv6Dst, kIcmpv6Type, kIcmpv6Code,
  // Open vSwitch conntrack fields (Nicira NXM_NX class 0x0001, fields 105..108). OVS accepts
  // them inside OpenFlow 1.3 OXM matches; OpenFlow 1.0 cannot carry them (kBadField).
  kCtState, kCtZone, kCtMark, kCtLabel,
  // TCP flags (NXM_NX_TCP_FLAGS, class 0x0001 field 34, maskable): a SYN without ACK is
  // tcpFlags(kTcpFlagSyn, kTcpFlagSyn | kTcpFlagAck). Needs ip_proto 6.
  kTcpFlags,
  kCount
};
const char* fieldName(Field f);

inline constexpr std::uint16_t kVlanPresent = 0x1000;  // OFPVID_PRESENT

// ct_state bits (NXM_NX_CT_STATE). Match::ctState(bits, mask): a bit in mask and in bits is
// "+flag", a bit in mask but not in bits is "-flag".
// TCP header flags as tcp_flags matches them.
inline constexpr std::uint16_t kTcpFlagFin = 0x001, kTcpFlagSyn = 0x002, kTcpFlagRst = 0x004, kTcpFlagPsh = 0x008,
                               kTcpFlagAck = 0x010, kTcpFlagUrg = 0x020;
inline constexpr std::uint32_t kCtNew = 0x01, kCtEst = 0x02, kCtRel = 0x04, kCtRpl = 0x08,
                               kCtInv = 0x10, kCtTrk = 0x20, kCtSnat = 0x40, kCtDnat = 0x80;
// OFPVID_NONE: vlanVid(kVlanNone) matches only frames without an 802.1Q tag. A priority-tagged
// frame (VID 0) has kVlanPresent | 0 and does not match (OpenFlow 1.3 §7.2.3.8).
inline constexpr std::uint16_t kVlanNone = 0x0000;

// A flow match: each field present or not, some maskable. Presence is a bitmask so the type
// is trivially copyable and allocation-free (the flow-setup path builds two per connection).
struct Match {
  std::uint32_t present = 0;  // bit (1 << Field)
  std::uint32_t masked = 0;   // bit (1 << Field): the field carries a mask

  std::uint32_t in_port = 0;
  std::uint64_t metadata = 0, metadata_mask = 0;
  MacAddr eth_dst, eth_dst_mask, eth_src, eth_src_mask;
  std::uint16_t eth_type = 0;
  std::uint16_t vlan_vid = 0, vlan_vid_mask = 0;  // with kVlanPresent as in OXM
  std::uint8_t vlan_pcp = 0;
  std::uint8_t ip_dscp = 0;
  std::uint8_t ip_proto = 0;
  Ip4 ipv4_src, ipv4_src_mask, ipv4_dst, ipv4_dst_mask;
  std::uint16_t tcp_src = 0, tcp_dst = 0, udp_src = 0, udp_dst = 0;
  // Port masks (OXM hasmask; ovs-ofctl "tp_dst=0x400/0xfc00"): a range of ports as prefix
  // blocks. Read only when the field is masked. OpenFlow 1.0 cannot carry them.
  std::uint16_t tcp_src_mask = 0xffff, tcp_dst_mask = 0xffff, udp_src_mask = 0xffff, udp_dst_mask = 0xffff;
  std::uint8_t icmpv4_type = 0, icmpv4_code = 0;
  std::uint16_t arp_op = 0;
  Ip4 arp_spa, arp_spa_mask, arp_tpa, arp_tpa_mask;
  MacAddr arp_sha, arp_tha;
  Ip6 ipv6_src, ipv6_src_mask, ipv6_dst, ipv6_dst_mask;
  std::uint8_t icmpv6_type = 0, icmpv6_code = 0;
  std::uint32_t ct_state = 0, ct_state_mask = 0;
  std::uint16_t ct_zone = 0;
  std::uint32_t ct_mark = 0, ct_mark_mask = 0;
  std::uint64_t ct_label_hi = 0, ct_label_lo = 0, ct_label_hi_mask = 0, ct_label_lo_mask = 0;
  std::uint16_t tcp_flags = 0, tcp_flags_mask = 0;

  bool has(Field f) const { return (present & bit(f)) != 0; }
  bool hasMask(Field f) const { return (masked & bit(f)) != 0; }
  static constexpr std::uint32_t bit(Field f) { return 1u << static_cast<unsigned>(f); }

  // Fluent setters; each marks the field present (and masked where a mask is given and is
  // not all-ones).
  Match& inPort(std::uint32_t p);
  Match& metadataIs(std::uint64_t v, std::uint64_t mask = ~0ULL);
  Match& ethDst(MacAddr a, std::optional<MacAddr> mask = std::nullopt);
  Match& ethSrc(MacAddr a, std::optional<MacAddr> mask = std::nullopt);
  Match& ethType(std::uint16_t t);
  Match& vlanVid(std::uint16_t vid_with_present, std::uint16_t mask = 0xffff);
  Match& vlanPcp(std::uint8_t p);
  Match& ipDscp(std::uint8_t d);
  Match& ipProto(std::uint8_t p);
  Match& ipv4Src(Ip4 a, Ip4 mask = Ip4{0xffffffff});
  Match& ipv4Dst(Ip4 a, Ip4 mask = Ip4{0xffffffff});
  Match& tcpSrc(std::uint16_t p, std::uint16_t mask = 0xffff);
  Match& tcpDst(std::uint16_t p, std::uint16_t mask = 0xffff);
  Match& udpSrc(std::uint16_t p, std::uint16_t mask = 0xffff);
  Match& udpDst(std::uint16_t p, std::uint16_t mask = 0xffff);
  Match& icmpv4Type(std::uint8_t t);
  Match& icmpv4Code(std::uint8_t c);
  Match& arpOp(std::uint16_t op);
  Match& arpSpa(Ip4 a, Ip4 mask = Ip4{0xffffffff});
  Match& arpTpa(Ip4 a, Ip4 mask = Ip4{0xffffffff});
  Match& arpSha(MacAddr a);
  Match& arpTha(MacAddr a);
  Match& ipv6Src(const Ip6& a, std::optional<Ip6> mask = std::nullopt);
  Match& ipv6Dst(const Ip6& a, std::optional<Ip6> mask = std::nullopt);
  Match& icmpv6Type(std::uint8_t t);
  Match& icmpv6Code(std::uint8_t c);
  // Conntrack (1.3 only). ctState(kCtTrk | kCtNew, kCtTrk | kCtNew) is +trk+new;
  // ctState(kCtTrk, kCtTrk | kCtInv) is +trk-inv.
  Match& ctState(std::uint32_t bits, std::uint32_t mask);
  Match& ctZone(std::uint16_t z);
  Match& ctMark(std::uint32_t v, std::uint32_t mask = 0xffffffff);
  // The 128-bit label as two halves: hi is bits 127..64.
  Match& ctLabel(std::uint64_t hi, std::uint64_t lo, std::uint64_t hi_mask = ~0ULL,
                 std::uint64_t lo_mask = ~0ULL);
  Match& tcpFlags(std::uint16_t bits, std::uint16_t mask = 0x0fff);

  bool operator==(const Match& o) const;  // compares present fields (and masks) only
};

// ---- Actions ----
struct ActionOutput {
  std::uint32_t port = 0;
  std::uint16_t max_len = kControllerMaxLenNoBuffer;  // bytes sent to the controller
  bool operator==(const ActionOutput&) const = default;
};
// Sets one field: the Match holds exactly one present, unmasked field.
struct ActionSetField {
  Match field;
  bool operator==(const ActionSetField&) const = default;
};
struct ActionPushVlan {
  std::uint16_t ethertype = 0x8100;
  bool operator==(const ActionPushVlan&) const = default;
};
struct ActionPopVlan {
  bool operator==(const ActionPopVlan&) const = default;
};
struct ActionGroup {
  std::uint32_t group_id = 0;
  bool operator==(const ActionGroup&) const = default;
};
// Open vSwitch conntrack actions (Nicira vendor actions, OpenFlow 1.3 only: canEncode(kOf10, ..)
// is false for a message carrying them).
inline constexpr std::uint16_t kCtCommit = 1, kCtForce = 2;  // NX_CT_F_COMMIT / NX_CT_F_FORCE
inline constexpr std::uint8_t kCtNoRecirc = 0xff;            // NX_CT_RECIRC_NONE
// ct(...) (NXAST_CT): send the packet through conntrack in `zone`; with table != kCtNoRecirc
// the packet continues (a copy, with ct_* fields filled) in that table. exec: set_fields of
// ct_mark / ct_label applied to the connection on commit.
struct ActionCt {
  std::uint16_t flags = 0;  // kCtCommit | kCtForce
  std::uint16_t zone = 0;   // immediate zone
  std::uint8_t table = kCtNoRecirc;
  std::uint16_t alg = 0;    // 0: no ALG
  std::vector<ActionSetField> exec;
  bool operator==(const ActionCt&) const = default;
};
// ct_clear (NXAST_CT_CLEAR): forget the packet's conntrack state (ct_* fields back to zero).
struct ActionCtClear {
  bool operator==(const ActionCtClear&) const = default;
};
// controller(max_len=N,meter_id=M) (NXAST_CONTROLLER2): a copy to the controller through its
// own meter, which drops only copies over the rate, never the packet the flow goes on with
// (a meter instruction would drop the packet itself). OpenFlow 1.3 only.
struct ActionController2 {
  std::uint16_t max_len = kControllerMaxLenNoBuffer;
  std::uint32_t meter_id = 0;  // 0: none
  bool operator==(const ActionController2&) const = default;
};
// resubmit(,N) (NXAST_RESUBMIT_TABLE): looks the packet up in table N now, runs that flow's
// actions, then goes on with the rest of this list. Unlike goto_table it may go back to an
// earlier table and comes back; the pipeline uses it to count a packet in the count table
// (docs/pipeline.md, table 7) on its way on. The lookup uses the packet's own in_port
// (OFPP_IN_PORT); other in_ports are not modelled. OpenFlow 1.3 only.
struct ActionResubmit {
  std::uint8_t table = 0;
  bool operator==(const ActionResubmit&) const = default;
};
using Action = std::variant<ActionOutput, ActionSetField, ActionPushVlan, ActionPopVlan,
                            ActionGroup, ActionCt, ActionCtClear, ActionController2, ActionResubmit>;
using ActionList = std::vector<Action>;

// ---- Instructions (1.3; the 1.0 codec flattens ApplyActions and rejects the rest) ----
struct InstrGotoTable {
  std::uint8_t table_id = 0;
  bool operator==(const InstrGotoTable&) const = default;
};
struct InstrWriteMetadata {
  std::uint64_t metadata = 0, mask = 0;
  bool operator==(const InstrWriteMetadata&) const = default;
};
struct InstrWriteActions {
  ActionList actions;
  bool operator==(const InstrWriteActions&) const = default;
};
struct InstrApplyActions {
  ActionList actions;
  bool operator==(const InstrApplyActions&) const = default;
};
struct InstrClearActions {
  bool operator==(const InstrClearActions&) const = default;
};
struct InstrMeter {
  std::uint32_t meter_id = 0;
  bool operator==(const InstrMeter&) const = default;
};
using Instruction = std::variant<InstrGotoTable, InstrWriteMetadata, InstrWriteActions,
                                 InstrApplyActions, InstrClearActions, InstrMeter>;

// ---- Messages ----
struct Hello {
  std::uint32_t version_bitmap = 0;  // bit v set: version v offered; 0 = no bitmap element
  bool operator==(const Hello&) const = default;
};
// OpenFlow error type/code numbers are version specific; these are the 1.3 ones and the 1.0
// codec translates the ones it shares.
struct ErrorMsg {
  std::uint16_t type = 0;
  std::uint16_t code = 0;
  std::vector<std::uint8_t> data;  // at least 64 bytes of the offending message
  bool operator==(const ErrorMsg&) const = default;
};
struct Echo {
  bool reply = false;
  std::vector<std::uint8_t> data;
  bool operator==(const Echo&) const = default;
};
struct FeaturesRequest {
  bool operator==(const FeaturesRequest&) const = default;
};
struct PortDesc {
  std::uint32_t port_no = 0;
  MacAddr hw_addr;
  std::string name;  // at most 15 characters on the wire
  std::uint32_t config = 0, state = 0, curr = 0, advertised = 0, supported = 0, peer = 0;
  std::uint32_t curr_speed = 0, max_speed = 0;  // 1.3 only
  bool operator==(const PortDesc&) const = default;
};
struct FeaturesReply {
  std::uint64_t datapath_id = 0;
  std::uint32_t n_buffers = 0;
  std::uint8_t n_tables = 0;
  std::uint8_t auxiliary_id = 0;   // 1.3
  std::uint32_t capabilities = 0;
  std::uint32_t actions = 0;       // 1.0
  std::vector<PortDesc> ports;     // 1.0 (1.3 uses a port-desc multipart)
  bool operator==(const FeaturesReply&) const = default;
};
struct GetConfigRequest {
  bool operator==(const GetConfigRequest&) const = default;
};
struct SwitchConfig {  // GET_CONFIG_REPLY and SET_CONFIG
  bool set = true;     // true: SET_CONFIG, false: GET_CONFIG_REPLY
  std::uint16_t flags = 0;
  std::uint16_t miss_send_len = 128;
  bool operator==(const SwitchConfig&) const = default;
};
enum class PacketInReason : std::uint8_t { kNoMatch = 0, kAction = 1, kInvalidTtl = 2 };
struct PacketIn {
  std::uint32_t buffer_id = kNoBuffer;
  std::uint16_t total_len = 0;
  PacketInReason reason = PacketInReason::kNoMatch;
  std::uint8_t table_id = 0;       // 1.3
  std::uint64_t cookie = 0;        // 1.3
  Match match;                     // 1.3: at least in_port; 1.0: in_port is set from the header
  Bytes data;                      // points into the decoded buffer: valid while it is
  std::uint32_t inPort() const { return match.in_port; }
};
struct PacketOut {
  std::uint32_t buffer_id = kNoBuffer;
  std::uint32_t in_port = kPortController;
  ActionList actions;
  std::vector<std::uint8_t> data;
  bool operator==(const PacketOut&) const = default;
};
enum class FlowModCommand : std::uint8_t { kAdd = 0, kModify = 1, kModifyStrict = 2, kDelete = 3, kDeleteStrict = 4 };
inline constexpr std::uint16_t kFlowSendFlowRem = 1 << 0;
inline constexpr std::uint16_t kFlowCheckOverlap = 1 << 1;
inline constexpr std::uint16_t kFlowResetCounts = 1 << 2;
struct FlowMod {
  std::uint64_t cookie = 0, cookie_mask = 0;
  std::uint8_t table_id = 0;
  FlowModCommand command = FlowModCommand::kAdd;
  std::uint16_t idle_timeout = 0, hard_timeout = 0;
  std::uint16_t priority = 0x8000;
  std::uint32_t buffer_id = kNoBuffer;
  std::uint32_t out_port = kPortAny, out_group = kGroupAny;
  std::uint16_t flags = 0;
  Match match;
  std::vector<Instruction> instructions;
  bool operator==(const FlowMod&) const = default;
};
enum class FlowRemovedReason : std::uint8_t { kIdleTimeout = 0, kHardTimeout = 1, kDelete = 2, kGroupDelete = 3, kMeterDelete = 4 };
struct FlowRemoved {
  std::uint64_t cookie = 0;
  std::uint16_t priority = 0;
  FlowRemovedReason reason = FlowRemovedReason::kIdleTimeout;
  std::uint8_t table_id = 0;
  std::uint32_t duration_sec = 0, duration_nsec = 0;
  std::uint16_t idle_timeout = 0, hard_timeout = 0;
  std::uint64_t packet_count = 0, byte_count = 0;
  Match match;
  bool operator==(const FlowRemoved&) const = default;
};
enum class PortReason : std::uint8_t { kAdd = 0, kDelete = 1, kModify = 2 };
struct PortStatus {
  PortReason reason = PortReason::kAdd;
  PortDesc desc;
  bool operator==(const PortStatus&) const = default;
};
struct BarrierRequest {
  bool operator==(const BarrierRequest&) const = default;
};
struct BarrierReply {
  bool operator==(const BarrierReply&) const = default;
};
enum class ControllerRole : std::uint32_t { kNoChange = 0, kEqual = 1, kMaster = 2, kSlave = 3 };
struct RoleMsg {  // ROLE_REQUEST / ROLE_REPLY (1.3 only)
  bool reply = false;
  ControllerRole role = ControllerRole::kEqual;
  std::uint64_t generation_id = 0;
  bool operator==(const RoleMsg&) const = default;
};
enum class MeterModCommand : std::uint16_t { kAdd = 0, kModify = 1, kDelete = 2 };
inline constexpr std::uint16_t kMeterKbps = 1 << 0;
inline constexpr std::uint16_t kMeterPktps = 1 << 1;
inline constexpr std::uint16_t kMeterBurst = 1 << 2;
inline constexpr std::uint16_t kMeterStats = 1 << 3;
struct MeterBandDrop {
  std::uint32_t rate = 0, burst_size = 0;
  bool operator==(const MeterBandDrop&) const = default;
};
struct MeterMod {  // 1.3 only
  MeterModCommand command = MeterModCommand::kAdd;
  std::uint16_t flags = kMeterPktps;
  std::uint32_t meter_id = 0;
  std::vector<MeterBandDrop> bands;
  bool operator==(const MeterMod&) const = default;
};

// Open vSwitch conntrack table flushes (Nicira vendor messages, OpenFlow 1.3).
// NXT_CT_FLUSH_ZONE: drop every connection in one zone.
struct CtFlushZone {
  std::uint16_t zone = 0;
  bool operator==(const CtFlushZone&) const = default;
};
// One direction of a connection. For TCP/UDP/SCTP the ports count, for ICMP the type, code
// and id. proto 0 with everything else zero means "no tuple".
struct CtTuple {
  std::uint8_t proto = 0;
  Ip4 src, dst;
  std::uint16_t src_port = 0, dst_port = 0;
  std::uint8_t icmp_type = 0, icmp_code = 0;
  std::uint16_t icmp_id = 0;
  bool operator==(const CtTuple&) const = default;
};
// NXT_CT_FLUSH (OVS >= 3.1): drop the connections matching the zone and the given original /
// reply direction tuples; zero parts of a tuple match anything. As Open vSwitch 3.1 (netdev)
// applies it: no tuple and no zone flushes every zone; a tuple without a zone looks in zone 0
// only; a tuple may be partial (e.g. protocol and source address only).
struct CtFlush {
  std::optional<std::uint16_t> zone;
  std::optional<CtTuple> orig, reply;
  bool operator==(const CtFlush&) const = default;
};

// Multipart (1.3) / stats (1.0).
struct PortDescRequest {
  bool operator==(const PortDescRequest&) const = default;
};
struct FlowStatsRequest {
  std::uint8_t table_id = kTableAll;
  std::uint32_t out_port = kPortAny, out_group = kGroupAny;
  std::uint64_t cookie = 0, cookie_mask = 0;
  Match match;
  bool operator==(const FlowStatsRequest&) const = default;
};
struct TableStatsRequest {
  bool operator==(const TableStatsRequest&) const = default;
};
struct FlowStats {
  std::uint8_t table_id = 0;
  std::uint32_t duration_sec = 0, duration_nsec = 0;
  std::uint16_t priority = 0, idle_timeout = 0, hard_timeout = 0, flags = 0;
  std::uint64_t cookie = 0, packet_count = 0, byte_count = 0;
  Match match;
  std::vector<Instruction> instructions;
  bool operator==(const FlowStats&) const = default;
};
struct TableStats {
  std::uint8_t table_id = 0;
  std::uint32_t active_count = 0;
  std::uint64_t lookup_count = 0, matched_count = 0;
  bool operator==(const TableStats&) const = default;
};
inline constexpr std::uint16_t kMultipartMore = 1;
struct MultipartRequest {
  std::uint16_t flags = 0;
  std::variant<PortDescRequest, FlowStatsRequest, TableStatsRequest> body;
  bool operator==(const MultipartRequest&) const = default;
};
struct MultipartReply {
  std::uint16_t flags = 0;  // kMultipartMore: more replies follow with the same xid
  std::variant<std::vector<PortDesc>, std::vector<FlowStats>, std::vector<TableStats>> body;
  bool operator==(const MultipartReply&) const = default;
};

using Message = std::variant<Hello, ErrorMsg, Echo, FeaturesRequest, FeaturesReply,
                             GetConfigRequest, SwitchConfig, PacketIn, PacketOut, FlowMod,
                             FlowRemoved, PortStatus, BarrierRequest, BarrierReply, RoleMsg,
                             MeterMod, MultipartRequest, MultipartReply, CtFlushZone, CtFlush>;

}  // namespace cw::ofp
