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

TEST_F(EnvConfigFile, PlainTcpOpenFlowIsOffUnlessTheFileAsksForIt) {
  EXPECT_EQ(Config{}.of_port, 0);
  auto on = load("openflow_port = 6653\n");
  ASSERT_TRUE(on) << on.error().message;
  EXPECT_EQ(on->of_port, 6653);
  auto off = load("openflow_port = 0\n");
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_EQ(off->of_port, 0);
  auto bad = load("openflow_port = 70000\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("openflow_port must be 0..65535"), std::string::npos) << bad.error().message;
}

TEST_F(EnvConfigFile, VmAcceleratorIsAutoKvmOrTcg) {
  auto cfg = load("vm_accel = \"tcg\"\n");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->vm_accel, "tcg");
  EXPECT_EQ(Config{}.vm_accel, "auto");
  auto bad = load("vm_accel = \"hvf\"\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("vm_accel must be \"auto\", \"kvm\" or \"tcg\""), std::string::npos)
      << bad.error().message;
}

TEST_F(EnvConfigFile, WordKeysTakeTheirWordsAndSayWhichWhenNot) {
  auto cfg = load("decide = \"controller\"\nlog_switch_decided = \"off\"\nrule_counters = \"off\"\n"
                  "attribution = \"always\"\nconntrack_per_cell = 500\n");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->decide, "controller");
  EXPECT_EQ(cfg->log_switch_decided, "off");
  EXPECT_EQ(cfg->rule_counters, "off");
  EXPECT_EQ(cfg->attribution, "always");
  EXPECT_EQ(cfg->conntrack_per_cell, 500u);
  EXPECT_EQ(Config{}.log_switch_decided, "on");
  EXPECT_EQ(Config{}.conntrack_per_cell, 200000u);
  auto bad = load("log_switch_decided = true\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("log_switch_decided must be \"on\" or \"off\""), std::string::npos)
      << bad.error().message;
  auto attr = load("attribution = \"sometimes\"\n");
  ASSERT_FALSE(attr);
  EXPECT_NE(attr.error().message.find("attribution must be \"off\", \"rules\" or \"always\""), std::string::npos)
      << attr.error().message;
  auto limit = load("conntrack_per_cell = -1\n");
  ASSERT_FALSE(limit);
  EXPECT_NE(limit.error().message.find("conntrack_per_cell must be 0..100000000"), std::string::npos);
}

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

TEST_F(EnvConfigFile, StoredFormReadsBackTheSame) {
  auto cfg = load(R"([env.lab]
pool = "10.203.0.0/24"
dns = ["192.0.2.53"]
search = ["lab.example", "co\"rp\\\\x"]
routes = ["10.9.0.0/16 via 10.254.3.1"]
kill_switch = false
[env.lab.uplink]
kind = "openvpn"
config = "/etc/lab.ovpn"
carrier = "netns"
netns = "site"
address = "10.254.3.2/30"
peer_address = "10.254.3.1/30"
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  ASSERT_EQ(cfg->envs.size(), 1u);
  const auto text = envToToml(cfg->envs[0]);
  auto back = loadEnvText(text, dir / "lab.toml");
  ASSERT_TRUE(back) << back.error().message << "\n" << text;
  ASSERT_EQ(back->size(), 1u);
  const auto& a = cfg->envs[0];
  const auto& b = back->front();
  EXPECT_EQ(b.name, "lab");
  EXPECT_EQ(b.pool.str(), a.pool.str());
  EXPECT_EQ(b.dns, a.dns);
  EXPECT_EQ(b.search, a.search);
  EXPECT_EQ(b.routes, a.routes);
  EXPECT_EQ(b.kill_switch, false);
  EXPECT_EQ(b.uplink.kind, "openvpn");
  EXPECT_EQ(b.uplink.config, "/etc/lab.ovpn");
  EXPECT_EQ(b.uplink.carrier, "netns");
  EXPECT_EQ(b.uplink.netns, "site");
  EXPECT_EQ(b.uplink.address, "10.254.3.2/30");
  EXPECT_EQ(b.uplink.peer_address, "10.254.3.1/30");
  // Only environment tables in a stored file.
  EXPECT_FALSE(loadEnvText("ui_listen = \"off\"\n", dir / "x.toml"));
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
      {"[env.a]\nroutes = [\"10.9.0.0/16\"]\n", ":2: route '10.9.0.0/16' is not \"PREFIX via ADDRESS\""},
      {"[env.a]\nroutes = [\"10.9.0.0/16 via 10.0.0.1\"]\n", ":1: env.a: routes need a veth or interface uplink"},
      {"[env.a]\nroutes = [\"10.9.0.0/16 via 10.0.0.1\"]\n[env.a.uplink]\nkind = \"wireguard\"\nconfig = \"/x\"\n"
       "carrier = \"netns\"\nnetns = \"n\"\n",
       ":1: env.a: routes through the carrier bypass the tunnel"},
      {"[env.a]\nsearch = [\"a b\"]\n", ":2: 'a b' is not a domain"},
      {"[env.a.uplink]\nkind = \"interface\"\n", ":1: an interface uplink needs interface"},
  };
  for (const auto& [text, message] : cases) {
    auto cfg = load(text);
    ASSERT_FALSE(cfg) << text;
    EXPECT_NE(cfg.error().message.find(file.string() + message), std::string::npos) << cfg.error().message;
  }
}

}  // namespace
}  // namespace cw::daemon
