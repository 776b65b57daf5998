// Store::open: the file, its pragmas, and the schema with its migrations.
#include "store/store.h"

#include <iterator>

#include "store/sqlite.h"

namespace cw::store {

namespace {

using detail::Connection;
using detail::Transaction;

// PRAGMA application_id of cellwall databases ("CWLL"), so a stray SQLite file is refused
// instead of being written into.
constexpr std::int64_t kApplicationId = 0x43574C4C;

// Schema version 1. STRICT tables: SQLite enforces the column types. Every column is NOT NULL
// (empty string / 0 mean "none"), which keeps the row structs free of optionals.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE apps (
  name            TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
  default_action  TEXT NOT NULL,
  env             TEXT NOT NULL,
  updated_ms      INTEGER NOT NULL
) STRICT;

-- AUTOINCREMENT: a removed rule's id is never handed out again (prompts, the API and the log
-- refer to rules by id).
CREATE TABLE rules (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  app               TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE ON UPDATE CASCADE,
  action            TEXT NOT NULL CHECK (action <> ''),
  body              TEXT NOT NULL,
  created_ms        INTEGER NOT NULL,
  expires_ms        INTEGER NOT NULL CHECK (expires_ms >= 0),
  connections_max   INTEGER NOT NULL CHECK (connections_max BETWEEN 0 AND 4294967295),
  connections_used  INTEGER NOT NULL CHECK (connections_used BETWEEN 0 AND 4294967295),
  until_cell        TEXT NOT NULL,
  origin            TEXT NOT NULL
) STRICT;
CREATE INDEX rules_app ON rules(app);
CREATE INDEX rules_expires ON rules(expires_ms) WHERE expires_ms > 0;
CREATE INDEX rules_until_cell ON rules(until_cell) WHERE until_cell <> '';

CREATE TABLE cells (
  id          TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
  app         TEXT NOT NULL,
  env         TEXT NOT NULL,
  ip          TEXT NOT NULL,
  pid         INTEGER NOT NULL,
  started_ms  INTEGER NOT NULL,
  details     TEXT NOT NULL DEFAULT ''
) STRICT;

-- The connection log: append-mostly, pruned from the oldest end. AUTOINCREMENT keeps ids
-- increasing even after the log was emptied, so a client's after_id cursor stays valid.
-- log_app (app, rowid) serves "newest N of one app"; log_time (time_ms, rowid) serves
-- since_ms and pruning by age.
CREATE TABLE log (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ms      INTEGER NOT NULL,
  app          TEXT NOT NULL,
  cell         TEXT NOT NULL,
  proto        TEXT NOT NULL,
  remote_ip    TEXT NOT NULL,
  remote_port  INTEGER NOT NULL,
  names        TEXT NOT NULL,
  verdict      TEXT NOT NULL,
  rule_id      INTEGER NOT NULL,
  reason       TEXT NOT NULL,
  packets      INTEGER NOT NULL,
  bytes        INTEGER NOT NULL,
  ended_ms     INTEGER NOT NULL
) STRICT;
CREATE INDEX log_app ON log(app);
CREATE INDEX log_time ON log(time_ms);
)sql";

// Version 2: an app's prompt settings (policy keys prompt_timeout, prompt_timeout_action).
constexpr const char* kSchemaV2 = R"sql(
ALTER TABLE apps ADD COLUMN prompt_timeout_ms INTEGER NOT NULL DEFAULT 60000;
ALTER TABLE apps ADD COLUMN prompt_timeout_action TEXT NOT NULL DEFAULT 'deny';
)sql";

// Version 3: the process that owns each logged connection (issue 6).
constexpr const char* kSchemaV3 = R"sql(
ALTER TABLE log ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE log ADD COLUMN uid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE log ADD COLUMN user TEXT NOT NULL DEFAULT '';
ALTER TABLE log ADD COLUMN exe TEXT NOT NULL DEFAULT '';
ALTER TABLE log ADD COLUMN cmdline TEXT NOT NULL DEFAULT '';
)sql";

// Version 4: why a logged connection has no process, when that is known (a VM cell's: the
// host cannot see into its guest). Stored because a row outlives the cell it names.
constexpr const char* kSchemaV4 = R"sql(
ALTER TABLE log ADD COLUMN note TEXT NOT NULL DEFAULT '';
)sql";

// Version 5: an app's name-resolution setting (policy key resolve; '' when the policy leaves it
// to follow default).
constexpr const char* kSchemaV5 = R"sql(
ALTER TABLE apps ADD COLUMN resolve TEXT NOT NULL DEFAULT '';
)sql";

// Version 6: an app's environment settings (policy keys clean_env, pass_env).
constexpr const char* kSchemaV6 = R"sql(
ALTER TABLE apps ADD COLUMN clean_env INTEGER NOT NULL DEFAULT 0 CHECK (clean_env IN (0, 1));
ALTER TABLE apps ADD COLUMN pass_env TEXT NOT NULL DEFAULT '';
)sql";

// Migration hook: kMigrations[i] takes a database from version i to i + 1 (version 0 is an
// empty file). To change the schema, append a step and bump kSchemaVersion; never edit a step
// that has shipped.
struct Migration {
  int to_version;
  const char* sql;
};
constexpr Migration kMigrations[] = {
    {1, kSchemaV1},
    {2, kSchemaV2},
    {3, kSchemaV3},
    {4, kSchemaV4},
    {5, kSchemaV5},
    {6, kSchemaV6},
};
static_assert(std::size(kMigrations) == kSchemaVersion, "one migration per schema version");

}  // namespace

Store::Store(std::filesystem::path file, Options options, std::unique_ptr<Connection> db)
    : file_(std::move(file)), options_(options), db_(std::move(db)) {}

Store::~Store() = default;

Expected<std::unique_ptr<Store>> Store::open(const std::filesystem::path& file, Options options) {
  auto db = Connection::open(file, options.busy_timeout);
  if (!db) return Unexpected(std::move(db).error());
  std::unique_ptr<Store> store(new Store(file, options, std::move(*db)));
  Connection& c = *store->db_;

  // Reading the header first: a file that is not SQLite fails here, before anything writes.
  auto app_id = c.queryInt("PRAGMA application_id", "open");
  if (!app_id) return Unexpected(std::move(app_id).error());
  auto objects = c.queryInt("SELECT count(*) FROM sqlite_schema", "open");
  if (!objects) return Unexpected(std::move(objects).error());
  if (*app_id != kApplicationId && (*app_id != 0 || *objects != 0)) {
    return Unexpected(c.error("open", "not a cellwall database (it has other tables); move it "
                                      "away or choose another file"));
  }

  // WAL: readers (CLI, backups) never block the daemon's writes, and a commit is one append
  // plus one fsync. It is a property of the file, so it sticks.
  auto mode = c.queryText("PRAGMA journal_mode=WAL", "enable WAL on");
  if (!mode) return Unexpected(std::move(mode).error());
  if (*mode != "wal") {
    return Unexpected(c.error("enable WAL on", "journal mode stays '" + *mode +
                                                  "' (the file system may not support shared "
                                                  "memory; use a local disk)"));
  }
  // FULL: the WAL is fsynced at every commit, so an acknowledged write survives power loss
  // (NORMAL would only survive a crash of the process). Per connection.
  CW_STORE_TRY(c.exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                      // After a burst, truncate the WAL back to at most 64 MiB at checkpoints.
                      "PRAGMA journal_size_limit=67108864;",
                      "configure"));
  CW_STORE_TRY(store->migrate());
  return store;
}

Expected<void> Store::migrate() {
  Connection& c = *db_;
  const std::string what = "update the schema of";
  // Under the write lock: another process opening the same file migrates it only once.
  auto tx = Transaction::begin(c, what);
  if (!tx) return Unexpected(std::move(tx).error());
  auto version = c.queryInt("PRAGMA user_version", what);
  if (!version) return Unexpected(std::move(version).error());
  if (*version > kSchemaVersion) {
    return Unexpected(c.error(
        "open", "its schema version " + std::to_string(*version) +
                    " is newer than this cellwall understands (" + std::to_string(kSchemaVersion) +
                    "); run a newer cellwall, or move the file away to start afresh"));
  }
  if (*version == kSchemaVersion) return {};  // the transaction rolls back: nothing to write
  for (const Migration& m : kMigrations) {
    if (m.to_version <= *version) continue;
    CW_STORE_TRY(c.exec(m.sql, what));
  }
  // Both pragmas write the header inside the transaction, so they commit with the schema.
  const std::string stamp = "PRAGMA user_version=" + std::to_string(kSchemaVersion) +
                            "; PRAGMA application_id=" + std::to_string(kApplicationId) + ";";
  CW_STORE_TRY(c.exec(stamp.c_str(), what));
  return tx->commit(what);
}

}  // namespace cw::store
