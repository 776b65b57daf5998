// Ovs: runs and configures the Open vSwitch instance cellwall forwards through.
//
// Two modes. Embedded (OvsOptions::existing_db empty): cellwall owns a private ovsdb-server and
// ovs-vswitchd whose database, sockets, pidfiles and logs live in <state_dir>/ovs, so a system
// OVS (if any) is never touched. If that directory holds live daemons from an earlier run they
// are ADOPTED, not restarted: a crashed and restarted cellwalld keeps the bridge forwarding on
// the flows already installed (fail_mode=secure: nothing new gets out without the controller).
// Embedded daemons that die are restarted by supervise() (the owner calls it every tick).
// External (existing_db set, e.g. "unix:/run/openvswitch/db.sock"): only our bridge is
// created, re-asserted and removed; other bridges are never touched, and supervise() only
// reports whether the database answers.
//
// The bridge is always fail_mode=secure with only our controllers and no NORMAL flows, so the
// switch never forwards on its own. See docs/ovs.md for the exact configuration and why.
//
// Errors: every call returns an Expected whose message names the command/object and OVS's
// stderr. Ownership: Ovs borrows the CommandRunner, which must outlive it. Destroying an Ovs
// without stop() leaves the switch running (on purpose: adoption after restart).
// Threading: one call at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "netdev/command_runner.h"

namespace cw {

struct OvsOptions {
  std::filesystem::path state_dir;        // embedded mode keeps everything in state_dir/ovs
  std::string existing_db;                // "" = embedded; else an OVSDB target (unix:..., tcp:...)
  std::string bridge = "cw-br0";          // must start with "cw-", at most 15 characters
  std::vector<std::string> controllers;   // OpenFlow targets, e.g. "unix:cw-br0.cellwalld" (see runDirFor)
  std::string datapath = "auto";          // "auto" | "netdev" (userspace) | "system" (kernel)
  // Packets/s to the controller over the whole switch (>= 100), or 0 for none. Open vSwitch's
  // limiter queues Packet-Ins and was measured to add milliseconds to flow setup; cellwalld
  // passes 0 and limits each cell with an OpenFlow meter instead.
  std::uint32_t packet_in_rate_limit = 1000;
  std::uint32_t packet_in_burst = 250;        // extra packets allowed in a burst (>= 25)
  // How long a datapath flow may sit idle before Open vSwitch drops it from the datapath cache
  // (other_config:max-idle; 0 keeps Open vSwitch's 10 s). Applied to the embedded Open vSwitch
  // only. Each new connection changes the flow table, and Open vSwitch then revalidates every
  // datapath flow alive, so fewer idle datapath flows means faster connection setup under load
  // (bench/RESULTS.md, section 2).
  std::uint32_t datapath_max_idle_ms = 0;
  std::chrono::seconds timeout{10};       // per ovs-vsctl call and for daemons to answer
};

// What cellwalld knows of the switch's daemons (status, the log, the web UI).
struct OvsHealth {
  enum class State {
    kUp,          // both daemons answer (external: the database answers)
    kRestarting,  // embedded: a daemon died; restarting it (after a back-off when it fails)
    kFailing,     // embedded: kMaxQuietAttempts restarts in a row failed; still trying
    kDown,        // external: the database does not answer; not ours to restart
  };
  State state = State::kUp;
  std::int64_t since_unix_ms = 0;       // when the current outage began (0: never down)
  unsigned restarts = 0;                // outages ended by a restart since cellwalld started
  unsigned attempts = 0;                // failed restart attempts in the current outage
  std::string cause;                    // what went wrong last: "ovs-vswitchd (pid 123) died"
  std::string last_error;               // why the last restart attempt failed ("" if it did not)
  std::int64_t last_restart_unix_ms = 0;
};
const char* ovsStateName(OvsHealth::State s);  // "up", "restarting", "failing", "down"

// One supervise() call's outcome: what to log, and whether the switch came back (the caller
// then re-attaches what it owns: re-checks its ports, re-programs the bridge). Within one call
// the warnings (a death, failed attempts) come before the errors (attempts failed too often)
// and those before the info (the restart).
struct OvsSupervision {
  std::vector<std::string> warnings;
  std::vector<std::string> errors;
  std::vector<std::string> info;
  bool restarted = false;
};

// One conntrack zone's limit and its connections now (dpctl/ct-get-limits).
struct ZoneUsage {
  std::uint32_t limit = 0;  // 0: none
  std::uint32_t count = 0;
};

struct OvsPort {
  std::string name;
  std::uint32_t ofport = 0;
  auto operator<=>(const OvsPort&) const = default;
};

class Ovs {
 public:
  // Checks privileges and options, then starts or adopts the embedded daemons (or connects to
  // existing_db). Does not create the bridge: call ensureBridge().
  static Expected<std::unique_ptr<Ovs>> open(const OvsOptions& options, CommandRunner& runner);

  Ovs(const Ovs&) = delete;
  Ovs& operator=(const Ovs&) = delete;
  ~Ovs() = default;

  // Creates the bridge, or adopts it and re-asserts its whole configuration (datapath type,
  // fail_mode=secure, OpenFlow10+13, controllers out-of-band with Packet-In rate limits,
  // disable-in-band, fixed datapath-id, userspace TSO for the netdev datapath).
  Expected<void> ensureBridge();

  // Plugs an existing interface (name must start with "cw-") into the bridge and waits until
  // OVS assigns its OpenFlow port number. ofport_request asks for a fixed number (1..65279).
  Expected<std::uint32_t> addPort(const std::string& ifname,
                                  std::optional<std::uint32_t> ofport_request = std::nullopt);
  // Removing a port that is not on the bridge is success.
  Expected<void> delPort(const std::string& ifname);
  // Ports of our bridge (not the bridge's own internal port).
  Expected<std::vector<OvsPort>> listPorts();

  // Conntrack zone limits (dpctl/ct-set-limits on our bridge's datapath): at most `limit`
  // connections tracked in `zone`; a commit beyond it fails, so the zone's new connections are
  // not admitted while the others' are. Open vSwitch keeps limits in ovs-vswitchd's memory
  // only: after it restarts they must be set again. Clearing a zone without a limit is success.
  Expected<void> setZoneLimit(std::uint16_t zone, std::uint32_t limit);
  Expected<void> clearZoneLimit(std::uint16_t zone);
  // The zones' limits and connections now; a zone without its own limit is left out.
  Expected<std::map<std::uint16_t, ZoneUsage>> zoneUsage(const std::vector<std::uint16_t>& zones);
  // Reads dpctl/ct-get-limits' output ("default limit=0", "zone=5,limit=100,count=3").
  static std::map<std::uint16_t, ZoneUsage> parseZoneLimits(const std::string& text);

  // stop(false): deletes the bridge and, in embedded mode, stops both daemons (SIGTERM, then
  // SIGKILL) keeping conf.db and logs for a post-mortem. stop(true): also removes
  // state_dir/ovs entirely. External mode: deletes only the bridge.
  Expected<void> stop(bool remove_everything);

  // Supervision, called often (every 250 ms) on the owner's thread. Embedded: a daemon whose
  // pidfile's process is gone is restarted with the same database (conf.db keeps the bridge,
  // its ports and their OpenFlow numbers), then the bridge is re-asserted (ensureBridge).
  // ovs-vswitchd comes back fail_mode=secure with no flows, so nothing forwards until the
  // controller has reprogrammed it. A failed attempt is retried after 1, 2, 4 ... 30 s;
  // after kMaxQuietAttempts failures in a row the outage is reported as an error (state
  // kFailing) and attempts go on. External: every kExternalProbe the database is asked for
  // its version; a change is reported, nothing is restarted.
  OvsSupervision supervise(std::chrono::steady_clock::time_point now);
  const OvsHealth& health() const { return health_; }
  static constexpr unsigned kMaxQuietAttempts = 5;
  static constexpr std::chrono::seconds kMaxBackoff{30};
  static constexpr std::chrono::seconds kExternalProbe{5};

  std::uint64_t datapathId() const { return datapath_id_; }
  const std::string& bridge() const { return options_.bridge; }
  // OVSDB target for ovs-vsctl --db=...
  const std::string& dbTarget() const { return db_target_; }
  // Target for ovs-ofctl on our bridge: "unix:<state>/ovs/<bridge>.mgmt" when embedded (the
  // daemons run with their own OVS_RUNDIR), else the bridge name.
  std::string ofctlTarget() const;
  bool isEmbedded() const { return options_.existing_db.empty(); }
  // True when open() found live embedded daemons from an earlier run and kept them.
  bool adopted() const { return adopted_; }
  // "netdev" or "system", after resolving "auto".
  const std::string& datapathType() const { return datapath_type_; }

  // The datapath-id used for a bridge name (stable across runs and hosts).
  static std::uint64_t datapathIdFor(const std::string& bridge);

  // The directory ovs-vswitchd resolves a relative "unix:NAME" controller target in (its
  // rundir), when that switch is on this host: <state_dir>/ovs when embedded; for an existing
  // switch reached through "unix:PATH", PATH's directory (ovsdb-server's db.sock lives in the
  // rundir by convention). nullopt for a switch reached over the network. Open vSwitch refuses
  // a UNIX controller outside its rundir, so a local controller socket must be made there and
  // named relatively ("unix:NAME"), which also spares us the exact spelling of the rundir.
  static std::optional<std::filesystem::path> runDirFor(const OvsOptions& options);

 private:
  Ovs(OvsOptions options, CommandRunner& runner);

  Expected<void> startOrAdopt();
  Expected<void> startDbServer();
  Expected<void> startSwitchDaemon();
  // Restarts whichever embedded daemon is not running, then re-asserts the bridge.
  Expected<void> restartDead();
  void superviseExternal(std::chrono::steady_clock::time_point now, OvsSupervision& out);
  // The pidfile's process runs (cheap: no command is run).
  bool daemonRuns(const std::string& name, pid_t* pid = nullptr);
  bool daemonAnswers(const std::string& name);
  Expected<void> startDaemon(const std::string& name, std::vector<std::string> argv);
  Expected<void> stopDaemon(const std::string& name);
  // ovs-appctl to our ovs-vswitchd (embedded: its private control socket).
  Expected<std::string> appctl(const std::string& what, std::vector<std::string> args);
  // The datapath our bridge is on, as dpctl names it.
  std::string dpctlDatapath() const;
  // ovs-vsctl with --db and --timeout; no_wait skips waiting for ovs-vswitchd.
  Expected<std::string> vsctl(const std::string& what, std::vector<std::string> args,
                              bool no_wait = false);
  std::filesystem::path ovsDir() const { return options_.state_dir / "ovs"; }
  std::vector<std::pair<std::string, std::string>> daemonEnv() const;

  OvsOptions options_;
  CommandRunner& runner_;
  std::string db_target_;
  std::string datapath_type_;
  std::uint64_t datapath_id_ = 0;
  bool adopted_ = false;
  OvsHealth health_;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::seconds backoff_{0};
};

}  // namespace cw
