#include "daemon/auto_rules.h"

#include <map>
#include <set>

#include "packet/frame.h"

namespace cw::daemon {

namespace {

std::string alertText(const ids::Alert& a) {
  return "IDS sid " + std::to_string(a.sid) + " \"" + a.msg + "\"";
}

// The process fields of an auto-rule read back from its stored text.
std::optional<policy::Rule> parsed(const api::RuleInfo& r) {
  auto rule = policy::parseRule(r.text, r.origin, r.id);
  if (!rule) return std::nullopt;
  return std::move(rule).value();
}

}  // namespace

policy::Rule autoRuleFor(const ids::Alert& a, const decide::ProcessInfo* p) {
  policy::Rule r;
  r.action = policy::Action::kDeny;
  r.lifetime.until_exit = true;
  if (p != nullptr) {
    r.match.pids = {p->pid};
    r.match.users = {std::to_string(p->uid)};
    if (!p->exe.empty())
      r.match.exe = {p->exe};
    else if (!p->comm.empty())
      r.match.process = {p->comm};
    r.comment = alertText(a) + ": " + (p->exe.empty() ? p->comm : p->exe) + " (pid " + std::to_string(p->pid) +
                (p->user.empty() ? "" : ", user " + p->user) + ")";
  } else {
    // Whoever it was: the cell's end is the alert's source (only what cells send is copied).
    r.match.protocol = a.proto == packet::kProtoTcp   ? policy::Protocol::kTcp
                       : a.proto == packet::kProtoUdp ? policy::Protocol::kUdp
                                                      : policy::Protocol::kAny;
    const unsigned bits = a.dst.is_v4() ? 32 : 128;
    r.match.addresses = {*Cidr::parse(a.dst.str() + "/" + std::to_string(bits))};
    if (r.match.protocol != policy::Protocol::kAny) r.match.ports = {policy::PortRange{a.dport, a.dport}};
    r.comment = alertText(a) + ": the process is unknown, so its destination is denied";
  }
  return r;
}

bool alreadyDenied(const std::vector<api::RuleInfo>& app_rules, const decide::ProcessInfo& p) {
  const std::string uid = std::to_string(p.uid);
  for (const auto& info : app_rules) {
    if (info.origin != kIdsOrigin && info.origin != kIdsFoldOrigin) continue;
    auto r = parsed(info);
    if (!r) continue;
    const auto& m = r->match;
    if (info.origin == kIdsFoldOrigin && m.users == std::vector<std::string>{uid}) return true;
    if (info.origin == kIdsOrigin && m.pids == std::vector<std::uint32_t>{p.pid}) return true;
  }
  return false;
}

std::optional<Fold> foldAutoRules(const std::vector<api::RuleInfo>& app_rules, unsigned k) {
  if (k == 0) return std::nullopt;
  struct Seen {
    std::vector<std::uint32_t> ids;
    std::set<std::uint32_t> pids;
    std::set<std::string> what;
  };
  std::map<std::uint32_t, Seen> by_uid;
  for (const auto& info : app_rules) {
    if (info.origin != kIdsOrigin) continue;
    auto r = parsed(info);
    if (!r || r->match.pids.size() != 1 || r->match.users.size() != 1) continue;
    std::uint32_t uid = 0;
    try {
      uid = static_cast<std::uint32_t>(std::stoul(r->match.users[0]));
    } catch (...) {
      continue;
    }
    Seen& s = by_uid[uid];
    s.ids.push_back(info.id);
    s.pids.insert(r->match.pids[0]);
    for (const auto& e : r->match.exe) s.what.insert(e);
    for (const auto& c : r->match.process) s.what.insert(c);
  }
  for (auto& [uid, s] : by_uid) {
    if (s.pids.size() < k) continue;
    Fold f;
    f.uid = uid;
    f.remove = s.ids;
    f.rule.action = policy::Action::kDeny;
    f.rule.lifetime.until_exit = true;
    f.rule.match.users = {std::to_string(uid)};
    std::string list;
    for (const auto& w : s.what) list += (list.empty() ? "" : ", ") + w;
    f.rule.comment = "IDS: " + std::to_string(s.pids.size()) + " processes of uid " + std::to_string(uid) +
                     " raised alerts (" + list + "): every process of that user is denied";
    return f;
  }
  return std::nullopt;
}

}  // namespace cw::daemon
