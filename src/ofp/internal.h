// Private glue between the codec's .cc files: the pieces each version's message codec builds
// on (matches, actions, instructions, port numbers). Not part of cw_ofp's contract.
//
// Decoders take a ByteReader positioned at the piece and consume exactly its bytes; on any
// inconsistency they return the DecodeError the whole message is rejected with. Encoders
// append to a ByteWriter and patch their own length fields.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "ofp/codec.h"
#include "ofp/messages.h"

namespace cw::ofp::detail {

using Status = Result<void, DecodeError>;
inline Unexpected<DecodeError> fail(DecodeError e) { return Unexpected<DecodeError>(e); }

#define CW_OFP_TRY(expr)                                                  \
  do {                                                                    \
    if (auto cw_ofp_status_ = (expr); !cw_ofp_status_)                    \
      return ::cw::ofp::detail::fail(cw_ofp_status_.error());             \
  } while (0)

// ---- Fields (messages.cc) ----
// Wire size of a field's value (its mask has the same size).
std::size_t fieldSize(Field f);
bool fieldMaskable(Field f);
// Writes the field's value (or mask) big-endian into out[0..fieldSize).
void fieldBytes(const Match& m, Field f, bool mask, std::uint8_t* out);
// Sets field f in m from big-endian bytes; mask may be null (exact match).
void setFieldBytes(Match& m, Field f, const std::uint8_t* value, const std::uint8_t* mask);

// ---- OpenFlow 1.3 OXM (oxm.cc) ----
// A whole ofp_match: header, OXMs, padding to 8.
void encodeOxmMatch(ByteWriter& w, const Match& m);
// Reads a whole ofp_match (including its padding). With skip_unknown, OXMs of classes or
// fields we do not model are skipped instead of rejected (Packet-In only).
Status decodeOxmMatch(ByteReader& r, Match& m, bool skip_unknown);
// One OXM TLV for the single present field of `m` (set-field action body).
void encodeOxm(ByteWriter& w, const Match& m, Field f);
// One OXM TLV into `m`; for set-field actions (no masks allowed).
Status decodeSetFieldOxm(ByteReader& r, Match& m);

// ---- OpenFlow 1.0 ofp_match and ports (match10.cc) ----
bool canExpressMatch10(const Match& m);
void encodeMatch10(ByteWriter& w, const Match& m);
Status decodeMatch10(ByteReader& r, Match& m);
std::uint16_t port10(std::uint32_t port);  // 1.3 numbering → 1.0 (reserved ports mapped)
std::uint32_t port13(std::uint16_t port);  // 1.0 → 1.3 numbering
bool canExpressPort10(std::uint32_t port);

// ---- Actions and instructions (actions13.cc, actions10.cc) ----
void encodeActions13(ByteWriter& w, const ActionList& actions);
Status decodeActions13(Bytes bytes, ActionList& out);
void encodeInstructions13(ByteWriter& w, const std::vector<Instruction>& instructions);
Status decodeInstructions13(Bytes bytes, std::vector<Instruction>& out);

bool canExpressActions10(const ActionList& actions);
bool canExpressInstructions10(const std::vector<Instruction>& instructions);
void encodeActions10(ByteWriter& w, const ActionList& actions);
// Writes the action list a 1.0 flow carries for these instructions (ApplyActions only).
void encodeInstructions10(ByteWriter& w, const std::vector<Instruction>& instructions);
// ip_proto tells whether SET_TP_SRC/DST set TCP or UDP ports (1.0 does not say; 0 → TCP).
Status decodeActions10(Bytes bytes, ActionList& out, std::uint8_t ip_proto);

// ---- Nicira extensions (nx.cc): conntrack actions and flush messages ----
void encodeNxAction(ByteWriter& w, const ActionCt& a);
void encodeNxAction(ByteWriter& w, const ActionCtClear& a);
void encodeNxAction(ByteWriter& w, const ActionController2& a);
void encodeNxAction(ByteWriter& w, const ActionResubmit& a);
// A vendor action (type 0xffff) of `len` bytes; `body` is positioned after type and len.
// Unknown vendors and subtypes are kBadAction, like unknown standard actions.
Status decodeNxAction(std::uint16_t len, ByteReader& body, ActionList& out);
// exec holds only unmasked set_field of ct_mark / ct_label (what Open vSwitch accepts).
bool canEncodeCt(const ActionCt& a);
// An OFPT_EXPERIMENTER / OFPT_VENDOR body (after the header): Nicira CT flush messages.
Result<Message, DecodeError> decodeNxMessage(ByteReader& r);
void encodeNxMessage(ByteWriter& w, std::uint8_t version, std::uint32_t xid, const CtFlushZone& m);
void encodeNxMessage(ByteWriter& w, std::uint8_t version, std::uint32_t xid, const CtFlush& m);
// Whether m reads back equal: one protocol for both tuples, ports only for non-ICMP, ICMP
// fields only for ICMP, and no tuple that would write nothing (see nx.cc).
bool canEncodeCtFlush(const CtFlush& m);

// ---- Per-version message codecs (codec13.cc, codec10.cc) ----
Result<Message, DecodeError> decodeBody13(const Header& h, ByteReader& r);
Result<Message, DecodeError> decodeBody10(const Header& h, ByteReader& r);
// Writes header + body; patches the header length.
void encode13(std::uint32_t xid, const Message& msg, std::vector<std::uint8_t>& out);
void encode10(std::uint32_t xid, const Message& msg, std::vector<std::uint8_t>& out);
void encodeFlowMod13(std::uint32_t xid, const FlowMod& fm, std::vector<std::uint8_t>& out);
void encodeFlowMod10(std::uint32_t xid, const FlowMod& fm, std::vector<std::uint8_t>& out);
void encodePacketOut13(std::uint32_t xid, const PacketOut& po, std::vector<std::uint8_t>& out);
void encodePacketOut10(std::uint32_t xid, const PacketOut& po, std::vector<std::uint8_t>& out);

bool canEncode13(const Message& msg);
bool canEncode10(const Message& msg);
// HELLO for any version: version-bitmap elements are parsed (strictly from 1.3 on, where the
// spec defines them; a 1.0 body is free-form and only read if it happens to parse).
Result<Message, DecodeError> decodeHello(const Header& h, ByteReader& r);
void encodeHello(ByteWriter& w, const Hello& hello);
// Fixed-size message tails: the reader must be exactly used up.
Result<Message, DecodeError> finish(const ByteReader& r, Message&& msg);

// Starts a message: writes the header with length 0 and returns the offset to patch.
std::size_t beginMessage(ByteWriter& w, std::uint8_t version, std::uint8_t type, std::uint32_t xid);
// Patches the length of the message started at `at` to end at the writer's current end.
void endMessage(ByteWriter& w, std::size_t at);

// Port name: copies at most 15 bytes, NUL padded to 16.
void writeName(ByteWriter& w, const std::string& name, std::size_t size);
std::string readName(ByteReader& r, std::size_t size);

}  // namespace cw::ofp::detail
