// cellwalld's configuration: command-line flags plus an optional TOML file for network
// environments. Defaults suit a desktop: OpenFlow only over a root-only UNIX socket (no TCP
// listener), embedded Open vSwitch, one "default" environment with NAT through the host's uplink.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "common/net.h"
#include "common/result.h"
#include "env/gateway.h"
#include "script/engine.h"

namespace cw::daemon {

struct UplinkSpec {
  // "host": the host's connectivity through user-mode networking (slirp4netns): nothing on
  // the host is changed. "host-nat": a veth into the root namespace with forwarding and NAT
  // there. "netns": a veth into an existing namespace. "interface": an existing interface of
  // the host, moved into the gateway while it runs. "wireguard", "openvpn": a tunnel in the
  // gateway, whose own packets take the carrier (one of the first four).
  std::string kind = "host";
  std::string config;         // wireguard, openvpn: the configuration file
  std::string carrier = "host";  // wireguard, openvpn: the kind the netns/address keys describe
  std::string netns;          // kind netns: the namespace to attach to
  std::string interface;      // kind interface: the host's interface to use (moved into the gateway)
  std::string address;        // gateway side, "10.250.0.2/24"
  std::string peer_address;   // the other side, "10.250.0.1/24"
  std::string next_hop;       // default route of the gateway
};

struct EnvSpec {
  std::string name = "default";
  Cidr pool = *Cidr::parse("10.200.0.0/16");
  std::vector<std::string> dns;  // upstream resolvers of the env's DNS forwarder
  std::vector<std::string> search;  // search domains in the cells' resolv.conf
  // "PREFIX via ADDRESS": more routes in the gateway, through the uplink (or a VPN's carrier:
  // split tunnelling, without the kill switch).
  std::vector<std::string> routes;
  UplinkSpec uplink;
  bool kill_switch = true;       // VPN uplinks: nothing leaves through the carrier
  std::string origin;            // the file that defined it, for messages
};

std::optional<GatewayRoute> parseExtraRoute(std::string_view text);

// A script to run ([script.NAME] in the configuration file): a shipped one by its name, or a
// user script's settings.
struct ScriptConf {
  std::string name;
  bool helper = false;                    // mode = "helper"
  std::vector<script::Setting> settings;  // every other key: config.<key> in the script
};

struct Config {
  std::filesystem::path state_dir = "/var/lib/cellwall";
  std::string of_address = "127.0.0.1";
  // Plain, unauthenticated OpenFlow over TCP on of_address (0: off). Only when asked for: any
  // local user can pose as a switch there (daemon/switch_channel.h).
  std::uint16_t of_port = 0;
  // OpenFlow over mutual TLS for switches on other hosts (0: off).
  std::uint16_t of_tls_port = 0;
  std::string of_tls_cert, of_tls_key, of_tls_ca;
  unsigned threads = 0;
  std::string ovs_db;  // empty: embedded Open vSwitch
  std::string bridge = "cw-br0";
  std::string datapath = "auto";
  // Datapath flow idle time for the embedded Open vSwitch, ms (0: Open vSwitch's own 10 s).
  std::uint32_t datapath_max_idle_ms = 100;
  std::uint32_t cell_packet_in_pps = 10000;
  std::uint64_t log_max_rows = 1000000;  // the connection log keeps this many, newest  // per-cell meter towards the controller (0: none)
  // The web UI: "ADDRESS:PORT" on loopback (port 0: any free one), or "off".
  std::string ui_listen = "127.0.0.1:7780";
  std::vector<EnvSpec> envs{EnvSpec{}};
  // The scripts that ship with cellwall (NAME.lua); [script.NAME] runs one.
  std::filesystem::path scripts_dir = CW_SHIPPED_SCRIPTS_DIR;
  std::vector<ScriptConf> scripts;
  // Process attribution (docs/attribution.md): "off", "rules" (only apps whose rules name a
  // process: the default) or "always" (every connection, so the log shows its process).
  std::string attribution = "rules";
  // Who decides a new connection that the rules alone can decide (docs/pipeline.md, table 6):
  // "switch" (the rules' flows, no controller round trip; the default) or "controller" (every
  // new connection, as for apps whose rules or settings need it).
  std::string decide = "switch";
  // Per-rule packet and byte counters (docs/pipeline.md, table 7; `cellwall rules list
  // --counters`): "on" (the default) or "off" (allowed packets are not counted; to measure what
  // counting costs).
  std::string rule_counters = "on";
  // Whether the connections the switch decides (table 6) reach the log: "on" (the default: each
  // one's first packet is copied to cellwalld) or "off" (they are counted per rule, not logged;
  // bench/RESULTS.md §15: the copy is most of what such a connection costs over a static flow).
  std::string log_switch_decided = "on";
  // The most connections one cell may have in Open vSwitch's conntrack at once (its zone's
  // limit; closed TCP connections stay there ~30 s): a cell beyond it gets no new connection,
  // and cannot fill the table the other cells share. 0: no limit.
  std::uint32_t conntrack_per_cell = 200000;
  // The IDS (docs/ids.md): off unless asked for. Its rules (Snort/Suricata subset); empty: the
  // shipped rules/ids/cellwall.rules. The apps it watches (empty: every app). K: that many
  // auto-rules for different processes of one user become one rule for the user.
  bool ids = false;
  std::vector<std::string> ids_rules;
  std::vector<std::string> ids_apps;
  unsigned ids_fold = 3;
  // Apps whose cells always run in inspect mode (as `cellwall run --inspect`).
  std::vector<std::string> inspect_apps;
  // VM cells' accelerator when `cellwall run --vm` names none: "auto" (KVM when it works, else
  // software emulation, remembered), "kvm" (only KVM) or "tcg" (never KVM). vm/accel.h.
  std::string vm_accel = "auto";
};

// Reads a TOML file: openflow_port, ui_listen, scripts_dir, vm_accel, the [env.NAME] tables into cfg.envs
// (replacing the default) and the [script.NAME] tables into cfg.scripts.
Expected<void> loadConfigFile(const std::filesystem::path& file, Config& cfg);
// Only [env.NAME] tables (a stored environment, `cellwall env add`); origin names the text in
// messages and anchors relative paths.
Expected<std::vector<EnvSpec>> loadEnvText(std::string_view text, const std::filesystem::path& origin);
// The [env.NAME] table that loadEnvText reads back as `e` (paths as they are: absolute ones
// stay valid wherever the text is kept).
std::string envToToml(const EnvSpec& e);

}  // namespace cw::daemon
