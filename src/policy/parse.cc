// parsePolicy: TOML text → AppPolicy. The only file that includes toml++ (header-only,
// TOML_EXCEPTIONS=0; see CMakeLists.txt), so nothing here can throw.
//
// Every error names the key, the bad value and what is accepted, at the value's position.
// Keys we plan to support later are recognised and rejected by name, so a policy written for
// a newer cellwall fails loudly instead of silently meaning something else.

// toml++ 3.3 checks a precondition in parser::parse_key() that malformed table headers such as
// "[[=" or "[[[1]]]" violate (marzer/tomlplusplus#294, #301): assert() aborts in debug builds
// and, under NDEBUG with clang, TOML_ASSUME turns it into undefined behaviour. The code right
// after the check already reports the proper parse error, so the check is switched off here
// (the macro has no #ifndef guard, hence the redefinition after preprocessor.h). Kept by the
// fuzz corpus: fuzz/corpus/policy_parse/crash-*.
#include <toml++/impl/preprocessor.h>
#undef TOML_ASSERT_ASSUME
#define TOML_ASSERT_ASSUME(expr) static_assert(true)
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "policy/toml_text.h"

namespace cw::policy {

namespace {

using Unexp = Unexpected<PolicyError>;

// Parsing state shared by the helpers: the file name for errors, "now" for `until` checks and
// whether the text must be a single rule (parseRule).
class Parser {
 public:
  Parser(std::string_view filename, std::int64_t now_ms, bool single_rule)
      : file_(filename), now_ms_(now_ms), single_rule_(single_rule) {}

  PolicyError error(const toml::source_region& at, std::string reason) const {
    return PolicyError{file_, at.begin.line, at.begin.column, std::move(reason)};
  }

  Result<AppPolicy, PolicyError> parse(std::string_view text, std::uint32_t first_rule_id);

 private:
  // One [[allow]] / [[deny]] / [[rule]] table before ids are assigned.
  struct Pending {
    toml::source_position at;
    Rule rule;
  };

  Result<void, PolicyError> parseRule(const toml::table& t, std::string_view section,
                                      std::optional<Action> implied, Rule& out) const;
  Result<void, PolicyError> parsePassEnv(const toml::node& v, std::vector<std::string>& out) const;
  Result<void, PolicyError> parseAddresses(const toml::node& v, std::string_view key,
                                           std::vector<Cidr>& out) const;
  Result<void, PolicyError> parseHosts(const toml::node& v, std::vector<HostPattern>& out) const;
  // exe, process, user, parent, pid: one value or an array of them.
  Result<void, PolicyError> parseProcessKey(const toml::node& v, std::string_view key, RuleMatch& m) const;
  Result<void, PolicyError> parsePorts(const toml::node& v, std::vector<PortRange>& out) const;
  Result<PortRange, PolicyError> parsePortItem(const toml::node& v) const;
  Result<void, PolicyError> parseUntil(const toml::node& v, Lifetime& out) const;
  Result<void, PolicyError> parseUntilItem(const toml::node& v, bool in_array,
                                           Lifetime& out) const;

  std::string file_;
  std::int64_t now_ms_;
  bool single_rule_;
};

std::string quoted(std::string_view s) {
  std::string q = "\"";
  for (char c : s) {
    // Keep messages one line and printable whatever the file contained.
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      q += '\\';
      q += c;
    } else if (u < 0x20 || u == 0x7f) {
      q += '?';
    } else {
      q += c;
    }
  }
  q += '"';
  return q;
}

const char* typeName(const toml::node& v) {
  switch (v.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::none: break;
  }
  return "nothing";
}

bool isNameChar(char c, bool allow_dot_underscore) {
  if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') return true;
  return allow_dot_underscore && (c == '.' || c == '_');
}

// Names end up in namespace, interface and cgroup names, so keep them to a safe alphabet.
bool validName(std::string_view s, bool allow_dot_underscore) {
  if (s.empty() || s.size() > 32) return false;
  if (s.front() == '-' || s.front() == '.') return false;
  return std::all_of(s.begin(), s.end(),
                     [&](char c) { return isNameChar(c, allow_dot_underscore); });
}

// Returns the string value or an error "KEY must be a string (EXPECTED), not a float".
Result<std::string_view, PolicyError> needString(const Parser& p, const toml::node& v,
                                                 std::string_view key,
                                                 std::string_view expected) {
  if (const auto* s = v.as_string()) return std::string_view(s->get());
  return Unexp(p.error(v.source(), std::string(key) + " must be a string (" +
                                       std::string(expected) + "), not " + typeName(v)));
}

// What the text itself must be before toml++ sees it, checked in one pass with the line and
// column (in code points) of the first problem:
//  - UTF-8 (TOML requires it; docs/policy.md promises a refusal). toml++ 3.3 refuses malformed
//    bytes too, but as "Encountered invalid utf-8 sequence" at a column counted in bytes; this
//    says what to do, and checkPolicyText lets `cellwall` say it before the text leaves (the
//    command's JSON cannot carry the bytes: they were sent as U+FFFD and the file accepted).
//  - None of the code points toml++ 3.3 mishandles: its is_non_ascii_horizontal_whitespace()
//    reaches __builtin_unreachable() for U+00A1-U+0499, U+2C5E-U+3057 (but U+3000) and
//    U+FB26-U+FEFE, and the parser asks it about characters in many error paths (after a bad
//    bare value, after a line-ending backslash, ...), so no lexing of ours can tell which
//    occurrences are safe. Refused anywhere, comments included, until toml++ is fixed; others
//    (U+2014, CJK, emoji) pass.
std::optional<PolicyError> findTextProblem(std::string_view text, std::string_view file) {
  std::uint32_t line = 1;
  std::uint32_t column = 1;
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = decodeUtf8(text, i, cp);
    if (n == 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(text[i])));
      return PolicyError{std::string(file), line, column,
                         std::string("the file is not valid UTF-8 here (byte ") + hex +
                             "); policy files are UTF-8 text: save it as UTF-8 (e.g. iconv -f "
                             "latin1 -t utf-8) or remove the stray byte"};
    }
    if (isToml33Hazard(cp)) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(cp));
      return PolicyError{std::string(file), line, column,
                         std::string("character ") + hex +
                             " is not supported yet (a bug in the TOML library, toml++ 3.3, "
                             "mishandles it); policy files may use ASCII and most other "
                             "Unicode, also in comments"};
    }
    i += n;
    if (cp == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return std::nullopt;
}

Result<AppPolicy, PolicyError> Parser::parse(std::string_view text,
                                             std::uint32_t first_rule_id) {
  if (auto problem = findTextProblem(text, file_)) return Unexp(std::move(*problem));
  toml::parse_result parsed = toml::parse(text, std::string_view(file_));
  if (!parsed) {
    const auto& e = parsed.error();
    return Unexp(error(e.source(), std::string(e.description())));
  }
  const toml::table& top = parsed.table();

  AppPolicy pol;
  pol.origin = file_;
  std::vector<Pending> pending;

  for (auto&& [key, value] : top) {
    std::string_view k = key.str();
    if (single_rule_ && k != "allow" && k != "deny" && k != "rule")
      return Unexp(error(key.source(), "unexpected key " + quoted(k) +
                                           "; a stored rule is exactly one [[allow]], [[deny]] "
                                           "or [[rule]] table"));
    if (k == "app") {
      auto s = needString(*this, value, "app", "the app's name");
      if (!s) return Unexp(std::move(s).error());
      if (!validName(*s, true))
        return Unexp(error(value.source(),
                           "app = " + quoted(*s) +
                               " is not a valid app name; expected 1-32 characters of a-z, "
                               "0-9, '-', '_' and '.', not starting with '-' or '.'"));
      pol.app = std::string(*s);
    } else if (k == "default") {
      auto s = needString(*this, value, "default", "\"allow\", \"deny\", \"reject\" or \"prompt\"");
      if (!s) return Unexp(std::move(s).error());
      if (*s == "allow") {
        pol.default_action = DefaultAction::kAllow;
      } else if (*s == "deny") {
        pol.default_action = DefaultAction::kDeny;
      } else if (*s == "reject") {
        pol.default_action = DefaultAction::kReject;
      } else if (*s == "prompt") {
        pol.default_action = DefaultAction::kPrompt;
      } else {
        return Unexp(error(value.source(), "default = " + quoted(*s) +
                                               " is not valid; expected \"allow\", \"deny\", "
                                               "\"reject\" or \"prompt\""));
      }
    } else if (k == "prompt_timeout") {
      auto s = needString(*this, value, "prompt_timeout", "a duration such as \"30s\" or \"2m\"");
      if (!s) return Unexp(std::move(s).error());
      auto ms = parseDuration(*s);
      if (!ms) return Unexp(error(value.source(), "prompt_timeout = " + quoted(*s) + ": " + ms.error()));
      if (*ms < 1000 || *ms > 86'400'000)
        return Unexp(error(value.source(), "prompt_timeout = " + quoted(*s) +
                                               " is out of range; expected 1s to 1d"));
      pol.prompt_timeout_ms = *ms;
    } else if (k == "prompt_timeout_action") {
      auto s = needString(*this, value, "prompt_timeout_action", "\"deny\", \"reject\" or \"allow\"");
      if (!s) return Unexp(std::move(s).error());
      auto a = actionFromName(*s);
      if (!a)
        return Unexp(error(value.source(), "prompt_timeout_action = " + quoted(*s) +
                                               " is not valid; expected \"deny\", \"reject\" or \"allow\""));
      pol.prompt_timeout_action = *a;
    } else if (k == "env") {
      auto s = needString(*this, value, "env", "a network environment name");
      if (!s) return Unexp(std::move(s).error());
      if (!validName(*s, false))
        return Unexp(error(value.source(),
                           "env = " + quoted(*s) +
                               " is not a valid environment name; expected 1-32 characters "
                               "of a-z, 0-9 and '-', not starting with '-'"));
      pol.env = std::string(*s);
    } else if (k == "resolve") {
      auto s = needString(*this, value, "resolve", "\"any\" or \"rules\"");
      if (!s) return Unexp(std::move(s).error());
      if (*s == "any") {
        pol.resolve = Resolve::kAny;
      } else if (*s == "rules") {
        pol.resolve = Resolve::kRules;
      } else {
        return Unexp(error(value.source(), "resolve = " + quoted(*s) +
                                               " is not valid; expected \"any\" (every name) or "
                                               "\"rules\" (only names an [[allow]] rule's hosts "
                                               "match)"));
      }
    } else if (k == "clean_env") {
      const auto* b = value.as_boolean();
      if (b == nullptr)
        return Unexp(error(value.source(), std::string("clean_env must be true or false, not ") + typeName(value)));
      pol.clean_env = b->get();
    } else if (k == "pass_env") {
      auto r = parsePassEnv(value, pol.pass_env);
      if (!r) return Unexp(std::move(r).error());
    } else if (k == "allow" || k == "deny" || k == "rule") {
      std::optional<Action> implied;
      if (k == "allow") implied = Action::kAllow;
      if (k == "deny") implied = Action::kDeny;
      const auto* arr = value.as_array();
      if (arr == nullptr || !arr->is_array_of_tables())
        return Unexp(error(value.source(), std::string(k) + " must be an array of tables: write [[" +
                                               std::string(k) + "]] above each rule"));
      std::string section = "[[" + std::string(k) + "]]";
      for (const auto& elem : *arr) {
        Pending pr;
        pr.at = elem.source().begin;
        // is_array_of_tables() above guarantees every element is a table.
        auto r = parseRule(*elem.as_table(), section, implied, pr.rule);
        if (!r) return Unexp(std::move(r).error());
        pr.rule.origin = file_ + ":" + std::to_string(pr.at.line);
        pending.push_back(std::move(pr));
      }
    } else if (k == "hosts" || k == "host" || k == "to" || k == "from") {
      return Unexp(error(key.source(), std::string(k) +
                                           " belongs in a rule: put it under [[allow]], "
                                           "[[deny]] or [[rule]]"));
    } else {
      return Unexp(error(key.source(),
                         "unknown key " + quoted(k) +
                             "; expected app, default, env, prompt_timeout, prompt_timeout_action, "
                             "resolve, clean_env, pass_env, [[allow]], [[deny]] or [[rule]]"));
    }
  }

  // toml++ iterates keys in name order; ids follow the order rules appear in the file.
  std::stable_sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) {
    return a.at.line != b.at.line ? a.at.line < b.at.line : a.at.column < b.at.column;
  });
  if (single_rule_ && pending.size() != 1)
    return Unexp(PolicyError{file_, pending.empty() ? 1 : pending[1].at.line,
                             pending.empty() ? 1 : pending[1].at.column,
                             "a stored rule is exactly one [[allow]], [[deny]] or [[rule]] "
                             "table; found " + std::to_string(pending.size())});
  pol.rules.reserve(pending.size());
  std::uint32_t id = first_rule_id;
  for (auto& pr : pending) {
    pr.rule.id = id++;
    pol.rules.push_back(std::move(pr.rule));
  }
  return pol;
}

// An environment variable's name as a shell would take it, or a prefix of names ending in '*'.
bool validEnvPattern(std::string_view s) {
  if (s.size() > kMaxPassEnvLength) return false;
  if (!s.empty() && s.back() == '*') s.remove_suffix(1);
  if (s.empty()) return false;
  if (s.front() >= '0' && s.front() <= '9') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

Result<void, PolicyError> Parser::parsePassEnv(const toml::node& v, std::vector<std::string>& out) const {
  const auto* arr = v.as_array();
  if (arr == nullptr)
    return Unexp(error(v.source(), std::string("pass_env must be an array of variable names such as "
                                               "[\"DBUS_SESSION_BUS_ADDRESS\", \"MYAPP_*\"], not ") +
                                       typeName(v)));
  if (arr->size() > kMaxPassEnv)
    return Unexp(error(v.source(), "pass_env names " + std::to_string(arr->size()) + " variables; at most " +
                                       std::to_string(kMaxPassEnv) + " (use a PREFIX_* pattern for a family)"));
  for (const auto& item : *arr) {
    auto s = needString(*this, item, "each pass_env item", "a variable name");
    if (!s) return Unexp(std::move(s).error());
    if (!validEnvPattern(*s))
      return Unexp(error(item.source(), "pass_env: " + quoted(*s) +
                                            " is not a variable name; expected letters, digits and '_' "
                                            "(not starting with a digit), optionally ending in '*' for "
                                            "every name with that prefix, at most " +
                                            std::to_string(kMaxPassEnvLength) + " characters"));
    if (std::find(out.begin(), out.end(), *s) == out.end()) out.emplace_back(*s);
  }
  return {};
}

Result<void, PolicyError> Parser::parseRule(const toml::table& t, std::string_view section,
                                            std::optional<Action> implied, Rule& out) const {
  std::string in = " in " + std::string(section);
  out.action = implied.value_or(Action::kDeny);
  bool have_action = implied.has_value();
  const toml::node* ports_node = nullptr;
  // Keys checked against each other once the whole table is read (toml++ iterates keys in
  // name order, not file order).
  std::optional<toml::source_region> to_at, from_at, hosts_at;

  for (auto&& [key, value] : t) {
    std::string_view k = key.str();
    if (k == "action") {
      if (implied)
        return Unexp(error(key.source(), "action" + in + ": the action is implied by " +
                                             std::string(section) +
                                             "; use [[rule]] to set it explicitly"));
      auto s = needString(*this, value, "action", "\"allow\", \"deny\" or \"reject\"");
      if (!s) return Unexp(std::move(s).error());
      if (auto a = actionFromName(*s)) {
        out.action = *a;
      } else if (*s == "prompt") {
        return Unexp(error(value.source(), "action = \"prompt\": a rule decides; to be asked about "
                                           "what no rule covers, write default = \"prompt\""));
      } else {
        return Unexp(error(value.source(), "action = " + quoted(*s) +
                                               " is not valid; expected \"allow\", \"deny\" "
                                               "or \"reject\""));
      }
      have_action = true;
    } else if (k == "proto") {
      auto s = needString(*this, value, "proto", "\"tcp\", \"udp\", \"icmp\" or \"any\"");
      if (!s) return Unexp(std::move(s).error());
      if (*s == "tcp") {
        out.match.protocol = Protocol::kTcp;
      } else if (*s == "udp") {
        out.match.protocol = Protocol::kUdp;
      } else if (*s == "icmp") {
        out.match.protocol = Protocol::kIcmp;
      } else if (*s == "any") {
        out.match.protocol = Protocol::kAny;
      } else {
        return Unexp(error(value.source(), "proto = " + quoted(*s) +
                                               " is not valid; expected \"tcp\", \"udp\", "
                                               "\"icmp\" or \"any\""));
      }
    } else if (k == "to" || k == "from") {
      auto r = parseAddresses(value, k, out.match.addresses);
      if (!r) return r;
      (k == "to" ? to_at : from_at) = key.source();
    } else if (k == "hosts") {
      auto r = parseHosts(value, out.match.hosts);
      if (!r) return r;
      hosts_at = key.source();
    } else if (k == "exe" || k == "process" || k == "user" || k == "parent" || k == "pid") {
      auto r = parseProcessKey(value, k, out.match);
      if (!r) return r;
    } else if (k == "host") {
      return Unexp(error(key.source(), "unknown key \"host\"" + in +
                                           "; write hosts = \"name\" or hosts = [...]"));
    } else if (k == "ports") {
      auto r = parsePorts(value, out.match.ports);
      if (!r) return r;
      ports_node = &value;
    } else if (k == "comment") {
      auto s = needString(*this, value, "comment", "free text");
      if (!s) return Unexp(std::move(s).error());
      out.comment = std::string(*s);
    } else if (k == "direction") {
      auto s = needString(*this, value, "direction", "\"outbound\" or \"inbound\"");
      if (!s) return Unexp(std::move(s).error());
      if (*s == "outbound") {
        out.match.direction = Direction::kOutbound;
      } else if (*s == "inbound") {
        out.match.direction = Direction::kInbound;
      } else {
        return Unexp(error(value.source(), "direction = " + quoted(*s) +
                                               " is not valid; expected \"outbound\" or "
                                               "\"inbound\""));
      }
    } else if (k == "for") {
      auto s = needString(*this, value, "for", "a duration such as \"15m\" or \"1h30m\"");
      if (!s) return Unexp(std::move(s).error());
      auto d = parseDuration(*s);
      if (!d) return Unexp(error(value.source(), "for: " + d.error()));
      out.lifetime.for_ms = *d;
    } else if (k == "until") {
      auto r = parseUntil(value, out.lifetime);
      if (!r) return r;
    } else if (k == "connections") {
      const auto* i = value.as_integer();
      if (i == nullptr)
        return Unexp(error(value.source(), std::string("connections must be an integer (how "
                                                       "many connections the rule decides), "
                                                       "not ") +
                                               typeName(value)));
      std::int64_t n = i->get();
      if (auto why = connectionsProblem(n)) return Unexp(error(value.source(), std::move(*why)));
      out.lifetime.connections = static_cast<std::uint32_t>(n);
    } else {
      std::string keys =
          "proto, direction, hosts, to, from, ports, exe, process, user, parent, pid, for, until, "
          "connections or comment";
      if (!implied) keys = "action, " + keys;
      return Unexp(error(key.source(), "unknown key " + quoted(k) + in + "; expected " + keys));
    }
  }

  if (!have_action)
    return Unexp(error(t.source(), std::string(section) +
                                       " needs action = \"allow\", \"deny\" or \"reject\""));
  if (ports_node != nullptr && out.match.protocol == Protocol::kIcmp)
    return Unexp(error(ports_node->source(),
                       "ports cannot be used with proto = \"icmp\"; remove ports or use "
                       "proto = \"tcp\", \"udp\" or \"any\""));
  bool inbound = out.match.direction == Direction::kInbound;
  if (inbound && to_at)
    return Unexp(error(*to_at, "to in an inbound " + std::string(section) +
                                   ": inbound rules name the connecting side with from; to is "
                                   "for outbound rules"));
  if (inbound && hosts_at)
    return Unexp(error(*hosts_at, "hosts in an inbound " + std::string(section) +
                                      ": host names come from the cell's own DNS lookups and "
                                      "match outbound connections only; use from with "
                                      "addresses"));
  if (!inbound && from_at)
    return Unexp(error(*from_at, "from" + in +
                                     ": from is for inbound rules (add direction = "
                                     "\"inbound\"); outbound rules use to"));
  if (hosts_at && to_at) {
    auto later = [](const toml::source_region& a, const toml::source_region& b) {
      return a.begin.line != b.begin.line ? a.begin.line > b.begin.line
                                          : a.begin.column > b.begin.column;
    };
    const toml::source_region& at = later(*hosts_at, *to_at) ? *hosts_at : *to_at;
    return Unexp(error(at, "hosts and to" + in +
                               ": a rule names either host names or addresses; write two "
                               "rules"));
  }
  return {};
}

Result<void, PolicyError> Parser::parseHosts(const toml::node& v,
                                             std::vector<HostPattern>& out) const {
  auto one = [&](const toml::node& n) -> Result<void, PolicyError> {
    const auto* s = n.as_string();
    if (s == nullptr)
      return Unexp(error(n.source(), std::string("hosts must hold strings (host names such as "
                                                 "\"api.example.org\" or \"*.example.org\"), "
                                                 "not ") +
                                         typeName(n)));
    auto p = parseHostPattern(s->get());
    if (!p) return Unexp(error(n.source(), "hosts: " + p.error()));
    out.push_back(std::move(p).value());
    return {};
  };
  if (const auto* arr = v.as_array()) {
    if (arr->empty())
      return Unexp(error(v.source(), "hosts = [] is empty; omit hosts to match any destination"));
    for (const auto& n : *arr) {
      auto r = one(n);
      if (!r) return r;
    }
    return {};
  }
  if (v.is_string()) return one(v);
  return Unexp(error(v.source(), std::string("hosts must be a string or an array of strings "
                                             "(host names), not ") +
                                     typeName(v)));
}

Result<void, PolicyError> Parser::parseProcessKey(const toml::node& v, std::string_view key,
                                                  RuleMatch& m) const {
  const std::string k(key);
  auto one = [&](const toml::node& n) -> Result<void, PolicyError> {
    if (k == "pid" || (k == "user" && n.is_integer())) {
      const auto* i = n.as_integer();
      if (i == nullptr)
        return Unexp(error(n.source(), "pid must be an integer (a process id) or an array of them, not " +
                                           std::string(typeName(n))));
      const std::int64_t x = i->get();
      if (x < (k == "pid" ? 1 : 0) || x > 4294967294LL)
        return Unexp(error(n.source(), k + " = " + std::to_string(x) + " is out of range"));
      if (k == "pid")
        m.pids.push_back(static_cast<std::uint32_t>(x));
      else
        m.users.push_back(std::to_string(x));
      return {};
    }
    const auto* s = n.as_string();
    if (s == nullptr)
      return Unexp(error(n.source(), k + " must be a string" + (k == "user" ? " or a uid" : std::string()) +
                                         ", or an array of them, not " + typeName(n)));
    const std::string& t = s->get();
    if (t.empty() || t.size() > 4096 || t.find('\0') != std::string::npos)
      return Unexp(error(n.source(), k + " = " + quoted(t) + " is empty or not a valid value"));
    if ((k == "exe" || k == "parent") && t.front() != '/' && t.front() != '*')
      return Unexp(error(n.source(), k + " = " + quoted(t) +
                                         ": write the executable's absolute path (a glob such as "
                                         "\"/usr/bin/*\" is fine); for a program's name use process"));
    if (k == "process" && t.size() > 15 && t.find_first_of("*?[") == std::string::npos)
      return Unexp(error(n.source(), "process = " + quoted(t) +
                                         " is longer than 15 bytes, and the kernel keeps only the "
                                         "first 15 of a process name; use exe for the full path"));
    if (k == "user") {
      const bool name = std::all_of(t.begin(), t.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || c == '.' || c == '$';
      });
      if (!name || t.size() > 64)
        return Unexp(error(n.source(), "user = " + quoted(t) + " is not a user name or uid"));
    }
    (k == "exe" ? m.exe : k == "process" ? m.process : k == "user" ? m.users : m.parent).push_back(t);
    return {};
  };
  if (const auto* arr = v.as_array()) {
    if (arr->empty())
      return Unexp(error(v.source(), k + " = [] is empty; omit " + k + " to match any process"));
    for (const auto& n : *arr) {
      auto r = one(n);
      if (!r) return r;
    }
    return {};
  }
  return one(v);
}

Result<void, PolicyError> Parser::parseUntilItem(const toml::node& v, bool in_array,
                                                 Lifetime& out) const {
  const char* how =
      "until must be a date and time with a time zone (until = 2026-12-01T10:00:00Z, or the "
      "same as a string) or \"exit\"";
  std::int64_t t = 0;
  if (const auto* s = v.as_string()) {
    if (s->get() == "exit") {
      out.until_exit = true;
      return {};
    }
    auto r = parseTimestamp(s->get());
    if (!r) return Unexp(error(v.source(), "until: " + r.error() + ", or \"exit\""));
    t = *r;
  } else if (const auto* dt = v.as_date_time()) {
    const toml::date_time& d = dt->get();
    if (!d.offset)
      return Unexp(error(v.source(), "until has no time zone; add Z for UTC or an offset such "
                                     "as +02:00"));
    char buf[64];
    int off = d.offset->minutes;
    std::snprintf(buf, sizeof buf, "%04u-%02u-%02uT%02u:%02u:%02u.%09u%c%02d:%02d",
                  unsigned{d.date.year}, unsigned{d.date.month}, unsigned{d.date.day},
                  unsigned{d.time.hour}, unsigned{d.time.minute}, unsigned{d.time.second},
                  unsigned{d.time.nanosecond}, off < 0 ? '-' : '+', std::abs(off) / 60,
                  std::abs(off) % 60);
    auto r = parseTimestamp(buf);
    if (!r) return Unexp(error(v.source(), "until: " + r.error()));
    t = *r;
  } else if (v.is_array() && in_array) {
    return Unexp(error(v.source(), "until = [...] must not nest arrays"));
  } else {
    return Unexp(error(v.source(), std::string(how) + ", not " + typeName(v)));
  }
  if (now_ms_ > 0 && t <= now_ms_)
    return Unexp(error(v.source(), "until: " + formatTimestamp(t) + " is in the past (now is " +
                                       formatTimestamp(now_ms_) + ")"));
  out.until_ms = out.until_ms == 0 ? t : std::min(out.until_ms, t);
  return {};
}

Result<void, PolicyError> Parser::parseUntil(const toml::node& v, Lifetime& out) const {
  // An array combines "exit" and a time: whichever comes first. Several times keep the first.
  if (const auto* arr = v.as_array()) {
    if (arr->empty())
      return Unexp(error(v.source(), "until = [] is empty; omit until for no end time"));
    for (const auto& n : *arr) {
      auto r = parseUntilItem(n, true, out);
      if (!r) return r;
    }
    return {};
  }
  return parseUntilItem(v, false, out);
}

Result<void, PolicyError> Parser::parseAddresses(const toml::node& v, std::string_view key,
                                                 std::vector<Cidr>& out) const {
  const std::string k(key);
  auto one = [&](const toml::node& n) -> Result<void, PolicyError> {
    const auto* s = n.as_string();
    if (s == nullptr)
      return Unexp(error(n.source(), k + " must hold strings (an IPv4/IPv6 address or CIDR "
                                         "prefix), not " + typeName(n)));
    std::string_view text = s->get();
    auto c = Cidr::parse(text);
    if (!c) {
      // Letters other than hex digits mean someone wrote a host name.
      bool looks_like_name = std::any_of(text.begin(), text.end(), [](char ch) {
        return (ch >= 'g' && ch <= 'z') || (ch >= 'G' && ch <= 'Z');
      });
      std::string reason = k + ": " + quoted(text) +
                           " is not an IPv4/IPv6 address or CIDR prefix (e.g. \"10.0.0.0/8\", "
                           "\"2001:db8::/32\")";
      if (looks_like_name) {
        reason += k == "to" ? "; for a host name write hosts = " + quoted(text)
                            : "; inbound rules match addresses only";
      }
      return Unexp(error(n.source(), std::move(reason)));
    }
    // Cidr::parse clears host bits. "192.168.1.5/16" is more likely a typo for /32 than a wish
    // to open the whole /16, and a firewall should not guess wider: refuse and show both.
    auto slash = text.find('/');
    if (slash != std::string_view::npos) {
      auto bare = IpAddr::parse(text.substr(0, slash));
      if (bare && *bare != c->addr)
        return Unexp(error(n.source(), k + ": " + quoted(text) + " has host bits set; write " +
                                           quoted(c->str()) + " for the prefix or " +
                                           quoted(bare->str()) + " for the single address"));
    }
    out.push_back(*c);
    return {};
  };

  if (const auto* arr = v.as_array()) {
    if (arr->empty())
      return Unexp(error(v.source(), k + " = [] is empty; omit " + k + " to match any address"));
    for (const auto& n : *arr) {
      auto r = one(n);
      if (!r) return r;
    }
    return {};
  }
  if (v.is_string()) return one(v);
  return Unexp(error(v.source(), k + " must be a string or an array of strings (IPv4/IPv6 "
                                     "addresses or CIDR prefixes), not " + typeName(v)));
}

Result<PortRange, PolicyError> Parser::parsePortItem(const toml::node& v) const {
  auto range_error = [&](std::string what) {
    return Unexp(error(v.source(), "ports: " + what + " is out of range; ports are 1-65535"));
  };
  if (const auto* i = v.as_integer()) {
    std::int64_t n = i->get();
    if (n < 1 || n > 65535) return range_error(std::to_string(n));
    auto p = static_cast<std::uint16_t>(n);
    return PortRange{p, p};
  }
  if (const auto* s = v.as_string()) {
    std::string_view text = s->get();
    auto bad = [&]() {
      return Unexp(error(v.source(), "ports: " + quoted(text) +
                                         " is not a port range; write \"lo-hi\" (e.g. "
                                         "\"8000-8100\") or an integer"));
    };
    auto num = [](std::string_view d, std::uint32_t& n) {
      if (d.empty() || d.size() > 5) return false;
      auto [p, ec] = std::from_chars(d.data(), d.data() + d.size(), n);
      return ec == std::errc() && p == d.data() + d.size();
    };
    auto dash = text.find('-');
    std::uint32_t lo = 0;
    std::uint32_t hi = 0;
    if (dash == std::string_view::npos) {
      if (!num(text, lo)) return bad();
      hi = lo;
    } else if (!num(text.substr(0, dash), lo) || !num(text.substr(dash + 1), hi)) {
      return bad();
    }
    if (lo < 1 || lo > 65535) return range_error(std::to_string(lo) + " in " + quoted(text));
    if (hi < 1 || hi > 65535) return range_error(std::to_string(hi) + " in " + quoted(text));
    if (lo > hi)
      return Unexp(error(v.source(), "ports: " + quoted(text) +
                                         " has lo > hi; write the lower port first"));
    return PortRange{static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi)};
  }
  return Unexp(error(v.source(), std::string("ports must hold integers or \"lo-hi\" strings, "
                                             "not ") +
                                     typeName(v)));
}

Result<void, PolicyError> Parser::parsePorts(const toml::node& v,
                                             std::vector<PortRange>& out) const {
  if (const auto* arr = v.as_array()) {
    if (arr->empty())
      return Unexp(error(v.source(), "ports = [] is empty; omit ports to match any port"));
    for (const auto& n : *arr) {
      if (n.is_array())
        return Unexp(error(n.source(), "ports must hold integers or \"lo-hi\" strings, not "
                                       "an array"));
      auto r = parsePortItem(n);
      if (!r) return Unexp(std::move(r).error());
      out.push_back(*r);
    }
    return {};
  }
  if (v.is_integer() || v.is_string()) {
    auto r = parsePortItem(v);
    if (!r) return Unexp(std::move(r).error());
    out.push_back(*r);
    return {};
  }
  return Unexp(error(v.source(), std::string("ports must be an integer, a \"lo-hi\" string or "
                                             "an array of them, not ") +
                                     typeName(v)));
}

}  // namespace

std::optional<PolicyError> checkPolicyText(std::string_view text, std::string_view filename) {
  return findTextProblem(text, filename);
}

Result<AppPolicy, PolicyError> parsePolicy(std::string_view text, std::string_view filename,
                                           std::uint32_t first_rule_id, std::int64_t now_ms) {
  return Parser(filename, now_ms, false).parse(text, first_rule_id);
}

Result<Rule, PolicyError> parseRule(std::string_view text, std::string_view origin,
                                    std::uint32_t id, std::int64_t now_ms) {
  auto p = Parser(origin, now_ms, true).parse(text, id);
  if (!p) return Unexp(std::move(p).error());
  Rule r = std::move(p->rules.front());
  r.origin = std::string(origin);
  return r;
}

}  // namespace cw::policy
