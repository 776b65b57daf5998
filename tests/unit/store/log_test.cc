#include <algorithm>

#include "fixture.h"

namespace cw::store::test {
namespace {

class StoreLogTest : public StoreTest {
 protected:
  // Appends `n` rows alternating between apps a and b, time_ms = 1000 + i.
  std::vector<std::int64_t> fill(Store& s, int n) {
    std::vector<LogRow> rows;
    for (int i = 0; i < n; ++i) rows.push_back(logRow(i % 2 == 0 ? "a" : "b", 1000 + i));
    auto ids = s.appendLog(rows);
    EXPECT_TRUE(ids) << (ids ? "" : ids.error().message);
    return ids ? *ids : std::vector<std::int64_t>{};
  }

  static std::vector<std::int64_t> idsOf(const std::vector<LogRow>& rows) {
    std::vector<std::int64_t> ids;
    for (const auto& r : rows) ids.push_back(r.id);
    return ids;
  }
};

TEST_F(StoreLogTest, AppendAssignsIdsAndRoundTrips) {
  auto s = open();
  LogRow r = logRow("firefox", 123);
  r.packets = 1ULL << 40;
  r.bytes = (1ULL << 62) + 5;
  r.ended_ms = 456;
  r.remote_port = 65535;
  r.rule_id = 4'000'000'000U;
  std::vector<LogRow> rows = {r, logRow("curl", 124)};
  auto ids = s->appendLog(rows);
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_EQ(*ids, (std::vector<std::int64_t>{1, 2}));
  auto got = s->queryLog(LogQuery{.newest_first = false});
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 2u);
  r.id = 1;
  EXPECT_EQ((*got)[0], r);
  auto none = s->appendLog({});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(*s->logRowCount(), 2u);
}

TEST_F(StoreLogTest, UpdateCounters) {
  auto s = open();
  auto ids = fill(*s, 3);
  auto one = s->updateLogCounters(LogCounters{ids[0], 3, 300, 2000});
  ASSERT_TRUE(one);
  EXPECT_TRUE(*one);
  std::vector<LogCounters> batch = {{ids[1], 4, 400, 2001}, {ids[2], 5, 500, 2002}, {99, 1, 1, 1}};
  auto n = s->updateLogCounters(batch);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 2u);
  auto rows = s->queryLog(LogQuery{.newest_first = false});
  ASSERT_EQ(rows->size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*rows)[i].packets, 3 + i);
    EXPECT_EQ((*rows)[i].bytes, 300 + 100 * i);
    EXPECT_EQ((*rows)[i].ended_ms, static_cast<std::int64_t>(2000 + i));
  }
  auto missing = s->updateLogCounters(LogCounters{99, 1, 1, 1});
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
}

TEST_F(StoreLogTest, QueryByAppCursorAndLimit) {
  auto s = open();
  fill(*s, 10);  // ids 1..10; app a has odd ids, b even ids
  auto newest = s->queryLog(LogQuery{.app = "a", .limit = 3});
  ASSERT_TRUE(newest);
  EXPECT_EQ(idsOf(*newest), (std::vector<std::int64_t>{9, 7, 5}));
  auto tail = s->queryLog(LogQuery{.app = "b", .after_id = 5, .newest_first = false});
  ASSERT_TRUE(tail);
  EXPECT_EQ(idsOf(*tail), (std::vector<std::int64_t>{6, 8, 10}));
  auto all = s->queryLog(LogQuery{.limit = 4});
  EXPECT_EQ(idsOf(*all), (std::vector<std::int64_t>{10, 9, 8, 7}));
  auto oldest = s->queryLog(LogQuery{.limit = 2, .newest_first = false});
  EXPECT_EQ(idsOf(*oldest), (std::vector<std::int64_t>{1, 2}));
  EXPECT_TRUE(s->queryLog(LogQuery{.app = "nope"})->empty());
  EXPECT_TRUE(s->queryLog(LogQuery{.limit = 0})->empty());
}

TEST_F(StoreLogTest, QuerySinceFindsRowsAppendedOutOfOrderWithinTheSkew) {
  auto s = open(Options{.log_time_skew_ms = 50});
  std::vector<LogRow> rows;
  for (std::int64_t t : {100, 200, 300, 340, 260, 400}) rows.push_back(logRow("a", t));
  ASSERT_TRUE(s->appendLog(rows));
  // time >= 300: ids 3 (300), 4 (340), 6 (400); id 5 (260) is older.
  auto got = s->queryLog(LogQuery{.since_ms = 300, .newest_first = false});
  ASSERT_TRUE(got);
  EXPECT_EQ(idsOf(*got), (std::vector<std::int64_t>{3, 4, 6}));
  got = s->queryLog(LogQuery{.app = "a", .since_ms = 250});
  EXPECT_EQ(idsOf(*got), (std::vector<std::int64_t>{6, 5, 4, 3}));
  got = s->queryLog(LogQuery{.app = "a", .after_id = 4, .since_ms = 250});
  EXPECT_EQ(idsOf(*got), (std::vector<std::int64_t>{6, 5}));
  got = s->queryLog(LogQuery{.since_ms = 1000});
  EXPECT_TRUE(got->empty());
  got = s->queryLog(LogQuery{.since_ms = 1});
  EXPECT_EQ(got->size(), 6u);
}

TEST_F(StoreLogTest, EveryQueryShapeIsIndexBacked) {
  auto s = open();
  fill(*s, 2000);
  for (bool app : {false, true}) {
    for (std::int64_t since : {0, 1500}) {
      for (bool newest : {true, false}) {
        LogQuery q{.after_id = 10, .since_ms = since, .limit = 100, .newest_first = newest};
        if (app) q.app = "a";
        auto plan = s->explainQueryLog(q);
        ASSERT_TRUE(plan) << plan.error().message;
        std::string text;
        for (const auto& line : *plan) text += line + "\n";
        SCOPED_TRACE(text);
        for (const auto& line : *plan) {
          // A full scan of the table or a sort of the whole result would grow with the log.
          EXPECT_NE(line.rfind("SCAN", 0), 0u);
          EXPECT_EQ(line.find("TEMP B-TREE"), std::string::npos);
        }
        EXPECT_NE(text.find(app ? "SEARCH log USING INDEX log_app (app=? AND rowid>?)"
                                : "SEARCH log USING INTEGER PRIMARY KEY (rowid>?)"),
                  std::string::npos);
        if (since != 0) {
          EXPECT_NE(text.find("SEARCH log USING COVERING INDEX log_time (time_ms<?)"),
                    std::string::npos);
        }
        // And the query agrees with a brute-force filter.
        auto got = s->queryLog(q);
        ASSERT_TRUE(got);
        std::vector<std::int64_t> want;
        for (std::int64_t id = 1; id <= 2000; ++id) {
          const bool is_a = id % 2 == 1;
          if (id > 10 && 1000 + id - 1 >= since && (!app || is_a)) want.push_back(id);
        }
        if (newest) std::reverse(want.begin(), want.end());
        want.resize(std::min<std::size_t>(want.size(), 100));
        EXPECT_EQ(idsOf(*got), want);
      }
    }
  }
}

TEST_F(StoreLogTest, PruneKeepsTheNewestRowsInChunks) {
  auto s = open(Options{.prune_chunk_rows = 1000});
  fill(*s, 12'345);
  int calls = 0;
  std::uint64_t total = 0;
  for (;;) {
    auto r = s->pruneLog(10'000, 0, 0);
    ASSERT_TRUE(r) << r.error().message;
    ++calls;
    EXPECT_LE(r->deleted, 1000u);
    total += r->deleted;
    if (!r->more) break;
  }
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(total, 2345u);
  EXPECT_EQ(*s->logRowCount(), 10'000u);
  auto oldest = s->queryLog(LogQuery{.limit = 1, .newest_first = false});
  EXPECT_EQ((*oldest)[0].id, 2346);
  auto newest = s->queryLog(LogQuery{.limit = 1});
  EXPECT_EQ((*newest)[0].id, 12'345);
  // Nothing to do: nothing deleted, nothing more.
  auto r = s->pruneLog(10'000, 0, 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deleted, 0u);
  EXPECT_FALSE(r->more);
}

TEST_F(StoreLogTest, PruneByAge) {
  auto s = open(Options{.prune_chunk_rows = 30});
  fill(*s, 100);  // time_ms 1000..1099
  // now 2050, max age 1000: rows older than 1050 go (50 of them), in two calls.
  auto r = s->pruneLog(0, 1000, 2050);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deleted, 30u);
  EXPECT_TRUE(r->more);
  r = s->pruneLog(0, 1000, 2050);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deleted, 20u);
  EXPECT_FALSE(r->more);
  auto oldest = s->queryLog(LogQuery{.limit = 1, .newest_first = false});
  EXPECT_EQ((*oldest)[0].time_ms, 1050);
  // Both limits at once: at most 10 rows and none older than 1095.
  r = s->pruneLog(10, 5, 1100);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deleted, 30u);  // the chunk: 30 of the 40 by count
  EXPECT_TRUE(r->more);
  while (r && r->more) r = s->pruneLog(10, 5, 1100);
  ASSERT_TRUE(r);
  EXPECT_EQ(*s->logRowCount(), 5u);  // 1095..1099
}

TEST_F(StoreLogTest, IdsAreNotReusedAfterPruningEverything) {
  auto s = open();
  fill(*s, 5);
  auto r = s->pruneLog(0, 1, 1'000'000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deleted, 5u);
  EXPECT_EQ(*s->logRowCount(), 0u);
  auto ids = fill(*s, 1);
  EXPECT_EQ(ids, std::vector<std::int64_t>{6});
}

}  // namespace
}  // namespace cw::store::test
