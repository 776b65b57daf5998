// DNS responses reduced to what the firewall needs: which addresses a cell learned for which
// host names, and for how long.
//
// parseResponse() reads one DNS message (a UDP payload, or one message out of TcpFramer) in
// one bounds-checked pass and returns an Answer that owns its strings; nothing points into the
// input afterwards. Pure: no I/O, no globals, safe to call from any thread.
//
// Security property: mappings are only ever made for names on the chain that starts at the
// QUESTION name (qname, then each CNAME target followed from it). Records owned by any other
// name, and everything in the authority and additional sections, are ignored, so an answer
// cannot plant names for unrelated domains.
//
// Errors: a message whose header, question or record framing is broken fails with a
// ParseError (stable names for counters). A record that is well framed but unusable (owner
// name that is not a host name, wrong rdata size, malformed SvcParams, off the chain...) is
// skipped and counted in Answer::skipped; it never fails the message.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/net.h"
#include "common/result.h"

namespace cw::dns {

inline constexpr std::uint16_t kTypeA = 1, kTypeCname = 5, kTypeTxt = 16, kTypeAaaa = 28,
                               kTypeSvcb = 64, kTypeHttps = 65;
inline constexpr std::uint16_t kClassIn = 1;
inline constexpr std::uint8_t kRcodeNoError = 0, kRcodeServFail = 2, kRcodeNxDomain = 3,
                              kRcodeRefused = 5;
inline constexpr std::uint16_t kSvcKeyIpv4Hint = 4, kSvcKeyIpv6Hint = 6;

inline constexpr std::size_t kHeaderSize = 12;
inline constexpr std::size_t kMaxNameWireSize = 255;  // RFC 1035 2.3.4, length octets included
inline constexpr std::size_t kMaxPointerJumps = 64;   // per name; real names need a few
inline constexpr std::size_t kMaxChainLength = 16;    // names on the chain, qname included
inline constexpr std::size_t kMaxAnswersInspected = 256;
inline constexpr std::size_t kMaxMappings = 64;

// Why a message could not be read at all.
//   kTruncated*: fewer bytes than the header, the question or a record's framing needs.
//   kBadName:    the question name is well framed but not a host name (a byte outside
//                [a-z0-9-_] after lowercasing, or the root name). Only the question fails
//                for this; answer records with such owners are skipped.
//   kBadLabelType, kBadPointer, kNameLoop, kNameTooLong: a name (question or an answer
//                record's owner or CNAME framing) that cannot be walked: label type 0x40/0x80,
//                a pointer forward or past the end, a pointer into the name itself or more
//                than kMaxPointerJumps jumps, more than 255 bytes. In a query (parseQuery)
//                every compression pointer is kBadPointer.
// Queries only (parseQuery):
//   kNotQuery:          QR=1: a response sent towards the resolver.
//   kUnexpectedRecords: a query with answer or authority records.
//   kBadAdditional:     an additional section other than one OPT record owned by the root.
//   kTrailingBytes:     bytes after the last record.
// clang-format off
enum class ParseError : std::uint8_t {
  kTruncatedHeader, kNotResponse, kBadOpcode, kNoQuestion, kTooManyQuestions,
  kTruncatedQuestion, kBadQuestionClass, kBadName, kBadLabelType, kBadPointer, kNameLoop,
  kNameTooLong, kTruncatedRecord,
  kNotQuery, kUnexpectedRecords, kBadAdditional, kTrailingBytes,
  kCount
};
// clang-format on
const char* parseErrorName(ParseError e);

// Why an answer record (or the walk) was set aside without failing the message.
//   kOffChain:      owner is not on the chain (the security property at work).
//   kBadOwnerName:  owner is not a host name (see kBadName).
//   kBadClass:      a CNAME/A/AAAA/SVCB/HTTPS record whose class is not IN.
//   kBadRdata:      A not 4 bytes, AAAA not 16, CNAME target that does not fill its rdata
//                   or cannot be walked, SVCB/HTTPS rdata that breaks RFC 9460 framing.
//   kBadTarget:     a CNAME on the chain whose target is not a host name; the chain stops.
//   kChainLoop:     a CNAME target already on the chain; the chain stops.
//   kChainTooLong:  the chain reached kMaxChainLength names; the chain stops.
//   kRecordLimit:   more than kMaxAnswersInspected answers; the rest were not read.
//   kMappingLimit:  one per (name, address) dropped because kMaxMappings were already kept.
// clang-format off
enum class Skip : std::uint8_t {
  kOffChain, kBadOwnerName, kBadClass, kBadRdata, kBadTarget, kChainLoop, kChainTooLong,
  kRecordLimit, kMappingLimit,
  kCount
};
// clang-format on
const char* skipName(Skip s);

// A host name the cell now resolves to `ip`. `name` is lowercase ASCII without a trailing dot.
struct Mapping {
  std::string name;
  IpAddr ip;
  std::uint32_t ttl = 0;  // seconds
  bool operator==(const Mapping&) const = default;
};

struct Answer {
  std::uint16_t id = 0;
  std::string qname;  // lowercase, no trailing dot
  std::uint16_t qtype = 0;
  std::uint8_t rcode = 0;
  bool truncated = false;  // TC bit: a UDP answer cut short; what is here is still true
  // qname, then each CNAME target followed. Only qname when rcode != 0.
  std::vector<std::string> chain;
  // At most kMaxMappings, no two with the same name and ip. Empty when rcode != 0.
  std::vector<Mapping> mappings;
  std::array<std::uint16_t, static_cast<std::size_t>(Skip::kCount)> skipped{};

  std::uint16_t skippedCount(Skip s) const { return skipped[static_cast<std::size_t>(s)]; }
};

// Reads one DNS message. Accepts only responses (QR=1) with opcode QUERY and exactly one
// question of class IN. rcode != 0 is an Answer without mappings, not an error.
//
// Mappings: an A or AAAA record, or the ipv4hint/ipv6hint of an SVCB/HTTPS record in
// ServiceMode, owned by chain[k] maps every name chain[0..k] (normally k is the last: the
// canonical name) to its address. Its ttl is the minimum of the record's ttl and the ttls of
// the CNAMEs from qname to chain[k]. The same name and address seen twice keeps the larger
// ttl (either record alone would have taught the cell that mapping). Once kMaxMappings are
// kept, later ones are dropped (counted), duplicates of kept ones included.
Result<Answer, ParseError> parseResponse(Bytes message);

// A query a cell sends to its environment's resolver, as resolution policy (docs/dns.md,
// "Which names a cell may resolve") sees it.
inline constexpr std::uint16_t kTypeOpt = 41;
struct Query {
  std::uint16_t id = 0;
  std::uint16_t flags = 0;  // as sent: RD, CD, AD...
  std::string qname;        // lowercase, no trailing dot: what the resolver will look up
  std::uint16_t qtype = 0;
  std::size_t question_end = 0;  // offset just after QTYPE and QCLASS
  bool edns = false;             // one OPT record follows the question
  std::size_t opt_rdata_at = 0;  // with edns: where the OPT record's options start
  std::uint16_t opt_rdata_size = 0;
};

// Reads one query strictly: QR=0, opcode QUERY, exactly one question of class IN whose name is
// a host name written without compression, no answer or authority records, at most one
// additional record and that an OPT owned by the root, nothing after it. Anything else is an
// error: a query the controller cannot read with certainty is refused, never forwarded, so the
// name checked is always the name the resolver would see (no second reading of the same bytes:
// a label holding a '.', a pointer, a second question).
Result<Query, ParseError> parseQuery(Bytes message);

// The REFUSED answer (RFC 1035 rcode 5) to `query`: its id, opcode and RD, QR and RA set, the
// question echoed when `parsed` is given (it must be parseQuery(query)'s result), else no
// question. Empty when `query` is shorter than a header: there is nothing to answer.
std::vector<std::uint8_t> refusedAnswer(Bytes query, const Query* parsed);

// The query without its EDNS options (the OPT record kept, its rdata emptied): options are
// bytes the client chooses (cookies, padding, a client subnet a forwarder may pass upstream),
// so a restricted cell's queries go on without them. The query as is when it has none.
std::vector<std::uint8_t> withoutEdnsOptions(Bytes query, const Query& parsed);

// Reassembles DNS-over-TCP messages (RFC 1035 4.2.2: each message prefixed by a 2-byte
// length) from ONE direction of ONE TCP connection, as the controller sees copies of its
// segments: possibly retransmitted, possibly with copies missing.
//
// - Segments must arrive in order. One starting before the next expected sequence number is
//   a retransmission: bytes already seen are dropped, new ones used.
// - A segment starting after the next expected sequence number means bytes were missed. The
//   framer then cannot know where messages begin, and guessing would let bytes the cell
//   controls (a TXT record it asked for, say) be read as a forged answer. So it drops its
//   buffer and is lost() for the rest of the stream: everything is ignored until reset()
//   with the first sequence number of a new stream.
// - Memory is bounded: at most one message (2 + 65535 bytes) is buffered.
// Not thread-safe; one instance per connection direction.
class TcpFramer {
 public:
  // The first segment fed is taken as the start of the stream.
  TcpFramer() = default;
  // The stream's first byte has this sequence number (the SYN's sequence number plus one).
  explicit TcpFramer(std::uint32_t first_seq) : next_seq_(first_seq) {}

  // Feeds one segment's payload; returns the messages it completed (without the length
  // prefix), in order. A zero-length message is not returned.
  std::vector<std::vector<std::uint8_t>> feed(std::uint32_t seq, Bytes payload);

  void reset(std::uint32_t first_seq);
  bool lost() const { return lost_; }
  std::size_t buffered() const { return have_length_ + body_.size(); }
  std::uint64_t messages() const { return messages_; }
  std::uint64_t gaps() const { return gaps_; }

 private:
  std::optional<std::uint32_t> next_seq_;
  bool lost_ = false;
  std::array<std::uint8_t, 2> length_bytes_{};
  std::size_t have_length_ = 0;  // 0..2 bytes of the current length prefix
  std::size_t want_ = 0;         // body size once the prefix is complete
  std::vector<std::uint8_t> body_;
  std::uint64_t messages_ = 0;
  std::uint64_t gaps_ = 0;
};

}  // namespace cw::dns
