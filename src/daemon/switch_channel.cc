#include "daemon/switch_channel.h"

#include <sys/un.h>

#include <cstdio>

namespace cw::daemon {

namespace {

std::string hexDpid(std::uint64_t dpid) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(dpid));
  return buf;
}

}  // namespace

Expected<SwitchChannel> planSwitchChannel(const Config& cfg, std::uint64_t bridge_dpid,
                                          const std::optional<std::filesystem::path>& run_dir,
                                          std::uint32_t run_dir_owner, std::uint32_t euid) {
  SwitchChannel ch;
  sw::ServerOptions& so = ch.server;
  so.tcp_address = cfg.of_address;
  so.tcp_port = cfg.of_port;
  so.threads = cfg.threads;
  so.tls_port = cfg.of_tls_port;
  so.tls_cert = cfg.of_tls_cert;
  so.tls_key = cfg.of_tls_key;
  so.tls_ca = cfg.of_tls_ca;
  auto add = [&ch](const std::string& l) {
    ch.listeners += (ch.listeners.empty() ? "" : ", ") + l;
  };

  if (run_dir) {
    const std::string name = cfg.bridge + ".cellwalld";
    so.unix_path = (*run_dir / name).string();
    if (so.unix_path.size() >= sizeof(sockaddr_un{}.sun_path))
      return fail("the OpenFlow socket path " + so.unix_path +
                  " is longer than a UNIX socket allows (" +
                  std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                  " bytes): choose a shorter --state-dir");
    so.unix_peer_uids = {0};
    if (euid != 0) so.unix_peer_uids.push_back(euid);
    if (run_dir_owner != 0 && run_dir_owner != euid) {
      // An existing Open vSwitch running as its own user owns its rundir.
      so.unix_peer_uids.push_back(run_dir_owner);
      so.unix_owner_uid = run_dir_owner;
    }
    ch.controller_target = "unix:" + name;  // relative: resolved in the switch's rundir
    so.dpid_floor[bridge_dpid] = sw::Auth::kUnixPeerCred;
    add("unix:" + so.unix_path);
  } else if (cfg.of_tls_port != 0) {
    ch.controller_target = "ssl:" + cfg.of_address + ":" + std::to_string(cfg.of_tls_port);
    so.dpid_floor[bridge_dpid] = sw::Auth::kTls;
  } else if (cfg.of_port != 0) {
    ch.controller_target = "tcp:" + cfg.of_address + ":" + std::to_string(cfg.of_port);
    ch.warnings.push_back(
        "the bridge's Open vSwitch (" + cfg.ovs_db +
        ") is not on this host and connects over plain TCP: anyone who can reach " +
        cfg.of_address + ":" + std::to_string(cfg.of_port) +
        " can pose as the bridge. Use mutual TLS (--of-tls-port, --of-tls-cert, --of-tls-key, "
        "--of-tls-ca) and drop --of-port");
  } else {
    return fail("the Open vSwitch at " + cfg.ovs_db +
                " is not reached through a UNIX socket, so it cannot connect to cellwalld's: give "
                "it mutual TLS "
                "(--of-tls-port, --of-tls-cert, --of-tls-key, --of-tls-ca, and ovs-vsctl set-ssl "
                "on that host)");
  }
  if (cfg.of_tls_port != 0) add("tls:" + cfg.of_address + ":" + std::to_string(cfg.of_tls_port));
  if (cfg.of_port != 0) {
    add("tcp:" + cfg.of_address + ":" + std::to_string(cfg.of_port) + " (unauthenticated)");
    if (run_dir)
      ch.warnings.push_back(
          "plain TCP OpenFlow listener on " + cfg.of_address + ":" + std::to_string(cfg.of_port) +
          " (--of-port / openflow_port): it is unauthenticated, so any local user can connect "
          "there and claim to be a switch. It can never take the bridge (datapath id " +
          hexDpid(bridge_dpid) +
          ", which only the UNIX socket may hold), but no switch connecting there is "
          "authenticated: use mutual TLS (--of-tls-port) for switches on other hosts");
  }
  return ch;
}

}  // namespace cw::daemon
