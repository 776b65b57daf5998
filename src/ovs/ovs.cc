#include "ovs/ovs.h"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>

#include "netdev/net_ops.h"

namespace cw {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kSchema = "/usr/share/openvswitch/vswitch.ovsschema";
constexpr std::uint32_t kMaxOfportRequest = 65279;  // OFPP_MAX for OpenFlow 1.0

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string dquote(const std::string& s) { return "\"" + s + "\""; }

pid_t readPidfile(const fs::path& path) {
  std::ifstream f(path);
  long pid = 0;
  if (!(f >> pid) || pid <= 0 || pid > (1L << 22)) return 0;
  return static_cast<pid_t>(pid);
}

bool kernelDatapathAvailable() {
  std::error_code ec;
  return fs::exists("/sys/module/openvswitch", ec);
}

bool validTarget(const std::string& t) {
  if (t.empty() || t.size() > 200) return false;
  for (char c : t)
    if (c <= ' ' || c == '"' || c == '\\' || c == ',') return false;
  return t.rfind("tcp:", 0) == 0 || t.rfind("ssl:", 0) == 0 || t.rfind("unix:", 0) == 0;
}

}  // namespace

std::uint64_t Ovs::datapathIdFor(const std::string& bridge) {
  // FNV-1a: stable across runs and builds, so the controller's idea of a switch survives
  // restarts of either side.
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : "cellwall:" + bridge) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h == 0 ? 1 : h;
}

std::optional<fs::path> Ovs::runDirFor(const OvsOptions& options) {
  if (options.existing_db.empty()) return options.state_dir / "ovs";
  const std::string_view db = options.existing_db;
  if (db.rfind("unix:", 0) != 0) return std::nullopt;
  fs::path sock(db.substr(5));
  if (!sock.is_absolute() || !sock.has_parent_path()) return std::nullopt;
  return sock.parent_path();
}

Ovs::Ovs(OvsOptions options, CommandRunner& runner) : options_(std::move(options)), runner_(runner) {}

Expected<std::unique_ptr<Ovs>> Ovs::open(const OvsOptions& options, CommandRunner& runner) {
  if (!runner.privileged())
    return fail("cellwall needs root or CAP_NET_ADMIN+CAP_SYS_ADMIN to run Open vSwitch and create namespaces");
  if (!validIfName(options.bridge) || options.bridge.rfind("cw-", 0) != 0)
    return fail("invalid bridge name '" + options.bridge + "': must start with cw- and have at most 15 characters");
  for (const auto& t : options.controllers)
    if (!validTarget(t))
      return fail("invalid controller target '" + t + "': expected tcp:IP:PORT, ssl:IP:PORT or unix:PATH");
  if (options.packet_in_rate_limit != 0 &&
      (options.packet_in_rate_limit < 100 || options.packet_in_burst < 25))
    return fail("invalid Packet-In limits: Open vSwitch needs a rate of at least 100/s and a burst of at least 25 (or rate 0: no switch-wide limit)");
  if (options.datapath != "auto" && options.datapath != "netdev" && options.datapath != "system")
    return fail("invalid datapath '" + options.datapath + "': use auto, netdev or system");
  if (options.existing_db.empty() && options.state_dir.empty())
    return fail("embedded Open vSwitch needs a state directory");

  std::unique_ptr<Ovs> ovs(new Ovs(options, runner));
  ovs->datapath_id_ = datapathIdFor(options.bridge);
  ovs->datapath_type_ = options.datapath;
  if (options.datapath == "auto")
    ovs->datapath_type_ = kernelDatapathAvailable() ? "system" : "netdev";

  if (!options.existing_db.empty()) {
    ovs->db_target_ = options.existing_db;
    auto r = ovs->vsctl("reach the Open vSwitch database at " + ovs->db_target_ + " (is ovsdb-server running?)",
                        {"show"}, true);
    if (!r) return Unexpected(std::move(r).error());
    return ovs;
  }
  ovs->db_target_ = "unix:" + (ovs->ovsDir() / "db.sock").string();
  if (auto r = ovs->startOrAdopt(); !r) return Unexpected(std::move(r).error());
  return ovs;
}

std::vector<std::pair<std::string, std::string>> Ovs::daemonEnv() const {
  // Private run/log/db dirs: the bridge's .mgmt socket and anything else OVS puts in its
  // rundir land in our state dir instead of clashing with a system OVS.
  auto dir = ovsDir().string();
  return {{"OVS_RUNDIR", dir}, {"OVS_LOGDIR", dir}, {"OVS_DBDIR", dir}};
}

const char* ovsStateName(OvsHealth::State s) {
  switch (s) {
    case OvsHealth::State::kUp: return "up";
    case OvsHealth::State::kRestarting: return "restarting";
    case OvsHealth::State::kFailing: return "failing";
    case OvsHealth::State::kDown: return "down";
  }
  return "?";
}

bool Ovs::daemonRuns(const std::string& name, pid_t* pid_out) {
  pid_t pid = readPidfile(ovsDir() / (name + ".pid"));
  if (pid_out != nullptr) *pid_out = pid;
  return pid != 0 && runner_.alive(pid, name);
}

bool Ovs::daemonAnswers(const std::string& name) {
  if (!daemonRuns(name)) return false;
  Command cmd;
  cmd.argv = {"ovs-appctl", "-t", (ovsDir() / (name + ".ctl")).string(), "version"};
  cmd.env = daemonEnv();
  cmd.timeout = std::chrono::seconds(2);
  auto r = runner_.run(cmd);
  return r && r->ok();
}

Expected<void> Ovs::stopDaemon(const std::string& name) {
  pid_t pid = readPidfile(ovsDir() / (name + ".pid"));
  if (pid != 0 && runner_.alive(pid, name)) {
    if (auto r = runner_.terminate(pid, std::chrono::seconds(5)); !r)
      return fail("cannot stop " + name + ": " + r.error().message);
  }
  std::error_code ec;
  fs::remove(ovsDir() / (name + ".pid"), ec);
  fs::remove(ovsDir() / (name + ".ctl"), ec);
  return {};
}

Expected<void> Ovs::startDaemon(const std::string& name, std::vector<std::string> argv) {
  auto dir = ovsDir();
  argv.push_back("--pidfile=" + (dir / (name + ".pid")).string());
  argv.push_back("--unixctl=" + (dir / (name + ".ctl")).string());
  argv.push_back("--log-file=" + (dir / (name + ".log")).string());
  argv.push_back("--detach");
  argv.push_back("--no-chdir");
  argv.push_back("-vsyslog:off");
  Command cmd;
  cmd.argv = std::move(argv);
  cmd.env = daemonEnv();
  cmd.timeout = options_.timeout * 3;
  auto r = runner_.run(cmd);
  if (!r) return fail("cannot start " + name + ": " + r.error().message);
  if (!r->ok())
    return fail("cannot start " + name + ": " + trimmed(r->err) + " (see " + (dir / (name + ".log")).string() + ")");
  auto deadline = Clock::now() + options_.timeout;
  while (!daemonAnswers(name)) {
    if (Clock::now() >= deadline)
      return fail(name + " started but does not answer on " + (dir / (name + ".ctl")).string() +
                  " (see " + (dir / (name + ".log")).string() + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return {};
}

Expected<void> Ovs::startOrAdopt() {
  auto dir = ovsDir();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail("cannot create Open vSwitch state directory " + dir.string() + ": " + ec.message());
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);

  if (daemonAnswers("ovsdb-server") && daemonAnswers("ovs-vswitchd")) {
    adopted_ = true;
    return {};
  }
  // Half a pair (or a hung one) is not worth adopting: restart both from the same conf.db,
  // which still describes our bridge, so ovs-vswitchd comes back fail-secure.
  if (auto r = stopDaemon("ovs-vswitchd"); !r) return r;
  if (auto r = stopDaemon("ovsdb-server"); !r) return r;
  fs::remove(dir / "db.sock", ec);

  auto db = dir / "conf.db";
  if (!fs::exists(db, ec)) {
    Command create;
    create.argv = {"ovsdb-tool", "create", db.string(), kSchema};
    create.timeout = options_.timeout;
    auto r = runner_.run(create);
    if (!r) return fail("cannot create the Open vSwitch database " + db.string() + ": " + r.error().message);
    if (!r->ok())
      return fail("cannot create the Open vSwitch database " + db.string() + ": " + trimmed(r->err) +
                  " (is openvswitch-common installed?)");
  }
  if (auto r = startDbServer(); !r) return r;
  std::vector<std::string> init{"init"};
  if (datapath_type_ == "netdev") {
    // ovs-vswitchd reads userspace-tso-enable once, at its first configuration: it must be in
    // the database before the daemon starts.
    init.insert(init.end(), {"--", "set", "Open_vSwitch", ".", "other_config:userspace-tso-enable=true"});
  }
  if (auto r = vsctl("initialize the Open vSwitch database", init, true); !r) return Unexpected(std::move(r).error());
  return startSwitchDaemon();
}

Expected<void> Ovs::startDbServer() {
  auto dir = ovsDir();
  std::error_code ec;
  fs::remove(dir / "db.sock", ec);
  return startDaemon("ovsdb-server",
                     {"ovsdb-server", (dir / "conf.db").string(), "--remote=punix:" + (dir / "db.sock").string()});
}

Expected<void> Ovs::startSwitchDaemon() { return startDaemon("ovs-vswitchd", {"ovs-vswitchd", db_target_}); }

Expected<void> Ovs::restartDead() {
  // The database first: ovs-vswitchd reads its whole configuration from it at start, and one
  // that outlived the database reconnects by itself.
  if (!daemonRuns("ovsdb-server")) {
    if (auto r = stopDaemon("ovsdb-server"); !r) return r;
    if (auto r = startDbServer(); !r) return r;
  }
  if (!daemonRuns("ovs-vswitchd")) {
    if (auto r = stopDaemon("ovs-vswitchd"); !r) return r;
    if (auto r = startSwitchDaemon(); !r) return r;
  }
  return ensureBridge();
}

namespace {
std::int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

OvsSupervision Ovs::supervise(Clock::time_point now) {
  OvsSupervision out;
  if (!isEmbedded()) {
    superviseExternal(now, out);
    return out;
  }
  if (health_.state == OvsHealth::State::kUp) {
    std::string dead;
    for (const char* name : {"ovsdb-server", "ovs-vswitchd"}) {
      pid_t pid = 0;
      if (daemonRuns(name, &pid)) continue;
      dead += (dead.empty() ? "" : " and ") + std::string(name) +
              (pid != 0 ? " (pid " + std::to_string(pid) + ")" : "");
    }
    if (dead.empty()) return out;
    health_.state = OvsHealth::State::kRestarting;
    health_.since_unix_ms = unixMs();
    health_.attempts = 0;
    health_.cause = dead + " died";
    health_.last_error.clear();
    backoff_ = std::chrono::seconds(0);
    next_attempt_ = now;
    const bool both = dead.find(" and ") != std::string::npos;
    out.warnings.push_back("Open vSwitch: " + health_.cause +
                           (both ? "; restarting them from " : "; restarting it from ") +
                           (ovsDir() / "conf.db").string() +
                           ". Until it is back and reprogrammed the bridge forwards nothing (fail-secure)");
  }
  if (now < next_attempt_) return out;
  const auto started = Clock::now();
  auto r = restartDead();
  if (r) {
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    ++health_.restarts;
    health_.state = OvsHealth::State::kUp;
    health_.last_restart_unix_ms = unixMs();
    health_.last_error.clear();
    out.restarted = true;
    out.info.push_back("Open vSwitch: restarted after " + health_.cause + " (" + std::to_string(took.count()) +
                       " ms" + (health_.attempts > 0 ? ", " + std::to_string(health_.attempts + 1) + " attempts" : "") +
                       "); bridge " + options_.bridge + " re-asserted, restarts so far: " +
                       std::to_string(health_.restarts));
    health_.attempts = 0;
    return out;
  }
  ++health_.attempts;
  health_.last_error = r.error().message;
  // After 1, 2, 4 ... 30 s.
  backoff_ = std::min<std::chrono::seconds>(kMaxBackoff, backoff_ == std::chrono::seconds(0)
                                                             ? std::chrono::seconds(1)
                                                             : backoff_ * 2);
  next_attempt_ = now + backoff_;
  const std::string attempt = "Open vSwitch: restart attempt " + std::to_string(health_.attempts) + " failed: " +
                              health_.last_error + "; next in " + std::to_string(backoff_.count()) + " s";
  if (health_.attempts >= kMaxQuietAttempts) {
    health_.state = OvsHealth::State::kFailing;
    out.errors.push_back(attempt + ". Open vSwitch has been down for " +
                         std::to_string((unixMs() - health_.since_unix_ms) / 1000) +
                         " s: every cell is without network (fail-secure) until it starts; see " +
                         (ovsDir() / "ovs-vswitchd.log").string() + " and " +
                         (ovsDir() / "ovsdb-server.log").string());
  } else {
    out.warnings.push_back(attempt);
  }
  return out;
}

void Ovs::superviseExternal(Clock::time_point now, OvsSupervision& out) {
  if (now < next_attempt_) return;
  next_attempt_ = now + kExternalProbe;
  // Not ours to restart: reachable or not is all there is to know. A short timeout, since
  // this runs on the caller's thread.
  Command cmd;
  cmd.argv = {"ovs-vsctl", "--db=" + db_target_, "--timeout=2", "--no-wait", "get", "Open_vSwitch", ".",
              "ovs_version"};
  cmd.timeout = std::chrono::seconds(3);
  auto r = runner_.run(cmd);
  const bool up = r && r->ok();
  const std::string why = !r ? r.error().message : trimmed(r->err.empty() ? "ovs-vsctl timed out" : r->err);
  if (!up && health_.state == OvsHealth::State::kUp) {
    health_.state = OvsHealth::State::kDown;
    health_.since_unix_ms = unixMs();
    health_.cause = "the Open vSwitch database at " + db_target_ + " does not answer";
    health_.last_error = why;
    out.errors.push_back("Open vSwitch: " + health_.cause + " (" + why +
                         "). It is not cellwall's to restart: start the system's Open vSwitch again "
                         "(e.g. systemctl restart openvswitch-switch); meanwhile nothing new is decided");
  } else if (up && health_.state == OvsHealth::State::kDown) {
    health_.state = OvsHealth::State::kUp;
    ++health_.restarts;
    health_.last_restart_unix_ms = unixMs();
    health_.last_error.clear();
    out.restarted = true;
    out.info.push_back("Open vSwitch: the database at " + db_target_ + " answers again; bridge " +
                       options_.bridge + " re-asserted");
    if (auto e = ensureBridge(); !e) out.errors.push_back("Open vSwitch: " + e.error().message);
  }
}

Expected<std::string> Ovs::vsctl(const std::string& what, std::vector<std::string> args, bool no_wait) {
  Command cmd;
  cmd.argv = {"ovs-vsctl", "--db=" + db_target_, "--timeout=" + std::to_string(options_.timeout.count())};
  if (no_wait) cmd.argv.push_back("--no-wait");
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  if (isEmbedded()) cmd.env = daemonEnv();
  cmd.timeout = options_.timeout + std::chrono::seconds(2);
  auto r = runner_.run(cmd);
  if (!r) return fail("cannot " + what + ": " + r.error().message);
  if (r->timed_out || r->exit_code == 142 /* ovs-vsctl's own --timeout: SIGALRM */)
    return fail("cannot " + what + ": ovs-vsctl timed out (is ovs-vswitchd running?)");
  if (!r->ok()) return fail("cannot " + what + ": " + trimmed(r->err));
  return std::move(r->out);
}

Expected<void> Ovs::ensureBridge() {
  const auto& br = options_.bridge;
  char dpid[17];
  std::snprintf(dpid, sizeof dpid, "%016llx", static_cast<unsigned long long>(datapath_id_));
  std::vector<std::string> args{"--", "--may-exist", "add-br", br,
                                "--", "set", "Bridge", br,
                                "datapath_type=" + datapath_type_,
                                "fail_mode=secure",
                                "protocols=OpenFlow10,OpenFlow13",
                                "other_config:disable-in-band=true",
                                "other_config:datapath-id=" + dquote(dpid)};
  std::string refs;
  for (std::size_t i = 0; i < options_.controllers.size(); ++i) {
    std::string id = "@c" + std::to_string(i);
    args.insert(args.end(), {"--", "--id=" + id, "create", "Controller",
                             "target=" + dquote(options_.controllers[i]),
                             "connection_mode=out-of-band"});
    if (options_.packet_in_rate_limit != 0)
      args.insert(args.end(), {"controller_rate_limit=" + std::to_string(options_.packet_in_rate_limit),
                               "controller_burst_limit=" + std::to_string(options_.packet_in_burst)});
    refs += (refs.empty() ? "" : ",") + id;
  }
  if (refs.empty())
    args.insert(args.end(), {"--", "clear", "Bridge", br, "controller"});
  else
    args.insert(args.end(), {"--", "set", "Bridge", br, "controller=" + refs});
  if (datapath_type_ == "netdev")
    args.insert(args.end(), {"--", "set", "Open_vSwitch", ".", "other_config:userspace-tso-enable=true"});
  if (isEmbedded() && options_.datapath_max_idle_ms != 0)
    args.insert(args.end(), {"--", "set", "Open_vSwitch", ".",
                             "other_config:max-idle=" + std::to_string(options_.datapath_max_idle_ms)});
  auto r = vsctl("create or configure bridge " + br, args);
  if (!r) return Unexpected(std::move(r).error());
  return {};
}

Expected<std::uint32_t> Ovs::addPort(const std::string& ifname, std::optional<std::uint32_t> ofport_request) {
  if (!validIfName(ifname) || ifname.rfind("cw-", 0) != 0)
    return fail("refusing to add port '" + ifname + "' to " + options_.bridge + ": cellwall ports start with cw-");
  if (ofport_request && (*ofport_request == 0 || *ofport_request > kMaxOfportRequest))
    return fail("invalid OpenFlow port number " + std::to_string(*ofport_request) + " for " + ifname + " (1..65279)");
  std::vector<std::string> args{"--", "--may-exist", "add-port", options_.bridge, ifname};
  if (ofport_request)
    args.insert(args.end(), {"--", "set", "Interface", ifname, "ofport_request=" + std::to_string(*ofport_request)});
  if (auto r = vsctl("add port " + ifname + " to " + options_.bridge, args); !r) return Unexpected(std::move(r).error());

  auto deadline = Clock::now() + options_.timeout;
  for (;;) {
    auto out = vsctl("read the OpenFlow port of " + ifname, {"get", "Interface", ifname, "ofport"});
    if (!out) return Unexpected(std::move(out).error());
    std::string text = trimmed(*out);
    long n = 0;
    if (std::sscanf(text.c_str(), "%ld", &n) == 1 && n > 0 && n < 0xff00) return static_cast<std::uint32_t>(n);
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto err = vsctl("read the error of " + ifname, {"get", "Interface", ifname, "error"});
  std::string why = err ? trimmed(*err) : err.error().message;
  return fail("port " + ifname + " on " + options_.bridge + " got no OpenFlow port number: " + why);
}

Expected<void> Ovs::delPort(const std::string& ifname) {
  if (!validIfName(ifname)) return fail("invalid port name '" + ifname + "'");
  auto r = vsctl("remove port " + ifname + " from " + options_.bridge, {"--", "--if-exists", "del-port", options_.bridge, ifname});
  if (!r) return Unexpected(std::move(r).error());
  return {};
}

Expected<std::vector<OvsPort>> Ovs::listPorts() {
  auto names = vsctl("list ports of " + options_.bridge, {"list-ports", options_.bridge});
  if (!names) return Unexpected(std::move(names).error());
  std::vector<std::string> args{"--format=csv", "--data=bare", "--no-headings", "--columns=name,ofport",
                                "list", "Interface"};
  std::istringstream lines(*names);
  std::string line;
  std::size_t count = 0;
  while (std::getline(lines, line))
    if (!trimmed(line).empty()) {
      args.push_back(trimmed(line));
      ++count;
    }
  std::vector<OvsPort> ports;
  if (count == 0) return ports;
  auto table = vsctl("read ports of " + options_.bridge, args);
  if (!table) return Unexpected(std::move(table).error());
  std::istringstream rows(*table);
  while (std::getline(rows, line)) {
    auto comma = line.find(',');
    if (comma == std::string::npos) continue;
    long n = std::strtol(line.c_str() + comma + 1, nullptr, 10);
    ports.push_back(OvsPort{line.substr(0, comma), n > 0 && n < 0xff00 ? static_cast<std::uint32_t>(n) : 0});
  }
  return ports;
}

Expected<std::string> Ovs::appctl(const std::string& what, std::vector<std::string> args) {
  Command cmd;
  // An existing switch: ovs-appctl finds ovs-vswitchd's socket through its pidfile in the
  // default rundir.
  cmd.argv = {"ovs-appctl", "-t", isEmbedded() ? (ovsDir() / "ovs-vswitchd.ctl").string() : "ovs-vswitchd",
              "--timeout=" + std::to_string(options_.timeout.count())};
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  if (isEmbedded()) cmd.env = daemonEnv();
  cmd.timeout = options_.timeout + std::chrono::seconds(2);
  auto r = runner_.run(cmd);
  if (!r) return fail("cannot " + what + ": " + r.error().message);
  if (r->timed_out) return fail("cannot " + what + ": ovs-appctl timed out (is ovs-vswitchd running?)");
  if (!r->ok()) return fail("cannot " + what + ": " + trimmed(r->err.empty() ? r->out : r->err));
  return std::move(r->out);
}

std::string Ovs::dpctlDatapath() const {
  return datapath_type_ == "system" ? "system@ovs-system" : "netdev@ovs-netdev";
}

Expected<void> Ovs::setZoneLimit(std::uint16_t zone, std::uint32_t limit) {
  auto r = appctl("limit conntrack zone " + std::to_string(zone) + " to " + std::to_string(limit) + " connections",
                  {"dpctl/ct-set-limits", dpctlDatapath(),
                   "zone=" + std::to_string(zone) + ",limit=" + std::to_string(limit)});
  if (!r) return Unexpected(r.error());
  return {};
}

Expected<void> Ovs::clearZoneLimit(std::uint16_t zone) {
  auto r = appctl("remove conntrack zone " + std::to_string(zone) + "'s limit",
                  {"dpctl/ct-del-limits", dpctlDatapath(), "zone=" + std::to_string(zone)});
  if (!r) return Unexpected(r.error());
  return {};
}

Expected<std::map<std::uint16_t, ZoneUsage>> Ovs::zoneUsage(const std::vector<std::uint16_t>& zones) {
  if (zones.empty()) return std::map<std::uint16_t, ZoneUsage>{};
  std::string list;
  for (auto z : zones) {
    if (!list.empty()) list += ',';
    list += std::to_string(z);
  }
  auto r = appctl("read conntrack zone limits", {"dpctl/ct-get-limits", dpctlDatapath(), "zone=" + list});
  if (!r) return Unexpected(r.error());
  return parseZoneLimits(*r);
}

std::map<std::uint16_t, ZoneUsage> Ovs::parseZoneLimits(const std::string& text) {
  std::map<std::uint16_t, ZoneUsage> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    // zone=5,limit=100,count=3 (the default line has no zone)
    std::optional<unsigned long> zone, limit, count;
    std::size_t p = 0;
    while (p < line.size()) {
      std::size_t q = line.find(',', p);
      if (q == std::string::npos) q = line.size();
      std::string kv = line.substr(p, q - p);
      p = q + 1;
      auto eq = kv.find('=');
      if (eq == std::string::npos) continue;
      std::string k = trimmed(kv.substr(0, eq));
      char* e = nullptr;
      std::string v = kv.substr(eq + 1);
      unsigned long n = std::strtoul(v.c_str(), &e, 10);
      if (e == v.c_str()) continue;
      if (k == "zone") zone = n;
      else if (k == "limit") limit = n;
      else if (k == "count") count = n;
    }
    if (!zone || *zone > 0xffff) continue;
    ZoneUsage u;
    u.limit = static_cast<std::uint32_t>(limit.value_or(0));
    u.count = static_cast<std::uint32_t>(count.value_or(0));
    out[static_cast<std::uint16_t>(*zone)] = u;
  }
  return out;
}

std::string Ovs::ofctlTarget() const {
  if (!isEmbedded()) return options_.bridge;
  return "unix:" + (ovsDir() / (options_.bridge + ".mgmt")).string();
}

Expected<void> Ovs::stop(bool remove_everything) {
  std::string errors;
  if (auto r = vsctl("remove bridge " + options_.bridge, {"--", "--if-exists", "del-br", options_.bridge}); !r)
    errors += r.error().message + "; ";
  if (isEmbedded()) {
    if (auto r = stopDaemon("ovs-vswitchd"); !r) errors += r.error().message + "; ";
    if (auto r = stopDaemon("ovsdb-server"); !r) errors += r.error().message + "; ";
    std::error_code ec;
    fs::remove(ovsDir() / "db.sock", ec);
    fs::remove(ovsDir() / (options_.bridge + ".mgmt"), ec);
    fs::remove(ovsDir() / (options_.bridge + ".snoop"), ec);
    if (remove_everything && errors.empty()) {
      fs::remove_all(ovsDir(), ec);
      if (ec) errors += "cannot remove " + ovsDir().string() + ": " + ec.message() + "; ";
    }
  }
  if (!errors.empty()) {
    errors.resize(errors.size() - 2);
    return fail("stopping Open vSwitch incomplete: " + errors);
  }
  return {};
}

}  // namespace cw
