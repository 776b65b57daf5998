// NameTable: lookup cost by table size (hit and miss), record cost, and memory per entry at
// 1,000,000 entries. Run: build/release/bench/names/cw-names-bench
// Memory is measured with mallinfo2() (glibc) around building one table, and printed before
// the timings; the name strings' own share is measured the same way and reported apart.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <array>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "names/name_table.h"

namespace {

using namespace cw;
using names::Limits;
using names::NameTable;

constexpr std::int64_t kNow = 1'000'000;

std::string hostName(std::uint32_t i) {
  return "host" + std::to_string(i) + ".cdn.example.net";
}

// Distinct IPv4 addresses spread over 10.0.0.0/8 and 100.64.0.0/10.
IpAddr addr4(std::uint32_t i) {
  return IpAddr(Ip4{(10u << 24) + i * 7u});
}
IpAddr missAddr4(std::uint32_t i) {
  return IpAddr(Ip4{(100u << 24) + 64u * 65536u + i * 7u});
}
IpAddr addr6(std::uint32_t i) {
  Ip6 a = *Ip6::parse("2001:db8::");
  for (int k = 0; k < 4; ++k)
    a.b[static_cast<std::size_t>(12 + k)] = static_cast<std::uint8_t>(i >> (24 - 8 * k));
  return IpAddr(a);
}

Limits bigLimits() {
  Limits l;
  l.max_entries = 2'000'000;
  l.hash_seed = 42;
  return l;
}

// "unique": every entry its own name and address (the worst case for memory).
// "cdn": 125,000 names each on 8 of 125,000 addresses, 8 names per address (CDN answers).
// "unique6": as unique, IPv6.
enum class Shape { kUnique, kCdn, kUnique6 };

void fill(NameTable& t, Shape shape, std::uint32_t count) {
  for (std::uint32_t i = 0; i < count; ++i) {
    switch (shape) {
      case Shape::kUnique:
        t.record(hostName(i), addr4(i), 300, kNow);
        break;
      case Shape::kUnique6:
        t.record(hostName(i), addr6(i), 300, kNow);
        break;
      case Shape::kCdn: {
        std::uint32_t name = i / 8, k = i % 8;
        t.record(hostName(name), addr4((name + k * 15625u) % 125000u), 300, kNow);
        break;
      }
    }
  }
}

// Bytes in use: small chunks (uordblks) plus chunks glibc gave their own mmap (hblkhd), which
// is where the big arrays live.
std::size_t heapInUse() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

void reportMemory(const char* label, Shape shape, std::uint32_t count) {
  std::size_t before = heapInUse();
  auto t = std::make_unique<NameTable>(bigLimits());
  fill(*t, shape, count);
  std::size_t total = heapInUse() - before;
  names::Stats s = t->stats();
  // The same name strings alone, allocated as the table does (length byte + characters).
  std::size_t before_names = heapInUse();
  std::vector<std::unique_ptr<char[]>> strings;
  strings.reserve(s.names);
  std::size_t reserve_size = heapInUse() - before_names;
  for (std::uint32_t i = 0; i < s.names; ++i)
    strings.push_back(std::make_unique<char[]>(hostName(i).size() + 1));
  std::size_t strings_size = heapInUse() - before_names - reserve_size;
  std::printf(
      "memory %-8s entries=%zu names=%zu addresses=%zu heap=%zu B  per entry: %.1f B total, "
      "%.1f B without name strings (stats estimate %.1f B)\n",
      label, s.entries, s.names, s.addresses, total,
      static_cast<double>(total) / static_cast<double>(s.entries),
      static_cast<double>(total - strings_size) / static_cast<double>(s.entries),
      static_cast<double>(s.size) / static_cast<double>(s.entries));
}

NameTable& tableOf(std::uint32_t count) {
  static std::array<std::unique_ptr<NameTable>, 4> tables;
  std::size_t slot = count <= 1 ? 0 : count <= 1000 ? 1 : count <= 100000 ? 2 : 3;
  if (!tables[slot]) {
    tables[slot] = std::make_unique<NameTable>(bigLimits());
    fill(*tables[slot], Shape::kUnique, count);
  }
  return *tables[slot];
}

// Pre-drawn random probes so the loop measures the table, not the generator. 2^20 of them, so
// that at large sizes the probed slots and entries are not all in cache from earlier rounds.
constexpr std::size_t kProbes = 1 << 20;
std::vector<IpAddr> probes(std::uint32_t count, bool hit) {
  std::mt19937 rng(7);
  std::vector<IpAddr> out(kProbes);
  for (auto& a : out) {
    auto i = std::uniform_int_distribution<std::uint32_t>(0, count - 1)(rng);
    a = hit ? addr4(i) : missAddr4(i);
  }
  return out;
}

void BM_LookupHit(benchmark::State& state) {
  auto count = static_cast<std::uint32_t>(state.range(0));
  const NameTable& t = tableOf(count);
  auto ps = probes(count, true);
  std::array<std::string_view, names::kMaxNamesPerIp> buf;
  std::size_t i = 0, found = 0;
  for (auto _ : state) {
    found += t.names(ps[i++ & (kProbes - 1)], kNow, buf);
    benchmark::DoNotOptimize(buf);
  }
  if (found != static_cast<std::size_t>(state.iterations())) state.SkipWithError("lookups missed");
}
BENCHMARK(BM_LookupHit)->Arg(1)->Arg(1000)->Arg(100000)->Arg(1000000);

void BM_LookupMiss(benchmark::State& state) {
  auto count = static_cast<std::uint32_t>(state.range(0));
  const NameTable& t = tableOf(count);
  auto ps = probes(count, false);
  std::array<std::string_view, names::kMaxNamesPerIp> buf;
  std::size_t i = 0, found = 0;
  for (auto _ : state) {
    found += t.names(ps[i++ & (kProbes - 1)], kNow, buf);
    benchmark::DoNotOptimize(buf);
  }
  if (found != 0) state.SkipWithError("lookups hit");
}
BENCHMARK(BM_LookupMiss)->Arg(1)->Arg(1000)->Arg(100000)->Arg(1000000);

void BM_Resolved(benchmark::State& state) {
  auto count = static_cast<std::uint32_t>(state.range(0));
  const NameTable& t = tableOf(count);
  std::vector<std::pair<std::string, IpAddr>> ps;
  std::mt19937 rng(9);
  for (std::size_t k = 0; k < kProbes; ++k) {
    auto i = std::uniform_int_distribution<std::uint32_t>(0, count - 1)(rng);
    ps.emplace_back(hostName(i), addr4(i));
  }
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& p = ps[i++ & (kProbes - 1)];
    benchmark::DoNotOptimize(t.resolved(p.first, p.second, kNow));
  }
}
BENCHMARK(BM_Resolved)->Arg(1000)->Arg(1000000);

// New (name, address) pairs into a table held at `count` entries: every record evicts one.
void BM_RecordNewAtLimit(benchmark::State& state) {
  auto count = static_cast<std::uint32_t>(state.range(0));
  Limits l = bigLimits();
  l.max_entries = count;
  NameTable t(l);
  fill(t, Shape::kUnique, count);
  std::vector<std::string> ns;
  for (std::uint32_t k = 0; k < 65536; ++k) ns.push_back(hostName(count + k));
  std::uint32_t i = 0;
  std::int64_t now = kNow;
  for (auto _ : state) {
    std::uint32_t k = i & 65535;
    t.record(ns[k], addr4(count + i), 300, ++now);
    ++i;
  }
  // Victims whose expiry has passed (after 330 s of fake time) count as expired, not evicted.
  state.counters["evicted"] = static_cast<double>(t.stats().evictions);
  state.counters["expired"] = static_cast<double>(t.stats().expired);
}
BENCHMARK(BM_RecordNewAtLimit)->Arg(1000)->Arg(100000)->Arg(1000000);

// The common case: the cell asks again for a name it already has (the answer only extends).
void BM_RecordRefresh(benchmark::State& state) {
  auto count = static_cast<std::uint32_t>(state.range(0));
  NameTable t(bigLimits());
  fill(t, Shape::kUnique, count);
  std::vector<std::string> ns;
  std::vector<IpAddr> as;
  std::mt19937 rng(11);
  for (std::size_t k = 0; k < kProbes; ++k) {
    auto i = std::uniform_int_distribution<std::uint32_t>(0, count - 1)(rng);
    ns.push_back(hostName(i));
    as.push_back(addr4(i));
  }
  std::size_t i = 0;
  std::int64_t now = kNow;
  for (auto _ : state) {
    t.record(ns[i & (kProbes - 1)], as[i & (kProbes - 1)], 300, now += 10);
    ++i;
  }
}
BENCHMARK(BM_RecordRefresh)->Arg(1000)->Arg(1000000);

// Filling an empty table to `count` (includes growth of every array and index).
void BM_Fill(benchmark::State& state) {
  auto count = static_cast<std::uint32_t>(state.range(0));
  std::vector<std::string> ns;
  for (std::uint32_t k = 0; k < count; ++k) ns.push_back(hostName(k));
  for (auto _ : state) {
    NameTable t(bigLimits());
    for (std::uint32_t k = 0; k < count; ++k) t.record(ns[k], addr4(k), 300, kNow);
    benchmark::DoNotOptimize(t);
  }
  state.SetItemsProcessed(state.iterations() * count);
}
BENCHMARK(BM_Fill)->Arg(1000000)->Unit(benchmark::kMillisecond)->Iterations(3);

// expire() removing one second's worth (1,000 entries) from a table of 1,000,000.
void BM_ExpireSecond(benchmark::State& state) {
  NameTable t(bigLimits());
  for (std::uint32_t k = 0; k < 1'000'000; ++k) t.record(hostName(k), addr4(k), k / 1000, kNow);
  std::int64_t now = kNow + 29'000;  // the first step reaches the grace of ttl 0
  for (auto _ : state) {
    now += 1000;
    std::size_t n = t.expire(now);
    if (n != 1000) {
      state.SkipWithError("unexpected expiry count");
      break;
    }
  }
}
BENCHMARK(BM_ExpireSecond)->Iterations(900);

}  // namespace

int main(int argc, char** argv) {
  reportMemory("unique", Shape::kUnique, 1'000'000);
  reportMemory("cdn", Shape::kCdn, 1'000'000);
  reportMemory("unique6", Shape::kUnique6, 1'000'000);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
