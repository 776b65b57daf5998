#include "daemon/script_admin.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>

#include <spdlog/spdlog.h>

#include "common/file.h"

namespace cw::daemon {

namespace {

constexpr auto kTimerTick = std::chrono::milliseconds(50);

api::ScriptInfo toApi(const ScriptHost::Info& i) {
  api::ScriptInfo s;
  s.name = i.name;
  s.origin = i.origin;
  s.path = i.path;
  s.mode = i.mode;
  s.state = i.state;
  s.why = i.why;
  s.calls = i.calls;
  s.allowed = i.allowed;
  s.dropped = i.dropped;
  s.rejected = i.rejected;
  s.flows = i.flows;
  s.inspected = i.inspected;
  s.memory = i.memory;
  s.filters = i.filters;
  s.loaded_ms = i.loaded_unix_ms;
  s.counters = i.counters;
  s.logs = i.recent_logs;
  return s;
}

bool endsWith(const std::string& s, const char* suffix) {
  std::size_t n = std::strlen(suffix);
  return s.size() > n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

bool validScriptName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

ScriptAdmin::ScriptAdmin(ScriptHost& host, const Config& cfg, asio::io_context& control)
    : host_(host), cfg_(cfg), control_(control), user_dir_(cfg.state_dir / "scripts"), timers_(control) {}

ScriptAdmin::~ScriptAdmin() { stop(); }

ScriptHost::Spec ScriptAdmin::specFor(const std::string& name, const std::filesystem::path& path,
                                      const std::string& origin) const {
  ScriptHost::Spec s;
  s.name = name;
  s.path = path;
  s.origin = origin;
  std::error_code ec;
  if (origin == "user" && std::filesystem::exists(user_dir_ / (name + ".helper"), ec))
    s.mode = ScriptHost::Mode::kHelper;
  for (const auto& c : cfg_.scripts) {
    if (c.name != name) continue;
    if (c.helper) s.mode = ScriptHost::Mode::kHelper;
    s.settings = c.settings;
  }
  return s;
}

Expected<void> ScriptAdmin::start() {
  std::error_code ec;
  std::filesystem::create_directories(user_dir_, ec);
  if (ec) return fail("cannot create " + user_dir_.string() + ": " + ec.message());
  ::chmod(user_dir_.c_str(), 0700);
  // User scripts by name; a configured name with no user script is a shipped one.
  std::set<std::string> user;
  for (const auto& ent : std::filesystem::directory_iterator(user_dir_, ec)) {
    std::string file = ent.path().filename().string();
    if (!endsWith(file, ".lua")) continue;
    std::string name = file.substr(0, file.size() - 4);
    if (validScriptName(name)) user.insert(name);
    else spdlog::warn("script {}: not loaded: a name is 1-64 of a-z, 0-9, _ and -", ent.path().string());
  }
  for (const auto& c : cfg_.scripts) {
    if (user.count(c.name) != 0) continue;  // its settings go to the user script
    auto path = cfg_.scripts_dir / (c.name + ".lua");
    if (!validScriptName(c.name)) return fail("[script." + c.name + "]: not a script name (a-z, 0-9, _ and -)");
    if (!std::filesystem::exists(path, ec))
      return fail("[script." + c.name + "]: no such script: neither " + path.string() + " nor " +
                  (user_dir_ / (c.name + ".lua")).string());
    if (auto r = host_.load(specFor(c.name, path, "shipped")); !r)
      return fail("script " + c.name + " did not load: " + r.error().message);
  }
  for (const auto& name : user)
    if (auto r = host_.load(specFor(name, user_dir_ / (name + ".lua"), "user")); !r)
      return fail("script " + name + " did not load: " + r.error().message);
  watch();
  runTimers();
  return {};
}

void ScriptAdmin::stop() {
  timers_.cancel();
  if (events_) {
    events_->close();
    events_.reset();
    inotify_ = -1;
  }
}

void ScriptAdmin::watch() {
  inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_ < 0) {
    spdlog::warn("scripts: no inotify ({}): edits take effect on `cellwall script reload`", std::strerror(errno));
    return;
  }
  const std::uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE;
  wd_user_ = ::inotify_add_watch(inotify_, user_dir_.c_str(), mask);
  std::error_code ec;
  if (std::filesystem::is_directory(cfg_.scripts_dir, ec))
    wd_shipped_ = ::inotify_add_watch(inotify_, cfg_.scripts_dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO);
  events_ = std::make_unique<asio::posix::stream_descriptor>(control_, inotify_);
  buf_.resize(16 * 1024);
  readEvents();
}

void ScriptAdmin::readEvents() {
  if (!events_) return;
  events_->async_read_some(asio::buffer(buf_), [this](const asio::error_code& ec, std::size_t n) {
    if (ec) return;
    std::set<std::pair<int, std::string>> touched;  // one load per file per batch
    for (std::size_t off = 0; off + sizeof(inotify_event) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf_.data() + off);
      if (ev->len > 0) touched.emplace(ev->wd, std::string(ev->name));
      off += sizeof(inotify_event) + ev->len;
    }
    for (const auto& [wd, file] : touched) onFileEvent(wd == wd_user_ ? user_dir_ : cfg_.scripts_dir, file);
    readEvents();
  });
}

void ScriptAdmin::onFileEvent(const std::filesystem::path& dir, const std::string& file) {
  const bool user = dir == user_dir_;
  std::string name;
  if (endsWith(file, ".lua")) name = file.substr(0, file.size() - 4);
  else if (user && endsWith(file, ".helper")) name = file.substr(0, file.size() - 7);
  else return;
  if (!validScriptName(name)) return;
  auto current = host_.spec(name);
  const auto path = dir / (name + ".lua");
  std::error_code ec;
  if (user) {
    if (!std::filesystem::exists(path, ec)) {
      if (current && current->origin == "user") {
        spdlog::info("script {}: its file is gone: unloading it", name);
        (void)host_.unload(name);
      }
      return;
    }
  } else if (!current || current->origin != "shipped") {
    return;  // a shipped script that is not running (or a user script of that name is)
  }
  auto text = readScriptFile(path);
  if (!text) return;
  auto spec = specFor(name, path, user ? "user" : "shipped");
  if (current && current->mode == spec.mode && host_.runsText(name, *text)) return;  // nothing new
  if (auto r = host_.load(spec, &*text); !r)
    spdlog::error("script {}: the new version did not load (the old one keeps running): {}", name,
                  r.error().message);
  else
    spdlog::info("script {}: reloaded after its file changed", name);
}

void ScriptAdmin::runTimers() {
  host_.runTimers();
  timers_.expires_after(kTimerTick);
  timers_.async_wait([this](const asio::error_code& ec) {
    if (!ec) runTimers();
  });
}

api::Reply ScriptAdmin::list() const {
  api::Reply r;
  for (const auto& i : host_.list()) r.scripts.push_back(toApi(i));
  return r;
}

api::Reply ScriptAdmin::load(const api::ScriptLoad& cmd) {
  if (!validScriptName(cmd.name))
    return api::Reply::failed("'" + cmd.name + "' is not a script name: 1-64 of a-z, 0-9, _ and -");
  if (cmd.text.size() > kMaxScriptBytes) return api::Reply::failed("a script is at most 1 MiB");
  if (auto cur = host_.spec(cmd.name); cur && cur->origin == "shipped")
    return api::Reply::failed("'" + cmd.name + "' is a shipped script; give yours another name");
  const auto path = user_dir_ / (cmd.name + ".lua");
  const auto marker = user_dir_ / (cmd.name + ".helper");
  auto spec = specFor(cmd.name, path, "user");
  spec.mode = cmd.helper ? ScriptHost::Mode::kHelper : ScriptHost::Mode::kInProcess;
  for (const auto& c : cfg_.scripts)
    if (c.name == cmd.name && c.helper) spec.mode = ScriptHost::Mode::kHelper;
  // Loaded first: a script that does not load leaves the running one and its file alone.
  if (auto r = host_.load(spec, &cmd.text); !r) return api::Reply::failed(r.error().message);
  if (cmd.helper) {
    std::ofstream(marker).flush();
  } else {
    ::unlink(marker.c_str());
  }
  using std::filesystem::perms;
  if (auto w = writeFileAtomically(path, cmd.text, perms::owner_read | perms::owner_write); !w)
    return api::Reply::failed("loaded, but not kept for the next start: " + w.error().message);
  api::Reply r;
  for (const auto& i : host_.list())
    if (i.name == cmd.name) r.scripts.push_back(toApi(i));
  return r;
}

api::Reply ScriptAdmin::unload(const api::ScriptUnload& cmd) {
  auto cur = host_.spec(cmd.name);
  if (!cur) return api::Reply::failed("no script named '" + cmd.name + "' is loaded");
  if (auto r = host_.unload(cmd.name); !r) return api::Reply::failed(r.error().message);
  api::Reply r;
  if (cur->origin == "user") {
    ::unlink((user_dir_ / (cmd.name + ".helper")).c_str());
    ::unlink(cur->path.c_str());
    r.lines.push_back("unloaded " + cmd.name + " and removed " + cur->path.string());
  } else {
    r.lines.push_back("unloaded " + cmd.name + " until cellwalld restarts (its [script." + cmd.name +
                      "] table runs it at start)");
  }
  return r;
}

api::Reply ScriptAdmin::reload(const api::ScriptReload& cmd) {
  std::vector<std::string> names;
  if (!cmd.name.empty()) {
    if (!host_.loaded(cmd.name)) return api::Reply::failed("no script named '" + cmd.name + "' is loaded");
    names.push_back(cmd.name);
  } else {
    for (const auto& i : host_.list()) names.push_back(i.name);
  }
  api::Reply r;
  std::string errors;
  for (const auto& n : names) {
    auto s = host_.spec(n);
    if (!s) continue;
    auto fresh = specFor(n, s->path, s->origin);
    if (auto res = host_.load(fresh); !res)
      errors += (errors.empty() ? "" : "; ") + res.error().message + " (the old version keeps running)";
    else
      r.lines.push_back("reloaded " + n);
  }
  if (!errors.empty()) {
    auto f = api::Reply::failed(errors);
    f.lines = r.lines;
    return f;
  }
  for (const auto& i : host_.list()) r.scripts.push_back(toApi(i));
  return r;
}

}  // namespace cw::daemon
