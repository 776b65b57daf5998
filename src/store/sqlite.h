// Private to cw_store: a thin RAII layer over the SQLite C API. Not part of the store's
// contract; only src/store/*.cc include it (and with it sqlite3.h).
//
// Connection owns the sqlite3 handle and a cache of prepared statements keyed by SQL text;
// Statement borrows one cached statement and resets it when it goes out of scope, so a
// statement is compiled once per connection and reused. Transaction is BEGIN IMMEDIATE ...
// COMMIT that rolls back if not committed. Every failure becomes an Error saying
// "cannot <what> <file>: <SQLite's message> (<advice>)".
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "common/result.h"

namespace cw::store::detail {

class Connection;

class Statement {
 public:
  Statement(Connection& db, sqlite3_stmt* stmt) : db_(&db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based. A failed bind (e.g. text over SQLite's size limit) is remembered
  // and reported by the next step().
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::string_view value);

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step();
  // Makes the statement ready to be bound and stepped again (bindings are kept).
  void reset();
  // Steps a statement that returns no rows to completion.
  Expected<void> run(std::string_view what);
  // Steps once; true when a row is available, false at the end.
  Expected<bool> next(std::string_view what);

  std::int64_t int64(int column) const;
  std::string text(int column) const;

  Connection& connection() { return *db_; }

 private:
  Connection* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

class Connection {
 public:
  // Opens (creating if missing) `file`. The caller sets pragmas.
  static Expected<std::unique_ptr<Connection>> open(const std::filesystem::path& file,
                                                    std::chrono::milliseconds busy_timeout);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // The cached statement for `sql`, compiled on first use.
  Expected<Statement> prepare(std::string_view sql, std::string_view what);
  // Runs one or more statements that return no rows (not cached; for schema and pragmas).
  Expected<void> exec(const char* sql, std::string_view what);
  // Runs a single-row, single-column query such as "PRAGMA user_version".
  Expected<std::int64_t> queryInt(std::string_view sql, std::string_view what);
  Expected<std::string> queryText(std::string_view sql, std::string_view what);

  // "cannot <what> <file>: <message> (<advice>)" for result code `rc`, reading SQLite's
  // message for the last failed call on this connection.
  Error error(std::string_view what, int rc) const;
  Error error(std::string_view what, std::string_view detail) const;

  std::int64_t lastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }
  std::int64_t changes() const { return sqlite3_changes64(db_); }
  bool inTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

 private:
  Connection(sqlite3* db, std::string file) : db_(db), file_(std::move(file)) {}

  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  sqlite3* db_;
  std::string file_;
  std::unordered_map<std::string, sqlite3_stmt*, Hash, std::equal_to<>> cache_;
};

// BEGIN IMMEDIATE (takes the write lock up front, so the transaction cannot fail half-way for
// lack of it) ... COMMIT; rolls back when destroyed uncommitted.
class Transaction {
 public:
  static Expected<Transaction> begin(Connection& db, std::string_view what);
  Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  Expected<void> commit(std::string_view what);

 private:
  explicit Transaction(Connection& db) : db_(&db) {}
  Connection* db_;
};

}  // namespace cw::store::detail

// Returns the error of a failed Expected from the enclosing function.
#define CW_STORE_TRY(expr)                                                       \
  do {                                                                           \
    if (auto cw_store_status_ = (expr); !cw_store_status_)                       \
      return ::cw::Unexpected<::cw::Error>(std::move(cw_store_status_).error()); \
  } while (0)
