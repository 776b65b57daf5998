// cellwalld: parses flags and runs the daemon. Everything else lives in the libraries.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "common/file.h"
#include "daemon/daemon.h"
#include "daemon/script_helper.h"
#include "env/ovpn_config.h"

namespace {

int openVpnUp(const char* path) {
  const std::string record = cw::env::openVpnUpRecord([](const char* name) { return std::getenv(name); });
  // Replaced whole: the gateway reads a whole record or none.
  return cw::writeFileAtomically(path, record) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // A script helper process (daemon/script_helper.h): before anything of the daemon's starts.
  if (argc >= 2 && std::string_view(argv[1]) == "--script-helper") return cw::daemon::scriptHelperMain();
  // OpenVPN's up and down scripts, run by openvpn inside an environment's gateway
  // (env/tunnel.h): record what the server pushed, or that the tunnel went down.
  if (argc >= 3 && std::string_view(argv[1]) == "--openvpn-up") return openVpnUp(argv[2]);
  if (argc >= 3 && std::string_view(argv[1]) == "--openvpn-down") {
    std::error_code ec;
    std::filesystem::remove(argv[2], ec);
    return ec ? 1 : 0;
  }
  cw::daemon::Config cfg;
  std::string config_file;
  bool verbose = false;
  CLI::App app{"cellwalld: the cellwall controller"};
  app.add_option("--state-dir", cfg.state_dir, "state directory")->capture_default_str();
  app.add_option("--config", config_file,
                 "TOML file with [env.NAME] tables (default: /etc/cellwall/cellwalld.toml if it exists)");
  app.add_option("--of-port", cfg.of_port,
                 "also listen for switches on plain TCP 127.0.0.1:PORT (default: off; unauthenticated: any local "
                 "user can pose as a switch there, though never as the bridge; prefer --of-tls-port)");
  app.add_option("--of-address", cfg.of_address,
                 "address the --of-port and --of-tls-port listeners bind (TLS switches on other hosts need one "
                 "they can reach)")
      ->capture_default_str();
  app.add_option("--threads", cfg.threads, "switch threads (0: one per core)");
  app.add_option("--of-tls-port", cfg.of_tls_port, "OpenFlow over mutual TLS for remote switches (0: off)");
  app.add_option("--of-tls-cert", cfg.of_tls_cert, "controller certificate (PEM)");
  app.add_option("--of-tls-key", cfg.of_tls_key, "controller private key (PEM)");
  app.add_option("--of-tls-ca", cfg.of_tls_ca, "CA that signs switch certificates (PEM)");
  app.add_option("--ovs-db", cfg.ovs_db, "use an existing Open vSwitch (OVSDB target)");
  app.add_option("--bridge", cfg.bridge, "bridge name (cw- prefix)")->capture_default_str();
  app.add_option("--datapath", cfg.datapath, "auto | netdev | system")->capture_default_str();
  app.add_option("--datapath-max-idle-ms", cfg.datapath_max_idle_ms,
                 "embedded Open vSwitch: ms a datapath flow may idle before it leaves the datapath cache "
                 "(0: Open vSwitch's 10 s)")
      ->capture_default_str();
  app.add_option("--cell-packet-in-rate", cfg.cell_packet_in_pps,
                 "packets/s a cell may send to the controller")->capture_default_str();
  app.add_option("--ui-listen", cfg.ui_listen,
                 "web UI on this loopback ADDRESS:PORT (port 0: any free one), or \"off\"")
      ->capture_default_str();
  app.add_option("--attribution", cfg.attribution,
                 "which connections are attributed to their process: off | rules (apps whose rules name "
                 "a process) | always")
      ->check(CLI::IsMember({"off", "rules", "always"}))
      ->capture_default_str();
  app.add_option("--conntrack-per-cell", cfg.conntrack_per_cell,
                 "the most connections a cell may have in Open vSwitch's conntrack (0: no limit)")
      ->capture_default_str();
  app.add_option("--decide", cfg.decide,
                 "who decides new connections the rules alone can decide: switch (their flows, no "
                 "round trip) | controller (docs/pipeline.md)")
      ->check(CLI::IsMember({"switch", "controller"}))
      ->capture_default_str();
  app.add_option("--rule-counters", cfg.rule_counters,
                 "count each rule's packets and bytes in the bridge (cellwall rules list --counters): on | off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--log-switch-decided", cfg.log_switch_decided,
                 "log the connections the switch decides (a copy of each one's first packet to cellwalld): "
                 "on | off (counted per rule only; docs/pipeline.md)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--vm-accel", cfg.vm_accel,
                 "VM cells' accelerator when `cellwall run --vm` names none: auto | kvm | tcg (docs/vm-cells.md)")
      ->check(CLI::IsMember({"auto", "kvm", "tcg"}))
      ->capture_default_str();
  app.add_flag("--ids", cfg.ids, "inspect what cells send with the IDS (docs/ids.md)");
  app.add_option("--ids-rules", cfg.ids_rules, "IDS rules file (repeatable; default: the shipped rules)");
  app.add_option("--ids-fold", cfg.ids_fold,
                 "IDS: this many auto-rules for different processes of one user become one rule for the user")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "debug logging");
  CLI11_PARSE(app, argc, argv);
  if (verbose) spdlog::set_level(spdlog::level::debug);
  if (config_file.empty() && std::filesystem::exists("/etc/cellwall/cellwalld.toml"))
    config_file = "/etc/cellwall/cellwalld.toml";
  if (!config_file.empty()) {
    // The file sets defaults; a flag given on the command line wins over the same key in it.
    const cw::daemon::Config flags = cfg;
    if (auto r = cw::daemon::loadConfigFile(config_file, cfg); !r) {
      spdlog::error("{}", r.error().message);
      return 2;
    }
    auto given = [&app](const char* name) { return app.get_option(name)->count() > 0; };
    if (given("--of-port")) cfg.of_port = flags.of_port;
    if (given("--ui-listen")) cfg.ui_listen = flags.ui_listen;
    if (given("--attribution")) cfg.attribution = flags.attribution;
    if (given("--vm-accel")) cfg.vm_accel = flags.vm_accel;
    if (given("--decide")) cfg.decide = flags.decide;
    if (given("--rule-counters")) cfg.rule_counters = flags.rule_counters;
    if (given("--log-switch-decided")) cfg.log_switch_decided = flags.log_switch_decided;
    if (given("--conntrack-per-cell")) cfg.conntrack_per_cell = flags.conntrack_per_cell;
    if (given("--ids")) cfg.ids = flags.ids;
  }
  cw::daemon::Daemon d(std::move(cfg));
  if (auto r = d.run(); !r) {
    spdlog::error("{}", r.error().message);
    return 1;
  }
  return 0;
}
