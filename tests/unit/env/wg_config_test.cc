// WireGuard configuration files (env/wg_config.h): what goes to `wg setconf`, what cellwall
// applies itself, and what it refuses.
#include "env/wg_config.h"

#include <gtest/gtest.h>

namespace cw::env {
namespace {

TEST(WgConfig, SplitsWhatWgTakesFromWhatCellwallApplies) {
  auto c = parseWgConfig(R"(# the office
[Interface]
PrivateKey = aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=
Address = 192.168.11.20/24, fd00:11::20/64
DNS = 192.168.11.53, office.example
MTU = 1420
ListenPort = 51820

[Peer]
PublicKey = d29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGU=
Endpoint = 10.250.9.1:51820   # the site's gateway
AllowedIPs = 0.0.0.0/0
PersistentKeepalive = 25
)",
                         "office.conf");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->addresses.size(), 2u);
  EXPECT_EQ(c->addresses[0].str(), "192.168.11.20/24");
  EXPECT_EQ(c->addresses[1].str(), "fd00:11::20/64");
  ASSERT_EQ(c->dns.size(), 1u);
  EXPECT_EQ(c->dns[0].str(), "192.168.11.53");
  EXPECT_EQ(c->search, std::vector<std::string>{"office.example"});
  EXPECT_EQ(c->mtu, 1420u);
  EXPECT_EQ(c->peers, 1u);
  EXPECT_EQ(c->setconf,
            "[Interface]\n"
            "PrivateKey = aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=\n"
            "ListenPort = 51820\n"
            "[Peer]\n"
            "PublicKey = d29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGU=\n"
            "Endpoint = 10.250.9.1:51820\n"
            "AllowedIPs = 0.0.0.0/0\n"
            "PersistentKeepalive = 25\n");
}

TEST(WgConfig, RefusesWhatWouldTouchTheHostNamingTheLine) {
  const char* base = "[Interface]\nPrivateKey = k\nAddress = 10.8.0.2/24\n";
  struct {
    std::string extra;
    const char* want;
  } cases[] = {
      {"PostUp = iptables -A FORWARD -j ACCEPT\n", "t.conf:4: PostUp runs commands on the host"},
      {"PreDown = true\n", "t.conf:4: PreDown runs commands"},
      {"Table = off\n", "t.conf:4: Table is about the host's routing"},
      {"SaveConfig = true\n", "t.conf:4: SaveConfig"},
      {"Bogus = 1\n", "t.conf:4: unknown [Interface] key 'Bogus'"},
      {"MTU = 70000\n", "t.conf:4: MTU must be"},
      {"Address = 10.8.0.2\n", "t.conf:4: Address: '10.8.0.2' is not an address with a prefix length"},
      {"[Peer]\nPublicKey = p\nBogus = 1\n", "t.conf:6: unknown [Peer] key"},
      {"[Tunnel]\n", "t.conf:4: unknown section [Tunnel]"},
  };
  for (const auto& c : cases) {
    auto r = parseWgConfig(std::string(base) + c.extra + "[Peer]\nPublicKey = p\n", "t.conf");
    ASSERT_FALSE(r) << c.extra;
    EXPECT_NE(r.error().message.find(c.want), std::string::npos) << r.error().message;
  }
}

TEST(WgConfig, ATunnelNeedsAnInterfaceAnAddressAndAPeer) {
  EXPECT_FALSE(parseWgConfig("[Peer]\nPublicKey = p\n", "t.conf"));
  EXPECT_FALSE(parseWgConfig("[Interface]\nPrivateKey = k\nAddress = 10.8.0.2/24\n", "t.conf"));
  EXPECT_FALSE(parseWgConfig("[Interface]\nPrivateKey = k\n[Peer]\nPublicKey = p\n", "t.conf"));
  EXPECT_FALSE(parseWgConfig("PrivateKey = k\n", "t.conf"));
  EXPECT_TRUE(parseWgConfig("[Interface]\nPrivateKey = k\nAddress = 10.8.0.2/24\n[Peer]\nPublicKey = p\n", "t.conf"));
}

}  // namespace
}  // namespace cw::env
