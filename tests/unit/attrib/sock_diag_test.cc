// Exact socket lookups against real sockets on loopback, in the test's own namespace.
#include "attrib/sock_diag.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "common/cgroup.h"

namespace cw::attrib {
namespace {

constexpr std::uint32_t kLoopback = 0x7f000001;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  std::uint16_t port() const {
    sockaddr_in a{};
    socklen_t n = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
    return ntohs(a.sin_port);
  }
  std::uint32_t inode() const {
    struct stat st{};
    ::fstat(fd, &st);
    return static_cast<std::uint32_t>(st.st_ino);
  }
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(kLoopback);
  a.sin_port = htons(port);
  return a;
}

Fd bound(int type, std::uint16_t port = 0) {
  Fd s(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  auto a = loopback(port);
  EXPECT_EQ(::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return s;
}

SocketId tcp(std::uint16_t local, std::uint16_t remote) {
  return SocketId{IPPROTO_TCP, Ip4{kLoopback}, local, Ip4{kLoopback}, remote};
}

TEST(SockDiag, FindsBothEndsOfATcpConnectionAndItsListenerOnlyWhenAsked) {
  auto diag = SockDiag::open();
  ASSERT_TRUE(diag) << diag.error().message;
  Fd listener = bound(SOCK_STREAM);
  ASSERT_EQ(::listen(listener.fd, 4), 0);
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto to = loopback(listener.port());
  ASSERT_EQ(::connect(client.fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  Fd accepted(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_GE(accepted.fd, 0);

  auto c = diag->find(tcp(client.port(), listener.port()));
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->inode, client.inode());
  EXPECT_EQ((*c)->uid, ::geteuid());
  EXPECT_NE((*c)->cookie, 0u);
  EXPECT_FALSE((*c)->listener);
  EXPECT_EQ((*c)->state, 1);  // established

  auto s = diag->find(tcp(listener.port(), client.port()));
  ASSERT_TRUE(s && s->has_value());
  EXPECT_EQ((*s)->inode, accepted.inode());
  EXPECT_NE((*s)->cookie, (*c)->cookie);
  // The same socket, the same cookie.
  auto again = diag->find(tcp(client.port(), listener.port()));
  ASSERT_TRUE(again && again->has_value());
  EXPECT_EQ((*again)->cookie, (*c)->cookie);

  // A 4-tuple with no socket of its own: the kernel falls back to the port's listener, which
  // is the answer only for an inbound SYN the kernel has not seen yet.
  Fd spare = bound(SOCK_STREAM);  // a port nothing connects from
  auto none = diag->find(tcp(listener.port(), spare.port()));
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(none->has_value());
  auto l = diag->find(tcp(listener.port(), spare.port()), true);
  ASSERT_TRUE(l && l->has_value());
  EXPECT_TRUE((*l)->listener);
  EXPECT_EQ((*l)->inode, listener.inode());
  // Nothing on that port at all.
  auto nothing = diag->find(tcp(spare.port(), listener.port()), true);
  ASSERT_TRUE(nothing) << nothing.error().message;
  EXPECT_FALSE(nothing->has_value());
}

// The cgroup v2 directory this process is in, as the kernel's id for it (its inode); 0 if there
// is no cgroup v2 hierarchy.
std::uint64_t ownCgroupId() {
  auto dir = cgroup::ofProcess();
  if (!dir) return 0;
  auto id = cgroup::id(*dir);
  return id ? *id : 0;
}

// A listener bound to every address (0.0.0.0) takes an inbound SYN to any local address.
TEST(SockDiag, FindsAListenerBoundToAnyAddress) {
  auto diag = SockDiag::open();
  ASSERT_TRUE(diag) << diag.error().message;
  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in any{};
  any.sin_family = AF_INET;
  ASSERT_EQ(::bind(listener.fd, reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
  ASSERT_EQ(::listen(listener.fd, 4), 0);
  Fd spare = bound(SOCK_STREAM);
  auto l = diag->find(SocketId{IPPROTO_TCP, Ip4{kLoopback}, listener.port(), Ip4{0x0a000001}, spare.port()}, true);
  ASSERT_TRUE(l) << l.error().message;
  ASSERT_TRUE(l->has_value());
  EXPECT_TRUE((*l)->listener);
  EXPECT_EQ((*l)->inode, listener.inode());
}

// The socket's cgroup comes with the answer: what tells a cell's sockets from others.
TEST(SockDiag, AnswersCarryTheSocketsCgroup) {
  const std::uint64_t own = ownCgroupId();
  if (own == 0) GTEST_SKIP() << "no cgroup v2 hierarchy is mounted";
  auto diag = SockDiag::open();
  ASSERT_TRUE(diag) << diag.error().message;
  Fd s = bound(SOCK_DGRAM);
  auto w = diag->find(SocketId{IPPROTO_UDP, Ip4{kLoopback}, s.port(), Ip4{kLoopback}, 9});
  ASSERT_TRUE(w && w->has_value());
  EXPECT_EQ((*w)->cgroup_id, own);
}

TEST(SockDiag, UdpSocketsConnectedAndNot) {
  auto diag = SockDiag::open();
  ASSERT_TRUE(diag) << diag.error().message;
  Fd open_socket = bound(SOCK_DGRAM);  // bound, connected to nothing: takes any remote
  auto w = diag->find(SocketId{IPPROTO_UDP, Ip4{kLoopback}, open_socket.port(), Ip4{kLoopback}, 9});
  ASSERT_TRUE(w) << w.error().message;
  ASSERT_TRUE(w->has_value());
  EXPECT_TRUE((*w)->wildcard);
  EXPECT_EQ((*w)->inode, open_socket.inode());

  Fd peer = bound(SOCK_DGRAM);
  Fd connected = bound(SOCK_DGRAM);
  auto to = loopback(peer.port());
  ASSERT_EQ(::connect(connected.fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  auto c = diag->find(SocketId{IPPROTO_UDP, Ip4{kLoopback}, connected.port(), Ip4{kLoopback}, peer.port()});
  ASSERT_TRUE(c && c->has_value());
  EXPECT_FALSE((*c)->wildcard);
  EXPECT_EQ((*c)->inode, connected.inode());
  // Connected elsewhere: not this socket.
  auto other = diag->find(SocketId{IPPROTO_UDP, Ip4{kLoopback}, connected.port(), Ip4{kLoopback}, 9});
  ASSERT_TRUE(other) << other.error().message;
  EXPECT_FALSE(other->has_value());
}

TEST(SockDiag, OpeningInANamespaceSaysWhatWentWrong) {
  auto bad = SockDiag::openIn("/run/netns/cw-no-such-namespace");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("cw-no-such-namespace"), std::string::npos) << bad.error().message;
  if (::geteuid() != 0) GTEST_SKIP() << "entering a namespace needs CAP_SYS_ADMIN (run as root)";
  // Our own namespace, entered by another thread: lookups work as from here.
  auto here = SockDiag::openIn("/proc/self/ns/net");
  ASSERT_TRUE(here) << here.error().message;
  Fd open_socket = bound(SOCK_DGRAM);
  auto w = here->find(SocketId{IPPROTO_UDP, Ip4{kLoopback}, open_socket.port(), Ip4{kLoopback}, 9});
  ASSERT_TRUE(w && w->has_value());
  EXPECT_EQ((*w)->inode, open_socket.inode());
}

}  // namespace
}  // namespace cw::attrib
