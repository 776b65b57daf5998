#include "daemon/gateways.h"

#include <spdlog/spdlog.h>

namespace cw::daemon {

Expected<EnvConfig> toEnvConfig(const EnvSpec& spec) {
  EnvConfig e;
  e.name = spec.name;
  e.pool = spec.pool;
  for (const auto& d : spec.dns) {
    auto a = IpAddr::parse(d);
    if (!a) return fail("env " + spec.name + ": dns server '" + d + "' is not an IP address");
    e.dns_upstreams.push_back(*a);
  }
  e.search = spec.search;
  for (const auto& text : spec.routes) {
    auto r = parseExtraRoute(text);
    if (!r) return fail("env " + spec.name + ": route '" + text + "' is not \"PREFIX via ADDRESS\"");
    e.routes.push_back(*r);
  }
  auto& u = e.uplink;
  std::string carrier = spec.uplink.kind;
  if (spec.uplink.kind == "wireguard" || spec.uplink.kind == "openvpn") {
    TunnelConfig t;
    t.kind = spec.uplink.kind == "wireguard" ? TunnelConfig::Kind::kWireGuard : TunnelConfig::Kind::kOpenVpn;
    t.file = spec.uplink.config;
    t.kill_switch = spec.kill_switch;
    // openvpn runs this program as its up and down scripts (cellwalld --openvpn-up).
    std::error_code ec;
    t.up_helper = std::filesystem::read_symlink("/proc/self/exe", ec);
    e.tunnel = t;
    carrier = spec.uplink.carrier;
  }
  u.kind = carrier == "netns"       ? UplinkConfig::Kind::kNetns
           : carrier == "host-nat"  ? UplinkConfig::Kind::kHost
           : carrier == "interface" ? UplinkConfig::Kind::kInterface
                                    : UplinkConfig::Kind::kUser;
  u.netns = spec.uplink.netns;
  u.ifname = spec.uplink.interface;
  if (u.kind == UplinkConfig::Kind::kUser) return e;
  if (u.kind == UplinkConfig::Kind::kInterface) {
    auto a = IfAddress::parse(spec.uplink.address);
    if (!a) return fail("env " + spec.name + ": uplink address '" + spec.uplink.address + "' is not ADDRESS/PREFIX");
    u.gateway_side = *a;
    if (!spec.uplink.next_hop.empty()) {
      auto hop = Ip4::parse(spec.uplink.next_hop);
      if (!hop) return fail("env " + spec.name + ": uplink next_hop '" + spec.uplink.next_hop + "' is not an IPv4 address");
      u.next_hop = *hop;
    }
    return e;
  }
  auto addr = [&](const std::string& text, const char* what, const std::string& fallback) -> Expected<IfAddress> {
    auto a = IfAddress::parse(text.empty() ? fallback : text);
    if (!a) return fail("env " + spec.name + ": uplink " + what + " '" + text + "' is not ADDRESS/PREFIX");
    return *a;
  };
  auto gw = addr(spec.uplink.address, "address", "10.254.0.2/30");
  if (!gw) return Unexpected(gw.error());
  auto peer = addr(spec.uplink.peer_address, "peer_address", "10.254.0.1/30");
  if (!peer) return Unexpected(peer.error());
  u.gateway_side = *gw;
  u.peer_side = *peer;
  auto hop = Ip4::parse(spec.uplink.next_hop.empty() ? peer->addr.str() : spec.uplink.next_hop);
  if (!hop) return fail("env " + spec.name + ": uplink next_hop '" + spec.uplink.next_hop + "' is not an IPv4 address");
  u.next_hop = *hop;
  return e;
}

Expected<void> Gateways::start(const EnvSpec& spec, NetOps& ops, Ovs& ovs, const std::filesystem::path& state_dir) {
  auto cfg = toEnvConfig(spec);
  if (!cfg) return Unexpected(cfg.error());
  // A gateway an earlier run left (cellwalld crashed or was killed) is taken over as it is:
  // its NAT and conntrack state, and so the connections through it, carry on.
  auto adopted = Gateway::adopt(*cfg, state_dir, ops);
  if (adopted && *adopted) {
    GatewayInfo info = (*adopted)->info();
    // Its port is still on the bridge (conf.db keeps it); this reads its number back, or
    // plugs it in again if the bridge lost it.
    auto ofport = ovs.addPort(info.ovs_ifname);
    if (ofport) {
      Entry e;
      e.port = decide::GatewayPort{spec.name, *ofport, info.mac, info.ip};
      e.pool = info.pool;
      e.gateway = std::move(adopted.value());
      e.spec = spec;
      spdlog::info("environment '{}': adopted the running gateway {} ({}) on port {}; its connections carry on",
                   spec.name, info.ip.str(), info.netns, *ofport);
      entries_.push_back(std::move(e));
      return {};
    }
    spdlog::warn("environment '{}': the running gateway is rebuilt: its port {} is not on the bridge: {}", spec.name,
                 info.ovs_ifname, ofport.error().message);
  } else if (!adopted) {
    spdlog::info("environment '{}': the gateway of the earlier run is rebuilt: {}", spec.name,
                 adopted.error().message);
  }
  auto gw = Gateway::create(*cfg, state_dir, ops);
  if (!gw) return Unexpected(gw.error());
  GatewayInfo info = (*gw)->info();
  // A port of the same name from before a crash points at the deleted veth: Open vSwitch
  // keeps its old socket until the port is removed and added again.
  (void)ovs.delPort(info.ovs_ifname);
  auto ofport = ovs.addPort(info.ovs_ifname);
  if (!ofport) {
    (void)(*gw)->destroy();
    return Unexpected(ofport.error());
  }
  Entry e;
  e.port = decide::GatewayPort{spec.name, *ofport, info.mac, info.ip};
  e.pool = info.pool;
  e.gateway = std::move(gw.value());
  e.spec = spec;
  spdlog::info("environment '{}': gateway {} ({}) on port {}, cells from {}", spec.name,
               info.ip.str(), info.netns, *ofport, info.pool.str());
  entries_.push_back(std::move(e));
  return {};
}

void Gateways::stopAll(NetOps& /*ops*/, Ovs& ovs) {
  for (auto& e : entries_) {
    (void)ovs.delPort(e.gateway->info().ovs_ifname);
    if (auto r = e.gateway->destroy(); !r)
      spdlog::warn("removing gateway of '{}': {}", e.port.env, r.error().message);
  }
  entries_.clear();
}

Expected<void> Gateways::setPublished(const std::string& env, const std::vector<Published>& ports) {
  for (auto& e : entries_)
    if (e.port.env == env) return e.gateway->setPublished(ports);
  return fail("no network environment named '" + env + "'");
}

Expected<void> Gateways::stop(const std::string& env, Ovs& ovs) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->port.env != env) continue;
    (void)ovs.delPort(it->gateway->info().ovs_ifname);
    auto r = it->gateway->destroy();
    entries_.erase(it);
    return r;
  }
  return fail("no network environment named '" + env + "'");
}

std::vector<Gateways::Replugged> Gateways::replug(Ovs& ovs) {
  std::vector<Replugged> out;
  for (auto& e : entries_) {
    Replugged r{e.gateway->info().ovs_ifname, e.port.ofport, 0, ""};
    auto p = ovs.addPort(r.ifname);
    if (p) {
      r.after = *p;
      e.port.ofport = *p;
    } else {
      r.error = p.error().message;
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::string> Gateways::supervise() {
  std::vector<std::string> events;
  const auto now = std::chrono::steady_clock::now();
  for (auto& e : entries_) {
    auto more = e.gateway->supervise(now);
    events.insert(events.end(), more.begin(), more.end());
  }
  return events;
}

const Gateways::Entry* Gateways::find(const std::string& env) const {
  for (const auto& e : entries_)
    if (e.port.env == env) return &e;
  return nullptr;
}

}  // namespace cw::daemon
