// Nicira (Open vSwitch) extensions: the conntrack actions ct() and ct_clear, controller2 and
// resubmit(,N), and the conntrack flush messages NXT_CT_FLUSH_ZONE and NXT_CT_FLUSH. Layouts are in wire.h; the
// CT_FLUSH bytes were checked against what `ovs-ofctl ct-flush` 3.1 sends (see
// tests/unit/ofp/nx_test.cc for the reference hex).
#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstring>

#include "ofp/internal.h"
#include "ofp/wire.h"

namespace cw::ofp::detail {
namespace {

namespace wn = wire;
using MsgResult = Result<Message, DecodeError>;

bool isIcmp(std::uint8_t proto) { return proto == 1 || proto == 58; }

void beginNxAction(ByteWriter& w, std::uint16_t len, std::uint16_t subtype) {
  w.u16(wn::kActExperimenter);
  w.u16(len);
  w.u32(wn::kNxVendorId);
  w.u16(subtype);
}

// ---- CT_FLUSH properties ----
// One ofp_prop_header property: type, length without padding, value, zeros to 8.
void putProp(ByteWriter& w, std::uint16_t type, Bytes value) {
  w.u16(type);
  w.u16(static_cast<std::uint16_t>(4 + value.size()));
  w.bytes(value);
  std::size_t len = 4 + value.size();
  w.zeros((len + 7) / 8 * 8 - len);
}
// 16-bit values travel as 4 bytes (value, 2 zero bytes), as Open vSwitch writes them.
void putProp16(ByteWriter& w, std::uint16_t type, std::uint16_t v) {
  std::array<std::uint8_t, 4> b{static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v), 0, 0};
  putProp(w, type, b);
}
// IPv4 addresses travel as IPv4-mapped IPv6 (::ffff:a.b.c.d).
std::array<std::uint8_t, 16> mapped(Ip4 a) {
  std::array<std::uint8_t, 16> b{};
  b[10] = b[11] = 0xff;
  for (int i = 0; i < 4; ++i) b[12 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(a.v >> (24 - 8 * i));
  return b;
}

void putTuple(ByteWriter& w, std::uint16_t type, const CtTuple& t, std::uint8_t proto) {
  std::size_t at = w.offset();
  w.u16(type);
  w.u16(0);
  w.zeros(4);  // nested properties start 8-aligned
  if (t.src.v != 0) putProp(w, wn::kCtTupleSrc, mapped(t.src));
  if (t.dst.v != 0) putProp(w, wn::kCtTupleDst, mapped(t.dst));
  if (isIcmp(proto)) {
    putProp16(w, wn::kCtTupleIcmpId, t.icmp_id);
    putProp(w, wn::kCtTupleIcmpType, Bytes(&t.icmp_type, 1));
    putProp(w, wn::kCtTupleIcmpCode, Bytes(&t.icmp_code, 1));
  } else {
    if (t.src_port != 0) putProp16(w, wn::kCtTupleSrcPort, t.src_port);
    if (t.dst_port != 0) putProp16(w, wn::kCtTupleDstPort, t.dst_port);
  }
  if (w.offset() - at == 8) {  // nothing to say: Open vSwitch leaves the property out too
    w.buffer().resize(at);
    return;
  }
  w.patch_u16(at + 2, static_cast<std::uint16_t>(w.offset() - at));
}

// Whether a tuple writes any nested property.
bool tupleSaysSomething(const CtTuple& t, std::uint8_t proto) {
  return t.src.v != 0 || t.dst.v != 0 || isIcmp(proto) || t.src_port != 0 || t.dst_port != 0;
}

// Reads properties from r, calling fn(type, value) for each; checks lengths and padding.
template <class Fn>
Status forEachProp(ByteReader& r, Fn&& fn) {
  while (!r.empty()) {
    if (r.remaining() < 4) return fail(DecodeError::kBadLength);
    std::uint16_t type = r.u16();
    std::uint16_t len = r.u16();
    std::size_t padded = (std::size_t{len} + 7) / 8 * 8;
    if (len < 4 || padded - 4 > r.remaining()) return fail(DecodeError::kBadLength);
    Bytes value = r.bytes(len - 4u);
    r.skip(padded - len);
    CW_OFP_TRY(fn(type, value));
  }
  return {};
}

Status read16(Bytes v, std::uint16_t& out) {
  if (v.size() != 2 && v.size() != 4) return fail(DecodeError::kBadLength);
  out = static_cast<std::uint16_t>((v[0] << 8) | v[1]);
  return {};
}
Status read8(Bytes v, std::uint8_t& out) {
  if (v.size() != 1) return fail(DecodeError::kBadLength);
  out = v[0];
  return {};
}
Status readMapped(Bytes v, Ip4& out) {
  if (v.size() != 16) return fail(DecodeError::kBadLength);
  static constexpr std::array<std::uint8_t, 12> kPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  bool zero = std::all_of(v.begin(), v.end(), [](std::uint8_t b) { return b == 0; });
  if (!zero && std::memcmp(v.data(), kPrefix.data(), kPrefix.size()) != 0) {
    return fail(DecodeError::kBadValue);  // an IPv6 tuple: not modelled
  }
  out = Ip4{zero ? 0u : static_cast<std::uint32_t>(v[12] << 24 | v[13] << 16 | v[14] << 8 | v[15])};
  return {};
}

Status readTuple(Bytes value, CtTuple& t) {
  if (value.size() < 4) return fail(DecodeError::kBadLength);
  ByteReader r(value.subspan(4));  // 4 bytes of pad before the nested properties
  return forEachProp(r, [&](std::uint16_t type, Bytes v) -> Status {
    switch (type) {
      case wn::kCtTupleSrc: return readMapped(v, t.src);
      case wn::kCtTupleDst: return readMapped(v, t.dst);
      case wn::kCtTupleSrcPort: return read16(v, t.src_port);
      case wn::kCtTupleDstPort: return read16(v, t.dst_port);
      case wn::kCtTupleIcmpId: return read16(v, t.icmp_id);
      case wn::kCtTupleIcmpType: return read8(v, t.icmp_type);
      case wn::kCtTupleIcmpCode: return read8(v, t.icmp_code);
      default: return fail(DecodeError::kBadValue);
    }
  });
}

MsgResult decodeCtFlush(ByteReader& r) {
  if (r.remaining() < sizeof(wn::NxCtFlush)) return fail(DecodeError::kTruncated);
  std::uint8_t proto = r.u8();
  for (int i = 0; i < 7; ++i) {
    if (r.u8() != 0) return fail(DecodeError::kBadValue);
  }
  CtFlush f;
  Status props = forEachProp(r, [&](std::uint16_t type, Bytes v) -> Status {
    switch (type) {
      case wn::kCtFlushOrig:
        f.orig = CtTuple{};
        return readTuple(v, *f.orig);
      case wn::kCtFlushReply:
        f.reply = CtTuple{};
        return readTuple(v, *f.reply);
      case wn::kCtFlushZone: {
        std::uint16_t z = 0;
        Status st = read16(v, z);
        f.zone = z;
        return st;
      }
      default: return fail(DecodeError::kBadValue);
    }
  });
  CW_OFP_TRY(props);
  // A protocol with no tuple property at all was an original tuple saying only that.
  if (proto != 0 && !f.orig && !f.reply) f.orig = CtTuple{};
  if (f.orig) f.orig->proto = proto;
  if (f.reply) f.reply->proto = proto;
  // What cannot be said back the same way (ports with ICMP, an empty reply tuple, ...).
  if (!canEncodeCtFlush(f)) return fail(DecodeError::kBadValue);
  return Message{f};
}

}  // namespace

// ---- Actions ----
void encodeNxAction(ByteWriter& w, const ActionCt& a) {
  std::size_t at = w.offset();
  beginNxAction(w, 0, wn::kNxastCt);
  w.u16(a.flags);
  w.u32(0);  // zone_src 0: the zone is the immediate below
  w.u16(a.zone);
  w.u8(a.table);
  w.zeros(3);
  w.u16(a.alg);
  ActionList nested(a.exec.begin(), a.exec.end());
  encodeActions13(w, nested);
  w.patch_u16(at + 2, static_cast<std::uint16_t>(w.offset() - at));
}

void encodeNxAction(ByteWriter& w, const ActionCtClear&) {
  beginNxAction(w, sizeof(wn::NxActionHeader), wn::kNxastCtClear);
  w.zeros(6);
}

void encodeNxAction(ByteWriter& w, const ActionController2& a) {
  std::size_t at = w.offset();
  beginNxAction(w, 0, wn::kNxastController2);
  w.zeros(6);
  putProp16(w, wn::kNxac2MaxLen, a.max_len);
  if (a.meter_id != 0) {
    std::array<std::uint8_t, 4> m{static_cast<std::uint8_t>(a.meter_id >> 24), static_cast<std::uint8_t>(a.meter_id >> 16),
                                  static_cast<std::uint8_t>(a.meter_id >> 8), static_cast<std::uint8_t>(a.meter_id)};
    putProp(w, wn::kNxac2MeterId, m);
  }
  w.patch_u16(at + 2, static_cast<std::uint16_t>(w.offset() - at));
}

void encodeNxAction(ByteWriter& w, const ActionResubmit& a) {
  beginNxAction(w, sizeof(wn::NxActionResubmit), wn::kNxastResubmitTable);
  w.u16(wn::kNxPortInPort);
  w.u8(a.table);
  w.zeros(3);
}

Status decodeNxAction(std::uint16_t len, ByteReader& b, ActionList& out) {
  if (len < sizeof(wn::NxActionHeader)) return fail(DecodeError::kBadAction);
  if (b.u32() != wn::kNxVendorId) return fail(DecodeError::kBadAction);
  std::uint16_t subtype = b.u16();
  switch (subtype) {
    case wn::kNxastCtClear:
      if (len != sizeof(wn::NxActionHeader)) return fail(DecodeError::kBadAction);
      out.emplace_back(ActionCtClear{});
      return {};
    case wn::kNxastResubmitTable: {
      if (len != sizeof(wn::NxActionResubmit)) return fail(DecodeError::kBadAction);
      // Only the packet's own in_port is modelled; the pad must be zero, as Open vSwitch sends it.
      if (b.u16() != wn::kNxPortInPort) return fail(DecodeError::kBadAction);
      ActionResubmit a{b.u8()};
      for (int i = 0; i < 3; ++i)
        if (b.u8() != 0) return fail(DecodeError::kBadAction);
      out.emplace_back(a);
      return {};
    }
    case wn::kNxastController2: {
      // Only what cellwall writes: max_len and meter_id; anything else is refused.
      for (int i = 0; i < 6; ++i)
        if (b.u8() != 0) return fail(DecodeError::kBadAction);
      ActionController2 a;
      ByteReader props(b.rest());
      while (props.remaining() > 0) {
        if (props.remaining() < 8) return fail(DecodeError::kBadAction);
        const std::uint16_t type = props.u16(), plen = props.u16();
        const std::size_t padded = (std::size_t{plen} + 7) / 8 * 8;
        if (plen < 4 || padded - 4 > props.remaining()) return fail(DecodeError::kBadAction);
        // A 16-bit value travels padded to 32 bits (length 8), as Open vSwitch writes it.
        if (type == wn::kNxac2MaxLen && (plen == 6 || plen == 8)) {
          a.max_len = props.u16();
          props.skip(padded - 6);
        } else if (type == wn::kNxac2MeterId && plen == 8) {
          a.meter_id = props.u32();
        } else {
          return fail(DecodeError::kBadAction);
        }
      }
      out.emplace_back(a);
      return {};
    }
    case wn::kNxastCt: {
      if (len < sizeof(wn::NxActionCt)) return fail(DecodeError::kBadAction);
      ActionCt a;
      a.flags = b.u16();
      if (b.u32() != 0) return fail(DecodeError::kBadAction);  // zone from a field: not modelled
      a.zone = b.u16();
      a.table = b.u8();
      b.skip(3);
      a.alg = b.u16();
      ActionList nested;
      CW_OFP_TRY(decodeActions13(b.rest(), nested));
      for (auto& n : nested) {
        auto* sf = std::get_if<ActionSetField>(&n);
        if (sf == nullptr) return fail(DecodeError::kBadAction);  // nat() etc.: not modelled
        a.exec.push_back(*sf);
      }
      if (!canEncodeCt(a)) return fail(DecodeError::kBadAction);  // exec sets other fields
      out.emplace_back(std::move(a));
      return {};
    }
    default:
      return fail(DecodeError::kBadAction);
  }
}

bool canEncodeCt(const ActionCt& a) {
  constexpr std::uint32_t kExecFields = Match::bit(Field::kCtMark) | Match::bit(Field::kCtLabel);
  for (const auto& sf : a.exec) {
    if (!std::has_single_bit(sf.field.present) || sf.field.masked != 0 ||
        (sf.field.present & kExecFields) == 0) {
      return false;
    }
  }
  return true;
}

// ---- Messages ----
MsgResult decodeNxMessage(ByteReader& r) {
  if (r.remaining() < 8) return fail(DecodeError::kTruncated);
  if (r.u32() != wn::kNxVendorId) return fail(DecodeError::kBadType);
  switch (r.u32()) {
    case wn::kNxtCtFlushZone: {
      if (r.remaining() != sizeof(wn::NxZoneId)) return fail(DecodeError::kBadLength);
      for (int i = 0; i < 6; ++i) {
        if (r.u8() != 0) return fail(DecodeError::kBadValue);
      }
      return Message{CtFlushZone{r.u16()}};
    }
    case wn::kNxtCtFlush: return decodeCtFlush(r);
    default: return fail(DecodeError::kBadType);
  }
}

void encodeNxMessage(ByteWriter& w, std::uint8_t version, std::uint32_t xid, const CtFlushZone& m) {
  auto at = beginMessage(w, version, wn::kMsgExperimenter, xid);
  w.u32(wn::kNxVendorId);
  w.u32(wn::kNxtCtFlushZone);
  w.zeros(6);
  w.u16(m.zone);
  endMessage(w, at);
}

void encodeNxMessage(ByteWriter& w, std::uint8_t version, std::uint32_t xid, const CtFlush& m) {
  auto at = beginMessage(w, version, wn::kMsgExperimenter, xid);
  w.u32(wn::kNxVendorId);
  w.u32(wn::kNxtCtFlush);
  std::uint8_t proto = m.orig ? m.orig->proto : m.reply ? m.reply->proto : 0;
  w.u8(proto);
  w.zeros(7);
  if (m.orig) putTuple(w, wn::kCtFlushOrig, *m.orig, proto);
  if (m.reply) putTuple(w, wn::kCtFlushReply, *m.reply, proto);
  if (m.zone) putProp16(w, wn::kCtFlushZone, *m.zone);
  endMessage(w, at);
}

bool canEncodeCtFlush(const CtFlush& m) {
  if (m.orig && m.reply && m.orig->proto != m.reply->proto) return false;  // one ip_proto on the wire
  for (const auto* t : {m.orig ? &*m.orig : nullptr, m.reply ? &*m.reply : nullptr}) {
    if (t == nullptr) continue;
    bool icmp = isIcmp(t->proto);
    if (icmp && (t->src_port != 0 || t->dst_port != 0)) return false;
    if (!icmp && (t->icmp_type != 0 || t->icmp_code != 0 || t->icmp_id != 0)) return false;
  }
  // A tuple with nothing but a protocol writes no property; only a lone original one can be
  // read back (from ip_proto).
  if (m.reply && !tupleSaysSomething(*m.reply, m.reply->proto)) return false;
  if (m.orig && !tupleSaysSomething(*m.orig, m.orig->proto) && (m.reply || m.orig->proto == 0)) return false;
  return true;
}

}  // namespace cw::ofp::detail
