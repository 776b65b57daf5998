// OpenFlow 1.3 actions and instructions. Every action and instruction is a TLV whose length
// covers its header and is a multiple of 8; the decoders check that before looking inside,
// and require the exact spec size for fixed-size kinds.
#include <bit>
#include <cassert>

#include "ofp/internal.h"
#include "ofp/wire.h"

namespace cw::ofp::detail {
namespace {

namespace w13 = wire::v13;

Field setFieldOf(const Match& m) {
  assert(std::has_single_bit(m.present) && m.masked == 0);
  return static_cast<Field>(std::countr_zero(m.present));
}

struct ActionEncoder {
  ByteWriter& w;
  void operator()(const ActionOutput& a) const {
    w.u16(w13::kActOutput);
    w.u16(sizeof(w13::ActionOutput));
    w.u32(a.port);
    w.u16(a.max_len);
    w.zeros(6);
  }
  void operator()(const ActionSetField& a) const {
    std::size_t at = w.offset();
    w.u16(w13::kActSetField);
    w.u16(0);
    encodeOxm(w, a.field, setFieldOf(a.field));
    std::size_t len = (w.offset() - at + 7) / 8 * 8;
    w.zeros(len - (w.offset() - at));
    w.patch_u16(at + 2, static_cast<std::uint16_t>(len));
  }
  void operator()(const ActionPushVlan& a) const {
    w.u16(w13::kActPushVlan);
    w.u16(sizeof(w13::ActionPush));
    w.u16(a.ethertype);
    w.zeros(2);
  }
  void operator()(const ActionPopVlan&) const {
    w.u16(w13::kActPopVlan);
    w.u16(sizeof(w13::ActionPop));
    w.zeros(4);
  }
  void operator()(const ActionGroup& a) const {
    w.u16(w13::kActGroup);
    w.u16(sizeof(w13::ActionGroup));
    w.u32(a.group_id);
  }
  void operator()(const ActionCt& a) const { encodeNxAction(w, a); }
  void operator()(const ActionCtClear& a) const { encodeNxAction(w, a); }
  void operator()(const ActionController2& a) const { encodeNxAction(w, a); }
  void operator()(const ActionResubmit& a) const { encodeNxAction(w, a); }
};

// Splits a TLV list into (type, whole TLV) pieces with length checks shared by actions and
// instructions: at least 8 bytes, a multiple of 8, inside the container.
template <class Fn>
Status forEachTlv(Bytes bytes, DecodeError err, Fn&& fn) {
  ByteReader r(bytes);
  while (!r.empty()) {
    if (r.remaining() < 4) return fail(err);
    Bytes whole = bytes.subspan(r.position());
    std::uint16_t type = r.u16();
    std::uint16_t len = r.u16();
    if (len < 8 || len % 8 != 0 || len > whole.size()) return fail(err);
    r.skip(len - 4u);
    ByteReader body(whole.subspan(4, len - 4u));
    CW_OFP_TRY(fn(type, len, body));
  }
  return {};
}

Status decodeAction(std::uint16_t type, std::uint16_t len, ByteReader& b, ActionList& out) {
  auto want = [&](std::size_t size) { return len == size; };
  switch (type) {
    case w13::kActOutput: {
      if (!want(sizeof(w13::ActionOutput))) return fail(DecodeError::kBadAction);
      ActionOutput a;
      a.port = b.u32();
      a.max_len = b.u16();
      out.emplace_back(a);
      return {};
    }
    case w13::kActPushVlan:
      if (!want(sizeof(w13::ActionPush))) return fail(DecodeError::kBadAction);
      out.emplace_back(ActionPushVlan{b.u16()});
      return {};
    case w13::kActPopVlan:
      if (!want(sizeof(w13::ActionPop))) return fail(DecodeError::kBadAction);
      out.emplace_back(ActionPopVlan{});
      return {};
    case w13::kActGroup:
      if (!want(sizeof(w13::ActionGroup))) return fail(DecodeError::kBadAction);
      out.emplace_back(ActionGroup{b.u32()});
      return {};
    case w13::kActSetField: {
      ActionSetField a;
      CW_OFP_TRY(decodeSetFieldOxm(b, a.field));
      // The OXM plus the 4-byte action header, padded to 8, must be the whole action.
      if ((b.position() + 4 + 7) / 8 * 8 != len) return fail(DecodeError::kBadAction);
      out.emplace_back(a);
      return {};
    }
    case wire::kActExperimenter:
      return decodeNxAction(len, b, out);
    default:
      return fail(DecodeError::kBadAction);
  }
}

struct InstructionEncoder {
  ByteWriter& w;
  void operator()(const InstrGotoTable& i) const {
    w.u16(w13::kInstGotoTable);
    w.u16(sizeof(w13::InstGotoTable));
    w.u8(i.table_id);
    w.zeros(3);
  }
  void operator()(const InstrWriteMetadata& i) const {
    w.u16(w13::kInstWriteMetadata);
    w.u16(sizeof(w13::InstWriteMetadata));
    w.zeros(4);
    w.u64(i.metadata);
    w.u64(i.mask);
  }
  void actions(std::uint16_t type, const ActionList& actions) const {
    std::size_t at = w.offset();
    w.u16(type);
    w.u16(0);
    w.zeros(4);
    encodeActions13(w, actions);
    w.patch_u16(at + 2, static_cast<std::uint16_t>(w.offset() - at));
  }
  void operator()(const InstrWriteActions& i) const { actions(w13::kInstWriteActions, i.actions); }
  void operator()(const InstrApplyActions& i) const { actions(w13::kInstApplyActions, i.actions); }
  void operator()(const InstrClearActions&) const {
    w.u16(w13::kInstClearActions);
    w.u16(sizeof(w13::InstActions));
    w.zeros(4);
  }
  void operator()(const InstrMeter& i) const {
    w.u16(w13::kInstMeter);
    w.u16(sizeof(w13::InstMeter));
    w.u32(i.meter_id);
  }
};

Status decodeInstruction(std::uint16_t type, std::uint16_t len, ByteReader& b,
                         std::vector<Instruction>& out) {
  auto bad = [] { return fail(DecodeError::kBadInstruction); };
  switch (type) {
    case w13::kInstGotoTable:
      if (len != sizeof(w13::InstGotoTable)) return bad();
      out.emplace_back(InstrGotoTable{b.u8()});
      return {};
    case w13::kInstWriteMetadata: {
      if (len != sizeof(w13::InstWriteMetadata)) return bad();
      b.skip(4);
      InstrWriteMetadata i;
      i.metadata = b.u64();
      i.mask = b.u64();
      out.emplace_back(i);
      return {};
    }
    case w13::kInstWriteActions:
    case w13::kInstApplyActions: {
      b.skip(4);
      ActionList actions;
      CW_OFP_TRY(decodeActions13(b.rest(), actions));
      if (type == w13::kInstWriteActions) {
        out.emplace_back(InstrWriteActions{std::move(actions)});
      } else {
        out.emplace_back(InstrApplyActions{std::move(actions)});
      }
      return {};
    }
    case w13::kInstClearActions:
      if (len != sizeof(w13::InstActions)) return bad();
      out.emplace_back(InstrClearActions{});
      return {};
    case w13::kInstMeter:
      if (len != sizeof(w13::InstMeter)) return bad();
      out.emplace_back(InstrMeter{b.u32()});
      return {};
    default:
      return bad();
  }
}

}  // namespace

void encodeActions13(ByteWriter& w, const ActionList& actions) {
  for (const auto& a : actions) std::visit(ActionEncoder{w}, a);
}

Status decodeActions13(Bytes bytes, ActionList& out) {
  return forEachTlv(bytes, DecodeError::kBadAction,
                    [&](std::uint16_t type, std::uint16_t len, ByteReader& b) {
                      return decodeAction(type, len, b, out);
                    });
}

void encodeInstructions13(ByteWriter& w, const std::vector<Instruction>& instructions) {
  for (const auto& i : instructions) std::visit(InstructionEncoder{w}, i);
}

Status decodeInstructions13(Bytes bytes, std::vector<Instruction>& out) {
  return forEachTlv(bytes, DecodeError::kBadInstruction,
                    [&](std::uint16_t type, std::uint16_t len, ByteReader& b) {
                      return decodeInstruction(type, len, b, out);
                    });
}

}  // namespace cw::ofp::detail
