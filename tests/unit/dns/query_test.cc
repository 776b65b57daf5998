// parseQuery, refusedAnswer and withoutEdnsOptions: what a restricted cell's queries may be,
// as a table of {what, message, expected name or error}.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "dns/build.h"
#include "dns/dns.h"
#include "test_util.h"

namespace cw::dns {
namespace {

using namespace cw::dns::testing;

// A query header: id 0xabcd, the given flags and counts.
Buf queryHeader(std::uint16_t flags, std::uint16_t qd, std::uint16_t an = 0, std::uint16_t ns = 0,
                std::uint16_t ar = 0) {
  Buf out;
  ByteWriter w(out);
  w.u16(0xabcd);
  w.u16(flags);
  w.u16(qd);
  w.u16(an);
  w.u16(ns);
  w.u16(ar);
  return out;
}

// Appends raw labels (each written as given, so a label may hold a '.') and the root.
void labels(Buf& out, std::initializer_list<std::string> ls) {
  for (const auto& l : ls) {
    out.push_back(static_cast<std::uint8_t>(l.size()));
    out.insert(out.end(), l.begin(), l.end());
  }
  out.push_back(0);
}

void typeClass(Buf& out, std::uint16_t type, std::uint16_t klass = kClassIn) {
  ByteWriter w(out);
  w.u16(type);
  w.u16(klass);
}

// An OPT record: root owner, UDP size 1232, no extended flags, `options` as its rdata.
void opt(Buf& out, const Buf& options = {}) {
  ByteWriter w(out);
  w.u8(0);
  w.u16(kTypeOpt);
  w.u16(1232);
  w.u32(0);
  w.u16(static_cast<std::uint16_t>(options.size()));
  w.bytes(options);
}

Buf plain(const std::string& name, std::uint16_t type = kTypeA) {
  return buildQuery(0xabcd, name, type);
}

Buf withOpt(const std::string& name, const Buf& options = {}) {
  Buf q = queryHeader(0x0100, 1, 0, 0, 1);
  Buf tail = plain(name);
  q.insert(q.end(), tail.begin() + static_cast<std::ptrdiff_t>(kHeaderSize), tail.end());
  opt(q, options);
  return q;
}

Buf compressed() {
  // "a." then a pointer back to the header: a name only a second reading of the bytes gives.
  Buf q = queryHeader(0x0100, 1);
  q.insert(q.end(), {1, 'a', 0xc0, 0x00});
  typeClass(q, kTypeA);
  return q;
}

Buf dotInLabel() {
  Buf q = queryHeader(0x0100, 1);
  labels(q, {"api.example", "test"});
  typeClass(q, kTypeA);
  return q;
}

Buf twoQuestions() {
  Buf q = queryHeader(0x0100, 2);
  labels(q, {"api", "example", "test"});
  typeClass(q, kTypeA);
  labels(q, {"secret", "evil", "test"});
  typeClass(q, kTypeA);
  return q;
}

Buf withAnswerRecord() {
  Buf q = queryHeader(0x0100, 1, 1);
  labels(q, {"api", "example", "test"});
  typeClass(q, kTypeA);
  labels(q, {"data", "evil", "test"});
  ByteWriter w(q);
  w.u16(kTypeTxt);
  w.u16(kClassIn);
  w.u32(0);
  w.u16(0);
  return q;
}

Buf additionalNotOpt() {
  Buf q = queryHeader(0x0100, 1, 0, 0, 1);
  labels(q, {"api", "example", "test"});
  typeClass(q, kTypeA);
  labels(q, {"x"});  // owner not the root
  ByteWriter w(q);
  w.u16(kTypeOpt);
  w.u16(512);
  w.u32(0);
  w.u16(0);
  return q;
}

Buf withFlags(Buf q, std::uint16_t flags) {
  q[2] = static_cast<std::uint8_t>(flags >> 8);
  q[3] = static_cast<std::uint8_t>(flags);
  return q;
}

Buf withClass(std::uint16_t klass) {
  Buf q = queryHeader(0x0100, 1);
  labels(q, {"version", "bind"});
  typeClass(q, kTypeTxt, klass);
  return q;
}

Buf appended(Buf q, std::initializer_list<std::uint8_t> extra) {
  q.insert(q.end(), extra);
  return q;
}

Buf longName() {
  Buf q = queryHeader(0x0100, 1);
  std::initializer_list<std::string> l = {std::string(63, 'a'), std::string(63, 'b'),
                                          std::string(63, 'c'), std::string(63, 'd')};
  labels(q, l);  // 4 * 64 + 1 = 257 bytes
  typeClass(q, kTypeA);
  return q;
}

struct Case {
  const char* what;
  Buf message;
  std::string qname;  // expected name; empty: expect `error`
  ParseError error = ParseError::kCount;
};

TEST(DnsQuery, Table) {
  const std::vector<Case> cases = {
      {"plain A query", plain("api.example.test"), "api.example.test"},
      {"upper case is lowered", plain("API.Example.TEST"), "api.example.test"},
      {"trailing dot", plain("api.example.test."), "api.example.test"},
      {"TXT query", plain("x.example.test", kTypeTxt), "x.example.test"},
      {"EDNS OPT without options", withOpt("api.example.test"), "api.example.test"},
      {"EDNS OPT with a cookie", withOpt("api.example.test", {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}),
       "api.example.test"},
      {"underscore label", plain("_srv._tcp.example.test"), "_srv._tcp.example.test"},
      {"short header", Buf{0xab, 0xcd, 1, 0}, "", ParseError::kTruncatedHeader},
      {"a response", withFlags(plain("api.example.test"), 0x8180), "", ParseError::kNotQuery},
      {"opcode NOTIFY", withFlags(plain("api.example.test"), 0x2100), "", ParseError::kBadOpcode},
      {"opcode UPDATE", withFlags(plain("api.example.test"), 0x2800), "", ParseError::kBadOpcode},
      {"no question", queryHeader(0x0100, 0), "", ParseError::kNoQuestion},
      {"two questions", twoQuestions(), "", ParseError::kTooManyQuestions},
      {"an answer record in a query", withAnswerRecord(), "", ParseError::kUnexpectedRecords},
      {"two additional records", queryHeader(0x0100, 1, 0, 0, 2), "", ParseError::kBadAdditional},
      {"additional record not owned by the root", additionalNotOpt(), "", ParseError::kBadAdditional},
      {"compression pointer", compressed(), "", ParseError::kBadPointer},
      {"label type 0x40", appended(queryHeader(0x0100, 1), {0x41, 'a', 0}), "",
       ParseError::kBadLabelType},
      {"a dot inside a label", dotInLabel(), "", ParseError::kBadName},
      {"the root", appended(queryHeader(0x0100, 1), {0, 0, 1, 0, 1}), "", ParseError::kBadName},
      {"a space in a label", plain("a b.example.test"), "", ParseError::kBadName},
      {"name over 255 bytes", longName(), "", ParseError::kNameTooLong},
      {"cut in the name", appended(queryHeader(0x0100, 1), {5, 'a', 'b'}), "",
       ParseError::kTruncatedQuestion},
      {"cut in the type", appended(queryHeader(0x0100, 1), {1, 'a', 0, 0}), "",
       ParseError::kTruncatedQuestion},
      {"class CHAOS", withClass(3), "", ParseError::kBadQuestionClass},
      {"trailing bytes", appended(plain("api.example.test"), {'x', 'y'}), "",
       ParseError::kTrailingBytes},
  };
  std::set<ParseError> seen;
  for (const auto& c : cases) {
    auto q = parseQuery(c.message);
    if (!q) seen.insert(q.error());
    if (c.qname.empty()) {
      ASSERT_FALSE(q.has_value()) << c.what << ": parsed as " << q->qname;
      EXPECT_EQ(parseErrorName(q.error()), std::string(parseErrorName(c.error))) << c.what;
    } else {
      ASSERT_TRUE(q.has_value()) << c.what << ": " << parseErrorName(q.error());
      EXPECT_EQ(q->qname, c.qname) << c.what;
      EXPECT_EQ(q->id, 0xabcd) << c.what;
    }
  }
  for (auto e : {ParseError::kNotQuery, ParseError::kUnexpectedRecords, ParseError::kBadAdditional,
                 ParseError::kTrailingBytes})
    EXPECT_EQ(seen.count(e), 1u) << parseErrorName(e);
}

TEST(DnsQuery, OptRdataPastTheEndIsTruncated) {
  Buf q = withOpt("api.example.test", {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8});
  q.resize(q.size() - 3);
  auto r = parseQuery(q);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::kTruncatedRecord);
}

TEST(DnsQuery, RefusedEchoesIdOpcodeRdAndQuestion) {
  const Buf q = plain("Secret-Data.evil.test", kTypeTxt);
  auto parsed = parseQuery(q);
  ASSERT_TRUE(parsed.has_value());
  const Buf a = refusedAnswer(q, &*parsed);
  // The answer parses as a response: rcode REFUSED, the question as asked, no records.
  auto r = parseResponse(a);
  ASSERT_TRUE(r.has_value()) << parseErrorName(r.error());
  EXPECT_EQ(r->id, 0xabcd);
  EXPECT_EQ(r->rcode, kRcodeRefused);
  EXPECT_EQ(r->qname, "secret-data.evil.test");
  EXPECT_EQ(r->qtype, kTypeTxt);
  EXPECT_TRUE(r->mappings.empty());
  ASSERT_EQ(a.size(), q.size());
  EXPECT_EQ(a[2], 0x81);  // QR, RD
  EXPECT_EQ(a[3], 0x85);  // RA, REFUSED
  // The question's bytes are the query's own (case kept: resolvers compare the echo).
  EXPECT_TRUE(std::equal(a.begin() + 12, a.end(), q.begin() + 12));
}

TEST(DnsQuery, RefusedWithoutAQuestionForWhatDoesNotParse) {
  const Buf q = twoQuestions();
  const Buf a = refusedAnswer(q, nullptr);
  ASSERT_EQ(a.size(), kHeaderSize);
  EXPECT_EQ(a[0], 0xab);
  EXPECT_EQ(a[1], 0xcd);
  EXPECT_EQ(a[3] & 0x0f, kRcodeRefused);
  EXPECT_EQ(a[4], 0);
  EXPECT_EQ(a[5], 0);  // QDCOUNT 0
  EXPECT_TRUE(refusedAnswer(Buf{1, 2, 3}, nullptr).empty());  // nothing to answer
}

TEST(DnsQuery, EdnsOptionsAreRemovedAndTheRestKept) {
  const Buf cookie = {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
  const Buf q = withOpt("api.example.test", cookie);
  auto parsed = parseQuery(q);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(parsed->edns);
  const Buf stripped = withoutEdnsOptions(q, *parsed);
  EXPECT_EQ(stripped, withOpt("api.example.test"));
  auto again = parseQuery(stripped);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->opt_rdata_size, 0);
  EXPECT_EQ(again->qname, "api.example.test");
  // Without options (or without OPT) the query goes on byte for byte.
  const Buf bare = plain("api.example.test");
  EXPECT_EQ(withoutEdnsOptions(bare, *parseQuery(bare)), bare);
}

}  // namespace
}  // namespace cw::dns
