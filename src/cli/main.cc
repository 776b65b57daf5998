// cellwall: the command line. Each subcommand parses its flags into one api::Command (or, for
// `run`, a short sequence of them) and prints the reply.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>

#include "cell/launcher.h"
#include "cell/vm_cell.h"
#include "vm/image.h"
#include "common/file.h"
#include "cli/client.h"
#include "cli/env_cmd.h"
#include "cli/notify_cmd.h"
#include "cli/prompt_cmd.h"
#include "cli/rules_cmd.h"
#include "cli/script_cmd.h"
#include "policy/policy.h"

namespace {

namespace fs = std::filesystem;
using cw::cli::Client;
using cw::cli::die;

fs::path g_state_dir = "/var/lib/cellwall";

fs::path socketPath() { return g_state_dir / "cellwall.sock"; }


fs::path selfDir() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : p.parent_path();
}

std::string daemonBinary() {
  auto here = selfDir() / "cellwalld";
  if (fs::exists(here)) return here.string();
  auto sibling = selfDir().parent_path() / "daemon" / "cellwalld";  // build tree layout
  if (fs::exists(sibling)) return sibling.string();
  return "cellwalld";
}

// Starts cellwalld in the background for the lifetime of this command.
cw::Expected<pid_t> startPrivateDaemon() {
  std::error_code ec;
  fs::create_directories(g_state_dir, ec);
  std::string log = (g_state_dir / "cellwalld.log").string();
  std::string bin = daemonBinary();
  pid_t pid = ::fork();
  if (pid < 0) return cw::fail("cannot fork to start cellwalld");
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "a", stdout);
    (void)f;
    ::dup2(STDOUT_FILENO, STDERR_FILENO);
    ::setsid();
    std::string sd = g_state_dir.string();
    ::execlp(bin.c_str(), bin.c_str(), "--state-dir", sd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 300; ++i) {
    if (auto c = Client::connect(socketPath())) return pid;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return cw::fail("cellwalld failed to start; its log is " + log);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(pid, SIGTERM);
  return cw::fail("cellwalld did not come up within 30 s; its log is " + log);
}

// `cellwall run`'s flags.
struct RunOptions {
  std::string app = "app", policy_file, user, env;
  std::vector<std::string> publish;
  bool inspect = false;
  bool vm = false;
  std::string vm_accel;  // "auto", "kvm", "tcg"; empty: cellwalld's vm_accel
  bool clean_env = false;
  std::vector<std::string> pass_env;
  std::uint32_t vm_memory = 256, vm_cpus = 1;
  std::vector<std::string> command;
};

std::string vmInitBinary() {
  for (const auto& p : {selfDir() / "cw-vminit", fs::path("/usr/lib/cellwall/cw-vminit")})
    if (fs::exists(p)) return p.string();
  return (selfDir() / "cw-vminit").string();
}

// What a VM cell needs before the daemon makes it: the guest kernel and the initramfs (built
// once per kernel, in the state directory). The daemon picks the accelerator (vm/accel.h).
struct VmPlan {
  cw::vm::GuestKernel kernel;
  std::string initrd;
};

cw::Expected<VmPlan> planVm() {
  VmPlan plan;
  auto kernel = cw::vm::findGuestKernel();
  if (!kernel) return cw::Unexpected(kernel.error());
  plan.kernel = *kernel;
  auto initrd = cw::vm::ensureInitramfs(plan.kernel, vmInitBinary(), (g_state_dir / "vm").string());
  if (!initrd) return cw::Unexpected(initrd.error());
  plan.initrd = *initrd;
  return plan;
}

// The kernel image to boot. Under emulation the uncompressed kernel boots seconds sooner
// (decompressing is slow there), for ~50 MiB more of QEMU's memory (it keeps a copy of what it
// loaded); with KVM decompressing is quick and the compressed kernel's smaller copy wins.
std::string kernelImage(const VmPlan& plan, cw::vm::Accel accel) {
  if (accel != cw::vm::Accel::kTcg) return plan.kernel.image;
  auto elf = cw::vm::ensureVmlinux(plan.kernel, (g_state_dir / "vm").string());
  if (elf) return *elf;
  std::fprintf(stderr, "cellwall: booting the compressed kernel (slower): %s\n", elf.error().message.c_str());
  return plan.kernel.image;
}

// What the VMM said that matters, in one line: its first error line, else its first line.
std::string vmmLastWords(const cw::cell::VmRunError& e) {
  std::string first, error;
  std::size_t at = 0;
  while (at < e.vmm_said.size()) {
    std::size_t end = e.vmm_said.find('\n', at);
    if (end == std::string::npos) end = e.vmm_said.size();
    std::string line = e.vmm_said.substr(at, end - at);
    at = end + 1;
    if (line.empty()) continue;
    if (first.empty()) first = line;
    if (error.empty() && line.find("error") != std::string::npos) error = line;
  }
  std::string why = !error.empty() ? error : !first.empty() ? first : e.message.substr(0, e.message.find('\n'));
  return why.size() > 300 ? why.substr(0, 300) : why;
}

// Runs the VM cell; when QEMU under KVM (chosen by auto) dies before the guest speaks, tells
// the daemon (which records it and shows the cell as vm/tcg) and runs it again under TCG:
// nothing of the command ran yet.
cw::Result<int, cw::cell::VmRunError> runVm(cw::cell::VmCellSpec spec, const VmPlan& plan,
                                            const cw::api::CellInfo& cell, Client& client) {
  auto r = cw::cell::runVmCell(spec, cw::vm::QemuMicrovm());
  if (r || !r.error().before_guest || spec.vm.accel != cw::vm::Accel::kKvm) return r;
  if (!cell.vm_may_fall_back) {
    r.error().message += "\nQEMU could not start the guest under KVM on this host (--vm-accel kvm); "
                         "--vm-accel tcg, or auto (the default), runs it under software emulation";
    return r;
  }
  auto told = client.call(cw::api::CellVmFallback{cell.id, vmmLastWords(r.error())});
  if (!told || !told->ok) return r;  // the daemon did not take it: report the failure as it is
  std::fprintf(stderr, "cellwall: %s\n", told->text.c_str());
  spec.vm.accel = cw::vm::Accel::kTcg;
  spec.kernel = kernelImage(plan, spec.vm.accel);
  return cw::cell::runVmCell(spec, cw::vm::QemuMicrovm());
}

int cmdRun(const RunOptions& o) {
  if (o.command.empty()) return die("nothing to run: cellwall run --app NAME -- CMD [ARGS...]", 2);
  if (::geteuid() != 0)
    return die(o.vm ? "cellwall run --vm needs root: it attaches the cell's tap and starts the VM in the "
                      "cell's namespaces and cgroup (CAP_NET_ADMIN, CAP_SYS_ADMIN); try sudo"
                    : "cellwall run needs root: it enters network and mount namespaces (CAP_SYS_ADMIN); try sudo",
               2);
  auto target = cw::cell::resolveUser(o.user);
  if (!target) return die(target.error().message, 2);
  if (target->defaulted_to_nobody)
    std::fprintf(stderr, "cellwall: running as root: the app runs as 'nobody' (use --user to choose)\n");
  std::string policy_text;
  if (!o.policy_file.empty()) {
    std::ifstream in(o.policy_file);
    if (!in) return die("cannot read policy file " + o.policy_file, 2);
    policy_text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    // Checked here, where the bytes are: the command's JSON could not carry them to the daemon.
    if (auto bad = cw::policy::checkPolicyText(policy_text, o.policy_file)) return die(bad->str(), 2);
  }
  std::optional<VmPlan> vm;
  if (o.vm) {
    auto plan = planVm();
    if (!plan) return die("cannot start a VM cell: " + plan.error().message, 2);
    vm = *plan;
  }

  pid_t private_daemon = 0;
  int err_no = 0;
  auto client = Client::connect(socketPath(), &err_no);
  if (!client && (err_no == ENOENT || err_no == ECONNREFUSED)) {
    std::fprintf(stderr, "cellwall: no cellwalld running; starting one for this command (log: %s)\n",
                 (g_state_dir / "cellwalld.log").c_str());
    auto pid = startPrivateDaemon();
    if (!pid) return die(pid.error().message);
    private_daemon = *pid;
    client = Client::connect(socketPath());
  }
  if (!client) return die(client.error().message);

  auto stopPrivate = [&] {
    if (private_daemon == 0) return;
    if (auto c = Client::connect(socketPath())) (void)c->call(cw::api::Shutdown{});
    int status = 0;
    ::waitpid(private_daemon, &status, 0);
  };

  cw::api::CellCreate req{o.app, policy_text, o.policy_file, o.env, ::getpid(), o.publish, o.inspect,
                          vm ? "vm" : "netns", vm ? o.vm_accel : ""};
  auto reply = client->call(req);
  if (!reply || !reply->ok || reply->cells.empty()) {
    stopPrivate();
    return die(!reply ? reply.error().message : reply->error);
  }
  const cw::api::CellInfo cell = reply->cells.front();
  // --clean-env, or the app's policy (clean_env = true); the names to pass are both lists.
  cw::cell::EnvFilter env_filter{o.clean_env || cell.clean_env, o.pass_env};
  env_filter.pass.insert(env_filter.pass.end(), cell.pass_env.begin(), cell.pass_env.end());
  for (const auto& at : cell.published_at) std::fprintf(stderr, "cellwall: published %s\n", at.c_str());
  // The daemon made the cell's cgroup and removes it, with whatever is left in it, when the
  // cell ends, also when this process is killed.
  if (cell.cgroup.empty())
    std::fprintf(stderr, "cellwall: warning: cell %s has no cgroup (cellwalld's log says why): its "
                 "processes are not attributed and not killed with it\n", cell.netns.c_str());
  int status = 127;
  if (vm) {
    cw::cell::VmCellSpec spec;
    spec.cell_name = cell.netns;
    spec.netns_path = "/run/netns/" + cell.netns;
    spec.cgroup_dir = cell.cgroup;
    spec.hide_dir = fs::absolute(g_state_dir).string();
    spec.mac = cell.mac;
    spec.ip = cell.ip;
    spec.gateway = cell.gateway;
    spec.mtu = cell.mtu;
    auto resolv = cw::readTextFile(cell.resolv_conf);
    auto hosts = cw::readTextFile(cell.hosts);
    spec.resolv_conf = resolv ? *resolv : "";
    spec.hosts = hosts ? *hosts : "";
    spec.user = *target;
    spec.env = env_filter;
    spec.argv = o.command;
    spec.vm.accel = cell.vm_accel == "kvm" ? cw::vm::Accel::kKvm : cw::vm::Accel::kTcg;
    if (!cell.vm_accel_note.empty()) std::fprintf(stderr, "cellwall: %s\n", cell.vm_accel_note.c_str());
    spec.vm.memory_mib = o.vm_memory;
    spec.vm.cpus = o.vm_cpus;
    spec.kernel = kernelImage(*vm, spec.vm.accel);
    spec.initrd = vm->initrd;
    auto r = runVm(spec, *vm, cell, *client);
    if (r) status = *r;
    else std::fprintf(stderr, "cellwall: %s\n", r.error().message.c_str());
  } else {
    cw::cell::LaunchSpec spec;
    spec.cell_name = cell.netns;
    spec.netns_path = "/run/netns/" + cell.netns;
    spec.resolv_conf = cell.resolv_conf;
    spec.hosts = cell.hosts;
    spec.cgroup_dir = cell.cgroup;
    spec.hide_dir = fs::absolute(g_state_dir).string();
    spec.uid = target->uid;
    spec.gid = target->gid;
    spec.groups = target->groups;
    spec.user_name = target->name;
    spec.home = target->home;
    spec.shell = target->shell;
    spec.env = env_filter;
    spec.argv = o.command;
    auto pid = cw::cell::launch(spec);
    if (!pid) {
      std::fprintf(stderr, "cellwall: %s\n", pid.error().message.c_str());
    } else {
      status = cw::cell::waitForward(*pid);
    }
  }
  if (!client->call(cw::api::CellExit{cell.id, status})) {
    // The daemon restarted while CMD ran: tell the new one.
    if (auto again = Client::connect(socketPath())) (void)again->call(cw::api::CellExit{cell.id, status});
  }
  stopPrivate();
  return status;
}

int printLines(const cw::api::Command& cmd) {
  auto client = Client::connect(socketPath());
  if (!client) return die(client.error().message);
  auto reply = client->call(cmd);
  if (!reply) return die(reply.error().message);
  if (!reply->ok) return die(reply->error);
  for (const auto& l : reply->lines) std::printf("%s\n", l.c_str());
  return 0;
}

// The web UI's address, with the token that opens it.
int cmdUi() {
  auto client = Client::connect(socketPath());
  if (!client) return die(client.error().message + " (is cellwalld running? start it with: cellwall daemon)");
  auto reply = client->callOk(cw::api::UiInfo{});
  if (!reply) return die(reply.error().message);
  std::printf("%s\n", reply->text.c_str());
  return 0;
}

int cmdPs() {
  auto client = Client::connect(socketPath());
  if (!client) return die(client.error().message);
  auto reply = client->call(cw::api::CellList{});
  if (!reply) return die(reply.error().message);
  if (!reply->ok) return die(reply->error);
  std::printf("%-5s %-16s %-10s %-9s %-15s %-17s %-6s %s\n", "ID", "APP", "ENV", "BACKEND", "IP", "MAC",
              "PORT", "NETNS");
  for (const auto& c : reply->cells) {
    // "vm/tcg": a VM cell under software emulation.
    std::string backend = c.backend + (c.vm_accel.empty() ? "" : "/" + c.vm_accel);
    std::printf("%-5u %-16s %-10s %-9s %-15s %-17s %-6u %s\n", c.id, c.app.c_str(), c.env.c_str(),
                backend.c_str(), c.ip.c_str(), c.mac.c_str(), c.ofport, c.netns.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cellwall: every application in its own network cell, behind a switch it cannot bypass"};
  app.require_subcommand(1);
  std::string state_dir;
  if (const char* e = std::getenv("CELLWALL_STATE_DIR")) g_state_dir = e;
  app.add_option("--state-dir", state_dir, "state directory (default /var/lib/cellwall, or $CELLWALL_STATE_DIR)");

  auto* run = app.add_subcommand("run", "run a command in a new cell");
  RunOptions ro;
  run->add_option("--app", ro.app, "application name")->capture_default_str();
  run->add_option("--policy", ro.policy_file, "TOML policy file for this app");
  run->add_option("--user", ro.user, "run as this user (default: the sudo user, else nobody)");
  run->add_option("--env", ro.env, "network environment (default: the policy's, else 'default')");
  run->add_flag("--vm", ro.vm,
                "run CMD in a micro-VM: its own kernel, the host's files read-only (see docs/vm-cells.md)");
  run->add_option("--vm-accel", ro.vm_accel,
                  "the VM's accelerator: auto (KVM when it works, else software emulation; the default, or "
                  "cellwalld's vm_accel), kvm (only KVM), tcg (software emulation only)")
      ->check(CLI::IsMember({"auto", "kvm", "tcg"}));
  run->add_option("--vm-memory", ro.vm_memory, "the VM's memory in MiB")->capture_default_str()->check(CLI::Range(64, 65536));
  run->add_option("--vm-cpus", ro.vm_cpus, "the VM's virtual CPUs")->capture_default_str()->check(CLI::Range(1, 64));
  run->add_flag("--inspect", ro.inspect,
                "inspect mode: every packet of the cell goes through the scripts' inspect_* functions "
                "(slow: see docs/scripts.md)");
  run->add_flag("--clean-env", ro.clean_env,
                "CMD gets only a safe list of environment variables (PATH, locale, terminal, display; "
                "see docs/launcher.md), not the caller's tokens, keys and agent sockets");
  run->add_option("--pass-env", ro.pass_env,
                  "with --clean-env: pass this variable too (NAME, or PREFIX_* for a family; repeatable)")
      ->allow_extra_args(false);
  run->add_option("--publish,-p", ro.publish,
                  "[ADDR:]PORT[:CELLPORT][/udp]: reachable from the environment's uplink (the host "
                  "uplink: 127.0.0.1, or ADDR), subject to inbound rules")
      ->allow_extra_args(false);  // one value per --publish (repeatable): never swallows `--` and CMD
  run->add_option("command", ro.command, "CMD [ARGS...] after --")->required();
  run->prefix_command(false);

  auto* ps = app.add_subcommand("ps", "list cells");
  auto* flows = app.add_subcommand("flows", "show the bridge's flows");
  auto* status = app.add_subcommand("status", "decision counters");
  auto* stop = app.add_subcommand("stop", "stop cellwalld (removes everything it created)");
  auto* daemon = app.add_subcommand("daemon", "run cellwalld in the foreground");
  daemon->allow_extras();

  auto* rules = app.add_subcommand("rules", "list, add, remove, explain, export and import rules");
  rules->require_subcommand(1);
  std::string rules_app;
  bool json = false;
  auto common = [&](CLI::App* sc, bool app_required) {
    auto* o = sc->add_option("--app", rules_app, "application name");
    if (app_required) o->required();
    sc->add_flag("--json", json, "JSON output, one object per line");
  };
  auto* r_list = rules->add_subcommand("list", "the rules in force");
  common(r_list, false);
  bool counters = false;
  r_list->add_flag("--counters", counters,
                   "also the packets and bytes each rule let the app's running cells send and receive");
  auto* r_add = rules->add_subcommand("add", "add a rule (takes effect at once, persisted)");
  common(r_add, true);
  cw::cli::RuleFlags rf;
  bool a_allow = false, a_deny = false, a_reject = false;
  r_add->add_flag("--allow", a_allow, "allow (the default)");
  r_add->add_flag("--deny", a_deny, "drop silently");
  r_add->add_flag("--reject", a_reject, "refuse at once (TCP reset / ICMP unreachable)");
  r_add->add_option("--host", rf.hosts, "host name or *.domain the cell resolved (repeatable)");
  r_add->add_option("--to", rf.to, "address or CIDR (repeatable)");
  r_add->add_option("--from", rf.from, "inbound: remote address or CIDR (repeatable)");
  r_add->add_option("--port,--ports", rf.ports, "port, range lo-hi, or a comma list (repeatable)");
  r_add->add_option("--proto", rf.proto, "tcp | udp | icmp | any");
  r_add->add_flag("--inbound", rf.inbound, "a connection into the cell, to a port it listens on");
  r_add->add_option("--for", rf.for_duration, "lifetime, e.g. 90s, 15m, 1h30m");
  r_add->add_option("--until", rf.until, "end time (RFC 3339) or 'exit' (until the app exits)");
  r_add->add_option("--connections", rf.connections, "admit this many connections, then stop");
  r_add->add_option("--comment", rf.comment, "free text shown with the rule");
  auto* r_rm = rules->add_subcommand("rm", "remove rules by id; their connections are cut");
  std::vector<std::uint32_t> rm_ids;
  r_rm->add_option("id", rm_ids, "rule ids")->required();
  auto* r_explain = rules->add_subcommand("explain", "which rule decides a connection, and why");
  common(r_explain, true);
  cw::api::RulesExplain ex;
  r_explain->add_option("--cell", ex.cell, "use the names this cell resolved");
  r_explain->add_option("--proto", ex.proto, "tcp | udp | icmp")->capture_default_str();
  r_explain->add_flag("--inbound", ex.inbound, "a connection into the cell");
  r_explain->add_option("--pid", ex.pid, "as if this process id owned the connection");
  r_explain->add_option("--exe", ex.exe, "... this executable (absolute path)");
  r_explain->add_option("--process", ex.process, "... this process name");
  r_explain->add_option("--user", ex.user, "... this user (name or uid)");
  r_explain->add_option("--parent", ex.parent, "... this parent executable");
  r_explain->add_option("remote", ex.remote, "address or host name")->required();
  r_explain->add_option("port", ex.port, "port");
  auto* r_export = rules->add_subcommand("export", "print the app's policy as TOML");
  common(r_export, true);
  auto* r_import = rules->add_subcommand("import", "load a TOML policy file for the app");
  common(r_import, true);
  std::string import_file;
  bool merge = false;
  r_import->add_option("file", import_file, "policy file")->required();
  r_import->add_flag("--merge", merge, "add the file's rules instead of replacing the policy");

  auto* logc = app.add_subcommand("log", "the connection log (attributed connections end with their process)");
  std::string log_app;
  bool follow = false, log_json = false;
  std::uint32_t log_limit = 50;
  logc->add_option("--app", log_app, "only this application");
  logc->add_flag("-f,--follow", follow, "keep printing new entries");
  logc->add_flag("--json", log_json, "JSON output, one object per line (with the whole command line)");
  logc->add_option("-n,--limit", log_limit, "entries to show")->capture_default_str();

  auto* namesc = app.add_subcommand("names", "host names a cell resolved (DNS snooping)");
  std::uint32_t names_cell = 0;
  namesc->add_option("cell", names_cell, "cell id (see cellwall ps)")->required();

  auto* promptc = app.add_subcommand("prompt", "answer held connections (apps with default = \"prompt\")");
  bool prompt_json = false, prompt_follow = false;
  promptc->add_flag("--json", prompt_json, "print the open questions as JSON, one per line, and exit");
  promptc->add_flag("-f,--follow", prompt_follow, "with --json: keep printing new questions");

  auto* answerc = app.add_subcommand("answer", "answer one held question");
  cw::api::PromptAnswer ans;
  bool ans_allow = false, ans_deny = false, ans_reject = false, ans_forever = false,
       ans_exit = false, ans_json = false;
  std::string ans_for;
  answerc->add_option("id", ans.id, "question id (cellwall prompt --json)")->required();
  answerc->add_flag("--allow", ans_allow, "allow (the default)");
  answerc->add_flag("--deny", ans_deny, "deny: drop");
  answerc->add_flag("--reject", ans_reject, "reject: refuse at once (TCP RST / ICMP unreachable)");
  answerc->add_option("--scope", ans.scope, "ip (the address), host (the name), domain (*.parent)")
      ->check(CLI::IsMember({"ip", "host", "domain"}))
      ->capture_default_str();
  answerc->add_option("--host", ans.host, "with --scope host/domain: which resolved name");
  answerc->add_flag("--any-port", ans.any_port, "every port, not only the one asked for");
  answerc->add_option("--for", ans_for, "a rule for this long (5m, 1h, 2d)");
  answerc->add_flag("--forever", ans_forever, "a rule with no end");
  answerc->add_flag("--until-exit", ans_exit, "a rule until the app's cells exit");
  answerc->add_option("--connections", ans.connections, "a rule for this many connections");
  answerc->add_flag("--json", ans_json, "JSON output");

  auto* notifyc = app.add_subcommand("notify", "desktop notifications of questions (org.freedesktop.Notifications)");
  auto* uic = app.add_subcommand("ui", "print the web UI's address (with its secret token: keep it to yourself)");

  auto* scriptc = app.add_subcommand("script", "Lua scripts: list, status, load, unload, reload");
  scriptc->require_subcommand(1);
  bool script_json = false;
  std::string script_name, script_file;
  bool script_helper = false;
  auto* s_list = scriptc->add_subcommand("list", "the scripts loaded, their state and calls");
  s_list->add_flag("--json", script_json, "one JSON object per script");
  auto* s_status = scriptc->add_subcommand("status", "a script in detail: counters, flows, its newest log lines");
  s_status->add_option("name", script_name, "the script (default: all)");
  s_status->add_flag("--json", script_json, "one JSON object per script");
  auto* s_load = scriptc->add_subcommand("load", "load a script now and at every start (replaces one of that name)");
  s_load->add_option("file", script_file, "the script's file (NAME.lua)")->required();
  s_load->add_option("--name", script_name, "its name (default: the file's name without .lua)");
  s_load->add_flag("--helper", script_helper, "run it in a helper process (a crash there never touches cellwalld)");
  auto* s_unload = scriptc->add_subcommand("unload", "stop a script (a user script's file is removed)");
  s_unload->add_option("name", script_name, "the script")->required();
  auto* s_reload = scriptc->add_subcommand("reload", "read scripts' files again (a disabled script runs again)");
  s_reload->add_option("name", script_name, "the script (default: all)");

  auto* envc = app.add_subcommand("env", "network environments: list, show, add, rm");
  envc->require_subcommand(1);
  bool env_json = false, env_force = false;
  std::string env_name;
  cw::cli::EnvAddFlags ef;
  auto* e_list = envc->add_subcommand("list", "every environment: state, uplink, pool, DNS, cells");
  e_list->add_flag("--json", env_json, "one JSON object per environment");
  auto* e_show = envc->add_subcommand("show", "one environment in detail, with its definition");
  e_show->add_option("name", env_name, "the environment")->required();
  e_show->add_flag("--json", env_json, "JSON output");
  auto* e_add = envc->add_subcommand("add", "add an environment, started now and at every start");
  e_add->add_option("name", ef.name, "its name: 1 to 10 of a-z, 0-9 and -");
  e_add->add_option("--file", ef.file, "a TOML file with one [env.NAME] table (cellwalld.toml's keys) instead of flags");
  e_add->add_option("--uplink", ef.uplink, "host, host-nat, netns, interface, wireguard or openvpn")
      ->check(CLI::IsMember({"host", "host-nat", "netns", "interface", "wireguard", "openvpn"}))
      ->capture_default_str();
  e_add->add_option("--config", ef.config, "wireguard, openvpn: the configuration file");
  e_add->add_option("--carrier", ef.carrier,
                    "wireguard, openvpn: how the tunnel reaches its server (host, host-nat, netns, interface)")
      ->check(CLI::IsMember({"host", "host-nat", "netns", "interface"}))
      ->capture_default_str();
  e_add->add_option("--pool", ef.pool, "its cells' addresses (default 10.200.0.0/16)");
  e_add->add_option("--dns", ef.dns, "DNS servers (default: the tunnel's, or the host's resolver)");
  e_add->add_option("--search", ef.search, "search domains for its cells");
  e_add->add_option("--route", ef.routes, "\"PREFIX via ADDRESS\" through the uplink (VPN: needs --no-kill-switch)");
  e_add->add_flag("--no-kill-switch", ef.no_kill_switch, "VPN: fall back to the carrier while the tunnel is down");
  e_add->add_option("--netns", ef.netns, "netns uplink or carrier: the namespace");
  e_add->add_option("--interface", ef.interface, "interface uplink or carrier: the host's interface (moved into the gateway)");
  e_add->add_option("--address", ef.address, "veth uplink or carrier: the gateway's side, ADDRESS/PREFIX");
  e_add->add_option("--peer-address", ef.peer_address, "veth uplink or carrier: the other side, ADDRESS/PREFIX");
  e_add->add_option("--next-hop", ef.next_hop, "veth uplink or carrier: the gateway's next hop");
  e_add->add_flag("--json", env_json, "JSON output");
  auto* e_rm = envc->add_subcommand("rm", "remove an environment added with env add");
  e_rm->add_option("name", env_name, "the environment")->required();
  e_rm->add_flag("--force", env_force, "end the cells that live in it");

  CLI11_PARSE(app, argc, argv);
  if (!state_dir.empty()) g_state_dir = state_dir;

  if (*run) {
    if (!ro.vm && (run->count("--vm-memory") > 0 || run->count("--vm-cpus") > 0 || run->count("--vm-accel") > 0))
      return die("--vm-accel, --vm-memory and --vm-cpus need --vm", 2);
    if (!ro.pass_env.empty() && !ro.clean_env)
      return die("--pass-env needs --clean-env: without it every variable is passed already", 2);
    return cmdRun(ro);
  }
  if (*rules || *logc || *namesc || *promptc || *answerc || *notifyc || *scriptc || *envc) {
    auto client = Client::connect(socketPath());
    if (!client) return die(client.error().message + " (is cellwalld running? start it with: cellwall daemon)");
    if (*r_list) return cw::cli::rulesList(*client, rules_app, json, counters);
    if (*r_add) {
      if (a_allow + a_deny + a_reject > 1) return die("choose one of --allow, --deny, --reject", 2);
      rf.action = a_deny ? "deny" : a_reject ? "reject" : "allow";
      return cw::cli::rulesAdd(*client, rules_app, rf, json);
    }
    if (*r_rm) return cw::cli::rulesRemove(*client, rm_ids);
    if (*r_explain) {
      ex.app = rules_app;
      return cw::cli::rulesExplain(*client, ex, json);
    }
    if (*r_export) return cw::cli::rulesExport(*client, rules_app);
    if (*r_import) return cw::cli::rulesImport(*client, rules_app, import_file, merge);
    if (*logc) return cw::cli::log(*client, log_app, follow, log_json, log_limit);
    if (*namesc) return cw::cli::names(*client, names_cell);
    if (*notifyc) return cw::cli::notify(*client);
    if (*e_list) return cw::cli::envList(*client, env_json);
    if (*e_show) return cw::cli::envShow(*client, env_name, env_json);
    if (*e_add) return cw::cli::envAdd(*client, ef, env_json);
    if (*e_rm) return cw::cli::envRemove(*client, env_name, env_force);
    if (*s_list) return cw::cli::scriptList(*client, script_json);
    if (*s_status) return cw::cli::scriptStatus(*client, script_name, script_json);
    if (*s_load) return cw::cli::scriptLoad(*client, script_file, script_name, script_helper);
    if (*s_unload) return cw::cli::scriptUnload(*client, script_name);
    if (*s_reload) return cw::cli::scriptReload(*client, script_name);
    if (*promptc) {
      if (prompt_json || prompt_follow) return cw::cli::promptList(*client, prompt_json, prompt_follow);
      return cw::cli::promptInteractive(*client);
    }
    if (*answerc) {
      if (ans_allow + ans_deny + ans_reject > 1) return die("choose one of --allow, --deny, --reject", 2);
      if (!ans_for.empty() + ans_forever + ans_exit > 1)
        return die("choose one of --for, --forever, --until-exit (default: once)", 2);
      ans.action = ans_deny ? "deny" : ans_reject ? "reject" : "allow";
      ans.lifetime = !ans_for.empty() ? ans_for : ans_forever ? "forever" : ans_exit ? "exit" : "once";
      return cw::cli::answer(*client, ans, ans_json);
    }
  }
  if (*uic) return cmdUi();
  if (*ps) return cmdPs();
  if (*flows) return printLines(cw::api::FlowDump{});
  if (*status) return printLines(cw::api::Status{});
  if (*stop) return printLines(cw::api::Shutdown{});
  if (*daemon) {
    std::string bin = daemonBinary();
    std::vector<std::string> args{bin, "--state-dir", g_state_dir.string()};
    for (const auto& x : daemon->remaining()) args.push_back(x);
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    ::execvp(bin.c_str(), cargs.data());
    return die("cannot run " + bin + ": " + std::strerror(errno));
  }
  return 0;
}
