#include "api/commands.h"

#include <algorithm>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

namespace cw::api {

namespace {

using nlohmann::json;

// The wire text. Strings from a cell (a process's argv, which it chooses) need not be UTF-8:
// bytes that are not are sent as U+FFFD instead of failing the whole reply.
std::string wire(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json cellToJson(const CellInfo& c) {
  return json{{"id", c.id},           {"app", c.app},
              {"env", c.env},         {"netns", c.netns},
              {"ifname_host", c.ifname_host}, {"ip", c.ip},
              {"mac", c.mac},         {"gateway", c.gateway},
              {"prefix_length", c.prefix_length}, {"ofport", c.ofport},
              {"resolv_conf", c.resolv_conf}, {"hosts", c.hosts},
              {"cgroup", c.cgroup},   {"launcher_pid", c.launcher_pid},
              {"created_unix", c.created_unix}, {"published", c.published},
              {"published_at", c.published_at}, {"inspect", c.inspect},
              {"backend", c.backend}, {"vm_accel", c.vm_accel}, {"vm_accel_note", c.vm_accel_note},
              {"vm_may_fall_back", c.vm_may_fall_back}, {"mtu", c.mtu},
              {"clean_env", c.clean_env}, {"pass_env", c.pass_env}};
}

CellInfo cellFromJson(const json& j) {
  CellInfo c;
  c.id = j.value("id", 0u);
  c.app = j.value("app", "");
  c.env = j.value("env", "");
  c.netns = j.value("netns", "");
  c.ifname_host = j.value("ifname_host", "");
  c.ip = j.value("ip", "");
  c.mac = j.value("mac", "");
  c.gateway = j.value("gateway", "");
  c.prefix_length = j.value("prefix_length", 32u);
  c.ofport = j.value("ofport", 0u);
  c.resolv_conf = j.value("resolv_conf", "");
  c.hosts = j.value("hosts", "");
  c.cgroup = j.value("cgroup", "");
  c.launcher_pid = j.value("launcher_pid", std::int64_t{0});
  c.created_unix = j.value("created_unix", std::int64_t{0});
  if (j.contains("published")) c.published = j["published"].get<std::vector<std::string>>();
  if (j.contains("published_at"))
    c.published_at = j["published_at"].get<std::vector<std::string>>();
  c.inspect = j.value("inspect", false);
  c.backend = j.value("backend", "netns");
  c.vm_accel = j.value("vm_accel", "");
  c.vm_accel_note = j.value("vm_accel_note", "");
  c.vm_may_fall_back = j.value("vm_may_fall_back", false);
  c.mtu = j.value("mtu", 0u);
  c.clean_env = j.value("clean_env", false);
  if (j.contains("pass_env")) c.pass_env = j["pass_env"].get<std::vector<std::string>>();
  return c;
}

json processToJson(const ProcessRef& p) {
  return json{{"pid", p.pid}, {"uid", p.uid}, {"user", p.user}, {"exe", p.exe}, {"cmdline", p.cmdline},
              {"exited", p.exited}, {"note", p.note}};
}

ProcessRef processFromJson(const json& j) {
  ProcessRef p;
  if (!j.is_object()) return p;
  p.pid = j.value("pid", 0u);
  p.uid = j.value("uid", 0u);
  p.user = j.value("user", "");
  p.exe = j.value("exe", "");
  p.cmdline = j.value("cmdline", "");
  p.exited = j.value("exited", false);
  p.note = j.value("note", "");
  return p;
}

json promptToJson(const PromptInfo& p) {
  return json{{"id", p.id},
              {"app", p.app},
              {"cell", p.cell},
              {"proto", p.proto},
              {"remote_ip", p.remote_ip},
              {"remote_port", p.remote_port},
              {"names", p.names},
              {"asked_ms", p.asked_ms},
              {"timeout_in_ms", p.timeout_in_ms},
              {"timeout_action", p.timeout_action},
              {"connections", p.connections},
              {"process", processToJson(p.process)}};
}

PromptInfo promptFromJson(const json& j) {
  PromptInfo p;
  p.id = j.value("id", std::uint64_t{0});
  p.app = j.value("app", "");
  p.cell = j.value("cell", 0u);
  p.proto = j.value("proto", "");
  p.remote_ip = j.value("remote_ip", "");
  p.remote_port = j.value("remote_port", std::uint16_t{0});
  p.names = j.value("names", "");
  p.asked_ms = j.value("asked_ms", std::int64_t{0});
  p.timeout_in_ms = j.value("timeout_in_ms", std::int64_t{0});
  p.timeout_action = j.value("timeout_action", "");
  p.connections = j.value("connections", 0u);
  if (j.contains("process")) p.process = processFromJson(j["process"]);
  return p;
}

json ruleToJson(const RuleInfo& r) {
  return json{{"id", r.id},         {"app", r.app},
              {"action", r.action}, {"text", r.text},
              {"origin", r.origin}, {"created_ms", r.created_ms},
              {"expires_ms", r.expires_ms}, {"connections_max", r.connections_max},
              {"connections_used", r.connections_used}, {"until_exit", r.until_exit}};
}

RuleInfo ruleFromJson(const json& j) {
  RuleInfo r;
  r.id = j.value("id", 0u);
  r.app = j.value("app", "");
  r.action = j.value("action", "");
  r.text = j.value("text", "");
  r.origin = j.value("origin", "");
  r.created_ms = j.value("created_ms", std::int64_t{0});
  r.expires_ms = j.value("expires_ms", std::int64_t{0});
  r.connections_max = j.value("connections_max", 0u);
  r.connections_used = j.value("connections_used", 0u);
  r.until_exit = j.value("until_exit", false);
  return r;
}

json logToJson(const LogEntry& e) {
  return json{{"id", e.id},       {"time_ms", e.time_ms},   {"app", e.app},
              {"cell", e.cell},   {"proto", e.proto},       {"remote_ip", e.remote_ip},
              {"remote_port", e.remote_port}, {"names", e.names}, {"verdict", e.verdict},
              {"rule_id", e.rule_id}, {"reason", e.reason}, {"packets", e.packets},
              {"bytes", e.bytes}, {"process", processToJson(e.process)}, {"decided_by", decidedBy(e)}};
}

LogEntry logFromJson(const json& j) {
  LogEntry e;
  e.id = j.value("id", std::int64_t{0});
  e.time_ms = j.value("time_ms", std::int64_t{0});
  e.app = j.value("app", "");
  e.cell = j.value("cell", 0u);
  e.proto = j.value("proto", "");
  e.remote_ip = j.value("remote_ip", "");
  e.remote_port = j.value("remote_port", std::uint16_t{0});
  e.names = j.value("names", "");
  e.verdict = j.value("verdict", "");
  e.rule_id = j.value("rule_id", 0u);
  e.reason = j.value("reason", "");
  e.packets = j.value("packets", std::uint64_t{0});
  e.bytes = j.value("bytes", std::uint64_t{0});
  if (j.contains("process")) e.process = processFromJson(j["process"]);
  return e;
}

}  // namespace

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RuleCounters, app, rule, source, sent_packets, sent_bytes,
                                                received_packets, received_bytes)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ScriptInfo, name, origin, path, mode, state, why, calls,
                                                allowed, dropped, rejected, flows, inspected, memory, filters,
                                                loaded_ms, counters, logs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EnvInfo, name, origin, stored, state, error, uplink, carrier, pool,
                                                gateway, dns, search, routes, kill_switch, tunnel_restarts, cells,
                                                definition)

namespace {

// No field of a command or reply is a fraction, and converting one that is out of an integer's
// range is undefined behaviour: such a message is refused whole. (A loop, not recursion: a
// message may nest as deep as its size allows.)
bool hasFraction(const json& root) {
  std::vector<const json*> todo{&root};
  while (!todo.empty()) {
    const json* j = todo.back();
    todo.pop_back();
    if (j->is_number_float()) return true;
    if (j->is_structured())
      for (const auto& x : *j) todo.push_back(&x);
  }
  return false;
}

}  // namespace

std::string decidedBy(const LogEntry& e) {
  if (e.rule_id != 0) return std::to_string(e.rule_id);
  // The daemon logs a script's verdict with the reason "script:NAME" (path/observer.cc).
  if (e.reason.starts_with("script:") && e.reason.size() > 7) return e.reason;
  return "default";
}

std::string ruleInfoJsonText(const RuleInfo& r) { return wire(ruleToJson(r)); }
std::string logEntryJsonText(const LogEntry& e) { return wire(logToJson(e)); }
std::string promptInfoJsonText(const PromptInfo& p) { return wire(promptToJson(p)); }
std::string scriptInfoJsonText(const ScriptInfo& s) { return wire(json(s)); }
std::string ruleCountersJsonText(const RuleCounters& c) { return wire(json(c)); }
std::string envInfoJsonText(const EnvInfo& e) { return wire(json(e)); }

Expected<std::string> encodeCommand(const Command& c) {
  json j = std::visit(
      [](const auto& m) -> json {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, CellCreate>)
          return {{"cmd", "cell.create"}, {"app", m.app}, {"policy_text", m.policy_text},
                  {"policy_origin", m.policy_origin}, {"env", m.env},
                  {"launcher_pid", m.launcher_pid}, {"publish", m.publish}, {"inspect", m.inspect},
                  {"backend", m.backend}, {"vm_accel", m.vm_accel}};
        else if constexpr (std::is_same_v<M, CellExit>)
          return {{"cmd", "cell.exit"}, {"id", m.id}, {"exit_status", m.exit_status}};
        else if constexpr (std::is_same_v<M, CellVmFallback>)
          return {{"cmd", "cell.vm_fallback"}, {"id", m.id}, {"why", m.why}};
        else if constexpr (std::is_same_v<M, CellList>)
          return {{"cmd", "cell.list"}};
        else if constexpr (std::is_same_v<M, FlowDump>)
          return {{"cmd", "flows"}};
        else if constexpr (std::is_same_v<M, Status>)
          return {{"cmd", "status"}};
        else if constexpr (std::is_same_v<M, RulesList>)
          return {{"cmd", "rules.list"}, {"app", m.app}, {"counters", m.counters}};
        else if constexpr (std::is_same_v<M, RuleAdd>)
          return {{"cmd", "rules.add"}, {"app", m.app}, {"rule_text", m.rule_text}};
        else if constexpr (std::is_same_v<M, RuleRemove>)
          return {{"cmd", "rules.rm"}, {"id", m.id}};
        else if constexpr (std::is_same_v<M, RuleReplace>)
          return {{"cmd", "rules.replace"}, {"id", m.id}, {"rule_text", m.rule_text}};
        else if constexpr (std::is_same_v<M, UiInfo>)
          return {{"cmd", "ui"}};
        else if constexpr (std::is_same_v<M, RulesExplain>)
          return {{"cmd", "rules.explain"}, {"app", m.app}, {"cell", m.cell}, {"proto", m.proto},
                  {"remote", m.remote}, {"port", m.port}, {"inbound", m.inbound}, {"pid", m.pid},
                  {"exe", m.exe}, {"process", m.process}, {"user", m.user}, {"parent", m.parent}};
        else if constexpr (std::is_same_v<M, PolicyExport>)
          return {{"cmd", "rules.export"}, {"app", m.app}};
        else if constexpr (std::is_same_v<M, PolicyImport>)
          return {{"cmd", "rules.import"}, {"app", m.app}, {"text", m.text},
                  {"origin", m.origin}, {"merge", m.merge}};
        else if constexpr (std::is_same_v<M, LogQuery>)
          return {{"cmd", "log"}, {"app", m.app}, {"after_id", m.after_id}, {"limit", m.limit}};
        else if constexpr (std::is_same_v<M, NamesQuery>)
          return {{"cmd", "names"}, {"cell", m.cell}};
        else if constexpr (std::is_same_v<M, PromptList>)
          return {{"cmd", "prompt.list"}, {"after_version", m.after_version}, {"wait_ms", m.wait_ms}};
        else if constexpr (std::is_same_v<M, PromptAnswer>) {
          json a{{"cmd", "prompt.answer"}, {"id", m.id}, {"action", m.action}, {"scope", m.scope},
                 {"host", m.host}, {"any_port", m.any_port}, {"lifetime", m.lifetime}};
          if (m.connections) a["connections"] = *m.connections;
          return a;
        }
        else if constexpr (std::is_same_v<M, Shutdown>)
          return {{"cmd", "shutdown"}};
        else if constexpr (std::is_same_v<M, ScriptList>)
          return {{"cmd", "script.list"}};
        else if constexpr (std::is_same_v<M, ScriptLoad>)
          return {{"cmd", "script.load"}, {"name", m.name}, {"text", m.text}, {"origin", m.origin},
                  {"helper", m.helper}};
        else if constexpr (std::is_same_v<M, ScriptUnload>)
          return {{"cmd", "script.unload"}, {"name", m.name}};
        else if constexpr (std::is_same_v<M, ScriptReload>)
          return {{"cmd", "script.reload"}, {"name", m.name}};
        else if constexpr (std::is_same_v<M, EnvList>)
          return {{"cmd", "env.list"}};
        else if constexpr (std::is_same_v<M, EnvAdd>)
          return {{"cmd", "env.add"}, {"toml", m.toml}, {"origin", m.origin}};
        else if constexpr (std::is_same_v<M, EnvRemove>)
          return {{"cmd", "env.rm"}, {"name", m.name}, {"force", m.force}};
        else
          static_assert(sizeof(M) == 0, "a command without a wire form");
      },
      c);
  try {
    return j.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::type_error&) {
    return fail("its text is not valid UTF-8 (a file saved in another encoding, such as Latin-1?): "
                "save it as UTF-8");
  }
}

Expected<Command> decodeCommand(const std::string& line) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("request is not a JSON object");
  if (hasFraction(j)) return fail("bad request: numbers are whole numbers");
  try {
    std::string cmd = j.value("cmd", "");
    if (cmd == "cell.create")
      return Command{CellCreate{j.value("app", ""), j.value("policy_text", ""),
                                j.value("policy_origin", ""), j.value("env", ""),
                                j.value("launcher_pid", std::int64_t{0}),
                                j.value("publish", std::vector<std::string>{}), j.value("inspect", false),
                                j.value("backend", "netns"), j.value("vm_accel", "")}};
    if (cmd == "cell.exit") return Command{CellExit{j.value("id", 0u), j.value("exit_status", 0)}};
    if (cmd == "cell.vm_fallback") return Command{CellVmFallback{j.value("id", 0u), j.value("why", "")}};
    if (cmd == "cell.list") return Command{CellList{}};
    if (cmd == "flows") return Command{FlowDump{}};
    if (cmd == "status") return Command{Status{}};
    if (cmd == "shutdown") return Command{Shutdown{}};
    if (cmd == "rules.list") return Command{RulesList{j.value("app", ""), j.value("counters", false)}};
    if (cmd == "rules.add") return Command{RuleAdd{j.value("app", ""), j.value("rule_text", "")}};
    if (cmd == "rules.rm") return Command{RuleRemove{j.value("id", 0u)}};
    if (cmd == "rules.replace") return Command{RuleReplace{j.value("id", 0u), j.value("rule_text", "")}};
    if (cmd == "ui") return Command{UiInfo{}};
    if (cmd == "rules.explain")
      return Command{RulesExplain{j.value("app", ""), j.value("cell", 0u), j.value("proto", "tcp"),
                                  j.value("remote", ""), j.value("port", std::uint16_t{0}),
                                  j.value("inbound", false), j.value("pid", 0u), j.value("exe", ""),
                                  j.value("process", ""), j.value("user", ""), j.value("parent", "")}};
    if (cmd == "rules.export") return Command{PolicyExport{j.value("app", "")}};
    if (cmd == "rules.import")
      return Command{PolicyImport{j.value("app", ""), j.value("text", ""), j.value("origin", ""),
                                  j.value("merge", false)}};
    if (cmd == "log")
      return Command{LogQuery{j.value("app", ""), j.value("after_id", std::int64_t{0}),
                              j.value("limit", 50u)}};
    if (cmd == "names") return Command{NamesQuery{j.value("cell", 0u)}};
    if (cmd == "prompt.list")
      return Command{PromptList{j.value("after_version", std::uint64_t{0}), j.value("wait_ms", 0u)}};
    if (cmd == "prompt.answer") {
      PromptAnswer a{j.value("id", std::uint64_t{0}), j.value("action", "allow"), j.value("scope", "ip"),
                     j.value("host", ""), j.value("any_port", false), j.value("lifetime", "once"),
                     std::nullopt};
      // Absent or null: no count. A number, 0 included, is a count (the daemon refuses 0).
      // Read wide and saturated, so that 2^32 + 1 is refused as too many instead of wrapping to 1.
      if (auto it = j.find("connections"); it != j.end() && !it->is_null()) {
        if (!it->is_number_unsigned())
          return fail("bad request: prompt.answer's connections is a count, 1-1000000 (leave it out for no limit)");
        a.connections = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(it->get<std::uint64_t>(), std::numeric_limits<std::uint32_t>::max()));
      }
      return Command{std::move(a)};
    }
    if (cmd == "script.list") return Command{ScriptList{}};
    if (cmd == "script.load")
      return Command{ScriptLoad{j.value("name", ""), j.value("text", ""), j.value("origin", ""),
                                j.value("helper", false)}};
    if (cmd == "script.unload") return Command{ScriptUnload{j.value("name", "")}};
    if (cmd == "script.reload") return Command{ScriptReload{j.value("name", "")}};
    if (cmd == "env.list") return Command{EnvList{}};
    if (cmd == "env.add") return Command{EnvAdd{j.value("toml", ""), j.value("origin", "")}};
    if (cmd == "env.rm") return Command{EnvRemove{j.value("name", ""), j.value("force", false)}};
    return fail("unknown command '" + cmd + "'");
  } catch (const json::exception& e) {
    return fail(std::string("bad request: ") + e.what());
  }
}

std::string encodeReply(const Reply& r) {
  json j{{"ok", r.ok}};
  if (!r.ok) j["error"] = r.error;
  if (!r.cells.empty()) {
    json cells = json::array();
    for (const auto& c : r.cells) cells.push_back(cellToJson(c));
    j["cells"] = std::move(cells);
  }
  if (!r.lines.empty()) j["lines"] = r.lines;
  if (!r.rules.empty()) {
    json rules = json::array();
    for (const auto& x : r.rules) rules.push_back(ruleToJson(x));
    j["rules"] = std::move(rules);
  }
  if (!r.log.empty()) {
    json log = json::array();
    for (const auto& x : r.log) log.push_back(logToJson(x));
    j["log"] = std::move(log);
  }
  if (!r.text.empty()) j["text"] = r.text;
  if (!r.prompts.empty()) {
    json prompts = json::array();
    for (const auto& x : r.prompts) prompts.push_back(promptToJson(x));
    j["prompts"] = std::move(prompts);
  }
  if (r.version != 0) j["version"] = r.version;
  if (!r.scripts.empty()) j["scripts"] = r.scripts;
  if (!r.counters.empty()) j["counters"] = r.counters;
  if (!r.envs.empty()) j["envs"] = r.envs;
  return wire(j);
}

Expected<Reply> decodeReply(const std::string& line) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("daemon sent a reply that is not JSON");
  if (hasFraction(j)) return fail("daemon sent a reply with a fraction where whole numbers go");
  try {
    Reply r;
    r.ok = j.value("ok", false);
    r.error = j.value("error", "");
    if (j.contains("cells"))
      for (const auto& c : j["cells"]) r.cells.push_back(cellFromJson(c));
    if (j.contains("lines")) r.lines = j["lines"].get<std::vector<std::string>>();
    if (j.contains("rules"))
      for (const auto& x : j["rules"]) r.rules.push_back(ruleFromJson(x));
    if (j.contains("log"))
      for (const auto& x : j["log"]) r.log.push_back(logFromJson(x));
    r.text = j.value("text", "");
    if (j.contains("prompts"))
      for (const auto& x : j["prompts"]) r.prompts.push_back(promptFromJson(x));
    r.version = j.value("version", std::uint64_t{0});
    if (j.contains("scripts")) r.scripts = j["scripts"].get<std::vector<ScriptInfo>>();
    if (j.contains("counters")) r.counters = j["counters"].get<std::vector<RuleCounters>>();
    if (j.contains("envs")) r.envs = j["envs"].get<std::vector<EnvInfo>>();
    return r;
  } catch (const json::exception& e) {
    return fail(std::string("daemon sent a bad reply: ") + e.what());
  }
}

}  // namespace cw::api
