// The real runner against harmless programs (no root, no network).
#include "netdev/system_runner.h"

#include <gtest/gtest.h>
#include <fstream>
#include <csignal>
#include <unistd.h>
#include <sys/wait.h>

#include <thread>

namespace cw {
namespace {

TEST(SystemRunnerTest, CapturesOutputStatusAndStdin) {
  SystemRunner runner;
  Command cmd;
  cmd.argv = {"sh", "-c", "cat; echo oops >&2; exit 3"};
  cmd.stdin_text = std::string(200000, 'x');  // larger than a pipe buffer
  auto r = runner.run(cmd);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out.size(), 200000u);
  EXPECT_EQ(r->err, "oops\n");
}

TEST(SystemRunnerTest, PassesEnvironment) {
  SystemRunner runner;
  Command cmd;
  cmd.argv = {"sh", "-c", "printf %s \"$CW_TEST_VAR\""};
  cmd.env = {{"CW_TEST_VAR", "hello"}};
  auto r = runner.run(cmd);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "hello");
}

TEST(SystemRunnerTest, TimesOut) {
  SystemRunner runner;
  Command cmd;
  cmd.argv = {"sleep", "5"};
  cmd.timeout = std::chrono::milliseconds(100);
  auto r = runner.run(cmd);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->ok());
}

TEST(SystemRunnerTest, MissingProgramIsAnError) {
  SystemRunner runner;
  Command cmd;
  cmd.argv = {"cw-no-such-program"};
  auto r = runner.run(cmd);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cw-no-such-program"), std::string::npos);
}

TEST(SystemRunnerTest, ChildExitingEarlyDoesNotKillUs) {
  SystemRunner runner;
  Command cmd;
  cmd.argv = {"true"};
  cmd.stdin_text = std::string(1 << 20, 'x');
  auto r = runner.run(cmd);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 0);
}

TEST(SystemRunnerTest, SpawnAliveTerminate) {
  SystemRunner runner;
  Command cmd;
  cmd.argv = {"sleep", "30"};
  auto pid = runner.spawn(cmd, "/dev/null");
  ASSERT_TRUE(pid);
  // Between fork and exec the child still carries our name.
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = runner.alive(*pid, "sleep");
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(up);
  EXPECT_FALSE(runner.alive(*pid, "dnsmasq"));  // a recycled pid is not ours
  ASSERT_TRUE(runner.terminate(*pid, std::chrono::seconds(2)));
  EXPECT_FALSE(runner.alive(*pid, "sleep"));
  EXPECT_TRUE(runner.terminate(*pid, std::chrono::seconds(1)));  // already gone
}

// A detached daemon is not our child: once killed, it is a zombie until its parent reaps it,
// and its /proc/<pid>/comm still reads the same. It must not count as alive.
TEST(SystemRunnerTest, AZombieIsNotAlive) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t parent = ::fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {  // never reaps its own child
    pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    (void)!::write(fds[1], &child, sizeof child);
    ::pause();
    ::_exit(0);
  }
  pid_t zombie = 0;
  ASSERT_EQ(::read(fds[0], &zombie, sizeof zombie), static_cast<ssize_t>(sizeof zombie));
  ::close(fds[0]);
  ::close(fds[1]);
  std::string comm;
  std::getline(std::ifstream("/proc/self/comm"), comm);
  bool is_zombie = false;
  for (int i = 0; i < 200 && !is_zombie; ++i) {
    std::string stat;
    std::getline(std::ifstream("/proc/" + std::to_string(zombie) + "/stat"), stat);
    is_zombie = stat.find(") Z") != std::string::npos;
    if (!is_zombie) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  SystemRunner runner;
  EXPECT_TRUE(is_zombie);
  EXPECT_FALSE(runner.alive(zombie, comm));
  EXPECT_TRUE(runner.alive(parent, comm));  // a live one of the same name still is
  ::kill(parent, SIGKILL);
  ::waitpid(parent, nullptr, 0);
}

}  // namespace
}  // namespace cw
