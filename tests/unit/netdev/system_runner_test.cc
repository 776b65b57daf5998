// The real runner against harmless programs (no root, no network).
#include "netdev/system_runner.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace cw
