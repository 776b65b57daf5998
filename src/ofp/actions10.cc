// OpenFlow 1.0 actions. 1.0 has one action per settable field where 1.3 has set-field; the
// value types use ActionSetField throughout and this file maps between the two. 1.0 has no
// instructions: a flow's action list is its single apply-actions instruction.
#include <bit>
#include <cassert>

#include "ofp/internal.h"
#include "ofp/wire.h"

namespace cw::ofp::detail {
namespace {

namespace w10 = wire::v10;

bool canExpressSetField10(const Match& m) {
  if (!std::has_single_bit(m.present) || m.masked != 0) return false;
  switch (static_cast<Field>(std::countr_zero(m.present))) {
    case Field::kVlanVid: return (m.vlan_vid & kVlanPresent) != 0 && m.vlan_vid <= (kVlanPresent | 0xfff);
    case Field::kIpDscp: return m.ip_dscp <= 63;
    case Field::kVlanPcp: case Field::kEthSrc: case Field::kEthDst: case Field::kIpv4Src:
    case Field::kIpv4Dst: case Field::kTcpSrc: case Field::kTcpDst: case Field::kUdpSrc:
    case Field::kUdpDst:
      return true;
    default:
      return false;
  }
}

void u16Action(ByteWriter& w, std::uint16_t type, std::uint16_t v) {
  w.u16(type);
  w.u16(sizeof(w10::ActionU16));
  w.u16(v);
  w.zeros(2);
}
void u8Action(ByteWriter& w, std::uint16_t type, std::uint8_t v) {
  w.u16(type);
  w.u16(sizeof(w10::ActionU8));
  w.u8(v);
  w.zeros(3);
}
void dlAction(ByteWriter& w, std::uint16_t type, const MacAddr& a) {
  w.u16(type);
  w.u16(sizeof(w10::ActionDlAddr));
  w.bytes(a.b);
  w.zeros(6);
}
void nwAction(ByteWriter& w, std::uint16_t type, Ip4 a) {
  w.u16(type);
  w.u16(sizeof(w10::ActionNwAddr));
  w.u32(a.v);
}

struct ActionEncoder10 {
  ByteWriter& w;
  void operator()(const ActionOutput& a) const {
    w.u16(w10::kActOutput);
    w.u16(sizeof(w10::ActionOutput));
    w.u16(port10(a.port));
    w.u16(a.max_len);
  }
  void operator()(const ActionSetField& a) const {
    assert(canExpressSetField10(a.field));
    const Match& m = a.field;
    switch (static_cast<Field>(std::countr_zero(m.present))) {
      case Field::kVlanVid: u16Action(w, w10::kActSetVlanVid, m.vlan_vid & 0xfff); break;
      case Field::kVlanPcp: u8Action(w, w10::kActSetVlanPcp, m.vlan_pcp); break;
      case Field::kIpDscp: u8Action(w, w10::kActSetNwTos, static_cast<std::uint8_t>(m.ip_dscp << 2)); break;
      case Field::kEthSrc: dlAction(w, w10::kActSetDlSrc, m.eth_src); break;
      case Field::kEthDst: dlAction(w, w10::kActSetDlDst, m.eth_dst); break;
      case Field::kIpv4Src: nwAction(w, w10::kActSetNwSrc, m.ipv4_src); break;
      case Field::kIpv4Dst: nwAction(w, w10::kActSetNwDst, m.ipv4_dst); break;
      case Field::kTcpSrc: u16Action(w, w10::kActSetTpSrc, m.tcp_src); break;
      case Field::kTcpDst: u16Action(w, w10::kActSetTpDst, m.tcp_dst); break;
      case Field::kUdpSrc: u16Action(w, w10::kActSetTpSrc, m.udp_src); break;
      case Field::kUdpDst: u16Action(w, w10::kActSetTpDst, m.udp_dst); break;
      default: break;
    }
  }
  void operator()(const ActionPushVlan&) const { assert(false && "push_vlan has no 1.0 form"); }
  void operator()(const ActionPopVlan&) const {
    w.u16(w10::kActStripVlan);
    w.u16(sizeof(w10::ActionPad));
    w.zeros(4);
  }
  void operator()(const ActionGroup&) const { assert(false && "groups have no 1.0 form"); }
  // Open vSwitch accepts ct() in 1.0 too, but cellwall's 1.0 path has no conntrack pipeline.
  void operator()(const ActionCt&) const { assert(false && "ct() is encoded for 1.3 only"); }
  void operator()(const ActionCtClear&) const { assert(false && "ct_clear is encoded for 1.3 only"); }
  void operator()(const ActionController2&) const { assert(false && "controller2 is encoded for 1.3 only"); }
  void operator()(const ActionResubmit&) const { assert(false && "resubmit is encoded for 1.3 only"); }
};

Status decodeAction10(std::uint16_t type, std::uint16_t len, ByteReader& b, ActionList& out,
                      std::uint8_t ip_proto) {
  // Every 1.0 action we know is 8 bytes except the MAC setters.
  std::size_t want = (type == w10::kActSetDlSrc || type == w10::kActSetDlDst) ? 16 : 8;
  if (type > w10::kActSetTpDst || len != want) return fail(DecodeError::kBadAction);
  ActionSetField sf;
  Match& m = sf.field;
  switch (type) {
    case w10::kActOutput: {
      ActionOutput a;
      a.port = port13(b.u16());
      a.max_len = b.u16();
      out.emplace_back(a);
      return {};
    }
    case w10::kActStripVlan:
      out.emplace_back(ActionPopVlan{});
      return {};
    case w10::kActSetVlanVid: m.vlanVid(static_cast<std::uint16_t>(kVlanPresent | (b.u16() & 0xfff))); break;
    case w10::kActSetVlanPcp: m.vlanPcp(b.u8()); break;
    case w10::kActSetNwTos: m.ipDscp(static_cast<std::uint8_t>(b.u8() >> 2)); break;
    case w10::kActSetDlSrc:
    case w10::kActSetDlDst: {
      MacAddr a;
      b.copy(a.b.data(), 6);
      if (type == w10::kActSetDlSrc) m.ethSrc(a); else m.ethDst(a);
      break;
    }
    case w10::kActSetNwSrc: m.ipv4Src(Ip4{b.u32()}); break;
    case w10::kActSetNwDst: m.ipv4Dst(Ip4{b.u32()}); break;
    case w10::kActSetTpSrc:
      if (ip_proto == 17) m.udpSrc(b.u16()); else m.tcpSrc(b.u16());
      break;
    case w10::kActSetTpDst:
      if (ip_proto == 17) m.udpDst(b.u16()); else m.tcpDst(b.u16());
      break;
    default:
      return fail(DecodeError::kBadAction);
  }
  out.emplace_back(sf);
  return {};
}

}  // namespace

bool canExpressActions10(const ActionList& actions) {
  for (const auto& a : actions) {
    if (std::holds_alternative<ActionPushVlan>(a) || std::holds_alternative<ActionGroup>(a) ||
        std::holds_alternative<ActionCt>(a) || std::holds_alternative<ActionCtClear>(a) ||
        std::holds_alternative<ActionController2>(a) || std::holds_alternative<ActionResubmit>(a)) {
      return false;
    }
    if (const auto* o = std::get_if<ActionOutput>(&a); o && !canExpressPort10(o->port)) return false;
    if (const auto* s = std::get_if<ActionSetField>(&a); s && !canExpressSetField10(s->field)) return false;
  }
  return true;
}

bool canExpressInstructions10(const std::vector<Instruction>& instructions) {
  if (instructions.empty()) return true;
  if (instructions.size() != 1) return false;
  const auto* apply = std::get_if<InstrApplyActions>(&instructions[0]);
  return apply != nullptr && canExpressActions10(apply->actions);
}

void encodeActions10(ByteWriter& w, const ActionList& actions) {
  for (const auto& a : actions) std::visit(ActionEncoder10{w}, a);
}

void encodeInstructions10(ByteWriter& w, const std::vector<Instruction>& instructions) {
  assert(canExpressInstructions10(instructions));
  if (instructions.empty()) return;
  if (const auto* apply = std::get_if<InstrApplyActions>(&instructions[0])) encodeActions10(w, apply->actions);
}

Status decodeActions10(Bytes bytes, ActionList& out, std::uint8_t ip_proto) {
  ByteReader r(bytes);
  while (!r.empty()) {
    if (r.remaining() < 4) return fail(DecodeError::kBadAction);
    Bytes whole = bytes.subspan(r.position());
    std::uint16_t type = r.u16();
    std::uint16_t len = r.u16();
    if (len < 8 || len % 8 != 0 || len > whole.size()) return fail(DecodeError::kBadAction);
    r.skip(len - 4u);
    ByteReader body(whole.subspan(4, len - 4u));
    CW_OFP_TRY(decodeAction10(type, len, body, out, ip_proto));
  }
  return {};
}

}  // namespace cw::ofp::detail
