// cellwalld: wires the parts together. Owns Open vSwitch (embedded or existing), the
// environments' gateways, the OpenFlow channel, the cells and the control socket.
//
// Threads: the control thread (run()) handles the control socket, signals and every change of
// cells/gateways, and publishes NetViews; the switch threads run the decision path and read
// the published view without locks (decide/net_view.h).
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "daemon/config.h"
#include "decide/decider.h"
#include "decide/net_view.h"
#include "switch/server.h"

namespace cw::daemon {

class Daemon final : public sw::SwitchHandler {
 public:
  explicit Daemon(Config cfg);
  ~Daemon() override;

  // Runs until SIGINT/SIGTERM or a Shutdown command; cleans up everything it created.
  Expected<void> run();

  // SwitchHandler (switch threads)
  void onSwitchUp(sw::Switch& s) override;
  void onSwitchDown(sw::Switch& s) override;
  void onPacketIn(sw::Switch& s, const ofp::PacketIn& pi) override;
  void onPortStatus(sw::Switch& s, const ofp::PortStatus& ps) override;
  void onFlowRemoved(sw::Switch& s, const ofp::FlowRemoved& fr) override;
  void onError(sw::Switch& s, std::uint32_t xid, const ofp::ErrorMsg& err) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cw::daemon
