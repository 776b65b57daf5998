// OpenFlow 1.3 and 1.0 encoding and decoding. Pure: no I/O, no allocation on the Packet-In
// decode path. Every decoder is bounds-checked through ByteReader and returns errors as values
// whose type/code map onto the OpenFlow ERROR the controller sends back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "ofp/messages.h"

namespace cw::ofp {

inline constexpr std::size_t kHeaderSize = 8;
inline constexpr std::size_t kMaxMessageSize = 65535;

struct Header {
  std::uint8_t version = 0;
  std::uint8_t type = 0;  // raw wire type (version specific)
  std::uint16_t length = 0;
  std::uint32_t xid = 0;
};

// Why a message could not be decoded. Each has a stable name (for counters and logs) and maps
// to an OpenFlow error type/code (errorFor) to send back.
enum class DecodeError : std::uint8_t {
  kTruncated,        // shorter than its header or its declared parts
  kBadLength,        // length field inconsistent with the message or its parts
  kBadVersion,       // version we do not speak
  kBadType,          // message type unknown for this version
  kBadMultipart,     // unknown or unsupported multipart type
  kBadMatch,         // malformed match / OXM TLV
  kBadField,         // a match field we do not know or the version cannot express
  kBadAction,        // unknown action type or malformed action
  kBadInstruction,   // unknown instruction type or malformed instruction
  kBadValue,         // a field holds a value the spec forbids
  kCount
};
const char* decodeErrorName(DecodeError e);
struct OfpErrorCode {
  std::uint16_t type;
  std::uint16_t code;
};
OfpErrorCode errorFor(DecodeError e);  // 1.3 numbering

struct Decoded {
  Header header;
  Message msg;
};

// Returns the full length of the message at the start of `stream` when its header is
// available (so a stream reader knows how much to wait for), or nullopt when fewer than 8
// bytes are there. A length below 8 is returned as is; decode() rejects it.
std::optional<std::size_t> frameLength(Bytes stream);

// Decodes one complete message (exactly `header.length` bytes). PacketIn::data points into
// `message`.
Result<Decoded, DecodeError> decode(Bytes message);

// Appends the encoding of `msg` for `version` with transaction id `xid` to `out`. Messages
// that the version cannot express (e.g. MeterMod in 1.0) are programming errors and assert.
void encode(Version version, std::uint32_t xid, const Message& msg, std::vector<std::uint8_t>& out);

// Whether `version` can express `msg` exactly (1.0 has no masks on MACs, no IPv6, no
// metadata, no instructions beyond one apply-actions, 16-bit ports, one table; 1.3 has no
// ports in FEATURES_REPLY). encode() asserts this; callers holding data from outside (e.g.
// scripts) check it first instead of crashing.
bool canEncode(Version version, const Message& msg);

// Fast paths for the flow-setup loop (same bytes as encode()).
void encodeFlowMod(Version version, std::uint32_t xid, const FlowMod& fm, std::vector<std::uint8_t>& out);
void encodePacketOut(Version version, std::uint32_t xid, const PacketOut& po, std::vector<std::uint8_t>& out);

// Value equality of two messages; PacketIn compares the bytes `data` points at (it has no
// operator== because its data is a view). For tests, fuzzing and replay checks.
bool sameMessage(const Message& a, const Message& b);

// Human-readable, one line, stable (used in logs, `cellwall flows`, and round-trip tests),
// in the spirit of ovs-ofctl: "FLOW_MOD add table=1 priority=100 idle=60 cookie=0x... in_port=3,tcp,... actions=output:2".
std::string format(const Decoded& d);
std::string formatMatch(const Match& m);

}  // namespace cw::ofp
