// The control channel between the launcher and the guest's init (vm/channel.h): frames cut from
// a stream however it arrives, a hostile guest's stream refused, the start spec round trip.
#include "vm/channel.h"

#include <gtest/gtest.h>

namespace cw::vm {
namespace {

TEST(FrameDecoder, CutsFramesFromAStreamInAnyPieces) {
  std::string stream = encodeFrame(FrameType::kStdout, "hello") + encodeFrame(FrameType::kStderr, "") +
                       encodeFrame(FrameType::kExit, "7");
  for (std::size_t piece : {std::size_t{1}, std::size_t{3}, stream.size()}) {
    FrameDecoder d;
    std::vector<Frame> got;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      d.feed(std::string_view(stream).substr(at, piece));
      while (auto f = d.next()) got.push_back(*f);
    }
    ASSERT_EQ(got.size(), 3u) << piece;
    EXPECT_EQ(got[0].type, FrameType::kStdout);
    EXPECT_EQ(got[0].payload, "hello");
    EXPECT_EQ(got[1].type, FrameType::kStderr);
    EXPECT_EQ(got[1].payload, "");
    EXPECT_EQ(got[2].type, FrameType::kExit);
    EXPECT_EQ(got[2].payload, "7");
    EXPECT_FALSE(d.failed());
  }
}

TEST(FrameDecoder, WaitsForTheWholeFrame) {
  FrameDecoder d;
  std::string f = encodeFrame(FrameType::kStdin, std::string(1000, 'x'));
  d.feed(f.substr(0, f.size() - 1));
  EXPECT_FALSE(d.next());
  d.feed(f.substr(f.size() - 1));
  auto got = d.next();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->payload.size(), 1000u);
}

TEST(FrameDecoder, RefusesUnknownTypesAndStaysFailed) {
  FrameDecoder d;
  d.feed(std::string("\x63\0\0\0\0", 5));
  EXPECT_FALSE(d.next());
  EXPECT_TRUE(d.failed());
  EXPECT_NE(d.error().find("unknown frame type 99"), std::string::npos);
  d.feed(encodeFrame(FrameType::kExit, "0"));
  EXPECT_FALSE(d.next());  // nothing after a broken frame is believed
}

TEST(FrameDecoder, RefusesOversizedFramesBeforeBufferingThem) {
  FrameDecoder d;
  d.feed(std::string("\x10\x7f\xff\xff\xff", 5));  // stdout of 2 GiB announced
  EXPECT_FALSE(d.next());
  EXPECT_TRUE(d.failed());
  EXPECT_NE(d.error().find("at most"), std::string::npos);
}

TEST(FrameDecoder, LongStreamsStayBounded) {
  FrameDecoder d;
  std::string chunk = encodeFrame(FrameType::kStdout, std::string(60000, 'y'));
  std::size_t frames = 0;
  for (int i = 0; i < 200; ++i) {
    d.feed(chunk);
    while (d.next()) ++frames;
  }
  EXPECT_EQ(frames, 200u);
}

GuestSpec sampleSpec() {
  GuestSpec s;
  s.argv = {"/bin/sh", "-c", "echo 'a b'\nexit 3", ""};
  s.env = {"PATH=/usr/bin:/bin", "X=\x01\xff"};
  s.uid = 1000;
  s.gid = 1001;
  s.groups = {1001, 27};
  s.cwd = "/home/alice";
  s.ip = "10.200.0.5";
  s.gateway = "10.200.0.1";
  s.mtu = 1420;
  s.resolv_conf = "nameserver 10.200.0.1\nsearch corp.example\n";
  s.hosts = "127.0.0.1\tlocalhost\n";
  s.tty = true;
  s.rows = 40;
  s.cols = 132;
  s.unix_ns = 1796000000123456789;
  return s;
}

TEST(GuestSpec, RoundTripsEveryField) {
  GuestSpec s = sampleSpec();
  auto back = decodeSpec(encodeSpec(s));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, s);
}

TEST(GuestSpec, RefusesTruncationAndBadNumbersAndNoCommand) {
  std::string e = encodeSpec(sampleSpec());
  for (std::size_t cut : {std::size_t{1}, std::size_t{5}, e.size() - 1})  // inside a field
    EXPECT_FALSE(decodeSpec(std::string_view(e).substr(0, cut))) << cut;
  GuestSpec s = sampleSpec();
  s.argv.clear();
  EXPECT_FALSE(decodeSpec(encodeSpec(s)));
  std::string bad_uid = e;
  auto at = bad_uid.find("uid");
  ASSERT_NE(at, std::string::npos);
  bad_uid[at + 3 + 4] = 'x';  // "1000" -> "x000"
  EXPECT_FALSE(decodeSpec(bad_uid));
}

TEST(GuestSpec, SkipsKeysItDoesNotKnow) {
  std::string e = encodeSpec(sampleSpec());
  std::string extra;
  extra.push_back(5);
  extra += "later";
  extra += std::string("\0\0\0\2", 4) + "ok";
  auto back = decodeSpec(extra + e);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, sampleSpec());
}

}  // namespace
}  // namespace cw::vm
