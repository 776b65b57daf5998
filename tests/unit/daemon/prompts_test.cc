#include "daemon/prompts.h"

#include <gtest/gtest.h>

namespace cw::daemon {
namespace {

Prompts::Ask ask(const char* app, const char* remote, std::uint16_t port, std::uint16_t local_port,
                 std::uint32_t cell = 1, std::int64_t now = 1000) {
  Prompts::Ask a;
  a.app = app;
  a.cell_id = cell;
  a.proto = policy::Protocol::kTcp;
  a.remote = *IpAddr::parse(remote);
  a.port = port;
  a.local_port = local_port;
  a.names = "example.org";
  a.now_unix_ms = 1'700'000'000'000;
  a.now_mono_ms = now;
  a.timeout_ms = 5000;
  a.timeout_action = policy::Action::kReject;
  return a;
}

HeldPacket packet(std::size_t bytes = 60) { return HeldPacket{1, 2, std::vector<std::uint8_t>(bytes, 0xab)}; }

TEST(Prompts, RetransmissionsAndFurtherConnectionsJoinOneQuestion) {
  Prompts p;
  int changes = 0;
  p.setOnChange([&] { ++changes; });
  EXPECT_EQ(p.hold(ask("curl", "192.0.2.1", 443, 40000), packet()), Prompts::Held::kNew);
  EXPECT_EQ(changes, 1);
  const auto v = p.version();
  EXPECT_EQ(p.hold(ask("curl", "192.0.2.1", 443, 40000), packet()), Prompts::Held::kJoined);  // retransmit
  EXPECT_EQ(changes, 1);  // a retransmission is no news
  EXPECT_EQ(p.version(), v);
  EXPECT_EQ(p.hold(ask("curl", "192.0.2.1", 443, 40001, 2), packet()), Prompts::Held::kJoined);  // another cell
  EXPECT_EQ(changes, 2);  // one more connection waits: the count shown changes
  EXPECT_EQ(p.version(), v + 1);
  // Another destination, or another app, is another question.
  EXPECT_EQ(p.hold(ask("curl", "192.0.2.1", 80, 40002), packet()), Prompts::Held::kNew);
  EXPECT_EQ(p.hold(ask("wget", "192.0.2.1", 443, 40003), packet()), Prompts::Held::kNew);
  auto open = p.list();
  ASSERT_EQ(open.size(), 3u);
  EXPECT_EQ(open[0].app, "curl");
  EXPECT_EQ(open[0].port, 443);
  EXPECT_EQ(open[0].connections, 2u);
  EXPECT_TRUE(open[0].held.empty());  // list() leaves the packets where they are
  EXPECT_EQ(open[0].deadline_mono_ms, 6000);
  EXPECT_EQ(open[0].timeout_action, policy::Action::kReject);
  EXPECT_EQ(p.heldBytes(), 5u * 60);

  auto seen = p.find(open[0].id);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->connections, 2u);
  EXPECT_TRUE(seen->held.empty());  // find() leaves the packets too
  auto q = p.take(open[0].id);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->held.size(), 3u);
  EXPECT_FALSE(p.take(open[0].id));  // answered once
  EXPECT_FALSE(p.find(open[0].id));
  EXPECT_EQ(p.heldBytes(), 2u * 60);
  // The destination asks anew once its question is closed.
  EXPECT_EQ(p.hold(ask("curl", "192.0.2.1", 443, 40000), packet()), Prompts::Held::kNew);
}

TEST(Prompts, HeldPacketsAreBounded) {
  Prompts::Limits l;
  l.max_questions = 2;
  l.max_packets_per_question = 3;
  l.max_bytes = 1000;
  Prompts p(l);
  for (int i = 0; i < 5; ++i) p.hold(ask("a", "192.0.2.1", 443, 40000), packet(100));
  auto open = p.list();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].dropped, 2u);  // three kept, two dropped
  EXPECT_EQ(p.heldBytes(), 300u);
  EXPECT_EQ(p.hold(ask("a", "192.0.2.2", 443, 40000), packet(100)), Prompts::Held::kNew);
  // No third question: the caller applies the timeout action at once.
  EXPECT_EQ(p.hold(ask("a", "192.0.2.3", 443, 40000), packet(100)), Prompts::Held::kFull);
  // Nor more bytes than the store allows, even within a question's count.
  auto q = p.take(open[0].id);
  ASSERT_TRUE(q);
  EXPECT_EQ(p.hold(ask("a", "192.0.2.4", 443, 40000), packet(950)), Prompts::Held::kFull);
}

TEST(Prompts, DeadlinesAndCellsThatExit) {
  Prompts p;
  p.hold(ask("a", "192.0.2.1", 443, 40000, 1, 1000), packet());
  p.hold(ask("a", "192.0.2.2", 443, 40001, 1, 3000), packet());
  p.hold(ask("a", "192.0.2.3", 443, 40002, 2, 3000), packet());
  p.hold(ask("a", "192.0.2.3", 443, 40003, 1, 3000), packet());  // cells 1 and 2 wait for it
  EXPECT_TRUE(p.expired(5999).empty());
  auto due = p.expired(6000);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].remote, *IpAddr::parse("192.0.2.1"));
  EXPECT_EQ(due[0].held.size(), 1u);  // to be released with the timeout action
  const std::uint64_t v = p.version();
  // Cell 1 exits: its question alone goes; the one cell 2 also waits for stays.
  auto gone = p.forgetCell(1);
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].remote, *IpAddr::parse("192.0.2.2"));
  EXPECT_GT(p.version(), v);
  ASSERT_EQ(p.list().size(), 1u);
  EXPECT_EQ(p.forgetCell(2).size(), 1u);
  EXPECT_TRUE(p.list().empty());
  EXPECT_EQ(p.heldBytes(), 0u);
}

// Like its process, whether the first asker is a VM cell's (why there is no process) is the
// question's own: it stays when that cell exits while another cell's connection waits.
TEST(Prompts, TheFirstAskersVmCellStaysWithTheQuestion) {
  Prompts p;
  Prompts::Ask vm = ask("curl", "192.0.2.1", 443, 40000, 1);
  vm.vm = true;
  EXPECT_EQ(p.hold(vm, packet()), Prompts::Held::kNew);
  EXPECT_EQ(p.hold(ask("curl", "192.0.2.1", 443, 40001, 2), packet()), Prompts::Held::kJoined);
  EXPECT_TRUE(p.forgetCell(1).empty());
  auto open = p.list();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_TRUE(open[0].vm);
  EXPECT_FALSE(open[0].process);
  EXPECT_EQ(p.hold(ask("curl", "192.0.2.9", 443, 40002, 2), packet()), Prompts::Held::kNew);
  EXPECT_FALSE(p.list()[1].vm);
}

}  // namespace
}  // namespace cw::daemon
