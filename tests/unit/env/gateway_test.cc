#include "env/gateway.h"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <algorithm>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "env/slirp_api.h"
#include "netdev/fake_runner.h"

namespace cw {
namespace {

namespace fs = std::filesystem;

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state = fs::temp_directory_path() / ("cw-env-test-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(state);
    config.name = "office";
    config.pool = *Cidr::parse("10.200.0.0/16");
    config.dns_upstreams = {*IpAddr::parse("192.0.2.53"), *IpAddr::parse("192.0.2.54")};
    config.uplink.kind = UplinkConfig::Kind::kNetns;
    config.uplink.netns = "vpn";
    config.uplink.gateway_side = *IfAddress::parse("10.254.0.2/30");
    config.uplink.peer_side = *IfAddress::parse("10.254.0.1/30");
    config.uplink.next_hop = *Ip4::parse("10.254.0.1");
    runner.onOutput("netns list", R"([{"name":"vpn"}])");
  }
  void TearDown() override { fs::remove_all(state); }

  // What changed the system, without the read-only queries.
  std::vector<std::string> changes() const {
    std::vector<std::string> out;
    for (const auto& l : runner.log())
      if (l.find("-json") == std::string::npos && l.find(" -C POSTROUTING") == std::string::npos) out.push_back(l);
    return out;
  }

  fs::path state;
  EnvConfig config;
  FakeRunner runner;
  NetOps net{runner};
};

TEST_F(GatewayTest, UserUplinkRunsSlirp4netnsAndTouchesNothingOnTheHost) {
  config.uplink = UplinkConfig{};  // kUser: no addresses needed
  config.dns_upstreams.clear();
  runner.onOutput("-json link show", R"([{"ifindex":3,"ifname":"cwup0","flags":["UP"],"address":"02:00:00:00:00:09"}])");
  auto gw = Gateway::create(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  auto dir = (state / "env/office").string();
  auto slirp = runner.matching("slirp4netns");
  ASSERT_EQ(slirp.size(), 1u);
  EXPECT_EQ(slirp[0], "spawn: slirp4netns --configure --mtu=1500 --disable-host-loopback "
                      "--api-socket=" + dir + "/slirp4netns.sock "
                      "--netns-type=path /run/netns/cw-g-office cwup0 > " + dir + "/slirp4netns.log");
  // No veth uplink, no host table, no host forwarding.
  EXPECT_TRUE(runner.matching("cw-u-office").empty());
  EXPECT_TRUE(runner.matching("forwarding").empty());
  EXPECT_EQ(runner.matching("nft -f -").size(), 1u);  // the gateway's own, inside its namespace
  EXPECT_EQ(runner.matching("-A POSTROUTING -p udp -j CHECKSUM --checksum-fill").size(), 1u);
  // Without configured servers, DNS goes to the host's resolver through slirp4netns.
  auto dns = runner.matching("dnsmasq");
  ASSERT_EQ(dns.size(), 1u);
  EXPECT_NE(dns[0].find("--server=10.0.2.3"), std::string::npos) << dns[0];
  // Both supervised processes go on destroy.
  ASSERT_TRUE((*gw)->destroy());
  EXPECT_EQ(runner.matching("terminate").size(), 2u);
}

// slirp4netns's API socket, played by a thread: records each request, answers add_hostfwd
// with ids 1, 2, ... (or slirp's error for port 9999) and remove_hostfwd with success.
class FakeSlirpApi {
 public:
  explicit FakeSlirpApi(const fs::path& socket) {
    fs::create_directories(socket.parent_path());
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, socket.c_str(), sizeof a.sun_path - 1);
    ::unlink(socket.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeSlirpApi() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::vector<std::string> requests() {
    std::lock_guard l(mu_);
    return requests_;
  }

 private:
  void serve() {
    for (;;) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[1024];
      for (ssize_t n; (n = ::recv(c, buf, sizeof buf, 0)) > 0;) req.append(buf, static_cast<std::size_t>(n));
      std::string reply = R"({"return":{}})";
      if (req.find("add_hostfwd") != std::string::npos)
        reply = req.find("9999") != std::string::npos
                    ? R"({"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}})"
                    : R"({"return":{"id":)" + std::to_string(++next_id_) + "}}";
      {
        std::lock_guard l(mu_);
        requests_.push_back(req);
      }
      (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }
  int fd_ = -1;
  int next_id_ = 0;
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

TEST_F(GatewayTest, UserUplinkPublishesOnHostLoopbackThroughSlirpApi) {
  config.uplink = UplinkConfig{};
  config.dns_upstreams.clear();
  runner.onOutput("-json link show", R"([{"ifindex":3,"ifname":"cwup0","flags":["UP"],"address":"02:00:00:00:00:09"}])");
  auto gw = Gateway::create(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  const Published web{8080, *Ip4::parse("10.200.0.2"), 80, false, ""};
  const Published dns{5353, *Ip4::parse("10.200.0.3"), 53, true, ""};

  // Without slirp's socket the error says so, and nothing is claimed.
  auto none = (*gw)->setPublished({web});
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("cannot reach slirp4netns"), std::string::npos) << none.error().message;

  FakeSlirpApi slirp(state / "env/office/slirp4netns.sock");
  ASSERT_TRUE((*gw)->setPublished({web})) ;
  ASSERT_EQ(slirp.requests().size(), 1u);
  EXPECT_EQ(slirp.requests()[0],
            R"({"arguments":{"guest_port":8080,"host_addr":"127.0.0.1","host_port":8080,"proto":"tcp"},"execute":"add_hostfwd"})");
  // The DNAT inside the gateway is the same as on other uplinks.
  EXPECT_NE(runner.commands().back().stdin_text.find("tcp dport 8080 dnat to 10.200.0.2:80"),
            std::string::npos);
  EXPECT_EQ((*gw)->publishedWhere(web),
            "127.0.0.1:8080/tcp on the host (loopback only: the host uplink)");

  // Adding a port adds one forward; the existing one is kept.
  ASSERT_TRUE((*gw)->setPublished({web, dns}));
  ASSERT_EQ(slirp.requests().size(), 2u);
  EXPECT_NE(slirp.requests()[1].find(R"("proto":"udp")"), std::string::npos);
  EXPECT_NE(slirp.requests()[1].find(R"("host_port":5353)"), std::string::npos);
  // Removing one removes its forward by slirp's id (8080/tcp got id 1).
  ASSERT_TRUE((*gw)->setPublished({dns}));
  ASSERT_EQ(slirp.requests().size(), 3u);
  EXPECT_EQ(slirp.requests()[2], R"({"arguments":{"id":1},"execute":"remove_hostfwd"})");

  // slirp's refusal (the host port is taken) names the port and slirp's reason.
  auto taken = (*gw)->setPublished({dns, Published{9999, *Ip4::parse("10.200.0.2"), 99, false, ""}});
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message.find("cannot publish 127.0.0.1:9999/tcp on the host"), std::string::npos)
      << taken.error().message;
  EXPECT_NE(taken.error().message.find("slirp_add_hostfwd failed"), std::string::npos);
  // A listen address of the user's choice (`--publish ADDR:PORT:CELLPORT`).
  ASSERT_TRUE((*gw)->setPublished({dns, Published{8443, *Ip4::parse("10.200.0.2"), 443, false, "0.0.0.0"}}));
  EXPECT_NE(slirp.requests().back().find(R"("host_addr":"0.0.0.0","host_port":8443)"), std::string::npos)
      << slirp.requests().back();
  EXPECT_EQ((*gw)->publishedWhere(Published{8443, {}, 443, false, "0.0.0.0"}), "0.0.0.0:8443/tcp on the host");
  // Unpublishing everything removes what is left.
  ASSERT_TRUE((*gw)->setPublished({}));
  auto all = slirp.requests();
  ASSERT_GE(all.size(), 2u);
  std::set<std::string> last_two{all[all.size() - 2], all[all.size() - 1]};
  EXPECT_EQ(last_two, (std::set<std::string>{R"({"arguments":{"id":2},"execute":"remove_hostfwd"})",
                                             R"({"arguments":{"id":3},"execute":"remove_hostfwd"})"}));
  ASSERT_TRUE((*gw)->destroy());
}

TEST_F(GatewayTest, NetnsUplinkCommands) {
  auto gw = Gateway::create(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  auto dir = (state / "env/office").string();
  const std::vector<std::string> expected = {
      "ip netns add cw-g-office",
      "ip netns exec cw-g-office sysctl -q -w net.ipv6.conf.all.disable_ipv6=1",
      "ip netns exec cw-g-office sysctl -q -w net.ipv6.conf.default.disable_ipv6=1",
      "ip -n cw-g-office link set dev lo up",
      "ip link add cw-g-office type veth peer name cwgw0 netns cw-g-office address " + Gateway::macFor("office").str(),
      "ip -n cw-g-office addr add 10.200.0.1/16 dev cwgw0",
      "ip -n cw-g-office link set dev cwgw0 up",
      "sysctl -q -w net.ipv6.conf.cw-g-office.disable_ipv6=1",
      "ip link set dev cw-g-office up",
      "ip link add cw-u-office type veth peer name cwup0 netns cw-g-office",
      "ip link set dev cw-u-office netns vpn",
      "ip -n cw-g-office addr add 10.254.0.2/30 dev cwup0",
      "ip -n cw-g-office link set dev cwup0 up",
      "ip -n vpn addr add 10.254.0.1/30 dev cw-u-office",
      "ip -n vpn link set dev cw-u-office up",
      "ip -n cw-g-office route add default via 10.254.0.1 dev cwup0",
      "ip netns exec cw-g-office sysctl -q -w net.ipv4.ip_forward=1",
      "ip netns exec cw-g-office nft -f -",
      // TX checksum offload stays on: the kernel finishes UDP checksums as packets leave.
      "ip netns exec cw-g-office ethtool -K cwgw0 tx-udp-segmentation off",
      "ip netns exec cw-g-office iptables -w -t mangle -A POSTROUTING -p udp -j CHECKSUM --checksum-fill",
      "spawn: ip netns exec cw-g-office dnsmasq --keep-in-foreground --conf-file=/dev/null --pid-file= "
      "--no-resolv --no-hosts --bind-interfaces --listen-address=10.200.0.1 --log-facility=- --cache-size=1000 "
      "--server=192.0.2.53 --server=192.0.2.54 > " + dir + "/dnsmasq.log",
  };
  EXPECT_EQ(changes(), expected);
  EXPECT_EQ(runner.matching("nft -f -").size(), 1u);  // nothing in the root namespace

  auto info = (*gw)->info();
  EXPECT_EQ(info.netns, "cw-g-office");
  EXPECT_EQ(info.ovs_ifname, "cw-g-office");
  EXPECT_EQ(info.ip.str(), "10.200.0.1");
  EXPECT_EQ(info.prefix_length, 16);
  EXPECT_EQ(info.mac.b[0], 0x02);
  EXPECT_TRUE((*gw)->dnsAlive());

  runner.clear();
  runner.onOutput("netns list", R"([{"name":"vpn"},{"name":"cw-g-office"}])");
  ASSERT_TRUE((*gw)->destroy());
  EXPECT_EQ(changes(), (std::vector<std::string>{"terminate 4242", "ip netns del cw-g-office"}));
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(GatewayTest, ExtraRoutesGoThroughTheUplink) {
  config.routes = {GatewayRoute{*Cidr::parse("10.9.0.0/16"), *Ip4::parse("10.254.0.1")},
                   GatewayRoute{*Cidr::parse("172.20.0.0/16"), *Ip4::parse("192.0.2.1")}};
  auto gw = Gateway::create(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  EXPECT_EQ(runner.matching("route add 10.9.0.0/16"),
            std::vector<std::string>{"ip -n cw-g-office route add 10.9.0.0/16 via 10.254.0.1 dev cwup0"});
  // A next hop outside the uplink's subnet is reached on-link.
  EXPECT_EQ(runner.matching("route add 172.20.0.0/16"),
            std::vector<std::string>{"ip -n cw-g-office route add 172.20.0.0/16 via 192.0.2.1 dev cwup0 onlink"});
  // Not with slirp4netns (one way out), nor through a tunnel's carrier with the kill switch on.
  auto user = config;
  user.uplink = UplinkConfig{};
  EXPECT_FALSE(Gateway::validate(user));
  auto vpn = config;
  vpn.tunnel = TunnelConfig{TunnelConfig::Kind::kWireGuard, "/x.conf", true, ""};
  auto refused = Gateway::validate(vpn);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("bypass the tunnel"), std::string::npos);
  vpn.tunnel->kill_switch = false;
  EXPECT_TRUE(Gateway::validate(vpn));
}

TEST_F(GatewayTest, HostUplinkTouchesOnlyItsOwnHostState) {
  config.uplink.kind = UplinkConfig::Kind::kHost;
  config.uplink.netns.clear();
  auto gw = Gateway::create(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  auto root = changes();
  std::vector<std::string> root_side;
  for (const auto& l : root)
    if (l.find("cw-g-office") == std::string::npos || l.find("ip link set dev cw-g-office up") == 0)
      root_side.push_back(l);
  const std::vector<std::string> expected = {"ip link set dev cw-g-office up",
                                             "ip addr add 10.254.0.1/30 dev cw-u-office",
                                             "ip link set dev cw-u-office up",
                                             "sysctl -q -w net.ipv4.conf.cw-u-office.forwarding=1",
                                             "nft -f -"};
  EXPECT_EQ(root_side, expected);
  EXPECT_EQ(runner.commands().back().argv, (std::vector<std::string>{"ip", "netns", "exec", "cw-g-office", "dnsmasq",
                                                                     "--keep-in-foreground", "--conf-file=/dev/null",
                                                                     "--pid-file=", "--no-resolv", "--no-hosts",
                                                                     "--bind-interfaces", "--listen-address=10.200.0.1",
                                                                     "--log-facility=-", "--cache-size=1000",
                                                                     "--server=192.0.2.53", "--server=192.0.2.54"}));
  runner.clear();
  ASSERT_TRUE((*gw)->destroy());
  ASSERT_EQ(runner.matching("nft -f -").size(), 1u);
  for (const auto& c : runner.commands())
    if (c.argv[0] == "nft") {
      EXPECT_EQ(c.stdin_text, "table ip cw_office\ndelete table ip cw_office\n");
    }
}

TEST_F(GatewayTest, Rulesets) {
  EXPECT_EQ(Gateway::hostRuleset(config),
            "table ip cw_office\n"
            "delete table ip cw_office\n"
            "table ip cw_office {\n"
            "  chain postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            "    ip saddr 10.254.0.2 oifname != \"cw-u-office\" masquerade\n"
            "  }\n"
            "}\n");
  auto gw = Gateway::gatewayRuleset(config);
  EXPECT_NE(gw.find("chain forward {\n    type filter hook forward priority filter; policy drop;\n"
                    "    tcp flags syn / syn,rst tcp option maxseg size set rt mtu\n"
                    "    ct state invalid drop\n"
                    "    ct state established,related accept\n"
                    "    iifname \"cwup0\" oifname \"cwgw0\" ct status dnat accept\n"
                    "    iifname \"cwgw0\" oifname \"cwup0\" ip saddr 10.200.0.0/16 accept\n"),
            std::string::npos);
  // Nothing from the uplink may claim a cell-side source (a forged resolver answer).
  EXPECT_NE(gw.find("iifname \"cwup0\" ip saddr 10.200.0.0/16 drop"), std::string::npos);
  EXPECT_EQ(Gateway::publishRuleset({}), "flush chain ip cw_gw_nat prerouting\n");
  EXPECT_EQ(Gateway::publishRuleset({Published{18000, *Ip4::parse("10.200.0.2"), 8000, false, ""},
                                     Published{5353, *Ip4::parse("10.200.0.3"), 53, true, ""}}),
            "flush chain ip cw_gw_nat prerouting\n"
            "add rule ip cw_gw_nat prerouting iifname \"cwup0\" tcp dport 18000 dnat to 10.200.0.2:8000\n"
            "add rule ip cw_gw_nat prerouting iifname \"cwup0\" udp dport 5353 dnat to 10.200.0.3:53\n");
  EXPECT_NE(gw.find("oifname \"cwup0\" masquerade"), std::string::npos);
  EXPECT_NE(gw.find("iifname \"cwgw0\" ip daddr 10.200.0.1 udp dport 53 accept"), std::string::npos);
}

TEST_F(GatewayTest, FailureRollsBackAndNamesTheStep) {
  runner.onOutput("netns list", R"([{"name":"vpn"},{"name":"cw-g-office"}])");
  runner.onFail("ip netns exec cw-g-office nft", "/dev/stdin:3:5: Error: Could not process rule: No such file or directory\n");
  auto gw = Gateway::create(config, state, net);
  ASSERT_FALSE(gw);
  EXPECT_EQ(gw.error().message,
            "cannot create gateway for environment office: cannot load nftables rules in namespace cw-g-office: "
            "/dev/stdin:3:5: Error: Could not process rule: No such file or directory");
  EXPECT_EQ(changes().back(), "ip netns del cw-g-office");
  EXPECT_EQ(runner.matching("spawn").size(), 0u);
  EXPECT_FALSE(fs::exists(state / "env/office"));
}

TEST_F(GatewayTest, Validation) {
  auto bad = config;
  bad.name = "much-too-long";
  EXPECT_FALSE(Gateway::create(bad, state, net));
  bad = config;
  bad.name = "Office";
  EXPECT_FALSE(Gateway::create(bad, state, net));
  bad = config;
  bad.pool = *Cidr::parse("2001:db8::/64");
  EXPECT_FALSE(Gateway::create(bad, state, net));
  bad = config;
  bad.uplink.gateway_side = *IfAddress::parse("10.200.5.5/30");
  EXPECT_FALSE(Gateway::create(bad, state, net));
  bad = config;
  bad.uplink.netns = "absent";
  auto r = Gateway::create(bad, state, net);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "environment office: uplink namespace absent does not exist");
  EXPECT_TRUE(changes().empty());
}

TEST_F(GatewayTest, RemoveStaleUsesRecordedState) {
  fs::create_directories(state / "env/home");
  std::ofstream(state / "env/home/gateway.state") << "mode=host\ndnsmasq_pid=777\n";
  fs::create_directories(state / "env/NotOurs");
  runner.live_[777] = "dnsmasq";
  runner.onOutput("netns list", R"([{"name":"cw-g-home"}])");
  runner.onOutput("-json link show", R"([{"ifindex":9,"ifname":"cw-u-home"}])");
  ASSERT_TRUE(Gateway::removeStale(state, net));
  EXPECT_EQ(changes(), (std::vector<std::string>{"terminate 777", "nft -f -", "ip netns del cw-g-home",
                                                 "ip link del dev cw-u-home"}));
  EXPECT_FALSE(fs::exists(state / "env/home"));
}

TEST_F(GatewayTest, RemoveStaleKeepsTheEnvironmentsStillConfigured) {
  for (const char* env : {"home", "office"}) {
    fs::create_directories(state / "env" / env);
    std::ofstream(state / "env" / env / "gateway.state") << "mode=netns\ndnsmasq_pid=0\n";
  }
  auto removed = Gateway::removeStale(state, net, {"office"});
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, std::vector<std::string>{"home"});
  EXPECT_FALSE(fs::exists(state / "env/home"));
  EXPECT_TRUE(fs::exists(state / "env/office/gateway.state"));
  EXPECT_TRUE(runner.matching("office").empty());
}

// A gateway a killed daemon left, as the host shows it: namespace, both veths up, dnsmasq.
class GatewayAdoptTest : public GatewayTest {
 protected:
  void leftRunning() {
    runner.onOutput("netns list", R"([{"name":"vpn"},{"name":"cw-g-office"}])");
    runner.onOutput("ip -json link show", R"([{"ifindex":7,"ifname":"cw-g-office","flags":["UP"]}])");
    runner.onOutput("ip -n cw-g-office -json link show",
                    R"([{"ifindex":2,"ifname":"cwgw0","flags":["UP"]},{"ifindex":3,"ifname":"cwup0","flags":["UP"]},)"
                    R"({"ifindex":4,"ifname":"cw-w-office","flags":["UP"]}])");
    runner.onOutput("ip -n vpn -json link show", R"([{"ifindex":5,"ifname":"cw-u-office","flags":["UP"]}])");
  }
  std::unique_ptr<Gateway> built() {
    auto gw = Gateway::create(config, state, net);
    EXPECT_TRUE(gw) << gw.error().message;
    runner.clear();
    return gw ? std::move(*gw) : nullptr;
  }
};

TEST_F(GatewayAdoptTest, ARunningGatewayIsAdoptedWithoutTouchingIt) {
  EXPECT_EQ(Gateway::adopt(config, state, net).value(), nullptr);  // nothing left yet
  auto first = built();
  ASSERT_TRUE(first);
  const pid_t dnsmasq = runner.next_pid_ - 1;
  first.reset();  // cellwalld is killed: the gateway runs on
  leftRunning();
  auto gw = Gateway::adopt(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  ASSERT_NE(*gw, nullptr);
  EXPECT_TRUE(changes().empty()) << changes().front();  // looked, changed nothing
  EXPECT_TRUE((*gw)->dnsAlive());
  EXPECT_EQ((*gw)->status().dns, config.dns_upstreams);  // the servers it runs with, from the record
  // Supervised as before: the same dnsmasq, no restart (its servers are the wanted ones).
  EXPECT_TRUE((*gw)->supervise(std::chrono::steady_clock::now()).empty());
  EXPECT_TRUE(changes().empty());
  ASSERT_TRUE((*gw)->destroy());
  EXPECT_EQ(runner.matching("terminate " + std::to_string(dnsmasq)).size(), 1u);
}

TEST_F(GatewayAdoptTest, WhatDoesNotMatchIsNotAdoptedAndSaysWhy) {
  auto first = built();
  ASSERT_TRUE(first);
  const pid_t dnsmasq = runner.next_pid_ - 1;
  first.reset();
  leftRunning();
  auto why = [&](const EnvConfig& c) {
    auto r = Gateway::adopt(c, state, net);
    return r ? std::string(*r ? "adopted" : "nothing") : r.error().message;
  };
  auto other = config;
  other.dns_upstreams.pop_back();
  EXPECT_EQ(why(other), "its configuration changed since it was built");
  other = config;
  other.uplink.peer_side = *IfAddress::parse("10.254.0.5/30");
  EXPECT_EQ(why(other), "its configuration changed since it was built");

  runner.onOutput("ip -n vpn -json link show", "[]");
  EXPECT_EQ(why(config), "the uplink's other end cw-u-office in vpn is gone");
  leftRunning();
  runner.onOutput("ip -n cw-g-office -json link show", R"([{"ifindex":2,"ifname":"cwgw0","flags":[]}])");
  EXPECT_EQ(why(config), "cwgw0 in cw-g-office is gone or down");
  leftRunning();
  // Its checksum rule flushed (or a gateway an older cellwalld built with TX offload off).
  runner.onFail(" -C POSTROUTING", "iptables: Bad rule (does a matching rule exist in that chain?).", 1, 1);
  EXPECT_EQ(why(config), "its UDP checksum rule (mangle POSTROUTING, CHECKSUM --checksum-fill) is gone");
  runner.live_.erase(dnsmasq);
  EXPECT_EQ(why(config), "its DNS forwarder (dnsmasq, pid " + std::to_string(dnsmasq) + ") is not running");
  runner.live_[dnsmasq] = "dnsmasq";
  EXPECT_EQ(why(config), "adopted");
  // A record without a configuration (an older cellwalld's): rebuilt.
  std::ofstream(state / "env/office/gateway.state") << "mode=netns\ndnsmasq_pid=" << dnsmasq << "\n";
  EXPECT_EQ(why(config), "its state file records no configuration (made by an older cellwalld, or cut short)");
  EXPECT_TRUE(changes().empty());
}

TEST_F(GatewayAdoptTest, AHostUplinkKeepsItsPublishedPortsAcrossAdoption) {
  config.uplink = UplinkConfig{};  // kUser: slirp4netns
  config.dns_upstreams.clear();
  runner.onOutput("-json link show", R"([{"ifindex":3,"ifname":"cwup0","flags":["UP"]}])");
  auto first = built();
  ASSERT_TRUE(first);
  FakeSlirpApi slirp(state / "env/office/slirp4netns.sock");
  const Published web{8080, *Ip4::parse("10.200.0.2"), 80, false, ""};
  ASSERT_TRUE(first->setPublished({web}));
  ASSERT_EQ(slirp.requests().size(), 1u);
  first.reset();
  leftRunning();
  auto gw = Gateway::adopt(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  ASSERT_NE(*gw, nullptr);
  // The restarted daemon publishes the same port again: slirp already forwards it.
  ASSERT_TRUE((*gw)->setPublished({web}));
  EXPECT_EQ(slirp.requests().size(), 1u);
  // And knows its id to take it back.
  ASSERT_TRUE((*gw)->setPublished({}));
  ASSERT_EQ(slirp.requests().size(), 2u);
  EXPECT_EQ(slirp.requests()[1], R"({"arguments":{"id":1},"execute":"remove_hostfwd"})");
}

TEST_F(GatewayAdoptTest, ATunnelIsAdoptedWithItsDaemonAndAChangedFileIsNot) {
  fs::create_directories(state);
  auto file = state / "office.conf";
  const std::string text = "[Interface]\nPrivateKey = aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=\n"
                           "Address = 10.66.0.2/32\nDNS = 192.168.11.53\n"
                           "[Peer]\nPublicKey = d29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGU=\n"
                           "Endpoint = 172.31.0.2:51820\nAllowedIPs = 0.0.0.0/0\n";
  std::ofstream(file) << text;
  config.dns_upstreams.clear();
  config.tunnel = TunnelConfig{TunnelConfig::Kind::kWireGuard, file, true, ""};
  auto first = built();
  ASSERT_TRUE(first);
  const pid_t wg = runner.next_pid_ - 2;  // spawned before dnsmasq
  ASSERT_EQ(runner.live_[wg], "wireguard-go");
  first.reset();
  leftRunning();
  auto gw = Gateway::adopt(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  ASSERT_NE(*gw, nullptr);
  EXPECT_TRUE((*gw)->status().tunnel_up);
  EXPECT_EQ((*gw)->status().dns, std::vector<IpAddr>{*IpAddr::parse("192.168.11.53")});
  EXPECT_TRUE((*gw)->supervise(std::chrono::steady_clock::now()).empty());  // nothing restarted
  EXPECT_TRUE(changes().empty());
  gw->reset();

  // The tunnel's daemon died with nobody watching: rebuilt.
  runner.live_.erase(wg);
  auto dead = Gateway::adopt(config, state, net);
  ASSERT_FALSE(dead);
  EXPECT_EQ(dead.error().message, "its tunnel: wireguard-go (pid " + std::to_string(wg) + ") is not running");
  runner.live_[wg] = "wireguard-go";
  // The file changed (another server, key): rebuilt, whatever runs.
  std::ofstream(file) << text << "PersistentKeepalive = 25\n";
  auto changed = Gateway::adopt(config, state, net);
  ASSERT_FALSE(changed);
  EXPECT_EQ(changed.error().message, "its configuration changed since it was built");
}

// A WireGuard uplink over a veth carrier: the carrier's route lives in its own table, which
// only the tunnel's marked packets use; the default route goes through the tunnel.
TEST_F(GatewayTest, WireGuardUplinkRoutesThroughTheTunnel) {
  fs::create_directories(state);
  auto file = state / "office.conf";
  std::ofstream(file) << "[Interface]\nPrivateKey = aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=\n"
                         "Address = 10.66.0.2/32\nDNS = 192.168.11.53, office.example\nMTU = 1380\n"
                         "[Peer]\nPublicKey = d29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGU=\n"
                         "Endpoint = 172.31.0.2:51820\nAllowedIPs = 0.0.0.0/0\n";
  config.dns_upstreams.clear();
  config.tunnel = TunnelConfig{TunnelConfig::Kind::kWireGuard, file, true, ""};
  auto gw = Gateway::create(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  auto dir = (state / "env/office").string();
  auto all = changes();
  auto from = std::find(all.begin(), all.end(), "ip -n vpn link set dev cw-u-office up");
  ASSERT_NE(from, all.end());
  const std::vector<std::string> expected = {
      "ip -n vpn link set dev cw-u-office up",
      "ip -n cw-g-office route add default via 10.254.0.1 dev cwup0 table 100",
      "ip netns exec cw-g-office sysctl -q -w net.ipv4.ip_forward=1",
      "ip netns exec cw-g-office nft -f -",
      "ip netns exec cw-g-office ethtool -K cwgw0 tx-udp-segmentation off",
      "ip netns exec cw-g-office iptables -w -t mangle -A POSTROUTING -p udp -j CHECKSUM --checksum-fill",
      "ip -n cw-g-office rule add fwmark 25463 table 100",
      "spawn: ip netns exec cw-g-office wireguard-go -f cw-w-office > " + dir + "/wireguard.log",
      "ip netns exec cw-g-office wg show cw-w-office",
      "ip netns exec cw-g-office wg setconf cw-w-office " + dir + "/wg-setconf.conf",
      "ip -n cw-g-office addr add 10.66.0.2/32 dev cw-w-office",
      "ip -n cw-g-office link set dev cw-w-office mtu 1380",
      "ip -n cw-g-office link set dev cw-w-office up",
      "ip -n cw-g-office route add default dev cw-w-office",
      // The file's DNS server, reached through the tunnel; never the host's resolver.
      "spawn: ip netns exec cw-g-office dnsmasq --keep-in-foreground --conf-file=/dev/null --pid-file= "
      "--no-resolv --no-hosts --bind-interfaces --listen-address=10.200.0.1 --log-facility=- --cache-size=1000 "
      "--server=192.168.11.53 > " + dir + "/dnsmasq.log",
  };
  EXPECT_EQ(std::vector<std::string>(from, all.end()), expected);
  // The mark comes with the configuration, before the first handshake.
  std::ifstream conf(state / "env/office/wg-setconf.conf");
  std::string text((std::istreambuf_iterator<char>(conf)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.substr(0, 27), "[Interface]\nFwMark = 25463\n");
  // The private key is readable by root only.
  auto perms = fs::status(state / "env/office/wg-setconf.conf").permissions();
  EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
  auto st = (*gw)->status();
  EXPECT_EQ(st.uplink, "wireguard");
  EXPECT_TRUE(st.tunnel_up);
  EXPECT_TRUE(st.kill_switch);
  EXPECT_EQ(st.search, std::vector<std::string>{"office.example"});
  EXPECT_EQ(st.cell_mtu, 1380u);  // the file's MTU, for the cells' links

  // The kill switch: cells leave only through the tunnel, the gateway's own packets only
  // marked through the carrier.
  auto rules = Gateway::gatewayRuleset(config);
  EXPECT_NE(rules.find("iifname \"cwgw0\" oifname \"cw-w-office\" ip saddr 10.200.0.0/16 accept"), std::string::npos);
  EXPECT_EQ(rules.find("oifname \"cwup0\" ip saddr"), std::string::npos);
  EXPECT_NE(rules.find("oifname \"cwup0\" meta mark != 25463 drop"), std::string::npos);
  EXPECT_NE(rules.find("iifname { \"cwup0\", \"cw-w-office\" } ip saddr 10.200.0.0/16 drop"), std::string::npos);
  EXPECT_NE(rules.find("oifname \"cw-w-office\" masquerade"), std::string::npos);

  // wireguard-go dies: the supervisor starts it again at once, and backs off after that.
  runner.clear();
  runner.live_.clear();
  auto now = std::chrono::steady_clock::now();
  auto events = (*gw)->supervise(now);
  EXPECT_EQ(runner.matching("spawn: ip netns exec cw-g-office wireguard-go").size(), 1u);
  EXPECT_EQ(runner.matching("wg setconf").size(), 1u);
  EXPECT_EQ(runner.matching("dnsmasq").size(), 1u);  // it had died with everything else
  EXPECT_EQ((*gw)->status().tunnel_restarts, 1u);
  runner.clear();
  runner.live_.erase(runner.next_pid_ - 2);  // the new wireguard-go
  (void)(*gw)->supervise(now + std::chrono::milliseconds(100));
  EXPECT_TRUE(runner.matching("wireguard-go").empty());  // waits a second first
  EXPECT_FALSE((*gw)->status().tunnel_up);
  (void)(*gw)->supervise(now + std::chrono::milliseconds(1200));
  EXPECT_EQ(runner.matching("wireguard-go").size(), 1u);
  EXPECT_TRUE((*gw)->status().tunnel_up);
  ASSERT_FALSE(events.empty());

  runner.clear();
  ASSERT_TRUE((*gw)->destroy());
  EXPECT_EQ(runner.matching("terminate").size(), 2u);  // dnsmasq and wireguard-go
}

// A restart that fails is reported once per attempt, not at every tick of its backoff, and
// its error goes once a restart works.
TEST_F(GatewayTest, AFailedTunnelRestartIsReportedOncePerAttempt) {
  fs::create_directories(state);
  auto file = state / "office.conf";
  std::ofstream(file) << "[Interface]\nPrivateKey = aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=\n"
                         "Address = 10.66.0.2/32\n[Peer]\nPublicKey = d29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGU=\n"
                         "Endpoint = 172.31.0.2:51820\nAllowedIPs = 0.0.0.0/0\n";
  config.tunnel = TunnelConfig{TunnelConfig::Kind::kWireGuard, file, true, ""};
  auto gw = Gateway::create(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  for (auto it = runner.live_.begin(); it != runner.live_.end();)
    it = it->second == "wireguard-go" ? runner.live_.erase(it) : std::next(it);
  runner.onFail("wg setconf", "Line unrecognized");
  auto failures = [](const std::vector<std::string>& events) {
    return std::count_if(events.begin(), events.end(),
                         [](const std::string& e) { return e.find("cannot restart the tunnel") != std::string::npos; });
  };
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(failures((*gw)->supervise(t0)), 1);
  EXPECT_EQ((*gw)->status().tunnel_error.find("cannot configure cw-w-office"), 0u) << (*gw)->status().tunnel_error;
  EXPECT_EQ(failures((*gw)->supervise(t0 + std::chrono::milliseconds(250))), 0);  // waiting out the backoff
  EXPECT_EQ(failures((*gw)->supervise(t0 + std::chrono::milliseconds(500))), 0);
  EXPECT_EQ(failures((*gw)->supervise(t0 + std::chrono::milliseconds(1250))), 1);  // the next attempt
  runner.onOutput("wg setconf", "");
  auto events = (*gw)->supervise(t0 + std::chrono::seconds(4));
  EXPECT_EQ(failures(events), 0);
  EXPECT_TRUE((*gw)->status().tunnel_up);
  EXPECT_EQ((*gw)->status().tunnel_error, "");
  EXPECT_EQ((*gw)->status().tunnel_restarts, 3u);
}

TEST_F(GatewayTest, WithoutKillSwitchTheCarrierIsAFallback) {
  fs::create_directories(state);
  auto file = state / "office.conf";
  std::ofstream(file) << "[Interface]\nPrivateKey = aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=\n"
                         "Address = 10.66.0.2/32\n[Peer]\nPublicKey = d29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGU=\n"
                         "Endpoint = 172.31.0.2:51820\nAllowedIPs = 0.0.0.0/0\n";
  config.tunnel = TunnelConfig{TunnelConfig::Kind::kWireGuard, file, false, ""};
  auto gw = Gateway::create(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  EXPECT_EQ(runner.matching("route add default via 10.254.0.1 dev cwup0 metric 1000").size(), 1u);
  auto rules = Gateway::gatewayRuleset(config);
  EXPECT_NE(rules.find("oifname { \"cw-w-office\", \"cwup0\" } ip saddr 10.200.0.0/16 accept"), std::string::npos);
  EXPECT_EQ(rules.find("meta mark"), std::string::npos);
  // The environment's own servers win over the file's.
  EXPECT_EQ(runner.matching("--server=192.0.2.53 --server=192.0.2.54").size(), 1u);
}

TEST_F(GatewayTest, TunnelConfigurationErrorsStopTheBuild) {
  fs::create_directories(state);
  auto file = state / "office.conf";
  std::ofstream(file) << "[Interface]\nPrivateKey = x\nAddress = 10.66.0.2/32\nPostUp = iptables -F\n[Peer]\n";
  config.tunnel = TunnelConfig{TunnelConfig::Kind::kWireGuard, file, true, ""};
  auto gw = Gateway::create(config, state, net);
  ASSERT_FALSE(gw);
  EXPECT_NE(gw.error().message.find(file.string() + ":4: PostUp runs commands on the host"), std::string::npos)
      << gw.error().message;
  EXPECT_TRUE(changes().empty());  // checked before anything was built
  config.tunnel->file = state / "missing.conf";
  gw = Gateway::create(config, state, net);
  ASSERT_FALSE(gw);
  EXPECT_NE(gw.error().message.find("cannot read " + (state / "missing.conf").string()), std::string::npos);
}

// OpenVPN: cellwall's own device, mark and up helper; routed once the helper's record says
// the tunnel is up, with the servers it pushed.
TEST_F(GatewayTest, OpenVpnUplinkFollowsTheUpHelper) {
  fs::create_directories(state);
  auto file = state / "office.ovpn";
  std::ofstream(file) << "client\nremote 172.31.0.2 1194\nproto udp\n<ca>\nx\n</ca>\n";
  config.dns_upstreams.clear();
  config.tunnel = TunnelConfig{TunnelConfig::Kind::kOpenVpn, file, true, "/usr/sbin/cellwalld"};
  auto gw = Gateway::create(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  auto dir = state / "env/office";
  auto spawn = runner.matching("spawn: ip netns exec cw-g-office openvpn");
  ASSERT_EQ(spawn.size(), 1u);
  EXPECT_EQ(spawn[0], "spawn: ip netns exec cw-g-office openvpn --cd " + state.string() + " --connect-retry 1 5 --config " +
                          (dir / "openvpn.conf").string() +
                          " --dev cw-o-office --dev-type tun --route-noexec --mark 25463 --script-security 2"
                          " --up /usr/sbin/cellwalld --openvpn-up " + (dir / "openvpn.up").string() +
                          " --down /usr/sbin/cellwalld --openvpn-down " + (dir / "openvpn.up").string() +
                          " --up-restart > " + (dir / "openvpn.log").string());
  EXPECT_FALSE((*gw)->status().tunnel_up);
  auto dns = runner.matching("dnsmasq");
  ASSERT_EQ(dns.size(), 1u);
  EXPECT_EQ(dns[0].find("--server"), std::string::npos);  // nothing until the server pushes

  std::ofstream(dir / "openvpn.up") << "dev=cw-o-office\ndns=192.168.11.53\ndomain=office.example\n";
  runner.clear();
  auto events = (*gw)->supervise(std::chrono::steady_clock::now());
  EXPECT_EQ(changes(), (std::vector<std::string>{
                           "ip -n cw-g-office route del default",
                           "ip -n cw-g-office route add default dev cw-o-office",
                           "terminate 4243",
                           "spawn: ip netns exec cw-g-office dnsmasq --keep-in-foreground --conf-file=/dev/null "
                           "--pid-file= --no-resolv --no-hosts --bind-interfaces --listen-address=10.200.0.1 "
                           "--log-facility=- --cache-size=1000 --server=192.168.11.53 > " +
                               (dir / "dnsmasq.log").string()}));
  EXPECT_TRUE((*gw)->status().tunnel_up);
  EXPECT_EQ((*gw)->status().search, std::vector<std::string>{"office.example"});
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0], "environment office: tunnel cw-o-office is up");

  fs::remove(dir / "openvpn.up");  // the down helper
  events = (*gw)->supervise(std::chrono::steady_clock::now());
  EXPECT_FALSE((*gw)->status().tunnel_up);
  EXPECT_NE(events.at(0).find("is down"), std::string::npos);
}

// A host interface as the uplink: moved in and renamed, given back with its addresses.
TEST_F(GatewayTest, InterfaceUplinkIsGivenBackAsItWas) {
  config.uplink = UplinkConfig{};
  config.uplink.kind = UplinkConfig::Kind::kInterface;
  config.uplink.ifname = "eth1";
  config.uplink.gateway_side = *IfAddress::parse("192.0.2.10/24");
  runner.onOutput("-json addr show dev eth1",
                  R"([{"ifindex":4,"ifname":"eth1","flags":["BROADCAST","UP"],"address":"02:00:00:00:00:04",)"
                  R"("addr_info":[{"family":"inet","local":"192.0.2.77","prefixlen":24},)"
                  R"({"family":"inet6","local":"fe80::1","prefixlen":64}]}])");
  auto gw = Gateway::create(config, state, net);
  ASSERT_TRUE(gw) << gw.error().message;
  auto all = changes();
  auto from = std::find(all.begin(), all.end(), "ip link set dev eth1 netns cw-g-office");
  ASSERT_NE(from, all.end());
  EXPECT_EQ(std::vector<std::string>(from, from + 5),
            (std::vector<std::string>{"ip link set dev eth1 netns cw-g-office",
                                      "ip -n cw-g-office link set dev eth1 name cwup0",
                                      "ip -n cw-g-office addr add 192.0.2.10/24 dev cwup0",
                                      "ip -n cw-g-office link set dev cwup0 up",
                                      "ip -n cw-g-office route add default dev cwup0"}));
  EXPECT_TRUE(runner.matching("veth").size() == 1u);  // the cell side only

  runner.clear();
  runner.onOutput("netns list", R"([{"name":"cw-g-office"}])");
  runner.onOutput("-n cw-g-office -json link show", R"([{"ifindex":4,"ifname":"cwup0","flags":["UP"]}])");
  ASSERT_TRUE((*gw)->destroy());
  const auto back = changes();
  auto give = std::find(back.begin(), back.end(), "ip -n cw-g-office link set dev cwup0 down name eth1");
  ASSERT_NE(give, back.end());
  EXPECT_EQ(*(give + 1), "ip -n cw-g-office link set dev eth1 netns " + std::to_string(::getpid()));
  EXPECT_EQ(*(give + 2), "ip addr add 192.0.2.77/24 dev eth1");
  EXPECT_EQ(*(give + 3), "ip link set dev eth1 up");  // fe80::1 comes back by itself
  EXPECT_EQ(back.back(), "ip netns del cw-g-office");  // only after it is out

  config.uplink.ifname = "cw-g-x";
  EXPECT_FALSE(Gateway::validate(config));
}

TEST(GatewayMac, StableLocalUnicast) {
  auto a = Gateway::macFor("office");
  EXPECT_EQ(a, Gateway::macFor("office"));
  EXPECT_NE(a, Gateway::macFor("home"));
  EXPECT_EQ(a.b[0], 0x02);
}

}  // namespace
}  // namespace cw
