// OpenFlow 1.3 messages: body decoders (after the central header/length check in codec.cc)
// and encoders. Field order in each reader/writer follows the struct in wire.h.
#include <bit>
#include <cassert>
#include <variant>

#include "ofp/internal.h"
#include "ofp/wire.h"

namespace cw::ofp::detail {
namespace {

namespace w13 = wire::v13;
using MsgResult = Result<Message, DecodeError>;
constexpr std::uint8_t kVersion = static_cast<std::uint8_t>(Version::kOf13);

// Fixed part of a message after the 8-byte header.
template <class Wire>
constexpr std::size_t bodySize() { return sizeof(Wire) - sizeof(wire::Header); }

std::vector<std::uint8_t> toVector(Bytes b) { return {b.begin(), b.end()}; }

PortDesc readPort(ByteReader& r) {
  PortDesc p;
  p.port_no = r.u32();
  r.skip(4);
  r.copy(p.hw_addr.b.data(), 6);
  r.skip(2);
  p.name = readName(r, 16);
  p.config = r.u32();
  p.state = r.u32();
  p.curr = r.u32();
  p.advertised = r.u32();
  p.supported = r.u32();
  p.peer = r.u32();
  p.curr_speed = r.u32();
  p.max_speed = r.u32();
  return p;
}

void writePort(ByteWriter& w, const PortDesc& p) {
  w.u32(p.port_no);
  w.zeros(4);
  w.bytes(p.hw_addr.b);
  w.zeros(2);
  writeName(w, p.name, 16);
  for (auto v : {p.config, p.state, p.curr, p.advertised, p.supported, p.peer, p.curr_speed, p.max_speed}) w.u32(v);
}

MsgResult decodePacketIn(ByteReader& r) {
  if (r.remaining() < bodySize<w13::PacketIn>() + w13::kPacketInDataPad) return fail(DecodeError::kTruncated);
  PacketIn pi;
  pi.buffer_id = r.u32();
  pi.total_len = r.u16();
  pi.reason = static_cast<PacketInReason>(r.u8());
  pi.table_id = r.u8();
  pi.cookie = r.u64();
  CW_OFP_TRY(decodeOxmMatch(r, pi.match, /*skip_unknown=*/true));
  if (r.remaining() < w13::kPacketInDataPad) return fail(DecodeError::kTruncated);
  r.skip(w13::kPacketInDataPad);
  pi.data = r.rest();
  return Message{pi};
}

MsgResult decodePacketOut(ByteReader& r) {
  if (r.remaining() < bodySize<w13::PacketOut>()) return fail(DecodeError::kTruncated);
  PacketOut po;
  po.buffer_id = r.u32();
  po.in_port = r.u32();
  std::uint16_t actions_len = r.u16();
  r.skip(6);
  if (actions_len > r.remaining()) return fail(DecodeError::kBadLength);
  CW_OFP_TRY(decodeActions13(r.bytes(actions_len), po.actions));
  po.data = toVector(r.rest());
  return Message{std::move(po)};
}

MsgResult decodeFlowMod(ByteReader& r) {
  if (r.remaining() < bodySize<w13::FlowMod>()) return fail(DecodeError::kTruncated);
  FlowMod fm;
  fm.cookie = r.u64();
  fm.cookie_mask = r.u64();
  fm.table_id = r.u8();
  std::uint8_t command = r.u8();
  if (command > static_cast<std::uint8_t>(FlowModCommand::kDeleteStrict)) return fail(DecodeError::kBadValue);
  fm.command = static_cast<FlowModCommand>(command);
  fm.idle_timeout = r.u16();
  fm.hard_timeout = r.u16();
  fm.priority = r.u16();
  fm.buffer_id = r.u32();
  fm.out_port = r.u32();
  fm.out_group = r.u32();
  fm.flags = r.u16();
  r.skip(2);
  CW_OFP_TRY(decodeOxmMatch(r, fm.match, false));
  CW_OFP_TRY(decodeInstructions13(r.rest(), fm.instructions));
  return Message{std::move(fm)};
}

MsgResult decodeFlowRemoved(ByteReader& r) {
  if (r.remaining() < bodySize<w13::FlowRemoved>()) return fail(DecodeError::kTruncated);
  FlowRemoved fr;
  fr.cookie = r.u64();
  fr.priority = r.u16();
  fr.reason = static_cast<FlowRemovedReason>(r.u8());
  fr.table_id = r.u8();
  fr.duration_sec = r.u32();
  fr.duration_nsec = r.u32();
  fr.idle_timeout = r.u16();
  fr.hard_timeout = r.u16();
  fr.packet_count = r.u64();
  fr.byte_count = r.u64();
  CW_OFP_TRY(decodeOxmMatch(r, fr.match, false));
  return finish(r, Message{fr});
}

MsgResult decodeMeterMod(ByteReader& r) {
  MeterMod mm;
  std::uint16_t command = r.u16();
  mm.flags = r.u16();
  mm.meter_id = r.u32();
  if (!r.ok()) return fail(DecodeError::kTruncated);
  if (command > static_cast<std::uint16_t>(MeterModCommand::kDelete)) return fail(DecodeError::kBadValue);
  mm.command = static_cast<MeterModCommand>(command);
  while (!r.empty()) {
    if (r.remaining() < 4) return fail(DecodeError::kBadLength);
    std::uint16_t type = r.u16();
    std::uint16_t len = r.u16();
    if (len != sizeof(w13::MeterBandDrop) || len - 4u > r.remaining()) return fail(DecodeError::kBadLength);
    if (type != w13::kMeterBandDrop) return fail(DecodeError::kBadValue);
    MeterBandDrop band;
    band.rate = r.u32();
    band.burst_size = r.u32();
    r.skip(4);
    mm.bands.push_back(band);
  }
  return Message{std::move(mm)};
}

MsgResult decodeMultipartRequest(ByteReader& r) {
  MultipartRequest req;
  std::uint16_t type = r.u16();
  req.flags = r.u16();
  r.skip(4);
  if (!r.ok()) return fail(DecodeError::kTruncated);
  switch (type) {
    case w13::kMpPortDesc: req.body = PortDescRequest{}; break;
    case w13::kMpTable: req.body = TableStatsRequest{}; break;
    case w13::kMpFlow: {
      FlowStatsRequest fs;
      fs.table_id = r.u8();
      r.skip(3);
      fs.out_port = r.u32();
      fs.out_group = r.u32();
      r.skip(4);
      fs.cookie = r.u64();
      fs.cookie_mask = r.u64();
      if (!r.ok()) return fail(DecodeError::kTruncated);
      CW_OFP_TRY(decodeOxmMatch(r, fs.match, false));
      req.body = fs;
      break;
    }
    default: return fail(DecodeError::kBadMultipart);
  }
  return finish(r, Message{req});
}

Result<FlowStats, DecodeError> decodeFlowStats(ByteReader& r) {
  if (r.remaining() < 2) return fail(DecodeError::kBadLength);
  ByteReader peek = r;
  std::uint16_t len = peek.u16();
  if (len < w13::kFlowStatsFixed + sizeof(w13::MatchFixed) || len > r.remaining()) {
    return fail(DecodeError::kBadLength);
  }
  ByteReader e(r.bytes(len));
  FlowStats fs;
  e.skip(2);
  fs.table_id = e.u8();
  e.skip(1);
  fs.duration_sec = e.u32();
  fs.duration_nsec = e.u32();
  fs.priority = e.u16();
  fs.idle_timeout = e.u16();
  fs.hard_timeout = e.u16();
  fs.flags = e.u16();
  e.skip(4);
  fs.cookie = e.u64();
  fs.packet_count = e.u64();
  fs.byte_count = e.u64();
  CW_OFP_TRY(decodeOxmMatch(e, fs.match, false));
  CW_OFP_TRY(decodeInstructions13(e.rest(), fs.instructions));
  return fs;
}

MsgResult decodeMultipartReply(ByteReader& r) {
  MultipartReply rep;
  std::uint16_t type = r.u16();
  rep.flags = r.u16();
  r.skip(4);
  if (!r.ok()) return fail(DecodeError::kTruncated);
  switch (type) {
    case w13::kMpPortDesc: {
      if (r.remaining() % sizeof(w13::Port) != 0) return fail(DecodeError::kBadLength);
      std::vector<PortDesc> ports;
      while (!r.empty()) ports.push_back(readPort(r));
      rep.body = std::move(ports);
      break;
    }
    case w13::kMpTable: {
      if (r.remaining() % sizeof(w13::TableStats) != 0) return fail(DecodeError::kBadLength);
      std::vector<TableStats> tables;
      while (!r.empty()) {
        TableStats t;
        t.table_id = r.u8();
        r.skip(3);
        t.active_count = r.u32();
        t.lookup_count = r.u64();
        t.matched_count = r.u64();
        tables.push_back(t);
      }
      rep.body = std::move(tables);
      break;
    }
    case w13::kMpFlow: {
      std::vector<FlowStats> flows;
      while (!r.empty()) {
        auto fs = decodeFlowStats(r);
        if (!fs) return fail(fs.error());
        flows.push_back(std::move(fs).value());
      }
      rep.body = std::move(flows);
      break;
    }
    default: return fail(DecodeError::kBadMultipart);
  }
  return Message{std::move(rep)};
}

// ---- Encoding ----

void writeFlowModBody(ByteWriter& w, const FlowMod& fm) {
  w.u64(fm.cookie);
  w.u64(fm.cookie_mask);
  w.u8(fm.table_id);
  w.u8(static_cast<std::uint8_t>(fm.command));
  w.u16(fm.idle_timeout);
  w.u16(fm.hard_timeout);
  w.u16(fm.priority);
  w.u32(fm.buffer_id);
  w.u32(fm.out_port);
  w.u32(fm.out_group);
  w.u16(fm.flags);
  w.zeros(2);
  encodeOxmMatch(w, fm.match);
  encodeInstructions13(w, fm.instructions);
}

void writePacketOutBody(ByteWriter& w, const PacketOut& po) {
  w.u32(po.buffer_id);
  w.u32(po.in_port);
  std::size_t len_at = w.offset();
  w.u16(0);
  w.zeros(6);
  std::size_t start = w.offset();
  encodeActions13(w, po.actions);
  w.patch_u16(len_at, static_cast<std::uint16_t>(w.offset() - start));
  w.bytes(po.data);
}

void writeFlowStats(ByteWriter& w, const FlowStats& fs) {
  std::size_t at = w.offset();
  w.u16(0);
  w.u8(fs.table_id);
  w.zeros(1);
  w.u32(fs.duration_sec);
  w.u32(fs.duration_nsec);
  w.u16(fs.priority);
  w.u16(fs.idle_timeout);
  w.u16(fs.hard_timeout);
  w.u16(fs.flags);
  w.zeros(4);
  w.u64(fs.cookie);
  w.u64(fs.packet_count);
  w.u64(fs.byte_count);
  encodeOxmMatch(w, fs.match);
  encodeInstructions13(w, fs.instructions);
  w.patch_u16(at, static_cast<std::uint16_t>(w.offset() - at));
}

struct Encoder13 {
  ByteWriter& w;
  std::uint32_t xid;

  std::size_t begin(std::uint8_t type) const { return beginMessage(w, kVersion, type, xid); }

  void operator()(const Hello& m) const { auto at = begin(w13::kHello); encodeHello(w, m); endMessage(w, at); }
  void operator()(const ErrorMsg& m) const {
    auto at = begin(w13::kError);
    w.u16(m.type);
    w.u16(m.code);
    w.bytes(m.data);
    endMessage(w, at);
  }
  void operator()(const Echo& m) const {
    auto at = begin(m.reply ? w13::kEchoReply : w13::kEchoRequest);
    w.bytes(m.data);
    endMessage(w, at);
  }
  void operator()(const FeaturesRequest&) const { endMessage(w, begin(w13::kFeaturesRequest)); }
  void operator()(const FeaturesReply& m) const {
    auto at = begin(w13::kFeaturesReply);
    w.u64(m.datapath_id);
    w.u32(m.n_buffers);
    w.u8(m.n_tables);
    w.u8(m.auxiliary_id);
    w.zeros(2);
    w.u32(m.capabilities);
    w.u32(0);
    endMessage(w, at);
  }
  void operator()(const GetConfigRequest&) const { endMessage(w, begin(w13::kGetConfigRequest)); }
  void operator()(const SwitchConfig& m) const {
    auto at = begin(m.set ? w13::kSetConfig : w13::kGetConfigReply);
    w.u16(m.flags);
    w.u16(m.miss_send_len);
    endMessage(w, at);
  }
  void operator()(const PacketIn& m) const {
    auto at = begin(w13::kPacketIn);
    w.u32(m.buffer_id);
    w.u16(m.total_len);
    w.u8(static_cast<std::uint8_t>(m.reason));
    w.u8(m.table_id);
    w.u64(m.cookie);
    encodeOxmMatch(w, m.match);
    w.zeros(w13::kPacketInDataPad);
    w.bytes(m.data);
    endMessage(w, at);
  }
  void operator()(const PacketOut& m) const { encodePacketOut13(xid, m, w.buffer()); }
  void operator()(const FlowMod& m) const { encodeFlowMod13(xid, m, w.buffer()); }
  void operator()(const FlowRemoved& m) const {
    auto at = begin(w13::kFlowRemoved);
    w.u64(m.cookie);
    w.u16(m.priority);
    w.u8(static_cast<std::uint8_t>(m.reason));
    w.u8(m.table_id);
    w.u32(m.duration_sec);
    w.u32(m.duration_nsec);
    w.u16(m.idle_timeout);
    w.u16(m.hard_timeout);
    w.u64(m.packet_count);
    w.u64(m.byte_count);
    encodeOxmMatch(w, m.match);
    endMessage(w, at);
  }
  void operator()(const PortStatus& m) const {
    auto at = begin(w13::kPortStatus);
    w.u8(static_cast<std::uint8_t>(m.reason));
    w.zeros(7);
    writePort(w, m.desc);
    endMessage(w, at);
  }
  void operator()(const CtFlushZone& m) const { encodeNxMessage(w, kVersion, xid, m); }
  void operator()(const CtFlush& m) const { encodeNxMessage(w, kVersion, xid, m); }
  void operator()(const BarrierRequest&) const { endMessage(w, begin(w13::kBarrierRequest)); }
  void operator()(const BarrierReply&) const { endMessage(w, begin(w13::kBarrierReply)); }
  void operator()(const RoleMsg& m) const {
    auto at = begin(m.reply ? w13::kRoleReply : w13::kRoleRequest);
    w.u32(static_cast<std::uint32_t>(m.role));
    w.zeros(4);
    w.u64(m.generation_id);
    endMessage(w, at);
  }
  void operator()(const MeterMod& m) const {
    auto at = begin(w13::kMeterMod);
    w.u16(static_cast<std::uint16_t>(m.command));
    w.u16(m.flags);
    w.u32(m.meter_id);
    for (const auto& b : m.bands) {
      w.u16(w13::kMeterBandDrop);
      w.u16(sizeof(w13::MeterBandDrop));
      w.u32(b.rate);
      w.u32(b.burst_size);
      w.zeros(4);
    }
    endMessage(w, at);
  }
  void operator()(const MultipartRequest& m) const {
    auto at = begin(w13::kMultipartRequest);
    std::visit([&](const auto& body) {
      using T = std::decay_t<decltype(body)>;
      if constexpr (std::is_same_v<T, PortDescRequest>) {
        w.u16(w13::kMpPortDesc);
      } else if constexpr (std::is_same_v<T, TableStatsRequest>) {
        w.u16(w13::kMpTable);
      } else {
        w.u16(w13::kMpFlow);
      }
      w.u16(m.flags);
      w.zeros(4);
      if constexpr (std::is_same_v<T, FlowStatsRequest>) {
        w.u8(body.table_id);
        w.zeros(3);
        w.u32(body.out_port);
        w.u32(body.out_group);
        w.zeros(4);
        w.u64(body.cookie);
        w.u64(body.cookie_mask);
        encodeOxmMatch(w, body.match);
      }
    }, m.body);
    endMessage(w, at);
  }
  void operator()(const MultipartReply& m) const {
    auto at = begin(w13::kMultipartReply);
    static constexpr std::uint16_t kTypes[] = {w13::kMpPortDesc, w13::kMpFlow, w13::kMpTable};
    w.u16(kTypes[m.body.index()]);
    w.u16(m.flags);
    w.zeros(4);
    if (const auto* ports = std::get_if<std::vector<PortDesc>>(&m.body)) {
      for (const auto& p : *ports) writePort(w, p);
    } else if (const auto* flows = std::get_if<std::vector<FlowStats>>(&m.body)) {
      for (const auto& f : *flows) writeFlowStats(w, f);
    } else if (const auto* tables = std::get_if<std::vector<TableStats>>(&m.body)) {
      for (const auto& t : *tables) {
        w.u8(t.table_id);
        w.zeros(3);
        w.u32(t.active_count);
        w.u64(t.lookup_count);
        w.u64(t.matched_count);
      }
    }
    endMessage(w, at);
  }
};

bool setFieldsOk(const ActionList& actions) {
  for (const auto& a : actions) {
    if (const auto* ct = std::get_if<ActionCt>(&a); ct && !canEncodeCt(*ct)) return false;
    const auto* sf = std::get_if<ActionSetField>(&a);
    if (sf && (!std::has_single_bit(sf->field.present) || sf->field.masked != 0 ||
               sf->field.present >= Match::bit(Field::kCount))) {
      return false;
    }
  }
  return true;
}
bool instructionsOk(const std::vector<Instruction>& instructions) {
  for (const auto& i : instructions) {
    if (const auto* a = std::get_if<InstrApplyActions>(&i); a && !setFieldsOk(a->actions)) return false;
    if (const auto* a = std::get_if<InstrWriteActions>(&i); a && !setFieldsOk(a->actions)) return false;
  }
  return true;
}

}  // namespace

bool canEncode13(const Message& msg) {
  if (const auto* f = std::get_if<FeaturesReply>(&msg)) return f->ports.empty();
  if (const auto* fm = std::get_if<FlowMod>(&msg)) return instructionsOk(fm->instructions);
  if (const auto* po = std::get_if<PacketOut>(&msg)) return setFieldsOk(po->actions);
  if (const auto* f = std::get_if<CtFlush>(&msg)) return canEncodeCtFlush(*f);
  if (const auto* rep = std::get_if<MultipartReply>(&msg)) {
    if (const auto* flows = std::get_if<std::vector<FlowStats>>(&rep->body)) {
      for (const auto& f : *flows) {
        if (!instructionsOk(f.instructions)) return false;
      }
    }
  }
  return true;
}

MsgResult decodeBody13(const Header& h, ByteReader& r) {
  switch (h.type) {
    case w13::kHello: return decodeHello(h, r);
    case w13::kError: {
      ErrorMsg e;
      e.type = r.u16();
      e.code = r.u16();
      if (!r.ok()) return fail(DecodeError::kTruncated);
      e.data = toVector(r.rest());
      return Message{std::move(e)};
    }
    case w13::kEchoRequest:
    case w13::kEchoReply: return Message{Echo{h.type == w13::kEchoReply, toVector(r.rest())}};
    case w13::kFeaturesRequest: return finish(r, Message{FeaturesRequest{}});
    case w13::kFeaturesReply: {
      FeaturesReply f;
      f.datapath_id = r.u64();
      f.n_buffers = r.u32();
      f.n_tables = r.u8();
      f.auxiliary_id = r.u8();
      r.skip(2);
      f.capabilities = r.u32();
      r.skip(4);
      return finish(r, Message{std::move(f)});
    }
    case w13::kGetConfigRequest: return finish(r, Message{GetConfigRequest{}});
    case w13::kGetConfigReply:
    case w13::kSetConfig: {
      SwitchConfig c;
      c.set = h.type == w13::kSetConfig;
      c.flags = r.u16();
      c.miss_send_len = r.u16();
      return finish(r, Message{c});
    }
    case w13::kPacketIn: return decodePacketIn(r);
    case w13::kPacketOut: return decodePacketOut(r);
    case w13::kFlowMod: return decodeFlowMod(r);
    case w13::kFlowRemoved: return decodeFlowRemoved(r);
    case w13::kPortStatus: {
      PortStatus ps;
      ps.reason = static_cast<PortReason>(r.u8());
      r.skip(7);
      ps.desc = readPort(r);
      return finish(r, Message{std::move(ps)});
    }
    case w13::kBarrierRequest: return finish(r, Message{BarrierRequest{}});
    case w13::kBarrierReply: return finish(r, Message{BarrierReply{}});
    case w13::kRoleRequest:
    case w13::kRoleReply: {
      RoleMsg role;
      role.reply = h.type == w13::kRoleReply;
      std::uint32_t v = r.u32();
      r.skip(4);
      role.generation_id = r.u64();
      if (r.ok() && v > static_cast<std::uint32_t>(ControllerRole::kSlave)) return fail(DecodeError::kBadValue);
      role.role = static_cast<ControllerRole>(v);
      return finish(r, Message{role});
    }
    case w13::kMeterMod: return decodeMeterMod(r);
    case w13::kMultipartRequest: return decodeMultipartRequest(r);
    case w13::kMultipartReply: return decodeMultipartReply(r);
    case w13::kExperimenter: return decodeNxMessage(r);
    default: return fail(DecodeError::kBadType);
  }
}

void encode13(std::uint32_t xid, const Message& msg, std::vector<std::uint8_t>& out) {
  ByteWriter w(out);
  std::visit(Encoder13{w, xid}, msg);
}

void encodeFlowMod13(std::uint32_t xid, const FlowMod& fm, std::vector<std::uint8_t>& out) {
  ByteWriter w(out);
  auto at = beginMessage(w, kVersion, w13::kFlowMod, xid);
  writeFlowModBody(w, fm);
  endMessage(w, at);
}

void encodePacketOut13(std::uint32_t xid, const PacketOut& po, std::vector<std::uint8_t>& out) {
  ByteWriter w(out);
  auto at = beginMessage(w, kVersion, w13::kPacketOut, xid);
  writePacketOutBody(w, po);
  endMessage(w, at);
}

}  // namespace cw::ofp::detail
