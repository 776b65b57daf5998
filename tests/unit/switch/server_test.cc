// The OpenFlow channel against a scripted switch over a UNIX socket (hermetic: no network).
#include "switch/server.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

namespace cw::sw {
namespace {

using namespace std::chrono_literals;

struct Recorder final : SwitchHandler {
  std::atomic<int> up{0}, down{0}, packet_ins{0};
  std::atomic<std::uint64_t> dpid{0};
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
  }
  void onPortStatus(Switch&, const ofp::PortStatus&) override {}
  void onFlowRemoved(Switch&, const ofp::FlowRemoved&) override {}
  void onError(Switch&, std::uint32_t, const ofp::ErrorMsg&) override {}
};

// A blocking fake switch speaking raw bytes.
class FakeSwitch {
 public:
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
  ~FakeSwitch() { ::close(fd_); }

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
  std::vector<std::uint8_t> buf_;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("cw-switch-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    ServerOptions o;
    o.tcp_port = 0;
    o.unix_path = (dir_ / "of.sock").string();
    o.threads = 1;  // one event loop: the fairness test needs both switches on it
    server_ = std::make_unique<SwitchServer>(o, rec_);
    ASSERT_TRUE(server_->start());
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

}  // namespace
}  // namespace cw::sw
