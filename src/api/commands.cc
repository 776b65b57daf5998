#include "api/commands.h"

#include <nlohmann/json.hpp>

namespace cw::api {

namespace {

using nlohmann::json;

json cellToJson(const CellInfo& c) {
  return json{{"id", c.id},           {"app", c.app},
              {"env", c.env},         {"netns", c.netns},
              {"ifname_host", c.ifname_host}, {"ip", c.ip},
              {"mac", c.mac},         {"gateway", c.gateway},
              {"prefix_length", c.prefix_length}, {"ofport", c.ofport},
              {"resolv_conf", c.resolv_conf}, {"hosts", c.hosts},
              {"cgroup", c.cgroup},   {"launcher_pid", c.launcher_pid},
              {"created_unix", c.created_unix}};
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
  return c;
}

}  // namespace

std::string encodeCommand(const Command& c) {
  json j = std::visit(
      [](const auto& m) -> json {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, CellCreate>)
          return {{"cmd", "cell.create"}, {"app", m.app}, {"policy_text", m.policy_text},
                  {"policy_origin", m.policy_origin}, {"env", m.env},
                  {"launcher_pid", m.launcher_pid}};
        else if constexpr (std::is_same_v<M, CellExit>)
          return {{"cmd", "cell.exit"}, {"id", m.id}, {"exit_status", m.exit_status}};
        else if constexpr (std::is_same_v<M, CellList>)
          return {{"cmd", "cell.list"}};
        else if constexpr (std::is_same_v<M, FlowDump>)
          return {{"cmd", "flows"}};
        else if constexpr (std::is_same_v<M, Status>)
          return {{"cmd", "status"}};
        else
          return {{"cmd", "shutdown"}};
      },
      c);
  return j.dump();
}

Expected<Command> decodeCommand(const std::string& line) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("request is not a JSON object");
  try {
    std::string cmd = j.value("cmd", "");
    if (cmd == "cell.create")
      return Command{CellCreate{j.value("app", ""), j.value("policy_text", ""),
                                j.value("policy_origin", ""), j.value("env", ""),
                                j.value("launcher_pid", std::int64_t{0})}};
    if (cmd == "cell.exit") return Command{CellExit{j.value("id", 0u), j.value("exit_status", 0)}};
    if (cmd == "cell.list") return Command{CellList{}};
    if (cmd == "flows") return Command{FlowDump{}};
    if (cmd == "status") return Command{Status{}};
    if (cmd == "shutdown") return Command{Shutdown{}};
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
  return j.dump();
}

Expected<Reply> decodeReply(const std::string& line) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("daemon sent a reply that is not JSON");
  try {
    Reply r;
    r.ok = j.value("ok", false);
    r.error = j.value("error", "");
    if (j.contains("cells"))
      for (const auto& c : j["cells"]) r.cells.push_back(cellFromJson(c));
    if (j.contains("lines")) r.lines = j["lines"].get<std::vector<std::string>>();
    return r;
  } catch (const json::exception& e) {
    return fail(std::string("daemon sent a bad reply: ") + e.what());
  }
}

}  // namespace cw::api
