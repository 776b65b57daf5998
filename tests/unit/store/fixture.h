// Shared by the store tests: a fresh directory per test and sample rows.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "store/store.h"

namespace cw::store::test {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("cw-store-test-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    file = dir / "cellwall.db";
  }
  void TearDown() override { fs::remove_all(dir); }

  std::unique_ptr<Store> open(Options options = {}) {
    auto s = Store::open(file, options);
    EXPECT_TRUE(s) << (s ? "" : s.error().message);
    return s ? std::move(*s) : nullptr;
  }

  // Runs SQL through a separate raw connection, as another process would.
  void rawExec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  // Takes the file back to schema version 5 (apps without their environment settings).
  void dropVersionSix() {
    rawExec("ALTER TABLE apps DROP COLUMN clean_env");
    rawExec("ALTER TABLE apps DROP COLUMN pass_env");
  }

  // Takes the file back to schema version 4 (apps without their resolve setting).
  void dropVersionFive() {
    dropVersionSix();
    rawExec("ALTER TABLE apps DROP COLUMN resolve");
  }

  // Takes the file back to schema version 3 (the log without its note).
  void dropVersionFour() {
    dropVersionFive();
    rawExec("ALTER TABLE log DROP COLUMN note");
  }

  // Takes the file back to schema version 2 (the log without its process columns).
  void dropVersionThree() {
    dropVersionFour();
    for (const char* c : {"pid", "uid", "user", "exe", "cmdline"})
      rawExec(std::string("ALTER TABLE log DROP COLUMN ") + c);
  }

  fs::path dir;
  fs::path file;
};

inline AppRow app(const std::string& name, const std::string& default_action = "prompt") {
  return AppRow{name, default_action, "home", 1000, 60000, "deny", ""};
}

inline RuleRow rule(const std::string& app_name, const std::string& host,
                    const std::string& action = "allow") {
  RuleRow r;
  r.app = app_name;
  r.action = action;
  r.body = "[[" + action + "]]\nhosts = \"" + host + "\"\n";
  r.created_ms = 1'700'000'000'000;
  r.origin = "test";
  return r;
}

inline LogRow logRow(const std::string& app_name, std::int64_t time_ms) {
  LogRow r;
  r.time_ms = time_ms;
  r.app = app_name;
  r.cell = "cw-" + app_name + "-1";
  r.proto = "tcp";
  r.remote_ip = "93.184.216.34";
  r.remote_port = 443;
  r.names = "example.com,www.example.com";
  r.verdict = "allow";
  r.rule_id = 7;
  r.reason = "rule 7";
  return r;
}

}  // namespace cw::store::test
