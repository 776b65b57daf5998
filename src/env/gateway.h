// Gateway: one network environment's way out. Each environment gets its own namespace
// cw-g-<env> holding its routing table, NAT, forward filter, uplink and DNS forwarder, so two
// environments may use the same private range and the host's routing table is never touched.
//
//   OVS port cw-g-<env> (root ns) <-veth-> cwgw0 (gateway ns): pool's first host, e.g.
//     10.200.0.1/16, fixed MAC derived from the env name; cells reach only this.
//   cwup0 (gateway ns): the uplink, one of
//     kUser  a tap served by slirp4netns (user-mode networking): the gateway's connections
//            leave as ordinary sockets of the host, from the host's own address, so no host
//            routing, forwarding or firewall state is touched. The default for desktops.
//     kNetns a veth to cw-u-<env> inside an existing namespace (tests, VPN namespaces).
//     kHost  a veth to cw-u-<env> in the root namespace, which forwards and masquerades
//            (faster, but the host must forward on its uplink too: docs/ovs.md).
//     kInterface  an interface of the host (a NIC, or a tunnel some other program made),
//            moved into the gateway and renamed cwup0 while the environment runs, then given
//            back with its name and addresses (routes it had in the host are not restored).
//   With a tunnel (env/tunnel.h) the uplink above is its carrier.
//   dnsmasq inside the gateway ns, listening only on the gateway address, forwarding to the
//     configured upstreams; supervised as a child of the daemon, pid kept in the state dir.
//
// Files: <state_dir>/env/<env>/gateway.state (what was created and the configuration it was
// built for: for crash recovery, and for adoption by a restarted daemon), dnsmasq.log.
// Ownership: the Gateway owns everything it created until destroy(); it borrows NetOps (which
// must outlive it). Dropping a Gateway without destroy() leaves it running (a restarted daemon
// adopts it, or removeStale() cleans it up). Errors name the step and the object.
// Threading: one call at a time.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <map>
#include <set>
#include <tuple>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include "common/net.h"
#include "common/result.h"
#include "env/tunnel.h"
#include "netdev/net_ops.h"

namespace cw {

struct UplinkConfig {
  enum class Kind { kNetns, kHost, kUser, kInterface };
  Kind kind = Kind::kUser;
  std::string netns;       // kNetns: the existing namespace to attach to
  std::string ifname;      // kInterface: the host's interface, moved into the gateway meanwhile
  // kNetns and kHost only (kUser: slirp4netns's fixed 10.0.2.100/24 via 10.0.2.2):
  IfAddress gateway_side;  // on cwup0 inside the gateway, e.g. 10.254.0.2/30
  IfAddress peer_side;     // on cw-u-<env> in netns (kNetns) or the root ns (kHost)
  Ip4 next_hop;            // the gateway's default route, usually peer_side's address (kInterface:
                           // 0 for a device route)
};

// A route in the gateway beyond its default: through the uplink (or a tunnel's carrier).
struct GatewayRoute {
  Cidr prefix;
  Ip4 via;
};

struct EnvConfig {
  std::string name;                    // [a-z0-9-], 1..10 characters (interface names <= 15)
  Cidr pool;                           // IPv4, /8../29: gateway = first host, cells from .2
  std::vector<IpAddr> dns_upstreams;   // servers dnsmasq forwards to, reached via the uplink
  std::vector<std::string> search;     // search domains for the cells' resolv.conf
  std::vector<GatewayRoute> routes;    // through cwup0 (a VPN's carrier: without the kill switch)
  // With a tunnel, `uplink` is its carrier: only the tunnel's own packets to its server take
  // it, and the environment's traffic and DNS go through the tunnel (docs/environments.md).
  UplinkConfig uplink;
  std::optional<TunnelConfig> tunnel;
};

struct GatewayStatus {
  std::string uplink;           // "host", "host-nat", "netns", "wireguard", "openvpn"
  bool tunnel = false;
  bool tunnel_up = false;       // device configured and routed
  bool kill_switch = false;
  unsigned tunnel_restarts = 0;
  std::string tunnel_error;     // the last restart's failure
  bool dns_running = false;
  std::vector<IpAddr> dns;      // the servers the forwarder uses now
  std::vector<std::string> search;
  std::uint32_t cell_mtu = 0;   // the MTU cells should use (a tunnel's), 0: their default
};

struct GatewayInfo {
  std::string netns;       // cw-g-<env>
  std::string ovs_ifname;  // cw-g-<env> in the root ns: the daemon plugs it into the bridge
  MacAddr mac;             // of cwgw0, the address cells send to
  Ip4 ip;                  // gateway and DNS server address for cells
  std::uint8_t prefix_length = 0;
  Cidr pool;
};

// A port of a cell reachable from the environment's uplink (`cellwall run --publish`):
// connections to the gateway's uplink address on uplink_port are forwarded to the cell.
struct Published {
  std::uint16_t uplink_port = 0;
  Ip4 cell_ip;
  std::uint16_t cell_port = 0;
  bool udp = false;
  std::string listen_addr;  // host uplink only: where on the host; empty: kUserPublishAddress
  bool operator==(const Published&) const = default;
};

class Gateway {
 public:
  static constexpr std::size_t kMaxEnvNameLength = 10;

  // Builds the whole gateway; on failure removes whatever it had created and returns the
  // first error. A leftover gateway of the same env from a crashed run is removed first.
  static Expected<std::unique_ptr<Gateway>> create(const EnvConfig& config,
                                                   const std::filesystem::path& state_dir,
                                                   NetOps& net);

  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;
  ~Gateway() = default;

  GatewayInfo info() const;
  // Whether the DNS forwarder is still running.
  bool dnsAlive();
  // Four times a second: restarts a DNS forwarder or tunnel daemon that died, follows the
  // tunnel's state (the forwarder's servers when OpenVPN pushes new ones). Returns what
  // happened, for the daemon's log.
  std::vector<std::string> supervise(std::chrono::steady_clock::time_point now);
  GatewayStatus status() const;
  // Removes everything create() made: dnsmasq, namespace (and so both veth pairs), the host
  // nft table in host mode, the state files. Keeps going past failures, reports them all.
  Expected<void> destroy();

  // After cellwalld restarted: takes over the gateway an earlier run left, as it is — its
  // namespace, veths, NAT and conntrack state, dnsmasq, slirp4netns and tunnel daemon — when
  // its state file records the same configuration (fingerprint()) and every part of it is
  // still there. Touches nothing then but the state file. Returns null when no gateway of
  // that environment was left; an error (the reason, for the log) when one was left that
  // cannot be adopted: create() then rebuilds it.
  static Expected<std::unique_ptr<Gateway>> adopt(const EnvConfig& config,
                                                  const std::filesystem::path& state_dir, NetOps& net);
  // A digest of everything the gateway is built from (a tunnel's file by its contents).
  static std::string fingerprint(const EnvConfig& config);

  // Crash recovery: removes every gateway recorded under <state_dir>/env but those of the
  // environments in `keep`. Returns the environments removed.
  static Expected<std::vector<std::string>> removeStale(const std::filesystem::path& state_dir, NetOps& net,
                                                        const std::set<std::string>& keep = {});

  static Expected<void> validate(const EnvConfig& config);
  static MacAddr macFor(const std::string& env);
  // The gateway's switch port (root namespace): cw-g-<env>.
  static std::string ifnameFor(const std::string& env) { return "cw-g-" + env; }
  // Ruleset text, exposed so tests (and docs) show exactly what is loaded.
  static std::string gatewayRuleset(const EnvConfig& config);
  static std::string hostRuleset(const EnvConfig& config);
  static std::string publishRuleset(const std::vector<Published>& ports);

  // Replaces the set of published ports. Whether a forwarded connection reaches the cell is then
  // up to the cell's inbound rules, at the switch. On the "host" uplink (slirp4netns) a port
  // listens on the host's loopback only (kUserPublishAddress), through slirp's API socket, and
  // every connection reaches the cell from slirp's host address: `from` cannot tell clients
  // apart there, so nothing is offered to the network without the user choosing host-nat.
  Expected<void> setPublished(const std::vector<Published>& ports);
  static constexpr const char* kUserPublishAddress = "127.0.0.1";
  bool hostUplink() const { return config_.uplink.kind == UplinkConfig::Kind::kUser; }
  // Where a published port listens, for messages: "127.0.0.1:8080/tcp on the host (...)".
  std::string publishedWhere(const Published& p) const;

 private:
  Gateway(EnvConfig config, std::filesystem::path dir, NetOps& net);
  Expected<void> build();
  Expected<void> startDns();
  Expected<void> startTunnel();
  // The servers the forwarder should use: the environment's own, else the tunnel's, else
  // (user-mode uplink) the host's resolver through slirp4netns.
  std::vector<IpAddr> wantedDns() const;
  Expected<void> startUserUplink();
  Expected<void> setHostForwards(const std::vector<Published>& ports);
  std::filesystem::path slirpSocket() const { return dir_ / "slirp4netns.sock"; }
  Expected<void> writeState() const;
  // Removes the gateway described by a state dir (or just by env name if the file is gone).
  static Expected<void> teardown(const std::string& env, const std::filesystem::path& dir, NetOps& net);

  EnvConfig config_;
  std::string fingerprint_;  // of config_ when built (recorded in the state file)
  std::filesystem::path dir_;
  NetOps& net_;
  pid_t dns_pid_ = 0;
  pid_t uplink_pid_ = 0;  // slirp4netns (kUser)
  std::unique_ptr<Tunnel> tunnel_;
  std::optional<LinkInfo> adopted_;  // kInterface: the host's interface as it was
  bool adopted_no_ipv6_ = false;     // and its disable_ipv6 setting
  std::vector<IpAddr> running_dns_;
  // kUser: slirp's forward id per published (udp, port, listen address).
  std::map<std::tuple<bool, std::uint16_t, std::string>, int> host_forwards_;
};

}  // namespace cw
