// OpenFlow wire layouts (private to src/ofp). Each struct mirrors the spec's C struct with
// big-endian fields spelled as byte arrays, so it has no padding and sizeof() equals the spec's
// size; the static_asserts pin that. Decoders never cast bytes to these structs: they read
// through ByteReader in the same field order and use the sizes from here, which keeps the
// layouts written down once and checked by the compiler.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace cw::ofp::wire {

using U8 = std::uint8_t;
using U16 = std::array<std::uint8_t, 2>;
using U32 = std::array<std::uint8_t, 4>;
using U64 = std::array<std::uint8_t, 8>;
using Mac = std::array<std::uint8_t, 6>;

struct Header { U8 version, type; U16 length; U32 xid; };
static_assert(sizeof(Header) == 8);

// ---- Common to both versions ----
struct SwitchConfig { Header h; U16 flags, miss_send_len; };
static_assert(sizeof(SwitchConfig) == 12);
struct ErrorMsg { Header h; U16 type, code; };
static_assert(sizeof(ErrorMsg) == 12);

// ---- Nicira (Open vSwitch) extensions, the same in both versions ----
inline constexpr std::uint16_t kNxmClass1 = 0x0001;      // NXM_NX_* match fields
inline constexpr std::uint32_t kNxVendorId = 0x00002320;  // NX_VENDOR_ID
inline constexpr std::uint16_t kActExperimenter = 0xffff; // OFPAT_EXPERIMENTER / OFPAT_VENDOR
inline constexpr std::uint8_t kMsgExperimenter = 4;       // OFPT_EXPERIMENTER / OFPT_VENDOR
// nx_action_header: type, len, vendor, subtype, pad[6].
struct NxActionHeader { U16 type, len; U32 vendor; U16 subtype; std::array<U8, 6> pad; };
static_assert(sizeof(NxActionHeader) == 16);
// nx_action_conntrack; nested actions follow, counted in len.
struct NxActionCt { U16 type, len; U32 vendor; U16 subtype, flags; U32 zone_src; U16 zone_imm;
                    U8 recirc_table; std::array<U8, 3> pad; U16 alg; };
static_assert(sizeof(NxActionCt) == 24);
inline constexpr std::uint16_t kNxastCt = 35, kNxastCtClear = 43, kNxastController2 = 37, kNxastResubmitTable = 14;
// nx_action_resubmit (NXAST_RESUBMIT_TABLE): in_port (OFPP_IN_PORT in 16 bits: the packet's own), table, pad.
struct NxActionResubmit { U16 type, len; U32 vendor; U16 subtype, in_port; U8 table; std::array<U8, 3> pad; };
static_assert(sizeof(NxActionResubmit) == 16);
inline constexpr std::uint16_t kNxPortInPort = 0xfff8;  // OFPP_IN_PORT, OpenFlow 1.0 numbering
// NXAST_CONTROLLER2 properties (ofp_prop_header, padded to 8).
inline constexpr std::uint16_t kNxac2MaxLen = 0, kNxac2MeterId = 5;
// nicira_header (ofp_header + vendor + subtype).
struct NxHeader { Header h; U32 vendor, subtype; };
static_assert(sizeof(NxHeader) == 16);
inline constexpr std::uint32_t kNxtCtFlushZone = 29, kNxtCtFlush = 32;
struct NxZoneId { std::array<U8, 6> zero; U16 zone_id; };
static_assert(sizeof(NxZoneId) == 8);
// nx_ct_flush (OVS 3.1): ip_proto, then 7 bytes ovs-ofctl sends as zero and Open vSwitch's
// decoder requires to be zero (there is no family byte to set: the family follows from the
// addresses, IPv4-mapped or not). Properties follow: ofp_prop_header TLVs padded to 8, the
// tuple ones nesting properties after 4 bytes of pad.
struct NxCtFlush { U8 ip_proto; std::array<U8, 7> zero; };
static_assert(sizeof(NxCtFlush) == 8);
inline constexpr std::uint16_t kCtFlushOrig = 0, kCtFlushReply = 1, kCtFlushZone = 2;
inline constexpr std::uint16_t kCtTupleSrc = 0, kCtTupleDst = 1, kCtTupleSrcPort = 2,
    kCtTupleDstPort = 3, kCtTupleIcmpId = 4, kCtTupleIcmpType = 5, kCtTupleIcmpCode = 6;

// ---- OpenFlow 1.3 ----
namespace v13 {
inline constexpr std::uint8_t kHello = 0, kError = 1, kEchoRequest = 2, kEchoReply = 3,
    kExperimenter = 4, kFeaturesRequest = 5, kFeaturesReply = 6, kGetConfigRequest = 7,
    kGetConfigReply = 8, kSetConfig = 9, kPacketIn = 10, kFlowRemoved = 11, kPortStatus = 12,
    kPacketOut = 13, kFlowMod = 14, kMultipartRequest = 18, kMultipartReply = 19,
    kBarrierRequest = 20, kBarrierReply = 21, kRoleRequest = 24, kRoleReply = 25, kMeterMod = 29;

struct HelloElemHeader { U16 type, length; };
static_assert(sizeof(HelloElemHeader) == 4);
inline constexpr std::uint16_t kHelloElemVersionBitmap = 1;

// ofp_match with its OXM payload removed (type, length, then OXMs padded to 8).
struct MatchHeader { U16 type, length; };
inline constexpr std::uint16_t kMatchTypeOxm = 1;
inline constexpr std::size_t kMatchHeaderSize = sizeof(MatchHeader);
// The struct as the spec declares it (4 bytes of header + 4 of pad for the empty match).
struct MatchFixed { MatchHeader mh; std::array<U8, 4> pad; };
static_assert(sizeof(MatchFixed) == 8);
inline constexpr std::uint16_t kOxmClassBasic = 0x8000;

struct FeaturesReply { Header h; U64 datapath_id; U32 n_buffers; U8 n_tables, auxiliary_id;
                       std::array<U8, 2> pad; U32 capabilities, reserved; };
static_assert(sizeof(FeaturesReply) == 32);

struct Port { U32 port_no; std::array<U8, 4> pad; Mac hw_addr; std::array<U8, 2> pad2;
              std::array<char, 16> name; U32 config, state, curr, advertised, supported, peer,
              curr_speed, max_speed; };
static_assert(sizeof(Port) == 64);
struct PortStatus { Header h; U8 reason; std::array<U8, 7> pad; Port desc; };
static_assert(sizeof(PortStatus) == 80);

// Fixed part up to and including the match header; the spec's sizeof includes 4 bytes of
// match pad, hence "+ 4" on the spec figure where it applies.
struct PacketIn { Header h; U32 buffer_id; U16 total_len; U8 reason, table_id; U64 cookie;
                  MatchFixed match; };
static_assert(sizeof(PacketIn) == 32);
inline constexpr std::size_t kPacketInFixed = sizeof(PacketIn) - sizeof(MatchFixed);  // 24
inline constexpr std::size_t kPacketInDataPad = 2;

struct PacketOut { Header h; U32 buffer_id, in_port; U16 actions_len; std::array<U8, 6> pad; };
static_assert(sizeof(PacketOut) == 24);

struct FlowMod { Header h; U64 cookie, cookie_mask; U8 table_id, command; U16 idle_timeout,
                 hard_timeout, priority; U32 buffer_id, out_port, out_group; U16 flags;
                 std::array<U8, 2> pad; MatchFixed match; };
static_assert(sizeof(FlowMod) == 56);
inline constexpr std::size_t kFlowModFixed = sizeof(FlowMod) - sizeof(MatchFixed);  // 48

struct FlowRemoved { Header h; U64 cookie; U16 priority; U8 reason, table_id;
                     U32 duration_sec, duration_nsec; U16 idle_timeout, hard_timeout;
                     U64 packet_count, byte_count; MatchFixed match; };
static_assert(sizeof(FlowRemoved) == 56);
inline constexpr std::size_t kFlowRemovedFixed = sizeof(FlowRemoved) - sizeof(MatchFixed);

struct RoleRequest { Header h; U32 role; std::array<U8, 4> pad; U64 generation_id; };
static_assert(sizeof(RoleRequest) == 24);

struct MeterMod { Header h; U16 command, flags; U32 meter_id; };
static_assert(sizeof(MeterMod) == 16);
struct MeterBandDrop { U16 type, len; U32 rate, burst_size; std::array<U8, 4> pad; };
static_assert(sizeof(MeterBandDrop) == 16);
inline constexpr std::uint16_t kMeterBandDrop = 1;

struct Multipart { Header h; U16 type, flags; std::array<U8, 4> pad; };
static_assert(sizeof(Multipart) == 16);
inline constexpr std::uint16_t kMpFlow = 1, kMpTable = 3, kMpPortDesc = 13;
struct FlowStatsRequest { U8 table_id; std::array<U8, 3> pad; U32 out_port, out_group;
                          std::array<U8, 4> pad2; U64 cookie, cookie_mask; MatchFixed match; };
static_assert(sizeof(FlowStatsRequest) == 40);
struct FlowStats { U16 length; U8 table_id, pad; U32 duration_sec, duration_nsec;
                   U16 priority, idle_timeout, hard_timeout, flags; std::array<U8, 4> pad2;
                   U64 cookie, packet_count, byte_count; MatchFixed match; };
static_assert(sizeof(FlowStats) == 56);
inline constexpr std::size_t kFlowStatsFixed = sizeof(FlowStats) - sizeof(MatchFixed);  // 48
struct TableStats { U8 table_id; std::array<U8, 3> pad; U32 active_count;
                    U64 lookup_count, matched_count; };
static_assert(sizeof(TableStats) == 24);

// Actions.
struct ActionHeader { U16 type, len; };
inline constexpr std::uint16_t kActOutput = 0, kActPushVlan = 17, kActPopVlan = 18,
    kActGroup = 22, kActSetField = 25;
struct ActionOutput { U16 type, len; U32 port; U16 max_len; std::array<U8, 6> pad; };
static_assert(sizeof(ActionOutput) == 16);
struct ActionPush { U16 type, len, ethertype; std::array<U8, 2> pad; };
static_assert(sizeof(ActionPush) == 8);
struct ActionPop { U16 type, len; std::array<U8, 4> pad; };
static_assert(sizeof(ActionPop) == 8);
struct ActionGroup { U16 type, len; U32 group_id; };
static_assert(sizeof(ActionGroup) == 8);

// Instructions.
inline constexpr std::uint16_t kInstGotoTable = 1, kInstWriteMetadata = 2,
    kInstWriteActions = 3, kInstApplyActions = 4, kInstClearActions = 5, kInstMeter = 6;
struct InstGotoTable { U16 type, len; U8 table_id; std::array<U8, 3> pad; };
static_assert(sizeof(InstGotoTable) == 8);
struct InstWriteMetadata { U16 type, len; std::array<U8, 4> pad; U64 metadata, mask; };
static_assert(sizeof(InstWriteMetadata) == 24);
struct InstActions { U16 type, len; std::array<U8, 4> pad; };
static_assert(sizeof(InstActions) == 8);
struct InstMeter { U16 type, len; U32 meter_id; };
static_assert(sizeof(InstMeter) == 8);
}  // namespace v13

// ---- OpenFlow 1.0 ----
namespace v10 {
inline constexpr std::uint8_t kHello = 0, kError = 1, kEchoRequest = 2, kEchoReply = 3,
    kVendor = 4, kFeaturesRequest = 5, kFeaturesReply = 6, kGetConfigRequest = 7,
    kGetConfigReply = 8, kSetConfig = 9, kPacketIn = 10, kFlowRemoved = 11, kPortStatus = 12,
    kPacketOut = 13, kFlowMod = 14, kStatsRequest = 16, kStatsReply = 17,
    kBarrierRequest = 18, kBarrierReply = 19;

struct Match { U32 wildcards; U16 in_port; Mac dl_src, dl_dst; U16 dl_vlan; U8 dl_vlan_pcp;
               U8 pad1; U16 dl_type; U8 nw_tos, nw_proto; std::array<U8, 2> pad2;
               U32 nw_src, nw_dst; U16 tp_src, tp_dst; };
static_assert(sizeof(Match) == 40);
inline constexpr std::uint32_t kFwInPort = 1u << 0, kFwDlVlan = 1u << 1, kFwDlSrc = 1u << 2,
    kFwDlDst = 1u << 3, kFwDlType = 1u << 4, kFwNwProto = 1u << 5, kFwTpSrc = 1u << 6,
    kFwTpDst = 1u << 7, kFwNwSrcShift = 8, kFwNwDstShift = 14, kFwNwBits = 0x3f,
    kFwDlVlanPcp = 1u << 20, kFwNwTos = 1u << 21, kFwAll = (1u << 22) - 1;
inline constexpr std::uint16_t kVlanNone = 0xffff;

struct PhyPort { U16 port_no; Mac hw_addr; std::array<char, 16> name;
                 U32 config, state, curr, advertised, supported, peer; };
static_assert(sizeof(PhyPort) == 48);
struct FeaturesReply { Header h; U64 datapath_id; U32 n_buffers; U8 n_tables;
                       std::array<U8, 3> pad; U32 capabilities, actions; };
static_assert(sizeof(FeaturesReply) == 32);
struct PortStatus { Header h; U8 reason; std::array<U8, 7> pad; PhyPort desc; };
static_assert(sizeof(PortStatus) == 64);
// The spec's sizeof(ofp_packet_in) is 20 because of trailing pad; data starts at 18.
struct PacketIn { Header h; U32 buffer_id; U16 total_len, in_port; U8 reason, pad; };
static_assert(sizeof(PacketIn) == 18);
struct PacketOut { Header h; U32 buffer_id; U16 in_port, actions_len; };
static_assert(sizeof(PacketOut) == 16);
struct FlowMod { Header h; Match match; U64 cookie; U16 command, idle_timeout, hard_timeout,
                 priority; U32 buffer_id; U16 out_port, flags; };
static_assert(sizeof(FlowMod) == 72);
struct FlowRemoved { Header h; Match match; U64 cookie; U16 priority; U8 reason, pad;
                     U32 duration_sec, duration_nsec; U16 idle_timeout; std::array<U8, 2> pad2;
                     U64 packet_count, byte_count; };
static_assert(sizeof(FlowRemoved) == 88);
struct Stats { Header h; U16 type, flags; };
static_assert(sizeof(Stats) == 12);
inline constexpr std::uint16_t kStFlow = 1, kStTable = 3;
struct FlowStatsRequest { Match match; U8 table_id, pad; U16 out_port; };
static_assert(sizeof(FlowStatsRequest) == 44);
struct FlowStats { U16 length; U8 table_id, pad; Match match; U32 duration_sec, duration_nsec;
                   U16 priority, idle_timeout, hard_timeout; std::array<U8, 6> pad2;
                   U64 cookie, packet_count, byte_count; };
static_assert(sizeof(FlowStats) == 88);
struct TableStats { U8 table_id; std::array<U8, 3> pad; std::array<char, 32> name;
                    U32 wildcards, max_entries, active_count; U64 lookup_count, matched_count; };
static_assert(sizeof(TableStats) == 64);

// Actions.
inline constexpr std::uint16_t kActOutput = 0, kActSetVlanVid = 1, kActSetVlanPcp = 2,
    kActStripVlan = 3, kActSetDlSrc = 4, kActSetDlDst = 5, kActSetNwSrc = 6, kActSetNwDst = 7,
    kActSetNwTos = 8, kActSetTpSrc = 9, kActSetTpDst = 10;
struct ActionOutput { U16 type, len, port, max_len; };
static_assert(sizeof(ActionOutput) == 8);
struct ActionDlAddr { U16 type, len; Mac addr; std::array<U8, 6> pad; };
static_assert(sizeof(ActionDlAddr) == 16);
struct ActionNwAddr { U16 type, len; U32 addr; };
static_assert(sizeof(ActionNwAddr) == 8);
struct ActionU16 { U16 type, len, value; std::array<U8, 2> pad; };  // vlan_vid, tp_src/dst
static_assert(sizeof(ActionU16) == 8);
struct ActionU8 { U16 type, len; U8 value; std::array<U8, 3> pad; };  // vlan_pcp, nw_tos
static_assert(sizeof(ActionU8) == 8);
struct ActionPad { U16 type, len; std::array<U8, 4> pad; };  // strip_vlan
static_assert(sizeof(ActionPad) == 8);
}  // namespace v10

}  // namespace cw::ofp::wire
