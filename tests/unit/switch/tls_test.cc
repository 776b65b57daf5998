// The OpenFlow channel over mutual TLS, against a scripted switch on loopback.
#include <gtest/gtest.h>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "switch/server.h"

namespace cw::sw {
namespace {

using namespace std::chrono_literals;
const std::string kData = CW_SWITCH_TESTDATA;

struct CountingHandler final : SwitchHandler {
  std::atomic<int> up{0};
  void onSwitchUp(Switch&) override { ++up; }
  void onSwitchDown(Switch&) override {}
  void onPacketIn(Switch& s, const ofp::PacketIn& pi) override {
    ofp::FlowMod fm;
    fm.match.inPort(pi.inPort());
    s.sendFlowMod(fm);
  }
  void onPortStatus(Switch&, const ofp::PortStatus&) override {}
  void onFlowRemoved(Switch&, const ofp::FlowRemoved&) override {}
  void onError(Switch&, std::uint32_t, const ofp::ErrorMsg&) override {}
};

std::uint16_t freePort() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

class TlsSwitch {
 public:
  TlsSwitch(std::uint16_t port, const std::string& cert, const std::string& key)
      : ctx_(makeContext(cert, key)), s_(io_, ctx_) {
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    for (int i = 0; i < 100; ++i) {
      asio::error_code ec;
      s_.lowest_layer().connect(ep, ec);
      if (!ec) break;
      s_.lowest_layer().close();
      std::this_thread::sleep_for(10ms);
    }
  }
  // The context is complete before the stream exists: an SSL object copies its settings when
  // it is created.
  static asio::ssl::context makeContext(const std::string& cert, const std::string& key) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.load_verify_file(kData + "/ca.pem");
    ctx.set_verify_mode(asio::ssl::verify_peer);
    if (!cert.empty()) {
      ctx.use_certificate_chain_file(kData + "/" + cert);
      ctx.use_private_key_file(kData + "/" + key, asio::ssl::context::pem);
    }
    return ctx;
  }

  asio::error_code handshake() {
    asio::error_code ec;
    s_.handshake(asio::ssl::stream_base::client, ec);
    return ec;
  }
  void send(const ofp::Message& m, std::uint32_t xid) {
    std::vector<std::uint8_t> b;
    ofp::encode(ofp::Version::kOf13, xid, m, b);
    asio::write(s_, asio::buffer(b));
  }
  std::optional<ofp::Decoded> recv(std::vector<std::uint8_t>& keep) {
    std::uint8_t tmp[4096];
    while (true) {
      if (auto len = ofp::frameLength(buf_); len && buf_.size() >= *len) {
        keep.assign(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(*len));
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(*len));
        auto d = ofp::decode(keep);
        if (d) return *d;
        continue;
      }
      asio::error_code ec;
      std::size_t n = s_.read_some(asio::buffer(tmp), ec);
      if (ec) return std::nullopt;
      buf_.insert(buf_.end(), tmp, tmp + n);
    }
  }
  template <class M>
  std::optional<std::pair<ofp::Header, M>> expect() {
    std::vector<std::uint8_t> keep;
    while (auto d = recv(keep))
      if (auto* m = std::get_if<M>(&d->msg)) return std::make_pair(d->header, *m);
    return std::nullopt;
  }

 private:
  asio::io_context io_;
  asio::ssl::context ctx_;
  asio::ssl::stream<asio::ip::tcp::socket> s_;
  std::vector<std::uint8_t> buf_;
};

class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freePort();
    ServerOptions o;
    o.tcp_port = 0;
    o.tls_port = port_;
    o.tls_cert = kData + "/controller.pem";
    o.tls_key = kData + "/controller.key";
    o.tls_ca = kData + "/ca.pem";
    o.threads = 1;
    o.handshake_timeout_sec = 2;
    server_ = std::make_unique<SwitchServer>(o, handler_);
    auto r = server_->start();
    ASSERT_TRUE(r) << r.error().message;
  }
  void TearDown() override { server_->stop(); }

  std::uint16_t port_ = 0;
  CountingHandler handler_;
  std::unique_ptr<SwitchServer> server_;
};

TEST_F(TlsServerTest, SwitchWithACertificateFromTheCaIsServed) {
  TlsSwitch s(port_, "switch.pem", "switch.key");
  ASSERT_FALSE(s.handshake());
  ASSERT_TRUE(s.expect<ofp::Hello>());
  s.send(ofp::Hello{1u << 4}, 1);
  auto fr = s.expect<ofp::FeaturesRequest>();
  ASSERT_TRUE(fr);
  ofp::FeaturesReply rep;
  rep.datapath_id = 0x77;
  s.send(rep, fr->first.xid);
  auto mp = s.expect<ofp::MultipartRequest>();
  ASSERT_TRUE(mp);
  s.send(ofp::MultipartReply{0, std::vector<ofp::PortDesc>{}}, mp->first.xid);
  ofp::PacketIn pi;
  pi.match.inPort(5);
  std::vector<std::uint8_t> frame(60, 1);
  pi.data = Bytes(frame);
  s.send(pi, 9);
  auto fm = s.expect<ofp::FlowMod>();
  ASSERT_TRUE(fm);
  EXPECT_EQ(fm->second.match.in_port, 5u);
  EXPECT_NE(server_->find(0x77), nullptr);
}

TEST_F(TlsServerTest, SwitchWithoutACertificateIsRefused) {
  TlsSwitch s(port_, "", "");
  // The server requires a client certificate: the handshake (or the first read) fails and no
  // switch ever comes up.
  bool failed = static_cast<bool>(s.handshake()) || !s.expect<ofp::Hello>();
  EXPECT_TRUE(failed);
  EXPECT_EQ(handler_.up.load(), 0);
}

TEST_F(TlsServerTest, SwitchWithACertificateFromAnotherCaIsRefused) {
  TlsSwitch s(port_, "rogue.pem", "rogue.key");
  bool failed = static_cast<bool>(s.handshake()) || !s.expect<ofp::Hello>();
  EXPECT_TRUE(failed);
  EXPECT_EQ(handler_.up.load(), 0);
}

TEST(TlsServerOptions, MissingCaIsAClearError) {
  CountingHandler h;
  ServerOptions o;
  o.tcp_port = 0;
  o.tls_port = freePort();
  o.tls_cert = kData + "/controller.pem";
  o.tls_key = kData + "/controller.key";
  SwitchServer s(o, h);
  auto r = s.start();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("--of-tls-ca"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace cw::sw
