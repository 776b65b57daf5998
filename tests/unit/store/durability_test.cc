// Acknowledged means durable: a child process writes in a loop and reports each id once the
// call returned; the parent SIGKILLs it at a random moment and checks that every reported id
// survived. (A SIGKILL loses everything not yet handed to the kernel; surviving power loss on
// top of that is synchronous=FULL's fsync per commit, see docs/store.md.)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

#include "fixture.h"

namespace cw::store::test {
namespace {

// One record per acknowledged write, sent over the pipe.
struct Ack {
  std::int32_t kind;  // 1 = rule id, 2 = first log id of a batch of kLogBatch
  std::int32_t pad;
  std::int64_t id;
};
constexpr int kLogBatch = 10;

[[noreturn]] void child(const fs::path& file, int fd) {
  auto s = Store::open(file);
  if (!s) ::_exit(2);
  if (!(*s)->putApp(app("firefox"))) ::_exit(3);
  std::vector<LogRow> batch(kLogBatch, logRow("firefox", 1));
  for (std::int64_t i = 0;; ++i) {
    Ack ack{};
    if (i % 2 == 0) {
      auto id = (*s)->addRule(rule("firefox", "host" + std::to_string(i)));
      if (!id) ::_exit(4);
      ack = Ack{1, 0, *id};
    } else {
      auto ids = (*s)->appendLog(batch);
      if (!ids) ::_exit(5);
      ack = Ack{2, 0, ids->front()};
    }
    if (::write(fd, &ack, sizeof ack) != static_cast<ssize_t>(sizeof ack)) ::_exit(6);
  }
}

TEST_F(StoreTest, EveryAcknowledgedWriteSurvivesSigkill) {
  std::mt19937 rng(std::random_device{}());
  std::size_t total_rules = 0;
  for (int round = 0; round < 4; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      child(file, fds[1]);
    }
    ::close(fds[1]);
    // The kill lands at a random moment once the child is writing (on a loaded machine just
    // starting it can take longer than any fixed delay).
    std::vector<Ack> acks;
    Ack ack{};
    if (::read(fds[0], &ack, sizeof ack) == static_cast<ssize_t>(sizeof ack)) acks.push_back(ack);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 200)(rng)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);

    // Everything the child reported before it died (the pipe keeps it after the writer is
    // gone). A torn last record cannot happen: writes to a pipe up to PIPE_BUF are atomic.
    while (::read(fds[0], &ack, sizeof ack) == static_cast<ssize_t>(sizeof ack)) {
      acks.push_back(ack);
    }
    ::close(fds[0]);
    ASSERT_FALSE(acks.empty()) << "round " << round << ": the child acknowledged nothing";
    std::printf("round %d: killed after %zu acknowledged writes\n", round, acks.size());

    auto s = Store::open(file);
    ASSERT_TRUE(s) << s.error().message;
    std::size_t rules = 0;
    for (const Ack& a : acks) {
      if (a.kind == 1) {
        ++rules;
        auto r = (*s)->getRule(static_cast<std::uint32_t>(a.id));
        ASSERT_TRUE(r);
        EXPECT_TRUE(*r) << "round " << round << ": acknowledged rule " << a.id << " is lost";
      } else {
        auto rows = (*s)->queryLog(
            LogQuery{.after_id = a.id - 1, .limit = kLogBatch, .newest_first = false});
        ASSERT_TRUE(rows);
        ASSERT_EQ(rows->size(), static_cast<std::size_t>(kLogBatch))
            << "round " << round << ": acknowledged log batch at " << a.id << " is lost";
        EXPECT_EQ(rows->front().id, a.id);
      }
    }
    // Nothing half-written either: whole batches only, and at most one unacknowledged write.
    total_rules += rules;
    auto all = (*s)->listRules();
    ASSERT_TRUE(all);
    EXPECT_GE(all->size(), total_rules);
    EXPECT_LE(all->size(), total_rules + static_cast<std::size_t>(round) + 1);
    EXPECT_EQ(*(*s)->logRowCount() % kLogBatch, 0u);
  }
}

}  // namespace
}  // namespace cw::store::test
