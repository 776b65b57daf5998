// SVCB (64) and HTTPS (65) records: ipv4hint/ipv6hint in ServiceMode map the chain's names;
// AliasMode maps nothing; rdata that breaks RFC 9460 framing skips the record only.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dns/build.h"
#include "dns/dns.h"
#include "test_util.h"

namespace cw::dns {
namespace {

using namespace cw::dns::testing;
using Lines = std::vector<std::string>;

Answer parseOk(const Buf& msg) {
  auto r = parseResponse(msg);
  EXPECT_TRUE(r.has_value()) << (r ? "" : parseErrorName(r.error()));
  return r ? *r : Answer{};
}

SvcbSpec service(std::vector<Ip4> v4, std::vector<Ip6> v6 = {}) {
  SvcbSpec s;
  s.priority = 1;
  s.alpn = {"h2", "h3"};
  s.ipv4hint = std::move(v4);
  s.ipv6hint = std::move(v6);
  return s;
}

TEST(DnsSvcb, HttpsHintsMapTheQuestion) {
  auto spec = response("example.com", kTypeHttps);
  spec.answers = {svcbRecord("example.com",
                             service({ip4("192.0.2.1"), ip4("192.0.2.2")}, {ip6("2001:db8::1")}),
                             kTypeHttps, 120)};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(a.qtype, kTypeHttps);
  EXPECT_EQ(lines(a), (Lines{"example.com 192.0.2.1 120", "example.com 192.0.2.2 120",
                             "example.com 2001:db8::1 120"}));
}

TEST(DnsSvcb, SvcbTypeAndTargetNameWork) {
  auto spec = response("_dns.resolver.test", kTypeSvcb);
  SvcbSpec s = service({}, {ip6("2001:db8::53")});
  s.target = "dns.provider.test";
  spec.answers = {svcbRecord("_dns.resolver.test", s, kTypeSvcb)};
  const Answer a = parseOk(buildResponse(spec));
  // The hints are the target's addresses, but the cell reaches them for the question's name.
  EXPECT_EQ(lines(a), (Lines{"_dns.resolver.test 2001:db8::53 300"}));
}

TEST(DnsSvcb, HintsThroughACnameMapEveryChainName) {
  auto spec = response("www.example.com", kTypeHttps);
  spec.answers = {cnameRecord("www.example.com", "svc.cdn.test", 100),
                  svcbRecord("svc.cdn.test", service({ip4("192.0.2.7")}), kTypeHttps, 300)};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(lines(a), (Lines{"svc.cdn.test 192.0.2.7 100", "www.example.com 192.0.2.7 100"}));
}

TEST(DnsSvcb, AliasModeMapsNothing) {
  auto spec = response("example.com", kTypeHttps);
  SvcbSpec alias = service({ip4("6.6.6.6")});  // params in AliasMode are to be ignored
  alias.priority = 0;
  alias.target = "pool.example.net";
  spec.answers = {svcbRecord("example.com", alias)};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_TRUE(a.mappings.empty());
  EXPECT_EQ(a.skippedCount(Skip::kBadRdata), 0u);
}

TEST(DnsSvcb, OffChainHintsAreIgnored) {
  auto spec = response("example.com", kTypeHttps);
  spec.answers = {svcbRecord("bank.test", service({ip4("6.6.6.6")}))};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_TRUE(a.mappings.empty());
  EXPECT_EQ(a.skippedCount(Skip::kOffChain), 1u);
}

// Rdata: priority 1, TargetName ".", then `params` as is.
RecordSpec rawHttps(const Buf& params) {
  RecordSpec r;
  r.name = "example.com";
  r.type = kTypeHttps;
  r.rdata = {0, 1, 0};
  r.rdata.insert(r.rdata.end(), params.begin(), params.end());
  return r;
}

TEST(DnsSvcb, MalformedSvcParamsSkipTheRecordOnly) {
  const std::vector<std::pair<const char*, RecordSpec>> bad = {
      {"keys descending", rawHttps({0, 6, 0, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0,   0, 0, 0,
                                    0, 0, 0, 0,  0,    1, 0,   4,    0, 4, 192, 0, 2, 1})},
      {"key repeated", rawHttps({0, 4, 0, 4, 192, 0, 2, 1, 0, 4, 0, 4, 192, 0, 2, 2})},
      {"ipv4hint of 5 bytes", rawHttps({0, 4, 0, 5, 192, 0, 2, 1, 9})},
      {"empty ipv4hint", rawHttps({0, 4, 0, 0})},
      {"ipv6hint of 4 bytes", rawHttps({0, 6, 0, 4, 192, 0, 2, 1})},
      {"value past the end", rawHttps({0, 4, 0, 8, 192, 0, 2, 1})},
      {"key cut", rawHttps({0})},
      {"length cut", rawHttps({0, 4, 0})},
      {"compressed TargetName",
       [] {
         RecordSpec r;
         r.name = "example.com";
         r.type = kTypeHttps;
         r.rdata = {0, 1, 0xc0, 12, 0, 4, 0, 4, 192, 0, 2, 1};
         return r;
       }()},
      {"TargetName cut",
       [] {
         RecordSpec r;
         r.name = "example.com";
         r.type = kTypeSvcb;
         r.rdata = {0, 1, 3, 'c', 'o'};
         return r;
       }()},
      {"no priority",
       [] {
         RecordSpec r;
         r.name = "example.com";
         r.type = kTypeHttps;
         r.rdata = {0};
         return r;
       }()},
  };
  for (const auto& [what, rec] : bad) {
    auto spec = response("example.com", kTypeHttps);
    spec.answers = {rec, aRecord("example.com", ip4("192.0.2.9"))};
    const Answer a = parseOk(buildResponse(spec));
    EXPECT_EQ(lines(a), (Lines{"example.com 192.0.2.9 300"})) << what;
    EXPECT_EQ(a.skippedCount(Skip::kBadRdata), 1u) << what;
  }
}

TEST(DnsSvcb, UnknownKeysInOrderAreFine) {
  // mandatory(0)=alpn, alpn(1)="h2", port(3)=443, ipv4hint(4), ech(5), ipv6hint(6), key 65000.
  const Buf params = {0, 0, 0, 2,    0, 1, 0, 1,  0,    3,    2,    'h',  '2', 0, 3,
                      0, 2, 1, 0xbb, 0, 4, 0, 4,  192,  0,    2,    1,    0,   5, 0,
                      3, 1, 2, 3,    0, 6, 0, 16, 0x20, 1,    0xd,  0xb8, 0,   0, 0,
                      0, 0, 0, 0,    0, 0, 0, 0,  2,    0xfd, 0xe8, 0,    0};
  auto spec = response("example.com", kTypeHttps);
  spec.answers = {rawHttps(params)};
  const Answer a = parseOk(buildResponse(spec));
  EXPECT_EQ(lines(a), (Lines{"example.com 192.0.2.1 300", "example.com 2001:db8::2 300"}));
}

TEST(DnsSvcb, RdataMatchesRfc9460Example) {
  // RFC 9460 D.2, "ServiceMode with IPv4 and IPv6 hints" shape: priority 1, target
  // "foo.example.com", ipv4hint 192.0.2.1, ipv6hint 2001:db8::1.
  SvcbSpec s;
  s.target = "foo.example.com";
  s.ipv4hint = {ip4("192.0.2.1")};
  s.ipv6hint = {ip6("2001:db8::1")};
  const Buf expected = {0,   1,   3, 'f', 'o', 'o', 7,  'e',  'x', 'a', 'm',  'p',
                        'l', 'e', 3, 'c', 'o', 'm', 0,  0,    4,   0,   4,    192,
                        0,   2,   1, 0,   6,   0,   16, 0x20, 1,   0xd, 0xb8, 0,
                        0,   0,   0, 0,   0,   0,   0,  0,    0,   0,   1};
  EXPECT_EQ(svcbRdata(s), expected);
}

}  // namespace
}  // namespace cw::dns
