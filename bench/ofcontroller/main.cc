// cw-bench-controller: cellwalld's OpenFlow channel and Packet-In path (the same SwitchServer
// and PacketPath objects the daemon runs) over a synthetic network, for cw-ofload to measure
// flow setups against without Open vSwitch or namespaces.
//
// The network: switches with datapath ids DPID..DPID+S-1; on each, ports 1..P are cells whose
// MAC/IP follow cw-ofload's defaults (MAC base+(k-1), IP base+(k-1)*step) and port P+1 is the
// gateway. Every cell has the same policy: allow tcp to --allow on --allow-ports, plus
// --rules more rules (distinct /32s) to show decision cost does not grow with them.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <sstream>

#include "daemon/scripts.h"
#include "path/packet_path.h"
#include "switch/server.h"

namespace {

struct Handler final : cw::sw::SwitchHandler {
  explicit Handler(cw::path::PacketPath& p) : path(p) {}
  cw::path::PacketPath& path;
  void onSwitchUp(cw::sw::Switch& s) override {
    // The same barrier the daemon sends after programming a switch: cw-ofload starts its load
    // once it is answered.
    s.barrier([](bool) {});
  }
  void onSwitchDown(cw::sw::Switch&) override {}
  void onPacketIn(cw::sw::Switch& s, const cw::ofp::PacketIn& pi) override { path.handle(s, pi); }
  void onPortStatus(cw::sw::Switch&, const cw::ofp::PortStatus&) override {}
  void onFlowRemoved(cw::sw::Switch&, const cw::ofp::FlowRemoved&) override {}
  void onError(cw::sw::Switch&, std::uint32_t, const cw::ofp::ErrorMsg&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 6653;
  unsigned threads = 1, switches = 16, ports = 4, rules = 0;
  std::string allow_ports = "1-65535";
  std::uint64_t dpid = 1;
  std::string mac_base = "02:00:00:c8:00:01", ip_base = "10.200.0.2", ip_step = "0.0.0.1";
  std::string allow_ip = "93.184.0.0/16";
  CLI::App app{"cw-bench-controller: cellwalld's Packet-In path over a synthetic network"};
  app.add_option("--port", port, "OpenFlow TCP port on 127.0.0.1")->capture_default_str();
  app.add_option("--threads", threads, "switch threads")->capture_default_str();
  app.add_option("--switches", switches, "switches the network has")->capture_default_str();
  app.add_option("--dpid-base", dpid, "first datapath id")->capture_default_str();
  app.add_option("--ports", ports, "cells per switch")->capture_default_str();
  app.add_option("--src-mac-base", mac_base, "MAC of the cell on port 1")->capture_default_str();
  app.add_option("--src-ip-base", ip_base, "IP of the cell on port 1")->capture_default_str();
  app.add_option("--src-ip-step", ip_step, "IP step between ports")->capture_default_str();
  app.add_option("--allow", allow_ip, "destination prefix the policy allows")->capture_default_str();
  app.add_option("--allow-ports", allow_ports, "TCP ports the policy allows (cw-ofload moves to new ports and addresses as source ports wrap)")->capture_default_str();
  app.add_option("--rules", rules, "extra /32 rules in every policy")->capture_default_str();
  std::vector<std::string> script_files;
  std::vector<std::string> script_settings;
  app.add_option("--script", script_files, "a Lua script to load (repeatable: each is loaded once more)");
  app.add_option("--script-setting", script_settings, "KEY=INTEGER for every script's config table");
  CLI11_PARSE(app, argc, argv);

  std::ostringstream toml;
  toml << "default = \"deny\"\n[[allow]]\nproto = \"tcp\"\nto = \"" << allow_ip
       << "\"\nports = \"" << allow_ports << "\"\n";
  for (unsigned i = 0; i < rules; ++i)
    toml << "[[deny]]\nto = \"172.16." << (i / 250) % 250 << "." << i % 250 + 1 << "\"\n";
  auto parsed = cw::policy::parsePolicy(toml.str(), "bench.toml");
  if (!parsed) {
    spdlog::error("{}", parsed.error().str());
    return 1;
  }
  auto policy = cw::decide::CompiledPolicy::of(
      std::make_shared<const cw::policy::Matcher>(std::move(parsed.value())));

  auto mac0 = cw::MacAddr::parse(mac_base);
  auto ip0 = cw::Ip4::parse(ip_base);
  auto step = cw::Ip4::parse(ip_step);
  if (!mac0 || !ip0 || !step) {
    spdlog::error("bad --src-mac-base, --src-ip-base or --src-ip-step");
    return 64;
  }
  auto view = std::make_shared<cw::decide::NetView>();
  view->generation = 1;
  std::uint32_t cell_id = 1;
  for (unsigned s = 0; s < switches; ++s) {
    auto& sv = view->switches[dpid + s];
    sv.dpid = dpid + s;
    cw::decide::GatewayPort gw{"default", ports + 1, *cw::MacAddr::parse("02:d1:00:00:00:01"),
                               *cw::Ip4::parse("10.200.0.1")};
    sv.gateways_by_port[gw.ofport] = gw;
    sv.gateway_port_by_env["default"] = gw.ofport;
    for (unsigned k = 1; k <= ports; ++k) {
      cw::decide::CellPort c{cell_id++, "bench", "default", k,
                             cw::MacAddr::from_u64(mac0->as_u64() + (k - 1)),
                             cw::Ip4{ip0->v + (k - 1) * step->v}, policy,
                             std::make_shared<cw::decide::CellRuntime>()};
      sv.cell_port_by_ip[c.ip.v] = k;
      sv.cells_by_port[k] = std::move(c);
    }
  }
  // SIGINT/SIGTERM are waited for with sigwait on this thread; the switch threads inherit the
  // blocked mask so the signal is never delivered to them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  cw::decide::ViewHolder views;
  views.publish(view);
  cw::path::PacketPath path(views);
  cw::daemon::ScriptHost scripts(views, {});
  for (std::size_t i = 0; i < script_files.size(); ++i) {
    cw::daemon::ScriptHost::Spec spec;
    spec.name = std::string("s").append(std::to_string(i));
    spec.path = script_files[i];
    for (const auto& kv : script_settings) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) return 64;
      spec.settings.push_back({kv.substr(0, eq), std::int64_t{std::stoll(kv.substr(eq + 1))}});
    }
    if (auto r = scripts.load(spec); !r) {
      spdlog::error("{}", r.error().message);
      return 1;
    }
  }
  if (!script_files.empty()) path.setJudge(&scripts);
  Handler handler(path);
  cw::sw::ServerOptions so;
  so.tcp_port = port;
  so.threads = threads;
  cw::sw::SwitchServer server(so, handler);
  if (auto r = server.start(); !r) {
    spdlog::error("{}", r.error().message);
    return 1;
  }
  spdlog::info("cw-bench-controller on 127.0.0.1:{} with {} thread(s), {} switches x {} cells, {} rules per policy",
               port, threads, switches, ports, rules + 1);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  server.stop();
  spdlog::info("allowed {} denied {}", path.allowed(), path.denied());
  for (const auto& i : scripts.list())
    spdlog::info("script {}: {} calls, {} dropped{}{}", i.name, i.calls, i.dropped, i.why.empty() ? "" : ", ", i.why);
  return 0;
}
