#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dns/build.h"
#include "dns/dns.h"
#include "test_util.h"

namespace cw::dns {
namespace {

using namespace cw::dns::testing;
using Messages = std::vector<Buf>;

Buf answerFor(const std::string& name, const char* addr) {
  auto spec = response(name);
  spec.answers = {aRecord(name, ip4(addr))};
  return buildResponse(spec);
}

Buf concat(const Buf& a, const Buf& b) {
  Buf out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Bytes slice(const Buf& b, std::size_t from, std::size_t to) {
  return Bytes(b).subspan(from, to - from);
}

TEST(DnsTcpFramer, OneMessageInOneSegment) {
  const Buf m = answerFor("example.com", "192.0.2.1");
  TcpFramer f(1000);
  const auto out = f.feed(1000, frameTcp(m));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], m);
  EXPECT_EQ(f.buffered(), 0u);
  EXPECT_EQ(f.messages(), 1u);
  ASSERT_TRUE(parseResponse(out[0]));
}

TEST(DnsTcpFramer, MessageSplitAcrossSegmentsAtEveryPoint) {
  const Buf m = answerFor("example.com", "192.0.2.1");
  const Buf stream = frameTcp(m);
  for (std::size_t cut = 1; cut < stream.size(); ++cut) {
    TcpFramer f(7);
    EXPECT_TRUE(f.feed(7, slice(stream, 0, cut)).empty()) << cut;
    EXPECT_EQ(f.buffered(), cut) << cut;
    const auto out = f.feed(static_cast<std::uint32_t>(7 + cut), slice(stream, cut, stream.size()));
    ASSERT_EQ(out.size(), 1u) << cut;
    EXPECT_EQ(out[0], m);
  }
}

TEST(DnsTcpFramer, ByteBySegment) {
  const Buf stream = frameTcp(answerFor("example.com", "192.0.2.1"));
  TcpFramer f;
  Messages got;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    for (auto& m : f.feed(static_cast<std::uint32_t>(0xfffffff0u + i), slice(stream, i, i + 1)))
      got.push_back(m);
  }
  ASSERT_EQ(got.size(), 1u);  // sequence numbers wrapped on the way
  EXPECT_TRUE(parseResponse(got[0]));
}

TEST(DnsTcpFramer, TwoMessagesInOneSegmentAndAThirdStarted) {
  const Buf a = answerFor("a.test", "192.0.2.1");
  const Buf b = answerFor("b.test", "192.0.2.2");
  const Buf c = answerFor("c.test", "192.0.2.3");
  const Buf stream = concat(concat(frameTcp(a), frameTcp(b)), frameTcp(c));
  const std::size_t cut = frameTcp(a).size() + frameTcp(b).size() + 5;
  TcpFramer f(1);
  const auto first = f.feed(1, slice(stream, 0, cut));
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0], a);
  EXPECT_EQ(first[1], b);
  const auto second =
      f.feed(static_cast<std::uint32_t>(1 + cut), slice(stream, cut, stream.size()));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0], c);
}

TEST(DnsTcpFramer, RetransmissionsAreTrimmed) {
  const Buf a = answerFor("a.test", "192.0.2.1");
  const Buf b = answerFor("b.test", "192.0.2.2");
  const Buf stream = concat(frameTcp(a), frameTcp(b));
  TcpFramer f(100);
  EXPECT_TRUE(f.feed(100, slice(stream, 0, 10)).empty());
  EXPECT_TRUE(f.feed(100, slice(stream, 0, 10)).empty());         // pure duplicate
  EXPECT_TRUE(f.feed(100, slice(stream, 0, 5)).empty());          // old part only
  const auto out = f.feed(104, slice(stream, 4, stream.size()));  // overlaps 6 bytes
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], a);
  EXPECT_EQ(out[1], b);
  EXPECT_FALSE(f.lost());
}

TEST(DnsTcpFramer, GapLosesTheStreamUntilReset) {
  const Buf a = answerFor("a.test", "192.0.2.1");
  const Buf b = answerFor("b.test", "192.0.2.2");
  const Buf stream = concat(frameTcp(a), frameTcp(b));
  TcpFramer f(1);
  EXPECT_TRUE(f.feed(1, slice(stream, 0, 10)).empty());
  // Bytes 10..19 never seen; the rest arrives, including b starting on its own segment.
  const std::size_t b_at = frameTcp(a).size();
  EXPECT_TRUE(f.feed(21, slice(stream, 20, b_at)).empty());
  EXPECT_TRUE(f.lost());
  EXPECT_EQ(f.gaps(), 1u);
  EXPECT_EQ(f.buffered(), 0u);
  // Even a segment that happens to start a message is not trusted after a gap.
  EXPECT_TRUE(
      f.feed(static_cast<std::uint32_t>(1 + b_at), slice(stream, b_at, stream.size())).empty());
  f.reset(5000);
  EXPECT_FALSE(f.lost());
  const auto out = f.feed(5000, frameTcp(b));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], b);
}

TEST(DnsTcpFramer, ZeroLengthMessagesAndEmptySegments) {
  const Buf a = answerFor("a.test", "192.0.2.1");
  const Buf stream = concat(Buf{0, 0}, frameTcp(a));
  TcpFramer f(1);
  EXPECT_TRUE(f.feed(1, {}).empty());
  const auto out = f.feed(1, stream);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], a);
}

TEST(DnsTcpFramer, LargestMessageIsBounded) {
  Buf big(0xffff, 0xab);
  const Buf stream = frameTcp(big);
  TcpFramer f(1);
  std::size_t at = 0, max_buffered = 0;
  Messages got;
  while (at < stream.size()) {
    const std::size_t n = std::min<std::size_t>(1400, stream.size() - at);
    for (auto& m : f.feed(static_cast<std::uint32_t>(1 + at), slice(stream, at, at + n)))
      got.push_back(m);
    max_buffered = std::max(max_buffered, f.buffered());
    at += n;
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].size(), 0xffffu);
  EXPECT_LE(max_buffered, 0xffffu + 2);
}

}  // namespace
}  // namespace cw::dns
