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
using Lines = std::vector<std::string>;

// "n<i>.test", built without operator+ chains (g++ 12 -O3 reports a false -Wrestrict there).
std::string node(int i) {
  std::string s = "n";
  s += std::to_string(i);
  s += ".test";
  return s;
}

Answer parseOk(const Buf& msg) {
  auto r = parseResponse(msg);
  EXPECT_TRUE(r.has_value()) << (r ? "" : parseErrorName(r.error()));
  return r ? *r : Answer{};
}

TEST(DnsParse, ARecord) {
  auto spec = response("example.com");
  spec.id = 0xbeef;
  spec.answers = {aRecord("example.com", ip4("93.184.216.34"), 300)};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.id, 0xbeef);
  EXPECT_EQ(a.qname, "example.com");
  EXPECT_EQ(a.qtype, kTypeA);
  EXPECT_EQ(a.rcode, kRcodeNoError);
  EXPECT_FALSE(a.truncated);
  EXPECT_EQ(a.chain, (Lines{"example.com"}));
  ASSERT_EQ(a.mappings.size(), 1u);
  EXPECT_EQ(a.mappings[0], (Mapping{"example.com", ip("93.184.216.34"), 300}));
}

TEST(DnsParse, AaaaRecord) {
  auto spec = response("example.com", kTypeAaaa);
  spec.answers = {aaaaRecord("example.com", ip6("2606:2800:220:1::1"), 86400)};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.qtype, kTypeAaaa);
  EXPECT_EQ(lines(a), (Lines{"example.com 2606:2800:220:1::1 86400"}));
}

TEST(DnsParse, CnameChainMapsEveryNameWithMinimumTtl) {
  auto spec = response("www.example.com");
  spec.answers = {cnameRecord("www.example.com", "edge.example.net", 60),
                  cnameRecord("edge.example.net", "e1.cdn.test", 120),
                  aRecord("e1.cdn.test", ip4("203.0.113.7"), 30),
                  aRecord("e1.cdn.test", ip4("203.0.113.8"), 600)};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.chain, (Lines{"www.example.com", "edge.example.net", "e1.cdn.test"}));
  EXPECT_EQ(lines(a), (Lines{"e1.cdn.test 203.0.113.7 30", "e1.cdn.test 203.0.113.8 60",
                             "edge.example.net 203.0.113.7 30", "edge.example.net 203.0.113.8 60",
                             "www.example.com 203.0.113.7 30", "www.example.com 203.0.113.8 60"}));
}

TEST(DnsParse, ChainInAnyRecordOrder) {
  auto spec = response("www.example.com");
  spec.answers = {aRecord("e1.cdn.test", ip4("203.0.113.7"), 300),
                  cnameRecord("edge.example.net", "e1.cdn.test", 300),
                  cnameRecord("www.example.com", "edge.example.net", 300)};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.chain, (Lines{"www.example.com", "edge.example.net", "e1.cdn.test"}));
  EXPECT_EQ(a.mappings.size(), 3u);
  EXPECT_EQ(a.skippedCount(Skip::kOffChain), 0u);
}

TEST(DnsParse, AddressOnAnAliasMapsOnlyNamesLeadingToIt) {
  // Invalid (a CNAME owner with other data), but what a stub would still learn: a -> ip.
  auto spec = response("a.test");
  spec.answers = {cnameRecord("a.test", "b.test", 100), aRecord("a.test", ip4("192.0.2.1"), 50),
                  aRecord("b.test", ip4("192.0.2.2"), 500)};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(lines(a),
            (Lines{"a.test 192.0.2.1 50", "a.test 192.0.2.2 100", "b.test 192.0.2.2 100"}));
}

TEST(DnsParse, CnameLoopStopsTheChain) {
  auto spec = response("a.test");
  spec.answers = {cnameRecord("a.test", "b.test"), cnameRecord("b.test", "A.test"),
                  aRecord("b.test", ip4("192.0.2.1"))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.chain, (Lines{"a.test", "b.test"}));
  EXPECT_EQ(a.skippedCount(Skip::kChainLoop), 1u);
  EXPECT_EQ(lines(a), (Lines{"a.test 192.0.2.1 300", "b.test 192.0.2.1 300"}));
}

TEST(DnsParse, SelfCnameIsALoop) {
  auto spec = response("a.test");
  spec.answers = {cnameRecord("a.test", "a.test")};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.chain, (Lines{"a.test"}));
  EXPECT_EQ(a.skippedCount(Skip::kChainLoop), 1u);
}

TEST(DnsParse, ChainLengthIsBounded) {
  auto spec = response("n0.test");
  for (int i = 0; i < 20; ++i) spec.answers.push_back(cnameRecord(node(i), node(i + 1)));
  spec.answers.push_back(aRecord("n20.test", ip4("192.0.2.1")));
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.chain.size(), kMaxChainLength);
  EXPECT_EQ(a.chain.back(), "n15.test");
  EXPECT_EQ(a.skippedCount(Skip::kChainTooLong), 1u);
  EXPECT_TRUE(a.mappings.empty());
  // The CNAMEs past the cut and the A record are off the chain as far as we know.
  EXPECT_EQ(a.skippedCount(Skip::kOffChain), 5u);
}

TEST(DnsParse, RecordsOffTheChainAreIgnored) {
  auto spec = response("example.com");
  spec.answers = {aRecord("bank.test", ip4("6.6.6.6")),
                  // Points INTO the chain from outside: must not put evil.test on it.
                  cnameRecord("evil.test", "example.com"),
                  aaaaRecord("www.example.com", ip6("2001:db8::6")),
                  aRecord("example.com", ip4("93.184.216.34"))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.chain, (Lines{"example.com"}));
  EXPECT_EQ(lines(a), (Lines{"example.com 93.184.216.34 300"}));
  EXPECT_EQ(a.skippedCount(Skip::kOffChain), 3u);
}

TEST(DnsParse, AuthorityAndAdditionalSectionsAreIgnored) {
  auto spec = response("example.com");
  spec.answers = {aRecord("example.com", ip4("93.184.216.34"))};
  spec.authority = {aRecord("example.com", ip4("6.6.6.1")),
                    cnameRecord("example.com", "evil.test")};
  spec.additional = {aRecord("example.com", ip4("6.6.6.2")),
                     aRecord("ns1.example.com", ip4("6.6.6.3")),
                     aRecord("evil.test", ip4("6.6.6.4"))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.chain, (Lines{"example.com"}));
  EXPECT_EQ(lines(a), (Lines{"example.com 93.184.216.34 300"}));
}

TEST(DnsParse, UppercaseIsNormalised) {
  auto spec = response("WWW.Example.COM");
  spec.compress = false;  // keep every spelling on the wire
  spec.answers = {cnameRecord("www.EXAMPLE.com", "CDN.Example.NET"),
                  aRecord("cdn.example.net", ip4("192.0.2.9"))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.qname, "www.example.com");
  EXPECT_EQ(a.chain, (Lines{"www.example.com", "cdn.example.net"}));
  EXPECT_EQ(lines(a), (Lines{"cdn.example.net 192.0.2.9 300", "www.example.com 192.0.2.9 300"}));
}

TEST(DnsParse, TrailingDotAndUnderscoreNames) {
  auto spec = response("_8443._https.example.com.", kTypeHttps);
  spec.answers = {
      svcbRecord("_8443._https.example.com", SvcbSpec{1, ".", {}, 8443, {ip4("192.0.2.5")}, {}})};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(lines(a), (Lines{"_8443._https.example.com 192.0.2.5 300"}));
}

TEST(DnsParse, NxDomainHasNoMappings) {
  auto spec = response("nope.example.com");
  spec.rcode = kRcodeNxDomain;
  spec.answers = {aRecord("nope.example.com", ip4("192.0.2.1"))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.rcode, kRcodeNxDomain);
  EXPECT_EQ(a.chain, (Lines{"nope.example.com"}));
  EXPECT_TRUE(a.mappings.empty());
}

TEST(DnsParse, TruncatedFlagKeepsWhatIsThere) {
  auto spec = response("example.com");
  spec.truncated = true;
  spec.answers = {aRecord("example.com", ip4("192.0.2.1"))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_TRUE(a.truncated);
  EXPECT_EQ(a.mappings.size(), 1u);
}

TEST(DnsParse, DuplicatesKeepTheLargerTtl) {
  auto spec = response("example.com");
  spec.answers = {
      aRecord("example.com", ip4("192.0.2.1"), 100), aRecord("example.com", ip4("192.0.2.1"), 200),
      svcbRecord("example.com", SvcbSpec{1, ".", {}, 0, {ip4("192.0.2.1")}, {}}, kTypeHttps, 50)};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(lines(a), (Lines{"example.com 192.0.2.1 200"}));
}

TEST(DnsParse, TtlWithHighBitMeansZero) {
  auto spec = response("example.com");
  spec.answers = {aRecord("example.com", ip4("192.0.2.1"), 0x80000001u)};
  EXPECT_EQ(lines(parseOk(buildResponse(spec))), (Lines{"example.com 192.0.2.1 0"}));
}

TEST(DnsParse, OtherTypesAreIgnoredSilently) {
  auto spec = response("example.com");
  RecordSpec txt;
  txt.name = "example.com";
  txt.type = kTypeTxt;
  txt.rdata = {5, 'h', 'e', 'l', 'l', 'o'};
  RecordSpec rrsig = txt;
  rrsig.type = 46;
  spec.answers = {txt, rrsig, aRecord("example.com", ip4("192.0.2.1"))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.mappings.size(), 1u);
  for (std::size_t i = 0; i < a.skipped.size(); ++i)
    EXPECT_EQ(a.skipped[i], 0u) << skipName(Skip(i));
}

TEST(DnsParse, BadOwnerNamesAndClassesAreSkippedNotFatal) {
  auto spec = response("example.com");
  spec.compress = false;
  RecordSpec chaos = aRecord("example.com", ip4("6.6.6.6"));
  chaos.klass = 3;
  spec.answers = {aRecord("bad name.example.com", ip4("6.6.6.7")),
                  aRecord("a*b.example.com", ip4("6.6.6.8")), chaos,
                  aRecord("example.com", ip4("192.0.2.1"))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(lines(a), (Lines{"example.com 192.0.2.1 300"}));
  EXPECT_EQ(a.skippedCount(Skip::kBadOwnerName), 2u);
  EXPECT_EQ(a.skippedCount(Skip::kBadClass), 1u);
}

TEST(DnsParse, BadRdataIsSkippedNotFatal) {
  auto spec = response("example.com");
  RecordSpec a5 = aRecord("example.com", ip4("6.6.6.6"));
  a5.rdata.push_back(0);
  RecordSpec aaaa4 = aaaaRecord("example.com", ip6("2001:db8::1"));
  aaaa4.rdata.resize(4);
  spec.answers = {a5, aaaa4, aRecord("example.com", ip4("192.0.2.1"))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(lines(a), (Lines{"example.com 192.0.2.1 300"}));
  EXPECT_EQ(a.skippedCount(Skip::kBadRdata), 2u);
}

// Question example.com at 12; answer 1 is a CNAME for it whose rdata is `rdata` as is.
Buf cnameWithRdata(const Buf& rdata) {
  Buf m = rawHeader(1, 2);
  appendName(m, "example.com");
  append(m, {0, 1, 0, 1});
  append(m, {0xc0, 12});
  appendRecordTail(m, kTypeCname, 60, rdata);
  append(m, {0xc0, 12});
  appendRecordTail(m, kTypeA, 60, {192, 0, 2, 1});
  return m;
}

TEST(DnsParse, BadCnameRdataStopsTheChainOnly) {
  Buf padded;
  appendName(padded, "cdn.test");
  padded.push_back(0);  // a byte after the name, inside rdata
  Buf forward = {0xc0, 0xff};
  Buf cut = {3, 'c', 'd'};
  Buf spaced;
  appendName(spaced, "c n.test");
  for (const auto& [rdata, skip] : std::vector<std::pair<Buf, Skip>>{{padded, Skip::kBadRdata},
                                                                     {forward, Skip::kBadRdata},
                                                                     {cut, Skip::kBadRdata},
                                                                     {spaced, Skip::kBadTarget}}) {
    const Answer a = parseOk(cnameWithRdata(rdata));
    EXPECT_EQ(a.chain, (Lines{"example.com"}));
    EXPECT_EQ(a.skippedCount(skip), 1u) << skipName(skip);
    EXPECT_EQ(lines(a), (Lines{"example.com 192.0.2.1 60"}));
  }
}

TEST(DnsParse, CompressionPointersAreFollowed) {
  auto spec = response("www.example.com");
  spec.answers = {cnameRecord("www.example.com", "cdn.example.com", 60),
                  aRecord("cdn.example.com", ip4("192.0.2.3"))};
  const Buf msg = buildResponse(spec);
  // Owners point at the question; the target reuses "example.com".
  const Buf plain = [&] {
    auto s = spec;
    s.compress = false;
    return buildResponse(s);
  }();
  EXPECT_LT(msg.size(), plain.size());
  const Answer a = parseOk(msg);
  EXPECT_EQ(a.chain, (Lines{"www.example.com", "cdn.example.com"}));
  EXPECT_EQ(lines(a), (Lines{"cdn.example.com 192.0.2.3 60", "www.example.com 192.0.2.3 60"}));
  EXPECT_EQ(lines(parseOk(plain)), lines(a));
}

TEST(DnsParse, PointerChainsAreBounded) {
  // A TXT record's rdata holds a run of pointers, each to the one before; the first points at
  // the question. An A record's owner then enters the run at its end.
  auto build = [](std::size_t jumps) {
    Buf m = rawHeader(1, 2);
    appendName(m, "example.com");
    append(m, {0, 1, 0, 1});
    append(m, {0xc0, 12});
    Buf rdata;
    const std::size_t rdata_at = m.size() + 10;
    for (std::size_t i = 0; i + 1 < jumps; ++i) {
      const std::size_t to = i == 0 ? 12 : rdata_at + 2 * (i - 1);
      rdata.push_back(static_cast<std::uint8_t>(0xc0 | to >> 8));
      rdata.push_back(static_cast<std::uint8_t>(to));
    }
    appendRecordTail(m, kTypeTxt, 60, rdata);
    const std::size_t last = jumps == 1 ? 12 : rdata_at + 2 * (jumps - 2);
    append(m, {static_cast<int>(0xc0 | last >> 8), static_cast<int>(last & 0xff)});
    appendRecordTail(m, kTypeA, 60, {192, 0, 2, 1});
    return m;
  };
  EXPECT_EQ(lines(parseOk(build(kMaxPointerJumps))), (Lines{"example.com 192.0.2.1 60"}));
  auto r = parseResponse(build(kMaxPointerJumps + 1));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ParseError::kNameLoop);
}

TEST(DnsParse, LongestNameIsAcceptedOneMoreByteIsNot) {
  const std::string l63(63, 'a');
  const std::string longest =
      l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');  // 255 on the wire
  auto spec = response(longest);
  spec.answers = {aRecord(longest, ip4("192.0.2.1"))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.qname.size(), 253u);
  EXPECT_EQ(a.mappings.size(), 1u);

  Buf m = rawHeader(1, 0);
  appendName(m, longest + "b");
  append(m, {0, 1, 0, 1});
  auto r = parseResponse(m);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ParseError::kNameTooLong);
}

TEST(DnsParse, CompressedOwnerOverLongFails) {
  const std::string l63(63, 'a');
  const std::string q = l63 + "." + l63 + "." + l63 + ".b";  // 197 bytes on the wire
  Buf m = rawHeader(1, 1);
  appendName(m, q);
  append(m, {0, 1, 0, 1});
  m.push_back(63);
  m.insert(m.end(), 63, 'c');
  append(m, {0xc0, 12});  // 64 + 197 > 255
  appendRecordTail(m, kTypeA, 60, {192, 0, 2, 1});
  auto r = parseResponse(m);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ParseError::kNameTooLong);
}

TEST(DnsParse, AnswerLimits) {
  // 300 answers claimed, 256 present: the rest is never read, so its absence is no error.
  auto spec = response("example.com");
  for (int i = 0; i < 256; ++i)
    spec.answers.push_back(
        aRecord("example.com", Ip4{0xc0000000u + static_cast<std::uint32_t>(i)}));
  Buf msg = buildResponse(spec);
  msg[6] = 300 >> 8;
  msg[7] = 300 & 0xff;
  const Answer a = parseOk(msg);
  EXPECT_EQ(a.mappings.size(), kMaxMappings);
  EXPECT_EQ(a.skippedCount(Skip::kRecordLimit), 1u);
  EXPECT_EQ(a.skippedCount(Skip::kMappingLimit), 256u - kMaxMappings);
}

TEST(DnsParse, ManyLongOwnerNamesStillMatch) {
  // More owner text than the parser keeps aside: later owners are decoded again on demand.
  const std::string tail = std::string(60, 'x') + ".example.com";
  auto spec = response("q." + tail);
  spec.compress = false;
  for (int i = 0; i < 60; ++i)
    spec.answers.push_back(aRecord(node(i) + "." + tail, ip4("6.6.6.6")));
  spec.answers.push_back(cnameRecord("q." + tail, "c." + tail));
  spec.answers.push_back(aRecord("c." + tail, ip4("192.0.2.1")));
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.chain.size(), 2u);
  EXPECT_EQ(a.mappings.size(), 2u);
  EXPECT_EQ(a.skippedCount(Skip::kOffChain), 60u);
}

TEST(DnsParse, MappingLimitAcrossALongChain) {
  auto spec = response("n0.test");
  for (int i = 0; i < 15; ++i) spec.answers.push_back(cnameRecord(node(i), node(i + 1)));
  for (int i = 0; i < 5; ++i)
    spec.answers.push_back(aRecord("n15.test", Ip4{0xc0000200u + static_cast<std::uint32_t>(i)}));
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.chain.size(), 16u);
  EXPECT_EQ(a.mappings.size(), kMaxMappings);
  EXPECT_EQ(a.skippedCount(Skip::kMappingLimit), 16u);
}

// Every way a message fails, with the smallest input that shows it.
struct BadCase {
  const char* what;
  Buf msg;
  ParseError error;
};

Buf question(Buf m, const std::string& name = "example.com", std::uint16_t klass = kClassIn) {
  appendName(m, name);
  ByteWriter w(m);
  w.u16(kTypeA);
  w.u16(klass);
  return m;
}

std::vector<BadCase> badCases() {
  std::vector<BadCase> cases;
  cases.push_back({"empty", {}, ParseError::kTruncatedHeader});
  cases.push_back({"11 bytes", Buf(11, 0x81), ParseError::kTruncatedHeader});
  cases.push_back({"a query", question(rawHeader(1, 0, 0x0100)), ParseError::kNotResponse});
  cases.push_back({"opcode STATUS", question(rawHeader(1, 0, 0x9000)), ParseError::kBadOpcode});
  cases.push_back({"opcode NOTIFY", question(rawHeader(1, 0, 0xa000)), ParseError::kBadOpcode});
  cases.push_back({"no question", rawHeader(0, 0), ParseError::kNoQuestion});
  cases.push_back(
      {"two questions", question(question(rawHeader(2, 0))), ParseError::kTooManyQuestions});
  cases.push_back({"question name cut",
                   [] {
                     Buf m = rawHeader(1, 0);
                     append(m, {7, 'e', 'x', 'a'});
                     return m;
                   }(),
                   ParseError::kTruncatedQuestion});
  cases.push_back({"question without root label",
                   [] {
                     Buf m = rawHeader(1, 0);
                     append(m, {3, 'c', 'o', 'm'});
                     return m;
                   }(),
                   ParseError::kTruncatedQuestion});
  cases.push_back({"qtype cut",
                   [] {
                     Buf m = rawHeader(1, 0);
                     appendName(m, "example.com");
                     append(m, {0, 1, 0});
                     return m;
                   }(),
                   ParseError::kTruncatedQuestion});
  cases.push_back(
      {"class CH", question(rawHeader(1, 0), "example.com", 3), ParseError::kBadQuestionClass});
  cases.push_back(
      {"class ANY", question(rawHeader(1, 0), "example.com", 255), ParseError::kBadQuestionClass});
  cases.push_back(
      {"space in name", question(rawHeader(1, 0), "ex ample.com"), ParseError::kBadName});
  cases.push_back({"dot inside a label",
                   [] {
                     Buf m = rawHeader(1, 0);
                     append(m, {3, 'a', '.', 'b', 0, 0, 1, 0, 1});
                     return m;
                   }(),
                   ParseError::kBadName});
  cases.push_back({"root name",
                   [] {
                     Buf m = rawHeader(1, 0);
                     append(m, {0, 0, 2, 0, 1});
                     return m;
                   }(),
                   ParseError::kBadName});
  cases.push_back({"label type 0x40",
                   [] {
                     Buf m = rawHeader(1, 0);
                     append(m, {0x41, 'a', 0, 0, 1, 0, 1});
                     return m;
                   }(),
                   ParseError::kBadLabelType});
  cases.push_back({"label type 0x80",
                   [] {
                     Buf m = rawHeader(1, 0);
                     append(m, {1, 'a', 0x81, 'b', 0, 0, 1, 0, 1});
                     return m;
                   }(),
                   ParseError::kBadLabelType});
  cases.push_back({"forward pointer",
                   [] {
                     Buf m = rawHeader(1, 0);
                     append(m, {0xc0, 14, 1, 'a', 0, 0, 1, 0, 1});
                     return m;
                   }(),
                   ParseError::kBadPointer});
  cases.push_back({"pointer past the end",
                   [] {
                     Buf m = rawHeader(1, 0);
                     append(m, {0xff, 0xff, 0, 1, 0, 1});
                     return m;
                   }(),
                   ParseError::kBadPointer});
  cases.push_back({"pointer to itself",
                   [] {
                     Buf m = rawHeader(1, 0);
                     append(m, {0xc0, 12, 0, 1, 0, 1});
                     return m;
                   }(),
                   ParseError::kNameLoop});
  cases.push_back({"pointer back into its own name",
                   [] {
                     Buf m = rawHeader(1, 0);
                     append(m, {1, 'a', 1, 'b', 0xc0, 12, 0, 1, 0, 1});
                     return m;
                   }(),
                   ParseError::kNameLoop});
  cases.push_back({"answer owner pointing back to its own label",
                   [] {
                     Buf m = question(rawHeader(1, 1));
                     const auto at = static_cast<int>(m.size());
                     append(m, {1, 'x', 0xc0, at});
                     appendRecordTail(m, kTypeA, 1, {1, 2, 3, 4});
                     return m;
                   }(),
                   ParseError::kNameLoop});
  cases.push_back({"four 63-byte labels",
                   [] {
                     Buf m = rawHeader(1, 0);
                     for (int i = 0; i < 4; ++i) {
                       m.push_back(63);
                       m.insert(m.end(), 63, 'a');
                     }
                     append(m, {0, 0, 1, 0, 1});
                     return m;
                   }(),
                   ParseError::kNameTooLong});
  cases.push_back({"answer owner cut",
                   [] {
                     Buf m = question(rawHeader(1, 1));
                     append(m, {5, 'a'});
                     return m;
                   }(),
                   ParseError::kTruncatedRecord});
  cases.push_back({"answer fixed part cut",
                   [] {
                     Buf m = question(rawHeader(1, 1));
                     append(m, {0xc0, 12, 0, 1, 0, 1, 0, 0});
                     return m;
                   }(),
                   ParseError::kTruncatedRecord});
  cases.push_back({"rdlength past the end",
                   [] {
                     Buf m = question(rawHeader(1, 1));
                     append(m, {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2});
                     return m;
                   }(),
                   ParseError::kTruncatedRecord});
  cases.push_back({"fewer answers than counted",
                   [] {
                     Buf m = question(rawHeader(1, 2));
                     append(m, {0xc0, 12});
                     appendRecordTail(m, kTypeA, 60, {192, 0, 2, 1});
                     return m;
                   }(),
                   ParseError::kTruncatedRecord});
  cases.push_back({"bad pointer in an ignored record",
                   [] {
                     Buf m = question(rawHeader(1, 1));
                     append(m, {0xc1, 0});
                     appendRecordTail(m, kTypeTxt, 60, {0});
                     return m;
                   }(),
                   ParseError::kBadPointer});
  return cases;
}

TEST(DnsParse, EveryErrorIsReachable) {
  std::set<ParseError> seen;
  for (const auto& c : badCases()) {
    auto r = parseResponse(c.msg);
    ASSERT_FALSE(r) << c.what;
    EXPECT_EQ(r.error(), c.error) << c.what << ": got " << parseErrorName(r.error());
    seen.insert(r.error());
  }
  // Those from kNotQuery on are parseQuery's only (query_test.cc reaches them).
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(ParseError::kNotQuery));
}

TEST(DnsParse, ErrorAndSkipNamesAreStableAndDistinct) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < static_cast<std::size_t>(ParseError::kCount); ++i)
    names.insert(parseErrorName(ParseError(i)));
  EXPECT_EQ(names.size(), static_cast<std::size_t>(ParseError::kCount));
  EXPECT_EQ(names.count("unknown"), 0u);
  EXPECT_STREQ(parseErrorName(ParseError::kNameLoop), "name_loop");
  EXPECT_STREQ(parseErrorName(ParseError::kCount), "unknown");
  names.clear();
  for (std::size_t i = 0; i < static_cast<std::size_t>(Skip::kCount); ++i)
    names.insert(skipName(Skip(i)));
  EXPECT_EQ(names.size(), static_cast<std::size_t>(Skip::kCount));
  EXPECT_EQ(names.count("unknown"), 0u);
  EXPECT_STREQ(skipName(Skip::kOffChain), "off_chain");
  EXPECT_STREQ(skipName(Skip::kCount), "unknown");
}

TEST(DnsParse, EveryPrefixOfAGoodMessageIsSafe) {
  auto spec = response("www.example.com", kTypeHttps);
  spec.answers = {
      cnameRecord("www.example.com", "cdn.example.com"),
      svcbRecord("cdn.example.com",
                 SvcbSpec{1, ".", {"h2", "h3"}, 0, {ip4("192.0.2.1")}, {ip6("2001:db8::1")}})};
  const Buf msg = buildResponse(spec);
  ASSERT_EQ(parseOk(msg).mappings.size(), 4u);
  for (std::size_t n = 0; n < msg.size(); ++n) {
    auto r = parseResponse(Bytes(msg.data(), n));
    EXPECT_FALSE(r) << n;
  }
}

}  // namespace
}  // namespace cw::dns
