#include <gtest/gtest.h>

#include <string>

#include "policy/policy.h"

namespace cw::policy {
namespace {

Cidr cidr(const char* s) { return *Cidr::parse(s); }

TEST(ParsePolicy, FullExample) {
  auto r = parsePolicy(R"(# a browser
app = "browser"
default = "reject"
env = "vpn-1"

[[allow]]
proto = "tcp"
to = ["10.99.0.2", "192.168.0.0/16", "2001:db8::/32"]
ports = [80, 443, "8000-8100"]
comment = "test web server"

[[deny]]
to = "10.0.0.0/8"

[[rule]]
action = "reject"
proto = "udp"
ports = 53
direction = "outbound"

[[allow]]
proto = "icmp"
)",
                       "browser.toml", 7);
  ASSERT_TRUE(r) << r.error().str();
  const AppPolicy& p = *r;
  EXPECT_EQ(p.app, "browser");
  EXPECT_EQ(p.default_action, DefaultAction::kReject);
  EXPECT_EQ(p.env, "vpn-1");
  EXPECT_EQ(p.origin, "browser.toml");
  ASSERT_EQ(p.rules.size(), 4u);

  const Rule& a = p.rules[0];
  EXPECT_EQ(a.id, 7u);
  EXPECT_EQ(a.action, Action::kAllow);
  EXPECT_EQ(a.origin, "browser.toml:6");
  EXPECT_EQ(a.comment, "test web server");
  EXPECT_EQ(a.match.protocol, Protocol::kTcp);
  EXPECT_EQ(a.match.direction, Direction::kOutbound);
  EXPECT_EQ(a.match.addresses,
            (std::vector<Cidr>{cidr("10.99.0.2"), cidr("192.168.0.0/16"), cidr("2001:db8::/32")}));
  EXPECT_EQ(a.match.ports, (std::vector<PortRange>{{80, 80}, {443, 443}, {8000, 8100}}));

  const Rule& d = p.rules[1];
  EXPECT_EQ(d.id, 8u);
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.origin, "browser.toml:12");
  EXPECT_EQ(d.match.protocol, Protocol::kAny);
  EXPECT_EQ(d.match.addresses, std::vector<Cidr>{cidr("10.0.0.0/8")});
  EXPECT_TRUE(d.match.ports.empty());

  const Rule& j = p.rules[2];
  EXPECT_EQ(j.id, 9u);
  EXPECT_EQ(j.action, Action::kReject);
  EXPECT_EQ(j.origin, "browser.toml:15");
  EXPECT_EQ(j.match.protocol, Protocol::kUdp);
  EXPECT_TRUE(j.match.addresses.empty());
  EXPECT_EQ(j.match.ports, (std::vector<PortRange>{PortRange{53, 53}}));

  EXPECT_EQ(p.rules[3].id, 10u);
  EXPECT_EQ(p.rules[3].match.protocol, Protocol::kIcmp);
  EXPECT_EQ(p.rules[3].origin, "browser.toml:21");
}

TEST(ParsePolicy, DefaultsForAnEmptyFile) {
  auto r = parsePolicy("", "x.toml");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->app, "");
  EXPECT_EQ(r->default_action, DefaultAction::kDeny);
  EXPECT_EQ(r->env, "default");
  EXPECT_TRUE(r->rules.empty());
}

struct FormCase {
  const char* what;
  const char* text;
  Action action;
  Protocol protocol;
  std::vector<const char*> to;
  std::vector<PortRange> ports;
};

TEST(ParsePolicy, EveryForm) {
  const FormCase cases[] = {
      {"allow sugar", "[[allow]]", Action::kAllow, Protocol::kAny, {}, {}},
      {"deny sugar", "[[deny]]", Action::kDeny, Protocol::kAny, {}, {}},
      {"rule allow", "[[rule]]\naction = \"allow\"", Action::kAllow, Protocol::kAny, {}, {}},
      {"rule deny", "[[rule]]\naction = \"deny\"", Action::kDeny, Protocol::kAny, {}, {}},
      {"rule reject", "[[rule]]\naction = \"reject\"", Action::kReject, Protocol::kAny, {}, {}},
      {"inline tables", "allow = [{ proto = \"udp\", ports = 53 }]", Action::kAllow,
       Protocol::kUdp, {}, {{53, 53}}},
      {"proto any", "[[allow]]\nproto = \"any\"", Action::kAllow, Protocol::kAny, {}, {}},
      {"proto icmp", "[[allow]]\nproto = \"icmp\"", Action::kAllow, Protocol::kIcmp, {}, {}},
      {"to string v4", "[[allow]]\nto = \"1.2.3.4\"", Action::kAllow, Protocol::kAny,
       {"1.2.3.4"}, {}},
      {"to string v6 cidr", "[[allow]]\nto = \"2001:db8::/32\"", Action::kAllow, Protocol::kAny,
       {"2001:db8::/32"}, {}},
      {"to v6 address", "[[allow]]\nto = [\"::1\"]", Action::kAllow, Protocol::kAny, {"::1"}, {}},
      {"to everything", "[[allow]]\nto = [\"0.0.0.0/0\", \"::/0\"]", Action::kAllow,
       Protocol::kAny, {"0.0.0.0/0", "::/0"}, {}},
      {"ports int", "[[allow]]\nports = 443", Action::kAllow, Protocol::kAny, {}, {{443, 443}}},
      {"ports range string", "[[allow]]\nports = \"1-65535\"", Action::kAllow, Protocol::kAny, {},
       {{1, 65535}}},
      {"ports single string", "[[allow]]\nports = \"22\"", Action::kAllow, Protocol::kAny, {},
       {{22, 22}}},
      {"ports mixed array", "[[allow]]\nports = [1, \"5-6\", 65535]", Action::kAllow,
       Protocol::kAny, {}, {{1, 1}, {5, 6}, {65535, 65535}}},
      {"ports lo == hi", "[[allow]]\nports = \"7-7\"", Action::kAllow, Protocol::kAny, {},
       {{7, 7}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto r = parsePolicy(c.text, "f.toml");
    ASSERT_TRUE(r) << r.error().str();
    ASSERT_EQ(r->rules.size(), 1u);
    const Rule& rule = r->rules[0];
    EXPECT_EQ(rule.id, 1u);
    EXPECT_EQ(rule.action, c.action);
    EXPECT_EQ(rule.match.protocol, c.protocol);
    std::vector<Cidr> to;
    for (const char* t : c.to) to.push_back(cidr(t));
    EXPECT_EQ(rule.match.addresses, to);
    EXPECT_EQ(rule.match.ports, c.ports);
  }
}

TEST(ParsePolicy, Utf8InStringsAndComments) {
  auto r = parsePolicy("# caf\xe2\x9c\x93 \xe2\x80\x94 r\xe2\x80\x94gles\n"
                       "[[allow]]\n"
                       "comment = \"caf\xe2\x9c\x93 \\\" \xe6\x97\xa5\" # \xe2\x9c\x93\n"
                       "[[deny]]\n"
                       "comment = \'\'\'\xe2\x9c\x93\n\xe2\x9c\x93\'\'\'\n"
                       "[[deny]]\n"
                       "comment = \"\"\"a\\\n  b\xe2\x9c\x93\"\"\"\n",
                       "f.toml");
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->rules.size(), 3u);
  EXPECT_EQ(r->rules[0].comment, "caf\xe2\x9c\x93 \" \xe6\x97\xa5");
  EXPECT_EQ(r->rules[1].comment, "\xe2\x9c\x93\n\xe2\x9c\x93");
  EXPECT_EQ(r->rules[2].comment, "ab\xe2\x9c\x93");
}

TEST(ParsePolicy, PromptKeys) {
  auto p = parsePolicy("default = \"prompt\"\nprompt_timeout = \"90s\"\nprompt_timeout_action = \"reject\"\n",
                       "p.toml");
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_EQ(p->default_action, DefaultAction::kPrompt);
  EXPECT_EQ(p->prompt_timeout_ms, 90'000);
  EXPECT_EQ(p->prompt_timeout_action, Action::kReject);
  // Exported only when not the defaults (60 s, deny), and read back the same.
  std::string text = exportPolicy(*p);
  EXPECT_NE(text.find("prompt_timeout = \"1m30s\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("prompt_timeout_action = \"reject\"\n"), std::string::npos) << text;
  auto back = parsePolicy(text, "p.toml");
  ASSERT_TRUE(back);
  EXPECT_EQ(exportPolicy(*back), text);
  auto plain = parsePolicy("default = \"prompt\"\n", "p.toml");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->prompt_timeout_ms, 60'000);
  EXPECT_EQ(plain->prompt_timeout_action, Action::kDeny);
  EXPECT_EQ(exportPolicy(*plain).find("prompt_timeout"), std::string::npos);
}

TEST(ParsePolicy, EnvironmentKeys) {
  auto p = parsePolicy("clean_env = true\npass_env = [\"MYAPP_*\", \"SSH_AUTH_SOCK\", \"MYAPP_*\"]\n", "e.toml");
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_TRUE(p->clean_env);
  EXPECT_EQ(p->pass_env, (std::vector<std::string>{"MYAPP_*", "SSH_AUTH_SOCK"}));  // each once
  std::string text = exportPolicy(*p);
  EXPECT_NE(text.find("clean_env = true\npass_env = [\"MYAPP_*\", \"SSH_AUTH_SOCK\"]\n"), std::string::npos)
      << text;
  auto back = parsePolicy(text, "e.toml");
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(exportPolicy(*back), text);
  auto plain = parsePolicy("clean_env = false\n", "e.toml");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->clean_env);
  EXPECT_EQ(exportPolicy(*plain).find("_env"), std::string::npos);
}

// resolve: explicit values win, otherwise it follows default (docs/policy.md, "Name
// resolution"), and it is exported only when the file set it.
TEST(ParsePolicy, ResolveKey) {
  struct Case {
    const char* text;
    Resolve in_force;
    bool explicit_key;
  };
  const Case cases[] = {
      {"default = \"deny\"\n", Resolve::kRules, false},
      {"", Resolve::kRules, false},  // default deny
      {"default = \"reject\"\n", Resolve::kRules, false},
      {"default = \"allow\"\n", Resolve::kAny, false},
      {"default = \"prompt\"\n", Resolve::kAny, false},
      {"default = \"deny\"\nresolve = \"any\"\n", Resolve::kAny, true},
      {"default = \"allow\"\nresolve = \"rules\"\n", Resolve::kRules, true},
      {"default = \"prompt\"\nresolve = \"rules\"\n", Resolve::kRules, true},
      {"default = \"deny\"\nresolve = \"rules\"\n", Resolve::kRules, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    auto p = parsePolicy(c.text, "r.toml");
    ASSERT_TRUE(p) << p.error().str();
    EXPECT_EQ(resolveOf(*p), c.in_force);
    EXPECT_EQ(p->resolve.has_value(), c.explicit_key);
    const std::string text = exportPolicy(*p);
    EXPECT_EQ(text.find("resolve = ") != std::string::npos, c.explicit_key) << text;
    auto back = parsePolicy(text, "r.toml");
    ASSERT_TRUE(back) << back.error().str();
    EXPECT_EQ(back->resolve, p->resolve);
    EXPECT_EQ(exportPolicy(*back), text);
    EXPECT_EQ(Matcher(std::move(*p)).restrictsResolution(), c.in_force == Resolve::kRules);
  }
  // Not a rule key.
  auto r = parsePolicy("[[allow]]\nresolve = \"any\"\n", "r.toml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().reason.find("unknown key \"resolve\""), std::string::npos) << r.error().str();
}

TEST(ParsePolicy, DefaultValues) {
  const std::pair<const char*, DefaultAction> cases[] = {
      {"default = \"allow\"", DefaultAction::kAllow},
      {"default = \"deny\"", DefaultAction::kDeny},
      {"default = \"reject\"", DefaultAction::kReject},
  };
  for (const auto& [text, want] : cases) {
    auto r = parsePolicy(text, "f.toml");
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(r->default_action, want);
  }
}

TEST(ParsePolicy, FilenameInOriginsAndErrors) {
  auto r = parsePolicy("[[allow]]\n", "/etc/cellwall/apps/web.toml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rules[0].origin, "/etc/cellwall/apps/web.toml:1");
  auto e = parsePolicy("x = 1", "/etc/cellwall/apps/web.toml");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().str().rfind("/etc/cellwall/apps/web.toml:1:1: unknown key \"x\"", 0), 0u)
      << e.error().str();
}

TEST(ParsePolicy, IdsFollowFileOrderAcrossSections) {
  auto r = parsePolicy(R"([[rule]]
action = "deny"
comment = "a"
[[allow]]
comment = "b"
[[deny]]
comment = "c"
[[allow]]
comment = "d"
)",
                       "f.toml", 100);
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->rules.size(), 4u);
  const char* want[] = {"a", "b", "c", "d"};
  for (std::uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(r->rules[i].comment, want[i]);
    EXPECT_EQ(r->rules[i].id, 100 + i);
  }
  EXPECT_EQ(r->rules[3].origin, "f.toml:8");
}

struct ErrorCase {
  const char* what;
  const char* text;
  std::uint32_t line;
  std::uint32_t column;
  const char* reason_has;
};

TEST(ParsePolicy, Errors) {
  const ErrorCase cases[] = {
      {"toml syntax", "default = \"deny\"\n[[allow]\n", 2, 0, ""},
      // toml++ 3.3 asserted on these (marzer/tomlplusplus#294, #301); see parse.cc.
      {"toml malformed aot header", "[[=", 1, 0, ""},
      {"toml triple bracket", "default = \"deny\"\n[[[1]]]", 2, 0, ""},
      {"toml bad header char", "[&", 1, 0, ""},
      // ...and reached __builtin_unreachable() on these (see findTextProblem in parse.cc).
      {"latin-1 letter", "default = \"deny\" \xc3\xa9\n", 1, 18, "character U+00E9 is not supported"},
      {"cyrillic in comment", "[[allow]]\n# \xd0\x96\n", 2, 3, "U+0416"},
      {"fuzzer find", "[[deny]]\nto =0XX\"1*&\xc3\xa9\"\n", 2, 12, "U+00E9"},
      {"hiragana", "[[allow]]\ncomment = \"\xe3\x81\x81\"\n", 2, 12, "U+3041"},
      {"arabic presentation", "[[allow]]\ncomment = \"\xef\xb9\xb0\"\n", 2, 12, "U+FE70"},
      // Not UTF-8: refused with the line and column (in characters) of the first bad byte,
      // wherever it is, and what to do (toml++ alone says "invalid utf-8 sequence").
      {"latin-1 byte in comment", "default = \"deny\"\n# caf\xe9\n", 2, 6,
       "not valid UTF-8 here (byte 0xE9); policy files are UTF-8 text: save it as UTF-8"},
      {"latin-1 byte in string", "[[allow]]\ncomment = \"\xe9t\xe9\"\n", 2, 12, "byte 0xE9"},
      {"after a character", "[[allow]]\n# \xe2\x80\x94 \xff\n", 2, 5, "byte 0xFF"},
      {"lone continuation", "\x80" "default = \"deny\"\n", 1, 1, "byte 0x80"},
      {"truncated sequence", "[[allow]]\ncomment = \"\xe2\x80\"\n", 2, 12, "byte 0xE2"},
      {"truncated at the end", "# \xf0\x9f\x98", 1, 3, "byte 0xF0"},
      {"overlong slash", "# \xc0\xaf\n", 1, 3, "byte 0xC0"},
      {"overlong three bytes", "# \xe0\x80\xaf\n", 1, 3, "byte 0xE0"},
      {"surrogate", "# \xed\xa0\x80\n", 1, 3, "byte 0xED"},
      {"above U+10FFFF", "# \xf4\x90\x80\x80\n", 1, 3, "byte 0xF4"},
      {"in a key", "[[allow]]\npr\xf8to = \"tcp\"\n", 2, 3, "byte 0xF8"},
      {"backslash at end of ml string", "a = \"\"\"\\", 1, 0, ""},
      {"backslash at end of string", "a = \"\\", 1, 0, ""},
      {"toml duplicate key", "default = \"deny\"\ndefault = \"allow\"\n", 2, 0, "redefine"},
      {"unknown top-level key", "default = \"deny\"\ncolour = \"red\"\n", 2, 1,
       "unknown key \"colour\"; expected app, default, env"},
      {"clean_env string", "clean_env = \"yes\"\n", 1, 13, "clean_env must be true or false, not a string"},
      {"pass_env string", "pass_env = \"HOME\"\n", 1, 12, "pass_env must be an array of variable names"},
      {"pass_env number", "pass_env = [1]\n", 1, 13, "each pass_env item must be a string"},
      {"pass_env bad name", "pass_env = [\"A=B\"]\n", 1, 13, "pass_env: \"A=B\" is not a variable name"},
      {"pass_env digit first", "pass_env = [\"1X\"]\n", 1, 13, "is not a variable name"},
      {"pass_env star inside", "pass_env = [\"A*B\"]\n", 1, 13, "is not a variable name"},
      {"pass_env star alone", "pass_env = [\"*\"]\n", 1, 13, "is not a variable name"},
      {"default wrong type", "default = 1\n", 1, 11, "default must be a string"},
      {"default bad value", "default = \"maybe\"\n", 1, 11,
       "default = \"maybe\" is not valid; expected \"allow\", \"deny\", \"reject\" or \"prompt\""},
      {"prompt timeout bad", "prompt_timeout = \"soon\"\n", 1, 18, "prompt_timeout = \"soon\""},
      {"prompt timeout short", "prompt_timeout = \"500ms\"\n", 1, 18, "prompt_timeout"},
      {"prompt timeout long", "prompt_timeout = \"2d\"\n", 1, 18, "out of range; expected 1s to 1d"},
      {"prompt timeout action bad", "prompt_timeout_action = \"ask\"\n", 1, 25,
       "expected \"deny\", \"reject\" or \"allow\""},
      {"resolve bad", "resolve = \"names\"\n", 1, 11,
       "resolve = \"names\" is not valid; expected \"any\" (every name) or \"rules\""},
      {"resolve wrong type", "resolve = true\n", 1, 11, "resolve must be a string"},
      {"env bad", "env = \"Home Net\"\n", 1, 7, "not a valid environment name"},
      {"env too long", "env = \"abcdefghijabcdefghijabcdefghijabc\"\n", 1, 7,
       "not a valid environment name"},
      {"env empty", "env = \"\"\n", 1, 7, "not a valid environment name"},
      {"app bad", "app = \"a/b\"\n", 1, 7, "not a valid app name"},
      {"app wrong type", "app = true\n", 1, 7, "app must be a string"},
      {"allow as table", "[allow]\nproto = \"tcp\"\n", 1, 1,
       "allow must be an array of tables: write [[allow]]"},
      {"allow as value", "allow = 1\n", 1, 9, "allow must be an array of tables"},
      {"hosts at top", "hosts = [\"x.com\"]\n", 1, 1, "hosts belongs in a rule"},
      {"to at top", "default = \"deny\"\nto = \"10.0.0.0/8\"\n", 2, 1, "to belongs in a rule"},
      {"unknown rule key", "[[allow]]\nproto = \"tcp\"\nport = 80\n", 3, 1,
       "unknown key \"port\" in [[allow]]; expected proto, direction, hosts, to, from, ports"},
      {"unknown rule key in rule", "[[rule]]\naction = \"allow\"\nuid = \"x\"\n", 3, 1,
       "unknown key \"uid\" in [[rule]]; expected action, proto"},
      {"subtable in rule", "[[deny]]\n[deny.extra]\nx = 1\n", 2, 7, "unknown key \"extra\""},
      {"rule without action", "\n[[rule]]\nproto = \"tcp\"\n", 2, 1,
       "[[rule]] needs action = \"allow\", \"deny\" or \"reject\""},
      {"action in allow", "[[allow]]\naction = \"deny\"\n", 2, 1,
       "action in [[allow]]: the action is implied"},
      {"action bad", "[[rule]]\naction = \"drop\"\n", 2, 10, "action = \"drop\" is not valid"},
      {"action prompt", "[[rule]]\naction = \"prompt\"\n", 2, 10, "write default = \"prompt\""},
      {"action wrong type", "[[rule]]\naction = 1\n", 2, 10, "action must be a string"},
      {"proto bad", "[[allow]]\nproto = \"sctp\"\n", 2, 9,
       "proto = \"sctp\" is not valid; expected \"tcp\", \"udp\", \"icmp\" or \"any\""},
      {"proto wrong type", "[[allow]]\nproto = [\"tcp\"]\n", 2, 9, "proto must be a string"},
      {"bad cidr length", "[[allow]]\nto = \"10.0.0.0/33\"\n", 2, 6,
       "to: \"10.0.0.0/33\" is not an IPv4/IPv6 address or CIDR prefix"},
      {"bad v6 cidr length", "[[allow]]\nto = \"2001:db8::/129\"\n", 2, 6,
       "is not an IPv4/IPv6 address or CIDR prefix"},
      {"bad address in array", "[[allow]]\nto = [\"10.0.0.1\",\n  \"10.0.0.300\"]\n", 3, 3,
       "\"10.0.0.300\" is not an IPv4/IPv6"},
      {"host name in to", "[[allow]]\nto = \"example.com\"\n", 2, 6,
       "for a host name write hosts = \"example.com\""},
      {"host bits set", "[[allow]]\nto = \"10.1.2.3/8\"\n", 2, 6,
       "to: \"10.1.2.3/8\" has host bits set; write \"10.0.0.0/8\" for the prefix or "
       "\"10.1.2.3\" for the single address"},
      {"v6 host bits set", "[[allow]]\nto = \"2001:db8::1/32\"\n", 2, 6, "has host bits set"},
      {"to empty array", "[[allow]]\nto = []\n", 2, 6, "to = [] is empty"},
      {"to wrong type", "[[allow]]\nto = 10\n", 2, 6, "to must be a string or an array"},
      {"to array of ints", "[[allow]]\nto = [10]\n", 2, 7, "to must hold strings"},
      {"port zero", "[[allow]]\nports = 0\n", 2, 9, "ports: 0 is out of range; ports are 1-65535"},
      {"port too big", "[[allow]]\nports = [80, 65536]\n", 2, 14, "65536 is out of range"},
      {"port negative", "[[allow]]\nports = -1\n", 2, 9, "-1 is out of range"},
      {"range too big", "[[allow]]\nports = \"1000-70000\"\n", 2, 9, "70000 in \"1000-70000\""},
      {"range from zero", "[[allow]]\nports = \"0-10\"\n", 2, 9, "0 in \"0-10\" is out of range"},
      {"range lo > hi", "[[allow]]\nports = \"9000-8000\"\n", 2, 9,
       "ports: \"9000-8000\" has lo > hi"},
      {"range garbage", "[[allow]]\nports = \"http\"\n", 2, 9, "is not a port range"},
      {"range half", "[[allow]]\nports = \"80-\"\n", 2, 9, "is not a port range"},
      {"ports float", "[[allow]]\nports = 80.0\n", 2, 9, "ports must be an integer"},
      {"ports empty", "[[allow]]\nports = []\n", 2, 9, "ports = [] is empty"},
      {"ports nested", "[[allow]]\nports = [[80]]\n", 2, 10, "not an array"},
      {"ports with icmp", "[[allow]]\nports = 80\nproto = \"icmp\"\n", 2, 9,
       "ports cannot be used with proto = \"icmp\""},
      {"host in rule", "[[deny]]\nhost = \"example.com\"\n", 2, 1,
       "unknown key \"host\" in [[deny]]; write hosts = \"name\""},
      {"direction bad", "[[allow]]\ndirection = \"up\"\n", 2, 13,
       "direction = \"up\" is not valid; expected \"outbound\" or \"inbound\""},
      {"comment wrong type", "[[allow]]\ncomment = 3\n", 2, 11, "comment must be a string"},
      {"error in a later rule", "[[allow]]\nports = 80\n\n[[deny]]\nports = 0\n", 5, 9,
       "out of range"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto r = parsePolicy(c.text, "app.toml");
    ASSERT_FALSE(r) << c.what << " parsed";
    const PolicyError& e = r.error();
    EXPECT_EQ(e.file, "app.toml");
    EXPECT_EQ(e.line, c.line) << e.str();
    if (c.column != 0) {
      EXPECT_EQ(e.column, c.column) << e.str();
    }
    EXPECT_NE(e.reason.find(c.reason_has), std::string::npos) << e.str();
    EXPECT_EQ(e.str().rfind("app.toml:" + std::to_string(c.line) + ":", 0), 0u) << e.str();
  }
}

TEST(PolicyError, Str) {
  EXPECT_EQ((PolicyError{"a.toml", 3, 7, "bad"}).str(), "a.toml:3:7: bad");
  EXPECT_EQ((PolicyError{"a.toml", 3, 0, "bad"}).str(), "a.toml:3: bad");
  EXPECT_EQ((PolicyError{"a.toml", 0, 0, "bad"}).str(), "a.toml: bad");
}

TEST(PolicyNames, AllValues) {
  EXPECT_STREQ(actionName(Action::kAllow), "allow");
  EXPECT_STREQ(actionName(Action::kDeny), "deny");
  EXPECT_STREQ(actionName(Action::kReject), "reject");
  EXPECT_STREQ(protocolName(Protocol::kAny), "any");
  EXPECT_STREQ(protocolName(Protocol::kTcp), "tcp");
  EXPECT_STREQ(protocolName(Protocol::kUdp), "udp");
  EXPECT_STREQ(protocolName(Protocol::kIcmp), "icmp");
  EXPECT_STREQ(defaultActionName(DefaultAction::kPrompt), "prompt");
  EXPECT_STREQ(directionName(Direction::kInbound), "inbound");
}

}  // namespace
}  // namespace cw::policy
