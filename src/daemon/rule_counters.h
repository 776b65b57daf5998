// Per-rule counters (docs/pipeline.md, table 7): the count flows of a dump, summed per app and
// rule. Pure; the daemon dumps table 7 on request (`cellwall rules list --counters`) and hands
// the flows here on its control thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "api/commands.h"
#include "ofp/messages.h"

namespace cw::daemon {

// `flows`: the count table's flows (others are skipped), each naming its cell in the cookie,
// its label (what decided its connections) in the ct_label match, and its direction by whether
// it matches the cell's port (sent) or not (received). `app_of`: the cells to count, by id, with
// their app; flows of other cells are skipped. One entry per (app, source, rule), sorted.
std::vector<api::RuleCounters> sumRuleCounters(const std::vector<ofp::FlowStats>& flows,
                                               const std::map<std::uint32_t, std::string>& app_of);

// Adds `more` into `into`, entry by (app, source, rule), keeping the order sumRuleCounters gives:
// the counts of cells that ended, kept by the daemon, added to those of the cells running.
void addRuleCounters(std::vector<api::RuleCounters>& into, const std::vector<api::RuleCounters>& more);

}  // namespace cw::daemon
