#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "policy/policy.h"

namespace cw::policy {
namespace {

std::unique_ptr<Matcher> compile(const char* text) {
  auto r = parsePolicy(text, "t.toml");
  EXPECT_TRUE(r) << r.error().str();
  return std::make_unique<Matcher>(r ? std::move(r).value() : AppPolicy{});
}

ConnKey key(Protocol proto, const char* addr, std::uint16_t port = 0) {
  ConnKey k;
  k.protocol = proto;
  k.remote = *IpAddr::parse(addr);
  k.remote_port = port;
  return k;
}

// The comment of the deciding rule, or "default".
std::string decidedBy(const Matcher& m, const ConnKey& k) {
  Verdict v = m.decide(k);
  return v.rule == nullptr ? "default" : v.rule->comment;
}

struct Case {
  const char* what;
  const char* policy;
  ConnKey key;
  const char* want;  // comment of the winning rule, or "default"
};

constexpr Protocol kTcp = Protocol::kTcp;
constexpr Protocol kUdp = Protocol::kUdp;
constexpr Protocol kIcmp = Protocol::kIcmp;

TEST(Matcher, Precedence) {
  const Case cases[] = {
      {"longest prefix beats a narrower port",
       R"([[allow]]
to = "10.0.0.0/8"
ports = 80
comment = "short"
[[deny]]
to = "10.1.0.0/16"
comment = "long")",
       key(kTcp, "10.1.2.3", 80), "long"},
      {"any address ranks below 0.0.0.0/0",
       R"([[deny]]
ports = 80
proto = "tcp"
comment = "anywhere"
[[allow]]
to = "0.0.0.0/0"
comment = "all v4")",
       key(kTcp, "8.8.8.8", 80), "all v4"},
      {"single port beats a range",
       R"([[deny]]
ports = "1-1000"
comment = "range"
[[allow]]
ports = 443
comment = "single")",
       key(kTcp, "1.1.1.1", 443), "single"},
      {"narrow range beats a wide range",
       R"([[deny]]
ports = "1-1000"
comment = "wide"
[[allow]]
ports = "400-500"
comment = "narrow")",
       key(kTcp, "1.1.1.1", 443), "narrow"},
      {"a range beats any port",
       R"([[deny]]
proto = "tcp"
comment = "any port"
[[allow]]
ports = "1-65535"
comment = "full range")",
       key(kTcp, "1.1.1.1", 5), "full range"},
      {"narrowest of a rule's own ranges counts",
       R"([[deny]]
ports = ["400-500"]
comment = "medium"
[[allow]]
ports = ["1-1000", 443]
comment = "has single")",
       key(kTcp, "1.1.1.1", 443), "has single"},
      {"named protocol beats any",
       R"([[deny]]
ports = 53
comment = "any proto"
[[allow]]
proto = "udp"
ports = 53
comment = "udp")",
       key(kUdp, "9.9.9.9", 53), "udp"},
      {"deny beats allow",
       R"([[allow]]
proto = "tcp"
ports = 22
comment = "allow"
[[deny]]
proto = "tcp"
ports = 22
comment = "deny")",
       key(kTcp, "1.1.1.1", 22), "deny"},
      {"reject beats allow",
       R"([[allow]]
comment = "allow"
[[rule]]
action = "reject"
comment = "reject")",
       key(kTcp, "1.1.1.1", 22), "reject"},
      {"lower id wins between deny and reject",
       R"([[rule]]
action = "reject"
comment = "first"
[[deny]]
comment = "second")",
       key(kTcp, "1.1.1.1", 22), "first"},
      {"lower id wins between equals",
       R"([[allow]]
to = "1.1.1.1"
comment = "first"
[[allow]]
to = "1.1.1.1"
comment = "second")",
       key(kTcp, "1.1.1.1", 22), "first"},
      {"deepest node with a match wins over a shallower better rank",
       R"([[allow]]
to = "10.1.0.0/16"
proto = "udp"
comment = "deep udp only"
[[deny]]
to = "10.0.0.0/8"
proto = "tcp"
ports = 80
comment = "shallow exact")",
       key(kTcp, "10.1.0.1", 80), "shallow exact"},
      {"ports never match icmp",
       R"([[allow]]
ports = 80
comment = "ports"
[[deny]]
to = "0.0.0.0/0"
proto = "tcp"
comment = "tcp")",
       key(kIcmp, "1.1.1.1"), "default"},
      {"any without ports matches icmp",
       R"([[allow]]
comment = "any")",
       key(kIcmp, "1.1.1.1"), "any"},
      {"icmp rule matches icmp",
       R"([[allow]]
proto = "icmp"
to = "1.1.1.0/24"
comment = "icmp")",
       key(kIcmp, "1.1.1.1"), "icmp"},
      {"icmp rule does not match tcp",
       R"([[allow]]
proto = "icmp"
comment = "icmp")",
       key(kTcp, "1.1.1.1", 80), "default"},
      {"tcp rule does not match udp",
       R"([[allow]]
proto = "tcp"
comment = "tcp")",
       key(kUdp, "1.1.1.1", 80), "default"},
      {"port outside range",
       R"([[allow]]
ports = "8000-8100"
comment = "r")",
       key(kTcp, "1.1.1.1", 8101), "default"},
      {"port at range edges",
       R"([[allow]]
ports = "8000-8100"
comment = "r")",
       key(kTcp, "1.1.1.1", 8100), "r"},
      {"address outside prefix",
       R"([[allow]]
to = "10.0.0.0/8"
comment = "ten")",
       key(kTcp, "11.0.0.1", 80), "default"},
      {"v6 prefix",
       R"([[allow]]
to = "2001:db8::/32"
comment = "doc"
[[deny]]
to = "2001:db8:1::/48"
ports = 443
comment = "doc-1")",
       key(kTcp, "2001:db8:1::5", 443), "doc-1"},
      {"v6 prefix, other port falls back to shorter prefix",
       R"([[allow]]
to = "2001:db8::/32"
comment = "doc"
[[deny]]
to = "2001:db8:1::/48"
ports = 443
comment = "doc-1")",
       key(kTcp, "2001:db8:1::5", 80), "doc"},
      {"::/0 does not match IPv4",
       R"([[allow]]
to = "::/0"
comment = "all v6")",
       key(kTcp, "10.0.0.1", 80), "default"},
      {"::/80 does not match IPv4 even though ::ffff:0:0/96 lies under it",
       R"([[allow]]
to = "::/80"
comment = "v6")",
       key(kTcp, "10.0.0.1", 80), "default"},
      {"::/0 matches IPv6 and beats no address",
       R"([[deny]]
comment = "anywhere"
[[allow]]
to = "::/0"
comment = "all v6")",
       key(kTcp, "2001:db8::1", 80), "all v6"},
      {"0.0.0.0/0 does not match IPv6",
       R"([[allow]]
to = "0.0.0.0/0"
comment = "all v4")",
       key(kTcp, "::1", 80), "default"},
      {"v6 loopback host",
       R"([[allow]]
to = "::1"
proto = "udp"
ports = 53
comment = "lo")",
       key(kUdp, "::1", 53), "lo"},
      {"full-length v4",
       R"([[allow]]
to = ["10.99.0.2", "10.99.0.0/24"]
ports = 80
comment = "host"
[[deny]]
to = "10.99.0.0/24"
ports = 80
comment = "net")",
       key(kTcp, "10.99.0.2", 80), "host"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto m = compile(c.policy);
    ASSERT_FALSE(m->policy().rules.empty());
    EXPECT_EQ(decidedBy(*m, c.key), c.want);
  }
}

// The worked example in docs/policy.md.
TEST(Matcher, DocumentedExample) {
  auto m = compile(R"(default = "reject"
[[allow]]
to = "10.0.0.0/8"
comment = "ten"
[[deny]]
to = "10.1.0.0/16"
ports = 22
comment = "ssh")");
  EXPECT_EQ(decidedBy(*m, key(kTcp, "10.1.0.5", 22)), "ssh");
  EXPECT_EQ(decidedBy(*m, key(kTcp, "10.1.0.5", 80)), "ten");
  EXPECT_EQ(decidedBy(*m, key(kTcp, "10.2.0.1", 22)), "ten");
  EXPECT_EQ(m->decide(key(kTcp, "11.0.0.1", 22)).action, Action::kReject);
}

TEST(Matcher, DefaultFallback) {
  const std::pair<const char*, Action> cases[] = {
      {"default = \"allow\"", Action::kAllow},
      {"default = \"deny\"", Action::kDeny},
      {"default = \"reject\"", Action::kReject},
  };
  for (const auto& [text, want] : cases) {
    auto m = compile(text);
    Verdict v = m->decide(key(kTcp, "1.2.3.4", 80));
    EXPECT_EQ(v.rule, nullptr);
    EXPECT_EQ(v.action, want);
    EXPECT_EQ(static_cast<int>(v.fallback), static_cast<int>(want));
  }
  AppPolicy p;
  p.default_action = DefaultAction::kPrompt;
  Matcher m(std::move(p));
  Verdict v = m.decide(key(kTcp, "1.2.3.4", 80));
  EXPECT_EQ(v.rule, nullptr);
  EXPECT_EQ(v.fallback, DefaultAction::kPrompt);
  EXPECT_EQ(v.action, Action::kDeny);
}

TEST(Matcher, VerdictPointsAtTheRule) {
  auto m = compile("default = \"allow\"\n[[deny]]\nto = \"10.0.0.0/8\"\n");
  Verdict v = m->decide(key(kTcp, "10.2.3.4", 1));
  ASSERT_NE(v.rule, nullptr);
  EXPECT_EQ(v.rule, &m->policy().rules[0]);
  EXPECT_EQ(v.action, Action::kDeny);
  EXPECT_EQ(v.rule->origin, "t.toml:2");
}

TEST(Matcher, DirectionAndHostRules) {
  AppPolicy p;
  Rule in;
  in.id = 1;
  in.action = Action::kAllow;
  in.match.direction = Direction::kInbound;
  Rule named;
  named.id = 2;
  named.action = Action::kAllow;
  named.match.hosts = {HostPattern{"example.com", false}};
  p.rules = {in, named};
  Matcher m(std::move(p));
  ConnKey k = key(kTcp, "1.2.3.4", 80);
  EXPECT_EQ(m.decide(k).rule, nullptr);
  k.direction = Direction::kInbound;
  ASSERT_NE(m.decide(k).rule, nullptr);
  EXPECT_EQ(m.decide(k).rule->id, 1u);
}

// --- brute force reference -------------------------------------------------------------

std::string lowerName(std::string_view n) {
  if (!n.empty() && n.back() == '.') n.remove_suffix(1);
  std::string s(n);
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// A linear scan that states the documented precedence directly: destination specificity
// (exact host, wildcard by labels, prefix by length, none), narrowest ports, named protocol,
// deny/reject over allow, lower id, earlier rule. Skips rules the filter refuses.
const Rule* reference(const std::vector<Rule>& rules, const ConnKey& k,
                      const std::function<bool(const Rule&)>& usable = nullptr) {
  const Rule* best = nullptr;
  std::tuple<int, int, std::uint32_t, int, int, std::uint32_t> best_rank{};
  for (const Rule& r : rules) {
    if (r.match.direction != k.direction) continue;
    if (r.match.protocol != Protocol::kAny && r.match.protocol != k.protocol) continue;
    if (usable && !usable(r)) continue;
    int cls = 4;
    int len = 0;
    auto offer = [&](int c, int l) {
      if (c < cls || (c == cls && l > len)) {
        cls = c;
        len = l;
      }
    };
    for (const HostPattern& h : r.match.hosts) {
      std::string pattern = lowerName(h.name);
      for (std::string_view raw : k.names) {
        std::string n = lowerName(raw);
        if (n.empty()) continue;
        if (!h.wildcard && n == pattern) offer(0, 0);
        std::string dot_suffix = "." + pattern;
        if (h.wildcard && n.size() > dot_suffix.size() &&
            n.compare(n.size() - dot_suffix.size(), dot_suffix.size(), dot_suffix) == 0)
          offer(1, static_cast<int>(std::count(pattern.begin(), pattern.end(), '.')) + 1);
      }
    }
    for (const Cidr& c : r.match.addresses)
      if (c.contains(k.remote)) offer(2, static_cast<int>(c.bits()));
    if (r.match.hosts.empty() && r.match.addresses.empty()) offer(3, 0);
    if (cls == 4) continue;
    std::uint32_t width = 65537;
    if (!r.match.ports.empty()) {
      if (k.protocol != Protocol::kTcp && k.protocol != Protocol::kUdp) continue;
      width = 0;
      for (const PortRange& pr : r.match.ports)
        if (pr.contains(k.remote_port)) {
          std::uint32_t w = std::uint32_t{pr.hi} - pr.lo + 1;
          if (width == 0 || w < width) width = w;
        }
      if (width == 0) continue;
    }
    // Smaller is better: negate the length so a longer one sorts first.
    auto rank = std::make_tuple(cls, -len, width, r.match.protocol == Protocol::kAny ? 1 : 0,
                                r.action == Action::kAllow ? 1 : 0, r.id);
    if (best == nullptr || rank < best_rank) {
      best = &r;
      best_rank = rank;
    }
  }
  return best;
}

const char* kNamePool[] = {"example.org", "a.example.org", "x.a.example.org", "API.example.org.",
                           "org", "b.c", "a.b.c", "cdn.example.net", "x.cdn.example.net", "c"};

class RandomPolicy {
 public:
  explicit RandomPolicy(std::uint32_t seed) : rng_(seed) {}
  bool spread = false;  // addresses over many /16s, not only near the fixed bases

  IpAddr address() {
    // A few clustered bases so prefixes overlap and nest.
    static const char* kBases[] = {"10.0.0.0", "10.1.0.0", "10.1.2.0", "192.168.0.0",
                                   "2001:db8::", "2001:db8:1::", "::", "fe80::"};
    IpAddr a = *IpAddr::parse(kBases[pick(8)]);
    if (spread && (a.is_v4() || pick(2) == 0)) {
      // Vary the first 16 bits of the family too, so prefixes land in many first-stride
      // slots and nest across slot boundaries (/8 over several /16 slots).
      static const std::uint8_t kTop[] = {0x00, 0x01, 0x0a, 0x20, 0xc0, 0xff};
      std::size_t at = a.is_v4() ? 12 : 0;
      a.b[at] = kTop[pick(6)];
      a.b[at + 1] = kTop[pick(6)];
      if (pick(4) != 0) {  // and many distinct longer prefixes below those 36 blocks
        a.b[at + 2] = static_cast<std::uint8_t>(pick(256));
        a.b[at + 3] = static_cast<std::uint8_t>(pick(256));
      }
    }
    int flips = static_cast<int>(pick(3));
    for (int i = 0; i < flips; ++i) {
      std::size_t byte = a.is_v4() ? 13 + pick(3) : 2 + pick(14);
      a.b[byte] = static_cast<std::uint8_t>(pick(4));
    }
    return a;
  }

  Cidr cidr() {
    IpAddr a = address();
    unsigned max = a.is_v4() ? 32 : 128;
    unsigned len = pick(4) == 0 ? max : pick(max + 1);
    auto c = Cidr::parse(a.str() + "/" + std::to_string(len));
    return *c;
  }

  PortRange ports() {
    auto lo = static_cast<std::uint16_t>(1 + pick(60));
    auto hi = static_cast<std::uint16_t>(pick(3) == 0 ? lo : lo + pick(40));
    return {lo, hi};
  }

  HostPattern host() {
    HostPattern h;
    h.name = lowerName(kNamePool[pick(sizeof kNamePool / sizeof *kNamePool)]);
    h.wildcard = pick(2) == 0;
    return h;
  }

  Rule rule(std::uint32_t id) {
    Rule r;
    r.id = id;
    r.action = static_cast<Action>(pick(3));
    r.match.protocol = static_cast<Protocol>(pick(4));
    r.match.direction = pick(20) == 0 ? Direction::kInbound : Direction::kOutbound;
    std::size_t naddr = pick(3) == 0 ? 0 : 1 + pick(3);
    bool hosts = pick(3) == 0;
    for (std::size_t i = 0; i < naddr; ++i) {
      if (hosts) {
        r.match.hosts.push_back(host());
      } else {
        r.match.addresses.push_back(cidr());
      }
    }
    if (hosts && pick(10) == 0) r.match.addresses.push_back(cidr());  // only code makes both
    if (r.match.protocol != Protocol::kIcmp && pick(2) == 0) {
      std::size_t nports = 1 + pick(3);
      for (std::size_t i = 0; i < nports; ++i) r.match.ports.push_back(ports());
    }
    return r;
  }

  ConnKey key(std::vector<std::string_view>& names) {
    ConnKey k;
    k.protocol = static_cast<Protocol>(1 + pick(3));
    if (pick(50) == 0) k.protocol = Protocol::kAny;
    k.direction = pick(20) == 0 ? Direction::kInbound : Direction::kOutbound;
    k.remote = address();
    if (pick(4) == 0) k.remote.b[15] = static_cast<std::uint8_t>(pick(256));
    if (k.protocol == Protocol::kTcp || k.protocol == Protocol::kUdp)
      k.remote_port = static_cast<std::uint16_t>(pick(110));
    names.clear();
    std::size_t n = pick(3) == 0 ? 0 : 1 + pick(3);
    for (std::size_t i = 0; i < n; ++i)
      names.emplace_back(kNamePool[pick(sizeof kNamePool / sizeof *kNamePool)]);
    k.names = names;
    return k;
  }

  std::uint32_t pick(std::uint32_t n) {
    return std::uniform_int_distribution<std::uint32_t>(0, n - 1)(rng_);
  }

 private:
  std::mt19937 rng_;
};

// Random policies against reference(): `rounds` policies of up to max_rules rules, 500 keys
// each, every 10th key also through explain(). Returns how many keys a rule decided.
struct Agreement {
  int by_rule = 0, by_name = 0, by_address = 0;
  std::size_t strides4 = 0, strides6 = 0;  // first strides the policies' indexes built
};
Agreement checkAgainstBruteForce(RandomPolicy& gen, int rounds, std::uint32_t min_rules,
                                 std::uint32_t max_rules) {
  Agreement got;
  std::vector<std::string_view> names;
  for (int round = 0; round < rounds; ++round) {
    AppPolicy p;
    p.default_action = static_cast<DefaultAction>(gen.pick(3));
    std::uint32_t n = min_rules + gen.pick(max_rules - min_rules + 1);
    for (std::uint32_t i = 0; i < n; ++i) p.rules.push_back(gen.rule(1 + gen.pick(1000)));
    std::vector<Rule> rules = p.rules;
    Matcher m(std::move(p));
    got.strides4 += m.indexStats().strides4;
    got.strides6 += m.indexStats().strides6;
    // Every other round a filter drops some rules, as used-up lifetimes would.
    std::uint32_t modulus = round % 2 == 0 ? 0 : 2 + gen.pick(3);
    auto usable = [modulus](const Rule& r) { return modulus == 0 || r.id % modulus != 0; };
    RuleFilter filter = modulus == 0 ? RuleFilter{} : RuleFilter::of(usable);
    for (int i = 0; i < 500; ++i) {
      ConnKey k = gen.key(names);
      const Rule* want = reference(rules, k, usable);
      Verdict v = m.decide(k, filter);
      if (want == nullptr) {
        EXPECT_EQ(v.rule, nullptr) << "round " << round << " key " << k.remote.str() << ":"
                                   << k.remote_port << " got rule " << v.rule->id;
        if (v.rule != nullptr) return got;
      } else {
        ++got.by_rule;
        if (!want->match.hosts.empty()) ++got.by_name;
        else if (!want->match.addresses.empty()) ++got.by_address;
        EXPECT_NE(v.rule, nullptr) << "round " << round << " key " << k.remote.str();
        if (v.rule == nullptr) return got;
        // Ids may repeat in this test; compare the rule itself.
        EXPECT_EQ(v.rule - m.policy().rules.data(), want - rules.data())
            << "round " << round << " key " << protocolName(k.protocol) << " "
            << k.remote.str() << ":" << k.remote_port;
        if (v.rule - m.policy().rules.data() != want - rules.data()) return got;
        EXPECT_EQ(v.action, want->action);
      }
      if (i % 10 == 0) {
        // explain ranks literally; its first usable candidate is the verdict.
        Explanation e = m.explain(k, filter);
        EXPECT_EQ(e.verdict.rule, v.rule);
        const Rule* first_usable = nullptr;
        for (const Candidate& c : e.candidates)
          if (c.usable) {
            first_usable = c.rule;
            break;
          }
        EXPECT_EQ(first_usable, v.rule) << "round " << round;
      }
    }
  }
  return got;
}

TEST(Matcher, AgreesWithBruteForce) {
  RandomPolicy gen(12345);
  Agreement small = checkAgainstBruteForce(gen, 40, 1, 20);
  Agreement medium = checkAgainstBruteForce(gen, 40, 1, 400);
  // Guard against a generator that never exercises the rules.
  EXPECT_GT(small.by_rule + medium.by_rule, 10000);
  EXPECT_GT(small.by_name + medium.by_name, 1000);
}

// Policies big enough for the trie's first strides (2,048 nodes of a family), with addresses
// over many /16 slots so lookups start below the root, nest across slots and climb by up links.
TEST(Matcher, AgreesWithBruteForceBigTrie) {
  RandomPolicy gen(777);
  gen.spread = true;
  Agreement big = checkAgainstBruteForce(gen, 3, 9000, 12000);
  EXPECT_GE(big.strides4, 3u) << "the generator did not build IPv4 tries with strides";
  EXPECT_GE(big.strides6, 3u) << "the generator did not build IPv6 tries with strides";
  EXPECT_GT(big.by_address, 300);
}

TEST(Matcher, HundredThousandRules) {
  AppPolicy p;
  p.default_action = DefaultAction::kReject;
  for (std::uint32_t i = 0; i < 100000; ++i) {
    Rule r;
    r.id = i + 1;
    r.action = i % 2 == 0 ? Action::kAllow : Action::kDeny;
    r.match.protocol = Protocol::kTcp;
    Ip4 a{0x0a000000u + i * 7};
    r.match.addresses.push_back(Cidr{IpAddr(a), 32});
    r.match.ports.push_back({static_cast<std::uint16_t>(1 + i % 1000),
                             static_cast<std::uint16_t>(1 + i % 1000)});
    p.rules.push_back(std::move(r));
  }
  Rule wide;
  wide.id = 200000;
  wide.action = Action::kDeny;
  wide.match.addresses.push_back(*Cidr::parse("10.0.0.0/8"));
  p.rules.push_back(wide);
  Matcher m(std::move(p));
  for (std::uint32_t i = 0; i < 100000; i += 997) {
    Ip4 a{0x0a000000u + i * 7};
    ConnKey k;
    k.protocol = Protocol::kTcp;
    k.remote = IpAddr(a);
    k.remote_port = static_cast<std::uint16_t>(1 + i % 1000);
    Verdict v = m.decide(k);
    ASSERT_NE(v.rule, nullptr);
    EXPECT_EQ(v.rule->id, i + 1);
    k.remote_port = static_cast<std::uint16_t>(1001 + i % 1000);
    v = m.decide(k);
    ASSERT_NE(v.rule, nullptr);
    EXPECT_EQ(v.rule->id, 200000u);
  }
  EXPECT_EQ(m.decide(key(kTcp, "11.0.0.1", 80)).action, Action::kReject);
}

}  // namespace
}  // namespace cw::policy
