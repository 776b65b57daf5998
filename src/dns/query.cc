// parseQuery, refusedAnswer, withoutEdnsOptions: a restricted cell's queries (docs/dns.md).
//
// The reader is deliberately stricter than parseResponse: a response is only ever learned
// from, but a query that passes is forwarded to the resolver, so the name checked here must be
// the only name the resolver can read out of the same bytes. Hence no compression at all in
// the question, no label holding a byte outside [a-z0-9-_] (a '.' inside a label would read
// as two labels to one parser and one to another), one question, and nothing after the
// question but a bare OPT record.
#include <algorithm>

#include "dns/dns.h"

namespace cw::dns {

namespace {

Unexpected<ParseError> err(ParseError e) {
  return Unexpected<ParseError>(e);
}

constexpr std::uint16_t kFlagResponse = 0x8000, kFlagRecursionDesired = 0x0100,
                        kFlagRecursionAvailable = 0x0080, kOpcodeMask = 0x7800;

bool hostByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

Result<Query, ParseError> parseQuery(Bytes message) {
  ByteReader r(message);
  Query q;
  q.id = r.u16();
  q.flags = r.u16();
  const std::uint16_t qdcount = r.u16();
  const std::uint16_t ancount = r.u16();
  const std::uint16_t nscount = r.u16();
  const std::uint16_t arcount = r.u16();
  if (!r.ok()) return err(ParseError::kTruncatedHeader);
  if ((q.flags & kFlagResponse) != 0) return err(ParseError::kNotQuery);
  if ((q.flags & kOpcodeMask) != 0) return err(ParseError::kBadOpcode);
  if (qdcount == 0) return err(ParseError::kNoQuestion);
  if (qdcount > 1) return err(ParseError::kTooManyQuestions);
  if (ancount != 0 || nscount != 0) return err(ParseError::kUnexpectedRecords);
  if (arcount > 1) return err(ParseError::kBadAdditional);

  // The question name, label by label, without compression.
  std::size_t wire = 0;
  bool usable = true;
  for (;;) {
    const std::uint8_t len = r.u8();
    if (!r.ok()) return err(ParseError::kTruncatedQuestion);
    if ((len & 0xc0) == 0xc0) return err(ParseError::kBadPointer);
    if ((len & 0xc0) != 0) return err(ParseError::kBadLabelType);
    if (len == 0) break;
    wire += std::size_t{len} + 1;
    if (wire + 1 > kMaxNameWireSize) return err(ParseError::kNameTooLong);
    const Bytes label = r.bytes(len);
    if (!r.ok()) return err(ParseError::kTruncatedQuestion);
    if (!q.qname.empty()) q.qname.push_back('.');
    for (std::uint8_t b : label) {
      const char c = static_cast<char>(b >= 'A' && b <= 'Z' ? b + ('a' - 'A') : b);
      usable = usable && hostByte(c);
      q.qname.push_back(c);
    }
  }
  q.qtype = r.u16();
  const std::uint16_t qclass = r.u16();
  if (!r.ok()) return err(ParseError::kTruncatedQuestion);
  if (!usable || q.qname.empty()) return err(ParseError::kBadName);
  if (qclass != kClassIn) return err(ParseError::kBadQuestionClass);
  q.question_end = r.position();

  if (arcount == 1) {
    // OPT (RFC 6891): owner the root, then type, the UDP size (class), extended flags (ttl)
    // and the options.
    const std::uint8_t owner = r.u8();
    const std::uint16_t type = r.u16();
    r.skip(6);  // class, ttl
    const std::uint16_t size = r.u16();
    if (!r.ok()) return err(ParseError::kTruncatedRecord);
    if (owner != 0 || type != kTypeOpt) return err(ParseError::kBadAdditional);
    q.opt_rdata_at = r.position();
    q.opt_rdata_size = size;
    r.skip(size);
    if (!r.ok()) return err(ParseError::kTruncatedRecord);
    q.edns = true;
  }
  if (!r.empty()) return err(ParseError::kTrailingBytes);
  return q;
}

std::vector<std::uint8_t> refusedAnswer(Bytes query, const Query* parsed) {
  std::vector<std::uint8_t> out;
  if (query.size() < kHeaderSize) return out;
  ByteReader r(query);
  const std::uint16_t id = r.u16();
  const std::uint16_t flags = r.u16();
  ByteWriter w(out);
  w.u16(id);
  w.u16(static_cast<std::uint16_t>(kFlagResponse | (flags & (kOpcodeMask | kFlagRecursionDesired)) |
                                   kFlagRecursionAvailable | kRcodeRefused));
  w.u16(parsed != nullptr ? 1 : 0);
  w.zeros(6);  // no answer, authority or additional records
  if (parsed != nullptr) w.bytes(query.subspan(kHeaderSize, parsed->question_end - kHeaderSize));
  return out;
}

std::vector<std::uint8_t> withoutEdnsOptions(Bytes query, const Query& parsed) {
  if (!parsed.edns || parsed.opt_rdata_size == 0)
    return std::vector<std::uint8_t>(query.begin(), query.end());
  // Everything up to the OPT's rdata, with its RDLENGTH (the two bytes before it) zeroed. The
  // OPT is the last record (parseQuery refuses trailing bytes).
  std::vector<std::uint8_t> out(query.begin(),
                                query.begin() + static_cast<std::ptrdiff_t>(parsed.opt_rdata_at));
  out[parsed.opt_rdata_at - 2] = 0;
  out[parsed.opt_rdata_at - 1] = 0;
  return out;
}

}  // namespace cw::dns
