#include "cli/env_cmd.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/commands.h"

namespace cw::cli {

namespace {

namespace fs = std::filesystem;

std::string joined(const std::vector<std::string>& items, const char* sep = " ") {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

std::string uplinkText(const api::EnvInfo& e) { return e.carrier.empty() ? e.uplink : e.uplink + " over " + e.carrier; }

void printDetail(const api::EnvInfo& e) {
  std::printf("%s  (%s)\n", e.name.c_str(), e.origin.empty() ? "built in" : e.origin.c_str());
  std::printf("  state       %s%s%s\n", e.state.c_str(), e.error.empty() ? "" : ": ", e.error.c_str());
  if (e.state != "failed") {
    std::printf("  uplink      %s%s\n", uplinkText(e).c_str(),
                e.carrier.empty() ? "" : (e.kill_switch ? "  (kill switch on)" : "  (kill switch OFF: falls back to the carrier)"));
    if (!e.carrier.empty()) std::printf("  restarts    %u (the tunnel daemon)\n", e.tunnel_restarts);
    std::printf("  pool        %s   gateway and DNS %s\n", e.pool.c_str(), e.gateway.c_str());
    std::printf("  dns         %s\n", e.dns.empty() ? "(none yet)" : joined(e.dns).c_str());
    if (!e.search.empty()) std::printf("  search      %s\n", joined(e.search).c_str());
    if (!e.routes.empty()) std::printf("  routes      %s\n", joined(e.routes, ", ").c_str());
    std::printf("  cells       %u\n", e.cells);
  }
  std::printf("  definition\n");
  std::istringstream def(e.definition);
  for (std::string line; std::getline(def, line);) std::printf("    %s\n", line.c_str());
}

// A TOML basic string: JSON's string escapes are TOML's too.
std::string tomlString(const std::string& s) { return nlohmann::json(s).dump(); }
std::string tomlStrings(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

}  // namespace

int envList(Client& c, bool json) {
  auto r = c.callOk(api::EnvList{});
  if (!r) return die(r.error().message);
  if (json) {
    for (const auto& e : r->envs) std::printf("%s\n", api::envInfoJsonText(e).c_str());
    return 0;
  }
  std::printf("%-10s %-7s %-22s %-16s %-15s %5s  %s\n", "NAME", "STATE", "UPLINK", "POOL", "DNS", "CELLS", "FROM");
  for (const auto& e : r->envs)
    std::printf("%-10s %-7s %-22s %-16s %-15s %5u  %s%s%s\n", e.name.c_str(), e.state.c_str(), uplinkText(e).c_str(),
                e.pool.c_str(), e.dns.empty() ? "-" : e.dns.front().c_str(), e.cells,
                e.stored ? "env add" : e.origin.empty() ? "built in" : e.origin.c_str(), e.error.empty() ? "" : "  ",
                e.error.c_str());
  return 0;
}

int envShow(Client& c, const std::string& name, bool json) {
  auto r = c.callOk(api::EnvList{});
  if (!r) return die(r.error().message);
  for (const auto& e : r->envs) {
    if (e.name != name) continue;
    if (json) std::printf("%s\n", api::envInfoJsonText(e).c_str());
    else printDetail(e);
    return 0;
  }
  return die("no network environment named '" + name + "' (cellwall env list)");
}

int envAdd(Client& c, const EnvAddFlags& f, bool json) {
  api::EnvAdd cmd;
  if (!f.file.empty()) {
    std::ifstream in(f.file);
    if (!in) return die("cannot read " + f.file);
    std::ostringstream text;
    text << in.rdbuf();
    cmd.toml = text.str();
    // Relative paths in it (the uplink's config) are the file's folder's.
    cmd.origin = fs::absolute(f.file).string();
  } else {
    if (f.name.empty()) return die("give the environment's name, or --file FILE", 2);
    std::string t = "[env." + f.name + "]\n";
    if (!f.pool.empty()) t += "pool = " + tomlString(f.pool) + "\n";
    if (!f.dns.empty()) t += "dns = " + tomlStrings(f.dns) + "\n";
    if (!f.search.empty()) t += "search = " + tomlStrings(f.search) + "\n";
    if (!f.routes.empty()) t += "routes = " + tomlStrings(f.routes) + "\n";
    if (f.no_kill_switch) t += "kill_switch = false\n";
    t += "[env." + f.name + ".uplink]\nkind = " + tomlString(f.uplink) + "\n";
    if (!f.config.empty()) t += "config = " + tomlString(fs::absolute(f.config).string()) + "\n";
    if (f.carrier != "host") t += "carrier = " + tomlString(f.carrier) + "\n";
    const std::pair<const char*, const std::string*> keys[] = {
        {"netns", &f.netns}, {"interface", &f.interface}, {"address", &f.address}, {"peer_address", &f.peer_address}, {"next_hop", &f.next_hop}};
    for (const auto& [key, value] : keys)
      if (!value->empty()) t += std::string(key) + " = " + tomlString(*value) + "\n";
    cmd.toml = t;
    cmd.origin = "";
  }
  auto r = c.callOk(cmd);
  if (!r) return die(r.error().message);
  for (const auto& e : r->envs) {
    if (json) std::printf("%s\n", api::envInfoJsonText(e).c_str());
    else {
      std::printf("added environment %s: kept in %s, started at every start\n", e.name.c_str(), e.origin.c_str());
      std::printf("  apps use it with env = \"%s\" in their policy, or cellwall run --env %s\n", e.name.c_str(),
                  e.name.c_str());
    }
  }
  return 0;
}

int envRemove(Client& c, const std::string& name, bool force) {
  auto r = c.callOk(api::EnvRemove{name, force});
  if (!r) return die(r.error().message);
  for (const auto& l : r->lines) std::printf("%s\n", l.c_str());
  return 0;
}

}  // namespace cw::cli
