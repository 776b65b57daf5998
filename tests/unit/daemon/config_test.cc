// cellwalld.toml's [env.NAME] tables with VPN uplinks (daemon/config.h), and their typed form
// for the env library (daemon/gateways.h).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <map>

#include "daemon/config.h"
#include "daemon/gateways.h"

namespace cw::daemon {
namespace {

class EnvConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cw-config-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    file = dir / "cellwalld.toml";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  Expected<Config> load(const std::string& text) {
    std::ofstream(file) << text;
    Config cfg;
    if (auto r = loadConfigFile(file, cfg); !r) return Unexpected(r.error());
    return cfg;
  }
  std::filesystem::path dir, file;
};

TEST_F(EnvConfigFile, WireGuardUplinkOverANamespaceCarrier) {
  auto cfg = load(R"([env.office]
pool = "10.201.0.0/24"
[env.office.uplink]
kind = "wireguard"
config = "office.conf"
carrier = "netns"
netns = "site"
address = "10.254.1.2/30"
peer_address = "10.254.1.1/30"
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  ASSERT_EQ(cfg->envs.size(), 1u);
  const auto& e = cfg->envs[0];
  EXPECT_EQ(e.uplink.config, (dir / "office.conf").string());  // relative to the file
  EXPECT_TRUE(e.kill_switch);
  auto typed = toEnvConfig(e);
  ASSERT_TRUE(typed) << typed.error().message;
  ASSERT_TRUE(typed->tunnel);
  EXPECT_EQ(typed->tunnel->kind, TunnelConfig::Kind::kWireGuard);
  EXPECT_TRUE(typed->tunnel->kill_switch);
  EXPECT_FALSE(typed->tunnel->up_helper.empty());
  EXPECT_EQ(typed->uplink.kind, UplinkConfig::Kind::kNetns);
  EXPECT_EQ(typed->uplink.netns, "site");
  EXPECT_EQ(typed->uplink.gateway_side.str(), "10.254.1.2/30");
}

TEST_F(EnvConfigFile, OpenVpnOverTheHostWithoutKillSwitch) {
  auto cfg = load("[env.vpn]\nkill_switch = false\n[env.vpn.uplink]\nkind = \"openvpn\"\nconfig = \"/etc/x.ovpn\"\n");
  ASSERT_TRUE(cfg) << cfg.error().message;
  auto typed = toEnvConfig(cfg->envs[0]);
  ASSERT_TRUE(typed && typed->tunnel);
  EXPECT_EQ(typed->tunnel->kind, TunnelConfig::Kind::kOpenVpn);
  EXPECT_EQ(typed->tunnel->file, "/etc/x.ovpn");
  EXPECT_FALSE(typed->tunnel->kill_switch);
  EXPECT_EQ(typed->uplink.kind, UplinkConfig::Kind::kUser);  // the carrier: slirp4netns
}

TEST_F(EnvConfigFile, MistakesNameTheLine) {
  const std::map<std::string, std::string> cases = {
      {"[env.a.uplink]\nkind = \"wireguard\"\n", ":1: a wireguard uplink needs config = \"FILE\""},
      {"[env.a.uplink]\nkind = \"ipsec\"\n", ":1: uplink.kind must be"},
      {"[env.a.uplink]\nkind = \"netns\"\nconfig = \"x\"\n", ":1: uplink.config is for wireguard and openvpn"},
      {"[env.a.uplink]\nkind = \"openvpn\"\nconfig = \"x\"\ncarrier = \"wireguard\"\n", ":1: uplink.carrier must be"},
      {"[env.a.uplink]\nkind = \"host\"\ncarrier = \"netns\"\n", ":1: uplink.carrier is for wireguard"},
      {"[env.a]\nkill_switch = false\n", ":2: kill_switch is for wireguard and openvpn uplinks"},
      {"[env.a]\nkill_switch = \"yes\"\n", ":2: kill_switch must be true or false"},
  };
  for (const auto& [text, message] : cases) {
    auto cfg = load(text);
    ASSERT_FALSE(cfg) << text;
    EXPECT_NE(cfg.error().message.find(file.string() + message), std::string::npos) << cfg.error().message;
  }
}

}  // namespace
}  // namespace cw::daemon
