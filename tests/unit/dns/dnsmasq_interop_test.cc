// Parses real answers from a real DNS server: dnsmasq, started per test on 127.0.0.1 with a
// free high port and only its own records (no upstream, no /etc/hosts, no config file). The
// queries go over UDP and TCP loopback. Skips when /usr/sbin/dnsmasq is missing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dns/build.h"
#include "dns/dns.h"
#include "test_util.h"

namespace cw::dns {
namespace {

using namespace cw::dns::testing;
using Lines = std::vector<std::string>;

constexpr const char* kDnsmasq = "/usr/sbin/dnsmasq";

std::string hex(const Buf& b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (auto v : b) {
    out += kDigits[v >> 4];
    out += kDigits[v & 0xf];
  }
  return out;
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A port free for both UDP and TCP right now (dnsmasq listens on both).
std::optional<std::uint16_t> freePort() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int u = ::socket(AF_INET, SOCK_DGRAM, 0);
    const int t = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    bool ok = ::bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
              ::getsockname(u, reinterpret_cast<sockaddr*>(&a), &len) == 0 &&
              ::bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    const std::uint16_t port = ntohs(a.sin_port);
    ::close(u);
    ::close(t);
    if (ok && port >= 1024) return port;
  }
  return std::nullopt;
}

class DnsInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kDnsmasq, X_OK) != 0)
      GTEST_SKIP() << kDnsmasq << " not installed (Debian: dnsmasq-base)";
    const auto port = freePort();
    ASSERT_TRUE(port) << "no free loopback port";
    port_ = *port;
    SvcbSpec svc;
    svc.alpn = {"h2"};
    svc.ipv4hint = {ip4("192.0.2.20"), ip4("192.0.2.21")};
    svc.ipv6hint = {ip6("2001:db8::20")};
    std::vector<std::string> args = {kDnsmasq,
                                     "--keep-in-foreground",
                                     "--conf-file=/dev/null",
                                     "--no-resolv",
                                     "--no-hosts",
                                     "--port=" + std::to_string(port_),
                                     "--listen-address=127.0.0.1",
                                     "--bind-interfaces",
                                     "--pid-file=",
                                     "--local=/example.test/",
                                     "--local-ttl=300",
                                     "--host-record=web.example.test,192.0.2.10,2001:db8::10",
                                     "--host-record=web.example.test,192.0.2.11",
                                     "--cname=www.example.test,mid.example.test",
                                     "--cname=mid.example.test,web.example.test",
                                     "--host-record=bank.test,6.6.6.6",
                                     "--dns-rr=svc.example.test,65," + hex(svcbRdata(svc))};
    // Stay the user we are: as root dnsmasq would switch to a user that may not exist here.
    if (::geteuid() == 0) args.push_back("--user=root");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execv(kDnsmasq, argv.data());
      ::_exit(127);
    }
    // Ready when it answers; 5 s is generous for a local process.
    for (int i = 0; i < 50 && !ready_; ++i)
      ready_ = udp(buildQuery(1, "web.example.test", kTypeA), 100).has_value();
    ASSERT_TRUE(ready_) << "dnsmasq did not answer on 127.0.0.1:" << port_;
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  std::optional<Buf> udp(const Buf& query, int timeout_ms) {
    const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) return std::nullopt;
    const sockaddr_in to = loopback(port_);
    std::optional<Buf> out;
    if (::sendto(s, query.data(), query.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                 sizeof to) >= 0) {
      pollfd p{s, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) == 1) {
        Buf buf(65535);
        const auto n = ::recv(s, buf.data(), buf.size(), 0);
        if (n > 0) {
          buf.resize(static_cast<std::size_t>(n));
          out = std::move(buf);
        }
      }
    }
    ::close(s);
    return out;
  }

  Answer ask(const std::string& name, std::uint16_t qtype, std::uint16_t id = 0x4242) {
    const auto reply = udp(buildQuery(id, name, qtype), 2000);
    EXPECT_TRUE(reply) << "no answer for " << name;
    if (!reply) return {};
    auto r = parseResponse(*reply);
    EXPECT_TRUE(r) << name << ": " << (r ? "" : parseErrorName(r.error())) << " in " << hex(*reply);
    if (!r) return {};
    EXPECT_EQ(r->id, id);
    return *r;
  }

  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  bool ready_ = false;
};

TEST_F(DnsInterop, CnameChainToTwoAddresses) {
  const Answer a = ask("www.example.test", kTypeA);
  EXPECT_EQ(a.rcode, kRcodeNoError);
  EXPECT_EQ(a.chain, (Lines{"www.example.test", "mid.example.test", "web.example.test"}));
  EXPECT_EQ(lines(a),
            (Lines{"mid.example.test 192.0.2.10 300", "mid.example.test 192.0.2.11 300",
                   "web.example.test 192.0.2.10 300", "web.example.test 192.0.2.11 300",
                   "www.example.test 192.0.2.10 300", "www.example.test 192.0.2.11 300"}));
}

TEST_F(DnsInterop, AaaaWithMixedCaseQuestion) {
  const Answer a = ask("WWW.Example.TEST", kTypeAaaa);
  EXPECT_EQ(a.qname, "www.example.test");
  EXPECT_EQ(a.qtype, kTypeAaaa);
  EXPECT_EQ(lines(a),
            (Lines{"mid.example.test 2001:db8::10 300", "web.example.test 2001:db8::10 300",
                   "www.example.test 2001:db8::10 300"}));
}

TEST_F(DnsInterop, HttpsHints) {
  const Answer a = ask("svc.example.test", kTypeHttps);
  EXPECT_EQ(a.skippedCount(Skip::kBadRdata), 0u);
  EXPECT_EQ(lines(a), (Lines{"svc.example.test 192.0.2.20 300", "svc.example.test 192.0.2.21 300",
                             "svc.example.test 2001:db8::20 300"}));
}

TEST_F(DnsInterop, NxDomain) {
  const Answer a = ask("nope.example.test", kTypeA);
  EXPECT_EQ(a.rcode, kRcodeNxDomain);
  EXPECT_TRUE(a.mappings.empty());
}

TEST_F(DnsInterop, OverTcpThroughTheFramer) {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  const sockaddr_in to = loopback(port_);
  ASSERT_EQ(::connect(s, reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
  // Two queries on one connection (RFC 7766 pipelining); dnsmasq answers them in order.
  Buf out = frameTcp(buildQuery(7, "www.example.test", kTypeA));
  const Buf second = frameTcp(buildQuery(8, "bank.test", kTypeA));
  out.insert(out.end(), second.begin(), second.end());
  ASSERT_EQ(::send(s, out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
  TcpFramer framer(0x7ffffff0u);
  std::uint32_t seq = 0x7ffffff0u;
  std::vector<Buf> messages;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (messages.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    pollfd p{s, POLLIN, 0};
    if (::poll(&p, 1, 200) != 1) continue;
    std::uint8_t chunk[7];  // small reads: every message spans several "segments"
    const auto n = ::recv(s, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    for (auto& m : framer.feed(seq, Bytes(chunk, static_cast<std::size_t>(n))))
      messages.push_back(std::move(m));
    seq += static_cast<std::uint32_t>(n);
  }
  ::close(s);
  ASSERT_EQ(messages.size(), 2u);
  auto first = parseResponse(messages[0]);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->id, 7);
  EXPECT_EQ(first->mappings.size(), 6u);
  auto bank = parseResponse(messages[1]);
  ASSERT_TRUE(bank);
  EXPECT_EQ(bank->id, 8);
  EXPECT_EQ(lines(*bank), (Lines{"bank.test 6.6.6.6 300"}));
  EXPECT_FALSE(framer.lost());
}

}  // namespace
}  // namespace cw::dns
