// OpenVPN client files (env/ovpn_config.h): what cellwall accepts and refuses, and the up
// helper's record of what the server pushed.
#include "env/ovpn_config.h"

#include <gtest/gtest.h>

#include <map>

namespace cw::env {
namespace {

constexpr const char* kClient = R"(# the office
client
dev tun
proto udp
remote vpn.example.org 1194
remote 198.51.100.7 1194 udp
nobind
remote-cert-tls server
tls-crypt ta.key
<ca>
-----BEGIN CERTIFICATE-----
up /etc/evil.sh
-----END CERTIFICATE-----
</ca>
verb 3
)";

TEST(OvpnConfig, AcceptsATlsClientAndSkipsInlineBlocks) {
  auto c = parseOpenVpnConfig(kClient, "office.ovpn");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->client);
  EXPECT_EQ(c->remotes, (std::vector<std::string>{"vpn.example.org 1194", "198.51.100.7 1194 udp"}));
}

TEST(OvpnConfig, RefusesWhatWouldLeaveTheGateway) {
  const std::map<std::string, std::string> cases = {
      {"client\nremote a 1\nsecret static.key\n", "o.ovpn:3: 'secret': static-key mode is deprecated"},
      {"client\nremote a 1\n<secret>\nx\n</secret>\n", "o.ovpn:3: <secret>: static-key mode"},
      {"client\nremote a 1\nup /bin/sh\n", "o.ovpn:3: 'up' runs a program on the host"},
      {"client\nremote a 1\n--script-security 2\n", "o.ovpn:3: 'script-security' runs a program"},
      {"client\nremote a 1\nplugin x.so\n", "o.ovpn:3: 'plugin' runs a program"},
      {"client\nremote a 1\ndev tap\n", "o.ovpn:3: 'dev tap': cellwall routes IP through the tunnel"},
      {"client\nremote a 1\nuser nobody\n", "o.ovpn:3: 'user': after dropping privileges"},
      {"client\nremote a 1\nMARK 1\n", "o.ovpn:3: 'mark' is set by cellwall"},
      {"client\nremote a 1\nmanagement 0.0.0.0 7505\n", "o.ovpn:3: 'management' is set by cellwall"},
      {"server 10.8.0.0 255.255.255.0\n", "o.ovpn:1: 'server': this is a server configuration"},
      {"client\nremote\n", "o.ovpn:2: 'remote' needs a host"},
      {"client\n", "o.ovpn: no 'remote'"},
      {"remote a 1\n", "o.ovpn: not a client configuration"},
      {"client\nremote a 1\n<ca>\nx\n", "o.ovpn: <ca> is never closed"},
  };
  for (const auto& [text, message] : cases) {
    auto c = parseOpenVpnConfig(text, "o.ovpn");
    ASSERT_FALSE(c) << text;
    EXPECT_EQ(c.error().message.substr(0, message.size()), message) << text << " -> " << c.error().message;
  }
}

TEST(OvpnConfig, UpRecordRoundTrip) {
  const std::map<std::string, std::string> env = {
      {"dev", "cw-o-office"},
      {"foreign_option_1", "dhcp-option DNS 192.168.11.53"},
      {"foreign_option_2", "dhcp-option DOMAIN office.example"},
      {"foreign_option_3", "dhcp-option DNS not-an-address"},
      {"foreign_option_4", "dhcp-option DOMAIN-SEARCH corp.example"},
      {"foreign_option_5", "route-gateway 10.8.0.1"},
      {"foreign_option_7", "dhcp-option DNS 192.0.2.1"},  // after a gap: openvpn never numbers so
  };
  auto record = openVpnUpRecord([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  auto p = parseOpenVpnUpRecord(record);
  EXPECT_EQ(p.dev, "cw-o-office");
  ASSERT_EQ(p.dns.size(), 1u);
  EXPECT_EQ(p.dns[0].str(), "192.168.11.53");
  EXPECT_EQ(p.domains, (std::vector<std::string>{"office.example", "corp.example"}));
  EXPECT_TRUE(parseOpenVpnUpRecord("").dns.empty());
}

}  // namespace
}  // namespace cw::env
