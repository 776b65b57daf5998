// Store: cellwalld's persistent state in one SQLite file — apps and their rules, running
// cells, and the connection log. See docs/store.md for the schema and the durability argument.
//
// Rules are opaque here: `body` is the rule's canonical TOML (produced by the policy library,
// which this library does not link) plus the columns the daemon queries by (app, expiry,
// connection budget, owning cell).
//
// Durability: every mutating call returns only after its transaction has COMMITted with
// journal_mode=WAL and synchronous=FULL, so anything acknowledged survives a crash of the
// process and a power loss. Multi-row calls (replaceAppRules, appendLog, updateLogCounters)
// are one transaction each: all or nothing.
//
// Errors: expected failures (disk full, database locked by another process, file from a newer
// cellwall, constraint violations) come back as Error values whose message names the operation
// and the file, e.g. "cannot add rule to /var/lib/cellwall/cellwall.db: database is locked
// (...)". "Not found" is not an error: getters return std::nullopt, removers return false.
// Nothing throws.
//
// Threading: a Store is used from ONE thread (cellwalld's event loop); it starts no threads.
// Other processes may open the same file (WAL lets readers run alongside the writer); writers
// wait up to Options::busy_timeout for each other.
//
// Ownership: Store owns the SQLite connection and its cached prepared statements; destroying it
// closes the file (checkpointing the WAL when it is the last connection).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"

namespace cw::store {

namespace detail {
class Connection;
}

// The schema this build writes. A file with a higher PRAGMA user_version is refused.
inline constexpr int kSchemaVersion = 6;

struct Options {
  // How long a write waits for another process holding the write lock before failing with
  // "database is locked".
  std::chrono::milliseconds busy_timeout{5000};
  // pruneLog deletes at most this many rows per call (one short transaction).
  std::size_t prune_chunk_rows = 5000;
  // queryLog(since_ms) finds its starting point through the time index, assuming rows are
  // appended in time order; rows appended up to this much out of order are still found.
  std::int64_t log_time_skew_ms = 60'000;
};

struct AppRow {
  std::string name;            // primary key
  std::string default_action;  // "allow" | "deny" | "prompt" (not interpreted here)
  std::string env;             // network environment the app's cells join
  std::int64_t updated_ms = 0;
  std::int64_t prompt_timeout_ms = 60000;
  std::string prompt_timeout_action = "deny";
  std::string resolve;  // "any" | "rules" | "" (the policy does not set it)
  bool clean_env = false;  // policy key clean_env
  std::string pass_env{};  // policy key pass_env: the names, separated by spaces (not interpreted here)
  auto operator<=>(const AppRow&) const = default;
};

struct RuleRow {
  std::uint32_t id = 0;  // assigned by addRule/replaceAppRules; never reused
  std::string app;       // must name an existing app (removing the app removes its rules)
  std::string action;    // "allow" | "deny" | ... (not interpreted here; must not be empty)
  std::string body;      // canonical TOML of the rule
  std::int64_t created_ms = 0;
  std::int64_t expires_ms = 0;           // 0 = never
  std::uint32_t connections_max = 0;     // 0 = unlimited
  std::uint32_t connections_used = 0;
  std::string until_cell;                // the rule dies with this cell; empty = none
  std::string origin;                    // "policy.toml:12", "prompt", "api", ...
  auto operator<=>(const RuleRow&) const = default;
};

struct CellRow {
  std::string id;  // primary key, e.g. "cw-firefox-3"
  std::string app;
  std::string env;
  std::string ip;
  std::int64_t pid = 0;
  std::int64_t started_ms = 0;
  std::string details;  // what a restarted daemon needs to adopt the cell (JSON; opaque here)
  auto operator<=>(const CellRow&) const = default;
};

struct LogRow {
  std::int64_t id = 0;  // assigned by appendLog; increasing, never reused
  std::int64_t time_ms = 0;
  std::string app;
  std::string cell;
  std::string proto;  // "tcp", "udp", "icmp", ...
  std::string remote_ip;
  std::uint16_t remote_port = 0;
  std::string names;  // DNS names of remote_ip, comma-separated
  std::string verdict;
  std::uint32_t rule_id = 0;  // 0 = default action
  std::string reason;
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::int64_t ended_ms = 0;  // 0 = still open (counters arrive when the flow ends)
  // The process that owns the connection (pid 0: not attributed).
  std::uint32_t pid = 0, uid = 0;
  std::string user, exe, cmdline;
  std::string note;  // pid 0: why, when that is known (api::ProcessRef::note)
  auto operator<=>(const LogRow&) const = default;
};

struct LogCounters {
  std::int64_t id = 0;
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::int64_t ended_ms = 0;
};

struct LogQuery {
  std::optional<std::string> app{};  // only this app's rows
  std::int64_t after_id = 0;       // only rows with id > after_id (a cursor for tailing)
  std::int64_t since_ms = 0;       // only rows with time_ms >= since_ms; 0 = any time
  std::size_t limit = 100;         // at most this many rows
  bool newest_first = true;        // by id: descending (true) or ascending (false)
};

struct PruneResult {
  std::uint64_t deleted = 0;
  bool more = false;  // rows beyond the limits remain: call again (e.g. on the next tick)
};

class Store {
 public:
  // Opens or creates `file` (mode 0600; the directory must exist), creates or migrates the
  // schema, and refuses files from a newer cellwall and files that are not cellwall databases.
  static Expected<std::unique_ptr<Store>> open(const std::filesystem::path& file,
                                               Options options = {});

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();

  const std::filesystem::path& file() const { return file_; }

  // ---- Apps ----
  // Inserts or replaces the app (its rules are kept).
  Expected<void> putApp(const AppRow& app);
  Expected<std::optional<AppRow>> getApp(const std::string& name);
  Expected<std::vector<AppRow>> listApps();  // by name
  // Removes the app AND its rules. Returns whether the app existed.
  Expected<bool> removeApp(const std::string& name);

  // ---- Rules ----
  // Inserts the rule (rule.id is ignored) and returns its new id, after COMMIT.
  Expected<std::uint32_t> addRule(const RuleRow& rule);
  // Overwrites every column of rule rule.id. Returns whether that rule existed.
  Expected<bool> updateRule(const RuleRow& rule);
  Expected<bool> removeRule(std::uint32_t id);
  Expected<std::optional<RuleRow>> getRule(std::uint32_t id);
  // All rules, or one app's; by id.
  Expected<std::vector<RuleRow>> listRules(const std::optional<std::string>& app = std::nullopt);
  // One transaction: puts `app`, removes all its rules, adds `rules` (each rule's app must be
  // empty or app.name). Returns the new ids in the order of `rules`. On any error nothing
  // changed. Used to import a policy file.
  Expected<std::vector<std::uint32_t>> replaceAppRules(const AppRow& app,
                                                       const std::vector<RuleRow>& rules);
  // Atomically counts one more connection decided by rule `id` and returns the new count, or
  // std::nullopt when the rule does not exist (any more). Enforcing connections_max is the
  // caller's business.
  Expected<std::optional<std::uint32_t>> useConnection(std::uint32_t id);
  // Removes rules with 0 < expires_ms <= now_ms; returns their ids, ascending.
  Expected<std::vector<std::uint32_t>> removeExpired(std::int64_t now_ms);
  // Removes rules whose until_cell is cell_id; returns their ids, ascending.
  Expected<std::vector<std::uint32_t>> removeRulesOfCell(const std::string& cell_id);

  // ---- Cells ----
  Expected<void> putCell(const CellRow& cell);  // insert or replace
  Expected<bool> removeCell(const std::string& id);  // does not touch rules: see removeRulesOfCell
  Expected<std::vector<CellRow>> listCells();  // by id

  // ---- Connection log ----
  // Appends rows (their id is ignored) in one transaction; returns the new ids in order.
  Expected<std::vector<std::int64_t>> appendLog(std::span<const LogRow> rows);
  // Sets packets, bytes and ended_ms of one row; returns whether it exists (it may have been
  // pruned).
  Expected<bool> updateLogCounters(const LogCounters& counters);
  // Batch form, one transaction; returns how many rows existed.
  Expected<std::size_t> updateLogCounters(std::span<const LogCounters> counters);
  // Index-backed: cost grows with `limit`, not with the size of the log.
  Expected<std::vector<LogRow>> queryLog(const LogQuery& query);
  // SQLite's plan for queryLog(query), one line per step (e.g. "SEARCH log USING INDEX
  // log_app (app=? AND rowid>?)"); for tests and `cellwall doctor`.
  Expected<std::vector<std::string>> explainQueryLog(const LogQuery& query);
  // Deletes the oldest rows so that at most max_rows remain and none is older than
  // now_ms - max_age_ms (0 = no such limit). Deletes at most Options::prune_chunk_rows rows
  // per call so the daemon's loop is never blocked for long; `more` says to call again.
  Expected<PruneResult> pruneLog(std::uint64_t max_rows, std::int64_t max_age_ms,
                                 std::int64_t now_ms);
  Expected<std::uint64_t> logRowCount();

 private:
  Store(std::filesystem::path file, Options options, std::unique_ptr<detail::Connection> db);

  Expected<void> migrate();

  std::filesystem::path file_;
  Options options_;
  std::unique_ptr<detail::Connection> db_;
};

}  // namespace cw::store
