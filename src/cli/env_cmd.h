// `cellwall env list|show|add|rm` (docs/environments.md): network environments, those of
// cellwalld.toml and those stored by `env add`.
#pragma once

#include <string>
#include <vector>

#include "cli/client.h"

namespace cw::cli {

// `env add NAME ...`: the keys of an [env.NAME] table, as flags; or a file holding one table.
struct EnvAddFlags {
  std::string name;
  std::string file;  // a TOML file with one [env.NAME] table, instead of the flags
  std::string uplink = "host", config, carrier = "host";
  std::string pool, netns, interface, address, peer_address, next_hop;
  std::vector<std::string> dns, search, routes;
  bool no_kill_switch = false;
};

int envList(Client& c, bool json);
int envShow(Client& c, const std::string& name, bool json);
int envAdd(Client& c, const EnvAddFlags& flags, bool json);
int envRemove(Client& c, const std::string& name, bool force);

}  // namespace cw::cli
