#include <sys/stat.h>

#include <fstream>

#include "fixture.h"

namespace cw::store::test {
namespace {

TEST_F(StoreTest, CreatesPrivateWalDatabase) {
  auto s = open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->putApp(app("firefox")));
  for (const char* suffix : {"", "-wal", "-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat((file.string() + suffix).c_str(), &st), 0) << suffix;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << suffix;
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), kSchemaVersion);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_F(StoreTest, TightensLooseFileMode) {
  std::ofstream(file).close();  // an empty file is a valid, empty database
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  ASSERT_TRUE(open());
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(StoreTest, RefusesNewerSchema) {
  ASSERT_TRUE(open());
  rawExec("PRAGMA user_version = " + std::to_string(kSchemaVersion + 1));
  auto s = Store::open(file);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message,
            "cannot open " + file.string() + ": its schema version " + std::to_string(kSchemaVersion + 1) +
                " is newer than this cellwall understands (" + std::to_string(kSchemaVersion) +
                "); run a newer cellwall, or move the file away to start afresh");
}

// A version-2 file (before the log's process columns) opens as version 3: its rows are kept,
// unattributed; rows logged from then on keep their process.
TEST_F(StoreTest, MigratesVersionTwoToThree) {
  LogRow old;
  old.time_ms = 1;
  old.app = "old";
  old.cell = "1";
  old.proto = "tcp";
  old.remote_ip = "192.0.2.1";
  old.remote_port = 80;
  old.verdict = "allow";
  {
    auto s = Store::open(file);
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE((*s)->appendLog(std::vector<LogRow>{old}));
  }
  dropVersionThree();
  rawExec("PRAGMA user_version = 2");
  auto s = Store::open(file);
  ASSERT_TRUE(s) << s.error().message;
  LogRow now = old;
  now.pid = 4321;
  now.uid = 1000;
  now.user = "alice";
  now.exe = "/usr/bin/curl";
  now.cmdline = "curl -s http://x/";
  ASSERT_TRUE((*s)->appendLog(std::vector<LogRow>{now}));
  LogQuery q;
  q.newest_first = false;
  auto rows = (*s)->queryLog(q);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].pid, 0u);
  EXPECT_EQ((*rows)[0].exe, "");
  EXPECT_EQ((*rows)[1].pid, 4321u);
  EXPECT_EQ((*rows)[1].uid, 1000u);
  EXPECT_EQ((*rows)[1].user, "alice");
  EXPECT_EQ((*rows)[1].exe, "/usr/bin/curl");
  EXPECT_EQ((*rows)[1].cmdline, "curl -s http://x/");
}

// A version-3 file (before the log's note) opens as version 4: its rows keep their process and
// get no note; a note logged from then on is read back.
TEST_F(StoreTest, MigratesVersionThreeToFour) {
  LogRow old = logRow("old", 1);
  old.pid = 4321;
  old.uid = 1000;
  old.user = "alice";
  old.exe = "/usr/bin/curl";
  old.cmdline = "curl -s http://x/";
  {
    auto s = Store::open(file);
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE((*s)->appendLog(std::vector<LogRow>{old}));
  }
  dropVersionFour();
  rawExec("PRAGMA user_version = 3");
  auto s = Store::open(file);
  ASSERT_TRUE(s) << s.error().message;
  LogRow vm = logRow("vm", 2);
  vm.note = "not visible (VM cell)";
  ASSERT_TRUE((*s)->appendLog(std::vector<LogRow>{vm}));
  LogQuery q;
  q.newest_first = false;
  auto rows = (*s)->queryLog(q);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  old.id = (*rows)[0].id;
  EXPECT_EQ((*rows)[0], old);
  EXPECT_EQ((*rows)[1].pid, 0u);
  EXPECT_EQ((*rows)[1].note, "not visible (VM cell)");
}

// A version-4 file (before resolve) opens as version 5: its apps are kept with resolve unset (the
// policy's default decides), and a setting is stored from then on.
TEST_F(StoreTest, MigratesVersionFourToFive) {
  {
    auto s = Store::open(file);
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE((*s)->putApp(AppRow{"old", "deny", "default", 1, 60000, "deny", "any"}));
  }
  dropVersionFive();
  rawExec("PRAGMA user_version = 4");
  auto s = Store::open(file);
  ASSERT_TRUE(s) << s.error().message;
  auto app = (*s)->getApp("old");
  ASSERT_TRUE(app && *app);
  EXPECT_EQ(**app, (AppRow{"old", "deny", "default", 1, 60000, "deny", ""}));
  ASSERT_TRUE((*s)->putApp(AppRow{"old", "deny", "default", 2, 60000, "deny", "rules"}));
  app = (*s)->getApp("old");
  ASSERT_TRUE(app && *app);
  EXPECT_EQ((*app)->resolve, "rules");
}

// A version-5 file (before the environment settings) opens as version 6: its apps keep
// everything else and pass the whole environment, as before; new settings are stored.
TEST_F(StoreTest, MigratesVersionFiveToSix) {
  {
    auto s = Store::open(file);
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE((*s)->putApp(AppRow{"old", "deny", "default", 1, 5000, "reject", "rules"}));
  }
  dropVersionSix();
  rawExec("PRAGMA user_version = 5");
  auto s = Store::open(file);
  ASSERT_TRUE(s) << s.error().message;
  auto app = (*s)->getApp("old");
  ASSERT_TRUE(app && *app);
  EXPECT_EQ(**app, (AppRow{"old", "deny", "default", 1, 5000, "reject", "rules", false, ""}));
  const AppRow clean{"new", "deny", "default", 2, 60000, "deny", "", true, "SSH_AUTH_SOCK MYAPP_*"};
  ASSERT_TRUE((*s)->putApp(clean));
  auto apps = (*s)->listApps();
  ASSERT_TRUE(apps);
  ASSERT_EQ(apps->size(), 2u);
  EXPECT_EQ((*apps)[0], clean);
}

// A version-1 file (before the prompt settings) opens as version 2: its apps are kept and get
// the default prompt settings; new settings are stored from then on.
TEST_F(StoreTest, MigratesVersionOneToTwo) {
  {
    auto s = Store::open(file);
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE((*s)->putApp(AppRow{"old", "deny", "default", 1, 60000, "deny", ""}));
  }
  dropVersionThree();
  rawExec("ALTER TABLE apps DROP COLUMN prompt_timeout_ms");
  rawExec("ALTER TABLE apps DROP COLUMN prompt_timeout_action");
  rawExec("PRAGMA user_version = 1");
  auto s = Store::open(file);
  ASSERT_TRUE(s) << s.error().message;
  auto app = (*s)->getApp("old");
  ASSERT_TRUE(app && *app);
  EXPECT_EQ(**app, (AppRow{"old", "deny", "default", 1, 60000, "deny", ""}));
  ASSERT_TRUE((*s)->putApp(AppRow{"new", "prompt", "default", 2, 5000, "reject", ""}));
  auto apps = (*s)->listApps();
  ASSERT_TRUE(apps);
  ASSERT_EQ(apps->size(), 2u);
  EXPECT_EQ((*apps)[0], (AppRow{"new", "prompt", "default", 2, 5000, "reject", ""}));
}

TEST_F(StoreTest, RefusesForeignDatabase) {
  rawExec("CREATE TABLE photos (id INTEGER)");
  auto s = Store::open(file);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, "cannot open " + file.string() +
                                   ": not a cellwall database (it has other tables); move it "
                                   "away or choose another file");
}

TEST_F(StoreTest, RefusesFileThatIsNotSqlite) {
  std::ofstream(file) << std::string(8192, 'x');
  auto s = Store::open(file);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, "cannot open " + file.string() +
                                   ": file is not a database (not a cellwall database; move "
                                   "the file away)");
}

TEST_F(StoreTest, MissingDirectory) {
  auto s = Store::open(dir / "nope" / "cellwall.db");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, "cannot open " + (dir / "nope" / "cellwall.db").string() +
                                   ": No such file or directory (create the directory first)");
}

TEST_F(StoreTest, Apps) {
  auto s = open();
  ASSERT_TRUE(s->putApp(app("firefox")));
  ASSERT_TRUE(s->putApp(app("curl", "deny")));
  auto got = s->getApp("firefox");
  ASSERT_TRUE(got);
  ASSERT_TRUE(*got);
  EXPECT_EQ(**got, app("firefox"));
  auto none = s->getApp("nope");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);

  AppRow changed = app("firefox", "deny");
  changed.env = "vpn";
  changed.updated_ms = 2000;
  ASSERT_TRUE(s->putApp(changed));
  auto list = s->listApps();
  ASSERT_TRUE(list);
  EXPECT_EQ(*list, (std::vector<AppRow>{app("curl", "deny"), changed}));

  auto removed = s->removeApp("curl");
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  removed = s->removeApp("curl");
  ASSERT_TRUE(removed);
  EXPECT_FALSE(*removed);
}

TEST_F(StoreTest, RulesRoundTripAndIdsAreNeverReused) {
  auto s = open();
  ASSERT_TRUE(s->putApp(app("firefox")));
  RuleRow r = rule("firefox", "example.com");
  r.expires_ms = 1'800'000'000'000;
  r.connections_max = 5;
  r.connections_used = 1;
  r.until_cell = "cw-firefox-1";
  auto id1 = s->addRule(r);
  ASSERT_TRUE(id1) << id1.error().message;
  auto id2 = s->addRule(rule("firefox", "example.org"));
  ASSERT_TRUE(id2);
  EXPECT_EQ(*id1, 1u);
  EXPECT_EQ(*id2, 2u);

  auto got = s->getRule(*id1);
  ASSERT_TRUE(got);
  ASSERT_TRUE(*got);
  r.id = *id1;
  EXPECT_EQ(**got, r);

  auto removed = s->removeRule(*id2);
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  removed = s->removeRule(*id2);
  ASSERT_TRUE(removed);
  EXPECT_FALSE(*removed);
  auto id3 = s->addRule(rule("firefox", "example.net"));
  ASSERT_TRUE(id3);
  EXPECT_EQ(*id3, 3u);  // not 2 again

  r.action = "deny";
  r.body = "[[deny]]\nhosts = \"example.com\"\n";
  auto updated = s->updateRule(r);
  ASSERT_TRUE(updated);
  EXPECT_TRUE(*updated);
  got = s->getRule(*id1);
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(**got, r);
  RuleRow missing = r;
  missing.id = 99;
  updated = s->updateRule(missing);
  ASSERT_TRUE(updated);
  EXPECT_FALSE(*updated);
  auto none = s->getRule(99);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST_F(StoreTest, ListRulesByApp) {
  auto s = open();
  ASSERT_TRUE(s->putApp(app("firefox")));
  ASSERT_TRUE(s->putApp(app("curl")));
  ASSERT_TRUE(s->addRule(rule("firefox", "a")));
  ASSERT_TRUE(s->addRule(rule("curl", "b")));
  ASSERT_TRUE(s->addRule(rule("firefox", "c")));
  auto all = s->listRules();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  auto ff = s->listRules("firefox");
  ASSERT_TRUE(ff);
  ASSERT_EQ(ff->size(), 2u);
  EXPECT_EQ((*ff)[0].id, 1u);
  EXPECT_EQ((*ff)[1].id, 3u);
  auto none = s->listRules("nope");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(StoreTest, RuleOfUnknownAppIsRefused) {
  auto s = open();
  auto id = s->addRule(rule("ghost", "example.com"));
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().message, "cannot add rule to " + file.string() +
                                    ": FOREIGN KEY constraint failed (the rule's app does not "
                                    "exist; put the app first)");
}

TEST_F(StoreTest, RemovingAnAppRemovesItsRulesButPuttingItKeepsThem) {
  auto s = open();
  ASSERT_TRUE(s->putApp(app("firefox")));
  ASSERT_TRUE(s->putApp(app("curl")));
  ASSERT_TRUE(s->addRule(rule("firefox", "a")));
  ASSERT_TRUE(s->addRule(rule("curl", "b")));
  ASSERT_TRUE(s->putApp(app("firefox", "deny")));  // an upsert, not delete + insert
  EXPECT_EQ(s->listRules("firefox")->size(), 1u);
  ASSERT_TRUE(s->removeApp("firefox"));
  EXPECT_TRUE(s->listRules("firefox")->empty());
  EXPECT_EQ(s->listRules("curl")->size(), 1u);
}

TEST_F(StoreTest, ReplaceAppRules) {
  auto s = open();
  ASSERT_TRUE(s->putApp(app("firefox")));
  ASSERT_TRUE(s->putApp(app("curl")));
  ASSERT_TRUE(s->addRule(rule("firefox", "old")));
  ASSERT_TRUE(s->addRule(rule("curl", "keep")));
  auto ids = s->replaceAppRules(app("firefox", "deny"),
                                {rule("", "new1"), rule("firefox", "new2", "deny")});
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_EQ(*ids, (std::vector<std::uint32_t>{3, 4}));
  auto ff = s->listRules("firefox");
  ASSERT_EQ(ff->size(), 2u);
  EXPECT_EQ((*ff)[0].app, "firefox");
  EXPECT_EQ((*ff)[0].body, rule("", "new1").body);
  EXPECT_EQ((*ff)[1].action, "deny");
  EXPECT_EQ((*s->getApp("firefox"))->default_action, "deny");
  EXPECT_EQ(s->listRules("curl")->size(), 1u);

  // A new app is created by the import.
  ids = s->replaceAppRules(app("wget"), {rule("wget", "x")});
  ASSERT_TRUE(ids);
  EXPECT_TRUE(*s->getApp("wget"));
}

TEST_F(StoreTest, ReplaceAppRulesIsAllOrNothing) {
  auto s = open();
  ASSERT_TRUE(s->putApp(app("firefox")));
  ASSERT_TRUE(s->addRule(rule("firefox", "a")));
  ASSERT_TRUE(s->addRule(rule("firefox", "b")));
  auto before = s->listRules();
  ASSERT_TRUE(before);

  // The third rule violates CHECK (action <> ''): by then the app row has been updated, the
  // old rules deleted and two new rules inserted, all inside the transaction.
  RuleRow bad = rule("firefox", "c");
  bad.action = "";
  auto ids = s->replaceAppRules(app("firefox", "deny"),
                                {rule("firefox", "n1"), rule("firefox", "n2"), bad});
  ASSERT_FALSE(ids);
  EXPECT_EQ(ids.error().message, "cannot replace the rules of app 'firefox' in " + file.string() +
                                     ": CHECK constraint failed: action <> ''");
  EXPECT_EQ(*s->listRules(), *before);
  EXPECT_EQ((*s->getApp("firefox"))->default_action, "prompt");

  // A rule of another app is refused before anything is written.
  ids = s->replaceAppRules(app("firefox"), {rule("curl", "x")});
  ASSERT_FALSE(ids);
  EXPECT_EQ(ids.error().message, "cannot replace the rules of app 'firefox' in " + file.string() +
                                     ": a rule names app 'curl'");

  // The store is still usable, and the failed import consumed no visible ids.
  auto id = s->addRule(rule("firefox", "d"));
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, 3u);
}

TEST_F(StoreTest, UseConnection) {
  auto s = open();
  ASSERT_TRUE(s->putApp(app("firefox")));
  RuleRow r = rule("firefox", "a");
  r.connections_max = 2;
  auto id = s->addRule(r);
  ASSERT_TRUE(id);
  for (std::uint32_t want = 1; want <= 3; ++want) {
    auto used = s->useConnection(*id);
    ASSERT_TRUE(used) << used.error().message;
    ASSERT_TRUE(*used);
    EXPECT_EQ(**used, want);
  }
  EXPECT_EQ((*s->getRule(*id))->connections_used, 3u);
  auto missing = s->useConnection(42);
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
}

TEST_F(StoreTest, RemoveExpiredAndRulesOfCell) {
  auto s = open();
  ASSERT_TRUE(s->putApp(app("firefox")));
  RuleRow forever = rule("firefox", "forever");
  RuleRow soon = rule("firefox", "soon");
  soon.expires_ms = 100;
  RuleRow later = rule("firefox", "later");
  later.expires_ms = 300;
  RuleRow cell1 = rule("firefox", "cell1");
  cell1.until_cell = "cw-firefox-1";
  RuleRow cell2 = rule("firefox", "cell2");
  cell2.until_cell = "cw-firefox-2";
  for (const auto& r : {forever, soon, later, cell1, cell2, soon}) ASSERT_TRUE(s->addRule(r));

  auto expired = s->removeExpired(99);
  ASSERT_TRUE(expired);
  EXPECT_TRUE(expired->empty());
  expired = s->removeExpired(100);
  ASSERT_TRUE(expired);
  EXPECT_EQ(*expired, (std::vector<std::uint32_t>{2, 6}));
  expired = s->removeExpired(1'000'000);
  ASSERT_TRUE(expired);
  EXPECT_EQ(*expired, (std::vector<std::uint32_t>{3}));

  auto of_cell = s->removeRulesOfCell("cw-firefox-1");
  ASSERT_TRUE(of_cell);
  EXPECT_EQ(*of_cell, (std::vector<std::uint32_t>{4}));
  of_cell = s->removeRulesOfCell("");
  ASSERT_TRUE(of_cell);
  EXPECT_TRUE(of_cell->empty());
  auto left = s->listRules();
  ASSERT_EQ(left->size(), 2u);
  EXPECT_EQ((*left)[0].id, 1u);
  EXPECT_EQ((*left)[1].id, 5u);
}

TEST_F(StoreTest, Cells) {
  auto s = open();
  CellRow a{"cw-firefox-1", "firefox", "home", "10.77.0.2", 1234, 5000, "{\"netns\": \"cw-c1\"}"};
  CellRow b{"cw-curl-1", "curl", "vpn", "10.77.0.3", 99, 6000, ""};
  ASSERT_TRUE(s->putCell(a));
  ASSERT_TRUE(s->putCell(b));
  a.pid = 4321;
  ASSERT_TRUE(s->putCell(a));
  auto cells = s->listCells();
  ASSERT_TRUE(cells);
  EXPECT_EQ(*cells, (std::vector<CellRow>{b, a}));
  auto removed = s->removeCell("cw-curl-1");
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  removed = s->removeCell("cw-curl-1");
  ASSERT_TRUE(removed);
  EXPECT_FALSE(*removed);
  EXPECT_EQ(*s->listCells(), std::vector<CellRow>{a});
}

TEST_F(StoreTest, ReopenKeepsEverything) {
  std::vector<AppRow> apps;
  std::vector<RuleRow> rules;
  std::vector<CellRow> cells;
  std::vector<LogRow> log;
  {
    auto s = open();
    ASSERT_TRUE(s->putApp(app("firefox")));
    ASSERT_TRUE(s->putApp(app("curl", "deny")));
    ASSERT_TRUE(s->addRule(rule("firefox", "a")));
    ASSERT_TRUE(s->replaceAppRules(app("curl", "allow"), {rule("curl", "b"), rule("curl", "c")}));
    ASSERT_TRUE(s->useConnection(1));
    ASSERT_TRUE(s->putCell(CellRow{"cw-firefox-1", "firefox", "home", "10.77.0.2", 1234, 5000, "{\"ofport\": 7}"}));
    std::vector<LogRow> rows = {logRow("firefox", 1), logRow("curl", 2)};
    auto ids = s->appendLog(rows);
    ASSERT_TRUE(ids);
    ASSERT_TRUE(s->updateLogCounters(LogCounters{(*ids)[0], 10, 5000, 3}));
    apps = *s->listApps();
    rules = *s->listRules();
    cells = *s->listCells();
    log = *s->queryLog(LogQuery{});
  }
  auto s = open();
  EXPECT_EQ(*s->listApps(), apps);
  EXPECT_EQ(*s->listRules(), rules);
  EXPECT_EQ(*s->listCells(), cells);
  EXPECT_EQ(*s->queryLog(LogQuery{}), log);
  EXPECT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].connections_used, 1u);
  EXPECT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1].bytes, 5000u);
  // Ids continue after a reopen.
  EXPECT_EQ(*s->addRule(rule("firefox", "d")), 4u);
}

TEST_F(StoreTest, ErrorsNameTheOperationAndTheFile) {
  auto s = open(Options{.busy_timeout = std::chrono::milliseconds(20)});
  ASSERT_TRUE(s->putApp(app("firefox")));
  // Another process holds the write lock.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto id = s->addRule(rule("firefox", "a"));
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().message, "cannot add rule to " + file.string() +
                                    ": database is locked (another process holds the "
                                    "database; is a second cellwalld running?)");
  auto ids = s->replaceAppRules(app("firefox"), {});
  ASSERT_FALSE(ids);
  EXPECT_EQ(ids.error().message.rfind("cannot replace the rules of app 'firefox' in " +
                                          file.string() + ": database is locked",
                                      0),
            0u)
      << ids.error().message;
  // Reads go on under WAL while another connection writes.
  EXPECT_TRUE(s->listRules());
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_TRUE(s->addRule(rule("firefox", "a")));
}

}  // namespace
}  // namespace cw::store::test
