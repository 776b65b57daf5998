// exportPolicy / exportRule: the canonical TOML text of a policy or a rule. One spelling per
// value, keys in a fixed order, defaults left out, so that the text is a function of the model
// and parse → export is a fixed point (tested as a property in parse_test.cc).

#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>

#include "policy/policy.h"
#include "policy/toml_text.h"

namespace cw::policy {

namespace {

void appendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// A TOML basic string. Escapes what TOML forbids raw (controls, DEL) and what toml++ 3.3
// cannot read raw (toml_text.h); malformed UTF-8 becomes U+FFFD, as TOML text must be UTF-8.
std::string tomlString(std::string_view s) {
  std::string out = "\"";
  std::size_t i = 0;
  while (i < s.size()) {
    std::uint32_t cp = 0;
    std::size_t n = decodeUtf8(s, i, cp);
    if (n == 0) {
      cp = 0xfffd;
      n = 1;
    }
    i += n;
    char buf[16];
    switch (cp) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\b': out += "\\b"; continue;
      case '\t': out += "\\t"; continue;
      case '\n': out += "\\n"; continue;
      case '\f': out += "\\f"; continue;
      case '\r': out += "\\r"; continue;
      default: break;
    }
    if (cp < 0x20 || cp == 0x7f || isToml33Hazard(cp)) {
      std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(cp));
      out += buf;
    } else {
      appendUtf8(out, cp);
    }
  }
  out += '"';
  return out;
}

std::string portText(const PortRange& p) {
  if (p.lo == p.hi) return std::to_string(p.lo);
  std::string s(1, '"');
  s += std::to_string(p.lo);
  s += '-';
  s += std::to_string(p.hi);
  s += '"';
  return s;
}

// key = one value, or key = [a, b] for several.
template <class List, class Fn>
void writeList(std::string& out, const char* key, const List& items, Fn text) {
  if (items.empty()) return;
  out += key;
  out += " = ";
  if (items.size() == 1) {
    out += text(items.front());
  } else {
    out += '[';
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i != 0) out += ", ";
      out += text(items[i]);
    }
    out += ']';
  }
  out += '\n';
}

}  // namespace

std::string exportRule(const Rule& rule) {
  std::string out;
  switch (rule.action) {
    case Action::kAllow: out += "[[allow]]\n"; break;
    case Action::kDeny: out += "[[deny]]\n"; break;
    case Action::kReject: out += "[[rule]]\naction = \"reject\"\n"; break;
  }
  const RuleMatch& m = rule.match;
  if (m.direction != Direction::kOutbound)
    out += "direction = \"" + std::string(directionName(m.direction)) + "\"\n";
  if (m.protocol != Protocol::kAny)
    out += "proto = \"" + std::string(protocolName(m.protocol)) + "\"\n";
  writeList(out, "hosts", m.hosts, [](const HostPattern& h) { return tomlString(h.str()); });
  writeList(out, m.direction == Direction::kInbound ? "from" : "to", m.addresses,
            [](const Cidr& c) { return tomlString(c.str()); });
  writeList(out, "ports", m.ports, portText);
  auto str = [](const std::string& x) { return tomlString(x); };
  writeList(out, "exe", m.exe, str);
  writeList(out, "process", m.process, str);
  writeList(out, "user", m.users, [](const std::string& u) {
    const bool uid = !u.empty() && std::all_of(u.begin(), u.end(), [](char c) { return c >= '0' && c <= '9'; });
    return uid ? u : tomlString(u);
  });
  writeList(out, "parent", m.parent, str);
  writeList(out, "pid", m.pids, [](std::uint32_t p) { return std::to_string(p); });
  const Lifetime& l = rule.lifetime;
  if (l.for_ms > 0) out += "for = \"" + formatDuration(l.for_ms) + "\"\n";
  if (l.until_ms != 0 && l.until_exit) {
    out += "until = [\"exit\", " + formatTimestamp(l.until_ms) + "]\n";
  } else if (l.until_ms != 0) {
    out += "until = " + formatTimestamp(l.until_ms) + "\n";
  } else if (l.until_exit) {
    out += "until = \"exit\"\n";
  }
  if (l.connections != 0) out += "connections = " + std::to_string(l.connections) + "\n";
  if (!rule.comment.empty()) out += "comment = " + tomlString(rule.comment) + "\n";
  return out;
}

std::string exportPolicy(const AppPolicy& policy) {
  std::string out;
  if (!policy.app.empty()) out += "app = " + tomlString(policy.app) + "\n";
  out += "default = \"" + std::string(defaultActionName(policy.default_action)) + "\"\n";
  out += "env = " + tomlString(policy.env) + "\n";
  if (policy.prompt_timeout_ms != AppPolicy::kDefaultPromptTimeoutMs)
    out += "prompt_timeout = \"" + formatDuration(policy.prompt_timeout_ms) + "\"\n";
  if (policy.prompt_timeout_action != Action::kDeny)
    out += "prompt_timeout_action = \"" + std::string(actionName(policy.prompt_timeout_action)) + "\"\n";
  if (policy.resolve) out += "resolve = \"" + std::string(resolveName(*policy.resolve)) + "\"\n";
  if (policy.clean_env) out += "clean_env = true\n";
  if (!policy.pass_env.empty()) {
    out += "pass_env = [";
    for (std::size_t i = 0; i < policy.pass_env.size(); ++i)
      out += (i == 0 ? "" : ", ") + tomlString(policy.pass_env[i]);
    out += "]\n";
  }
  for (const Rule& r : policy.rules) {
    out += '\n';
    out += exportRule(r);
  }
  return out;
}

}  // namespace cw::policy
