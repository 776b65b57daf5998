// The OpenFlow channel against a scripted switch over a UNIX socket (and loopback TCP for the
// unauthenticated listener; hermetic: nothing leaves the host).
#include "switch/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "packet/builder.h"
#include "packet/frame.h"
#include "switch/admission.h"

namespace cw::sw {
namespace {

using namespace std::chrono_literals;

struct Recorder final : SwitchHandler {
  std::atomic<int> up{0}, down{0}, packet_ins{0};
  std::atomic<std::uint64_t> dpid{0};
  std::atomic<bool> echo_packet_out{false};  // also send each Packet-In's frame back out
  void onSwitchUp(Switch& s) override {
    dpid = s.datapathId();
    ++up;
  }
  void onSwitchDown(Switch&) override { ++down; }
  void onPacketIn(Switch& s, const ofp::PacketIn& pi) override {
    ++packet_ins;
    // Answer like the decision path does: a flow for the packet's port.
    ofp::FlowMod fm;
    fm.match.inPort(pi.inPort());
    s.sendFlowMod(fm);
    if (echo_packet_out) {
      ofp::PacketOut po;
      po.in_port = pi.inPort();
      po.actions = {ofp::ActionOutput{1, 0}};
      po.data.assign(pi.data.begin(), pi.data.end());
      s.sendPacketOut(po);
    }
  }
  void onPortStatus(Switch&, const ofp::PortStatus&) override {}
  void onFlowRemoved(Switch&, const ofp::FlowRemoved&) override {}
  void onError(Switch&, std::uint32_t, const ofp::ErrorMsg&) override {}
};

// A blocking fake switch speaking raw bytes.
class FakeSwitch {
 public:
  // Over the server's UNIX socket.
  explicit FakeSwitch(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    for (int i = 0; i < 100; ++i) {
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return;  // NOLINT
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "cannot connect to " << path;
  }
  // Over plain TCP on loopback.
  explicit FakeSwitch(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 100; ++i) {
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return;  // NOLINT
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "cannot connect to 127.0.0.1:" << port;
  }
  ~FakeSwitch() { ::close(fd_); }
  FakeSwitch(const FakeSwitch&) = delete;
  FakeSwitch& operator=(const FakeSwitch&) = delete;

  // True once the server has closed the connection (EOF within 2 s, whatever came before).
  bool closedByServer() {
    while (recv()) {
    }
    return closed_;
  }

  void sendRaw(const std::vector<std::uint8_t>& b) {
    ASSERT_EQ(::write(fd_, b.data(), b.size()), static_cast<ssize_t>(b.size()));
  }
  void send(const ofp::Message& m, std::uint32_t xid = 99) {
    std::vector<std::uint8_t> b;
    ofp::encode(ofp::Version::kOf13, xid, m, b);
    sendRaw(b);
  }
  // The next message, or nullopt on EOF / 2 s without one.
  std::optional<std::vector<std::uint8_t>> recv() {
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (true) {
      if (auto len = ofp::frameLength(buf_); len && buf_.size() >= *len) {
        std::vector<std::uint8_t> m(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(*len));
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(*len));
        return m;
      }
      std::uint8_t tmp[4096];
      ssize_t n = ::read(fd_, tmp, sizeof tmp);
      // EOF, or a reset (the server closed with our last bytes unread): closed either way.
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) closed_ = true;
      if (n <= 0) return std::nullopt;
      buf_.insert(buf_.end(), tmp, tmp + n);
    }
  }
  // Receives until a message of type M arrives (answering nothing); returns it decoded.
  template <class M>
  std::optional<std::pair<ofp::Header, M>> expect() {
    while (auto raw = recv()) {
      auto d = ofp::decode(*raw);
      if (!d) continue;
      if (auto* m = std::get_if<M>(&d->msg)) return std::make_pair(d->header, *m);
    }
    return std::nullopt;
  }
  void handshake(std::uint64_t dpid) {
    ASSERT_TRUE(expect<ofp::Hello>());
    send(ofp::Hello{1u << 4});
    auto fr = expect<ofp::FeaturesRequest>();
    ASSERT_TRUE(fr);
    ofp::FeaturesReply rep;
    rep.datapath_id = dpid;
    send(rep, fr->first.xid);
    auto mp = expect<ofp::MultipartRequest>();
    ASSERT_TRUE(mp);
    send(ofp::MultipartReply{0, std::vector<ofp::PortDesc>{}}, mp->first.xid);
  }

 private:
  int fd_ = -1;
  bool closed_ = false;
  std::vector<std::uint8_t> buf_;
};

std::uint16_t freeTcpPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);     // NOLINT
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);  // NOLINT
  ::close(fd);
  return ntohs(a.sin_port);
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("cw-switch-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    start([](ServerOptions&) {});
  }
  // (Re)starts the server with the defaults below, changed by `adjust`.
  template <class F>
  void start(F adjust) {
    if (server_) server_->stop();
    ServerOptions o;
    o.unix_path = (dir_ / "of.sock").string();
    o.unix_peer_uids = {static_cast<std::uint32_t>(::geteuid())};  // whoever runs the test
    o.threads = 1;  // one event loop: the fairness test needs both switches on it
    adjust(o);
    options_ = o;
    server_ = std::make_unique<SwitchServer>(o, rec_);
    auto r = server_->start();
    ASSERT_TRUE(r) << r.error().message;
  }
  void TearDown() override {
    server_->stop();
    std::filesystem::remove_all(dir_);
  }
  std::string path() const { return (dir_ / "of.sock").string(); }
  template <class F>
  bool eventually(F f) {
    for (int i = 0; i < 200; ++i) {
      if (f()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  std::filesystem::path dir_;
  Recorder rec_;
  ServerOptions options_;
  std::unique_ptr<SwitchServer> server_;
};

TEST_F(ServerTest, HandshakeRegistersTheSwitchByDatapathId) {
  FakeSwitch s(path());
  s.handshake(0x42);
  ASSERT_TRUE(eventually([&] { return rec_.up.load() == 1; }));
  EXPECT_EQ(rec_.dpid.load(), 0x42u);
  EXPECT_NE(server_->find(0x42), nullptr);
  EXPECT_EQ(server_->find(0x43), nullptr);
}

TEST_F(ServerTest, PacketInIsDispatchedAndAnswered) {
  FakeSwitch s(path());
  s.handshake(7);
  ofp::PacketIn pi;
  pi.match.inPort(3);
  std::vector<std::uint8_t> frame(60, 0xab);
  pi.data = Bytes(frame);
  pi.total_len = 60;
  s.send(pi);
  auto fm = s.expect<ofp::FlowMod>();
  ASSERT_TRUE(fm);
  EXPECT_EQ(fm->second.match.in_port, 3u);
  EXPECT_EQ(rec_.packet_ins.load(), 1);
}

TEST_F(ServerTest, PacketOutFramesLeaveWithTheirChecksumsFinished) {
  // A SYN as a sender with TX checksum offload leaves it: the TCP checksum field holds only the
  // pseudo-header's sum. Sent back out as it came in, it must carry the real checksum.
  rec_.echo_packet_out = true;
  FakeSwitch s(path());
  s.handshake(9);
  const std::vector<std::uint8_t> right =
      packet::buildTcp4(packet::EthSpec{*MacAddr::parse("02:00:00:00:00:02"), *MacAddr::parse("02:00:00:00:00:01")},
                        *Ip4::parse("10.200.0.2"), *Ip4::parse("10.250.0.1"), 40000, 8080, packet::kTcpSyn, 1);
  std::vector<std::uint8_t> partial = right;
  // What Linux leaves there: the pseudo-header's sum, 0x0ac8 + 0x0002 + 0x0afa + 0x0001 (the
  // addresses) + 6 (TCP) + 20 (its length) = 0x15df.
  partial[14 + 20 + 16] = 0x15;
  partial[14 + 20 + 17] = 0xdf;
  ASSERT_NE(partial, right);
  ofp::PacketIn pi;
  pi.match.inPort(3);
  pi.data = Bytes(partial);
  pi.total_len = static_cast<std::uint16_t>(partial.size());
  s.send(pi);
  ASSERT_TRUE(s.expect<ofp::FlowMod>());
  auto po = s.expect<ofp::PacketOut>();
  ASSERT_TRUE(po);
  EXPECT_EQ(po->second.data, right);
  EXPECT_EQ(po->second.in_port, 3u);
  ASSERT_EQ(po->second.actions.size(), 1u);
}

TEST_F(ServerTest, MalformedMessageGetsAnErrorAndTheConnectionSurvives) {
  FakeSwitch s(path());
  s.handshake(8);
  // A well-framed message of a type OpenFlow 1.3 does not have.
  s.sendRaw({0x04, 200, 0x00, 0x08, 0x00, 0x00, 0x12, 0x34});
  auto err = s.expect<ofp::ErrorMsg>();
  ASSERT_TRUE(err);
  EXPECT_EQ(err->first.xid, 0x1234u);
  EXPECT_EQ(err->second.type, 1);  // OFPET_BAD_REQUEST
  EXPECT_EQ(err->second.code, 1);  // OFPBRC_BAD_TYPE
  ASSERT_GE(err->second.data.size(), 8u);  // the offending bytes are echoed
  EXPECT_EQ(err->second.data[1], 200);
  s.send(ofp::Echo{false, {1, 2, 3}}, 77);
  auto echo = s.expect<ofp::Echo>();
  ASSERT_TRUE(echo);
  EXPECT_TRUE(echo->second.reply);
  EXPECT_EQ(echo->first.xid, 77u);
  EXPECT_EQ(echo->second.data, (std::vector<std::uint8_t>{1, 2, 3}));
  EXPECT_EQ(server_->decodeErrorCounts()[static_cast<std::size_t>(ofp::DecodeError::kBadType)], 1u);
}

TEST_F(ServerTest, LostFramingClosesTheConnection) {
  FakeSwitch s(path());
  s.handshake(9);
  ASSERT_TRUE(eventually([&] { return rec_.up.load() == 1; }));
  s.sendRaw({0x04, 0x00, 0x00, 0x04, 0, 0, 0, 1});  // length 4 < header: framing is lost
  EXPECT_FALSE(s.recv());                              // EOF
  EXPECT_TRUE(eventually([&] { return rec_.down.load() == 1; }));
}

TEST_F(ServerTest, OneSwitchFloodingDoesNotStallAnother) {
  // Both switches share the server's event loops; a flood from the first must not keep the
  // second from getting its answer.
  FakeSwitch busy(path());
  busy.handshake(10);
  FakeSwitch quiet(path());
  quiet.handshake(11);
  ofp::PacketIn pi;
  pi.match.inPort(1);
  std::vector<std::uint8_t> frame(60, 0);
  pi.data = Bytes(frame);
  std::vector<std::uint8_t> burst;
  for (int i = 0; i < 20000; ++i) ofp::encode(ofp::Version::kOf13, static_cast<std::uint32_t>(i), pi, burst);
  std::thread flood([&] { busy.sendRaw(burst); });
  pi.match.inPort(2);
  quiet.send(pi);
  auto fm = quiet.expect<ofp::FlowMod>();
  ASSERT_TRUE(fm);
  EXPECT_EQ(fm->second.match.in_port, 2u);
  // Drain the busy switch's answers so its writes complete, then let it go.
  int answered = 0;
  while (answered < 20000 && busy.expect<ofp::FlowMod>()) ++answered;
  flood.join();
  EXPECT_EQ(answered, 20000);
}

// --- Who may hold a datapath id (admission.h) ---

TEST(Admission, AWeakerConnectionNeverTakesAnIdFromAStrongerOne) {
  struct Case {
    const char* what;
    Auth incoming;
    std::optional<Auth> held;
    Auth min_auth;
    Admission expected;
  };
  const Case cases[] = {
      {"free id, no floor", Auth::kNone, std::nullopt, Auth::kNone, Admission::kAdmit},
      {"free id, TCP below the bridge's floor", Auth::kNone, std::nullopt, Auth::kUnixPeerCred, Admission::kRefuse},
      {"free id, TLS below a UNIX floor", Auth::kTls, std::nullopt, Auth::kUnixPeerCred, Admission::kRefuse},
      {"free id, UNIX at its floor", Auth::kUnixPeerCred, std::nullopt, Auth::kUnixPeerCred, Admission::kAdmit},
      {"TCP over TCP (both unauthenticated)", Auth::kNone, Auth::kNone, Auth::kNone, Admission::kReplace},
      {"TCP over TLS", Auth::kNone, Auth::kTls, Auth::kTls, Admission::kRefuse},
      {"TCP over UNIX", Auth::kNone, Auth::kUnixPeerCred, Auth::kUnixPeerCred, Admission::kRefuse},
      {"TLS over UNIX", Auth::kTls, Auth::kUnixPeerCred, Auth::kUnixPeerCred, Admission::kRefuse},
      {"TLS over TLS (a remote switch reconnecting)", Auth::kTls, Auth::kTls, Auth::kTls, Admission::kReplace},
      {"UNIX over TCP", Auth::kUnixPeerCred, Auth::kNone, Auth::kNone, Admission::kReplace},
      {"UNIX over UNIX (a restarted Open vSwitch)", Auth::kUnixPeerCred, Auth::kUnixPeerCred, Auth::kUnixPeerCred,
       Admission::kReplace},
  };
  for (const auto& c : cases) EXPECT_EQ(admit(c.incoming, c.held, c.min_auth), c.expected) << c.what;
}

TEST(Admission, NamesAreStable) {
  EXPECT_STREQ(authName(Auth::kNone), "none");
  EXPECT_STREQ(authName(Auth::kTls), "tls");
  EXPECT_STREQ(authName(Auth::kUnixPeerCred), "unix-peercred");
}

// --- The channel enforcing it ---

TEST_F(ServerTest, NoTcpListenerUnlessAsked) {
  EXPECT_EQ(server_->tcpPort(), 0);
}

TEST_F(ServerTest, UnixSocketIsPrivateAndItsPeerIsNamedWithItsCredentials) {
  struct stat st {};
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  FakeSwitch s(path());
  s.handshake(0x51);
  ASSERT_TRUE(eventually([&] { return server_->find(0x51) != nullptr; }));
  auto sw = server_->find(0x51);
  EXPECT_EQ(sw->auth(), Auth::kUnixPeerCred);
  EXPECT_NE(sw->peer().find("pid=" + std::to_string(::getpid())), std::string::npos) << sw->peer();
  EXPECT_NE(sw->peer().find("uid=" + std::to_string(::geteuid())), std::string::npos) << sw->peer();
}

TEST_F(ServerTest, UnixPeerOfAnotherUidIsClosedBeforeTheHandshake) {
  start([](ServerOptions& o) { o.unix_peer_uids = {static_cast<std::uint32_t>(::geteuid()) + 1}; });
  FakeSwitch s(path());
  // Not even a HELLO: the connection is closed at accept.
  EXPECT_FALSE(s.recv());
  EXPECT_TRUE(eventually([&] { return server_->refused().peer_credentials == 1; }));
  EXPECT_EQ(rec_.up.load(), 0);
}

TEST_F(ServerTest, PlainTcpNeverTakesADatapathIdHeldOverUnix) {
  const std::uint16_t port = freeTcpPort();
  start([port](ServerOptions& o) { o.tcp_port = port; });
  FakeSwitch bridge(path());
  bridge.handshake(0x60);
  ASSERT_TRUE(eventually([&] { return rec_.up.load() == 1; }));

  FakeSwitch poser(port);
  poser.handshake(0x60);
  // A forged Packet-In right behind the handshake is never looked at.
  ofp::PacketIn pi;
  pi.match.inPort(3);
  std::vector<std::uint8_t> frame(60, 0xab);
  pi.data = Bytes(frame);
  poser.send(pi);
  EXPECT_TRUE(poser.closedByServer());
  EXPECT_EQ(server_->refused().takeovers, 1u);
  EXPECT_EQ(rec_.up.load(), 1);
  EXPECT_EQ(rec_.packet_ins.load(), 0);
  auto held = server_->find(0x60);
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held->auth(), Auth::kUnixPeerCred);
  // The real switch's connection is untouched.
  bridge.send(ofp::Echo{false, {7}}, 70);
  auto echo = bridge.expect<ofp::Echo>();
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->first.xid, 70u);
}

TEST_F(ServerTest, PlainTcpCannotClaimAReservedDatapathIdWhileItIsFree) {
  const std::uint16_t port = freeTcpPort();
  start([port](ServerOptions& o) {
    o.tcp_port = port;
    o.dpid_floor[0x61] = Auth::kUnixPeerCred;
  });
  FakeSwitch poser(port);
  poser.handshake(0x61);
  EXPECT_TRUE(poser.closedByServer());
  EXPECT_EQ(server_->find(0x61), nullptr);
  EXPECT_EQ(server_->refused().takeovers, 1u);
  // Another datapath id is no one's: an unauthenticated switch may have it.
  FakeSwitch other(port);
  other.handshake(0x62);
  ASSERT_TRUE(eventually([&] { return server_->find(0x62) != nullptr; }));
  EXPECT_EQ(server_->find(0x62)->auth(), Auth::kNone);
}

TEST_F(ServerTest, AnIdOnceHeldOverUnixStaysClosedToTcpAfterItsSwitchLeaves) {
  const std::uint16_t port = freeTcpPort();
  start([port](ServerOptions& o) { o.tcp_port = port; });
  {
    FakeSwitch bridge(path());
    bridge.handshake(0x63);
    ASSERT_TRUE(eventually([&] { return rec_.up.load() == 1; }));
  }
  ASSERT_TRUE(eventually([&] { return rec_.down.load() == 1; }));
  // The gap while Open vSwitch restarts is no opening.
  FakeSwitch poser(port);
  poser.handshake(0x63);
  EXPECT_TRUE(poser.closedByServer());
  EXPECT_EQ(server_->find(0x63), nullptr);
}

TEST_F(ServerTest, UnixReplacesUnixAtOnceAndTheOldConnectionIsClosed) {
  FakeSwitch before(path());
  before.handshake(0x64);
  ASSERT_TRUE(eventually([&] { return rec_.up.load() == 1; }));
  FakeSwitch after(path());  // a restarted switch, before the old connection timed out
  after.handshake(0x64);
  ASSERT_TRUE(eventually([&] { return rec_.up.load() == 2; }));
  EXPECT_TRUE(before.closedByServer());
  EXPECT_EQ(server_->refused().takeovers, 0u);
  ofp::PacketIn pi;
  pi.match.inPort(4);
  std::vector<std::uint8_t> frame(60, 0);
  pi.data = Bytes(frame);
  after.send(pi);
  auto fm = after.expect<ofp::FlowMod>();
  ASSERT_TRUE(fm);
  EXPECT_EQ(fm->second.match.in_port, 4u);
}

TEST_F(ServerTest, UnixTakesAnIdBackFromTcp) {
  const std::uint16_t port = freeTcpPort();
  start([port](ServerOptions& o) { o.tcp_port = port; });
  FakeSwitch poser(port);
  poser.handshake(0x65);
  ASSERT_TRUE(eventually([&] { return rec_.up.load() == 1; }));
  FakeSwitch bridge(path());
  bridge.handshake(0x65);
  ASSERT_TRUE(eventually([&] { return rec_.up.load() == 2; }));
  EXPECT_TRUE(poser.closedByServer());
  EXPECT_EQ(server_->find(0x65)->auth(), Auth::kUnixPeerCred);
}

}  // namespace
}  // namespace cw::sw
