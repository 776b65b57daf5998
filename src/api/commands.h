// The one typed command set of cellwall. The CLI (and later the REST API and the web UI) only
// parse into these; the daemon only executes these. The wire form is one JSON object per line
// on the daemon's UNIX socket: {"cmd": "<name>", ...fields} -> {"ok": true, ...} or
// {"ok": false, "error": "..."}.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/result.h"

namespace cw::api {

// Creates a cell for `app` and plugs it into the bridge. The cell lives until CellExit, or
// until the connection that created it closes.
struct CellCreate {
  std::string app;
  std::string policy_text;    // TOML; empty: the daemon's policy for the app (or default deny)
  std::string policy_origin;  // file name for error messages
  std::string env;            // empty: the policy's env
  std::int64_t launcher_pid = 0;
  // Ports to make reachable from the environment's uplink: "PORT[:CELLPORT][/tcp|/udp]".
  std::vector<std::string> publish;
  // Inspect mode: every packet of the cell goes through the scripts' inspect_* functions.
  bool inspect = false;
  // "netns" (the default) or "vm": a micro-VM whose NIC is a tap on the switch
  // (docs/vm-cells.md). vm_accel is the launcher's `--vm-accel` ("auto", "kvm", "tcg"; empty:
  // the daemon's vm_accel): the daemon decides (vm/accel.h) and answers in CellInfo.
  std::string backend = "netns";
  std::string vm_accel;
};
struct CellInfo {
  std::uint32_t id = 0;
  std::string app, env, netns, ifname_host;
  std::string ip, mac, gateway;  // gateway is also the cell's DNS server
  std::uint32_t prefix_length = 32;
  std::uint32_t ofport = 0;
  std::string resolv_conf, hosts;  // files to bind-mount over /etc/resolv.conf and /etc/hosts
  std::string cgroup;              // cgroup v2 directory for the cell's processes ("" if none)
  std::int64_t launcher_pid = 0;
  std::int64_t created_unix = 0;
  std::vector<std::string> published;     // "UPLINKPORT:CELLPORT/PROTO"
  std::vector<std::string> published_at;  // per published port, where it listens, for people
  bool inspect = false;                   // inspect mode: every packet through the scripts
  std::string backend = "netns";          // "netns" or "vm" (CellCreate::backend)
  std::string vm_accel;                   // a VM cell's "kvm" or "tcg"
  std::string vm_accel_note;              // why "tcg", for the launcher to print
  bool vm_may_fall_back = false;          // "kvm" chosen by auto: CellVmFallback if QEMU dies early
  std::uint32_t mtu = 0;                  // the cell NIC's MTU; 0: the default (1500)
  // The app's policy keys clean_env and pass_env, for the launcher (docs/launcher.md): the
  // command then gets only the safe list of variables, plus these names.
  bool clean_env = false;
  std::vector<std::string> pass_env;
};
struct CellExit {
  std::uint32_t id = 0;
  int exit_status = 0;
};
// The launcher of VM cell `id`, started under KVM by mode auto, saw QEMU die before the
// guest's init spoke (`why`: what QEMU said). The daemon records that KVM is unusable on this
// host (vm/accel.h), logs it, and shows the cell as vm/tcg; the launcher starts the VM again
// under TCG and prints the reply's text.
struct CellVmFallback {
  std::uint32_t id = 0;
  std::string why;
};
struct CellList {};
struct FlowDump {};
struct Status {};
struct Shutdown {};

// ---- rules (persisted per app; docs/policy.md) ----
struct RuleInfo {
  std::uint32_t id = 0;
  std::string app, action;
  std::string text;    // the rule in the policy language (one [[rule]] table)
  std::string origin;  // "file.toml:12", "cli", "prompt"...
  std::int64_t created_ms = 0;
  std::int64_t expires_ms = 0;  // 0: no time limit
  std::uint32_t connections_max = 0, connections_used = 0;  // max 0: no count limit
  bool until_exit = false;
};
struct RulesList {
  std::string app;  // empty: every app
  // Also each rule's packets and bytes (Reply::counters), read from the bridge's count table
  // (docs/pipeline.md, table 7): what the app's running cells sent and received by each rule.
  bool counters = false;
};
// What one rule (or what no rule: a script, a prompt's answer, the controller) let an app's
// cells send and receive, summed over its cells that are running; a cell's counts go with it.
struct RuleCounters {
  std::string app;
  std::uint32_t rule = 0;      // source "rule": the rule's id, 0 the app's default
  std::string source = "rule";  // "rule", "script", "prompt", "controller", "other" (not attributed yet)
  std::uint64_t sent_packets = 0, sent_bytes = 0, received_packets = 0, received_bytes = 0;
};
struct RuleAdd {
  std::string app;
  std::string rule_text;  // one rule in the policy language ([[rule]] table or its keys)
};
struct RuleRemove {
  std::uint32_t id = 0;
};
// Which rule decides a connection (by address, or by a host name the cell resolved).
struct RulesExplain {
  std::string app;
  std::uint32_t cell = 0;  // 0: no cell's names (address rules only, or `remote` as a name)
  std::string proto = "tcp";
  std::string remote;      // an address, or a host name
  std::uint16_t port = 0;
  bool inbound = false;
  // As if this process owned the connection (pid 0 and the rest empty: not attributed).
  std::uint32_t pid = 0;
  std::string exe, process, user, parent;  // user: a name or a uid
};
// Edits a rule: same id and app, new text (docs/policy.md); its connection count restarts.
struct RuleReplace {
  std::uint32_t id = 0;
  std::string rule_text;
};
struct PolicyExport {
  std::string app;
};
struct PolicyImport {
  std::string app;
  std::string text;
  std::string origin;  // the file's name, for error messages
  bool merge = false;  // add the file's rules instead of replacing the app's policy
};
struct LogQuery {
  std::string app;           // empty: every app
  std::int64_t after_id = 0;  // only entries newer than this id (for --follow)
  std::uint32_t limit = 50;
};
// The process inside the cell that owns a connection (pid 0: not attributed).
struct ProcessRef {
  std::uint32_t pid = 0, uid = 0;
  std::string user, exe, cmdline;
  bool exited = false;  // gone when it was looked up: exe and cmdline unknown
  // Why there is no process (pid 0) when that is known, e.g. "not visible (VM cell)".
  std::string note;
};
struct LogEntry {
  std::int64_t id = 0, time_ms = 0;
  std::string app;
  std::uint32_t cell = 0;
  std::string proto, remote_ip;
  std::uint16_t remote_port = 0;
  std::string names, verdict;
  std::uint32_t rule_id = 0;
  std::string reason;
  std::uint64_t packets = 0, bytes = 0;
  ProcessRef process;
};
// What decided a logged connection, as `cellwall log` and the web UI show it: the rule's id
// ("12"), the Lua script whose verdict it was ("script:telnet_block"; the reason says so), or
// "default" (the app's default, and whatever else no rule decided). In the JSON form too, as
// "decided_by".
std::string decidedBy(const LogEntry& e);

struct NamesQuery {
  std::uint32_t cell = 0;
};

// ---- prompts: connections held for an answer (an app's default = "prompt") ----
struct PromptInfo {
  std::uint64_t id = 0;
  std::string app;
  std::uint32_t cell = 0;
  std::string proto, remote_ip;
  std::uint16_t remote_port = 0;
  std::string names;  // comma-separated, as the cell resolved them
  std::int64_t asked_ms = 0;      // unix ms
  std::int64_t timeout_in_ms = 0;  // left before the timeout action applies
  std::string timeout_action;
  std::uint32_t connections = 0;
  ProcessRef process;  // who asked (the first held connection's owner)
};
// The open questions. With wait_ms > 0 and nothing newer than `after_version`, the answer
// waits (up to wait_ms) until a question opens or closes: how `cellwall prompt` and the UI
// learn of a new question at once.
struct PromptList {
  std::uint64_t after_version = 0;
  std::uint32_t wait_ms = 0;
};
// An answer. lifetime: "once" (these held connections only, no rule), "forever", "exit"
// (until the app's cells exit), or a duration ("5m", "1h"); connections, when given, limits
// the rule to that many connections (1-1000000, as in a policy file: 0 is refused, not read as
// "no limit"; leave it out for no limit). scope: "ip", "host" (a name the cell resolved;
// `host` picks it, default the first), "domain" (*. of that name's parent); any_port: every
// port.
struct PromptAnswer {
  std::uint64_t id = 0;
  std::string action = "allow";
  std::string scope = "ip";
  std::string host;
  bool any_port = false;
  std::string lifetime = "once";
  std::optional<std::uint32_t> connections;  // on the wire only when given
};

// The web UI's address with its token (reply text), for `cellwall ui`.
struct UiInfo {};

// ---- Lua scripts (docs/scripts.md) ----
struct ScriptInfo {
  std::string name, origin, path, mode;  // origin "shipped" | "user"; mode "in-process" | "helper"
  std::string state, why;                // "running" | "disabled" (why)
  std::uint64_t calls = 0, allowed = 0, dropped = 0, rejected = 0, flows = 0;
  std::uint64_t inspected = 0;  // packets of inspected cells (inspect mode) it saw
  std::uint64_t memory = 0, filters = 0;
  std::int64_t loaded_ms = 0;  // unix ms
  std::vector<std::pair<std::string, std::int64_t>> counters;  // count(name, n)
  std::vector<std::string> logs;  // the newest log() lines
};
struct ScriptList {};
// A user script: its text is kept as <state>/scripts/NAME.lua (so it loads at every start)
// and loaded now, replacing one of that name. helper: run it in a helper process.
struct ScriptLoad {
  std::string name, text, origin;  // origin: the file it came from, for messages
  bool helper = false;
};
struct ScriptUnload {
  std::string name;
};
struct ScriptReload {
  std::string name;  // empty: every script
};

// ---- network environments (docs/environments.md) ----
struct EnvInfo {
  std::string name;
  std::string origin;            // the configuration file, or the stored file (`cellwall env add`)
  bool stored = false;           // added with `cellwall env add` (and so removable with env rm)
  std::string state;             // "up", "down" (its tunnel is not connected), "failed"
  std::string error;             // why it failed, or the tunnel's last restart failure
  std::string uplink, carrier;   // "host", "host-nat", "netns", "wireguard", "openvpn"
  std::string pool, gateway;
  std::vector<std::string> dns, search, routes;
  bool kill_switch = false;
  std::uint32_t tunnel_restarts = 0;
  std::uint32_t cells = 0;
  std::string definition;        // its [env.NAME] table as stored, or the uplink's config file
};
struct EnvList {};
// Stores an environment (its [env.NAME] table, the keys of cellwalld.toml) as
// <state>/envs/NAME.toml and starts it now and at every start.
struct EnvAdd {
  std::string toml;
  std::string origin;  // where the text came from, for messages ("cli", a file name)
};
// Stops and forgets a stored environment. Refused while cells live in it, unless force
// (which ends them).
struct EnvRemove {
  std::string name;
  bool force = false;
};

using Command = std::variant<CellCreate, CellExit, CellVmFallback, CellList, FlowDump, Status, Shutdown, RulesList,
                             RuleAdd, RuleRemove, RuleReplace, RulesExplain, PolicyExport, PolicyImport,
                             LogQuery, NamesQuery, PromptList, PromptAnswer, UiInfo, ScriptList,
                             ScriptLoad, ScriptUnload, ScriptReload, EnvList, EnvAdd, EnvRemove>;

// Replies.
struct Reply {
  bool ok = true;
  std::string error;
  std::vector<CellInfo> cells;     // CellCreate (one), CellList
  std::vector<std::string> lines;  // FlowDump, Status, RulesExplain, NamesQuery
  std::vector<RuleInfo> rules;     // RulesList, RuleAdd (the new rule)
  std::vector<RuleCounters> counters;  // RulesList with counters: one per (app, rule or source) counted
  std::vector<LogEntry> log;       // LogQuery, oldest first
  std::string text;                // PolicyExport, UiInfo, CellVmFallback
  std::vector<PromptInfo> prompts;  // PromptList
  std::uint64_t version = 0;        // PromptList: pass back as after_version to wait for news
  std::vector<ScriptInfo> scripts;  // ScriptList, ScriptLoad/ScriptReload (those loaded)
  std::vector<EnvInfo> envs;        // EnvList, EnvAdd (the new one)

  static Reply failed(std::string why) {
    Reply r;
    r.ok = false;
    r.error = std::move(why);
    return r;
  }
};

// A command's wire text. Fails when a string in it is not UTF-8 (a file saved as Latin-1):
// JSON cannot carry such bytes, and replacing them would change what the daemon is told (a
// policy file's text, a script) without anyone noticing.
Expected<std::string> encodeCommand(const Command& c);
// The JSON objects `--json` output prints (the same as on the wire).
std::string ruleInfoJsonText(const RuleInfo& r);
std::string logEntryJsonText(const LogEntry& e);
std::string promptInfoJsonText(const PromptInfo& p);
std::string scriptInfoJsonText(const ScriptInfo& s);
std::string ruleCountersJsonText(const RuleCounters& c);
std::string envInfoJsonText(const EnvInfo& e);
Expected<Command> decodeCommand(const std::string& line);
std::string encodeReply(const Reply& r);
Expected<Reply> decodeReply(const std::string& line);

}  // namespace cw::api
