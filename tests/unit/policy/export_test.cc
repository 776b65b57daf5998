// exportPolicy / exportRule: the canonical form, and the round trip as a property.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "policy/policy.h"

namespace cw::policy {
namespace {

// Ids and origins are not part of the text.
AppPolicy withoutIds(AppPolicy p) {
  p.origin.clear();
  for (Rule& r : p.rules) {
    r.id = 0;
    r.origin.clear();
  }
  return p;
}

bool samePolicy(const AppPolicy& a, const AppPolicy& b) {
  AppPolicy x = withoutIds(a), y = withoutIds(b);
  return x.app == y.app && x.default_action == y.default_action && x.env == y.env &&
         x.rules == y.rules;
}

TEST(ExportPolicy, CanonicalForm) {
  auto p = parsePolicy(R"(default = "reject"
app = "browser"
[[rule]]
comment = "tab:	quote:\" backslash:\\ caf\u00e9 \u2014 \u65e5"
action = "reject"
ports = [443, "8000-8100"]
proto = "tcp"
hosts = ["*.Example.org.", "example.org"]
connections = 3
until = ["exit", 2026-12-01T12:00:00.5+02:00]
for = "90m"
[[allow]]
direction = "inbound"
from = "10.0.0.0/8"
ports = "22"
[[deny]]
to = ["192.168.0.0/16", "2001:db8::/32"]
until = "exit"
)",
                       "b.toml");
  ASSERT_TRUE(p) << p.error().str();
  const char* want = R"(app = "browser"
default = "reject"
env = "default"

[[rule]]
action = "reject"
proto = "tcp"
hosts = ["*.example.org", "example.org"]
ports = [443, "8000-8100"]
for = "1h30m"
until = ["exit", 2026-12-01T10:00:00.500Z]
connections = 3
comment = "tab:\tquote:\" backslash:\\ caf\u00E9 — 日"

[[allow]]
direction = "inbound"
from = "10.0.0.0/8"
ports = 22

[[deny]]
to = ["192.168.0.0/16", "2001:db8::/32"]
until = "exit"
)";
  EXPECT_EQ(exportPolicy(*p), want);
  auto back = parsePolicy(want, "x.toml");
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_TRUE(samePolicy(*p, *back));
  EXPECT_EQ(exportRule(p->rules[1]), "[[allow]]\ndirection = \"inbound\"\nfrom = \"10.0.0.0/8\"\nports = 22\n");
  EXPECT_EQ(exportPolicy(AppPolicy{}), "default = \"deny\"\nenv = \"default\"\n");
}

TEST(ExportPolicy, CommentsTomlCannotCarryRaw) {
  Rule r;
  r.action = Action::kAllow;
  static const char kRaw[] = "nul\0 del\x7f bell\x07 cr\r lf\n bad\xff\xc3 surrogate\xed\xa0\x80";
  r.comment = std::string(kRaw, sizeof kRaw - 1);
  std::string text = exportRule(r);
  EXPECT_EQ(text,
            "[[allow]]\ncomment = \"nul\\u0000 del\\u007F bell\\u0007 cr\\r lf\\n "
            "bad\xef\xbf\xbd\xef\xbf\xbd surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"\n");
  auto back = parseRule(text, "api");
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(exportRule(*back), text);
}

// --- the round trip as a property over random policies ---------------------------------

class Gen {
 public:
  explicit Gen(std::uint32_t seed) : rng_(seed) {}
  std::uint32_t pick(std::uint32_t n) { return std::uniform_int_distribution<std::uint32_t>(0, n - 1)(rng_); }
  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_);
  }

  std::string label() {
    static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string l;
    std::size_t n = 1 + pick(pick(4) == 0 ? 63 : 8);
    for (std::size_t i = 0; i < n; ++i) l += kChars[pick(sizeof kChars - 1)];
    if (l.front() == '-') l.front() = 'a';
    if (l.back() == '-') l.back() = 'z';
    return l;
  }
  HostPattern host() {
    HostPattern h;
    std::size_t labels = 1 + pick(4);
    for (std::size_t i = 0; i < labels; ++i) {
      if (i != 0) h.name += '.';
      h.name += label();
    }
    if (h.name.size() > 200) h.name = h.name.substr(h.name.size() - 200);
    while (!h.name.empty() && (h.name.front() == '.' || h.name.front() == '-')) h.name.erase(0, 1);
    if (h.name.empty() || h.name.back() == '-') h.name += 'x';
    h.name += ".x";  // the last label is never all digits
    h.name += label().substr(0, 60);
    if (h.name.back() == '-') h.name += 'q';
    h.wildcard = pick(2) == 0;
    return h;
  }
  Cidr cidr() {
    static const char* kBases[] = {"10.1.2.3", "192.168.77.1", "0.0.0.0", "2001:db8:aa::7",
                                   "::1", "fe80::1234:5678"};
    IpAddr a = *IpAddr::parse(kBases[pick(6)]);
    for (int i = 0; i < 3; ++i) a.b[13 + pick(3)] = static_cast<std::uint8_t>(pick(256));
    unsigned max = a.is_v4() ? 32 : 128;
    std::string text = a.str();
    text += '/';
    text += std::to_string(pick(max + 1));
    return *Cidr::parse(text);
  }
  std::string text() {
    // ASCII, escapes, controls and Unicode, including code points toml++ 3.3 cannot take raw.
    static const char* kPieces[] = {"a",  "Z",      " ",          "\"",           "\\",
                                    "\t", "\n",     "\r",         "\x01",         "\x7f",
                                    "#",  "'''",    "\"\"\"",     "\xc3\xa9",     "\xe2\x80\x94",
                                    "\xe6\x97\xa5", "\xf0\x9f\x94\xa5", "\xd0\x96", "\xe3\x80\x80",
                                    "\xef\xbb\xbf", "\xef\xbf\xbd", "\xc2\xa0", "=", "[[allow]]"};
    std::string s;
    std::size_t n = pick(12);
    for (std::size_t i = 0; i < n; ++i) s += kPieces[pick(sizeof kPieces / sizeof *kPieces)];
    return s;
  }
  Rule rule() {
    Rule r;
    r.action = static_cast<Action>(pick(3));
    r.match.protocol = static_cast<Protocol>(pick(4));
    r.match.direction = pick(4) == 0 ? Direction::kInbound : Direction::kOutbound;
    bool hosts = r.match.direction == Direction::kOutbound && pick(2) == 0;
    std::size_t n = pick(3) == 0 ? 0 : 1 + pick(3);
    for (std::size_t i = 0; i < n; ++i) {
      if (hosts) {
        r.match.hosts.push_back(host());
      } else {
        r.match.addresses.push_back(cidr());
      }
    }
    if (r.match.protocol != Protocol::kIcmp && pick(2) == 0) {
      std::size_t np = 1 + pick(3);
      for (std::size_t i = 0; i < np; ++i) {
        auto lo = static_cast<std::uint16_t>(1 + pick(65535));
        auto hi = pick(2) == 0 ? lo : static_cast<std::uint16_t>(lo + pick(65536u - lo));
        r.match.ports.push_back({lo, hi});
      }
    }
    if (pick(3) == 0) r.lifetime.for_ms = between(1, kMaxForMs / 1000) * 1000;
    if (pick(3) == 0) r.lifetime.until_ms = between(1, 253402300799999);
    if (pick(3) == 0) r.lifetime.until_exit = true;
    if (pick(3) == 0) r.lifetime.connections = static_cast<std::uint32_t>(between(1, kMaxConnections));
    if (pick(2) == 0) r.comment = text();
    return r;
  }
  AppPolicy policy() {
    AppPolicy p;
    static const char* kApps[] = {"", "browser", "a.b_c-1", "x"};
    static const char* kEnvs[] = {"default", "vpn-1", "home"};
    p.app = kApps[pick(4)];
    p.env = kEnvs[pick(3)];
    p.default_action = static_cast<DefaultAction>(pick(3));
    std::size_t n = pick(12);
    for (std::size_t i = 0; i < n; ++i) p.rules.push_back(rule());
    return p;
  }

 private:
  std::mt19937 rng_;
};

TEST(ExportPolicy, RoundTripProperty) {
  Gen gen(20260101);
  for (int i = 0; i < 3000; ++i) {
    AppPolicy p = gen.policy();
    std::string once = exportPolicy(p);
    auto parsed = parsePolicy(once, "e.toml", 1);
    ASSERT_TRUE(parsed) << parsed.error().str() << "\n" << once;
    ASSERT_TRUE(samePolicy(p, *parsed)) << once << "\n---\n" << exportPolicy(*parsed);
    ASSERT_EQ(exportPolicy(*parsed), once);
    for (const Rule& r : p.rules) {
      std::string text = exportRule(r);
      auto back = parseRule(text, "store:1", 9);
      ASSERT_TRUE(back) << back.error().str() << "\n" << text;
      Rule want = r;
      want.id = 9;
      want.origin = "store:1";
      ASSERT_EQ(*back, want) << text;
      ASSERT_EQ(exportRule(*back), text);
    }
  }
}

// After resolveLifetime the text carries the absolute time and no `for`.
TEST(ExportPolicy, ResolvedLifetimeExportsAbsoluteTime) {
  auto r = parseRule("[[allow]]\nhosts = \"api.example.org\"\nfor = \"15m\"\nuntil = \"exit\"\n", "api");
  ASSERT_TRUE(r);
  resolveLifetime(*r, 1796119200000);
  EXPECT_EQ(exportRule(*r),
            "[[allow]]\nhosts = \"api.example.org\"\nuntil = [\"exit\", 2026-12-01T10:15:00Z]\n");
}

}  // namespace
}  // namespace cw::policy
