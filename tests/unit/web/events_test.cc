#include "web/events.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace cw::web {
namespace {

using namespace std::chrono_literals;

// Reads what the stream has now (one read's worth, up to `max`).
std::string readOnce(EventHub::Stream& s, std::chrono::milliseconds wait = 10ms, std::size_t max = 1 << 20) {
  std::string buf(max, '\0');
  long n = s.read(buf.data(), buf.size(), wait);
  if (n < 0) return "<end>";
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

TEST(EventHub, SnapshotHasLatestStatesAndHistoriesThenLiveEventsInOrder) {
  EventHub hub;
  hub.state("prompts", R"({"v":1})");
  hub.state("prompts", R"({"v":2})");
  for (int i = 0; i < 5; ++i) hub.history("traffic", "{\"t\":" + std::to_string(i) + "}", 3);
  hub.event("counters", R"({"gone":1})");  // live only: not in a later snapshot

  auto s = hub.subscribe();
  std::string snap = readOnce(*s);
  EXPECT_NE(snap.find("retry: 1000"), std::string::npos);
  EXPECT_NE(snap.find("event: prompts\ndata: {\"v\":2}\n\n"), std::string::npos) << snap;
  EXPECT_EQ(snap.find("{\"v\":1}"), std::string::npos) << "replaced state replayed";
  EXPECT_EQ(snap.find("{\"t\":1}"), std::string::npos) << "history kept more than asked";
  EXPECT_NE(snap.find("{\"t\":2}"), std::string::npos);
  EXPECT_LT(snap.find("{\"t\":2}"), snap.find("{\"t\":4}"));
  EXPECT_EQ(snap.find("gone"), std::string::npos);

  hub.event("rules", R"({"app":"a"})");
  hub.state("cells", R"({"n":1})");
  std::string live = readOnce(*s);
  EXPECT_EQ(live, "event: rules\ndata: {\"app\":\"a\"}\n\nevent: cells\ndata: {\"n\":1}\n\n");
}

TEST(EventHub, QuietStreamGetsKeepAliveAndSmallReadsSplitEvents) {
  EventHub hub;
  auto s = hub.subscribe();
  (void)readOnce(*s);
  EXPECT_EQ(readOnce(*s, 5ms), ": keep-alive\n\n");
  hub.event("x", "{}");
  const std::string want = "event: x\ndata: {}\n\n";
  std::string got;
  for (int i = 0; i < 100 && got.size() < want.size(); ++i) got += readOnce(*s, 5ms, 4);
  EXPECT_EQ(got, want);
}

TEST(EventHub, StreamBehindTheRingIsToldToResyncAndEnds) {
  EventHub hub(EventHub::Limits{4, 1 << 20});
  auto s = hub.subscribe();
  (void)readOnce(*s);
  for (int i = 0; i < 10; ++i) hub.event("e", std::to_string(i));
  EXPECT_EQ(readOnce(*s), "event: resync\ndata: {}\n\n");
  EXPECT_EQ(readOnce(*s), "<end>");
  // A new stream starts from the ring's present.
  auto t = hub.subscribe();
  (void)readOnce(*t);
  hub.event("e", "new");
  EXPECT_EQ(readOnce(*t), "event: e\ndata: new\n\n");
}

TEST(EventHub, RingIsBoundedInBytes) {
  EventHub hub(EventHub::Limits{1000, 100});
  auto s = hub.subscribe();
  (void)readOnce(*s);
  hub.event("big", std::string(200, 'x'));  // alone over the limit: dropped from the ring
  EXPECT_EQ(readOnce(*s), "event: resync\ndata: {}\n\n");
}

TEST(EventHub, CloseWakesAWaitingReaderAndCountsListeners) {
  EventHub hub;
  EXPECT_EQ(hub.listeners(), 0u);
  auto s = hub.subscribe();
  EXPECT_EQ(hub.listeners(), 1u);
  (void)readOnce(*s);
  std::string got;
  std::thread reader([&] { got = readOnce(*s, 10s); });
  std::this_thread::sleep_for(20ms);
  auto t0 = std::chrono::steady_clock::now();
  hub.close();
  reader.join();
  EXPECT_EQ(got, "<end>");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  s.reset();
  EXPECT_EQ(hub.listeners(), 0u);
}

}  // namespace
}  // namespace cw::web
