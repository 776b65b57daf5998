// Matcher: host names, inbound rules, filters and explain.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace cw::policy {
namespace {

std::unique_ptr<Matcher> compile(const std::string& text) {
  auto r = parsePolicy(text, "t.toml");
  EXPECT_TRUE(r) << r.error().str();
  return std::make_unique<Matcher>(r ? std::move(r).value() : AppPolicy{});
}

// A key and the names it resolved from; keeps the views alive.
struct Key {
  std::vector<std::string> storage;
  std::vector<std::string_view> views;
  ConnKey k;
  Key(Protocol p, const char* addr, std::uint16_t port, std::vector<std::string> names,
      Direction d = Direction::kOutbound)
      : storage(std::move(names)) {
    for (const auto& s : storage) views.emplace_back(s);
    k = ConnKey(p, d, *IpAddr::parse(addr), port, views);
  }
  Key(const Key&) = delete;  // k.names points into this object
};

std::string by(const Matcher& m, const Key& key, RuleFilter f = {}) {
  Verdict v = m.decide(key.k, f);
  return v.rule == nullptr ? "default" : v.rule->comment;
}

constexpr Protocol kTcp = Protocol::kTcp;
constexpr Protocol kUdp = Protocol::kUdp;

struct Case {
  const char* what;
  const char* policy;
  Key key;
  const char* want;
};

TEST(MatcherNames, Precedence) {
  const Case cases[] = {
      {"exact host beats a longer prefix",
       "[[allow]]\nhosts = \"api.example.org\"\ncomment = \"exact\"\n"
       "[[deny]]\nto = \"93.184.216.34\"\nports = 443\nproto = \"tcp\"\ncomment = \"/32\"",
       Key(kTcp, "93.184.216.34", 443, {"api.example.org"}), "exact"},
      {"wildcard beats a prefix",
       "[[deny]]\nto = \"93.184.216.34\"\ncomment = \"/32\"\n"
       "[[allow]]\nhosts = \"*.example.org\"\ncomment = \"wild\"",
       Key(kTcp, "93.184.216.34", 443, {"api.example.org"}), "wild"},
      {"exact beats wildcard even with wider ports",
       "[[deny]]\nhosts = \"*.example.org\"\nports = 443\ncomment = \"wild\"\n"
       "[[allow]]\nhosts = \"api.example.org\"\ncomment = \"exact\"",
       Key(kTcp, "1.2.3.4", 443, {"api.example.org"}), "exact"},
      {"more labels in the wildcard wins",
       "[[deny]]\nhosts = \"*.org\"\ncomment = \"tld\"\n"
       "[[allow]]\nhosts = \"*.example.org\"\ncomment = \"two\"\n"
       "[[deny]]\nhosts = \"*.cdn.example.org\"\ncomment = \"three\"",
       Key(kTcp, "1.2.3.4", 443, {"x.y.example.org"}), "two"},
      {"deepest wildcard when the name is below it",
       "[[deny]]\nhosts = \"*.org\"\ncomment = \"tld\"\n"
       "[[allow]]\nhosts = \"*.example.org\"\ncomment = \"two\"\n"
       "[[deny]]\nhosts = \"*.cdn.example.org\"\ncomment = \"three\"",
       Key(kTcp, "1.2.3.4", 443, {"a.b.cdn.example.org"}), "three"},
      {"wildcard does not match its apex",
       "[[allow]]\nhosts = \"*.example.org\"\ncomment = \"wild\"",
       Key(kTcp, "1.2.3.4", 443, {"example.org"}), "default"},
      {"apex and wildcard listed together",
       "[[allow]]\nhosts = [\"*.example.org\", \"example.org\"]\ncomment = \"both\"",
       Key(kTcp, "1.2.3.4", 443, {"example.org"}), "both"},
      {"names compare case-insensitively, root dot dropped",
       "[[allow]]\nhosts = \"api.example.org\"\ncomment = \"exact\"",
       Key(kTcp, "1.2.3.4", 443, {"API.Example.ORG."}), "exact"},
      {"wildcard case-insensitive",
       "[[allow]]\nhosts = \"*.example.org\"\ncomment = \"wild\"",
       Key(kTcp, "1.2.3.4", 443, {"WWW.EXAMPLE.ORG."}), "wild"},
      {"suffix must end at a label",
       "[[allow]]\nhosts = \"*.example.org\"\ncomment = \"wild\"",
       Key(kTcp, "1.2.3.4", 443, {"badexample.org"}), "default"},
      {"no names: host rules cannot match",
       "[[allow]]\nhosts = \"api.example.org\"\ncomment = \"exact\"", Key(kTcp, "1.2.3.4", 443, {}),
       "default"},
      {"a host rule's ports still apply",
       "[[allow]]\nhosts = \"api.example.org\"\nports = 443\ncomment = \"exact\"\n"
       "[[deny]]\nto = \"0.0.0.0/0\"\ncomment = \"all\"",
       Key(kTcp, "1.2.3.4", 80, {"api.example.org"}), "all"},
      {"deny beats allow on the same host",
       "[[allow]]\nhosts = \"api.example.org\"\ncomment = \"allow\"\n"
       "[[deny]]\nhosts = \"api.example.org\"\ncomment = \"deny\"",
       Key(kTcp, "1.2.3.4", 443, {"api.example.org"}), "deny"},
      {"two resolved names compete by ports",
       "[[allow]]\nhosts = \"cdn.example.net\"\nports = 443\ncomment = \"cdn\"\n"
       "[[deny]]\nhosts = \"api.example.org\"\ncomment = \"api\"",
       Key(kTcp, "1.2.3.4", 443, {"api.example.org", "cdn.example.net"}), "cdn"},
      {"CNAME chain: any name of the chain",
       "[[allow]]\nhosts = \"*.akamaiedge.net\"\ncomment = \"edge\"",
       Key(kTcp, "1.2.3.4", 443, {"www.example.org", "e1.a.akamaiedge.net"}), "edge"},
      {"narrowest ports before protocol",
       "[[deny]]\nhosts = \"a.org\"\nproto = \"tcp\"\nports = \"1-1000\"\ncomment = \"wide\"\n"
       "[[allow]]\nhosts = \"a.org\"\nports = 443\ncomment = \"narrow\"",
       Key(kTcp, "1.2.3.4", 443, {"a.org"}), "narrow"},
      {"named protocol beats any on a host",
       "[[deny]]\nhosts = \"a.org\"\nports = 53\ncomment = \"any\"\n"
       "[[allow]]\nhosts = \"a.org\"\nproto = \"udp\"\nports = 53\ncomment = \"udp\"",
       Key(kUdp, "1.2.3.4", 53, {"a.org"}), "udp"},
      {"lower id on a tie",
       "[[allow]]\nhosts = \"*.a.org\"\ncomment = \"first\"\n[[allow]]\nhosts = \"*.a.org\"\ncomment = \"second\"",
       Key(kTcp, "1.2.3.4", 1, {"x.a.org"}), "first"},
      {"prefix beats no destination",
       "[[deny]]\ncomment = \"none\"\n[[allow]]\nto = \"0.0.0.0/0\"\ncomment = \"all\"",
       Key(kTcp, "1.2.3.4", 1, {"x.a.org"}), "all"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto m = compile(c.policy);
    EXPECT_EQ(by(*m, c.key), c.want);
  }
}

TEST(MatcherNames, InboundIsSeparate) {
  auto m = compile(R"([[allow]]
direction = "inbound"
proto = "tcp"
ports = 8080
from = "10.0.0.0/8"
comment = "in"
[[deny]]
to = "10.0.0.0/8"
comment = "out"
)");
  EXPECT_EQ(by(*m, Key(kTcp, "10.1.1.1", 8080, {}, Direction::kInbound)), "in");
  EXPECT_EQ(by(*m, Key(kTcp, "10.1.1.1", 8081, {}, Direction::kInbound)), "default");
  EXPECT_EQ(by(*m, Key(kTcp, "11.1.1.1", 8080, {}, Direction::kInbound)), "default");
  EXPECT_EQ(by(*m, Key(kTcp, "10.1.1.1", 8080, {})), "out");
  auto only_in = compile("[[allow]]\ndirection = \"inbound\"\ncomment = \"in\"\n");
  EXPECT_EQ(by(*only_in, Key(kTcp, "10.1.1.1", 80, {})), "default");
}

TEST(MatcherFilter, SkipsUnusableRules) {
  auto m = compile(R"([[allow]]
hosts = "api.example.org"
connections = 1
comment = "once"
[[deny]]
hosts = "*.example.org"
comment = "wild"
[[allow]]
to = "1.2.3.0/24"
comment = "net"
)");
  Key k(kTcp, "1.2.3.4", 443, {"api.example.org"});
  EXPECT_EQ(by(*m, k), "once");
  auto no_limited = [](const Rule& r) { return r.lifetime.connections == 0; };
  EXPECT_EQ(by(*m, k, RuleFilter::of(no_limited)), "wild");
  auto only_net = [](const Rule& r) { return r.comment == "net"; };
  EXPECT_EQ(by(*m, k, RuleFilter::of(only_net)), "net");
  auto none = [](const Rule&) { return false; };
  EXPECT_EQ(by(*m, k, RuleFilter::of(none)), "default");
}

// More equal candidates at one place than a segment keeps: the scan behind it must agree.
TEST(MatcherFilter, SkipsPastTheKeptCandidates) {
  std::string text;
  for (int i = 0; i < 12; ++i)
    text += "[[allow]]\nto = \"10.0.0.0/8\"\nports = \"" + std::to_string(400 - i) + "-" +
            std::to_string(500 + i) + "\"\ncomment = \"" + std::to_string(i) + "\"\n";
  auto m = compile(text);
  Key k(kTcp, "10.0.0.1", 450, {});
  EXPECT_EQ(by(*m, k), "0");
  for (int skip = 0; skip < 12; ++skip) {
    auto f = [skip](const Rule& r) { return std::stoi(r.comment) >= skip; };
    EXPECT_EQ(by(*m, k, RuleFilter::of(f)), std::to_string(skip));
  }
  EXPECT_EQ(by(*m, Key(kTcp, "10.0.0.1", 390, {})), "10");
}

TEST(MatcherExplain, CandidatesInOrderWithReasons) {
  auto m = compile(R"([[allow]]
to = "10.0.0.0/8"
comment = "ten"
[[deny]]
hosts = "api.example.org"
ports = 443
proto = "tcp"
comment = "api"
[[allow]]
hosts = "api.example.org"
ports = 443
proto = "tcp"
comment = "api-allow"
[[allow]]
hosts = "*.example.org"
comment = "wild"
[[deny]]
comment = "any"
[[allow]]
to = "192.168.0.0/16"
comment = "other net"
)");
  Key k(kTcp, "10.1.2.3", 443, {"api.example.org"});
  auto f = [](const Rule& r) { return r.comment != "api"; };
  Explanation e = m->explain(k.k, RuleFilter::of(f));
  ASSERT_NE(e.verdict.rule, nullptr);
  EXPECT_EQ(e.verdict.rule->comment, "api-allow");
  EXPECT_EQ(e.verdict.rule, m->decide(k.k, RuleFilter::of(f)).rule);
  std::vector<std::string> order;
  for (const auto& c : e.candidates) order.push_back(c.rule->comment);
  EXPECT_EQ(order, (std::vector<std::string>{"api", "api-allow", "wild", "ten", "any"}));
  ASSERT_EQ(e.candidates.size(), 5u);
  EXPECT_FALSE(e.candidates[0].usable);
  EXPECT_TRUE(e.candidates[1].usable);
  EXPECT_EQ(e.candidates[0].reason,
            "exact host api.example.org, ports 443 (width 1), proto tcp, deny; skipped (used up "
            "or filtered out)");
  EXPECT_EQ(e.candidates[1].reason,
            "exact host api.example.org, ports 443 (width 1), proto tcp, allow; below rule 2: "
            "deny/reject wins over allow at equal specificity");
  EXPECT_EQ(e.candidates[2].reason,
            "wildcard host *.example.org (2 labels) for api.example.org, any port, any proto, "
            "allow; below rule 3: an exact host beats a wildcard host");
  EXPECT_EQ(e.candidates[3].reason,
            "prefix 10.0.0.0/8 (8 bits), any port, any proto, allow; below rule 4: a wildcard "
            "host beats an address prefix");
  EXPECT_EQ(e.candidates[4].reason,
            "no destination (any address), any port, any proto, deny; below rule 1: an address "
            "prefix beats no destination");
  Explanation none = m->explain(Key(kUdp, "8.8.8.8", 53, {}).k);
  ASSERT_EQ(none.candidates.size(), 1u);
  EXPECT_EQ(none.verdict.rule, none.candidates[0].rule);
}

}  // namespace
}  // namespace cw::policy

namespace cw::policy {
namespace {

// Matcher::resolvableBy: which allow rule lets a cell resolve a name (resolve = "rules").
TEST(MatcherResolve, NamesAllowRulesNameAsConnectionsMatchThem) {
  auto m = compile(
      "[[allow]]\nproto = \"tcp\"\nhosts = \"api.example.org\"\nports = 443\ncomment = \"exact\"\n"
      "[[allow]]\nhosts = \"*.example.org\"\ncomment = \"wild\"\n"
      "[[allow]]\nhosts = \"*.cdn.example.org\"\ncomment = \"deeper\"\n"
      "[[deny]]\nhosts = [\"*.ads.example.org\", \"bad.example.net\"]\ncomment = \"deny\"\n"
      "[[allow]]\nhosts = \"api.example.org\"\ncomment = \"exact later\"\n"
      "[[allow]]\nto = \"10.0.0.0/8\"\ncomment = \"addresses\"\n"
      "[[allow]]\ndirection = \"inbound\"\nports = 22\ncomment = \"inbound\"\n"
      "[[allow]]\nuser = \"alice\"\nhosts = \"alice.example.net\"\ncomment = \"by process\"\n"
      "[[rule]]\naction = \"reject\"\nhosts = \"rejected.example.net\"\ncomment = \"reject\"\n");
  struct NameCase {
    const char* name;
    const char* want;  // the rule's comment; "" for none
  };
  const NameCase cases[] = {
      {"api.example.org", "exact"},        // exact first, then the lower id
      {"API.Example.ORG.", "exact"},       // any case, the root's dot
      {"x.example.org", "wild"},
      {"a.b.cdn.example.org", "deeper"},   // more labels first
      {"cdn.example.org", "wild"},         // below *.example.org, not below *.cdn.example.org
      {"example.org", ""},                 // a wildcard does not name its apex
      {"x.ads.example.org", "wild"},       // a deny rule does not stop a lookup
      {"bad.example.net", ""},             // ...nor make one possible
      {"alice.example.net", "by process"}, // a lookup has no process: any process's rule counts
      {"rejected.example.net", ""},        // only allow rules name what may be resolved
      {"10.1.2.3", ""},                    // address rules name no names
      {"evil.test", ""},
      {"", ""},
  };
  for (const auto& c : cases) {
    const Rule* r = m->resolvableBy(c.name);
    EXPECT_EQ(r == nullptr ? std::string() : r->comment, c.want) << c.name;
  }
  // Rules the filter rejects are skipped: the next one that names the name decides.
  auto not_first = [](const Rule& r) { return r.comment != "exact"; };
  const Rule* r = m->resolvableBy("api.example.org", RuleFilter::of(not_first));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->comment, "exact later");
  auto none = [](const Rule&) { return false; };
  EXPECT_EQ(m->resolvableBy("x.example.org", RuleFilter::of(none)), nullptr);
}

}  // namespace
}  // namespace cw::policy
