#include "daemon/rules.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace cw::daemon {

namespace {

// A rule may be given as its keys alone (`action = "allow"` ...): it is then one [[rule]].
std::string asRuleTable(const std::string& text) {
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::size_t first = text.find_first_not_of(" \t\r", at);
    if (first < end && text[first] != '#') return text[first] == '[' ? text : "[[rule]]\n" + text;
    at = end + 1;
  }
  return text;
}

policy::DefaultAction defaultFrom(const std::string& s) {
  if (s == "allow") return policy::DefaultAction::kAllow;
  if (s == "reject") return policy::DefaultAction::kReject;
  if (s == "prompt") return policy::DefaultAction::kPrompt;
  return policy::DefaultAction::kDeny;
}

// The app row's prompt and resolve settings (the store keeps them as their names; an empty
// resolve: the policy left it to follow default).
void applyPromptSettings(const store::AppRow& row, policy::AppPolicy& p) {
  p.prompt_timeout_ms = row.prompt_timeout_ms;
  p.prompt_timeout_action = policy::actionFromName(row.prompt_timeout_action).value_or(policy::Action::kDeny);
  if (row.resolve == "any") p.resolve = policy::Resolve::kAny;
  if (row.resolve == "rules") p.resolve = policy::Resolve::kRules;
}

// The app row's environment settings (the store keeps pass_env as names separated by spaces).
void applyEnvSettings(const store::AppRow& row, policy::AppPolicy& p) {
  p.clean_env = row.clean_env;
  p.pass_env.clear();
  for (std::size_t at = 0; at < row.pass_env.size();) {
    std::size_t end = row.pass_env.find(' ', at);
    if (end == std::string::npos) end = row.pass_env.size();
    if (end > at) p.pass_env.push_back(row.pass_env.substr(at, end - at));
    at = end + 1;
  }
}

std::string joinedNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
  return out;
}

bool hasLimit(const policy::Rule& r) {
  return r.lifetime.until_ms != 0 || r.lifetime.connections != 0;
}

}  // namespace

Expected<void> RuleBook::load(std::int64_t now_unix_ms) {
  auto apps = store_.listApps();
  if (!apps) return Unexpected(apps.error());
  auto rows = store_.listRules();
  if (!rows) return Unexpected(rows.error());
  for (const auto& a : *apps) apps_[a.name].row = a;
  for (const auto& row : *rows) {
    auto parsed = policy::parseRule(row.body, row.origin.empty() ? "<stored rule>" : row.origin, row.id, 0);
    if (!parsed) {
      spdlog::error("stored rule {} of app '{}' does not parse any more and is not in force: {}", row.id,
                    row.app, parsed.error().str());
      continue;
    }
    App& a = ensureApp(row.app);
    a.rules.push_back(std::move(parsed.value()));
    a.stored[row.id] = row;
  }
  for (auto& [name, a] : apps_) recompile(a);
  // Rules whose time ran out while cellwalld was down go now.
  (void)expire(now_unix_ms);
  return {};
}

RuleBook::App& RuleBook::ensureApp(const std::string& app) {
  auto [it, fresh] = apps_.try_emplace(app);
  if (fresh) {
    it->second.row.name = app;
    it->second.row.default_action = "deny";
    it->second.row.env = "default";
  }
  return it->second;
}

std::shared_ptr<decide::RuleLimit> RuleBook::limitFor(const policy::Rule& r, std::uint32_t used) {
  auto& l = limits_[r.id];
  if (!l) {
    l = std::make_shared<decide::RuleLimit>();
    l->used.store(used, std::memory_order_relaxed);
  }
  l->until_ms = r.lifetime.until_ms;
  l->max = r.lifetime.connections;
  return l;
}

void RuleBook::recompile(App& a) {
  policy::AppPolicy p;
  p.app = a.row.name;
  p.default_action = defaultFrom(a.row.default_action);
  p.env = a.row.env;
  applyPromptSettings(a.row, p);
  applyEnvSettings(a.row, p);
  p.rules = a.rules;
  auto c = std::make_shared<decide::CompiledPolicy>();
  for (const auto& r : p.rules) {
    if (!hasLimit(r)) continue;
    auto it = a.stored.find(r.id);
    c->limits[r.id] = limitFor(r, it != a.stored.end() ? it->second.connections_used : 0);
  }
  c->matcher = std::make_shared<const policy::Matcher>(std::move(p));
  c->used_up = a.used_up;
  a.compiled = std::move(c);
}

std::shared_ptr<const decide::CompiledPolicy> RuleBook::compiled(const std::string& app) {
  App& a = ensureApp(app);
  if (!a.compiled) recompile(a);
  return a.compiled;
}

std::string RuleBook::envOf(const std::string& app) const {
  auto it = apps_.find(app);
  return it == apps_.end() ? "default" : it->second.row.env;
}

RuleBook::Environment RuleBook::environmentOf(const std::string& app) const {
  auto it = apps_.find(app);
  if (it == apps_.end()) return {};
  policy::AppPolicy p;
  applyEnvSettings(it->second.row, p);
  return Environment{p.clean_env, std::move(p.pass_env)};
}

store::RuleRow RuleBook::rowFor(const std::string& app, const policy::Rule& r, std::int64_t now) const {
  store::RuleRow row;
  row.id = r.id;
  row.app = app;
  row.action = policy::actionName(r.action);
  row.body = policy::exportRule(r);
  row.created_ms = now;
  row.expires_ms = r.lifetime.until_ms;
  row.connections_max = r.lifetime.connections;
  row.until_cell = r.lifetime.until_exit ? "exit" : "";
  row.origin = r.origin;
  return row;
}

Expected<RuleBook::ImportResult> RuleBook::importPolicy(const std::string& app, const std::string& text,
                                                       const std::string& origin, bool merge,
                                                       std::int64_t now_unix_ms) {
  auto parsed = policy::parsePolicy(text, origin.empty() ? "<policy>" : origin, 1, now_unix_ms);
  if (!parsed) return fail("policy rejected: " + parsed.error().str());
  policy::AppPolicy pol = std::move(parsed.value());
  if (!pol.app.empty() && pol.app != app)
    return fail("policy rejected: " + origin + " is for app '" + pol.app + "', not '" + app + "'");
  policy::resolveLifetimes(pol.rules, now_unix_ms);

  App& a = ensureApp(app);
  ImportResult result;
  if (merge) {
    // Added one by one so the rules already in force keep their ids (and their flows). Every
    // rule parsed above, so only the store can fail here; the message says how far it got.
    if (auto put = store_.putApp(a.row); !put) return Unexpected(put.error());
    for (const auto& r : pol.rules) {
      store::RuleRow row = rowFor(app, r, now_unix_ms);
      row.id = 0;
      auto id = store_.addRule(row);
      if (!id) {
        recompile(a);
        return fail(id.error().message + " (after adding " + std::to_string(result.added) + " of " +
                    std::to_string(pol.rules.size()) + " rules)");
      }
      policy::Rule added = r;
      added.id = row.id = *id;
      a.stored[*id] = row;
      a.rules.push_back(std::move(added));
      ++result.added;
    }
    recompile(a);
    return result;
  }

  store::AppRow row = a.row;
  row.default_action = policy::defaultActionName(pol.default_action);
  row.env = pol.env;
  row.prompt_timeout_ms = pol.prompt_timeout_ms;
  row.prompt_timeout_action = policy::actionName(pol.prompt_timeout_action);
  row.resolve = pol.resolve ? policy::resolveName(*pol.resolve) : "";
  row.clean_env = pol.clean_env;
  row.pass_env = joinedNames(pol.pass_env);
  row.updated_ms = now_unix_ms;
  std::vector<store::RuleRow> rows;
  for (const auto& r : pol.rules) {
    store::RuleRow rr = rowFor(app, r, now_unix_ms);
    rr.id = 0;
    rows.push_back(std::move(rr));
  }
  auto ids = store_.replaceAppRules(row, rows);
  if (!ids) return Unexpected(ids.error());

  result.added = pol.rules.size();
  for (const auto& [id, r] : a.stored) result.removed.push_back(id);
  std::vector<policy::Rule> rules;
  std::map<std::uint32_t, store::RuleRow> stored;
  for (std::size_t i = 0; i < pol.rules.size(); ++i) {
    policy::Rule r = pol.rules[i];
    r.id = rows[i].id = (*ids)[i];
    stored[r.id] = rows[i];
    rules.push_back(std::move(r));
  }
  a.row = row;
  a.rules = std::move(rules);
  a.stored = std::move(stored);
  for (auto id : result.removed) limits_.erase(id);
  recompile(a);
  return result;
}

Expected<api::RuleInfo> RuleBook::addRule(const std::string& app, const std::string& text,
                                          const std::string& origin, std::int64_t now_unix_ms) {
  auto parsed = policy::parseRule(asRuleTable(text), origin, 0, now_unix_ms);
  if (!parsed) return fail("rule rejected: " + parsed.error().str());
  policy::Rule r = std::move(parsed.value());
  policy::resolveLifetime(r, now_unix_ms);
  App& a = ensureApp(app);
  if (auto put = store_.putApp(a.row); !put) return Unexpected(put.error());
  store::RuleRow row = rowFor(app, r, now_unix_ms);
  row.id = 0;
  auto id = store_.addRule(row);
  if (!id) return Unexpected(id.error());
  r.id = *id;
  row.id = *id;
  a.stored[r.id] = row;
  a.rules.push_back(std::move(r));
  recompile(a);
  return info(a, row);
}

Expected<api::RuleInfo> RuleBook::replaceRule(std::uint32_t id, const std::string& text,
                                              const std::string& origin, std::int64_t now_unix_ms) {
  for (auto& [name, a] : apps_) {
    if (a.stored.count(id) == 0) continue;
    auto parsed = policy::parseRule(asRuleTable(text), origin, 0, now_unix_ms);
    if (!parsed) return fail("rule rejected: " + parsed.error().str());
    policy::Rule r = std::move(parsed.value());
    policy::resolveLifetime(r, now_unix_ms);
    store::RuleRow row = rowFor(name, r, now_unix_ms);
    row.id = id;
    auto updated = store_.updateRule(row);
    if (!updated) return Unexpected(updated.error());
    if (!*updated) return fail("no rule " + std::to_string(id));
    dropRule(a, id);
    r.id = id;
    a.stored[id] = row;
    a.rules.push_back(std::move(r));
    recompile(a);
    return info(a, row);
  }
  return fail("no rule " + std::to_string(id));
}

void RuleBook::dropRule(App& a, std::uint32_t id) {
  std::erase_if(a.rules, [id](const policy::Rule& r) { return r.id == id; });
  a.stored.erase(id);
  limits_.erase(id);
}

Expected<std::optional<std::string>> RuleBook::removeRule(std::uint32_t id) {
  for (auto& [name, a] : apps_) {
    if (a.stored.count(id) == 0) continue;
    auto gone = store_.removeRule(id);
    if (!gone) return Unexpected(gone.error());
    dropRule(a, id);
    recompile(a);
    return std::optional<std::string>(name);
  }
  return std::optional<std::string>();
}

std::vector<std::uint32_t> RuleBook::expire(std::int64_t now_unix_ms) {
  std::vector<std::uint32_t> out;
  for (auto& [name, a] : apps_) {
    bool changed = false;
    for (auto it = a.stored.begin(); it != a.stored.end();) {
      std::uint32_t id = it->first;
      bool over = it->second.expires_ms != 0 && now_unix_ms >= it->second.expires_ms;
      ++it;
      if (!over) continue;
      if (auto r = store_.removeRule(id); !r) {
        spdlog::error("cannot remove expired rule {}: {}", id, r.error().message);
        continue;  // stays out of force anyway: the packet path checks the time itself
      }
      dropRule(a, id);
      out.push_back(id);
      changed = true;
    }
    if (changed) recompile(a);
  }
  for (auto id : out) spdlog::info("rule {} expired", id);
  return out;
}

std::int64_t RuleBook::nextExpiry() const {
  std::int64_t next = 0;
  for (const auto& [name, a] : apps_)
    for (const auto& [id, r] : a.stored)
      if (r.expires_ms != 0 && (next == 0 || r.expires_ms < next)) next = r.expires_ms;
  return next;
}

bool RuleBook::connectionCounted(std::uint32_t id) {
  auto used = store_.useConnection(id);
  if (!used) {
    spdlog::error("cannot record a connection of rule {}: {}", id, used.error().message);
    return false;
  }
  if (!used->has_value()) return false;  // removed meanwhile
  for (auto& [name, a] : apps_) {
    auto it = a.stored.find(id);
    if (it == a.stored.end()) continue;
    it->second.connections_used = **used;
    if (it->second.connections_max == 0 || **used < it->second.connections_max) return false;
    if (auto r = store_.removeRule(id); !r) {
      spdlog::error("cannot retire rule {}: {}", id, r.error().message);
      return false;
    }
    dropRule(a, id);
    // What it admitted stays: its count ran out, nobody took it back. Ids are never reused;
    // the set is bounded so an app with endless one-shot rules does not grow it forever (the
    // oldest retirements' connections have long ended).
    auto ids = std::make_shared<std::unordered_set<std::uint32_t>>();
    if (a.used_up && a.used_up->size() < kMaxUsedUp) *ids = *a.used_up;
    ids->insert(id);
    a.used_up = std::move(ids);
    recompile(a);
    spdlog::info("rule {} of '{}' used its {} connections", id, name, **used);
    return true;
  }
  return false;
}

std::vector<std::uint32_t> RuleBook::appExited(const std::string& app) {
  std::vector<std::uint32_t> out;
  auto it = apps_.find(app);
  if (it == apps_.end()) return out;
  App& a = it->second;
  for (const auto& r : a.rules)
    if (r.lifetime.until_exit) out.push_back(r.id);
  for (auto id : out) {
    if (auto r = store_.removeRule(id); !r) spdlog::error("cannot remove rule {}: {}", id, r.error().message);
    dropRule(a, id);
  }
  if (!out.empty()) recompile(a);
  return out;
}

api::RuleInfo RuleBook::info(const App& a, const store::RuleRow& row) const {
  api::RuleInfo i;
  i.id = row.id;
  i.app = a.row.name;
  i.action = row.action;
  i.text = row.body;
  i.origin = row.origin;
  i.created_ms = row.created_ms;
  i.expires_ms = row.expires_ms;
  i.connections_max = row.connections_max;
  auto l = limits_.find(row.id);
  i.connections_used = l != limits_.end() ? l->second->used.load(std::memory_order_relaxed) : row.connections_used;
  i.until_exit = !row.until_cell.empty();
  return i;
}

std::vector<api::RuleInfo> RuleBook::list(const std::string& app) const {
  std::vector<api::RuleInfo> out;
  for (const auto& [name, a] : apps_) {
    if (!app.empty() && name != app) continue;
    for (const auto& r : a.rules) {
      auto it = a.stored.find(r.id);
      if (it != a.stored.end()) out.push_back(info(a, it->second));
    }
  }
  return out;
}

Expected<std::string> RuleBook::exportPolicy(const std::string& app) const {
  auto it = apps_.find(app);
  if (it == apps_.end()) return fail("no policy for app '" + app + "'");
  policy::AppPolicy p;
  p.app = app;
  p.default_action = defaultFrom(it->second.row.default_action);
  p.env = it->second.row.env;
  applyPromptSettings(it->second.row, p);
  applyEnvSettings(it->second.row, p);
  p.rules = it->second.rules;
  return policy::exportPolicy(p);
}

std::vector<std::string> RuleBook::explain(const std::string& app, policy::ConnKey key,
                                           std::int64_t now_unix_ms) const {
  std::vector<std::string> out;
  auto it = apps_.find(app);
  if (it == apps_.end() || !it->second.compiled) {
    out.push_back("app '" + app + "' has no policy: the default, deny, decides");
    return out;
  }
  const decide::CompiledPolicy& c = *it->second.compiled;
  auto usable = [&c, now_unix_ms](const policy::Rule& r) {
    const decide::RuleLimit* l = c.limitOf(r.id);
    return l == nullptr || l->usable(now_unix_ms);
  };
  policy::Explanation e = c.matcher->explain(key, policy::RuleFilter::of(usable));
  std::string what = std::string(policy::protocolName(key.protocol)) + " " + key.remote.str() +
                     (key.remote_port != 0 ? ":" + std::to_string(key.remote_port) : std::string());
  if (key.process != nullptr) {
    const policy::ProcessKey& p = *key.process;
    what += " from";
    if (p.pid != 0) what += " pid " + std::to_string(p.pid);
    if (!p.exe.empty()) what += " " + std::string(p.exe);
    if (!p.comm.empty()) what += " [" + std::string(p.comm) + "]";
    if (!p.user.empty() || p.uid != 0) what += " user " + (p.user.empty() ? std::to_string(p.uid) : std::string(p.user));
    if (!p.parent_exe.empty()) what += " parent " + std::string(p.parent_exe);
  }
  if (!key.names.empty()) {
    what += " (";
    for (std::size_t i = 0; i < key.names.size(); ++i) {
      if (i != 0) what += ", ";
      what += key.names[i];
    }
    what += ")";
  }
  if (e.verdict.rule != nullptr) {
    out.push_back(what + ": " + policy::actionName(e.verdict.action) + " by rule " +
                  std::to_string(e.verdict.rule->id) + " (" + e.verdict.rule->origin + ")");
  } else {
    out.push_back(what + ": " + policy::actionName(e.verdict.action) + " by the app's default (" +
                  policy::defaultActionName(e.verdict.fallback) + "): no rule matches");
  }
  for (const auto& cand : e.candidates) {
    std::string line = "  rule " + std::to_string(cand.rule->id) + " " + policy::actionName(cand.rule->action) +
                       ": " + cand.reason;
    if (!cand.usable) line += " [lifetime over: skipped]";
    if (cand.rule == e.verdict.rule) line += "  <- decides";
    out.push_back(std::move(line));
  }
  return out;
}

std::string RuleBook::explainResolve(const std::string& app, const std::string& name,
                                     std::int64_t now_unix_ms) const {
  const std::string what = "resolving " + name + ": ";
  auto it = apps_.find(app);
  if (it == apps_.end() || !it->second.compiled)
    return what + "refused (app '" + app + "' has no policy: default deny, so resolve = \"rules\", and no rule names it)";
  const decide::CompiledPolicy& c = *it->second.compiled;
  const policy::AppPolicy& p = c.matcher->policy();
  const std::string setting = std::string("resolve = \"") + policy::resolveName(policy::resolveOf(p)) + "\"" +
                              (p.resolve ? "" : std::string(", from default = \"") +
                                                    policy::defaultActionName(p.default_action) + "\"");
  if (!c.matcher->restrictsResolution()) return what + "sent to the resolver (" + setting + ": any name)";
  auto usable = [&c, now_unix_ms](const policy::Rule& r) {
    const decide::RuleLimit* l = c.limitOf(r.id);
    return l == nullptr || l->usable(now_unix_ms);
  };
  if (const policy::Rule* r = c.matcher->resolvableBy(name, policy::RuleFilter::of(usable)))
    return what + "sent to the resolver, named by rule " + std::to_string(r->id) + " (" + r->origin + "; " +
           setting + ")";
  return what + "refused, answered REFUSED by cellwall (" + setting + " and no [[allow]] rule's hosts name it)";
}

}  // namespace cw::daemon
