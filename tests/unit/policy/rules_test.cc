// The language added with DNS snooping: hosts, inbound rules, lifetimes, parseRule.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/policy.h"

namespace cw::policy {
namespace {

Cidr cidr(const char* s) { return *Cidr::parse(s); }
HostPattern exact(const char* n) { return HostPattern{n, false}; }
HostPattern wild(const char* n) { return HostPattern{n, true}; }

constexpr std::int64_t kDec2026 = 1796119200000;  // 2026-12-01T10:00:00Z

Rule one(const std::string& text, std::int64_t now_ms = 0) {
  auto r = parsePolicy(text, "f.toml", 1, now_ms);
  EXPECT_TRUE(r) << r.error().str();
  if (!r || r->rules.size() != 1) {
    ADD_FAILURE() << "expected one rule";
    return Rule{};
  }
  return r->rules[0];
}

TEST(ParseHosts, Forms) {
  struct Case {
    const char* text;
    std::vector<HostPattern> want;
  };
  const Case cases[] = {
      {"hosts = \"api.example.org\"", {exact("api.example.org")}},
      {"hosts = \"API.Example.ORG.\"", {exact("api.example.org")}},
      {"hosts = [\"*.example.org\", \"example.org\"]", {wild("example.org"), exact("example.org")}},
      {"hosts = \"*.dev\"", {wild("dev")}},
      {"hosts = \"localhost\"", {exact("localhost")}},
      {"hosts = \"_sip._tcp.example.org\"", {exact("_sip._tcp.example.org")}},
      {"hosts = \"xn--bcher-kva.example\"", {exact("xn--bcher-kva.example")}},
      {"hosts = \"a-b.1x.example\"", {exact("a-b.1x.example")}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    Rule r = one(std::string("[[allow]]\n") + c.text + "\n");
    EXPECT_EQ(r.match.hosts, c.want);
    EXPECT_TRUE(r.match.addresses.empty());
  }
  EXPECT_EQ(wild("example.org").str(), "*.example.org");
  EXPECT_EQ(exact("example.org").str(), "example.org");
}

TEST(ParseHosts, PatternLimits) {
  std::string label63(63, 'a');
  EXPECT_TRUE(parseHostPattern(label63 + ".org"));
  EXPECT_FALSE(parseHostPattern(label63 + "a.org"));
  std::string name253;
  while (name253.size() < 250) name253 += "abcdefghi.";
  name253 += "org";
  name253 = name253.substr(name253.size() - 253);
  if (name253.front() == '.') name253[0] = 'x';
  ASSERT_EQ(name253.size(), 253u);
  EXPECT_TRUE(parseHostPattern(name253)) << name253;
  EXPECT_TRUE(parseHostPattern(name253 + "."));  // the root dot does not count
  EXPECT_FALSE(parseHostPattern("x" + name253));
  EXPECT_FALSE(parseHostPattern("*." + name253));
  const char* bad[] = {"", ".", "*", "*.", "a..b", ".a.b", "a.*.b", "*a.b", "**.b", "a.b*",
                       "*.*.b", "-a.b", "a-.b", "a b.c", "a/b", "10.0.0.1", "a.123",
                       "caf\xc3\xa9.fr", "::1", "a.b.."};
  for (const char* b : bad) EXPECT_FALSE(parseHostPattern(b)) << b;
}

TEST(ParseInbound, FromAndLocalPorts) {
  Rule r = one("[[allow]]\ndirection = \"inbound\"\nproto = \"tcp\"\nfrom = [\"10.0.0.0/8\", "
               "\"::1\"]\nports = 8080\n");
  EXPECT_EQ(r.match.direction, Direction::kInbound);
  EXPECT_EQ(r.match.addresses, (std::vector<Cidr>{cidr("10.0.0.0/8"), cidr("::1")}));
  EXPECT_EQ(r.match.ports, (std::vector<PortRange>{{8080, 8080}}));
  Rule any = one("[[deny]]\ndirection = \"inbound\"\n");
  EXPECT_EQ(any.match.direction, Direction::kInbound);
  EXPECT_TRUE(any.match.addresses.empty());
}

TEST(ParseLifetime, Keys) {
  struct Case {
    const char* what;
    const char* keys;
    Lifetime want;
  };
  const Case cases[] = {
      {"none", "", Lifetime{}},
      {"for minutes", "for = \"15m\"", Lifetime{15 * 60000, 0, 0, false}},
      {"for combined", "for = \"1d2h3m4s\"", Lifetime{93784000, 0, 0, false}},
      {"for 90m", "for = \"90m\"", Lifetime{5400000, 0, 0, false}},
      {"until datetime", "until = 2026-12-01T10:00:00Z", Lifetime{0, kDec2026, 0, false}},
      {"until offset", "until = 2026-12-01T12:00:00+02:00", Lifetime{0, kDec2026, 0, false}},
      {"until fraction", "until = 2026-12-01T10:00:00.250Z", Lifetime{0, kDec2026 + 250, 0, false}},
      {"until string", "until = \"2026-12-01T10:00:00Z\"", Lifetime{0, kDec2026, 0, false}},
      {"until string offset", "until = \"2026-12-01T05:30:00-04:30\"",
       Lifetime{0, kDec2026, 0, false}},
      {"until exit", "until = \"exit\"", Lifetime{0, 0, 0, true}},
      {"until both", "until = [\"exit\", 2026-12-01T10:00:00Z]", Lifetime{0, kDec2026, 0, true}},
      {"until earliest", "until = [2027-01-01T00:00:00Z, 2026-12-01T10:00:00Z]",
       Lifetime{0, kDec2026, 0, false}},
      {"connections", "connections = 5", Lifetime{0, 0, 5, false}},
      {"connections max", "connections = 1000000", Lifetime{0, 0, 1000000, false}},
      {"all", "for = \"1h\"\nuntil = [\"exit\", 2026-12-01T10:00:00Z]\nconnections = 1",
       Lifetime{3600000, kDec2026, 1, true}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    Rule r = one(std::string("[[allow]]\n") + c.keys + "\n");
    EXPECT_EQ(r.lifetime, c.want);
    EXPECT_EQ(r.lifetime.forever(), c.want == Lifetime{});
  }
  // Not yet passed: accepted with a clock before it, as without one.
  EXPECT_EQ(one("[[allow]]\nuntil = 2026-12-01T10:00:00Z\n", kDec2026 - 1).lifetime.until_ms,
            kDec2026);
}

TEST(ParseLifetime, ResolveFor) {
  Rule r;
  r.lifetime.for_ms = 60000;
  resolveLifetime(r, 1000);
  EXPECT_EQ(r.lifetime, (Lifetime{0, 61000, 0, false}));
  r.lifetime = Lifetime{60000, 30000, 3, true};  // until comes first
  resolveLifetime(r, 1000);
  EXPECT_EQ(r.lifetime, (Lifetime{0, 30000, 3, true}));
  r.lifetime = Lifetime{60000, 90000, 0, false};  // for comes first
  resolveLifetime(r, 1000);
  EXPECT_EQ(r.lifetime, (Lifetime{0, 61000, 0, false}));
  r.lifetime = Lifetime{0, 5, 0, false};  // nothing relative: untouched
  resolveLifetime(r, 1000);
  EXPECT_EQ(r.lifetime, (Lifetime{0, 5, 0, false}));
  EXPECT_TRUE(r.lifetime.expiredAt(5));
  EXPECT_FALSE(r.lifetime.expiredAt(4));
  EXPECT_FALSE(Lifetime{}.expiredAt(1));

  std::vector<Rule> rules(2);
  rules[1].lifetime.for_ms = 1000;
  resolveLifetimes(rules, 7);
  EXPECT_TRUE(rules[0].lifetime.forever());
  EXPECT_EQ(rules[1].lifetime.until_ms, 1007);
}

TEST(ParseDurations, ParseAndFormat) {
  const std::pair<const char*, std::int64_t> good[] = {
      {"1s", 1000}, {"15m", 900000}, {"1h30m", 5400000}, {"90m", 5400000}, {"2d", 172800000},
      {"1d1s", 86401000}, {"3650d", kMaxForMs}, {"0h1m", 60000}, {"007s", 7000}};
  for (const auto& [text, ms] : good) {
    auto r = parseDuration(text);
    ASSERT_TRUE(r) << text << ": " << r.error();
    EXPECT_EQ(*r, ms) << text;
  }
  const char* bad[] = {"", "15", "m", "1y", "1ms", "1m1h", "1h1h", "0s", "0d0h", "3650d1s",
                       "-1m", "1.5h", "1h 30m", " 1h", "1H", "99999999999999d"};
  for (const char* b : bad) EXPECT_FALSE(parseDuration(b)) << b;
  EXPECT_EQ(formatDuration(5400000), "1h30m");
  EXPECT_EQ(formatDuration(86401000), "1d1s");
  EXPECT_EQ(formatDuration(1500), "2s");  // rounds sub-seconds up
  EXPECT_EQ(formatDuration(kMaxForMs), "3650d");
}

TEST(ParseTimestamps, ParseAndFormat) {
  const std::pair<const char*, std::int64_t> good[] = {
      {"2026-12-01T10:00:00Z", kDec2026},
      {"2026-12-01t10:00:00z", kDec2026},
      {"2026-12-01 10:00:00Z", kDec2026},
      {"2026-12-01T10:00:00.999999999Z", kDec2026 + 999},
      {"2026-12-01T11:00:00+01:00", kDec2026},
      {"1970-01-01T00:00:00.001Z", 1},
      {"2024-02-29T00:00:00Z", 1709164800000},
      {"2000-03-01T00:00:00Z", 951868800000},
      {"9999-12-31T23:59:59Z", 253402300799000},
  };
  for (const auto& [text, ms] : good) {
    auto r = parseTimestamp(text);
    ASSERT_TRUE(r) << text << ": " << r.error();
    EXPECT_EQ(*r, ms) << text;
  }
  const char* bad[] = {"", "2026-12-01", "2026-12-01T10:00:00", "2026-13-01T00:00:00Z",
                       "2023-02-29T00:00:00Z", "2026-12-01T24:00:00Z", "2026-12-01T10:60:00Z",
                       "2026-12-01T10:00:00+24:00", "2026-12-01T10:00:00.Z", "tomorrow",
                       "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2026-12-01T10:00:00Zx",
                       "26-12-01T10:00:00Z", "2026-12-01T10:00Z"};
  for (const char* b : bad) EXPECT_FALSE(parseTimestamp(b)) << b;
  EXPECT_EQ(formatTimestamp(kDec2026), "2026-12-01T10:00:00Z");
  EXPECT_EQ(formatTimestamp(kDec2026 + 250), "2026-12-01T10:00:00.250Z");
  EXPECT_EQ(formatTimestamp(1709164800000), "2024-02-29T00:00:00Z");
  EXPECT_EQ(formatTimestamp(253402300799999), "9999-12-31T23:59:59.999Z");
  for (std::int64_t t = 1; t < 253402300799999; t = t * 3 + 12345) {
    auto back = parseTimestamp(formatTimestamp(t));
    ASSERT_TRUE(back) << t;
    EXPECT_EQ(*back, t);
  }
}

struct ErrorCase {
  const char* what;
  const char* text;
  std::uint32_t line;
  std::uint32_t column;
  const char* reason_has;
};

TEST(ParseNewKeys, Errors) {
  const ErrorCase cases[] = {
      {"wildcard in the middle", "[[allow]]\nhosts = \"a.*.example.org\"\n", 2, 9,
       "hosts: host \"a.*.example.org\": '*' is allowed only as the whole first label"},
      {"wildcard glued", "[[allow]]\nhosts = [\"ok.org\", \"*x.org\"]\n", 2, 20,
       "'*' is allowed only as the whole first label"},
      {"star alone", "[[allow]]\nhosts = \"*\"\n", 2, 9, "would match every name; leave hosts out"},
      {"host is an address", "[[allow]]\nhosts = \"10.0.0.1\"\n", 2, 9, "looks like an address"},
      {"host empty label", "[[allow]]\nhosts = \"a..org\"\n", 2, 9, "empty label"},
      {"host bad char", "[[allow]]\nhosts = \"a b.org\"\n", 2, 9, "a character other than"},
      {"host label too long",
       "[[allow]]\nhosts = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org\"\n", 2,
       9, "longer than 63"},
      {"hosts empty", "[[allow]]\nhosts = []\n", 2, 9, "hosts = [] is empty"},
      {"hosts wrong type", "[[allow]]\nhosts = 5\n", 2, 9, "hosts must be a string or an array"},
      {"hosts int item", "[[allow]]\nhosts = [5]\n", 2, 10, "hosts must hold strings"},
      {"hosts and to", "[[allow]]\nhosts = \"a.org\"\nto = \"10.0.0.0/8\"\n", 3, 1,
       "hosts and to in [[allow]]: a rule names either host names or addresses"},
      {"to and hosts", "[[allow]]\nto = \"10.0.0.0/8\"\n\nhosts = \"a.org\"\n", 4, 1,
       "hosts and to in [[allow]]"},
      {"from on outbound", "[[allow]]\nproto = \"tcp\"\nfrom = \"10.0.0.0/8\"\n", 3, 1,
       "from in [[allow]]: from is for inbound rules"},
      {"to on inbound", "[[allow]]\ndirection = \"inbound\"\nto = \"10.0.0.0/8\"\n", 3, 1,
       "to in an inbound [[allow]]: inbound rules name the connecting side with from"},
      {"hosts on inbound", "[[rule]]\naction = \"deny\"\nhosts = \"a.org\"\ndirection = \"inbound\"\n",
       3, 1, "hosts in an inbound [[rule]]"},
      {"bad from", "[[allow]]\ndirection = \"inbound\"\nfrom = \"a.org\"\n", 3, 8,
       "from: \"a.org\" is not an IPv4/IPv6 address"},
      {"from host bits", "[[allow]]\ndirection = \"inbound\"\nfrom = \"10.0.0.1/8\"\n", 3, 8,
       "from: \"10.0.0.1/8\" has host bits set"},
      {"duration no unit", "[[allow]]\nfor = \"15\"\n", 2, 7, "for: \"15\" ends without a unit"},
      {"duration bad unit", "[[allow]]\nfor = \"1y\"\n", 2, 7, "for: \"1y\" is not a duration"},
      {"duration order", "[[allow]]\nfor = \"30m1h\"\n", 2, 7, "out of order"},
      {"duration zero", "[[allow]]\nfor = \"0s\"\n", 2, 7, "is zero"},
      {"duration too long", "[[allow]]\nfor = \"3651d\"\n", 2, 7, "too long; the longest is 3650d"},
      {"duration int", "[[allow]]\nfor = 15\n", 2, 7, "for must be a string (a duration"},
      {"until local", "[[allow]]\nuntil = 2026-12-01T10:00:00\n", 2, 9, "until has no time zone"},
      {"until date", "[[allow]]\nuntil = 2026-12-01\n", 2, 9,
       "until must be a date and time with a time zone"},
      {"until int", "[[allow]]\nuntil = 5\n", 2, 9, "not an integer"},
      {"until word", "[[allow]]\nuntil = \"tomorrow\"\n", 2, 9,
       "until: \"tomorrow\" is not an RFC 3339 date and time"},
      {"until string local", "[[allow]]\nuntil = \"2026-12-01T10:00:00\"\n", 2, 9, "no time zone"},
      {"until feb 30", "[[allow]]\nuntil = \"2026-02-30T10:00:00Z\"\n", 2, 9, "not an RFC 3339"},
      {"until 1960", "[[allow]]\nuntil = 1960-01-01T00:00:00Z\n", 2, 9, "before 1970"},
      {"until empty array", "[[allow]]\nuntil = []\n", 2, 9, "until = [] is empty"},
      {"until nested", "[[allow]]\nuntil = [[\"exit\"]]\n", 2, 10, "must not nest"},
      {"until bad in array", "[[allow]]\nuntil = [\"exit\", \"never\"]\n", 2, 18, "\"never\""},
      {"connections zero", "[[allow]]\nconnections = 0\n", 2, 15,
       "connections = 0 is out of range; write 1-1000000"},
      {"connections big", "[[allow]]\nconnections = 1000001\n", 2, 15, "out of range"},
      {"connections negative", "[[allow]]\nconnections = -3\n", 2, 15, "out of range"},
      {"connections string", "[[allow]]\nconnections = \"5\"\n", 2, 15,
       "connections must be an integer"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto r = parsePolicy(c.text, "app.toml");
    ASSERT_FALSE(r) << c.what << " parsed";
    const PolicyError& e = r.error();
    EXPECT_EQ(e.line, c.line) << e.str();
    EXPECT_EQ(e.column, c.column) << e.str();
    EXPECT_NE(e.reason.find(c.reason_has), std::string::npos) << e.str();
  }
}

TEST(ParseNewKeys, UntilInThePast) {
  const char* text = "[[allow]]\nuntil = [\"exit\", 2026-12-01T10:00:00Z]\n";
  EXPECT_TRUE(parsePolicy(text, "a.toml", 1, 0));  // reloading stored text: no clock
  auto r = parsePolicy(text, "a.toml", 1, kDec2026);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().str(),
            "a.toml:2:18: until: 2026-12-01T10:00:00Z is in the past (now is "
            "2026-12-01T10:00:00Z)");
  auto s = parseRule("[[allow]]\nuntil = \"2026-12-01T10:00:00Z\"\n", "api", 3, kDec2026 + 1);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().reason.find("in the past"), std::string::npos);
}

TEST(ParseRule, OneStoredRule) {
  auto r = parseRule("[[rule]]\naction = \"reject\"\nhosts = \"*.ads.example\"\n", "store:17", 42);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->id, 42u);
  EXPECT_EQ(r->origin, "store:17");
  EXPECT_EQ(r->action, Action::kReject);
  EXPECT_EQ(r->match.hosts, std::vector<HostPattern>{wild("ads.example")});
  auto inl = parseRule("allow = [{ proto = \"udp\", ports = 53 }]\n", "api");
  ASSERT_TRUE(inl) << inl.error().str();
  EXPECT_EQ(inl->match.protocol, Protocol::kUdp);

  const ErrorCase bad[] = {
      {"empty", "", 1, 1, "exactly one [[allow]], [[deny]] or [[rule]] table; found 0"},
      {"two", "[[allow]]\n[[deny]]\n", 2, 1, "found 2"},
      {"top-level key", "default = \"allow\"\n[[allow]]\n", 1, 1, "unexpected key \"default\""},
      {"bad rule", "[[allow]]\nports = 0\n", 2, 9, "out of range"},
  };
  for (const auto& c : bad) {
    SCOPED_TRACE(c.what);
    auto e = parseRule(c.text, "api");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().file, "api");
    EXPECT_EQ(e.error().line, c.line) << e.error().str();
    EXPECT_EQ(e.error().column, c.column) << e.error().str();
    EXPECT_NE(e.error().reason.find(c.reason_has), std::string::npos) << e.error().str();
  }
}

}  // namespace
}  // namespace cw::policy
