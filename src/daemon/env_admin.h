// Stored network environments (`cellwall env add|rm|list|show`, docs/environments.md): each is
// <state>/envs/NAME.toml, one [env.NAME] table with cellwalld.toml's keys, started at every
// start after the configuration file's. An environment of the file cannot be removed or
// replaced from the command line: the file stays the truth for what it defines.
// Control thread only.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "api/commands.h"
#include "daemon/config.h"
#include "daemon/gateways.h"
#include "netdev/net_ops.h"
#include "ovs/ovs.h"

namespace cw::daemon {

class EnvAdmin {
 public:
  EnvAdmin(const Config& cfg, Gateways& gateways, NetOps& ops) : cfg_(cfg), gateways_(gateways), ops_(ops) {}

  // At start, once the file's environments run. One that fails to start is reported (in the
  // log and in list()) and left out; the others start.
  void startStored(Ovs& ovs);
  api::Reply add(const api::EnvAdd& cmd, Ovs& ovs);
  // The caller has ended (or checked there are no) cells in it.
  api::Reply remove(const std::string& name, Ovs& ovs);
  // cells: how many cells live in each environment.
  api::Reply list(const std::map<std::string, std::uint32_t>& cells) const;
  // The stored environments' names (whether or not their files are valid), before they start:
  // their gateways from an earlier run are adopted, not swept away as stale.
  std::vector<std::string> storedNames() const;
  // Whether `name` is an environment of the file (not removable here).
  bool fromFile(const std::string& name) const;

 private:
  std::filesystem::path dir() const { return cfg_.state_dir / "envs"; }
  std::filesystem::path fileOf(const std::string& name) const { return dir() / (name + ".toml"); }

  const Config& cfg_;
  Gateways& gateways_;
  NetOps& ops_;
  std::map<std::string, std::string> failed_;  // stored environments that did not start: why
};

}  // namespace cw::daemon
