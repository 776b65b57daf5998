// How switches reach cellwalld (daemon/switch_channel.h): secure by default, plain TCP only
// when asked for, and the bridge's datapath id reserved for the transport it uses.
#include "daemon/switch_channel.h"

#include <gtest/gtest.h>

namespace cw::daemon {
namespace {

constexpr std::uint64_t kBridge = 0x1234;

TEST(SwitchChannel, EmbeddedSwitchUsesOnlyTheRootOnlyUnixSocket) {
  Config cfg;
  cfg.state_dir = "/var/lib/cellwall";
  auto ch = planSwitchChannel(cfg, kBridge, std::filesystem::path("/var/lib/cellwall/ovs"), 0, 0);
  ASSERT_TRUE(ch) << ch.error().message;
  EXPECT_EQ(ch->server.tcp_port, 0);  // no TCP listener by default
  EXPECT_EQ(ch->server.tls_port, 0);
  EXPECT_EQ(ch->server.unix_path, "/var/lib/cellwall/ovs/cw-br0.cellwalld");
  // Relative: Open vSwitch resolves it in its rundir, the only place it accepts a UNIX controller.
  EXPECT_EQ(ch->controller_target, "unix:cw-br0.cellwalld");
  EXPECT_EQ(ch->server.unix_peer_uids, std::vector<std::uint32_t>{0});
  EXPECT_FALSE(ch->server.unix_owner_uid);
  ASSERT_EQ(ch->server.dpid_floor.count(kBridge), 1u);
  EXPECT_EQ(ch->server.dpid_floor.at(kBridge), sw::Auth::kUnixPeerCred);
  EXPECT_TRUE(ch->warnings.empty());
  EXPECT_EQ(ch->listeners, "unix:/var/lib/cellwall/ovs/cw-br0.cellwalld");
}

TEST(SwitchChannel, PlainTcpOnlyWhenAskedAndThenWithAWarning) {
  Config cfg;
  cfg.of_port = 6653;
  auto ch = planSwitchChannel(cfg, kBridge, std::filesystem::path("/s/ovs"), 0, 0);
  ASSERT_TRUE(ch) << ch.error().message;
  EXPECT_EQ(ch->server.tcp_port, 6653);
  EXPECT_EQ(ch->controller_target,
            "unix:cw-br0.cellwalld");  // the bridge still uses the UNIX socket
  EXPECT_EQ(ch->server.dpid_floor.at(kBridge), sw::Auth::kUnixPeerCred);
  ASSERT_EQ(ch->warnings.size(), 1u);
  EXPECT_NE(ch->warnings[0].find("any local user can connect"), std::string::npos)
      << ch->warnings[0];
  EXPECT_NE(ch->warnings[0].find("--of-tls-port"), std::string::npos) << ch->warnings[0];
  EXPECT_EQ(ch->listeners, "unix:/s/ovs/cw-br0.cellwalld, tcp:127.0.0.1:6653 (unauthenticated)");
}

TEST(SwitchChannel, AnOpenVswitchRunningAsItsOwnUserGetsTheSocket) {
  Config cfg;
  cfg.ovs_db = "unix:/run/openvswitch/db.sock";
  auto ch = planSwitchChannel(cfg, kBridge, std::filesystem::path("/run/openvswitch"), 977, 0);
  ASSERT_TRUE(ch) << ch.error().message;
  EXPECT_EQ(ch->server.unix_path, "/run/openvswitch/cw-br0.cellwalld");
  EXPECT_EQ(ch->server.unix_peer_uids, (std::vector<std::uint32_t>{0, 977}));
  EXPECT_EQ(ch->server.unix_owner_uid, 977u);
}

TEST(SwitchChannel, ARemoteSwitchNeedsTls) {
  Config cfg;
  cfg.ovs_db = "tcp:192.0.2.1:6640";
  auto none = planSwitchChannel(cfg, kBridge, std::nullopt, 0, 0);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("--of-tls-port"), std::string::npos) << none.error().message;

  cfg.of_tls_port = 6654;
  auto tls = planSwitchChannel(cfg, kBridge, std::nullopt, 0, 0);
  ASSERT_TRUE(tls) << tls.error().message;
  EXPECT_EQ(tls->controller_target, "ssl:127.0.0.1:6654");
  EXPECT_TRUE(tls->server.unix_path.empty());
  EXPECT_EQ(tls->server.dpid_floor.at(kBridge), sw::Auth::kTls);

  cfg.of_tls_port = 0;
  cfg.of_port = 6653;  // the operator insists: it works, loudly
  auto tcp = planSwitchChannel(cfg, kBridge, std::nullopt, 0, 0);
  ASSERT_TRUE(tcp) << tcp.error().message;
  EXPECT_EQ(tcp->controller_target, "tcp:127.0.0.1:6653");
  EXPECT_EQ(tcp->server.dpid_floor.count(kBridge), 0u);
  ASSERT_EQ(tcp->warnings.size(), 1u);
  EXPECT_NE(tcp->warnings[0].find("can pose as the bridge"), std::string::npos) << tcp->warnings[0];
}

TEST(SwitchChannel, ASocketPathTooLongForTheKernelIsAClearError) {
  Config cfg;
  auto ch =
      planSwitchChannel(cfg, kBridge, std::filesystem::path("/" + std::string(120, 'x')), 0, 0);
  ASSERT_FALSE(ch);
  EXPECT_NE(ch.error().message.find("choose a shorter --state-dir"), std::string::npos)
      << ch.error().message;
}

}  // namespace
}  // namespace cw::daemon
