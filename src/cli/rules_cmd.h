// `cellwall rules list|add|rm|explain|export|import`, `cellwall log`, `cellwall names`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/commands.h"
#include "cli/client.h"

namespace cw::cli {

// `rules add` flags; turned into one rule in the policy language, which the daemon checks.
struct RuleFlags {
  std::string action = "allow";
  std::string proto;
  bool inbound = false;
  std::vector<std::string> hosts, to, from, ports;
  std::string for_duration, until, comment;
  // --connections N; unset: no count limit. 0 is written out (and refused by the daemon's
  // parser, as in a policy file), never read as "no limit".
  std::optional<std::uint32_t> connections;
};
std::string ruleTextFromFlags(const RuleFlags& f);

// `counters`: each rule's packets and bytes too (and rows for what no rule decided).
int rulesList(Client& c, const std::string& app, bool json, bool counters = false);
// 1234567 bytes -> "1.2 MB", 999 -> "999 B"; counts the same way without a unit ("1.2 k").
std::string humanBytes(std::uint64_t n);
std::string humanCount(std::uint64_t n);
// The `rules list --counters` table: one row per rule, then one per source that is no rule.
std::string rulesCountersTable(const std::vector<api::RuleInfo>& rules,
                               const std::vector<api::RuleCounters>& counters);
int rulesAdd(Client& c, const std::string& app, const RuleFlags& f, bool json);
int rulesRemove(Client& c, const std::vector<std::uint32_t>& ids);
int rulesExplain(Client& c, const api::RulesExplain& q, bool json);
int rulesExport(Client& c, const std::string& app);
int rulesImport(Client& c, const std::string& app, const std::string& file, bool merge);
int log(Client& c, const std::string& app, bool follow, bool json, std::uint32_t limit);
// `cellwall log`'s table. A row of an attributed connection ends with its process
// (cli/process_text.h), the command line cut at kLogCommandMax bytes; other rows are unchanged.
constexpr std::size_t kLogCommandMax = 120;
std::string logHeader();
std::string logLine(const api::LogEntry& e);
int names(Client& c, std::uint32_t cell);

}  // namespace cw::cli
