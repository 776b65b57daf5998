// ProcessCache against this process, a child that execs /bin/sleep, and a fake /proc the test
// writes (for what a live system cannot be made to show on demand: a reused pid, odd names).
// Nothing here needs root.
#include "attrib/proc_info.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace cw::attrib {
namespace {

namespace fs = std::filesystem;

std::string readLink(const std::string& path) {
  std::error_code ec;
  return fs::read_symlink(path, ec).string();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A child process, killed and reaped however the test ends.
struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// Forks a child that execs `argv`; returns once the exec has happened (the close-on-exec pipe
// reads EOF), or -1.
pid_t spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;  // made before fork: the child only execs
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execv(args[0], args.data());
    const char failed = 1;
    (void)!::write(sync[1], &failed, 1);
    ::_exit(127);
  }
  ::close(sync[1]);
  char b = 0;
  const ssize_t n = ::read(sync[0], &b, 1);
  ::close(sync[0]);
  if (n != 0) return -1;
  // The pipe closes early in the exec, before the kernel has set up the new command line:
  // wait (at most 5 s) until it reads, so the tests see the program as it runs. A read in the
  // middle of an exec is FakeProc.AProcessReadInTheMiddleOfAnExecIsNotCached's.
  const std::string cmdline = "/proc/" + std::to_string(pid) + "/cmdline";
  for (int i = 0; i < 5000 && slurp(cmdline).empty(); ++i) ::usleep(1000);
  return pid;
}

TEST(ProcessCache, ReadsThisProcess) {
  ProcessCache cache;
  const auto self = static_cast<std::uint32_t>(::getpid());
  auto p = cache.lookup(self);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->pid, self);
  EXPECT_EQ(p->exe, readLink("/proc/self/exe"));
  ASSERT_FALSE(p->argv.empty());
  EXPECT_EQ(p->argv[0], program_invocation_name);
  EXPECT_FALSE(p->argv_truncated);
  EXPECT_EQ(p->uid, ::getuid());
  EXPECT_EQ(p->ppid, static_cast<std::uint32_t>(::getppid()));
  EXPECT_EQ(p->parent_exe, readLink("/proc/" + std::to_string(::getppid()) + "/exe"));
  std::string comm = slurp("/proc/self/comm");
  if (!comm.empty() && comm.back() == '\n') comm.pop_back();
  EXPECT_EQ(p->comm, comm);
  EXPECT_GT(p->start_time, 0u);
  EXPECT_FALSE(p->exited);
}

TEST(ProcessCache, SecondLookupIsAHit) {
  ProcessCache cache;
  const auto self = static_cast<std::uint32_t>(::getpid());
  ASSERT_TRUE(cache.lookup(self).has_value());
  EXPECT_EQ(cache.stats().misses, 1u);
  EXPECT_EQ(cache.stats().hits, 0u);
  auto again = cache.lookup(self);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->exe, readLink("/proc/self/exe"));
  EXPECT_EQ(cache.stats().misses, 1u);
  EXPECT_EQ(cache.stats().hits, 1u);
}

TEST(ProcessCache, ReadsAChildThatExecdAndForgetsItOnceReaped) {
  Child child;
  child.pid = spawn({"/bin/sleep", "30"});
  ASSERT_GT(child.pid, 0) << "cannot run /bin/sleep";
  const auto pid = static_cast<std::uint32_t>(child.pid);
  ProcessCache cache;
  auto p = cache.lookup(pid);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->exe, fs::canonical("/bin/sleep").string());  // /usr/bin/sleep on a merged /usr
  EXPECT_EQ(p->argv, (std::vector<std::string>{"/bin/sleep", "30"}));
  EXPECT_EQ(p->cmdline(), "/bin/sleep 30");
  EXPECT_EQ(p->comm, "sleep");
  EXPECT_EQ(p->ppid, static_cast<std::uint32_t>(::getpid()));
  EXPECT_EQ(p->parent_exe, readLink("/proc/self/exe"));
  EXPECT_EQ(p->uid, ::getuid());
  EXPECT_FALSE(p->exited);

  // Killed but not reaped: a zombie, still found, marked exited, with what was read before.
  ASSERT_EQ(::kill(child.pid, SIGKILL), 0);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child.pid), &info, WEXITED | WNOWAIT), 0);
  auto zombie = cache.lookup(pid);
  ASSERT_TRUE(zombie.has_value());
  EXPECT_TRUE(zombie->exited);
  EXPECT_EQ(zombie->exe, p->exe);

  // Reaped: gone.
  ASSERT_EQ(::waitpid(child.pid, nullptr, 0), child.pid);
  child.pid = -1;
  EXPECT_FALSE(cache.lookup(pid).has_value());
  EXPECT_EQ(cache.stats().gone, 1u);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(ProcessCache, NoticesAnExecByTheNewName) {
  // The child is this test binary until it execs sleep: same pid, same start time.
  Child child;
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  int sync[2];
  ASSERT_EQ(::pipe2(sync, O_CLOEXEC), 0);
  child.pid = ::fork();
  ASSERT_GE(child.pid, 0);
  if (child.pid == 0) {
    ::close(go[1]);
    char b;
    (void)!::read(go[0], &b, 1);
    char arg0[] = "/bin/sleep";
    char arg1[] = "30";
    char* args[] = {arg0, arg1, nullptr};
    ::execv(arg0, args);
    ::_exit(127);
  }
  ::close(go[0]);
  ::close(sync[1]);
  const auto pid = static_cast<std::uint32_t>(child.pid);
  ProcessCache cache;
  auto before = cache.lookup(pid);
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(before->exe, readLink("/proc/self/exe"));
  ASSERT_EQ(::write(go[1], "x", 1), 1);
  char b;
  ASSERT_EQ(::read(sync[0], &b, 1), 0);  // closed by the exec
  ::close(go[1]);
  ::close(sync[0]);
  auto after = cache.lookup(pid);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->start_time, before->start_time);
  EXPECT_EQ(after->exe, fs::canonical("/bin/sleep").string());
  EXPECT_EQ(cache.stats().execs, 1u);
}

// A fake /proc: a directory of <pid>/{stat,cmdline,status,exe} the test writes.
class FakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "cw-test-proc-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  // A process: its stat line made from the fields that matter, the rest plausible.
  void write(std::uint32_t pid, const std::string& comm, std::uint64_t start,
             const std::string& exe, const std::string& cmdline, std::uint32_t ppid = 1,
             char state = 'S', std::uint32_t uid = 1000) {
    const fs::path dir = fs::path(root_) / std::to_string(pid);
    fs::create_directories(dir);
    std::ofstream(dir / "stat")
        << pid << " (" << comm << ") " << state << " " << ppid
        << " 100 100 0 -1 4194560 120 0 0 0 3 1 0 0 20 0 1 0 " << start
        << " 8192000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    std::ofstream(dir / "cmdline", std::ios::binary) << cmdline;
    std::ofstream(dir / "status") << "Name:\t" << comm << "\nUmask:\t0022\nState:\t" << state
                                  << " (sleeping)\nUid:\t" << uid << "\t" << uid + 1 << "\t"
                                  << uid + 2 << "\t" << uid + 3 << "\nGid:\t100\t100\t100\t100\n";
    std::error_code ec;
    fs::remove(dir / "exe", ec);
    if (!exe.empty()) fs::create_symlink(exe, dir / "exe");
  }
  std::string root_;
};

TEST_F(FakeProc, AReusedPidIsReadAfreshNeverServedTheOldProcess) {
  write(100, "old", 5000, "/usr/bin/old", std::string("old\0--flag\0", 11), 1, 'S', 1000);
  write(1, "init", 1, "/sbin/init", std::string("/sbin/init\0", 11));
  ProcessCache cache(root_);
  auto first = cache.lookup(100);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->exe, "/usr/bin/old");
  EXPECT_EQ(first->argv, (std::vector<std::string>{"old", "--flag"}));
  EXPECT_EQ(first->uid, 1000u);  // the real uid: the first of the four
  EXPECT_EQ(first->parent_exe, "/sbin/init");
  EXPECT_EQ(first->start_time, 5000u);

  // Same start time: served from the cache, whatever else the files say now.
  write(100, "old", 5000, "/usr/bin/changed", std::string("changed\0", 8));
  auto hit = cache.lookup(100);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->exe, "/usr/bin/old");
  EXPECT_EQ(cache.stats().hits, 1u);

  // Another start time: another process with the same pid.
  write(100, "new", 7000, "/usr/bin/new", std::string("new\0", 4), 1, 'R', 2000);
  auto reused = cache.lookup(100);
  ASSERT_TRUE(reused.has_value());
  EXPECT_EQ(reused->exe, "/usr/bin/new");
  EXPECT_EQ(reused->comm, "new");
  EXPECT_EQ(reused->argv, (std::vector<std::string>{"new"}));
  EXPECT_EQ(reused->uid, 2000u);
  EXPECT_EQ(reused->start_time, 7000u);
  EXPECT_EQ(cache.stats().reused, 1u);
  EXPECT_EQ(cache.stats().misses, 2u);
  EXPECT_EQ(cache.size(), 1u);

  // Gone.
  fs::remove_all(fs::path(root_) / "100");
  EXPECT_FALSE(cache.lookup(100).has_value());
  EXPECT_EQ(cache.size(), 0u);
}

TEST_F(FakeProc, ANameWithSpacesAndParenthesesIsReadWhole) {
  write(200, "a) b (c", 42, "/opt/x", std::string("x\0", 2), 7);
  ProcessCache cache(root_);
  auto p = cache.lookup(200);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->comm, "a) b (c");
  EXPECT_EQ(p->ppid, 7u);
  EXPECT_EQ(p->start_time, 42u);
  EXPECT_EQ(p->parent_exe, "");  // no such parent in the fake /proc
}

TEST_F(FakeProc, AKernelThreadHasNoExecutableNorCommandLine) {
  write(2, "kthreadd", 3, "", "", 0);
  ProcessCache cache(root_);
  auto p = cache.lookup(2);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->comm, "kthreadd");
  EXPECT_EQ(p->exe, "");
  EXPECT_TRUE(p->argv.empty());
  EXPECT_EQ(p->ppid, 0u);
  EXPECT_EQ(p->parent_exe, "");
}

TEST_F(FakeProc, KeepsTheDeletedMarkOfAReplacedBinary) {
  write(300, "app", 9, "/usr/bin/app (deleted)", std::string("app\0", 4));
  ProcessCache cache(root_);
  auto p = cache.lookup(300);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->exe, "/usr/bin/app (deleted)");
}

TEST_F(FakeProc, ALongCommandLineIsCutAndSaysSo) {
  std::string cmd = "prog";
  cmd += '\0';
  cmd += std::string(10000, 'y');
  cmd += '\0';
  write(400, "prog", 9, "/usr/bin/prog", cmd);
  ProcessCache cache(root_);
  auto p = cache.lookup(400);
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->argv_truncated);
  ASSERT_EQ(p->argv.size(), 2u);
  EXPECT_EQ(p->argv[0], "prog");
  EXPECT_EQ(p->argv[1].size(), ProcessCache::kMaxCmdline - 5);
}

TEST_F(FakeProc, AProcessReadInTheMiddleOfAnExecIsNotCached) {
  // The new executable and name are in place, the command line not yet.
  write(600, "app", 9, "/usr/bin/app", "");
  ProcessCache cache(root_);
  auto early = cache.lookup(600);
  ASSERT_TRUE(early.has_value());
  EXPECT_EQ(early->exe, "/usr/bin/app");
  EXPECT_TRUE(early->argv.empty());
  EXPECT_EQ(cache.size(), 0u);

  write(600, "app", 9, "/usr/bin/app", std::string("app\0-x\0", 7));
  auto later = cache.lookup(600);
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->argv, (std::vector<std::string>{"app", "-x"}));
  EXPECT_EQ(cache.stats().misses, 2u);
  EXPECT_EQ(cache.size(), 1u);
}

TEST_F(FakeProc, AZombieIsMarkedExited) {
  write(500, "defunct", 9, "", "", 1, 'Z');
  ProcessCache cache(root_);
  auto p = cache.lookup(500);
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->exited);
}

TEST_F(FakeProc, KeepsAtMostItsCapacityDroppingTheLeastRecentlyUsed) {
  // (The names are plain literals: "p" + std::to_string(pid) trips g++ 12's -Wrestrict at -O3.)
  write(10, "p10", 10, "/bin/p", "p");
  write(11, "p11", 11, "/bin/p", "p");
  write(12, "p12", 12, "/bin/p", "p");
  ProcessCache cache(root_, 2);
  ASSERT_TRUE(cache.lookup(10));
  ASSERT_TRUE(cache.lookup(11));
  ASSERT_TRUE(cache.lookup(10));  // 11 is now the least recently used
  ASSERT_TRUE(cache.lookup(12));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.stats().evictions, 1u);
  ASSERT_TRUE(cache.lookup(10));
  EXPECT_EQ(cache.stats().hits, 2u);
  ASSERT_TRUE(cache.lookup(11));  // read again
  EXPECT_EQ(cache.stats().misses, 4u);
}

TEST_F(FakeProc, AMissingPidIsNotFound) {
  ProcessCache cache(root_);
  EXPECT_FALSE(cache.lookup(999).has_value());
  EXPECT_EQ(cache.stats().gone, 1u);
}

TEST(ParseStat, ReadsTheFieldsAroundAnyName) {
  struct Case {
    const char* what;
    std::string line;
    std::optional<std::string> comm;
    std::uint32_t ppid;
    std::uint64_t start;
  };
  const std::string tail = " 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 1000 2\n";
  const Case cases[] = {
      {"plain", "17 (bash) S 9" + tail, "bash", 9, 123456},
      {"spaces", "17 (Web Content) S 9" + tail, "Web Content", 9, 123456},
      {"parentheses", "17 ((sd-pam)) S 9" + tail, "(sd-pam)", 9, 123456},
      {"a ) then fields", "17 (x) S 1 2) S 9" + tail, "x) S 1 2", 9, 123456},
      {"empty name", "17 () S 9" + tail, "", 9, 123456},
      {"no closing", "17 (bash S 9" + tail, std::nullopt, 0, 0},
      {"too short", "17 (bash) S 9 1 1\n", std::nullopt, 0, 0},
      {"not a number", "17 (bash) S nine" + tail, std::nullopt, 0, 0},
      {"empty", "", std::nullopt, 0, 0},
  };
  for (const Case& c : cases) {
    auto s = parseStat(c.line);
    ASSERT_EQ(s.has_value(), c.comm.has_value()) << c.what;
    if (!s) continue;
    EXPECT_EQ(s->comm, *c.comm) << c.what;
    EXPECT_EQ(s->state, 'S') << c.what;
    EXPECT_EQ(s->ppid, c.ppid) << c.what;
    EXPECT_EQ(s->start_time, c.start) << c.what;
  }
}

TEST(UserName, NamesKnownUsersAndNumbersTheRest) {
  EXPECT_EQ(userName(0), "root");
  EXPECT_EQ(userName(3999999999u), "3999999999");
}

}  // namespace
}  // namespace cw::attrib
