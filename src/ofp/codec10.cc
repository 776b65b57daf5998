// OpenFlow 1.0 messages, mapped onto the same value types as 1.3.
//
// What 1.0 cannot say (canEncode10 refuses it, encode asserts): metadata, IPv6 and MAC masks
// in matches; instructions other than one apply-actions; push-vlan and group actions; ports
// between 0xff00 and the reserved range; table ids other than 0 (or "all" for deletes);
// cookie masks; out_group; role and meter messages; port-desc multiparts (1.0 lists ports in
// FEATURES_REPLY). Fields 1.0 lacks decode to their defaults (table_id 0, hard_timeout 0 in
// FLOW_REMOVED, no port speeds), and 1.0 error numbers are translated to and from 1.3's.
#include <array>
#include <cassert>
#include <variant>

#include "ofp/internal.h"
#include "ofp/wire.h"

namespace cw::ofp::detail {
namespace {

namespace w10 = wire::v10;
using MsgResult = Result<Message, DecodeError>;
constexpr std::uint8_t kVersion = static_cast<std::uint8_t>(Version::kOf10);
constexpr std::uint16_t kFlowFlags10 = kFlowSendFlowRem | kFlowCheckOverlap;

template <class Wire>
constexpr std::size_t bodySize() { return sizeof(Wire) - sizeof(wire::Header); }

std::vector<std::uint8_t> toVector(Bytes b) { return {b.begin(), b.end()}; }

// ---- Error numbers. 1.0 FLOW_MOD_FAILED(3), PORT_MOD_FAILED(4), QUEUE_OP_FAILED(5) are 1.3's
// 5, 7 and 9; flow-mod codes were renumbered. Types without a counterpart pass through.
constexpr std::array<std::uint16_t, 6> kFlowModCode10To13 = {1, 3, 4, 5, 6, 0};

std::pair<std::uint16_t, std::uint16_t> error10To13(std::uint16_t type, std::uint16_t code) {
  switch (type) {
    case 3: return {5, code < kFlowModCode10To13.size() ? kFlowModCode10To13[code] : code};
    case 4: return {7, code};
    case 5: return {9, code};
    default: return {type, code};
  }
}
std::pair<std::uint16_t, std::uint16_t> error13To10(std::uint16_t type, std::uint16_t code) {
  switch (type) {
    case 3:
    case 4: return {1, 5};  // bad instruction / bad match: OFPET_BAD_REQUEST, OFPBRC_EPERM
    case 5:
      for (std::uint16_t c10 = 0; c10 < kFlowModCode10To13.size(); ++c10) {
        if (kFlowModCode10To13[c10] == code) return {3, c10};
      }
      return {3, code};
    case 7: return {4, code};
    case 9: return {5, code};
    default: return {type, code};
  }
}

PortDesc readPhyPort(ByteReader& r) {
  PortDesc p;
  p.port_no = port13(r.u16());
  r.copy(p.hw_addr.b.data(), 6);
  p.name = readName(r, 16);
  p.config = r.u32();
  p.state = r.u32();
  p.curr = r.u32();
  p.advertised = r.u32();
  p.supported = r.u32();
  p.peer = r.u32();
  return p;
}

void writePhyPort(ByteWriter& w, const PortDesc& p) {
  w.u16(port10(p.port_no));
  w.bytes(p.hw_addr.b);
  writeName(w, p.name, 16);
  for (auto v : {p.config, p.state, p.curr, p.advertised, p.supported, p.peer}) w.u32(v);
}

std::uint8_t protoOf(const Match& m) { return m.has(Field::kIpProto) ? m.ip_proto : 0; }

Status decodeFlowActions(Bytes bytes, const Match& m, std::vector<Instruction>& out) {
  ActionList actions;
  CW_OFP_TRY(decodeActions10(bytes, actions, protoOf(m)));
  if (!actions.empty()) out.emplace_back(InstrApplyActions{std::move(actions)});
  return {};
}

MsgResult decodePacketIn(ByteReader& r) {
  if (r.remaining() < bodySize<w10::PacketIn>()) return fail(DecodeError::kTruncated);
  PacketIn pi;
  pi.buffer_id = r.u32();
  pi.total_len = r.u16();
  pi.match.inPort(port13(r.u16()));
  pi.reason = static_cast<PacketInReason>(r.u8());
  r.skip(1);
  pi.data = r.rest();
  return Message{pi};
}

MsgResult decodePacketOut(ByteReader& r) {
  if (r.remaining() < bodySize<w10::PacketOut>()) return fail(DecodeError::kTruncated);
  PacketOut po;
  po.buffer_id = r.u32();
  po.in_port = port13(r.u16());
  std::uint16_t actions_len = r.u16();
  if (actions_len > r.remaining()) return fail(DecodeError::kBadLength);
  CW_OFP_TRY(decodeActions10(r.bytes(actions_len), po.actions, 0));
  po.data = toVector(r.rest());
  return Message{std::move(po)};
}

MsgResult decodeFlowMod(ByteReader& r) {
  if (r.remaining() < bodySize<w10::FlowMod>()) return fail(DecodeError::kTruncated);
  FlowMod fm;
  CW_OFP_TRY(decodeMatch10(r, fm.match));
  fm.cookie = r.u64();
  std::uint16_t command = r.u16();
  if (command > static_cast<std::uint16_t>(FlowModCommand::kDeleteStrict)) return fail(DecodeError::kBadValue);
  fm.command = static_cast<FlowModCommand>(command);
  fm.idle_timeout = r.u16();
  fm.hard_timeout = r.u16();
  fm.priority = r.u16();
  fm.buffer_id = r.u32();
  fm.out_port = port13(r.u16());
  // OFPFF_EMERG (4) has no 1.3 meaning (and collides with RESET_COUNTS): dropped.
  fm.flags = static_cast<std::uint16_t>(r.u16() & kFlowFlags10);
  CW_OFP_TRY(decodeFlowActions(r.rest(), fm.match, fm.instructions));
  return Message{std::move(fm)};
}

MsgResult decodeFlowRemoved(ByteReader& r) {
  if (r.remaining() < bodySize<w10::FlowRemoved>()) return fail(DecodeError::kTruncated);
  FlowRemoved fr;
  CW_OFP_TRY(decodeMatch10(r, fr.match));
  fr.cookie = r.u64();
  fr.priority = r.u16();
  fr.reason = static_cast<FlowRemovedReason>(r.u8());
  r.skip(1);
  fr.duration_sec = r.u32();
  fr.duration_nsec = r.u32();
  fr.idle_timeout = r.u16();
  r.skip(2);
  fr.packet_count = r.u64();
  fr.byte_count = r.u64();
  return finish(r, Message{fr});
}

MsgResult decodeStatsRequest(ByteReader& r) {
  MultipartRequest req;
  std::uint16_t type = r.u16();
  req.flags = r.u16();
  if (!r.ok()) return fail(DecodeError::kTruncated);
  if (type == w10::kStTable) {
    req.body = TableStatsRequest{};
  } else if (type == w10::kStFlow) {
    FlowStatsRequest fs;
    if (r.remaining() < sizeof(w10::FlowStatsRequest)) return fail(DecodeError::kTruncated);
    CW_OFP_TRY(decodeMatch10(r, fs.match));
    fs.table_id = r.u8();
    r.skip(1);
    fs.out_port = port13(r.u16());
    req.body = fs;
  } else {
    return fail(DecodeError::kBadMultipart);
  }
  return finish(r, Message{req});
}

Result<FlowStats, DecodeError> decodeFlowStats(ByteReader& r) {
  if (r.remaining() < 2) return fail(DecodeError::kBadLength);
  ByteReader peek = r;
  std::uint16_t len = peek.u16();
  if (len < sizeof(w10::FlowStats) || len > r.remaining()) return fail(DecodeError::kBadLength);
  ByteReader e(r.bytes(len));
  FlowStats fs;
  e.skip(2);
  fs.table_id = e.u8();
  e.skip(1);
  CW_OFP_TRY(decodeMatch10(e, fs.match));
  fs.duration_sec = e.u32();
  fs.duration_nsec = e.u32();
  fs.priority = e.u16();
  fs.idle_timeout = e.u16();
  fs.hard_timeout = e.u16();
  e.skip(6);
  fs.cookie = e.u64();
  fs.packet_count = e.u64();
  fs.byte_count = e.u64();
  CW_OFP_TRY(decodeFlowActions(e.rest(), fs.match, fs.instructions));
  return fs;
}

MsgResult decodeStatsReply(ByteReader& r) {
  MultipartReply rep;
  std::uint16_t type = r.u16();
  rep.flags = r.u16();
  if (!r.ok()) return fail(DecodeError::kTruncated);
  if (type == w10::kStTable) {
    if (r.remaining() % sizeof(w10::TableStats) != 0) return fail(DecodeError::kBadLength);
    std::vector<TableStats> tables;
    while (!r.empty()) {
      TableStats t;
      t.table_id = r.u8();
      r.skip(3 + 32 + 4 + 4);  // pad, name, wildcards, max_entries
      t.active_count = r.u32();
      t.lookup_count = r.u64();
      t.matched_count = r.u64();
      tables.push_back(t);
    }
    rep.body = std::move(tables);
  } else if (type == w10::kStFlow) {
    std::vector<FlowStats> flows;
    while (!r.empty()) {
      auto fs = decodeFlowStats(r);
      if (!fs) return fail(fs.error());
      flows.push_back(std::move(fs).value());
    }
    rep.body = std::move(flows);
  } else {
    return fail(DecodeError::kBadMultipart);
  }
  return Message{std::move(rep)};
}

// ---- Encoding ----

void writeFlowStats(ByteWriter& w, const FlowStats& fs) {
  std::size_t at = w.offset();
  w.u16(0);
  w.u8(fs.table_id);
  w.zeros(1);
  encodeMatch10(w, fs.match);
  w.u32(fs.duration_sec);
  w.u32(fs.duration_nsec);
  w.u16(fs.priority);
  w.u16(fs.idle_timeout);
  w.u16(fs.hard_timeout);
  w.zeros(6);
  w.u64(fs.cookie);
  w.u64(fs.packet_count);
  w.u64(fs.byte_count);
  encodeInstructions10(w, fs.instructions);
  w.patch_u16(at, static_cast<std::uint16_t>(w.offset() - at));
}

struct Encoder10 {
  ByteWriter& w;
  std::uint32_t xid;

  std::size_t begin(std::uint8_t type) const { return beginMessage(w, kVersion, type, xid); }

  void operator()(const Hello& m) const { auto at = begin(w10::kHello); encodeHello(w, m); endMessage(w, at); }
  void operator()(const ErrorMsg& m) const {
    auto at = begin(w10::kError);
    auto [type, code] = error13To10(m.type, m.code);
    w.u16(type);
    w.u16(code);
    w.bytes(m.data);
    endMessage(w, at);
  }
  void operator()(const Echo& m) const {
    auto at = begin(m.reply ? w10::kEchoReply : w10::kEchoRequest);
    w.bytes(m.data);
    endMessage(w, at);
  }
  void operator()(const FeaturesRequest&) const { endMessage(w, begin(w10::kFeaturesRequest)); }
  void operator()(const FeaturesReply& m) const {
    auto at = begin(w10::kFeaturesReply);
    w.u64(m.datapath_id);
    w.u32(m.n_buffers);
    w.u8(m.n_tables);
    w.zeros(3);
    w.u32(m.capabilities);
    w.u32(m.actions);
    for (const auto& p : m.ports) writePhyPort(w, p);
    endMessage(w, at);
  }
  void operator()(const GetConfigRequest&) const { endMessage(w, begin(w10::kGetConfigRequest)); }
  void operator()(const SwitchConfig& m) const {
    auto at = begin(m.set ? w10::kSetConfig : w10::kGetConfigReply);
    w.u16(m.flags);
    w.u16(m.miss_send_len);
    endMessage(w, at);
  }
  void operator()(const PacketIn& m) const {
    auto at = begin(w10::kPacketIn);
    w.u32(m.buffer_id);
    w.u16(m.total_len);
    w.u16(port10(m.match.in_port));
    w.u8(static_cast<std::uint8_t>(m.reason));
    w.zeros(1);
    w.bytes(m.data);
    endMessage(w, at);
  }
  void operator()(const PacketOut& m) const { encodePacketOut10(xid, m, w.buffer()); }
  void operator()(const FlowMod& m) const { encodeFlowMod10(xid, m, w.buffer()); }
  void operator()(const FlowRemoved& m) const {
    auto at = begin(w10::kFlowRemoved);
    encodeMatch10(w, m.match);
    w.u64(m.cookie);
    w.u16(m.priority);
    w.u8(static_cast<std::uint8_t>(m.reason));
    w.zeros(1);
    w.u32(m.duration_sec);
    w.u32(m.duration_nsec);
    w.u16(m.idle_timeout);
    w.zeros(2);
    w.u64(m.packet_count);
    w.u64(m.byte_count);
    endMessage(w, at);
  }
  void operator()(const PortStatus& m) const {
    auto at = begin(w10::kPortStatus);
    w.u8(static_cast<std::uint8_t>(m.reason));
    w.zeros(7);
    writePhyPort(w, m.desc);
    endMessage(w, at);
  }
  void operator()(const BarrierRequest&) const { endMessage(w, begin(w10::kBarrierRequest)); }
  void operator()(const BarrierReply&) const { endMessage(w, begin(w10::kBarrierReply)); }
  void operator()(const RoleMsg&) const { assert(false && "no roles in OpenFlow 1.0"); }
  void operator()(const MeterMod&) const { assert(false && "no meters in OpenFlow 1.0"); }
  // Nicira vendor messages have the same body in 1.0 (OFPT_VENDOR) as in 1.3.
  void operator()(const CtFlushZone& m) const { encodeNxMessage(w, kVersion, xid, m); }
  void operator()(const CtFlush& m) const { encodeNxMessage(w, kVersion, xid, m); }
  void operator()(const MultipartRequest& m) const {
    auto at = begin(w10::kStatsRequest);
    if (const auto* fs = std::get_if<FlowStatsRequest>(&m.body)) {
      w.u16(w10::kStFlow);
      w.u16(m.flags);
      encodeMatch10(w, fs->match);
      w.u8(fs->table_id);
      w.zeros(1);
      w.u16(port10(fs->out_port));
    } else {
      assert(std::holds_alternative<TableStatsRequest>(m.body));
      w.u16(w10::kStTable);
      w.u16(m.flags);
    }
    endMessage(w, at);
  }
  void operator()(const MultipartReply& m) const {
    auto at = begin(w10::kStatsReply);
    if (const auto* flows = std::get_if<std::vector<FlowStats>>(&m.body)) {
      w.u16(w10::kStFlow);
      w.u16(m.flags);
      for (const auto& f : *flows) writeFlowStats(w, f);
    } else if (const auto* tables = std::get_if<std::vector<TableStats>>(&m.body)) {
      w.u16(w10::kStTable);
      w.u16(m.flags);
      for (const auto& t : *tables) {
        w.u8(t.table_id);
        w.zeros(3 + 32);
        w.u32(w10::kFwAll);
        w.u32(0);  // max_entries: not modelled
        w.u32(t.active_count);
        w.u64(t.lookup_count);
        w.u64(t.matched_count);
      }
    } else {
      assert(false && "port-desc multipart has no 1.0 form");
    }
    endMessage(w, at);
  }
};

bool flowModOk(const FlowMod& fm) {
  bool is_delete = fm.command == FlowModCommand::kDelete || fm.command == FlowModCommand::kDeleteStrict;
  return (fm.table_id == 0 || (is_delete && fm.table_id == kTableAll)) && fm.cookie_mask == 0 &&
         fm.out_group == kGroupAny && (fm.flags & ~kFlowFlags10) == 0 && canExpressMatch10(fm.match) &&
         canExpressPort10(fm.out_port) && canExpressInstructions10(fm.instructions);
}

struct CanEncode10 {
  bool operator()(const PacketIn& m) const { return canExpressPort10(m.match.in_port); }
  bool operator()(const PacketOut& m) const { return canExpressPort10(m.in_port) && canExpressActions10(m.actions); }
  bool operator()(const FlowMod& m) const { return flowModOk(m); }
  bool operator()(const FlowRemoved& m) const { return canExpressMatch10(m.match); }
  bool operator()(const PortStatus& m) const { return canExpressPort10(m.desc.port_no); }
  bool operator()(const FeaturesReply& m) const {
    for (const auto& p : m.ports) {
      if (!canExpressPort10(p.port_no)) return false;
    }
    return true;
  }
  bool operator()(const RoleMsg&) const { return false; }
  bool operator()(const MeterMod&) const { return false; }
  bool operator()(const CtFlush& m) const { return canEncodeCtFlush(m); }
  bool operator()(const MultipartRequest& m) const {
    if (std::holds_alternative<PortDescRequest>(m.body)) return false;
    const auto* fs = std::get_if<FlowStatsRequest>(&m.body);
    return fs == nullptr || (fs->cookie_mask == 0 && fs->out_group == kGroupAny &&
                             canExpressMatch10(fs->match) && canExpressPort10(fs->out_port));
  }
  bool operator()(const MultipartReply& m) const {
    if (std::holds_alternative<std::vector<PortDesc>>(m.body)) return false;
    if (const auto* flows = std::get_if<std::vector<FlowStats>>(&m.body)) {
      for (const auto& f : *flows) {
        if (!canExpressMatch10(f.match) || !canExpressInstructions10(f.instructions)) return false;
      }
    }
    return true;
  }
  template <class T>
  bool operator()(const T&) const { return true; }
};

}  // namespace

bool canEncode10(const Message& msg) { return std::visit(CanEncode10{}, msg); }

MsgResult decodeBody10(const Header& h, ByteReader& r) {
  switch (h.type) {
    case w10::kHello: return decodeHello(h, r);
    case w10::kError: {
      std::uint16_t type = r.u16();
      std::uint16_t code = r.u16();
      if (!r.ok()) return fail(DecodeError::kTruncated);
      ErrorMsg e;
      std::tie(e.type, e.code) = error10To13(type, code);
      e.data = toVector(r.rest());
      return Message{std::move(e)};
    }
    case w10::kEchoRequest:
    case w10::kEchoReply: return Message{Echo{h.type == w10::kEchoReply, toVector(r.rest())}};
    case w10::kFeaturesRequest: return finish(r, Message{FeaturesRequest{}});
    case w10::kFeaturesReply: {
      FeaturesReply f;
      f.datapath_id = r.u64();
      f.n_buffers = r.u32();
      f.n_tables = r.u8();
      r.skip(3);
      f.capabilities = r.u32();
      f.actions = r.u32();
      if (!r.ok()) return fail(DecodeError::kTruncated);
      if (r.remaining() % sizeof(w10::PhyPort) != 0) return fail(DecodeError::kBadLength);
      while (!r.empty()) f.ports.push_back(readPhyPort(r));
      return Message{std::move(f)};
    }
    case w10::kGetConfigRequest: return finish(r, Message{GetConfigRequest{}});
    case w10::kGetConfigReply:
    case w10::kSetConfig: {
      SwitchConfig c;
      c.set = h.type == w10::kSetConfig;
      c.flags = r.u16();
      c.miss_send_len = r.u16();
      return finish(r, Message{c});
    }
    case w10::kPacketIn: return decodePacketIn(r);
    case w10::kPacketOut: return decodePacketOut(r);
    case w10::kFlowMod: return decodeFlowMod(r);
    case w10::kFlowRemoved: return decodeFlowRemoved(r);
    case w10::kPortStatus: {
      PortStatus ps;
      ps.reason = static_cast<PortReason>(r.u8());
      r.skip(7);
      ps.desc = readPhyPort(r);
      return finish(r, Message{std::move(ps)});
    }
    case w10::kStatsRequest: return decodeStatsRequest(r);
    case w10::kStatsReply: return decodeStatsReply(r);
    case w10::kBarrierRequest: return finish(r, Message{BarrierRequest{}});
    case w10::kBarrierReply: return finish(r, Message{BarrierReply{}});
    case w10::kVendor: return decodeNxMessage(r);
    default: return fail(DecodeError::kBadType);
  }
}

void encode10(std::uint32_t xid, const Message& msg, std::vector<std::uint8_t>& out) {
  ByteWriter w(out);
  std::visit(Encoder10{w, xid}, msg);
}

void encodeFlowMod10(std::uint32_t xid, const FlowMod& fm, std::vector<std::uint8_t>& out) {
  assert(flowModOk(fm));
  ByteWriter w(out);
  auto at = beginMessage(w, kVersion, w10::kFlowMod, xid);
  encodeMatch10(w, fm.match);
  w.u64(fm.cookie);
  w.u16(static_cast<std::uint16_t>(fm.command));
  w.u16(fm.idle_timeout);
  w.u16(fm.hard_timeout);
  w.u16(fm.priority);
  w.u32(fm.buffer_id);
  w.u16(port10(fm.out_port));
  w.u16(fm.flags);
  encodeInstructions10(w, fm.instructions);
  endMessage(w, at);
}

void encodePacketOut10(std::uint32_t xid, const PacketOut& po, std::vector<std::uint8_t>& out) {
  assert(canExpressPort10(po.in_port) && canExpressActions10(po.actions));
  ByteWriter w(out);
  auto at = beginMessage(w, kVersion, w10::kPacketOut, xid);
  w.u32(po.buffer_id);
  w.u16(port10(po.in_port));
  std::size_t len_at = w.offset();
  w.u16(0);
  std::size_t start = w.offset();
  encodeActions10(w, po.actions);
  w.patch_u16(len_at, static_cast<std::uint16_t>(w.offset() - start));
  w.bytes(po.data);
  endMessage(w, at);
}

}  // namespace cw::ofp::detail
