// A WireGuard configuration file as people have them (wg-quick's format), split into what
// `wg setconf` takes and what cellwall applies itself inside the environment's gateway
// namespace (docs/environments.md): the interface's addresses, DNS servers and MTU. Pure.
//
// wg-quick's other keys run commands or change the host (PreUp/PostUp/PreDown/PostDown,
// Table, SaveConfig): they are refused with the line, never run, so a configuration cannot
// touch anything outside the gateway.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "common/result.h"
#include "netdev/net_ops.h"

namespace cw::env {

struct WgConfig {
  std::string setconf;           // [Interface] and [Peer] sections with only wg(8)'s keys
  std::vector<IfAddress> addresses;  // Address = 10.8.0.2/24, fd00::2/64
  std::vector<IpAddr> dns;       // DNS = addresses (search domains go to `search`)
  std::vector<std::string> search;
  std::uint32_t mtu = 0;         // 0: not set
  std::size_t peers = 0;
};

// Errors name the line: "wg.conf:7: PostUp runs commands on the host; cellwall does not run it".
Expected<WgConfig> parseWgConfig(std::string_view text, std::string_view filename);

}  // namespace cw::env
