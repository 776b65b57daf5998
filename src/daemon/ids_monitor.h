// The IDS as cellwalld runs it (docs/ids.md): a monitor port on the bridge that allowed
// connections of watched cells copy their packets to, a reader thread that takes them off a
// TPACKET_V3 ring and through the signature engine, and alerts handed to the daemon.
//
// The port is one end of a veth pair whose other end lives in a namespace of its own
// (cw-ids): nothing of it shows in the host's network, and nothing there can send into it.
// Threads: start/stop on the control thread; the reader thread calls on_alerts.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "capture/ring.h"
#include "common/result.h"
#include "ids/engine.h"
#include "ids/rules.h"
#include "netdev/net_ops.h"
#include "ovs/ovs.h"

namespace cw::daemon {

class IdsMonitor {
 public:
  static constexpr const char* kNetns = "cw-ids";
  static constexpr const char* kPort = "cw-ids";  // the bridge's end

  ~IdsMonitor();

  // Compiles the rules (files, read whole; HOME_NET is the cells' address pools), makes the
  // port and starts the reader. Rules that use what is not supported are skipped and
  // reported (report()); no usable rule at all is an error.
  Expected<void> start(const std::vector<std::string>& rule_files, const std::string& home_net, NetOps& ops,
                       Ovs& ovs, std::function<void(std::vector<ids::Alert>)> on_alerts);
  // Stops the reader and removes the port and its namespace.
  void stop(NetOps& ops, Ovs& ovs);

  bool running() const { return ofport_ != 0; }
  std::uint32_t ofport() const { return ofport_; }
  const ids::LoadReport& report() const { return report_; }
  std::size_t rules() const { return rules_ ? rules_->size() : 0; }

  struct Stats {
    ids::Stats engine;
    capture::Ring::Stats ring;
  };
  Stats stats() const;

 private:
  void run(std::unique_ptr<capture::Ring> ring);

  ids::LoadReport report_;
  std::shared_ptr<const ids::RuleSet> rules_;
  std::uint32_t ofport_ = 0;
  std::function<void(std::vector<ids::Alert>)> on_alerts_;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  mutable std::mutex stats_mu_;
  Stats stats_;
};

}  // namespace cw::daemon
