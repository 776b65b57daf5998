// The daemon's environments: one Gateway (src/env) each, plugged into the bridge.
// Control thread only.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "daemon/config.h"
#include "decide/net_view.h"
#include "env/gateway.h"
#include "netdev/net_ops.h"
#include "ovs/ovs.h"

namespace cw::daemon {

class Gateways {
 public:
  struct Entry {
    decide::GatewayPort port;
    Cidr pool;
    std::unique_ptr<Gateway> gateway;
    EnvSpec spec;
  };

  // Adopts the environment's gateway left by an earlier run when it matches the
  // configuration (Gateway::adopt), else builds it anew; either way plugs it into the bridge.
  Expected<void> start(const EnvSpec& spec, NetOps& ops, Ovs& ovs, const std::filesystem::path& state_dir);
  void stopAll(NetOps& ops, Ovs& ovs);
  // Unplugs and removes one environment's gateway.
  Expected<void> stop(const std::string& env, Ovs& ovs);
  const Entry* find(const std::string& env) const;
  Expected<void> setPublished(const std::string& env, const std::vector<Published>& ports);
  const std::vector<Entry>& all() const { return entries_; }
  // After Open vSwitch restarted: each gateway's port is read back (plugged in again if the
  // bridge lost it) and the entry follows the number it has now.
  struct Replugged {
    std::string ifname;
    std::uint32_t before = 0, after = 0;  // after 0: error says why
    std::string error;
  };
  std::vector<Replugged> replug(Ovs& ovs);
  // Every gateway's supervise() (env/gateway.h); what happened, to log.
  std::vector<std::string> supervise();

 private:
  std::vector<Entry> entries_;
};

// Turns the config's text form into the env library's typed form.
Expected<EnvConfig> toEnvConfig(const EnvSpec& spec);

}  // namespace cw::daemon
