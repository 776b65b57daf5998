#include "cli/script_cmd.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/commands.h"

namespace cw::cli {

namespace {

std::string ago(std::int64_t unix_ms) {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch()).count();
  std::int64_t s = (now - unix_ms) / 1000;
  if (s < 120) return std::to_string(s) + "s ago";
  if (s < 7200) return std::to_string(s / 60) + "m ago";
  return std::to_string(s / 3600) + "h ago";
}

std::string bytes(std::uint64_t b) {
  if (b < 10 * 1024) return std::to_string(b) + " B";
  if (b < 10 * 1024 * 1024) return std::to_string(b / 1024) + " KiB";
  return std::to_string(b / (1024 * 1024)) + " MiB";
}

void printDetail(const api::ScriptInfo& s) {
  std::printf("%s  (%s, %s) %s\n", s.name.c_str(), s.origin.c_str(), s.mode.c_str(), s.path.c_str());
  if (s.state == "disabled")
    std::printf("  state     DISABLED: %s\n", s.why.c_str());
  else
    std::printf("  state     running, loaded %s\n", ago(s.loaded_ms).c_str());
  std::printf("  calls     %llu   verdicts: allow %llu, drop %llu, reject %llu\n",
              static_cast<unsigned long long>(s.calls), static_cast<unsigned long long>(s.allowed),
              static_cast<unsigned long long>(s.dropped), static_cast<unsigned long long>(s.rejected));
  std::printf("  flows     %llu installed   memory %s   filter_* functions %llu\n",
              static_cast<unsigned long long>(s.flows), bytes(s.memory).c_str(),
              static_cast<unsigned long long>(s.filters));
  for (const auto& [name, n] : s.counters) std::printf("  counter   %-24s %lld\n", name.c_str(), static_cast<long long>(n));
  if (!s.logs.empty()) std::printf("  log (newest last)\n");
  for (const auto& l : s.logs) std::printf("    %s\n", l.c_str());
}

}  // namespace

int scriptList(Client& c, bool json) {
  auto r = c.callOk(api::ScriptList{});
  if (!r) return die(r.error().message);
  if (json) {
    for (const auto& s : r->scripts) std::printf("%s\n", api::scriptInfoJsonText(s).c_str());
    return 0;
  }
  if (r->scripts.empty()) {
    std::printf("no scripts loaded (cellwall script load FILE, or [script.NAME] in the configuration)\n");
    return 0;
  }
  std::printf("%-20s %-8s %-10s %-9s %10s %8s %7s\n", "NAME", "ORIGIN", "MODE", "STATE", "CALLS", "DROPPED", "FLOWS");
  for (const auto& s : r->scripts)
    std::printf("%-20s %-8s %-10s %-9s %10llu %8llu %7llu%s%s\n", s.name.c_str(), s.origin.c_str(), s.mode.c_str(),
                s.state.c_str(), static_cast<unsigned long long>(s.calls),
                static_cast<unsigned long long>(s.dropped), static_cast<unsigned long long>(s.flows),
                s.why.empty() ? "" : "  ", s.why.c_str());
  return 0;
}

int scriptStatus(Client& c, const std::string& name, bool json) {
  auto r = c.callOk(api::ScriptList{});
  if (!r) return die(r.error().message);
  bool found = false;
  for (const auto& s : r->scripts) {
    if (!name.empty() && s.name != name) continue;
    found = true;
    if (json) std::printf("%s\n", api::scriptInfoJsonText(s).c_str());
    else printDetail(s);
  }
  if (!found && !name.empty()) return die("no script named '" + name + "' is loaded");
  return 0;
}

int scriptLoad(Client& c, const std::string& file, std::string name, bool helper) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return die("cannot read " + file);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (name.empty()) name = std::filesystem::path(file).stem().string();
  auto r = c.callOk(api::ScriptLoad{name, ss.str(), file, helper});
  if (!r) return die(r.error().message);
  for (const auto& s : r->scripts)
    std::printf("loaded %s (%s): kept as %s, runs at every start\n", s.name.c_str(), s.mode.c_str(), s.path.c_str());
  return 0;
}

int scriptUnload(Client& c, const std::string& name) {
  auto r = c.callOk(api::ScriptUnload{name});
  if (!r) return die(r.error().message);
  for (const auto& l : r->lines) std::printf("%s\n", l.c_str());
  return 0;
}

int scriptReload(Client& c, const std::string& name) {
  auto r = c.call(api::ScriptReload{name});
  if (!r) return die(r.error().message);
  for (const auto& l : r->lines) std::printf("%s\n", l.c_str());
  if (!r->ok) return die(r->error);
  return 0;
}

}  // namespace cw::cli
