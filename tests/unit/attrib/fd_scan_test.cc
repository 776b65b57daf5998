// findSocketOwner against a real cgroup of the test's own (cw-test-fdscan-<pid>) holding a
// child with a listening socket (root: cgroups), and against a fake /proc the test writes
// (the lowest-pid rule; no root).
#include "attrib/fd_scan.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "common/cgroup.h"

namespace cw::attrib {
namespace {

namespace fs = std::filesystem;

// The cgroup and the child in it, both removed however the test ends.
struct Scene {
  std::string dir;
  pid_t child = -1;
  ~Scene() {
    if (child > 0) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
    }
    for (int i = 0; i < 100 && !dir.empty() && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
};

TEST(FindSocketOwner, FindsTheProcessInTheCgroupHoldingTheSocket) {
  if (::geteuid() != 0) GTEST_SKIP() << "cgroups and other processes' fds need root";
  const auto root = cgroup::root();
  if (!root) GTEST_SKIP() << root.error().message;
  const std::string& mnt = *root;
  Scene scene;
  scene.dir = mnt + "/cw-test-fdscan-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(scene.dir.c_str(), 0755), 0) << scene.dir << ": " << std::strerror(errno);
  const std::string procs = scene.dir + "/cgroup.procs";

  int report[2], hold[2];
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe(hold), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Into the cgroup, then a listening TCP socket; its inode goes back through the pipe.
    ::close(hold[1]);
    const int p = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (p < 0 || ::write(p, "0\n", 2) != 2) ::_exit(2);
    ::close(p);
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 1) != 0)
      ::_exit(2);
    struct stat st {};
    if (::fstat(s, &st) != 0) ::_exit(2);
    const std::uint64_t ino = st.st_ino;
    if (::write(report[1], &ino, sizeof ino) != sizeof ino) ::_exit(2);
    char b;
    while (::read(hold[0], &b, 1) > 0) {
    }
    ::_exit(0);
  }
  scene.child = child;
  ::close(hold[0]);
  ::close(report[1]);
  std::uint64_t inode = 0;
  ASSERT_EQ(::read(report[0], &inode, sizeof inode), static_cast<ssize_t>(sizeof inode))
      << "the child failed";
  ::close(report[0]);

  auto owner = findSocketOwner(scene.dir, inode);
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(*owner, static_cast<std::uint32_t>(child));

  // A socket of the test's own: open, but not held by anyone in the cgroup.
  const int mine = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(mine, &st), 0);
  EXPECT_FALSE(findSocketOwner(scene.dir, st.st_ino).has_value());
  ::close(mine);
  EXPECT_FALSE(findSocketOwner(scene.dir, inode + 1000000).has_value());

  ::close(hold[1]);
}

TEST(FindSocketOwner, ACgroupThatCannotBeReadHasNoOwner) {
  EXPECT_FALSE(findSocketOwner("/nonexistent/cw-no-such-cgroup", 12345).has_value());
}

// A fake /proc and cgroup: <root>/<pid>/fd/<n> links, and a cgroup.procs listing the pids.
class FakeFds : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "cw-test-fdscan-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    fs::create_directories(cgroup());
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string proc() const { return root_ + "/proc"; }
  std::string cgroup() const { return root_ + "/cgroup"; }
  void fd(std::uint32_t pid, int n, const std::string& target) {
    const fs::path dir = fs::path(proc()) / std::to_string(pid) / "fd";
    fs::create_directories(dir);
    fs::create_symlink(target, dir / std::to_string(n));
  }
  void procs(const std::string& text) { std::ofstream(cgroup() + "/cgroup.procs") << text; }
  std::string root_;
};

TEST_F(FakeFds, TheLowestPidHoldingTheSocketWins) {
  fd(300, 0, "/dev/null");
  fd(300, 5, "socket:[777]");
  fd(120, 3, "socket:[7777]");  // a longer inode with the same digits first
  fd(120, 4, "socket:[77]");
  fd(120, 9, "socket:[777]");
  fd(50, 1, "pipe:[777]");
  procs("300\n50\n120\n");  // cgroup.procs is not sorted
  EXPECT_EQ(findSocketOwner(cgroup(), 777, proc()), std::optional<std::uint32_t>(120));
  EXPECT_EQ(findSocketOwner(cgroup(), 7777, proc()), std::optional<std::uint32_t>(120));
  EXPECT_FALSE(findSocketOwner(cgroup(), 7, proc()).has_value());
}

TEST_F(FakeFds, OnlyProcessesOfTheCgroupAreRead) {
  fd(10, 3, "socket:[42]");  // holds it, but is not in the cgroup
  fd(11, 3, "socket:[43]");
  procs("11\n12\n");  // 12 has exited: no fd directory
  EXPECT_FALSE(findSocketOwner(cgroup(), 42, proc()).has_value());
  EXPECT_EQ(findSocketOwner(cgroup(), 43, proc()), std::optional<std::uint32_t>(11));
}

}  // namespace
}  // namespace cw::attrib
