// The TPACKET_V3 ring against a real interface: a veth pair inside a network namespace of the
// test's own (cw-capt-<pid>), so nothing on the host is touched; frames sent raw into one end
// are read from the other. Needs root (namespaces, packet sockets); skipped, and said so,
// without it. The namespace, and with it the veths, is deleted however the test ends.
#include "capture/ring.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace cw::capture {
namespace {

using Frame = std::vector<std::uint8_t>;
constexpr std::uint16_t kTestType = 0x88b5;  // IEEE 802 local experimental ethertype

bool run(const std::string& cmd) {
  return std::system(cmd.c_str()) == 0;
}

// Runs fn on a thread that has entered network namespace `name` (setns changes the calling
// thread only; sockets opened there keep that namespace after the thread ends).
void inNetns(const std::string& name, const std::function<void()>& fn) {
  std::thread t([&] {
    const int ns = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(ns, 0) << name << ": " << std::strerror(errno);
    ASSERT_EQ(::setns(ns, CLONE_NEWNET), 0) << std::strerror(errno);
    ::close(ns);
    fn();
  });
  t.join();
}

// A namespace with a veth pair a <-> b, both up; deleted (with the veths) by the destructor.
struct VethScene {
  std::string ns = "cw-capt-" + std::to_string(::getpid());
  std::string a = "cw-capt" + std::to_string(::getpid()) + "a";
  std::string b = "cw-capt" + std::to_string(::getpid()) + "b";
  bool made = false;
  bool make() {
    run("ip netns del " + ns + " 2>/dev/null");  // a leftover of a killed run with this pid
    made = run("ip netns add " + ns);
    return made && run("ip -n " + ns + " link add " + a + " type veth peer name " + b) &&
           run("ip -n " + ns + " link set " + a + " up") &&
           run("ip -n " + ns + " link set " + b + " up");
  }
  ~VethScene() {
    if (made) run("ip netns del " + ns);
  }
};

// A raw socket that only sends, out of one interface.
struct Sender {
  int fd = -1;
  int ifindex = 0;
  ~Sender() {
    if (fd >= 0) ::close(fd);
  }
  void open(const std::string& ifname) {
    ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    ASSERT_NE(ifindex, 0) << ifname;
    fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: receives nothing
    ASSERT_GE(fd, 0) << std::strerror(errno);
  }
  void send(const Frame& f) const {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    const auto n =
        ::sendto(fd, f.data(), f.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    ASSERT_EQ(n, static_cast<ssize_t>(f.size())) << std::strerror(errno);
  }
};

// Broadcast frame of the test's ethertype, `size` bytes, starting with `tag` and `i`.
Frame makeFrame(const std::string& tag, std::size_t i, std::size_t size) {
  Frame f(size);
  for (std::size_t k = 0; k < 6; ++k) f[k] = 0xff;
  const std::uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(&f[6], src, 6);
  f[12] = kTestType >> 8;
  f[13] = kTestType & 0xff;
  const std::string head = tag + " " + std::to_string(i) + " ";
  std::memcpy(&f[14], head.data(), head.size());
  for (std::size_t k = 14 + head.size(); k < size; ++k)
    f[k] = static_cast<std::uint8_t>(k * 31 + i);
  return f;
}

bool isTestFrame(Bytes f) {
  return f.size() >= 14 && f[12] == (kTestType >> 8) && f[13] == (kTestType & 0xff);
}

// Reads test frames from `ring` until `want` have come or `limit` has passed.
std::vector<Frame> readTestFrames(Ring& ring, std::size_t want,
                                  std::vector<std::uint64_t>* ts = nullptr,
                                  std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  std::vector<Frame> got;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    ring.poll(100, [&](Bytes f, std::uint64_t ts_ns) {
      if (!isTestFrame(f)) return;  // the kernel's own traffic on a new link, if any
      got.emplace_back(f.begin(), f.end());
      if (ts != nullptr) ts->push_back(ts_ns);
    });
  }
  return got;
}

std::uint64_t nowNs() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000U +
         static_cast<std::uint64_t>(t.tv_nsec);
}

TEST(Ring, ReadsEveryFrameTheInterfaceReceivesExactly) {
  if (::geteuid() != 0) GTEST_SKIP() << "network namespaces and packet sockets need root";
  VethScene scene;
  ASSERT_TRUE(scene.make()) << "cannot make the veth pair in " << scene.ns;

  // Small blocks, so that the frames span several and the walk from block to block is tested.
  RingConfig cfg;
  cfg.block_size = 1 << 16;
  cfg.block_count = 8;
  std::unique_ptr<Ring> ring;
  Sender out;
  inNetns(scene.ns, [&] {
    auto r = Ring::open(scene.a, cfg);
    ASSERT_TRUE(r) << r.error().message;
    ring = std::move(r.value());
    out.open(scene.b);
  });
  ASSERT_TRUE(ring && out.fd >= 0);
  EXPECT_EQ(ring->interface(), scene.a);

  constexpr std::size_t kCount = 200;
  std::vector<Frame> sent;
  const std::uint64_t before = nowNs();
  for (std::size_t i = 0; i < kCount; ++i) {
    sent.push_back(makeFrame("cw-capture", i, 60 + (i * 37) % 1400));
    out.send(sent.back());
  }
  std::vector<std::uint64_t> ts;
  const std::vector<Frame> got = readTestFrames(*ring, kCount, &ts);
  ASSERT_EQ(got.size(), kCount);
  for (std::size_t i = 0; i < kCount; ++i) EXPECT_EQ(got[i], sent[i]) << "frame " << i;
  for (std::uint64_t t : ts) {
    EXPECT_GE(t + 1'000'000'000U, before);  // the kernel's clock, within a second of ours
    EXPECT_LE(t, nowNs() + 1'000'000'000U);
  }

  // Nothing more arrives: a second read finds no test frame.
  std::size_t extra = 0;
  ring->poll(50, [&](Bytes f, std::uint64_t) { extra += isTestFrame(f) ? 1U : 0U; });
  EXPECT_EQ(extra, 0u);

  const Ring::Stats st = ring->stats();
  EXPECT_GE(st.packets, kCount);
  EXPECT_GE(st.blocks, 2u) << "200 frames of up to 1.4 KB fill more than one 64 KiB block";
  EXPECT_EQ(st.drops, 0u);
  EXPECT_EQ(st.bad_blocks, 0u);
}

TEST(Ring, FramesTheHostSendsOutOfTheInterfaceAreNotRead) {
  if (::geteuid() != 0) GTEST_SKIP() << "network namespaces and packet sockets need root";
  VethScene scene;
  ASSERT_TRUE(scene.make()) << "cannot make the veth pair in " << scene.ns;
  std::unique_ptr<Ring> ring_a, ring_b;
  Sender from_a, from_b;
  inNetns(scene.ns, [&] {
    auto ra = Ring::open(scene.a);
    ASSERT_TRUE(ra) << ra.error().message;
    ring_a = std::move(ra.value());
    auto rb = Ring::open(scene.b);
    ASSERT_TRUE(rb) << rb.error().message;
    ring_b = std::move(rb.value());
    from_a.open(scene.a);
    from_b.open(scene.b);
  });
  ASSERT_TRUE(ring_a && ring_b);

  constexpr std::size_t kOut = 20, kIn = 5;
  for (std::size_t i = 0; i < kOut; ++i) from_a.send(makeFrame("sent-out-of-a", i, 100));
  for (std::size_t i = 0; i < kIn; ++i) from_b.send(makeFrame("received-by-a", i, 100));

  // b received what a sent: the frames were really on the link.
  const std::vector<Frame> at_b = readTestFrames(*ring_b, kOut);
  ASSERT_EQ(at_b.size(), kOut);
  for (std::size_t i = 0; i < kOut; ++i) EXPECT_EQ(at_b[i], makeFrame("sent-out-of-a", i, 100));

  // a read only what it received, none of what it sent.
  std::vector<Frame> at_a = readTestFrames(*ring_a, kIn);
  ring_a->poll(50, [&](Bytes f, std::uint64_t) {
    if (isTestFrame(f)) at_a.emplace_back(f.begin(), f.end());
  });
  ASSERT_EQ(at_a.size(), kIn);
  for (std::size_t i = 0; i < kIn; ++i) EXPECT_EQ(at_a[i], makeFrame("received-by-a", i, 100));
}

TEST(Ring, DrainWithNothingReceivedReturnsAtOnce) {
  if (::geteuid() != 0) GTEST_SKIP() << "network namespaces and packet sockets need root";
  VethScene scene;
  ASSERT_TRUE(scene.make()) << "cannot make the veth pair in " << scene.ns;
  std::unique_ptr<Ring> ring;
  inNetns(scene.ns, [&] {
    auto r = Ring::open(scene.a);
    ASSERT_TRUE(r) << r.error().message;
    ring = std::move(r.value());
  });
  ASSERT_TRUE(ring);
  std::size_t test_frames = 0;
  ring->drain([&](Bytes f, std::uint64_t) { test_frames += isTestFrame(f) ? 1U : 0U; });
  const auto t0 = std::chrono::steady_clock::now();
  ring->poll(20, [&](Bytes f, std::uint64_t) { test_frames += isTestFrame(f) ? 1U : 0U; });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(test_frames, 0u);
}

TEST(Ring, CountsWhatTheKernelDroppedWhenTheRingWasFull) {
  if (::geteuid() != 0) GTEST_SKIP() << "network namespaces and packet sockets need root";
  VethScene scene;
  ASSERT_TRUE(scene.make()) << "cannot make the veth pair in " << scene.ns;
  RingConfig tiny;
  tiny.block_size = 4096;
  tiny.block_count = 2;
  std::unique_ptr<Ring> ring;
  Sender out;
  inNetns(scene.ns, [&] {
    auto r = Ring::open(scene.a, tiny);
    ASSERT_TRUE(r) << r.error().message;
    ring = std::move(r.value());
    out.open(scene.b);
  });
  ASSERT_TRUE(ring && out.fd >= 0);
  constexpr std::size_t kCount = 100;  // 100 KB into 8 KiB, nobody reading
  for (std::size_t i = 0; i < kCount; ++i) out.send(makeFrame("overflow", i, 1000));
  const std::vector<Frame> got =
      readTestFrames(*ring, kCount, nullptr, std::chrono::milliseconds(300));
  EXPECT_LT(got.size(), kCount);
  EXPECT_GT(got.size(), 0u);
  const Ring::Stats first = ring->stats();
  EXPECT_GE(first.drops, kCount - got.size());
  // The kernel resets its counters when read; the ring keeps the sum.
  EXPECT_EQ(ring->stats().drops, first.drops);
  // And the ring works on: the next frame is read.
  out.send(makeFrame("after", 0, 100));
  const std::vector<Frame> after = readTestFrames(*ring, 1);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0], makeFrame("after", 0, 100));
}

TEST(Ring, AnInterfaceThatGoesAwayIsCountedAndDoesNotWakeThePollerForEver) {
  if (::geteuid() != 0) GTEST_SKIP() << "network namespaces and packet sockets need root";
  VethScene scene;
  ASSERT_TRUE(scene.make()) << "cannot make the veth pair in " << scene.ns;
  std::unique_ptr<Ring> ring;
  inNetns(scene.ns, [&] {
    auto r = Ring::open(scene.a);
    ASSERT_TRUE(r) << r.error().message;
    ring = std::move(r.value());
  });
  ASSERT_TRUE(ring);
  ASSERT_TRUE(run("ip -n " + scene.ns + " link del " + scene.b));  // takes its peer, a, along
  // (Frames the kernel sent on the new link before it went may still be read here.)
  for (int i = 0; i < 10 && ring->stats().errors == 0; ++i)
    ring->poll(50, [](Bytes, std::uint64_t) {});
  EXPECT_GE(ring->stats().errors, 1u);
  ring->drain([](Bytes, std::uint64_t) {});
  // The error was taken: the next wait lasts its time instead of returning at once.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ring->poll(50, [](Bytes, std::uint64_t) {}), 0u);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(40));
}

TEST(Ring, OpenOnAMissingInterfaceSaysWhichAndWhy) {
  const std::string name = "cw-nosuch" + std::to_string(::getpid());
  auto r = Ring::open(name);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(name), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("no such interface"), std::string::npos) << r.error().message;
}

TEST(Ring, RefusesAConfigTheKernelCannotTake) {
  RingConfig cfg;
  cfg.block_size = 1000;
  auto r = Ring::open("lo", cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("page size"), std::string::npos) << r.error().message;
  cfg = {};
  cfg.frame_size = 100;
  r = Ring::open("lo", cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("frame size 100"), std::string::npos) << r.error().message;
}

// Run as an unprivileged user: as root, in a child that gives up root (and with it
// CAP_NET_RAW) first. The error message comes back through a pipe.
TEST(Ring, SaysWhatPrivilegeItNeeds) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    if (::geteuid() == 0 && (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
                             ::setresuid(65534, 65534, 65534) != 0))
      ::_exit(2);
    auto r = Ring::open("lo");
    const std::string said = r ? std::string("opened") : r.error().message;
    (void)!::write(pipe_fds[1], said.data(), said.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string said;
  char buf[512];
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;) said.append(buf, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child could not give up root";
  EXPECT_NE(said, "opened");
  EXPECT_NE(said.find("CAP_NET_RAW"), std::string::npos) << said;
}

}  // namespace
}  // namespace cw::capture
