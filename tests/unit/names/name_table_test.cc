#include "names/name_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

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

IpAddr ip(const char* text) {
  return *IpAddr::parse(text);
}

// The names of `addr` at `now`, sorted (names() gives newest first; tests compare sets).
std::vector<std::string> namesOf(const NameTable& t, const char* addr, std::int64_t now) {
  std::array<std::string_view, kMaxNamesPerIp> buf;
  std::size_t n = t.names(ip(addr), now, buf);
  std::vector<std::string> out(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  std::sort(out.begin(), out.end());
  return out;
}

using Names = std::vector<std::string>;

Limits noGrace() {
  Limits l;
  l.grace_s = 0;
  return l;
}

TEST(NameTable, RecordAndLookup) {
  NameTable t;
  t.record("example.org", ip("93.184.216.34"), 60, 1000);
  EXPECT_EQ(namesOf(t, "93.184.216.34", 1000), Names{"example.org"});
  EXPECT_TRUE(t.resolved("example.org", ip("93.184.216.34"), 1000));
  EXPECT_FALSE(t.resolved("example.com", ip("93.184.216.34"), 1000));
  EXPECT_FALSE(t.resolved("example.org", ip("93.184.216.35"), 1000));
  EXPECT_TRUE(namesOf(t, "93.184.216.35", 1000).empty());
}

TEST(NameTable, NewestFirst) {
  NameTable t;
  t.record("a.example", ip("10.0.0.1"), 60, 0);
  t.record("b.example", ip("10.0.0.1"), 60, 1);
  std::array<std::string_view, 4> buf;
  ASSERT_EQ(t.names(ip("10.0.0.1"), 2, buf), 2u);
  EXPECT_EQ(buf[0], "b.example");
  EXPECT_EQ(buf[1], "a.example");
  // A short buffer gets the newest.
  ASSERT_EQ(t.names(ip("10.0.0.1"), 2, std::span(buf).first(1)), 1u);
  EXPECT_EQ(buf[0], "b.example");
}

TEST(NameTable, ExpiryBoundaryIncludesGrace) {
  NameTable t;  // grace 30 s
  t.record("a.example", ip("10.0.0.1"), 10, 5000);
  const std::int64_t expiry = 5000 + 10'000 + 30'000;
  EXPECT_TRUE(t.resolved("a.example", ip("10.0.0.1"), expiry - 1));
  EXPECT_FALSE(t.resolved("a.example", ip("10.0.0.1"), expiry));
  EXPECT_TRUE(namesOf(t, "10.0.0.1", expiry).empty());
  // Still held until expire() runs, then gone.
  EXPECT_EQ(t.stats().entries, 1u);
  EXPECT_EQ(t.expire(expiry - 1), 0u);
  EXPECT_EQ(t.expire(expiry), 1u);
  EXPECT_EQ(t.stats().entries, 0u);
  EXPECT_EQ(t.stats().expired, 1u);
}

TEST(NameTable, TtlIsClamped) {
  Limits l = noGrace();
  l.min_ttl_s = 5;
  l.max_ttl_s = 100;
  NameTable t(l);
  t.record("short.example", ip("10.0.0.1"), 0, 0);
  t.record("long.example", ip("10.0.0.2"), 4'000'000'000u, 0);
  EXPECT_TRUE(t.resolved("short.example", ip("10.0.0.1"), 4999));
  EXPECT_FALSE(t.resolved("short.example", ip("10.0.0.1"), 5000));
  EXPECT_TRUE(t.resolved("long.example", ip("10.0.0.2"), 99'999));
  EXPECT_FALSE(t.resolved("long.example", ip("10.0.0.2"), 100'000));
}

TEST(NameTable, ZeroTtlLivesForTheGrace) {
  NameTable t;
  t.record("a.example", ip("10.0.0.1"), 0, 0);
  EXPECT_TRUE(t.resolved("a.example", ip("10.0.0.1"), 29'999));
  EXPECT_FALSE(t.resolved("a.example", ip("10.0.0.1"), 30'000));
}

TEST(NameTable, ReRecordExtendsNeverShortens) {
  NameTable t(noGrace());
  t.record("a.example", ip("10.0.0.1"), 10, 0);      // until 10 s
  t.record("a.example", ip("10.0.0.1"), 100, 5000);  // until 105 s
  EXPECT_EQ(t.stats().entries, 1u);
  EXPECT_TRUE(t.resolved("a.example", ip("10.0.0.1"), 104'999));
  t.record("a.example", ip("10.0.0.1"), 1, 6000);  // would be 7 s: ignored
  EXPECT_TRUE(t.resolved("a.example", ip("10.0.0.1"), 104'999));
  EXPECT_EQ(t.expire(50'000), 0u);  // the heap follows the extension
  EXPECT_EQ(t.expire(105'000), 1u);
}

TEST(NameTable, ReRecordRevivesAnExpiredEntry) {
  NameTable t(noGrace());
  t.record("a.example", ip("10.0.0.1"), 1, 0);
  EXPECT_FALSE(t.resolved("a.example", ip("10.0.0.1"), 2000));
  t.record("a.example", ip("10.0.0.1"), 1, 2000);
  EXPECT_TRUE(t.resolved("a.example", ip("10.0.0.1"), 2999));
  EXPECT_EQ(t.stats().entries, 1u);
}

TEST(NameTable, Ipv6AndIpv4AreDistinct) {
  NameTable t;
  t.record("v6.example", ip("2001:db8::1"), 60, 0);
  t.record("v4.example", ip("192.0.2.1"), 60, 0);
  t.record("v4.example", ip("::ffff:192.0.2.2"), 60, 0);  // mapped form is IPv4
  t.record("compat.example", ip("::192.0.2.1"), 60, 0);   // not mapped: IPv6
  EXPECT_EQ(namesOf(t, "2001:db8::1", 0), Names{"v6.example"});
  EXPECT_EQ(namesOf(t, "192.0.2.1", 0), Names{"v4.example"});
  EXPECT_EQ(namesOf(t, "192.0.2.2", 0), Names{"v4.example"});
  EXPECT_EQ(namesOf(t, "::192.0.2.1", 0), Names{"compat.example"});
  EXPECT_TRUE(namesOf(t, "2001:db8::2", 0).empty());
  EXPECT_EQ(t.stats().addresses, 4u);
  EXPECT_EQ(t.stats().names, 3u);
}

TEST(NameTable, OneNameManyAddressesIsInternedOnce) {
  NameTable t;
  for (int i = 1; i <= 50; ++i)
    t.record("cdn.example", ip(numbered("10.0.1.", static_cast<std::uint64_t>(i), "").c_str()), 60,
             0);
  EXPECT_EQ(t.stats().entries, 50u);
  EXPECT_EQ(t.stats().names, 1u);
  EXPECT_EQ(t.stats().name_size, 9u + 11u);  // one header + the characters, once
  for (int i = 1; i <= 50; ++i)
    EXPECT_EQ(namesOf(t, numbered("10.0.1.", static_cast<std::uint64_t>(i), "").c_str(), 0),
              Names{"cdn.example"});
  t.forget(ip("10.0.1.7"));
  EXPECT_EQ(t.stats().names, 1u);
  EXPECT_TRUE(namesOf(t, "10.0.1.7", 0).empty());
}

TEST(NameTable, InvalidNamesAreIgnoredAndCounted) {
  NameTable t;
  t.record("", ip("10.0.0.1"), 60, 0);
  t.record(std::string(254, 'a'), ip("10.0.0.1"), 60, 0);
  t.record(std::string(253, 'a'), ip("10.0.0.1"), 60, 0);
  EXPECT_EQ(t.stats().ignored, 2u);
  EXPECT_EQ(t.stats().entries, 1u);
  EXPECT_TRUE(t.resolved(std::string(253, 'a'), ip("10.0.0.1"), 0));
}

TEST(NameTable, MaxNamesPerIpEvictsTheSoonestExpiring) {
  NameTable t(noGrace());
  // ttl 100 + i, except name 5 which expires first.
  for (std::uint32_t i = 0; i < kMaxNamesPerIp; ++i)
    t.record(numbered("n", i, ".example"), ip("10.0.0.1"), i == 5 ? 50 : 100 + i, 0);
  EXPECT_EQ(namesOf(t, "10.0.0.1", 0).size(), kMaxNamesPerIp);
  t.record("new.example", ip("10.0.0.1"), 10, 0);  // goes in although it expires soonest
  auto got = namesOf(t, "10.0.0.1", 0);
  EXPECT_EQ(got.size(), kMaxNamesPerIp);
  EXPECT_TRUE(t.resolved("new.example", ip("10.0.0.1"), 0));
  EXPECT_FALSE(t.resolved("n5.example", ip("10.0.0.1"), 0));
  EXPECT_EQ(t.stats().evictions, 1u);
  EXPECT_EQ(t.stats().entries, kMaxNamesPerIp);
  EXPECT_EQ(t.stats().names, kMaxNamesPerIp);
  // Re-recording a name already there evicts nothing.
  t.record("n7.example", ip("10.0.0.1"), 500, 0);
  EXPECT_EQ(t.stats().evictions, 1u);
}

TEST(NameTable, MaxEntriesEvictsSoonestExpiringFirst) {
  Limits l = noGrace();
  l.max_entries = 3;
  NameTable t(l);
  t.record("a.example", ip("10.0.0.1"), 300, 0);
  t.record("b.example", ip("10.0.0.2"), 100, 0);
  t.record("c.example", ip("10.0.0.3"), 200, 0);
  t.record("d.example", ip("10.0.0.4"), 400, 0);  // evicts b
  EXPECT_FALSE(t.resolved("b.example", ip("10.0.0.2"), 0));
  t.record("e.example", ip("10.0.0.5"), 50, 0);  // evicts c
  EXPECT_FALSE(t.resolved("c.example", ip("10.0.0.3"), 0));
  EXPECT_TRUE(t.resolved("a.example", ip("10.0.0.1"), 0));
  EXPECT_TRUE(t.resolved("d.example", ip("10.0.0.4"), 0));
  EXPECT_TRUE(t.resolved("e.example", ip("10.0.0.5"), 0));
  EXPECT_EQ(t.stats().entries, 3u);
  EXPECT_EQ(t.stats().addresses, 3u);
  EXPECT_EQ(t.stats().names, 3u);
  EXPECT_EQ(t.stats().evictions, 2u);
  // Making room by dropping an already expired entry counts as expired, not evicted.
  t.record("f.example", ip("10.0.0.6"), 10, 60'000);  // e expired at 50 s
  EXPECT_EQ(t.stats().evictions, 2u);
  EXPECT_EQ(t.stats().expired, 1u);
  EXPECT_TRUE(t.resolved("a.example", ip("10.0.0.1"), 60'000));
}

TEST(NameTable, EvictionCanFreeTheNameOrAddressBeingRecorded) {
  Limits l = noGrace();
  l.max_entries = 1;
  NameTable t(l);
  t.record("a.example", ip("10.0.0.1"), 10, 0);
  t.record("a.example", ip("10.0.0.2"), 20, 0);  // evicts the only user of "a.example"
  EXPECT_TRUE(t.resolved("a.example", ip("10.0.0.2"), 0));
  t.record("b.example", ip("10.0.0.2"), 30, 0);  // evicts the only entry of 10.0.0.2
  EXPECT_TRUE(t.resolved("b.example", ip("10.0.0.2"), 0));
  EXPECT_EQ(t.stats().entries, 1u);
  EXPECT_EQ(t.stats().names, 1u);
  EXPECT_EQ(t.stats().addresses, 1u);
}

TEST(NameTable, ZeroMaxEntriesHoldsNothing) {
  Limits l;
  l.max_entries = 0;
  NameTable t(l);
  t.record("a.example", ip("10.0.0.1"), 10, 0);
  EXPECT_EQ(t.stats().entries, 0u);
  EXPECT_EQ(t.stats().ignored, 1u);
}

TEST(NameTable, ExpireIsIncremental) {
  NameTable t(noGrace());
  for (std::uint32_t i = 0; i < 1000; ++i)
    t.record(numbered("h", i, ".example"), IpAddr(Ip4{0x0a000000u + i}), i + 1, 0);
  // Each second removes exactly the entries whose TTL ran out.
  EXPECT_EQ(t.expire(999), 0u);
  EXPECT_EQ(t.expire(1000), 1u);
  EXPECT_EQ(t.expire(10'000), 9u);
  EXPECT_EQ(t.expire(10'000), 0u);
  EXPECT_EQ(t.expire(500'000, 7), 7u);  // bounded call
  EXPECT_EQ(t.stats().entries, 1000u - 17u);
  EXPECT_EQ(t.expire(500'000), 500u - 17u);
  EXPECT_FALSE(t.resolved("h499.example", IpAddr(Ip4{0x0a000000u + 499}), 0));
  EXPECT_TRUE(t.resolved("h500.example", IpAddr(Ip4{0x0a000000u + 500}), 0));
  EXPECT_EQ(t.stats().expired, 500u);
}

TEST(NameTable, ForgetDropsOneAddress) {
  NameTable t;
  t.record("a.example", ip("10.0.0.1"), 60, 0);
  t.record("b.example", ip("10.0.0.1"), 60, 0);
  t.record("a.example", ip("2001:db8::1"), 60, 0);
  t.forget(ip("10.0.0.1"));
  t.forget(ip("10.9.9.9"));  // unknown: no-op
  EXPECT_TRUE(namesOf(t, "10.0.0.1", 0).empty());
  EXPECT_EQ(namesOf(t, "2001:db8::1", 0), Names{"a.example"});
  EXPECT_EQ(t.stats().entries, 1u);
  EXPECT_EQ(t.stats().names, 1u);
  t.forget(ip("2001:db8::1"));
  EXPECT_EQ(t.stats().entries, 0u);
  EXPECT_EQ(t.stats().size, 0u);                 // an empty table holds no memory
  t.record("c.example", ip("10.0.0.1"), 60, 0);  // and works again
  EXPECT_TRUE(t.resolved("c.example", ip("10.0.0.1"), 0));
}

TEST(NameTable, ClearKeepsCounters) {
  Limits l;
  l.max_entries = 1;
  NameTable t(l);
  t.record("a.example", ip("10.0.0.1"), 60, 0);
  t.record("b.example", ip("10.0.0.2"), 60, 0);
  t.clear();
  Stats s = t.stats();
  EXPECT_EQ(s.entries, 0u);
  EXPECT_EQ(s.names, 0u);
  EXPECT_EQ(s.addresses, 0u);
  EXPECT_EQ(s.size, 0u);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_FALSE(t.resolved("b.example", ip("10.0.0.2"), 0));
}

TEST(NameTable, StatsCountDistinctNamesAndAddresses) {
  NameTable t;
  t.record("a.example", ip("10.0.0.1"), 60, 0);
  t.record("a.example", ip("10.0.0.2"), 60, 0);
  t.record("b.example", ip("10.0.0.2"), 60, 0);
  t.record("b.example", ip("10.0.0.2"), 60, 0);
  Stats s = t.stats();
  EXPECT_EQ(s.entries, 3u);
  EXPECT_EQ(s.names, 2u);
  EXPECT_EQ(s.addresses, 2u);
  EXPECT_EQ(s.name_size, 2u * (9u + 9u));
  EXPECT_GT(s.size, s.name_size);
}

TEST(NameTable, SnapshotIsSortedAndSkipsExpired) {
  NameTable t(noGrace());
  t.record("z.example", ip("10.0.0.2"), 60, 0);
  t.record("b.example", ip("10.0.0.1"), 60, 0);
  t.record("a.example", ip("10.0.0.1"), 60, 0);
  t.record("old.example", ip("10.0.0.1"), 1, 0);
  t.record("v6.example", ip("2001:db8::1"), 60, 0);
  std::vector<SnapshotEntry> want{
      {ip("10.0.0.1"), "a.example", 60'000},
      {ip("10.0.0.1"), "b.example", 60'000},
      {ip("10.0.0.2"), "z.example", 60'000},
      {ip("2001:db8::1"), "v6.example", 60'000},
  };
  std::sort(want.begin(), want.end(), [](const SnapshotEntry& a, const SnapshotEntry& b) {
    return a.ip != b.ip ? a.ip < b.ip : a.name < b.name;
  });
  EXPECT_EQ(t.snapshot(1000), want);
}

TEST(NameTable, MoveLeavesAnEmptyUsableTable) {
  NameTable a;
  a.record("a.example", ip("10.0.0.1"), 60, 0);
  NameTable b(std::move(a));
  EXPECT_TRUE(b.resolved("a.example", ip("10.0.0.1"), 0));
  EXPECT_EQ(a.stats().entries, 0u);  // NOLINT(bugprone-use-after-move): documented
  a.record("c.example", ip("10.0.0.3"), 60, 0);
  EXPECT_TRUE(a.resolved("c.example", ip("10.0.0.3"), 0));
  b = std::move(a);
  EXPECT_TRUE(b.resolved("c.example", ip("10.0.0.3"), 0));
  EXPECT_FALSE(b.resolved("a.example", ip("10.0.0.1"), 0));
}

TEST(NameTable, HashSeedDoesNotChangeBehaviour) {
  for (std::uint64_t seed : {0ull, 1ull, 0xdeadbeefcafef00dull}) {
    Limits l;
    l.hash_seed = seed;
    NameTable t(l);
    for (std::uint32_t i = 0; i < 2000; ++i)
      t.record(numbered("h", i % 300, ".example"), IpAddr(Ip4{i}), 60, 0);
    for (std::uint32_t i = 0; i < 2000; ++i)
      ASSERT_TRUE(t.resolved(numbered("h", i % 300, ".example"), IpAddr(Ip4{i}), 0)) << seed;
    EXPECT_EQ(t.stats().names, 300u);
  }
}

}  // namespace
}  // namespace cw::names
