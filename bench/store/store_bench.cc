// cw-store-bench: what the connection log costs cellwalld. A plain timing main (no Google
// Benchmark: building a multi-million-row database dominates and must happen once).
//
//   cw-store-bench [--dir DIR] [--sizes 1000000,5000000] [--queries N] [--keep]
//
// Measures, on a real file in DIR (default build/store-bench, the disk you run on matters:
// every commit is an fsync):
//   1. append rate, batches of 100 and of 1000 rows (one transaction = one fsync per batch);
//   2. for each size: queryLog latency, newest 100 rows of one busy app, of one rare app, the
//      global newest 100, and a since_ms query; the file size per row;
//   3. pruneLog: the time per call (one chunk) and in total, removing 10% of the rows.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "store/store.h"

namespace {

namespace fs = std::filesystem;
using cw::store::LogQuery;
using cw::store::LogRow;
using cw::store::Store;
using Clock = std::chrono::steady_clock;

constexpr int kApps = 20;
constexpr std::int64_t kStartMs = 1'700'000'000'000;

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Realistic rows: 20 busy apps, and "rare" gets one row in 10,000. time_ms advances 1 ms/row.
LogRow makeRow(std::int64_t i) {
  LogRow r;
  r.time_ms = kStartMs + i;
  r.app = i % 10'000 == 0 ? "rare" : "app" + std::to_string(i % kApps);
  r.cell = "cw-" + r.app + "-1";
  r.proto = i % 3 == 0 ? "udp" : "tcp";
  r.remote_ip = "93.184." + std::to_string(i % 256) + "." + std::to_string((i / 256) % 256);
  r.remote_port = i % 3 == 0 ? 53 : 443;
  r.names = "host" + std::to_string(i % 5000) + ".example.com";
  r.verdict = i % 10 == 0 ? "deny" : "allow";
  r.rule_id = static_cast<std::uint32_t>(i % 50);
  r.reason = "rule " + std::to_string(i % 50);
  r.packets = static_cast<std::uint64_t>(i % 1000);
  r.bytes = static_cast<std::uint64_t>(i % 1000) * 1200;
  r.ended_ms = r.time_ms + 5000;
  return r;
}

bool append(Store& s, std::int64_t first, std::int64_t count, std::int64_t batch) {
  std::vector<LogRow> rows;
  for (std::int64_t i = first; i < first + count; i += batch) {
    rows.clear();
    for (std::int64_t k = i; k < std::min(first + count, i + batch); ++k) rows.push_back(makeRow(k));
    auto ids = s.appendLog(rows);
    if (!ids) {
      std::fprintf(stderr, "%s\n", ids.error().message.c_str());
      return false;
    }
  }
  return true;
}

std::uint64_t fileSize(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

struct Latency {
  double median_us;
  double p99_us;
  double max_us;
};

Latency timeQuery(Store& s, const LogQuery& q, int n, std::size_t* rows_out) {
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    auto rows = s.queryLog(q);
    us.push_back(secondsSince(t0) * 1e6);
    if (!rows) {
      std::fprintf(stderr, "%s\n", rows.error().message.c_str());
      std::exit(1);
    }
    *rows_out = rows->size();
  }
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[us.size() * 99 / 100], us.back()};
}

void printQuery(Store& s, const char* what, const LogQuery& q, int n) {
  std::size_t rows = 0;
  const Latency l = timeQuery(s, q, n, &rows);
  std::printf("  %-40s %4zu rows  median %8.1f us  p99 %8.1f us  max %8.1f us\n", what, rows,
              l.median_us, l.p99_us, l.max_us);
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir = "build/store-bench";
  std::vector<std::int64_t> sizes = {1'000'000, 5'000'000};
  int queries = 1000;
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      for (char* p = argv[++i]; *p != '\0';) {
        sizes.push_back(std::strtoll(p, &p, 10));
        if (*p == ',') ++p;
      }
    } else if (a == "--queries" && i + 1 < argc) {
      queries = std::atoi(argv[++i]);
    } else if (a == "--keep") {
      keep = true;
    } else {
      std::fprintf(stderr, "usage: %s [--dir DIR] [--sizes N,N...] [--queries N] [--keep]\n",
                   argv[0]);
      return 2;
    }
  }
  std::sort(sizes.begin(), sizes.end());
  fs::remove_all(dir);
  fs::create_directories(dir);

  // 1. Append rate.
  std::printf("append (each batch one transaction, fsynced):\n");
  for (std::int64_t batch : {100, 1000}) {
    const fs::path file = dir / ("append-" + std::to_string(batch) + ".db");
    auto s = Store::open(file);
    if (!s) {
      std::fprintf(stderr, "%s\n", s.error().message.c_str());
      return 1;
    }
    const std::int64_t n = batch * 300;
    const auto t0 = Clock::now();
    if (!append(**s, 0, n, batch)) return 1;
    const double sec = secondsSince(t0);
    std::printf("  batches of %4lld: %9.0f rows/s  (%6.2f ms per batch)\n",
                static_cast<long long>(batch), static_cast<double>(n) / sec,
                sec * 1e3 / static_cast<double>(n / batch));
  }

  // 2. Queries at each size, growing one database.
  const fs::path file = dir / "log.db";
  auto opened = Store::open(file);
  if (!opened) {
    std::fprintf(stderr, "%s\n", opened.error().message.c_str());
    return 1;
  }
  Store& s = **opened;
  std::int64_t have = 0;
  for (std::int64_t size : sizes) {
    const auto t0 = Clock::now();
    if (!append(s, have, size - have, 10'000)) return 1;
    std::printf("\n%lld rows (built in %.1f s, batches of 10000):\n", static_cast<long long>(size),
                secondsSince(t0));
    have = size;
    const std::uint64_t bytes = fileSize(file) + fileSize(file.string() + "-wal");
    std::printf("  file size %.1f MiB = %.0f bytes per row (main file + WAL)\n",
                static_cast<double>(bytes) / (1024.0 * 1024.0),
                static_cast<double>(bytes) / static_cast<double>(size));
    printQuery(s, "newest 100 of one busy app", LogQuery{.app = "app7"}, queries);
    printQuery(s, "newest 100 of a rare app (1 row in 10k)", LogQuery{.app = "rare"}, queries);
    printQuery(s, "newest 100 of all apps", LogQuery{}, queries);
    printQuery(s, "tail of one app after an id (ascending)",
               LogQuery{.app = "app7", .after_id = size - 2000, .newest_first = false}, queries);
    printQuery(s, "one app, last 10 s (since_ms)",
               LogQuery{.app = "app7", .since_ms = kStartMs + size - 10'000}, queries);
    printQuery(s, "rare app, last 60 s (since_ms)",
               LogQuery{.app = "rare", .since_ms = kStartMs + size - 60'000}, queries);
  }

  // 3. Prune 10% of the rows, one chunk per call as the daemon would.
  {
    const auto keep_rows = static_cast<std::uint64_t>(have - have / 10);
    int calls = 0;
    double worst = 0;
    std::uint64_t deleted = 0;
    const auto t0 = Clock::now();
    for (;;) {
      const auto c0 = Clock::now();
      auto r = s.pruneLog(keep_rows, 0, 0);
      worst = std::max(worst, secondsSince(c0));
      if (!r) {
        std::fprintf(stderr, "%s\n", r.error().message.c_str());
        return 1;
      }
      ++calls;
      deleted += r->deleted;
      if (!r->more) break;
    }
    const double total = secondsSince(t0);
    std::printf("\nprune %llu of %lld rows (chunks of %zu): %d calls, %.2f s total, "
                "%.1f ms per call on average, %.1f ms worst, %.0f rows/s\n",
                static_cast<unsigned long long>(deleted), static_cast<long long>(have),
                cw::store::Options{}.prune_chunk_rows, calls, total, total * 1e3 / calls,
                worst * 1e3, static_cast<double>(deleted) / total);
    printQuery(s, "after prune: newest 100 of one busy app", LogQuery{.app = "app7"}, queries);
  }

  opened->reset();
  if (!keep) fs::remove_all(dir);
  return 0;
}
