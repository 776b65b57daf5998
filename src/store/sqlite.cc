#include "store/sqlite.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>

namespace cw::store::detail {

namespace {

// What a person can do about the common failures.
const char* advice(int rc) {
  // Only rules.app is a foreign key.
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return "the rule's app does not exist; put the app first";
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "another process holds the database; is a second cellwalld running?";
    case SQLITE_FULL:
      return "the disk is full; free some space";
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return "check the file's and directory's permissions";
    case SQLITE_CANTOPEN:
      return "check that the directory exists and is writable";
    case SQLITE_NOTADB:
      return "not a cellwall database; move the file away";
    case SQLITE_CORRUPT:
      return "the file is damaged; restore a backup or move it away";
    case SQLITE_IOERR:
      return "input/output error; check the disk";
    default:
      return nullptr;
  }
}

// Creates the file with mode 0600 before SQLite sees it (SQLite would use 0644 & ~umask); the
// -wal and -shm files SQLite creates later copy the main file's mode. An existing file is
// tightened to 0600 too: it holds the whole policy and connection history.
Expected<void> createPrivate(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    const int err = errno;
    std::string msg = "cannot open " + file.string() + ": " + std::strerror(err);
    if (err == ENOENT) msg += " (create the directory first)";
    if (err == EACCES) msg += " (check the directory's permissions)";
    return fail(std::move(msg));
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) ::fchmod(fd, 0600);
  ::close(fd);
  for (const char* suffix : {"-wal", "-shm"}) {
    // Left behind by an older run, possibly with a looser mode; ignore if absent.
    ::chmod((file.string() + suffix).c_str(), 0600);
  }
  return {};
}

}  // namespace

// ---- Statement ----

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Statement& Statement::bind(int index, std::int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  // SQLITE_TRANSIENT: SQLite copies the bytes, so temporaries are fine.
  const int rc = sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                                     SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  bind_rc_ = SQLITE_OK;
}

int Statement::step() {
  if (bind_rc_ != SQLITE_OK) return bind_rc_;
  return sqlite3_step(stmt_);
}

Expected<void> Statement::run(std::string_view what) {
  for (;;) {
    const int rc = step();
    if (rc == SQLITE_DONE) return {};
    if (rc != SQLITE_ROW) return Unexpected(db_->error(what, rc));
  }
}

Expected<bool> Statement::next(std::string_view what) {
  const int rc = step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Unexpected(db_->error(what, rc));
}

std::int64_t Statement::int64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::text(int column) const {
  const unsigned char* p = sqlite3_column_text(stmt_, column);
  const int n = sqlite3_column_bytes(stmt_, column);
  if (p == nullptr || n <= 0) return {};
  // SQLite hands out text as unsigned char; the bytes are the UTF-8 we stored.
  return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)};
}

// ---- Connection ----

Expected<std::unique_ptr<Connection>> Connection::open(const std::filesystem::path& file,
                                                       std::chrono::milliseconds busy_timeout) {
  CW_STORE_TRY(createPrivate(file));
  sqlite3* db = nullptr;
  // NOMUTEX: one thread uses the connection (documented in store.h). NOFOLLOW: the state file
  // is never a symlink. EXRESCODE: extended result codes in errors.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                    SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE;
  const int rc = sqlite3_open_v2(file.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "cannot open " + file.string() + ": " +
                      (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    if (const char* a = advice(rc)) msg += std::string(" (") + a + ")";
    sqlite3_close(db);
    return fail(std::move(msg));
  }
  sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
  return std::unique_ptr<Connection>(new Connection(db, file.string()));
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  // All statements are finalized, so close cannot fail with SQLITE_BUSY.
  sqlite3_close(db_);
}

Expected<Statement> Connection::prepare(std::string_view sql, std::string_view what) {
  if (auto it = cache_.find(sql); it != cache_.end()) {
    // A cached statement in use twice at once would be a bug in the store.
    assert(sqlite3_stmt_busy(it->second) == 0);
    return Statement(*this, it->second);
  }
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return Unexpected(error(what, rc));
  cache_.emplace(std::string(sql), stmt);
  return Statement(*this, stmt);
}

Expected<void> Connection::exec(const char* sql, std::string_view what) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Unexpected(error(what, rc));
  return {};
}

Expected<std::int64_t> Connection::queryInt(std::string_view sql, std::string_view what) {
  auto st = prepare(sql, what);
  if (!st) return Unexpected(std::move(st).error());
  auto row = st->next(what);
  if (!row) return Unexpected(std::move(row).error());
  if (!*row) return Unexpected(error(what, "no result"));
  return st->int64(0);
}

Expected<std::string> Connection::queryText(std::string_view sql, std::string_view what) {
  auto st = prepare(sql, what);
  if (!st) return Unexpected(std::move(st).error());
  auto row = st->next(what);
  if (!row) return Unexpected(std::move(row).error());
  if (!*row) return Unexpected(error(what, "no result"));
  return st->text(0);
}

Error Connection::error(std::string_view what, int rc) const {
  // sqlite3_errmsg describes the most recent failure, which is rc's; fall back to the generic
  // text when it does not (e.g. a failed bind reported by step()).
  std::string detail = sqlite3_errcode(db_) == rc ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  if (const char* a = advice(rc)) detail += std::string(" (") + a + ")";
  return error(what, detail);
}

Error Connection::error(std::string_view what, std::string_view detail) const {
  std::string msg = "cannot ";
  msg += what;
  msg += ' ';
  msg += file_;
  msg += ": ";
  msg += detail;
  return Error{std::move(msg)};
}

// ---- Transaction ----

Expected<Transaction> Transaction::begin(Connection& db, std::string_view what) {
  auto st = db.prepare("BEGIN IMMEDIATE", what);
  if (!st) return Unexpected(std::move(st).error());
  CW_STORE_TRY(st->run(what));
  return Transaction(db);
}

Transaction::~Transaction() {
  if (db_ == nullptr || !db_->inTransaction()) return;
  auto st = db_->prepare("ROLLBACK", "roll back");
  // ROLLBACK of an IMMEDIATE transaction only fails if the connection is unusable; the next
  // call will report that.
  if (st) (void)st->run("roll back");
}

Expected<void> Transaction::commit(std::string_view what) {
  assert(db_ != nullptr);
  auto st = db_->prepare("COMMIT", what);
  if (!st) return Unexpected(std::move(st).error());
  auto done = st->run(what);
  if (!done) return done;  // the destructor rolls back
  db_ = nullptr;
  return {};
}

}  // namespace cw::store::detail
