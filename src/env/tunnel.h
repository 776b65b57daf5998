// Tunnel: a VPN uplink (WireGuard through wireguard-go, or OpenVPN) running inside an
// environment's gateway namespace, supervised by the Gateway that owns it.
//
// Inside the gateway (docs/environments.md):
//   cw-w-<env> / cw-o-<env>  the tunnel device; the main table's default route goes through it.
//   cwup0                    the carrier, reached only through table kCarrierTable, which only
//                            packets marked kCarrierMark (the tunnel daemon's own, to its
//                            server) look up. Cell traffic and DNS never take it: the
//                            gateway's filter drops anything else leaving on the carrier (the
//                            kill switch), whatever routes exist.
// The device's name is unique per environment because wireguard-go's control socket,
// /run/wireguard/<ifname>.sock, is shared by all namespaces.
//
// WireGuard: the file is a wg-quick style configuration (env/wg_config.h); cellwall applies
// Address, DNS and MTU itself. The device is configured when start() returns.
// OpenVPN: the file is a client configuration (env/ovpn_config.h), run with cellwall's own
// device, mark and `--route-noexec`; openvpn configures the device's address inside the
// gateway, and calls `<up_helper> --openvpn-up <dir>/openvpn.up`, which records what the
// server pushed (DNS servers). poll() sees the record and routes through the device.
//
// Threading: one call at a time (the daemon's control thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include "common/net.h"
#include "common/result.h"
#include "netdev/net_ops.h"

namespace cw {

struct TunnelConfig {
  enum class Kind { kWireGuard, kOpenVpn };
  Kind kind = Kind::kWireGuard;
  std::filesystem::path file;       // the configuration file
  bool kill_switch = true;          // false: fall back to the carrier while the tunnel is down
  std::filesystem::path up_helper;  // OpenVPN: cellwalld, run as `--openvpn-up FILE`
};

class Tunnel {
 public:
  static constexpr std::uint32_t kCarrierMark = 0x6377;
  static constexpr std::uint32_t kCarrierTable = 100;

  // Reads and checks the configuration file; errors name the file and line.
  static Expected<std::unique_ptr<Tunnel>> load(const TunnelConfig& config, const std::string& env,
                                                const std::string& netns, std::filesystem::path dir,
                                                NetOps& net);
  static std::string ifnameFor(TunnelConfig::Kind kind, const std::string& env);
  static const char* daemonName(TunnelConfig::Kind kind);
  static const char* kindName(TunnelConfig::Kind kind);  // "wireguard", "openvpn"
  // After a crash: the daemon is gone (killed by pid by the gateway's teardown), but
  // wireguard-go leaves its control socket when killed.
  static void removeLeftovers(const std::string& env);

  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;
  ~Tunnel() = default;

  const std::string& ifname() const { return ifname_; }
  const TunnelConfig& config() const { return config_; }
  pid_t pid() const { return pid_; }
  // Servers from the file (WireGuard's DNS =) or pushed by the server (OpenVPN).
  const std::vector<IpAddr>& dns() const { return dns_; }
  const std::vector<std::string>& searchDomains() const { return search_; }
  // The tunnel device's MTU for the cells: WireGuard's (the file's, or wireguard-go's 1420);
  // 0 for OpenVPN, which fragments inside the tunnel by itself.
  std::uint32_t mtu() const {
    if (config_.kind != TunnelConfig::Kind::kWireGuard) return 0;
    return mtu_ != 0 ? mtu_ : kWireGuardDefaultMtu;
  }
  static constexpr std::uint32_t kWireGuardDefaultMtu = 1420;
  // The device is configured and the default route goes through it.
  bool up() const { return up_; }
  unsigned restarts() const { return restarts_; }
  // Why the last restart or routing failed ("" if none), for status.
  const std::string& lastError() const { return last_error_; }
  std::string logPath() const;

  // After cellwalld restarted: takes over the daemon an earlier run started (pid, from the
  // gateway's state file) instead of starting one, so the tunnel and the connections through it
  // carry on. Fails, touching nothing, when that daemon is gone or its device is (WireGuard).
  // OpenVPN: what the server pushed is read back from the up record.
  Expected<void> adopt(pid_t pid);
  // Starts the daemon. WireGuard: returns once the device is configured and routed.
  // OpenVPN: once the process runs; the connection comes up asynchronously (poll()).
  Expected<void> start();
  // Four times a second: restarts a daemon that died (after 1, 2, 4 ... 30 s), and routes
  // through OpenVPN's device once it is up. Returns true when up() or dns() changed.
  bool poll(std::chrono::steady_clock::time_point now);
  Expected<void> stop();

 private:
  Tunnel(TunnelConfig config, std::string env, std::string netns, std::filesystem::path dir, NetOps& net);
  Expected<void> startWireGuard();
  Expected<void> startOpenVpn();
  Expected<void> waitForProcess(const char* what);
  std::filesystem::path upRecord() const { return dir_ / "openvpn.up"; }

  TunnelConfig config_;
  std::string env_;
  std::string netns_;
  std::filesystem::path dir_;
  NetOps& net_;
  std::string ifname_;
  // WireGuard: what `wg setconf` takes, the addresses and MTU cellwall applies.
  std::string setconf_;
  std::vector<IfAddress> addresses_;
  std::uint32_t mtu_ = 0;
  std::vector<IpAddr> dns_;
  std::vector<std::string> search_;
  pid_t pid_ = 0;
  bool up_ = false;
  unsigned restarts_ = 0;
  std::string last_error_;
  std::chrono::seconds backoff_{0};
  std::chrono::steady_clock::time_point next_start_{};
  std::chrono::steady_clock::time_point started_at_{};
  std::filesystem::file_time_type record_time_{};
};

}  // namespace cw
