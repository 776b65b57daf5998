// An OpenVPN client configuration file, checked before cellwall runs it inside an
// environment's gateway namespace (docs/environments.md). Pure.
//
// cellwall runs `openvpn --config FILE` with its own device, mark, routing and up-helper
// options. Directives that would run programs, take those over, or use the deprecated
// static-key mode are refused with their line, so that the file cannot reach outside the
// gateway or weaken the kill switch.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "common/result.h"

namespace cw::env {

struct OvpnConfig {
  std::vector<std::string> remotes;  // "host port proto" as written, for messages
  bool client = false;               // `client` or `pull`: takes pushed options
};

// Errors name the line: "office.ovpn:12: 'up' runs a program; cellwall does not run it".
Expected<OvpnConfig> parseOpenVpnConfig(std::string_view text, std::string_view filename);

}  // namespace cw::env

namespace cw::env {

// What the server pushed, as the up helper records it (`cellwalld --openvpn-up FILE`, run
// by openvpn inside the gateway) and the gateway reads it back.
struct OvpnPushed {
  std::string dev;
  std::vector<IpAddr> dns;           // dhcp-option DNS
  std::vector<std::string> domains;  // dhcp-option DOMAIN and DOMAIN-SEARCH
};

// The record's text from openvpn's script environment (foreign_option_N, dev, ...).
// getenv: the variable's value or nullptr.
std::string openVpnUpRecord(const std::function<const char*(const char*)>& getenv);
// Unknown lines and malformed addresses are skipped: the file is ours, written by the helper.
OvpnPushed parseOpenVpnUpRecord(std::string_view text);

}  // namespace cw::env
