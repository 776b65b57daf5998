// Apps, rules and cells: small tables, one statement (autocommit) per call except
// replaceAppRules.
#include <algorithm>
#include <limits>

#include "store/sqlite.h"
#include "store/store.h"

namespace cw::store {

namespace {

using detail::Connection;
using detail::Statement;
using detail::Transaction;

constexpr std::string_view kRuleColumns =
    "id, app, action, body, created_ms, expires_ms, connections_max, connections_used, "
    "until_cell, origin";

RuleRow readRule(const Statement& st) {
  RuleRow r;
  r.id = static_cast<std::uint32_t>(st.int64(0));
  r.app = st.text(1);
  r.action = st.text(2);
  r.body = st.text(3);
  r.created_ms = st.int64(4);
  r.expires_ms = st.int64(5);
  r.connections_max = static_cast<std::uint32_t>(st.int64(6));
  r.connections_used = static_cast<std::uint32_t>(st.int64(7));
  r.until_cell = st.text(8);
  r.origin = st.text(9);
  return r;
}

AppRow readApp(const Statement& st) {
  return AppRow{st.text(0),  st.text(1), st.text(2), st.int64(3),       st.int64(4),
                st.text(5),  st.text(6), st.int64(7) != 0, st.text(8)};
}

// Binds columns app..origin to parameters 1..9.
void bindRule(Statement& st, const RuleRow& r, std::string_view app) {
  st.bind(1, app)
      .bind(2, r.action)
      .bind(3, r.body)
      .bind(4, r.created_ms)
      .bind(5, r.expires_ms)
      .bind(6, std::int64_t{r.connections_max})
      .bind(7, std::int64_t{r.connections_used})
      .bind(8, r.until_cell)
      .bind(9, r.origin);
}

Expected<std::uint32_t> insertRule(Connection& c, const RuleRow& r, std::string_view app,
                                   std::string_view what) {
  auto st = c.prepare(
      "INSERT INTO rules (app, action, body, created_ms, expires_ms, connections_max, "
      "connections_used, until_cell, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
      what);
  if (!st) return Unexpected(std::move(st).error());
  bindRule(*st, r, app);
  CW_STORE_TRY(st->run(what));
  const std::int64_t id = c.lastInsertRowid();
  // 4 billion rules would take centuries of prompts; refuse rather than wrap.
  if (id > std::numeric_limits<std::uint32_t>::max()) {
    return Unexpected(c.error(what, "rule ids are exhausted"));
  }
  return static_cast<std::uint32_t>(id);
}

// Runs a "DELETE ... RETURNING id" statement (already bound) and collects the ids, ascending
// (RETURNING's order is unspecified).
Expected<std::vector<std::uint32_t>> collectIds(Statement& st, std::string_view what) {
  std::vector<std::uint32_t> ids;
  for (;;) {
    auto row = st.next(what);
    if (!row) return Unexpected(std::move(row).error());
    if (!*row) break;
    ids.push_back(static_cast<std::uint32_t>(st.int64(0)));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string ruleWhat(std::string_view verb, std::uint32_t id, std::string_view prep) {
  std::string s(verb);
  s += " rule ";
  s += std::to_string(id);
  s += ' ';
  s += prep;
  return s;
}

}  // namespace

// ---- Apps ----

Expected<void> Store::putApp(const AppRow& app) {
  const std::string what = "save app '" + app.name + "' in";
  // An upsert, not INSERT OR REPLACE: REPLACE deletes the row first, which would cascade to
  // the app's rules.
  auto st = db_->prepare(
      "INSERT INTO apps (name, default_action, env, updated_ms, prompt_timeout_ms, "
      "prompt_timeout_action, resolve, clean_env, pass_env) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
      "ON CONFLICT (name) DO UPDATE SET default_action = excluded.default_action, "
      "env = excluded.env, updated_ms = excluded.updated_ms, "
      "prompt_timeout_ms = excluded.prompt_timeout_ms, "
      "prompt_timeout_action = excluded.prompt_timeout_action, resolve = excluded.resolve, "
      "clean_env = excluded.clean_env, pass_env = excluded.pass_env",
      what);
  if (!st) return Unexpected(std::move(st).error());
  st->bind(1, app.name).bind(2, app.default_action).bind(3, app.env).bind(4, app.updated_ms);
  st->bind(5, app.prompt_timeout_ms).bind(6, app.prompt_timeout_action).bind(7, app.resolve);
  st->bind(8, std::int64_t{app.clean_env ? 1 : 0}).bind(9, app.pass_env);
  return st->run(what);
}

Expected<std::optional<AppRow>> Store::getApp(const std::string& name) {
  const std::string what = "read app '" + name + "' from";
  auto st = db_->prepare(
      "SELECT name, default_action, env, updated_ms, prompt_timeout_ms, prompt_timeout_action, "
      "resolve, clean_env, pass_env FROM apps WHERE name = ?1",
      what);
  if (!st) return Unexpected(std::move(st).error());
  st->bind(1, name);
  auto row = st->next(what);
  if (!row) return Unexpected(std::move(row).error());
  if (!*row) return std::optional<AppRow>();
  return std::optional<AppRow>(readApp(*st));
}

Expected<std::vector<AppRow>> Store::listApps() {
  const std::string_view what = "list apps in";
  auto st = db_->prepare(
      "SELECT name, default_action, env, updated_ms, prompt_timeout_ms, prompt_timeout_action, "
      "resolve, clean_env, pass_env FROM apps ORDER BY name",
      what);
  if (!st) return Unexpected(std::move(st).error());
  std::vector<AppRow> apps;
  for (;;) {
    auto row = st->next(what);
    if (!row) return Unexpected(std::move(row).error());
    if (!*row) break;
    apps.push_back(readApp(*st));
  }
  return apps;
}

Expected<bool> Store::removeApp(const std::string& name) {
  const std::string what = "remove app '" + name + "' from";
  auto st = db_->prepare("DELETE FROM apps WHERE name = ?1", what);
  if (!st) return Unexpected(std::move(st).error());
  st->bind(1, name);
  CW_STORE_TRY(st->run(what));
  return db_->changes() > 0;
}

// ---- Rules ----

Expected<std::uint32_t> Store::addRule(const RuleRow& rule) {
  // A single INSERT in autocommit mode: when step() returns, the commit is on disk.
  return insertRule(*db_, rule, rule.app, "add rule to");
}

Expected<bool> Store::updateRule(const RuleRow& rule) {
  const std::string what = ruleWhat("update", rule.id, "in");
  auto st = db_->prepare(
      "UPDATE rules SET app = ?1, action = ?2, body = ?3, created_ms = ?4, expires_ms = ?5, "
      "connections_max = ?6, connections_used = ?7, until_cell = ?8, origin = ?9 "
      "WHERE id = ?10",
      what);
  if (!st) return Unexpected(std::move(st).error());
  bindRule(*st, rule, rule.app);
  st->bind(10, std::int64_t{rule.id});
  CW_STORE_TRY(st->run(what));
  return db_->changes() > 0;
}

Expected<bool> Store::removeRule(std::uint32_t id) {
  const std::string what = ruleWhat("remove", id, "from");
  auto st = db_->prepare("DELETE FROM rules WHERE id = ?1", what);
  if (!st) return Unexpected(std::move(st).error());
  st->bind(1, std::int64_t{id});
  CW_STORE_TRY(st->run(what));
  return db_->changes() > 0;
}

Expected<std::optional<RuleRow>> Store::getRule(std::uint32_t id) {
  const std::string what = ruleWhat("read", id, "from");
  auto st = db_->prepare("SELECT " + std::string(kRuleColumns) + " FROM rules WHERE id = ?1",
                         what);
  if (!st) return Unexpected(std::move(st).error());
  st->bind(1, std::int64_t{id});
  auto row = st->next(what);
  if (!row) return Unexpected(std::move(row).error());
  if (!*row) return std::optional<RuleRow>();
  return std::optional<RuleRow>(readRule(*st));
}

Expected<std::vector<RuleRow>> Store::listRules(const std::optional<std::string>& app) {
  const std::string what = app ? "list the rules of app '" + *app + "' in" : "list rules in";
  std::string sql = "SELECT " + std::string(kRuleColumns) + " FROM rules";
  sql += app ? " WHERE app = ?1 ORDER BY id" : " ORDER BY id";
  auto st = db_->prepare(sql, what);
  if (!st) return Unexpected(std::move(st).error());
  if (app) st->bind(1, *app);
  std::vector<RuleRow> rules;
  for (;;) {
    auto row = st->next(what);
    if (!row) return Unexpected(std::move(row).error());
    if (!*row) break;
    rules.push_back(readRule(*st));
  }
  return rules;
}

Expected<std::vector<std::uint32_t>> Store::replaceAppRules(const AppRow& app,
                                                            const std::vector<RuleRow>& rules) {
  const std::string what = "replace the rules of app '" + app.name + "' in";
  for (const RuleRow& r : rules) {
    if (!r.app.empty() && r.app != app.name) {
      return Unexpected(db_->error(what, "a rule names app '" + r.app + "'"));
    }
  }
  auto tx = Transaction::begin(*db_, what);
  if (!tx) return Unexpected(std::move(tx).error());
  CW_STORE_TRY(putApp(app));
  auto del = db_->prepare("DELETE FROM rules WHERE app = ?1", what);
  if (!del) return Unexpected(std::move(del).error());
  del->bind(1, app.name);
  CW_STORE_TRY(del->run(what));
  std::vector<std::uint32_t> ids;
  ids.reserve(rules.size());
  for (const RuleRow& r : rules) {
    auto id = insertRule(*db_, r, app.name, what);
    if (!id) return Unexpected(std::move(id).error());  // ~Transaction rolls back
    ids.push_back(*id);
  }
  CW_STORE_TRY(tx->commit(what));
  return ids;
}

Expected<std::optional<std::uint32_t>> Store::useConnection(std::uint32_t id) {
  const std::string what = ruleWhat("count a connection of", id, "in");
  // One statement, so the read-modify-write is atomic even against other processes.
  auto st = db_->prepare(
      "UPDATE rules SET connections_used = connections_used + 1 WHERE id = ?1 "
      "RETURNING connections_used",
      what);
  if (!st) return Unexpected(std::move(st).error());
  st->bind(1, std::int64_t{id});
  auto row = st->next(what);
  if (!row) return Unexpected(std::move(row).error());
  if (!*row) return std::optional<std::uint32_t>();
  const auto used = static_cast<std::uint32_t>(st->int64(0));
  // The statement commits when it finishes (RETURNING rows come before the commit).
  CW_STORE_TRY(st->run(what));
  return std::optional<std::uint32_t>(used);
}

Expected<std::vector<std::uint32_t>> Store::removeExpired(std::int64_t now_ms) {
  const std::string_view what = "remove expired rules from";
  // The literal "expires_ms > 0" lets SQLite use the partial index rules_expires.
  auto st = db_->prepare(
      "DELETE FROM rules WHERE expires_ms > 0 AND expires_ms <= ?1 RETURNING id", what);
  if (!st) return Unexpected(std::move(st).error());
  st->bind(1, now_ms);
  return collectIds(*st, what);
}

Expected<std::vector<std::uint32_t>> Store::removeRulesOfCell(const std::string& cell_id) {
  const std::string what = "remove the rules of cell '" + cell_id + "' from";
  if (cell_id.empty()) return std::vector<std::uint32_t>();
  auto st = db_->prepare(
      "DELETE FROM rules WHERE until_cell = ?1 AND until_cell <> '' RETURNING id", what);
  if (!st) return Unexpected(std::move(st).error());
  st->bind(1, cell_id);
  return collectIds(*st, what);
}

// ---- Cells ----

Expected<void> Store::putCell(const CellRow& cell) {
  const std::string what = "save cell '" + cell.id + "' in";
  auto st = db_->prepare(
      "INSERT OR REPLACE INTO cells (id, app, env, ip, pid, started_ms, details) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
      what);
  if (!st) return Unexpected(std::move(st).error());
  st->bind(1, cell.id)
      .bind(2, cell.app)
      .bind(3, cell.env)
      .bind(4, cell.ip)
      .bind(5, cell.pid)
      .bind(6, cell.started_ms)
      .bind(7, cell.details);
  return st->run(what);
}

Expected<bool> Store::removeCell(const std::string& id) {
  const std::string what = "remove cell '" + id + "' from";
  auto st = db_->prepare("DELETE FROM cells WHERE id = ?1", what);
  if (!st) return Unexpected(std::move(st).error());
  st->bind(1, id);
  CW_STORE_TRY(st->run(what));
  return db_->changes() > 0;
}

Expected<std::vector<CellRow>> Store::listCells() {
  const std::string_view what = "list cells in";
  auto st = db_->prepare(
      "SELECT id, app, env, ip, pid, started_ms, details FROM cells ORDER BY id", what);
  if (!st) return Unexpected(std::move(st).error());
  std::vector<CellRow> cells;
  for (;;) {
    auto row = st->next(what);
    if (!row) return Unexpected(std::move(row).error());
    if (!*row) break;
    cells.push_back(CellRow{st->text(0), st->text(1), st->text(2), st->text(3), st->int64(4),
                            st->int64(5), st->text(6)});
  }
  return cells;
}

}  // namespace cw::store
