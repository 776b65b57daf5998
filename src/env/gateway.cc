#include "env/gateway.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/file.h"
#include "env/slirp_api.h"

namespace cw {

namespace {

namespace fs = std::filesystem;

constexpr const char* kCellSide = "cwgw0";  // inside the gateway ns, towards the switch
constexpr const char* kUplinkSide = "cwup0";  // inside the gateway ns, towards the uplink
constexpr auto kDnsGrace = std::chrono::seconds(3);
// slirp4netns's fixed addressing inside the namespace it serves.
constexpr const char* kUserResolver = "10.0.2.3";

std::string gatewayNetns(const std::string& env) { return "cw-g-" + env; }
std::string ovsIfname(const std::string& env) { return "cw-g-" + env; }
std::string uplinkPeer(const std::string& env) { return "cw-u-" + env; }

// nft identifiers: '-' is not allowed everywhere, and env names have no '_', so this is 1:1.
std::string hostTable(const std::string& env) {
  std::string t = "cw_" + env;
  for (auto& c : t)
    if (c == '-') c = '_';
  return t;
}

Ip4 gatewayIp(const Cidr& pool) { return Ip4{pool.addr.v4().v + 1}; }

constexpr const char* kUserNextHop = "10.0.2.2";
// Without the kill switch: the carrier's route for when the tunnel's is gone.
constexpr std::uint32_t kFallbackMetric = 1000;

struct StateFile {
  std::string mode;  // "host", "netns" or "user"
  pid_t dnsmasq_pid = 0;
  pid_t uplink_pid = 0;
  std::string tunnel;  // the tunnel daemon's name, "" without one
  pid_t tunnel_pid = 0;
  // kInterface: the host's interface, to give back as it was.
  std::string interface;
  bool interface_up = false;
  bool interface_no_ipv6 = false;
  std::vector<IfAddress> interface_addrs;
  std::string config;               // Gateway::fingerprint of the configuration it was built for
  std::vector<IpAddr> dns;          // the servers dnsmasq was started with
  // kUser: slirp's forward id per published (udp, port, listen address).
  std::map<std::tuple<bool, std::uint16_t, std::string>, int> host_forwards;
};

pid_t parsePid(const std::string& value) {
  long pid = std::strtol(value.c_str(), nullptr, 10);
  return pid > 0 && pid < (1L << 22) ? static_cast<pid_t>(pid) : 0;
}

const char* modeName(UplinkConfig::Kind k) {
  switch (k) {
    case UplinkConfig::Kind::kHost: return "host";
    case UplinkConfig::Kind::kNetns: return "netns";
    case UplinkConfig::Kind::kUser: return "user";
    case UplinkConfig::Kind::kInterface: return "interface";
  }
  return "?";
}

StateFile readState(const fs::path& path) {
  StateFile s;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto key = line.substr(0, eq);
    auto value = line.substr(eq + 1);
    if (key == "mode") s.mode = value;
    if (key == "dnsmasq_pid") s.dnsmasq_pid = parsePid(value);
    if (key == "uplink_pid") s.uplink_pid = parsePid(value);
    if (key == "tunnel") s.tunnel = value;
    if (key == "tunnel_pid") s.tunnel_pid = parsePid(value);
    if (key == "interface" && validIfName(value)) s.interface = value;
    if (key == "interface_up") s.interface_up = value == "1";
    if (key == "interface_no_ipv6") s.interface_no_ipv6 = value == "1";
    if (key == "interface_addr")
      if (auto a = IfAddress::parse(value)) s.interface_addrs.push_back(*a);
    if (key == "config") s.config = value;
    if (key == "dns")
      if (auto a = IpAddr::parse(value)) s.dns.push_back(*a);
    if (key == "hostfwd") {
      // "udp|tcp,PORT,ADDRESS,ID"
      std::istringstream in(value);
      std::string proto, port, addr, id;
      if (std::getline(in, proto, ',') && std::getline(in, port, ',') && std::getline(in, addr, ',') &&
          std::getline(in, id) && Ip4::parse(addr)) {
        long p = std::strtol(port.c_str(), nullptr, 10), n = std::strtol(id.c_str(), nullptr, 10);
        if (p > 0 && p < 65536 && n >= 0)
          s.host_forwards[std::make_tuple(proto == "udp", static_cast<std::uint16_t>(p), addr)] = static_cast<int>(n);
      }
    }
  }
  return s;
}

}  // namespace

Gateway::Gateway(EnvConfig config, fs::path dir, NetOps& net)
    : config_(std::move(config)), dir_(std::move(dir)), net_(net) {}

MacAddr Gateway::macFor(const std::string& env) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : "cellwall-gw:" + env) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  MacAddr m;
  m.b[0] = 0x02;  // locally administered, unicast
  for (std::size_t i = 1; i < 6; ++i) m.b[i] = static_cast<std::uint8_t>(h >> (8 * (i - 1)));
  return m;
}

Expected<void> Gateway::validate(const EnvConfig& c) {
  if (c.name.empty() || c.name.size() > kMaxEnvNameLength || c.name.front() == '-')
    return fail("invalid environment name '" + c.name + "': 1 to 10 characters of a-z, 0-9 and -");
  for (char ch : c.name)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
      return fail("invalid environment name '" + c.name + "': 1 to 10 characters of a-z, 0-9 and -");
  if (!c.pool.is_v4() || c.pool.length < 8 || c.pool.length > 29)
    return fail("environment " + c.name + ": address pool " + c.pool.str() + " must be IPv4, /8 to /29");
  if (!c.routes.empty() && c.uplink.kind == UplinkConfig::Kind::kUser)
    return fail("environment " + c.name + ": routes need a veth uplink (netns or host-nat)");
  if (!c.routes.empty() && c.tunnel && c.tunnel->kill_switch)
    return fail("environment " + c.name + ": routes through the carrier bypass the tunnel; they need the kill switch off");
  if (c.tunnel && c.tunnel->file.empty())
    return fail("environment " + c.name + ": the " + Tunnel::kindName(c.tunnel->kind) + " uplink needs a configuration file");
  const auto& u = c.uplink;
  if (u.kind == UplinkConfig::Kind::kUser) return {};
  if (u.kind == UplinkConfig::Kind::kInterface) {
    // Not one of cellwall's own links (a cell's, a gateway's, the bridge).
    bool ours = false;
    for (const char* p : {"cw-c", "cw-g-", "cw-u-", "cw-br", "cw-ids"}) ours = ours || u.ifname.rfind(p, 0) == 0;
    if (!validIfName(u.ifname) || u.ifname == "lo" || ours)
      return fail("environment " + c.name + ": uplink interface '" + u.ifname + "' is not a host interface's name");
    if (!u.gateway_side.addr.is_v4() || u.gateway_side.prefix_length == 0)
      return fail("environment " + c.name + ": an interface uplink needs its address, IPv4 with a prefix length");
    if (c.pool.contains(u.gateway_side.addr))
      return fail("environment " + c.name + ": uplink address overlaps the pool " + c.pool.str());
    return {};
  }
  if (!u.gateway_side.addr.is_v4() || !u.peer_side.addr.is_v4() || u.gateway_side.prefix_length == 0 ||
      u.peer_side.prefix_length == 0)
    return fail("environment " + c.name + ": uplink addresses must be IPv4 with a prefix length");
  if (u.gateway_side.addr == u.peer_side.addr)
    return fail("environment " + c.name + ": uplink gateway and peer addresses are the same");
  if (c.pool.contains(u.gateway_side.addr) || c.pool.contains(u.peer_side.addr))
    return fail("environment " + c.name + ": uplink addresses overlap the pool " + c.pool.str());
  if (u.next_hop.v == 0) return fail("environment " + c.name + ": uplink next hop is missing");
  if (u.kind == UplinkConfig::Kind::kNetns && !validNetnsName(u.netns))
    return fail("environment " + c.name + ": invalid uplink namespace '" + u.netns + "'");
  return {};
}

std::string Gateway::gatewayRuleset(const EnvConfig& c) {
  // Where cells' traffic may leave: the uplink, or with a tunnel the tunnel alone (the kill
  // switch) or the tunnel and then the carrier.
  const std::string tun = c.tunnel ? Tunnel::ifnameFor(c.tunnel->kind, c.name) : "";
  const bool kill_switch = c.tunnel && c.tunnel->kill_switch;
  auto set = [](std::vector<std::string> names) {
    if (names.size() == 1) return "\"" + names[0] + "\"";
    std::string out = "{ ";
    for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", \"" : "\"") + names[i] + "\"";
    return out + " }";
  };
  const std::string outs = !c.tunnel ? set({kUplinkSide}) : kill_switch ? set({tun}) : set({tun, kUplinkSide});
  const std::string outside = c.tunnel ? set({kUplinkSide, tun}) : set({kUplinkSide});
  std::ostringstream r;
  // Cells -> uplink and the answers back; nothing from the uplink in, and nothing hairpinned
  // from the cell side back to it (the switch alone decides cell-to-cell).
  r << "table inet cw_gw {\n"
    << "  chain input {\n"
    << "    type filter hook input priority filter; policy drop;\n"
    << "    iifname \"lo\" accept\n"
    << "    ct state established,related accept\n"
    << "    iifname \"" << kCellSide << "\" ip daddr " << gatewayIp(c.pool).str() << " udp dport 53 accept\n"
    << "    iifname \"" << kCellSide << "\" ip daddr " << gatewayIp(c.pool).str() << " tcp dport 53 accept\n"
    << "    iifname \"" << kCellSide << "\" icmp type echo-request accept\n"
    << "  }\n"
    << "  chain prerouting {\n"
    << "    type filter hook prerouting priority raw; policy accept;\n"
    // Nothing from outside may claim a cell-side address (the gateway's own included): a
    // forged "answer from the environment's resolver" must never reach a cell, where the
    // switch would take it for a real one and learn host names from it.
    << "    iifname " << outside << " ip saddr " << c.pool.str() << " drop\n"
    << "  }\n"
    << "  chain forward {\n"
    << "    type filter hook forward priority filter; policy drop;\n"
    // A TCP connection's segments fit the smaller of the two links (a tunnel's MTU is below
    // the cells' 1500): ICMP "fragmentation needed" from the gateway never reaches a cell,
    // which the switch keeps from trusting the gateway's own packets but DNS answers.
    << "    tcp flags syn / syn,rst tcp option maxseg size set rt mtu\n"
    // What conntrack cannot track (a bad L4 checksum, say) would be forwarded without NAT,
    // with the cell's own address on the uplink: never.
    << "    ct state invalid drop\n"
    << "    ct state established,related accept\n"
    // New connections from the uplink only through a published port (DNAT'ed below); the
    // switch then decides them by the cell's inbound rules.
    << "    iifname \"" << kUplinkSide << "\" oifname \"" << kCellSide << "\" ct status dnat accept\n"
    << "    iifname \"" << kCellSide << "\" oifname " << outs << " ip saddr " << c.pool.str() << " accept\n"
    << "  }\n";
  if (kill_switch) {
    // The kill switch for the gateway's own packets (the DNS forwarder's queries): only the
    // tunnel daemon's, marked, may take the carrier, whatever routes exist.
    r << "  chain output {\n"
      << "    type filter hook output priority filter; policy accept;\n"
      << "    oifname \"" << kUplinkSide << "\" meta mark != " << Tunnel::kCarrierMark << " drop\n"
      << "  }\n";
  }
  r << "}\n"
    << "table ip cw_gw_nat {\n"
    << "  chain prerouting {\n"
    << "    type nat hook prerouting priority dstnat; policy accept;\n"
    << "  }\n"
    << "  chain postrouting {\n"
    << "    type nat hook postrouting priority srcnat; policy accept;\n"
    << "    oifname " << outs << " masquerade\n"
    << "  }\n"
    << "}\n";
  return r.str();
}

std::string Gateway::publishRuleset(const std::vector<Published>& ports) {
  std::ostringstream r;
  r << "flush chain ip cw_gw_nat prerouting\n";
  for (const auto& p : ports)
    r << "add rule ip cw_gw_nat prerouting iifname \"" << kUplinkSide << "\" " << (p.udp ? "udp" : "tcp")
      << " dport " << p.uplink_port << " dnat to " << p.cell_ip.str() << ":" << p.cell_port << "\n";
  return r.str();
}

Expected<void> Gateway::setPublished(const std::vector<Published>& ports) {
  // The DNAT first: a forward that exists before its rule would reach the gateway itself.
  if (auto r = net_.nft(gatewayNetns(config_.name), publishRuleset(ports)); !r) return r;
  if (config_.uplink.kind != UplinkConfig::Kind::kUser) return {};
  return setHostForwards(ports);
}

Expected<void> Gateway::setHostForwards(const std::vector<Published>& ports) {
  SlirpApi api(slirpSocket());
  std::map<std::tuple<bool, std::uint16_t, std::string>, int> wanted;
  for (const auto& p : ports)
    wanted.emplace(std::make_tuple(p.udp, p.uplink_port,
                                   p.listen_addr.empty() ? std::string(kUserPublishAddress) : p.listen_addr),
                   -1);
  std::string errors;
  for (auto it = host_forwards_.begin(); it != host_forwards_.end();) {
    if (wanted.count(it->first) != 0) {
      ++it;
      continue;
    }
    if (auto r = api.removeHostFwd(it->second); !r) errors += r.error().message + "; ";
    it = host_forwards_.erase(it);  // slirp keeps no forward it could not find
  }
  for (const auto& [key, unused] : wanted) {
    if (host_forwards_.count(key) != 0) continue;
    const auto& [udp, port, addr] = key;
    auto id = api.addHostFwd(udp, addr, port, port);
    if (!id) {
      errors += "environment " + config_.name + ": cannot publish " + addr + ":" + std::to_string(port) +
                (udp ? "/udp" : "/tcp") + " on the host: " + id.error().message + "; ";
      continue;
    }
    host_forwards_.emplace(key, *id);
  }
  // A restarted daemon that adopts the gateway knows slirp's ids from the record.
  if (auto w = writeState(); !w) errors += w.error().message + "; ";
  if (!errors.empty()) {
    errors.resize(errors.size() - 2);
    return fail(errors);
  }
  return {};
}

std::string Gateway::publishedWhere(const Published& p) const {
  std::string port = std::to_string(p.uplink_port) + (p.udp ? "/udp" : "/tcp");
  if (!hostUplink()) return "port " + port + " of the environment's uplink";
  if (p.listen_addr.empty() || p.listen_addr == kUserPublishAddress)
    return std::string(kUserPublishAddress) + ":" + port + " on the host (loopback only: the host uplink)";
  return p.listen_addr + ":" + port + " on the host";
}

std::string Gateway::hostRuleset(const EnvConfig& c) {
  std::string table = hostTable(c.name);
  std::ostringstream r;
  // "add" then "delete" then the definition, in one transaction: replaces a stale table from
  // a crashed run atomically and works whether or not it exists.
  r << "table ip " << table << "\n"
    << "delete table ip " << table << "\n"
    << "table ip " << table << " {\n"
    << "  chain postrouting {\n"
    << "    type nat hook postrouting priority srcnat; policy accept;\n"
    << "    ip saddr " << c.uplink.gateway_side.addr.str() << " oifname != \"" << uplinkPeer(c.name)
    << "\" masquerade\n"
    << "  }\n"
    << "}\n";
  return r.str();
}

Expected<std::unique_ptr<Gateway>> Gateway::create(const EnvConfig& config, const fs::path& state_dir,
                                                   NetOps& net) {
  if (auto v = validate(config); !v) return Unexpected(v.error());
  if (config.uplink.kind == UplinkConfig::Kind::kNetns && !net.netnsExists(config.uplink.netns))
    return fail("environment " + config.name + ": uplink namespace " + config.uplink.netns + " does not exist");
  fs::path dir = state_dir / "env" / config.name;
  if (auto r = teardown(config.name, dir, net); !r)
    return fail("environment " + config.name + ": cannot remove the previous gateway: " + r.error().message);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail("cannot create state directory " + dir.string() + ": " + ec.message());

  std::unique_ptr<Gateway> gw(new Gateway(config, dir, net));
  // Once: the tunnel's file may change while the gateway runs on what it said at the start.
  gw->fingerprint_ = fingerprint(config);
  if (config.tunnel) {
    // The tunnel's file is read and checked before anything is built.
    auto t = Tunnel::load(*config.tunnel, config.name, gatewayNetns(config.name), dir, net);
    if (!t) return fail("cannot create gateway for environment " + config.name + ": " + t.error().message);
    gw->tunnel_ = std::move(*t);
  }
  if (auto r = gw->build(); !r) {
    (void)teardown(config.name, dir, net);  // best effort; the build error is the one to show
    return fail("cannot create gateway for environment " + config.name + ": " + r.error().message);
  }
  return gw;
}

Expected<void> Gateway::writeState() const {
  std::ostringstream f;
  f << "mode=" << modeName(config_.uplink.kind) << "\n"
    << "dnsmasq_pid=" << dns_pid_ << "\n"
    << "uplink_pid=" << uplink_pid_ << "\n";
  if (adopted_) {
    f << "interface=" << adopted_->name << "\ninterface_up=" << (adopted_->up ? 1 : 0) << "\n"
      << "interface_no_ipv6=" << (adopted_no_ipv6_ ? 1 : 0) << "\n";
    // Link-local IPv6 addresses come back by themselves when the link comes up.
    for (const auto& a : adopted_->addresses)
      if (a.addr.is_v4() || !Cidr::parse("fe80::/10")->contains(a.addr)) f << "interface_addr=" << a.str() << "\n";
  }
  if (tunnel_)
    f << "tunnel=" << Tunnel::daemonName(tunnel_->config().kind) << "\n"
      << "tunnel_pid=" << tunnel_->pid() << "\n";
  // What a restarted cellwalld needs to adopt this gateway as it is (adopt()).
  f << "config=" << fingerprint_ << "\n";
  for (const auto& d : running_dns_) f << "dns=" << d.str() << "\n";
  for (const auto& [key, id] : host_forwards_)
    f << "hostfwd=" << (std::get<0>(key) ? "udp" : "tcp") << "," << std::get<1>(key) << "," << std::get<2>(key)
      << "," << id << "\n";
  // Replaced whole: the supervisor rewrites it while the environment runs, and a crash in the
  // middle of a write must not leave a record without the pids teardown needs.
  return writeFileAtomically(dir_ / "gateway.state", f.str());
}

Expected<void> Gateway::build() {
  const auto& env = config_.name;
  const auto ns = gatewayNetns(env);
  const auto& up = config_.uplink;
  const bool host = up.kind == UplinkConfig::Kind::kHost;
  const auto peer = uplinkPeer(env);
  const std::string peer_ns = host ? "" : up.netns;

  // Written before anything exists, so a crash at any step below is still cleaned up.
  if (auto r = writeState(); !r) return r;
  if (auto r = net_.createNetns(ns); !r) return r;
  // Environments are IPv4 only: no IPv6 on any of the gateway's interfaces, those made or
  // moved into it later included (no link-local addresses, no router solicitations sent out
  // of the uplink).
  for (const char* scope : {"all", "default"})
    if (auto r = net_.setSysctl(ns, std::string("net.ipv6.conf.") + scope + ".disable_ipv6", "1"); !r) return r;
  if (auto r = net_.setLinkUp(ns, "lo"); !r) return r;

  // Cell side.
  if (auto r = net_.createVethPair(ovsIfname(env), kCellSide, ns, macFor(env)); !r) return r;
  if (auto r = net_.addAddress(ns, kCellSide, IfAddress{IpAddr(gatewayIp(config_.pool)), config_.pool.length}); !r)
    return r;
  if (auto r = net_.setLinkUp(ns, kCellSide); !r) return r;
  // No IPv6 on the root-side end: a link-local address would add routes to the host's
  // tables for as long as the gateway exists.
  if (auto r = net_.setSysctl("", "net.ipv6.conf." + ovsIfname(env) + ".disable_ipv6", "1"); !r) return r;
  if (auto r = net_.setLinkUp("", ovsIfname(env)); !r) return r;

  // Uplink.
  if (up.kind == UplinkConfig::Kind::kUser) {
    if (auto r = startUserUplink(); !r) return r;
    if (config_.tunnel) {
      // slirp4netns routes by default through itself; with a tunnel that route belongs to
      // the carrier's table.
      if (auto r = net_.deleteRoute(ns, "default"); !r) return r;
      if (auto r = net_.addRoute(ns, "default", IpAddr::parse(kUserNextHop), kUplinkSide, false,
                                 Tunnel::kCarrierTable);
          !r)
        return r;
      if (!config_.tunnel->kill_switch)
        if (auto r = net_.addRoute(ns, "default", IpAddr::parse(kUserNextHop), kUplinkSide, false, 0, kFallbackMetric);
            !r)
          return r;
    }
    if (auto r = net_.setSysctl(ns, "net.ipv4.ip_forward", "1"); !r) return r;
    if (auto r = net_.nft(ns, gatewayRuleset(config_)); !r) return r;
    if (auto r = net_.fillUdpChecksums(ns, kCellSide); !r) return r;
    if (auto r = startTunnel(); !r) return r;
    return startDns();
  }
  if (up.kind == UplinkConfig::Kind::kInterface) {
    // The host's interface, as it is now: recorded before the move (which removes its
    // addresses), so that teardown gives it back as it was, even after a crash.
    auto link = net_.linkInfo("", up.ifname);
    if (!link) return fail("uplink interface: " + link.error().message);
    adopted_ = *link;
    // A per-interface setting the move resets.
    std::ifstream v6("/proc/sys/net/ipv6/conf/" + up.ifname + "/disable_ipv6");
    std::string flag;
    adopted_no_ipv6_ = (v6 >> flag) && flag == "1";
    if (auto r = writeState(); !r) return r;
    if (auto r = net_.adoptLink(up.ifname, ns, kUplinkSide); !r) return r;
  } else {
    if (auto r = net_.createVethPair(peer, kUplinkSide, ns, std::nullopt); !r) return r;
    if (!host) {
      if (auto r = net_.moveLink(peer, up.netns); !r) return r;
    }
  }
  if (auto r = net_.addAddress(ns, kUplinkSide, up.gateway_side); !r) return r;
  if (auto r = net_.setLinkUp(ns, kUplinkSide); !r) return r;
  if (up.kind != UplinkConfig::Kind::kInterface) {
    if (auto r = net_.addAddress(peer_ns, peer, up.peer_side); !r) return r;
    if (auto r = net_.setLinkUp(peer_ns, peer); !r) return r;
  }
  // Without a next hop (an interface's point-to-point link): a device route.
  const bool onlink = up.next_hop.v != 0 && !up.gateway_side.network().contains(IpAddr(up.next_hop));
  const auto via = up.next_hop.v != 0 ? std::optional<IpAddr>(IpAddr(up.next_hop)) : std::nullopt;
  if (auto r = net_.addRoute(ns, "default", via, kUplinkSide, onlink, config_.tunnel ? Tunnel::kCarrierTable : 0); !r)
    return r;
  if (config_.tunnel && !config_.tunnel->kill_switch)
    if (auto r = net_.addRoute(ns, "default", via, kUplinkSide, onlink, 0, kFallbackMetric); !r) return r;
  for (const auto& route : config_.routes) {
    bool direct = up.gateway_side.network().contains(IpAddr(route.via));
    if (auto r = net_.addRoute(ns, route.prefix.str(), IpAddr(route.via), kUplinkSide, !direct); !r) return r;
  }

  // Forwarding and filtering inside the gateway.
  if (auto r = net_.setSysctl(ns, "net.ipv4.ip_forward", "1"); !r) return r;
  if (auto r = net_.nft(ns, gatewayRuleset(config_)); !r) return r;
  // cwgw0 keeps TX checksum offload on (the veth's default): what the gateway sends into the
  // switch, its own DNS answers and what it forwards from the uplink, gets its UDP checksums
  // finished here (docs/ovs.md, "Checksum offload").
  if (auto r = net_.fillUdpChecksums(ns, kCellSide); !r) return r;

  if (host) {
    // The only host state cellwall touches: forwarding on its own uplink interface and one
    // nft table of its own, both removed by destroy().
    if (auto r = net_.setSysctl("", "net.ipv4.conf." + peer + ".forwarding", "1"); !r) return r;
    if (auto r = net_.nft("", hostRuleset(config_)); !r) return r;
  }
  if (auto r = startTunnel(); !r) return r;
  return startDns();
}

Expected<void> Gateway::startTunnel() {
  if (!tunnel_) return {};
  const auto ns = gatewayNetns(config_.name);
  if (auto r = net_.addMarkRule(ns, Tunnel::kCarrierMark, Tunnel::kCarrierTable); !r) return r;
  auto r = tunnel_->start();
  // Recorded even on failure: teardown must find a daemon that started and then failed.
  if (auto w = writeState(); !w) return w;
  if (!r) return fail(std::string(Tunnel::kindName(config_.tunnel->kind)) + " uplink: " + r.error().message);
  return writeState();
}

Expected<void> Gateway::startUserUplink() {
  const auto ns = gatewayNetns(config_.name);
  Command cmd;
  // --disable-host-loopback: the gateway (and so a cell) must not reach the host's own
  // 127.0.0.1 services through the proxy.
  // --api-socket: published ports are forwarded through it (setHostForwards).
  std::error_code ec;
  fs::remove(slirpSocket(), ec);
  // --mtu=1500, the cells' own MTU: slirp's TCP sends segments as large as its link allows,
  // whatever MSS the cell announced, and a segment larger than the cell's link never arrives.
  cmd.argv = {"slirp4netns", "--configure", "--mtu=1500", "--disable-host-loopback",
              "--api-socket=" + slirpSocket().string(),
              "--netns-type=path", "/run/netns/" + ns, kUplinkSide};
  auto log = (dir_ / "slirp4netns.log").string();
  auto pid = net_.runner().spawn(cmd, log);
  if (!pid) return fail("cannot start the user-mode uplink (slirp4netns): " + pid.error().message);
  uplink_pid_ = *pid;
  if (auto r = writeState(); !r) return r;
  // Ready once cwup0 exists and is configured inside the namespace.
  for (int i = 0; i < 200; ++i) {
    auto links = net_.listLinks(ns, kUplinkSide);
    if (links && !links->empty() && links->front().up) return {};
    if (!net_.runner().alive(uplink_pid_, "slirp4netns")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return fail("the user-mode uplink (slirp4netns) did not come up; see " + log +
              " (is the slirp4netns package installed?)");
}

Expected<void> Gateway::startDns() {
  const auto ns = gatewayNetns(config_.name);
  Command cmd;
  cmd.argv = {"ip", "netns", "exec", ns, "dnsmasq",
              "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
              "--no-resolv", "--no-hosts", "--bind-interfaces",
              "--listen-address=" + gatewayIp(config_.pool).str(),
              "--log-facility=-", "--cache-size=1000"};
  running_dns_ = wantedDns();
  for (const auto& s : running_dns_) cmd.argv.push_back("--server=" + (s.is_v4() ? s.v4().str() : s.str()));
  auto log = (dir_ / "dnsmasq.log").string();
  auto pid = net_.runner().spawn(cmd, log);
  if (!pid) return fail("cannot start the DNS forwarder: " + pid.error().message);
  dns_pid_ = *pid;
  if (auto r = writeState(); !r) return r;
  // The child is "ip" until it execs dnsmasq; then dnsmasq exits at once on a bad option or
  // a busy port. Wait for it to appear, then give it a moment to fail loudly.
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    seen = net_.runner().alive(dns_pid_, "dnsmasq");
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (seen) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (!seen || !net_.runner().alive(dns_pid_, "dnsmasq"))
    return fail("the DNS forwarder (dnsmasq) exited at start; see " + log);
  return {};
}

std::string Gateway::fingerprint(const EnvConfig& c) {
  // Everything create() builds from; a tunnel's file by its contents (a key or server that
  // changed makes a new tunnel).
  std::ostringstream d;
  d << "name=" << c.name << "\npool=" << c.pool.str() << "\n";
  for (const auto& a : c.dns_upstreams) d << "dns=" << a.str() << "\n";
  for (const auto& x : c.search) d << "search=" << x << "\n";
  for (const auto& r : c.routes) d << "route=" << r.prefix.str() << " via " << r.via.str() << "\n";
  const auto& u = c.uplink;
  d << "uplink=" << modeName(u.kind) << " netns=" << u.netns << " if=" << u.ifname << " gw=" << u.gateway_side.str()
    << " peer=" << u.peer_side.str() << " hop=" << u.next_hop.str() << "\n";
  // And what it builds: a gateway made by a cellwalld whose rules differ is not adopted (one
  // from before TX offload was left on would have it off on cwgw0 and no checksum rule).
  d << gatewayRuleset(c) << hostRuleset(c) << "tx-offload=on udp-segmentation=off udp-checksum-fill\n";
  if (c.tunnel) {
    auto text = readTextFile(c.tunnel->file);
    d << "tunnel=" << Tunnel::kindName(c.tunnel->kind) << " file=" << c.tunnel->file.string()
      << " kill_switch=" << c.tunnel->kill_switch << " helper=" << c.tunnel->up_helper.string() << "\n"
      << (text ? *text : "unreadable: " + text.error().message) << "\n";
  }
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a: short, stable across builds
  for (char ch : d.str()) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

Expected<std::unique_ptr<Gateway>> Gateway::adopt(const EnvConfig& config, const fs::path& state_dir, NetOps& net) {
  fs::path dir = state_dir / "env" / config.name;
  std::error_code ec;
  if (!fs::exists(dir / "gateway.state", ec) && !net.netnsExists(gatewayNetns(config.name)))
    return std::unique_ptr<Gateway>();  // nothing from an earlier run
  if (auto v = validate(config); !v) return Unexpected(v.error());
  const auto state = readState(dir / "gateway.state");
  const auto ns = gatewayNetns(config.name);
  if (state.config.empty())
    return fail("its state file records no configuration (made by an older cellwalld, or cut short)");
  if (state.config != fingerprint(config)) return fail("its configuration changed since it was built");
  if (!net.netnsExists(ns)) return fail("its namespace " + ns + " is gone");
  auto has = [&](const std::string& in_ns, const std::string& name, bool must_be_up) -> bool {
    auto links = net.listLinks(in_ns, name);
    if (!links) return false;
    for (const auto& l : *links)
      if (l.name == name) return l.up || !must_be_up;
    return false;
  };
  if (!has("", ovsIfname(config.name), true))
    return fail("its switch-side interface " + ovsIfname(config.name) + " is gone or down");
  if (!has(ns, kCellSide, true)) return fail(std::string(kCellSide) + " in " + ns + " is gone or down");
  if (!has(ns, kUplinkSide, true))
    return fail("its uplink " + std::string(kUplinkSide) + " in " + ns + " is gone or down");
  const auto& up = config.uplink;
  if (up.kind == UplinkConfig::Kind::kNetns && !has(up.netns, uplinkPeer(config.name), false))
    return fail("the uplink's other end " + uplinkPeer(config.name) + " in " + up.netns + " is gone");
  if (up.kind == UplinkConfig::Kind::kHost && !has("", uplinkPeer(config.name), false))
    return fail("the uplink's other end " + uplinkPeer(config.name) + " is gone");
  if (auto fills = net.fillsUdpChecksums(ns); !fills || !*fills)
    return fail("its UDP checksum rule (mangle POSTROUTING, CHECKSUM --checksum-fill) is gone");
  auto& runner = net.runner();
  if (state.dnsmasq_pid == 0 || !runner.alive(state.dnsmasq_pid, "dnsmasq"))
    return fail("its DNS forwarder (dnsmasq, pid " + std::to_string(state.dnsmasq_pid) + ") is not running");
  if (up.kind == UplinkConfig::Kind::kUser && (state.uplink_pid == 0 || !runner.alive(state.uplink_pid, "slirp4netns")))
    return fail("its user-mode uplink (slirp4netns, pid " + std::to_string(state.uplink_pid) + ") is not running");

  std::unique_ptr<Gateway> gw(new Gateway(config, dir, net));
  if (config.tunnel) {
    auto t = Tunnel::load(*config.tunnel, config.name, ns, dir, net);
    if (!t) return Unexpected(t.error());
    if (auto r = (*t)->adopt(state.tunnel_pid); !r) return fail("its tunnel: " + r.error().message);
    gw->tunnel_ = std::move(*t);
  }
  gw->fingerprint_ = state.config;
  gw->dns_pid_ = state.dnsmasq_pid;
  gw->uplink_pid_ = state.uplink_pid;
  gw->running_dns_ = state.dns;
  gw->host_forwards_ = state.host_forwards;
  if (!state.interface.empty()) {
    LinkInfo link;
    link.name = state.interface;
    link.up = state.interface_up;
    link.addresses = state.interface_addrs;
    gw->adopted_ = link;
    gw->adopted_no_ipv6_ = state.interface_no_ipv6;
  }
  if (auto w = gw->writeState(); !w) return Unexpected(w.error());
  return gw;
}

GatewayInfo Gateway::info() const {
  return GatewayInfo{gatewayNetns(config_.name), ovsIfname(config_.name), macFor(config_.name),
                     gatewayIp(config_.pool), config_.pool.length, config_.pool};
}

bool Gateway::dnsAlive() { return net_.runner().alive(dns_pid_, "dnsmasq"); }

std::vector<IpAddr> Gateway::wantedDns() const {
  if (!config_.dns_upstreams.empty()) return config_.dns_upstreams;
  // A tunnel's environment never falls back to the host's resolver: its names stay in it.
  if (tunnel_) return tunnel_->dns();
  // With a user-mode uplink and no servers configured, the host's own resolver answers
  // through slirp4netns's DNS address.
  if (config_.uplink.kind == UplinkConfig::Kind::kUser) return {*IpAddr::parse(kUserResolver)};
  return {};
}

std::vector<std::string> Gateway::supervise(std::chrono::steady_clock::time_point now) {
  std::vector<std::string> events;
  const auto& env = config_.name;
  if (tunnel_) {
    const pid_t before = tunnel_->pid();
    const bool was_up = tunnel_->up();
    const unsigned attempts = tunnel_->restarts();
    if (tunnel_->poll(now) || tunnel_->pid() != before) {
      (void)writeState();
      if (was_up != tunnel_->up())
        events.push_back("environment " + env + ": tunnel " + tunnel_->ifname() +
                         (tunnel_->up() ? " is up" : " is down; its cells have no connectivity until it is back"));
      else if (tunnel_->pid() != before && tunnel_->pid() != 0)
        events.push_back("environment " + env + ": restarted " + Tunnel::daemonName(tunnel_->config().kind));
    }
    // Once per failed attempt, not at every tick of the backoff that follows it.
    if (tunnel_->restarts() != attempts && tunnel_->pid() == 0)
      events.push_back("environment " + env + ": cannot restart the tunnel: " + tunnel_->lastError());
  }
  const bool dns_dead = dns_pid_ != 0 && !dnsAlive();
  if (dns_dead || (dns_pid_ != 0 && wantedDns() != running_dns_)) {
    if (dns_pid_ != 0) (void)net_.runner().terminate(dns_pid_, kDnsGrace);
    dns_pid_ = 0;
    auto r = startDns();
    events.push_back("environment " + env + ": " + (dns_dead ? "DNS forwarder had exited; " : "DNS servers changed; ") +
                     (r ? "restarted" : "cannot restart it: " + r.error().message));
  }
  return events;
}

GatewayStatus Gateway::status() const {
  GatewayStatus s;
  switch (config_.uplink.kind) {
    case UplinkConfig::Kind::kUser: s.uplink = "host"; break;
    case UplinkConfig::Kind::kHost: s.uplink = "host-nat"; break;
    case UplinkConfig::Kind::kNetns: s.uplink = "netns"; break;
    case UplinkConfig::Kind::kInterface: s.uplink = "interface"; break;
  }
  if (tunnel_) {
    s.uplink = Tunnel::kindName(tunnel_->config().kind);
    s.tunnel = true;
    s.tunnel_up = tunnel_->up();
    s.kill_switch = tunnel_->config().kill_switch;
    s.tunnel_restarts = tunnel_->restarts();
    s.tunnel_error = tunnel_->lastError();
    s.search = tunnel_->searchDomains();
    s.cell_mtu = tunnel_->mtu();
  }
  // The environment's own domains first, then the tunnel's.
  s.search.insert(s.search.begin(), config_.search.begin(), config_.search.end());
  s.dns_running = dns_pid_ != 0;
  s.dns = running_dns_;
  return s;
}

Expected<void> Gateway::destroy() {
  auto r = teardown(config_.name, dir_, net_);
  dns_pid_ = 0;
  return r;
}

Expected<void> Gateway::teardown(const std::string& env, const fs::path& dir, NetOps& net) {
  std::string errors;
  auto state = readState(dir / "gateway.state");
  if (state.dnsmasq_pid != 0 && net.runner().alive(state.dnsmasq_pid, "dnsmasq"))
    if (auto r = net.runner().terminate(state.dnsmasq_pid, kDnsGrace); !r) errors += r.error().message + "; ";
  if (state.uplink_pid != 0 && net.runner().alive(state.uplink_pid, "slirp4netns"))
    if (auto r = net.runner().terminate(state.uplink_pid, kDnsGrace); !r) errors += r.error().message + "; ";
  if (state.tunnel_pid != 0 && !state.tunnel.empty() && net.runner().alive(state.tunnel_pid, state.tunnel))
    if (auto r = net.runner().terminate(state.tunnel_pid, kDnsGrace); !r) errors += r.error().message + "; ";
  Tunnel::removeLeftovers(env);
  if (!state.interface.empty() && net.netnsExists(gatewayNetns(env))) {
    // The host's interface goes back before the namespace (deleting it would destroy a
    // virtual device), with the addresses it had.
    auto links = net.listLinks(gatewayNetns(env), kUplinkSide);
    if (links && !links->empty()) {
      if (auto r = net.returnLink(gatewayNetns(env), kUplinkSide, state.interface, ::getpid()); !r) {
        errors += r.error().message + "; ";
      } else {
        if (state.interface_no_ipv6)
          if (auto r2 = net.setSysctl("", "net.ipv6.conf." + state.interface + ".disable_ipv6", "1"); !r2)
            errors += r2.error().message + "; ";
        for (const auto& a : state.interface_addrs)
          if (auto r2 = net.addAddress("", state.interface, a); !r2) errors += r2.error().message + "; ";
        if (state.interface_up)
          if (auto r2 = net.setLinkUp("", state.interface); !r2) errors += r2.error().message + "; ";
      }
    }
  }
  if (state.mode == "host") {
    std::string table = hostTable(env);
    if (auto r = net.nft("", "table ip " + table + "\ndelete table ip " + table + "\n"); !r)
      errors += r.error().message + "; ";
  }
  // Deleting the namespace deletes both veth pairs with it; the root-side links are checked
  // in case a crash left one half outside.
  if (auto r = net.deleteNetns(gatewayNetns(env)); !r) errors += r.error().message + "; ";
  for (const auto& link : {ovsIfname(env), uplinkPeer(env)})
    if (auto r = net.deleteLink("", link); !r) errors += r.error().message + "; ";
  if (!errors.empty()) {
    errors.resize(errors.size() - 2);
    return fail("removing gateway " + gatewayNetns(env) + " incomplete: " + errors);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return {};
}

Expected<std::vector<std::string>> Gateway::removeStale(const fs::path& state_dir, NetOps& net,
                                                         const std::set<std::string>& keep) {
  std::error_code ec;
  fs::path root = state_dir / "env";
  std::vector<std::string> removed;
  if (!fs::exists(root, ec)) return removed;
  std::string errors;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory()) continue;
    auto env = entry.path().filename().string();
    bool valid_name = !env.empty() && env.size() <= kMaxEnvNameLength;
    for (char c : env) valid_name = valid_name && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
    if (!valid_name || keep.count(env) != 0) continue;  // not ours, or to be adopted or rebuilt
    if (auto r = teardown(env, entry.path(), net); !r)
      errors += r.error().message + "; ";
    else
      removed.push_back(env);
  }
  if (!errors.empty()) {
    errors.resize(errors.size() - 2);
    return fail(errors);
  }
  return removed;
}

}  // namespace cw
