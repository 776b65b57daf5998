// OpenFlow 1.3 OXM TLVs and the ofp_match that carries them.
//
// An OXM header is class(16) field(7) hasmask(1) length(8); the value (and mask) follow.
// Fields are written in Field order, which puts every prerequisite (eth_type before ip_proto
// before L4 ports) ahead of the fields that need it, as switches check them in order.
#include <array>

#include "ofp/internal.h"
#include "ofp/wire.h"

namespace cw::ofp::detail {
namespace {

constexpr std::size_t kFieldCount = static_cast<std::size_t>(Field::kCount);

// OXM_OF_* field numbers for each Field (class OFPXMC_OPENFLOW_BASIC), then the NXM_NX_* ones
// for the conntrack fields (class NXM1, which Open vSwitch also accepts as an OXM class).
constexpr std::array<std::uint8_t, kFieldCount> kOxmCode = {
    0 /*in_port*/, 2 /*metadata*/, 3 /*eth_dst*/, 4 /*eth_src*/, 5 /*eth_type*/,
    6 /*vlan_vid*/, 7 /*vlan_pcp*/, 8 /*ip_dscp*/, 10 /*ip_proto*/, 11 /*ipv4_src*/,
    12 /*ipv4_dst*/, 13 /*tcp_src*/, 14 /*tcp_dst*/, 15 /*udp_src*/, 16 /*udp_dst*/,
    19 /*icmpv4_type*/, 20 /*icmpv4_code*/, 21 /*arp_op*/, 22 /*arp_spa*/, 23 /*arp_tpa*/,
    24 /*arp_sha*/, 25 /*arp_tha*/, 26 /*ipv6_src*/, 27 /*ipv6_dst*/, 29 /*icmpv6_type*/,
    30 /*icmpv6_code*/, 105 /*ct_state*/, 106 /*ct_zone*/, 107 /*ct_mark*/, 108 /*ct_label*/,
    34 /*tcp_flags*/};
constexpr std::size_t kFirstNx = static_cast<std::size_t>(Field::kCtState);

constexpr std::uint16_t classOf(Field f) {
  return static_cast<std::size_t>(f) >= kFirstNx ? wire::kNxmClass1 : wire::v13::kOxmClassBasic;
}

constexpr std::size_t kMaxOxmCode = 128;
constexpr std::array<Field, kMaxOxmCode> makeReverse(std::uint16_t cls) {
  std::array<Field, kMaxOxmCode> r{};
  for (auto& f : r) f = Field::kCount;
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    if (classOf(static_cast<Field>(i)) == cls) r[kOxmCode[i]] = static_cast<Field>(i);
  }
  return r;
}
constexpr auto kBasicForCode = makeReverse(wire::v13::kOxmClassBasic);
constexpr auto kNxForCode = makeReverse(wire::kNxmClass1);

Field fieldForCode(std::uint16_t cls, std::uint8_t code) {
  if (code >= kMaxOxmCode) return Field::kCount;
  if (cls == wire::v13::kOxmClassBasic) return kBasicForCode[code];
  if (cls == wire::kNxmClass1) return kNxForCode[code];
  return Field::kCount;
}

void writeOxm(ByteWriter& w, const Match& m, Field f) {
  bool has_mask = m.hasMask(f);
  std::size_t n = fieldSize(f);
  w.u16(classOf(f));
  w.u8(static_cast<std::uint8_t>((kOxmCode[static_cast<std::size_t>(f)] << 1) | (has_mask ? 1 : 0)));
  w.u8(static_cast<std::uint8_t>(has_mask ? 2 * n : n));
  std::array<std::uint8_t, 16> buf{};
  fieldBytes(m, f, false, buf.data());
  w.bytes(Bytes(buf.data(), n));
  if (has_mask) {
    fieldBytes(m, f, true, buf.data());
    w.bytes(Bytes(buf.data(), n));
  }
}

enum class OxmMode { kMatch, kPacketIn, kSetField };

// Reads one OXM TLV from r into m.
Status readOxm(ByteReader& r, Match& m, OxmMode mode) {
  if (r.remaining() < 4) return fail(DecodeError::kBadMatch);
  std::uint16_t cls = r.u16();
  std::uint8_t field_hm = r.u8();
  std::uint8_t len = r.u8();
  if (r.remaining() < len) return fail(DecodeError::kBadMatch);
  Bytes payload = r.bytes(len);
  Field f = fieldForCode(cls, static_cast<std::uint8_t>(field_hm >> 1));
  if (f == Field::kCount) {
    if (mode == OxmMode::kPacketIn) return {};
    return fail(mode == OxmMode::kSetField ? DecodeError::kBadAction : DecodeError::kBadField);
  }
  bool has_mask = (field_hm & 1) != 0;
  std::size_t n = fieldSize(f);
  if (payload.size() != (has_mask ? 2 * n : n)) return fail(DecodeError::kBadMatch);
  if (has_mask && (mode == OxmMode::kSetField || !fieldMaskable(f))) {
    return fail(mode == OxmMode::kSetField ? DecodeError::kBadAction : DecodeError::kBadMatch);
  }
  if (m.has(f)) return fail(DecodeError::kBadMatch);  // duplicate field
  setFieldBytes(m, f, payload.data(), has_mask ? payload.data() + n : nullptr);
  return {};
}

}  // namespace

void encodeOxm(ByteWriter& w, const Match& m, Field f) { writeOxm(w, m, f); }

void encodeOxmMatch(ByteWriter& w, const Match& m) {
  std::size_t at = w.offset();
  w.u16(wire::v13::kMatchTypeOxm);
  w.u16(0);
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    auto f = static_cast<Field>(i);
    if (m.has(f)) writeOxm(w, m, f);
  }
  std::size_t len = w.offset() - at;
  w.patch_u16(at + 2, static_cast<std::uint16_t>(len));
  if (len % 8 != 0) w.zeros(8 - len % 8);
}

Status decodeOxmMatch(ByteReader& r, Match& m, bool skip_unknown) {
  m = Match{};
  if (r.remaining() < wire::v13::kMatchHeaderSize) return fail(DecodeError::kBadMatch);
  std::uint16_t type = r.u16();
  std::uint16_t len = r.u16();
  if (type != wire::v13::kMatchTypeOxm) return fail(DecodeError::kBadMatch);
  if (len < wire::v13::kMatchHeaderSize) return fail(DecodeError::kBadMatch);
  std::size_t padded = (std::size_t{len} + 7) / 8 * 8;
  if (r.remaining() < padded - wire::v13::kMatchHeaderSize) return fail(DecodeError::kBadMatch);
  ByteReader oxms(r.bytes(len - wire::v13::kMatchHeaderSize));
  r.skip(padded - len);
  OxmMode mode = skip_unknown ? OxmMode::kPacketIn : OxmMode::kMatch;
  while (!oxms.empty()) CW_OFP_TRY(readOxm(oxms, m, mode));
  return {};
}

Status decodeSetFieldOxm(ByteReader& r, Match& m) {
  CW_OFP_TRY(readOxm(r, m, OxmMode::kSetField));
  if (m.present == 0) return fail(DecodeError::kBadAction);
  return {};
}

}  // namespace cw::ofp::detail
