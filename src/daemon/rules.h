// The daemon's rules: every app's policy, persisted in the store, compiled for the packet
// path, and changed live (add, remove, import, expiry, connection counts, app exit).
//
// Control thread only. Every change is committed to the store before it takes effect or is
// acknowledged; callers then publish a new view (compiled()) and cut the flows of the rules
// a change returns (cookie rule ids), so open connections of a removed rule stop at once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/commands.h"
#include "common/result.h"
#include "decide/net_view.h"
#include "policy/policy.h"
#include "store/store.h"

namespace cw::daemon {

class RuleBook {
 public:
  explicit RuleBook(store::Store& store) : store_(store) {}

  // Reads every app and rule from the store (at start). A stored rule that no longer parses
  // is reported and skipped (never silently widened): the rest of the app still loads.
  Expected<void> load(std::int64_t now_unix_ms);

  // The app's policy for the packet path; an app with no policy gets `default = "deny"`.
  std::shared_ptr<const decide::CompiledPolicy> compiled(const std::string& app);
  std::string envOf(const std::string& app) const;
  // What the app's commands get of the launcher's environment (policy keys clean_env and
  // pass_env; docs/launcher.md): told to `cellwall run` with the cell, which applies it.
  struct Environment {
    bool clean = false;
    std::vector<std::string> pass;
  };
  Environment environmentOf(const std::string& app) const;
  bool known(const std::string& app) const { return apps_.count(app) != 0; }

  // Replaces (or, with merge, extends) the app's policy with a policy file's. All or nothing.
  // Returns the ids of the rules that are gone (to cut their flows).
  struct ImportResult {
    std::vector<std::uint32_t> removed;
    std::size_t added = 0;
  };
  Expected<ImportResult> importPolicy(const std::string& app, const std::string& text,
                                      const std::string& origin, bool merge, std::int64_t now_unix_ms);

  Expected<api::RuleInfo> addRule(const std::string& app, const std::string& text,
                                  const std::string& origin, std::int64_t now_unix_ms);
  // Edits rule `id` in place (one UPDATE): same id and app, the new text; its connection
  // count starts again. The caller cuts the rule's flows (their verdict was the old text's).
  Expected<api::RuleInfo> replaceRule(std::uint32_t id, const std::string& text, const std::string& origin,
                                      std::int64_t now_unix_ms);
  // The app the rule belonged to, or nullopt if there is no such rule.
  Expected<std::optional<std::string>> removeRule(std::uint32_t id);

  // Rules whose time is up: removed, returned to have their flows cut.
  std::vector<std::uint32_t> expire(std::int64_t now_unix_ms);
  std::int64_t nextExpiry() const;  // unix ms, 0 if none

  // A count-limited rule admitted a connection (the packet path already counted it): persists
  // the count; a rule whose count is used up is retired without cutting the connections it
  // admitted. Returns true when the rule was retired.
  bool connectionCounted(std::uint32_t id);

  // The last cell of `app` exited: rules that were to last until then go. Returns their ids.
  std::vector<std::uint32_t> appExited(const std::string& app);

  std::vector<api::RuleInfo> list(const std::string& app) const;
  Expected<std::string> exportPolicy(const std::string& app) const;
  // Which rule decides (proto, remote, port) for `app`, given the names in `names`.
  std::vector<std::string> explain(const std::string& app, policy::ConnKey key,
                                   std::int64_t now_unix_ms) const;
  // Whether a cell of `app` may resolve `name` (lowercase, no trailing dot) through its
  // environment's resolver, and why: one line (docs/dns.md).
  std::string explainResolve(const std::string& app, const std::string& name, std::int64_t now_unix_ms) const;

 private:
  struct App {
    store::AppRow row;
    std::vector<policy::Rule> rules;
    std::map<std::uint32_t, store::RuleRow> stored;  // by id
    std::shared_ptr<const decide::CompiledPolicy> compiled;
    // Counted rules of this app retired by use (CompiledPolicy::used_up); the newest kept.
    std::shared_ptr<const std::unordered_set<std::uint32_t>> used_up;
  };

  static constexpr std::size_t kMaxUsedUp = 4096;
  App& ensureApp(const std::string& app);
  void recompile(App& a);
  std::shared_ptr<decide::RuleLimit> limitFor(const policy::Rule& r, std::uint32_t used);
  api::RuleInfo info(const App& a, const store::RuleRow& row) const;
  store::RuleRow rowFor(const std::string& app, const policy::Rule& r, std::int64_t now) const;
  void dropRule(App& a, std::uint32_t id);

  store::Store& store_;
  std::map<std::string, App> apps_;
  std::unordered_map<std::uint32_t, std::shared_ptr<decide::RuleLimit>> limits_;  // by rule id
};

}  // namespace cw::daemon
