// Reassembly and the flow table on their own, without frames.
#include "ids/stream.h"

#include <gtest/gtest.h>

#include <string>

namespace cw::ids {
namespace {

Bytes bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct Sink {
  std::string out;
  int calls = 0;
  void operator()(Bytes b) {
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
    ++calls;
  }
};

TEST(IdsReassembler, InOrderAfterSyn) {
  Reassembler r;
  Sink s;
  r.syn(999);
  r.segment(1000, bytes("hello "), s);
  r.segment(1006, bytes("world"), s);
  EXPECT_EQ(s.out, "hello world");
  EXPECT_EQ(r.delivered(), 11u);
}

TEST(IdsReassembler, OutOfOrderWaitsForTheHole) {
  Reassembler r;
  Sink s;
  r.syn(0);
  r.segment(7, bytes("world"), s);
  r.segment(12, bytes("!"), s);
  EXPECT_EQ(s.out, "");
  EXPECT_EQ(r.buffered(), 6u);
  r.segment(1, bytes("hello "), s);
  EXPECT_EQ(s.out, "hello world!");
  EXPECT_EQ(r.buffered(), 0u);
  EXPECT_EQ(r.outOfOrderSegments(), 2u);
}

TEST(IdsReassembler, RetransmissionsAreTrimmedFirstCopyWins) {
  Reassembler r;
  Sink s;
  r.segment(100, bytes("abcdef"), s);
  r.segment(100, bytes("XXXXXX"), s);  // all old
  r.segment(103, bytes("XXXghi"), s);  // half old
  r.segment(112, bytes("mno"), s);     // after a hole
  r.segment(110, bytes("XXXXXX"), s);  // overlaps the held segment... held, shorter key
  r.segment(109, bytes("jXX"), s);     // fills the hole; then the held ones overlap
  EXPECT_EQ(s.out, "abcdefghijXXXXXX");
  EXPECT_EQ(r.trimmedBytes(), 6u + 3u + 2u + 3u);
}

TEST(IdsReassembler, SequenceWraps) {
  Reassembler r;
  Sink s;
  r.syn(0xfffffffd);
  r.segment(0xfffffffe, bytes("ab"), s);
  r.segment(0, bytes("cd"), s);
  EXPECT_EQ(s.out, "abcd");
}

TEST(IdsReassembler, AHoleThatNeverFillsEndsTheStream) {
  Reassembler r(10);
  Sink s;
  r.segment(0, bytes("ab"), s);
  r.segment(5, bytes("12345"), s);
  EXPECT_FALSE(r.failed());
  r.segment(20, bytes("678901"), s);  // 11 bytes would wait
  EXPECT_TRUE(r.failed());
  r.segment(2, bytes("cde"), s);
  EXPECT_EQ(s.out, "ab");
}

TEST(IdsFlowTable, BothDirectionsOneKey) {
  auto a = *IpAddr::parse("10.0.0.1"), b = *IpAddr::parse("10.0.0.2");
  EXPECT_EQ(FlowKey::of(a, 1000, b, 80, 6), FlowKey::of(b, 80, a, 1000, 6));
  EXPECT_FALSE(FlowKey::of(a, 1000, b, 80, 6) == FlowKey::of(a, 1000, b, 80, 17));
  EXPECT_EQ(FlowKeyHash{}(FlowKey::of(a, 1000, b, 80, 6)),
            FlowKeyHash{}(FlowKey::of(b, 80, a, 1000, 6)));
}

TEST(IdsFlowTable, LruEvictionAndExpiry) {
  FlowTable<int> t(2);
  auto a = *IpAddr::parse("10.0.0.1"), b = *IpAddr::parse("10.0.0.2");
  auto k = [&](std::uint16_t p) { return FlowKey::of(a, p, b, 80, 6); };
  t.insert(k(1), 10, 1);
  t.insert(k(2), 20, 2);
  ASSERT_NE(t.find(k(1), 30), nullptr);  // 1 is now the most recent
  t.insert(k(3), 40, 3);                 // evicts 2
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(t.find(k(2), 41), nullptr);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.expire(100, 65), 1u);  // 1 (last seen 30) goes, 3 (40) stays
  EXPECT_EQ(t.find(k(1), 100), nullptr);
  EXPECT_NE(t.find(k(3), 100), nullptr);
  t.erase(k(3));
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace cw::ids
