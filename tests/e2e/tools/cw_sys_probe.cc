// cw_sys_probe: drives src/ovs, src/netdev and src/env against the real system for
// tests/e2e/test_ovs_netdev.py. Builds an embedded OVS bridge, one environment gateway with a
// netns uplink, and one cell namespace plugged into the bridge; prints what it made as JSON
// on one line; waits for a line on stdin; removes everything and prints a final JSON line.
//
// usage: cw_sys_probe --state DIR --bridge cw-brX --env NAME --pool CIDR --uplink-netns NS
//                     --uplink-gw ADDR/LEN --uplink-peer ADDR/LEN --cell-netns NS --cell-if IF
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "env/gateway.h"
#include "netdev/net_ops.h"
#include "netdev/system_runner.h"
#include "ovs/ovs.h"

namespace {

int die(const std::string& what) {
  std::cout << nlohmann::json{{"error", what}}.dump() << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  for (const char* k : {"--state", "--bridge", "--env", "--pool", "--uplink-netns", "--uplink-gw", "--uplink-peer",
                        "--cell-netns", "--cell-if"})
    if (!args.count(k)) return die(std::string("missing ") + k);

  cw::SystemRunner runner;
  cw::NetOps net(runner);
  cw::OvsOptions opts;
  opts.state_dir = args["--state"];
  opts.bridge = args["--bridge"];
  opts.controllers = {"tcp:127.0.0.1:16653"};  // nobody listens: secure mode must forward nothing
  auto ovs = cw::Ovs::open(opts, runner);
  if (!ovs) return die(ovs.error().message);
  if (auto r = (*ovs)->ensureBridge(); !r) return die(r.error().message);

  cw::EnvConfig env;
  env.name = args["--env"];
  auto pool = cw::Cidr::parse(args["--pool"]);
  auto gw_addr = cw::IfAddress::parse(args["--uplink-gw"]);
  auto peer_addr = cw::IfAddress::parse(args["--uplink-peer"]);
  if (!pool || !gw_addr || !peer_addr) return die("bad address arguments");
  env.pool = *pool;
  env.dns_upstreams = {peer_addr->addr};
  env.uplink.kind = cw::UplinkConfig::Kind::kNetns;
  env.uplink.netns = args["--uplink-netns"];
  env.uplink.gateway_side = *gw_addr;
  env.uplink.peer_side = *peer_addr;
  env.uplink.next_hop = peer_addr->addr.v4();
  auto gw = cw::Gateway::create(env, opts.state_dir, net);
  if (!gw) return die(gw.error().message);
  auto info = (*gw)->info();
  auto gw_port = (*ovs)->addPort(info.ovs_ifname, 1);
  if (!gw_port) return die(gw_port.error().message);

  const auto& cell_ns = args["--cell-netns"];
  const auto& cell_if = args["--cell-if"];
  auto cell_mac = cw::MacAddr::parse("02:00:00:00:00:02");
  if (auto r = net.createNetns(cell_ns); !r) return die(r.error().message);
  if (auto r = net.createVethPair(cell_if, "eth0", cell_ns, cell_mac); !r) return die(r.error().message);
  if (auto r = net.setLinkUp("", cell_if); !r) return die(r.error().message);
  if (auto r = net.setLinkUp(cell_ns, "eth0"); !r) return die(r.error().message);
  auto cell_port = (*ovs)->addPort(cell_if, std::nullopt);
  if (!cell_port) return die(cell_port.error().message);
  auto ports = (*ovs)->listPorts();
  if (!ports) return die(ports.error().message);

  nlohmann::json out{{"bridge", (*ovs)->bridge()},
                     {"db", (*ovs)->dbTarget()},
                     {"ofctl", (*ovs)->ofctlTarget()},
                     {"datapath_type", (*ovs)->datapathType()},
                     {"datapath_id", (*ovs)->datapathId()},
                     {"adopted", (*ovs)->adopted()},
                     {"gateway",
                      {{"netns", info.netns},
                       {"ovs_ifname", info.ovs_ifname},
                       {"mac", info.mac.str()},
                       {"ip", info.ip.str()},
                       {"prefix_length", info.prefix_length},
                       {"dns_alive", (*gw)->dnsAlive()}}},
                     {"cell", {{"netns", cell_ns}, {"ifname", cell_if}, {"ofport", *cell_port}}}};
  for (const auto& p : *ports) out["ports"][p.name] = p.ofport;
  std::cout << out.dump() << std::endl;

  std::string line;
  std::getline(std::cin, line);

  nlohmann::json errors = nlohmann::json::array();
  for (const auto& name : {cell_if, info.ovs_ifname})
    if (auto r = (*ovs)->delPort(name); !r) errors.push_back(r.error().message);
  if (auto r = (*gw)->destroy(); !r) errors.push_back(r.error().message);
  if (auto r = net.deleteNetns(cell_ns); !r) errors.push_back(r.error().message);
  if (auto r = net.deleteLink("", cell_if); !r) errors.push_back(r.error().message);
  if (auto r = (*ovs)->stop(true); !r) errors.push_back(r.error().message);
  std::cout << nlohmann::json{{"stopped", true}, {"errors", errors}}.dump() << std::endl;
  return errors.empty() ? 0 : 1;
}
