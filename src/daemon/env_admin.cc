#include "daemon/env_admin.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>

#include "common/file.h"

namespace cw::daemon {

namespace {

namespace fs = std::filesystem;

}  // namespace

bool EnvAdmin::fromFile(const std::string& name) const {
  return std::any_of(cfg_.envs.begin(), cfg_.envs.end(), [&](const EnvSpec& e) { return e.name == name; });
}

std::vector<std::string> EnvAdmin::storedNames() const {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::exists(dir(), ec)) return names;
  for (const auto& entry : fs::directory_iterator(dir(), ec))
    if (entry.path().extension() == ".toml") names.push_back(entry.path().stem().string());
  return names;
}

void EnvAdmin::startStored(Ovs& ovs) {
  std::error_code ec;
  if (!fs::exists(dir(), ec)) return;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir(), ec))
    if (entry.path().extension() == ".toml") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    const auto name = file.stem().string();
    auto text = readTextFile(file);
    auto specs = text ? loadEnvText(*text, file) : Expected<std::vector<EnvSpec>>(Unexpected(text.error()));
    if (specs && (specs->size() != 1 || specs->front().name != name))
      specs = fail(file.string() + ": holds something other than one [env." + name + "] table");
    if (!specs) {
      failed_[name] = specs.error().message;
      spdlog::error("stored environment '{}' not started: {}", name, specs.error().message);
      continue;
    }
    if (fromFile(name)) {
      spdlog::warn("stored environment '{}' ({}) is also defined in the configuration file, which wins", name,
                   file.string());
      continue;
    }
    if (auto r = gateways_.start(specs->front(), ops_, ovs, cfg_.state_dir); !r) {
      failed_[name] = r.error().message;
      spdlog::error("stored environment '{}' not started: {}", name, r.error().message);
    }
  }
}

api::Reply EnvAdmin::add(const api::EnvAdd& cmd, Ovs& ovs) {
  auto specs = loadEnvText(cmd.toml, cmd.origin.empty() ? "cellwall env add" : cmd.origin);
  if (!specs) return api::Reply::failed(specs.error().message);
  if (specs->size() != 1) return api::Reply::failed("give exactly one [env.NAME] table");
  EnvSpec spec = specs->front();
  const auto& name = spec.name;
  if (fromFile(name))
    return api::Reply::failed("environment '" + name + "' is defined in the configuration file; change it there");
  if (gateways_.find(name) != nullptr)
    return api::Reply::failed("environment '" + name + "' exists; remove it first (cellwall env rm " + name + ")");
  if (!spec.uplink.config.empty() && fs::path(spec.uplink.config).is_relative())
    return api::Reply::failed("environment '" + name + "': the uplink's config must be an absolute path");
  std::error_code ec;
  fs::create_directories(dir(), ec);
  if (ec) return api::Reply::failed("cannot create " + dir().string() + ": " + ec.message());
  spec.origin = fileOf(name).string();
  if (auto r = gateways_.start(spec, ops_, ovs, cfg_.state_dir); !r) return api::Reply::failed(r.error().message);
  // Kept once it runs: a definition that cannot start is never stored.
  const std::string text = "# cellwall env add (" + (cmd.origin.empty() ? std::string("command line") : cmd.origin) +
                           ")\n" + envToToml(spec);
  if (auto w = writeFileAtomically(fileOf(name), text); !w) {
    (void)gateways_.stop(name, ovs);
    return api::Reply::failed(w.error().message);
  }
  failed_.erase(name);
  spdlog::info("environment '{}' added ({})", name, fileOf(name).string());
  auto all = list({});
  api::Reply r;
  for (auto& e : all.envs)
    if (e.name == name) r.envs.push_back(std::move(e));
  return r;
}

api::Reply EnvAdmin::remove(const std::string& name, Ovs& ovs) {
  if (fromFile(name))
    return api::Reply::failed("environment '" + name + "' is defined in the configuration file; remove it there");
  std::error_code ec;
  if (gateways_.find(name) == nullptr && failed_.count(name) == 0 && !fs::exists(fileOf(name), ec))
    return api::Reply::failed("no network environment named '" + name + "'");
  api::Reply r;
  if (gateways_.find(name) != nullptr)
    if (auto s = gateways_.stop(name, ovs); !s) r.lines.push_back("warning: " + s.error().message);
  fs::remove(fileOf(name), ec);
  if (ec) return api::Reply::failed("cannot remove " + fileOf(name).string() + ": " + ec.message());
  failed_.erase(name);
  spdlog::info("environment '{}' removed", name);
  r.lines.push_back("removed environment " + name);
  return r;
}

api::Reply EnvAdmin::list(const std::map<std::string, std::uint32_t>& cells) const {
  api::Reply r;
  for (const auto& g : gateways_.all()) {
    const auto& spec = g.spec;
    const auto st = g.gateway->status();
    api::EnvInfo e;
    e.name = spec.name;
    e.origin = spec.origin;
    e.stored = !fromFile(spec.name);
    e.state = st.tunnel && !st.tunnel_up ? "down" : "up";
    e.error = st.tunnel_error;
    e.uplink = st.uplink;
    e.carrier = st.tunnel ? spec.uplink.carrier : "";
    e.pool = g.pool.str();
    e.gateway = g.port.ip.str();
    for (const auto& d : st.dns) e.dns.push_back(d.str());
    e.search = st.search;
    e.routes = spec.routes;
    e.kill_switch = st.kill_switch;
    e.tunnel_restarts = st.tunnel_restarts;
    auto c = cells.find(spec.name);
    e.cells = c == cells.end() ? 0 : c->second;
    e.definition = envToToml(spec);
    if (!st.dns_running) e.error += std::string(e.error.empty() ? "" : "; ") + "DNS forwarder not running";
    r.envs.push_back(std::move(e));
  }
  for (const auto& [name, why] : failed_) {
    api::EnvInfo e;
    e.name = name;
    e.origin = fileOf(name).string();
    e.stored = true;
    e.state = "failed";
    e.error = why;
    auto text = readTextFile(fileOf(name));
    e.definition = text ? *text : "";
    r.envs.push_back(std::move(e));
  }
  return r;
}

}  // namespace cw::daemon
