// The connection log: batched appends, counter updates, index-backed queries, chunked pruning.
#include <algorithm>
#include <limits>

#include "store/sqlite.h"
#include "store/store.h"

namespace cw::store {

namespace {

using detail::Statement;
using detail::Transaction;

constexpr std::string_view kLogColumns =
    "id, time_ms, app, cell, proto, remote_ip, remote_port, names, verdict, rule_id, reason, "
    "packets, bytes, ended_ms, pid, uid, user, exe, cmdline, note";

// Counters are unsigned 64-bit in C++ and signed 64-bit in SQLite: stored bit for bit (no real
// counter reaches 2^63).
std::int64_t toDb(std::uint64_t v) { return static_cast<std::int64_t>(v); }
std::uint64_t fromDb(std::int64_t v) { return static_cast<std::uint64_t>(v); }

LogRow readLog(const Statement& st) {
  LogRow r;
  r.id = st.int64(0);
  r.time_ms = st.int64(1);
  r.app = st.text(2);
  r.cell = st.text(3);
  r.proto = st.text(4);
  r.remote_ip = st.text(5);
  r.remote_port = static_cast<std::uint16_t>(st.int64(6));
  r.names = st.text(7);
  r.verdict = st.text(8);
  r.rule_id = static_cast<std::uint32_t>(st.int64(9));
  r.reason = st.text(10);
  r.packets = fromDb(st.int64(11));
  r.bytes = fromDb(st.int64(12));
  r.ended_ms = st.int64(13);
  r.pid = static_cast<std::uint32_t>(st.int64(14));
  r.uid = static_cast<std::uint32_t>(st.int64(15));
  r.user = st.text(16);
  r.exe = st.text(17);
  r.cmdline = st.text(18);
  r.note = st.text(19);
  return r;
}

// One SQL text per shape of query (8 in all), each cached by the connection. The plan is
// pinned: INDEXED BY log_app for one app (an equality plus a rowid range on the index, read in
// id order so LIMIT stops the scan), NOT INDEXED otherwise (a range on the rowid itself).
// since_ms becomes an id bound, found through log_time in O(log n): if rows are appended at
// most `skew` out of time order, every row with time_ms >= since lies after the newest row with
// time_ms < since - skew. time_ms >= since then filters exactly.
//
// Parameters: ?1 after_id, ?2 limit, ?3 app, ?4 since_ms, ?5 since_ms - skew.
std::string queryLogSql(const LogQuery& q) {
  std::string sql = "SELECT ";
  sql += kLogColumns;
  sql += q.app ? " FROM log INDEXED BY log_app WHERE app = ?3 AND" : " FROM log NOT INDEXED WHERE";
  if (q.since_ms != 0) {
    sql +=
        " time_ms >= ?4 AND id > max(?1, coalesce((SELECT id FROM log INDEXED BY log_time "
        "WHERE time_ms < ?5 ORDER BY time_ms DESC LIMIT 1), 0))";
  } else {
    sql += " id > ?1";
  }
  sql += q.newest_first ? " ORDER BY id DESC LIMIT ?2" : " ORDER BY id ASC LIMIT ?2";
  return sql;
}

void bindQueryLog(Statement& st, const LogQuery& q, std::int64_t skew) {
  const auto limit = static_cast<std::int64_t>(
      std::min<std::size_t>(q.limit, std::numeric_limits<std::int64_t>::max()));
  st.bind(1, q.after_id).bind(2, limit);
  if (q.app) st.bind(3, *q.app);
  if (q.since_ms != 0) {
    st.bind(4, q.since_ms);
    // Saturating: since_ms near INT64_MIN must not wrap.
    const std::int64_t lower = q.since_ms < std::numeric_limits<std::int64_t>::min() + skew
                                   ? std::numeric_limits<std::int64_t>::min()
                                   : q.since_ms - skew;
    st.bind(5, lower);
  }
}

}  // namespace

Expected<std::vector<std::int64_t>> Store::appendLog(std::span<const LogRow> rows) {
  const std::string_view what = "append to the connection log in";
  std::vector<std::int64_t> ids;
  if (rows.empty()) return ids;
  ids.reserve(rows.size());
  auto tx = Transaction::begin(*db_, what);
  if (!tx) return Unexpected(std::move(tx).error());
  auto st = db_->prepare(
      "INSERT INTO log (time_ms, app, cell, proto, remote_ip, remote_port, names, verdict, "
      "rule_id, reason, packets, bytes, ended_ms, pid, uid, user, exe, cmdline, note) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
      what);
  if (!st) return Unexpected(std::move(st).error());
  for (const LogRow& r : rows) {
    st->bind(1, r.time_ms)
        .bind(2, r.app)
        .bind(3, r.cell)
        .bind(4, r.proto)
        .bind(5, r.remote_ip)
        .bind(6, std::int64_t{r.remote_port})
        .bind(7, r.names)
        .bind(8, r.verdict)
        .bind(9, std::int64_t{r.rule_id})
        .bind(10, r.reason)
        .bind(11, toDb(r.packets))
        .bind(12, toDb(r.bytes))
        .bind(13, r.ended_ms)
        .bind(14, std::int64_t{r.pid})
        .bind(15, std::int64_t{r.uid})
        .bind(16, r.user)
        .bind(17, r.exe)
        .bind(18, r.cmdline)
        .bind(19, r.note);
    auto done = st->run(what);
    if (!done) return Unexpected(std::move(done).error());
    ids.push_back(db_->lastInsertRowid());
    st->reset();
  }
  CW_STORE_TRY(tx->commit(what));
  return ids;
}

Expected<bool> Store::updateLogCounters(const LogCounters& counters) {
  auto n = updateLogCounters(std::span<const LogCounters>(&counters, 1));
  if (!n) return Unexpected(std::move(n).error());
  return *n > 0;
}

Expected<std::size_t> Store::updateLogCounters(std::span<const LogCounters> counters) {
  const std::string_view what = "update connection counters in";
  if (counters.empty()) return std::size_t{0};
  // A single update commits by itself; a batch is one transaction (one fsync).
  std::optional<Transaction> tx;
  if (counters.size() > 1) {
    auto t = Transaction::begin(*db_, what);
    if (!t) return Unexpected(std::move(t).error());
    tx.emplace(std::move(*t));
  }
  auto st = db_->prepare(
      "UPDATE log SET packets = ?2, bytes = ?3, ended_ms = ?4 WHERE id = ?1", what);
  if (!st) return Unexpected(std::move(st).error());
  std::size_t updated = 0;
  for (const LogCounters& c : counters) {
    st->bind(1, c.id).bind(2, toDb(c.packets)).bind(3, toDb(c.bytes)).bind(4, c.ended_ms);
    CW_STORE_TRY(st->run(what));
    updated += static_cast<std::size_t>(db_->changes());
    st->reset();
  }
  if (tx) CW_STORE_TRY(tx->commit(what));
  return updated;
}

Expected<std::vector<LogRow>> Store::queryLog(const LogQuery& query) {
  const std::string_view what = "query the connection log in";
  std::vector<LogRow> rows;
  if (query.limit == 0) return rows;
  auto st = db_->prepare(queryLogSql(query), what);
  if (!st) return Unexpected(std::move(st).error());
  bindQueryLog(*st, query, options_.log_time_skew_ms);
  rows.reserve(std::min<std::size_t>(query.limit, 1000));
  for (;;) {
    auto row = st->next(what);
    if (!row) return Unexpected(std::move(row).error());
    if (!*row) break;
    rows.push_back(readLog(*st));
  }
  return rows;
}

Expected<std::vector<std::string>> Store::explainQueryLog(const LogQuery& query) {
  const std::string_view what = "explain a connection log query in";
  auto st = db_->prepare("EXPLAIN QUERY PLAN " + queryLogSql(query), what);
  if (!st) return Unexpected(std::move(st).error());
  bindQueryLog(*st, query, options_.log_time_skew_ms);
  std::vector<std::string> plan;
  for (;;) {
    auto row = st->next(what);
    if (!row) return Unexpected(std::move(row).error());
    if (!*row) break;
    plan.push_back(st->text(3));  // columns: id, parent, notused, detail
  }
  return plan;
}

Expected<PruneResult> Store::pruneLog(std::uint64_t max_rows, std::int64_t max_age_ms,
                                      std::int64_t now_ms) {
  const std::string_view what = "prune the connection log in";
  PruneResult result;
  const auto chunk = static_cast<std::int64_t>(
      std::clamp<std::size_t>(options_.prune_chunk_rows, 1, 1'000'000));
  auto tx = Transaction::begin(*db_, what);
  if (!tx) return Unexpected(std::move(tx).error());

  // By count. Rows leave the log only from its oldest end and AUTOINCREMENT ids have no gaps
  // otherwise, so the newest max_rows rows are those with id > max(id) - max_rows: found in
  // O(log n) instead of counting. (Gaps, e.g. from pruning by age with out-of-order times, only
  // make fewer rows remain: never more than max_rows.)
  std::int64_t id_cutoff = 0;  // delete ids <= id_cutoff
  if (max_rows > 0) {
    auto newest = db_->queryInt("SELECT coalesce(max(id), 0) FROM log", what);
    if (!newest) return Unexpected(std::move(newest).error());
    const auto keep = static_cast<std::int64_t>(
        std::min<std::uint64_t>(max_rows, std::numeric_limits<std::int64_t>::max()));
    id_cutoff = *newest > keep ? *newest - keep : 0;
    if (id_cutoff > 0) {
      auto st = db_->prepare(
          "DELETE FROM log WHERE id IN (SELECT id FROM log NOT INDEXED WHERE id <= ?1 "
          "ORDER BY id LIMIT ?2)",
          what);
      if (!st) return Unexpected(std::move(st).error());
      st->bind(1, id_cutoff).bind(2, chunk);
      CW_STORE_TRY(st->run(what));
      result.deleted += static_cast<std::uint64_t>(db_->changes());
    }
  }

  // By age, through log_time, exactly (also rows appended out of time order).
  const bool by_age = max_age_ms > 0;
  const std::int64_t time_cutoff = by_age ? now_ms - max_age_ms : 0;  // delete time_ms < this
  const auto left = chunk - static_cast<std::int64_t>(result.deleted);
  if (by_age && left > 0) {
    auto st = db_->prepare(
        "DELETE FROM log WHERE id IN (SELECT id FROM log INDEXED BY log_time WHERE time_ms < ?1 "
        "ORDER BY time_ms LIMIT ?2)",
        what);
    if (!st) return Unexpected(std::move(st).error());
    st->bind(1, time_cutoff).bind(2, left);
    CW_STORE_TRY(st->run(what));
    result.deleted += static_cast<std::uint64_t>(db_->changes());
  }

  // Anything left beyond either limit?
  if (id_cutoff > 0) {
    auto oldest = db_->queryInt("SELECT coalesce(min(id), 0) FROM log", what);
    if (!oldest) return Unexpected(std::move(oldest).error());
    result.more = *oldest != 0 && *oldest <= id_cutoff;
  }
  if (by_age && !result.more) {
    auto st = db_->prepare("SELECT count(*) FROM (SELECT 1 FROM log INDEXED BY log_time "
                           "WHERE time_ms < ?1 LIMIT 1)",
                           what);
    if (!st) return Unexpected(std::move(st).error());
    st->bind(1, time_cutoff);
    auto row = st->next(what);
    if (!row) return Unexpected(std::move(row).error());
    result.more = *row && st->int64(0) > 0;
  }
  CW_STORE_TRY(tx->commit(what));
  return result;
}

Expected<std::uint64_t> Store::logRowCount() {
  auto n = db_->queryInt("SELECT count(*) FROM log", "count the connection log rows in");
  if (!n) return Unexpected(std::move(n).error());
  return static_cast<std::uint64_t>(*n);
}

}  // namespace cw::store
