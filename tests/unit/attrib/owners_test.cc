// The BPF owner programs against real processes: a cgroup of the test's own, a child process
// moved into it that connects, a grandchild that connects a socket its parent made, a UDP
// socket sent from and closed. Needs root (BPF, cgroups); skipped, and said so, without it.
#include "attrib/owners.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "attrib/sock_diag.h"
#include "common/cgroup.h"

namespace cw::attrib {
namespace {

constexpr std::uint32_t kLoopback = 0x7f000001;

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(kLoopback);
  a.sin_port = htons(port);
  return a;
}

std::uint16_t portOf(int fd) {
  sockaddr_in a{};
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  return ntohs(a.sin_port);
}

// What the child reports, through a pipe.
struct Report {
  pid_t child = 0, grandchild = 0;
  std::uint16_t child_port = 0, grandchild_port = 0, udp_port = 0;
};

// A cgroup of the test's own and the processes in it, removed however the test ends.
// The test process is the processes' subreaper while it lives, so that the grandchild, once
// its parent is killed, is reaped here and not left to init.
struct Scene {
  std::string dir;
  pid_t child = -1, grandchild = -1;
  Scene() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }
  ~Scene() {
    if (child > 0) {
      ::kill(-child, SIGKILL);  // the child's process group: it and the grandchild
      ::waitpid(child, nullptr, 0);
    }
    if (grandchild > 0) ::waitpid(grandchild, nullptr, 0);
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
    for (int i = 0; i < 100 && !dir.empty() && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
};

// The child: moves itself into the cgroup, then makes the sockets; never returns.
[[noreturn]] void childMain(const std::string& procs, int report_fd, int hold_fd, std::uint16_t tcp_to,
                            std::uint16_t udp_to) {
  ::setpgid(0, 0);
  {
    std::ofstream p(procs);
    p << "0\n";
  }
  ::prctl(PR_SET_NAME, "cw-owner-kid");
  Report r;
  r.child = ::getpid();
  auto to = loopback(tcp_to);
  const int c = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(c, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) ::_exit(2);
  r.child_port = portOf(c);
  // Made here, connected by the grandchild: the one that uses it is its owner.
  const int shared = ::socket(AF_INET, SOCK_STREAM, 0);
  int gk[2];
  if (::pipe(gk) != 0) ::_exit(2);
  const pid_t g = ::fork();
  if (g == 0) {
    ::prctl(PR_SET_NAME, "cw-owner-gkid");
    if (::connect(shared, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) ::_exit(2);
    const std::uint16_t port = portOf(shared);
    if (::write(gk[1], &port, sizeof port) != sizeof port) ::_exit(2);
    char b;
    while (::read(hold_fd, &b, 1) > 0) {
    }
    ::_exit(0);
  }
  r.grandchild = g;
  if (::read(gk[0], &r.grandchild_port, sizeof r.grandchild_port) != sizeof r.grandchild_port) ::_exit(2);
  // A one-shot UDP datagram, its socket closed at once.
  const int u = ::socket(AF_INET, SOCK_DGRAM, 0);
  auto uto = loopback(udp_to);
  if (::sendto(u, "x", 1, 0, reinterpret_cast<sockaddr*>(&uto), sizeof uto) != 1) ::_exit(2);
  r.udp_port = portOf(u);
  ::close(u);
  if (::write(report_fd, &r, sizeof r) != sizeof r) ::_exit(2);
  char b;
  while (::read(hold_fd, &b, 1) > 0) {
  }
  ::_exit(0);
}

TEST(OwnerMap, RecordsWhoMadeConnectedAndSentFromEachSocket) {
  if (::geteuid() != 0) GTEST_SKIP() << "BPF programs and cgroups need root";
  auto mnt = cgroup::root();
  if (!mnt) GTEST_SKIP() << mnt.error().message;
  Scene scene;
  scene.dir = *mnt + "/cw-test-owners-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(scene.dir.c_str(), 0755), 0) << scene.dir << ": " << std::strerror(errno);
  struct stat st{};
  ASSERT_EQ(::stat(scene.dir.c_str(), &st), 0);
  const std::uint64_t cgroup_id = st.st_ino;

  auto owners = OwnerMap::attach(scene.dir);
  ASSERT_TRUE(owners) << owners.error().message;

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto any = loopback(0);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::bind(udp, reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
  int report[2], hold[2];
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe(hold), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(hold[1]);
    childMain(scene.dir + "/cgroup.procs", report[1], hold[0], portOf(listener), portOf(udp));
  }
  scene.child = child;
  ::close(hold[0]);
  ::close(report[1]);
  Report r;
  ASSERT_EQ(::read(report[0], &r, sizeof r), static_cast<ssize_t>(sizeof r)) << "the child failed";
  scene.grandchild = r.grandchild;

  auto diag = SockDiag::open();
  ASSERT_TRUE(diag) << diag.error().message;
  const std::uint16_t server = portOf(listener);
  auto mine = diag->find(SocketId{IPPROTO_TCP, Ip4{kLoopback}, r.child_port, Ip4{kLoopback}, server});
  ASSERT_TRUE(mine && mine->has_value());
  EXPECT_EQ((*mine)->cgroup_id, cgroup_id);
  auto o = owners.value()->bySocket((*mine)->cookie);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->pid, static_cast<std::uint32_t>(r.child));
  EXPECT_EQ(o->comm, "cw-owner-kid");
  EXPECT_EQ(o->uid, 0u);
  EXPECT_EQ(o->cgroup_id, cgroup_id);

  auto shared = diag->find(SocketId{IPPROTO_TCP, Ip4{kLoopback}, r.grandchild_port, Ip4{kLoopback}, server});
  ASSERT_TRUE(shared && shared->has_value());
  auto g = owners.value()->bySocket((*shared)->cookie);
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->pid, static_cast<std::uint32_t>(r.grandchild));
  EXPECT_EQ(g->comm, "cw-owner-gkid");

  // The UDP socket is gone; its port still names who sent from it.
  auto gone = diag->find(SocketId{IPPROTO_UDP, Ip4{kLoopback}, r.udp_port, Ip4{kLoopback}, portOf(udp)});
  ASSERT_TRUE(gone) << gone.error().message;
  EXPECT_FALSE(gone->has_value());
  auto u = owners.value()->byPort(cgroup_id, IPPROTO_UDP, r.udp_port);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->pid, static_cast<std::uint32_t>(r.child));
  EXPECT_FALSE(owners.value()->byPort(cgroup_id + 1, IPPROTO_UDP, r.udp_port).has_value());

  // By connection, without a socket lookup: each connection's opener, as the kernel had it
  // when the SYN left (TCP) or the datagram did (UDP, its socket closed since).
  auto byc = owners.value()->byConnection(cgroup_id, IPPROTO_TCP, Ip4{kLoopback}, r.child_port, Ip4{kLoopback}, server);
  ASSERT_TRUE(byc.has_value());
  EXPECT_EQ(byc->pid, static_cast<std::uint32_t>(r.child));
  EXPECT_EQ(byc->comm, "cw-owner-kid");
  auto byg = owners.value()->byConnection(cgroup_id, IPPROTO_TCP, Ip4{kLoopback}, r.grandchild_port, Ip4{kLoopback},
                                          server);
  ASSERT_TRUE(byg.has_value());
  EXPECT_EQ(byg->pid, static_cast<std::uint32_t>(r.grandchild));
  auto byu = owners.value()->byConnection(cgroup_id, IPPROTO_UDP, Ip4{kLoopback}, r.udp_port, Ip4{kLoopback},
                                          portOf(udp));
  ASSERT_TRUE(byu.has_value());
  EXPECT_EQ(byu->pid, static_cast<std::uint32_t>(r.child));
  EXPECT_FALSE(owners.value()->byConnection(cgroup_id + 1, IPPROTO_TCP, Ip4{kLoopback}, r.child_port, Ip4{kLoopback},
                                            server).has_value());
  // Which process, exactly: its start time (as /proc has it, in clock ticks) and its execs.
  {
    std::ifstream stat("/proc/" + std::to_string(r.child) + "/stat");
    std::string line;
    std::getline(stat, line);
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 22 && rest >> field; ++i) {
    }
    const auto ticks = std::stoull(field);
    const auto per_tick = 1'000'000'000ull / static_cast<unsigned long long>(::sysconf(_SC_CLK_TCK));
    EXPECT_EQ(byc->start_ns / per_tick, ticks);
    EXPECT_EQ(byc->start_ns, o->start_ns);
    EXPECT_NE(byc->start_ns, byg->start_ns);
  }

  // A socket outside the cgroup (the test's own accepted end) was never recorded.
  auto server_end = diag->find(SocketId{IPPROTO_TCP, Ip4{kLoopback}, server, Ip4{kLoopback}, r.child_port});
  ASSERT_TRUE(server_end && server_end->has_value());
  EXPECT_FALSE(owners.value()->bySocket((*server_end)->cookie).has_value());

  ::close(hold[1]);
  ::close(report[0]);
  ::close(listener);
  ::close(udp);
}

TEST(OwnerMap, SaysWhatPrivilegeItNeeds) {
  if (::geteuid() == 0) {
    auto bad = OwnerMap::attach("/nonexistent/cw-no-such-cgroup");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("cw-no-such-cgroup"), std::string::npos) << bad.error().message;
    return;
  }
  auto denied = OwnerMap::attach("/sys/fs/cgroup");
  ASSERT_FALSE(denied);
  EXPECT_NE(denied.error().message.find("needs root"), std::string::npos) << denied.error().message;
}

}  // namespace
}  // namespace cw::attrib
