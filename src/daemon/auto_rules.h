// The rules the IDS makes (docs/ids.md, "Auto-rules"): an alert denies the process that
// raised it, in its app, until the app exits; K such rules naming different processes of one
// user are folded into one rule for that user. Pure functions over rules, so that what the
// daemon does with an alert can be tested without a daemon.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/commands.h"
#include "decide/decider.h"
#include "ids/engine.h"
#include "policy/policy.h"

namespace cw::daemon {

inline constexpr const char* kIdsOrigin = "ids";           // a rule for one process
inline constexpr const char* kIdsFoldOrigin = "ids-fold";  // K of those, folded into one user's

// What an alert makes. With its process: a deny for that pid and executable (and its uid, so
// the rule says whose it was), until the app exits. Without (attribution off, or the socket
// was gone): a deny of the connection's destination (address, protocol, port) for the app.
policy::Rule autoRuleFor(const ids::Alert& a, const decide::ProcessInfo* p);

// Whether the app already has an auto-rule for this process (alerts repeat while it runs) or a
// folded rule for its user.
bool alreadyDenied(const std::vector<api::RuleInfo>& app_rules, const decide::ProcessInfo& p);

struct Fold {
  std::uint32_t uid = 0;
  std::vector<std::uint32_t> remove;  // the auto-rules folded
  policy::Rule rule;                  // the user's rule that replaces them
};
// The first user with `k` or more auto-rules naming different processes, if any (k >= 1).
std::optional<Fold> foldAutoRules(const std::vector<api::RuleInfo>& app_rules, unsigned k);

}  // namespace cw::daemon
