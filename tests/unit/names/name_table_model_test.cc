// NameTable against a std::map reference model over random operations with a fake clock.
// Small pools of names and addresses and a low max_entries make re-records, per-address
// overflow, table overflow and expiry all frequent.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "names/name_table.h"

namespace cw::names {
namespace {

// prefix + number + suffix. Not operator+: g++ 12 at -O3 reports a false -Wrestrict inside
// `"literal" + std::string` (GCC bug 105329).
std::string numbered(const char* prefix, std::uint64_t i, const char* suffix) {
  std::string s(prefix);
  s += std::to_string(i);
  s += suffix;
  return s;
}

using Key = std::pair<IpAddr, std::string>;

class Model {
 public:
  explicit Model(Limits l) : limits_(l) {}

  std::int64_t expiryFor(std::uint32_t ttl, std::int64_t now) const {
    ttl = std::min(std::max(ttl, limits_.min_ttl_s), limits_.max_ttl_s);
    return now + std::int64_t{ttl} * 1000 + std::int64_t{limits_.grace_s} * 1000;
  }

  // Entries one of which record() must evict, or empty when it needs no room. per_ip says
  // whether the address was full (rather than the table).
  std::vector<Key> victims(const std::string& name, const IpAddr& ip, bool& per_ip) const {
    per_ip = false;
    if (map_.count({ip, name}) != 0) return {};
    std::vector<std::pair<Key, std::int64_t>> pool;
    for (const auto& [k, exp] : map_)
      if (k.first == ip) pool.emplace_back(k, exp);
    per_ip = pool.size() >= kMaxNamesPerIp;
    if (!per_ip) {
      if (map_.size() < limits_.max_entries) return {};
      pool.assign(map_.begin(), map_.end());
    }
    std::int64_t least = std::numeric_limits<std::int64_t>::max();
    for (const auto& p : pool) least = std::min(least, p.second);
    std::vector<Key> out;
    for (const auto& p : pool)
      if (p.second == least) out.push_back(p.first);
    return out;
  }

  std::map<Key, std::int64_t> map_;
  Limits limits_;
};

std::vector<SnapshotEntry> everything(const NameTable& t) {
  return t.snapshot(std::numeric_limits<std::int64_t>::min());
}

std::vector<SnapshotEntry> modelRows(const Model& m) {
  std::vector<SnapshotEntry> out;
  for (const auto& [k, exp] : m.map_) out.push_back({k.first, k.second, exp});
  return out;  // std::map order is (address, name): the snapshot's order
}

void runModel(std::uint32_t seed, int steps) {
  std::mt19937 rng(seed);
  auto pick = [&](std::uint32_t n) {
    return std::uniform_int_distribution<std::uint32_t>(0, n - 1)(rng);
  };

  Limits limits;
  limits.max_entries = 48;
  limits.grace_s = 2;
  limits.min_ttl_s = 1;
  limits.max_ttl_s = 20;
  limits.hash_seed = seed;
  NameTable t(limits);
  Model m(limits);

  std::vector<std::string> names;
  for (int i = 0; i < 50; ++i)
    names.push_back(
        numbered("h", static_cast<std::uint64_t>(i), i % 3 ? ".cdn.example" : ".example.org"));
  std::vector<IpAddr> ips;
  for (std::uint32_t i = 0; i < 12; ++i) ips.push_back(IpAddr(Ip4{0x0a000000u + i}));
  for (int i = 0; i < 6; ++i)
    ips.push_back(*IpAddr::parse(numbered("2001:db8::", static_cast<std::uint64_t>(i + 1), "")));
  // Two addresses that take most of the answers, so per-address overflow happens often.
  auto pickIp = [&]() -> const IpAddr& {
    return pick(2) == 0 ? ips[pick(2)] : ips[pick(static_cast<std::uint32_t>(ips.size()))];
  };

  std::int64_t now = 1'000'000;
  std::uint64_t evictions = 0, expired = 0;
  // How often the interesting paths ran, so the test notices if the mix stops reaching them.
  int per_ip_overflows = 0, table_overflows = 0, ties = 0;
  for (int step = 0; step < steps; ++step) {
    SCOPED_TRACE(testing::Message() << "seed " << seed << " step " << step);
    std::uint32_t op = pick(100);
    if (op < 55) {
      const std::string& name = names[pick(static_cast<std::uint32_t>(names.size()))];
      const IpAddr& ip = pickIp();
      std::uint32_t ttl = pick(30);
      std::int64_t exp = m.expiryFor(ttl, now);
      bool per_ip = false;
      std::vector<Key> victims = m.victims(name, ip, per_ip);
      if (!victims.empty()) ++(per_ip ? per_ip_overflows : table_overflows);
      if (victims.size() > 1) ++ties;
      t.record(name, ip, ttl, now);
      auto [it, fresh] = m.map_.try_emplace({ip, name}, exp);
      if (!fresh) it->second = std::max(it->second, exp);
      if (!victims.empty()) {
        // Ties on expiry may go either way; exactly one of them must be gone.
        std::vector<Key> gone;
        for (const Key& k : victims)
          if (!t.resolved(k.second, k.first, std::numeric_limits<std::int64_t>::min()))
            gone.push_back(k);
        ASSERT_EQ(gone.size(), 1u);
        if (m.map_.at(gone[0]) <= now)
          ++expired;
        else
          ++evictions;
        m.map_.erase(gone[0]);
      }
    } else if (op < 60) {
      t.record(pick(2) ? std::string() : std::string(254, 'x'), pickIp(), 5, now);  // ignored
    } else if (op < 75) {
      now += pick(1500);
    } else if (op < 83) {
      std::size_t max_count = pick(2) ? SIZE_MAX : pick(4);
      std::size_t want = 0;
      for (auto it = m.map_.begin(); it != m.map_.end();) {
        if (it->second <= now) ++want;
        ++it;
      }
      std::size_t got = t.expire(now, max_count);
      ASSERT_EQ(got, std::min(want, max_count));
      // The ones removed are the soonest: remove from the model in expiry order.
      std::vector<std::pair<std::int64_t, Key>> due;
      for (const auto& [k, exp] : m.map_)
        if (exp <= now) due.emplace_back(exp, k);
      std::sort(due.begin(), due.end());
      if (got < due.size()) {
        // Ties at the cut may go either way: drop what the table dropped.
        for (const auto& d : due)
          if (!t.resolved(d.second.second, d.second.first,
                          std::numeric_limits<std::int64_t>::min()))
            m.map_.erase(d.second);
      } else {
        for (const auto& d : due) m.map_.erase(d.second);
      }
      expired += got;
    } else if (op < 86) {
      const IpAddr& ip = pickIp();
      t.forget(ip);
      for (auto it = m.map_.begin(); it != m.map_.end();)
        it = it->first.first == ip ? m.map_.erase(it) : std::next(it);
    } else if (op < 87 && pick(4) == 0) {
      t.clear();
      m.map_.clear();
    } else if (op >= 87) {
      // Lookups.
      const IpAddr& ip = pickIp();
      std::array<std::string_view, kMaxNamesPerIp> buf;
      std::size_t n = t.names(ip, now, buf);
      std::set<std::string> got(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
      ASSERT_EQ(got.size(), n) << "duplicate names";
      std::set<std::string> want;
      for (const auto& [k, exp] : m.map_)
        if (k.first == ip && now < exp) want.insert(k.second);
      ASSERT_EQ(got, want);
      for (const std::string& name : names) {
        auto it = m.map_.find({ip, name});
        ASSERT_EQ(t.resolved(name, ip, now), it != m.map_.end() && now < it->second) << name;
      }
    }

    ASSERT_EQ(everything(t), modelRows(m));
    Stats s = t.stats();
    ASSERT_EQ(s.entries, m.map_.size());
    std::set<std::string> model_names;
    std::set<IpAddr> model_ips;
    for (const auto& [k, exp] : m.map_) {
      model_names.insert(k.second);
      model_ips.insert(k.first);
    }
    ASSERT_EQ(s.names, model_names.size());
    ASSERT_EQ(s.addresses, model_ips.size());
    ASSERT_EQ(s.evictions, evictions);
    ASSERT_EQ(s.expired, expired);
    ASSERT_LE(s.entries, limits.max_entries);
  }
  EXPECT_GT(per_ip_overflows, 10);
  EXPECT_GT(table_overflows, 10);
  EXPECT_GT(ties, 10);
  EXPECT_GT(evictions, 10u);
  EXPECT_GT(expired, 10u);
  std::printf(
      "seed %u: %d per-address overflows, %d table overflows, %d ties, %llu evictions, %llu "
      "expired\n",
      seed, per_ip_overflows, table_overflows, ties, static_cast<unsigned long long>(evictions),
      static_cast<unsigned long long>(expired));
}

TEST(NameTableModel, RandomOperations) {
  for (std::uint32_t seed = 1; seed <= 8; ++seed) {
    runModel(seed, 4000);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace cw::names
