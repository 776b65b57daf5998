#include <fnmatch.h>

#include <algorithm>
#include <charconv>

#include "policy/policy.h"

namespace cw::policy {

namespace {

// Keeps error messages one line and printable whatever the input held.
std::string quotedName(std::string_view s) {
  std::string q = "\"";
  for (char c : s.substr(0, 80)) {
    auto u = static_cast<unsigned char>(c);
    q += (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') ? '?' : c;
  }
  if (s.size() > 80) q += "...";
  q += '"';
  return q;
}

bool isLabelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

bool processMatches(const RuleMatch& m, const ProcessKey* p) {
  if (m.processTier() == 0) return true;
  if (p == nullptr) return false;
  auto glob = [](const std::vector<std::string>& patterns, std::string_view value) {
    if (patterns.empty()) return true;
    if (value.empty()) return false;  // unknown: no pattern admits it
    const std::string v(value);
    for (const auto& pat : patterns)
      if (::fnmatch(pat.c_str(), v.c_str(), 0) == 0) return true;
    return false;
  };
  if (!m.pids.empty() && std::find(m.pids.begin(), m.pids.end(), p->pid) == m.pids.end()) return false;
  if (!m.users.empty()) {
    bool any = false;
    for (const auto& u : m.users) {
      std::uint32_t uid = 0;
      auto [end, ec] = std::from_chars(u.data(), u.data() + u.size(), uid);
      const bool numeric = ec == std::errc() && end == u.data() + u.size();
      if (numeric ? uid == p->uid : (!p->user.empty() && u == p->user)) any = true;
    }
    if (!any) return false;
  }
  return glob(m.exe, p->exe) && glob(m.process, p->comm) && glob(m.parent, p->parent_exe);
}

std::string HostPattern::str() const { return wildcard ? "*." + name : name; }

Result<HostPattern, std::string> parseHostPattern(std::string_view text) {
  using Unexp = Unexpected<std::string>;
  const std::string q = quotedName(text);
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  if (s.size() > 1 && s.back() == '.') s.pop_back();  // the root label: "example.org."
  if (s.empty()) return Unexp("host \"\" is empty; write a name such as \"api.example.org\"");
  if (s == "*")
    return Unexp("host \"*\" would match every name; leave hosts out to match any destination");
  HostPattern p;
  std::string_view rest = s;
  if (rest.size() >= 2 && rest.substr(0, 2) == "*.") {
    p.wildcard = true;
    rest.remove_prefix(2);
  }
  if (rest.find('*') != std::string_view::npos)
    return Unexp("host " + q +
                 ": '*' is allowed only as the whole first label, as in \"*.example.org\"");
  if (s.size() > 253) return Unexp("host " + q + " is longer than 253 characters");
  if (std::any_of(rest.begin(), rest.end(), [](char c) { return (c & 0x80) != 0; }))
    return Unexp("host " + q +
                 " is not ASCII; write internationalised names in their \"xn--\" form");
  std::string_view last_label;
  std::size_t start = 0;
  for (;;) {
    std::size_t dot = rest.find('.', start);
    std::string_view label =
        rest.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty())
      return Unexp("host " + q + " has an empty label (\"..\" or a leading dot)");
    if (label.size() > 63) return Unexp("host " + q + " has a label longer than 63 characters");
    if (!std::all_of(label.begin(), label.end(), isLabelChar))
      return Unexp("host " + q +
                   " has a character other than a-z, 0-9, '-', '_' and '.' (and a leading "
                   "\"*.\")");
    if (label.front() == '-' || label.back() == '-')
      return Unexp("host " + q + " has a label starting or ending with '-'");
    last_label = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (std::all_of(last_label.begin(), last_label.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return Unexp("host " + q + " looks like an address; addresses go in to (outbound) or from "
                 "(inbound)");
  p.name = std::string(rest);
  return p;
}

const char* actionName(Action a) {
  switch (a) {
    case Action::kAllow: return "allow";
    case Action::kDeny: return "deny";
    case Action::kReject: return "reject";
  }
  return "?";
}

std::optional<Action> actionFromName(std::string_view name) {
  if (name == "allow") return Action::kAllow;
  if (name == "deny") return Action::kDeny;
  if (name == "reject") return Action::kReject;
  return std::nullopt;
}

const char* resolveName(Resolve r) {
  return r == Resolve::kRules ? "rules" : "any";
}

Resolve resolveOf(const AppPolicy& policy) {
  if (policy.resolve) return *policy.resolve;
  const bool refuses = policy.default_action == DefaultAction::kDeny ||
                       policy.default_action == DefaultAction::kReject;
  return refuses ? Resolve::kRules : Resolve::kAny;
}

const char* defaultActionName(DefaultAction a) {
  switch (a) {
    case DefaultAction::kAllow: return "allow";
    case DefaultAction::kDeny: return "deny";
    case DefaultAction::kReject: return "reject";
    case DefaultAction::kPrompt: return "prompt";
  }
  return "?";
}

const char* protocolName(Protocol p) {
  switch (p) {
    case Protocol::kAny: return "any";
    case Protocol::kTcp: return "tcp";
    case Protocol::kUdp: return "udp";
    case Protocol::kIcmp: return "icmp";
  }
  return "?";
}

const char* directionName(Direction d) {
  switch (d) {
    case Direction::kOutbound: return "outbound";
    case Direction::kInbound: return "inbound";
  }
  return "?";
}

std::string PolicyError::str() const {
  std::string s = file;
  if (line != 0) {
    s += ':' + std::to_string(line);
    if (column != 0) s += ':' + std::to_string(column);
  }
  s += ": ";
  s += reason;
  return s;
}

}  // namespace cw::policy
