// Rules by process (issue 6): exe, process, user, parent and pid, how they parse, export and
// rank, and that an unattributed connection never matches them.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "policy/policy.h"

namespace cw::policy {
namespace {

std::unique_ptr<Matcher> compile(const std::string& text) {
  auto r = parsePolicy(text, "t.toml");
  EXPECT_TRUE(r) << r.error().str();
  return std::make_unique<Matcher>(r ? std::move(r).value() : AppPolicy{});
}

ConnKey tcp(const char* addr, std::uint16_t port, const ProcessKey* p) {
  ConnKey k(Protocol::kTcp, Direction::kOutbound, *IpAddr::parse(addr), port);
  k.process = p;
  return k;
}

std::string by(const Matcher& m, const ConnKey& k) {
  Verdict v = m.decide(k);
  return v.rule == nullptr ? "default" : v.rule->comment;
}

const ProcessKey kCurl{100, 1000, "alice", "/usr/bin/curl", "curl", "/usr/bin/bash"};
const ProcessKey kWget{101, 1000, "alice", "/usr/bin/wget", "wget", "/usr/bin/bash"};
const ProcessKey kBobCurl{102, 1001, "bob", "/usr/bin/curl", "curl", "/usr/bin/make"};
const ProcessKey kExited{103, 1000, "alice", "", "curl", ""};

TEST(ProcessRules, ParseEveryKeyAndExportRoundTrips) {
  const char* text = R"(default = "deny"
[[allow]]
exe = ["/usr/bin/curl", "/opt/*/bin/*"]
process = "curl"
user = ["alice", 1000]
parent = "/usr/bin/bash"
ports = 443
comment = "all"
[[deny]]
pid = [7, 8]
exe = "/usr/bin/x"
)";
  auto p = parsePolicy(text, "t.toml");
  ASSERT_TRUE(p) << p.error().str();
  const RuleMatch& m = p->rules[0].match;
  EXPECT_EQ(m.exe, (std::vector<std::string>{"/usr/bin/curl", "/opt/*/bin/*"}));
  EXPECT_EQ(m.process, std::vector<std::string>{"curl"});
  EXPECT_EQ(m.users, (std::vector<std::string>{"alice", "1000"}));
  EXPECT_EQ(m.parent, std::vector<std::string>{"/usr/bin/bash"});
  EXPECT_EQ(m.processTier(), 2u);
  EXPECT_EQ(p->rules[1].match.pids, (std::vector<std::uint32_t>{7, 8}));
  EXPECT_EQ(p->rules[1].match.processTier(), 3u);
  auto again = parsePolicy(exportPolicy(*p), "t.toml");
  ASSERT_TRUE(again) << again.error().str() << "\n" << exportPolicy(*p);
  EXPECT_EQ(again->rules[0].match, m);
  EXPECT_EQ(again->rules[1].match, p->rules[1].match);
}

TEST(ProcessRules, BadValuesAreRefusedWithTheReason) {
  struct {
    const char* text;
    const char* want;
  } cases[] = {
      {"[[allow]]\nexe = \"curl\"\n", "absolute path"},
      {"[[allow]]\nparent = \"bash\"\n", "absolute path"},
      {"[[allow]]\nprocess = \"a-very-long-process-name\"\n", "15 bytes"},
      {"[[allow]]\nuser = \"al ice\"\n", "not a user name"},
      {"[[allow]]\npid = 0\n", "out of range"},
      {"[[allow]]\npid = \"7\"\n", "pid must be an integer"},
      {"[[allow]]\nexe = []\n", "is empty"},
      {"[[allow]]\nexe = 3\n", "exe must be a string"},
  };
  for (const auto& c : cases) {
    auto r = parsePolicy(c.text, "t.toml");
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().reason.find(c.want), std::string::npos) << c.text << " -> " << r.error().str();
  }
}

TEST(ProcessRules, EachFieldMatchesAsWritten) {
  auto m = compile(R"(default = "deny"
[[allow]]
exe = "/usr/bin/curl"
comment = "exe"
[[allow]]
user = "bob"
comment = "bob"
[[allow]]
user = 1000
process = "wg*"
comment = "uid and name"
)");
  EXPECT_EQ(by(*m, tcp("192.0.2.1", 80, &kCurl)), "exe");
  EXPECT_EQ(by(*m, tcp("192.0.2.1", 80, &kWget)), "uid and name");
  EXPECT_EQ(by(*m, tcp("192.0.2.1", 80, &kBobCurl)), "exe");  // tier 2 beats tier 1
  // The exe is unknown (exited): no exe rule admits it; the uid rule still needs the name.
  EXPECT_EQ(by(*m, tcp("192.0.2.1", 80, &kExited)), "default");
  EXPECT_TRUE(m->namesProcesses());
}

TEST(ProcessRules, AnUnattributedConnectionNeverMatchesAProcessRule) {
  auto m = compile(R"(default = "allow"
[[deny]]
user = "alice"
comment = "alice"
[[deny]]
to = "192.0.2.0/24"
comment = "net"
)");
  EXPECT_EQ(by(*m, tcp("198.51.100.1", 80, nullptr)), "default");
  EXPECT_EQ(by(*m, tcp("192.0.2.1", 80, nullptr)), "net");
  EXPECT_EQ(by(*m, tcp("198.51.100.1", 80, &kCurl)), "alice");
  EXPECT_EQ(by(*m, tcp("198.51.100.1", 80, &kBobCurl)), "default");
}

// A rule about a process outranks rules about destinations only (so an IDS auto-rule that
// denies one process wins over the app's allow rules), and among process rules of one tier
// the destination decides.
TEST(ProcessRules, ProcessTierRanksBeforeDestination) {
  auto m = compile(R"(default = "deny"
[[allow]]
hosts = "example.org"
comment = "host"
[[deny]]
pid = 100
comment = "pid"
[[allow]]
exe = "/usr/bin/curl"
to = "192.0.2.0/24"
comment = "curl to net"
[[deny]]
exe = "/usr/bin/curl"
comment = "curl anywhere"
)");
  std::string_view names[] = {"example.org"};
  ConnKey k = tcp("192.0.2.1", 80, &kCurl);
  k.names = names;
  EXPECT_EQ(by(*m, k), "pid");
  const ProcessKey other_curl{200, 1000, "alice", "/usr/bin/curl", "curl", ""};
  k.process = &other_curl;
  EXPECT_EQ(by(*m, k), "curl to net");
  ConnKey far = tcp("198.51.100.1", 80, &other_curl);
  far.names = names;
  EXPECT_EQ(by(*m, far), "curl anywhere");
  far.process = &kWget;
  EXPECT_EQ(by(*m, far), "host");
  far.process = nullptr;
  EXPECT_EQ(by(*m, far), "host");
}

// explain() ranks literally; it must agree with decide() and say why a process rule won.
TEST(ProcessRules, ExplainAgreesAndSaysWhy) {
  auto m = compile(R"(default = "deny"
[[allow]]
to = "192.0.2.1/32"
comment = "addr"
[[deny]]
user = "alice"
comment = "alice"
)");
  ConnKey k = tcp("192.0.2.1", 80, &kCurl);
  Explanation e = m->explain(k);
  ASSERT_EQ(e.candidates.size(), 2u);
  EXPECT_EQ(e.candidates[0].rule->comment, "alice");
  EXPECT_EQ(e.verdict.rule, e.candidates[0].rule);
  EXPECT_NE(e.candidates[1].reason.find("a rule naming a user beats one naming no process"),
            std::string::npos)
      << e.candidates[1].reason;
  k.process = nullptr;
  e = m->explain(k);
  ASSERT_EQ(e.candidates.size(), 1u);
  EXPECT_EQ(e.candidates[0].rule->comment, "addr");
}

TEST(ProcessRules, APolicyWithoutThemNeedsNoAttribution) {
  auto m = compile("[[allow]]\nports = 80\n");
  EXPECT_FALSE(m->namesProcesses());
}

}  // namespace
}  // namespace cw::policy
