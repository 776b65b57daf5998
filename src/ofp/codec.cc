// Version dispatch, the central length check, error names and codes, and the helpers every
// message encoder shares.
#include "ofp/codec.h"

#include <algorithm>
#include <array>
#include <cassert>

#include "ofp/internal.h"
#include "ofp/wire.h"

namespace cw::ofp {
namespace {

constexpr std::array<const char*, static_cast<std::size_t>(DecodeError::kCount)> kErrorNames = {
    "truncated", "bad_length", "bad_version", "bad_type", "bad_multipart",
    "bad_match", "bad_field",  "bad_action",  "bad_instruction", "bad_value"};

// OpenFlow 1.3 error types and codes (ofp_error_type, ofp_bad_request_code, ...).
constexpr std::uint16_t kEtBadRequest = 1, kEtBadAction = 2, kEtBadInstruction = 3, kEtBadMatch = 4;
constexpr std::uint16_t kBrcBadVersion = 0, kBrcBadType = 1, kBrcBadMultipart = 2, kBrcEperm = 5,
                        kBrcBadLen = 6;
constexpr std::uint16_t kBacBadType = 0;
constexpr std::uint16_t kBicUnknownInst = 0;
constexpr std::uint16_t kBmcBadLen = 1, kBmcBadField = 6;

}  // namespace

const char* decodeErrorName(DecodeError e) {
  auto i = static_cast<std::size_t>(e);
  return i < kErrorNames.size() ? kErrorNames[i] : "unknown";
}

OfpErrorCode errorFor(DecodeError e) {
  switch (e) {
    case DecodeError::kTruncated:
    case DecodeError::kBadLength: return {kEtBadRequest, kBrcBadLen};
    case DecodeError::kBadVersion: return {kEtBadRequest, kBrcBadVersion};
    case DecodeError::kBadType: return {kEtBadRequest, kBrcBadType};
    case DecodeError::kBadMultipart: return {kEtBadRequest, kBrcBadMultipart};
    case DecodeError::kBadMatch: return {kEtBadMatch, kBmcBadLen};
    case DecodeError::kBadField: return {kEtBadMatch, kBmcBadField};
    case DecodeError::kBadAction: return {kEtBadAction, kBacBadType};
    case DecodeError::kBadInstruction: return {kEtBadInstruction, kBicUnknownInst};
    // 1.3 has no generic "bad value"; EPERM is the code switches use for requests they
    // refuse without a more specific reason.
    case DecodeError::kBadValue:
    case DecodeError::kCount: break;
  }
  return {kEtBadRequest, kBrcEperm};
}

std::optional<std::size_t> frameLength(Bytes stream) {
  if (stream.size() < kHeaderSize) return std::nullopt;
  return static_cast<std::size_t>((stream[2] << 8) | stream[3]);
}

Result<Decoded, DecodeError> decode(Bytes message) {
  if (message.size() < kHeaderSize) return detail::fail(DecodeError::kTruncated);
  ByteReader r(message);
  Header h;
  h.version = r.u8();
  h.type = r.u8();
  h.length = r.u16();
  h.xid = r.u32();
  if (h.length < kHeaderSize || h.length != message.size()) return detail::fail(DecodeError::kBadLength);
  // HELLO is the one message every version must understand, whatever version it carries:
  // it is how the peers agree on one.
  bool hello = h.type == wire::v13::kHello;
  Result<Message, DecodeError> msg = detail::fail(DecodeError::kBadVersion);
  if (h.version == static_cast<std::uint8_t>(Version::kOf13) || (hello && h.version > 4)) {
    msg = detail::decodeBody13(h, r);
  } else if (h.version == static_cast<std::uint8_t>(Version::kOf10) || (hello && h.version != 0)) {
    msg = detail::decodeBody10(h, r);
  }
  if (!msg) return detail::fail(msg.error());
  return Decoded{h, std::move(msg).value()};
}

bool canEncode(Version version, const Message& msg) {
  return version == Version::kOf13 ? detail::canEncode13(msg) : detail::canEncode10(msg);
}

void encode(Version version, std::uint32_t xid, const Message& msg, std::vector<std::uint8_t>& out) {
  assert(canEncode(version, msg));
  if (version == Version::kOf13) {
    detail::encode13(xid, msg, out);
  } else {
    detail::encode10(xid, msg, out);
  }
}

void encodeFlowMod(Version version, std::uint32_t xid, const FlowMod& fm, std::vector<std::uint8_t>& out) {
  if (version == Version::kOf13) {
    detail::encodeFlowMod13(xid, fm, out);
  } else {
    detail::encodeFlowMod10(xid, fm, out);
  }
}

void encodePacketOut(Version version, std::uint32_t xid, const PacketOut& po, std::vector<std::uint8_t>& out) {
  if (version == Version::kOf13) {
    detail::encodePacketOut13(xid, po, out);
  } else {
    detail::encodePacketOut10(xid, po, out);
  }
}

bool sameMessage(const Message& a, const Message& b) {
  if (a.index() != b.index()) return false;
  if (const auto* pa = std::get_if<PacketIn>(&a)) {
    const auto& pb = std::get<PacketIn>(b);
    return pa->buffer_id == pb.buffer_id && pa->total_len == pb.total_len && pa->reason == pb.reason &&
           pa->table_id == pb.table_id && pa->cookie == pb.cookie && pa->match == pb.match &&
           std::equal(pa->data.begin(), pa->data.end(), pb.data.begin(), pb.data.end());
  }
  return std::visit(
      [&](const auto& va) {
        using T = std::decay_t<decltype(va)>;
        if constexpr (std::is_same_v<T, PacketIn>) {
          return false;  // handled above
        } else {
          return va == std::get<T>(b);
        }
      },
      a);
}

namespace detail {

std::size_t beginMessage(ByteWriter& w, std::uint8_t version, std::uint8_t type, std::uint32_t xid) {
  std::size_t at = w.offset();
  w.u8(version);
  w.u8(type);
  w.u16(0);
  w.u32(xid);
  return at;
}

void endMessage(ByteWriter& w, std::size_t at) {
  std::size_t len = w.offset() - at;
  assert(len <= kMaxMessageSize);
  w.patch_u16(at + 2, static_cast<std::uint16_t>(len));
}

void writeName(ByteWriter& w, const std::string& name, std::size_t size) {
  std::size_t n = std::min(name.size(), size - 1);
  w.bytes(Bytes(reinterpret_cast<const std::uint8_t*>(name.data()), n));  // char → byte view
  w.zeros(size - n);
}

std::string readName(ByteReader& r, std::size_t size) {
  // The last byte is the terminator even when a peer forgot it, so names stay within what
  // writeName can send back.
  Bytes b = r.bytes(size);
  std::string s;
  for (std::size_t i = 0; i + 1 < b.size() && b[i] != 0; ++i) s.push_back(static_cast<char>(b[i]));
  return s;
}

Result<Message, DecodeError> finish(const ByteReader& r, Message&& msg) {
  if (!r.ok()) return fail(DecodeError::kTruncated);
  if (!r.empty()) return fail(DecodeError::kBadLength);
  return std::move(msg);
}

Result<Message, DecodeError> decodeHello(const Header& h, ByteReader& r) {
  bool strict = h.version >= static_cast<std::uint8_t>(Version::kOf13);
  Hello hello;
  while (!r.empty()) {
    // Elements: type, length (header included, padding excluded), padded to 8.
    if (r.remaining() < sizeof(wire::v13::HelloElemHeader)) break;
    std::uint16_t type = r.u16();
    std::uint16_t len = r.u16();
    if (len < sizeof(wire::v13::HelloElemHeader) || len - 4u > r.remaining()) {
      if (strict) return fail(DecodeError::kBadLength);
      return Message{Hello{}};
    }
    ByteReader body(r.bytes(len - 4u));
    // Padding may be cut short at the very end; peers differ and it carries nothing.
    r.skip(std::min<std::size_t>((8u - len % 8u) % 8u, r.remaining()));
    if (type == wire::v13::kHelloElemVersionBitmap && body.remaining() >= 4) {
      hello.version_bitmap = body.u32();
    }
  }
  if (strict && !r.empty()) return fail(DecodeError::kBadLength);
  return Message{hello};
}

void encodeHello(ByteWriter& w, const Hello& hello) {
  if (hello.version_bitmap == 0) return;
  w.u16(wire::v13::kHelloElemVersionBitmap);
  w.u16(8);
  w.u32(hello.version_bitmap);
}

}  // namespace detail
}  // namespace cw::ofp
