// How switches reach cellwalld, and how the bridge is told to: the OpenFlow listeners, who may
// connect to them, and the bridge's controller target. Decided once, at start, from the
// configuration and where the bridge's Open vSwitch runs (docs/architecture.md "Switch channel").
//
//   - A local Open vSwitch (embedded, or existing behind a unix: database) connects to a UNIX
//     socket in its rundir (Open vSwitch refuses a UNIX controller elsewhere), mode 0600,
//     peers checked by uid. The bridge's datapath id then accepts only that transport.
//   - A remote Open vSwitch connects over mutual TLS (--of-tls-port), or, if the operator
//     asks for it, plain TCP.
//   - Plain TCP listens only when configured (--of-port / openflow_port), with a warning:
//     anyone local can claim to be a switch there, though never the bridge.
//
// Pure: the caller reads the file system (the rundir's owner) and passes it in.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "daemon/config.h"
#include "switch/server.h"

namespace cw::daemon {

struct SwitchChannel {
  sw::ServerOptions server;  // listeners, peer uids, the bridge's floor
  std::string
      controller_target;  // what the bridge connects to: "unix:NAME", "ssl:..." or "tcp:..."
  std::vector<std::string> warnings;  // logged once at start
  std::string listeners;  // for the "ready" line: "unix:PATH, tcp:127.0.0.1:6653 (unauthenticated)"
};

// run_dir: Ovs::runDirFor() of the bridge's switch (nullopt: it is not on this host).
// run_dir_owner: the uid owning run_dir (an existing Open vSwitch may run as its own user).
// euid: cellwalld's.
Expected<SwitchChannel> planSwitchChannel(const Config& cfg, std::uint64_t bridge_dpid,
                                          const std::optional<std::filesystem::path>& run_dir,
                                          std::uint32_t run_dir_owner, std::uint32_t euid);

}  // namespace cw::daemon
