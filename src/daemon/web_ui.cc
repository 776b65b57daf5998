#include "daemon/web_ui.h"

#include <netinet/in.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "attrib/sock_diag.h"
#include "web/token.h"

namespace cw::daemon {

using nlohmann::json;

const char* const WebUi::kTokenFile = "ui-token";

WebUi::~WebUi() { stop(); }

namespace {

// Who owns the client's end of a connection to the UI: the uid of its socket, from one exact
// sock_diag lookup in the host's network namespace (where the UI listens, and so the client's
// socket is). The server limits connections without the token per uid (web/admission.h).
std::function<std::optional<std::uint32_t>(const web::ConnectionEnds&)> peerOwner() {
  auto diag = attrib::SockDiag::open();
  if (!diag) {
    spdlog::warn("web ui: {}; its limits for clients without the token count all clients as one", diag.error().message);
    return nullptr;
  }
  auto d = std::make_shared<attrib::SockDiag>(std::move(*diag));
  return [d](const web::ConnectionEnds& e) -> std::optional<std::uint32_t> {
    if (!e.client.is_v4() || !e.server.is_v4()) return std::nullopt;  // sock_diag.h speaks IPv4
    // The client's socket: its local end is the connection's client end.
    auto found = d->find(attrib::SocketId{IPPROTO_TCP, e.client.v4(), e.client_port, e.server.v4(), e.server_port});
    if (!found || !*found) return std::nullopt;
    return (*found)->uid;
  };
}

}  // namespace

void WebUi::start(const std::string& listen, const std::filesystem::path& state_dir,
                  std::function<void(const std::string&, web::ApiReply)> api) {
  if (listen == "off") {
    error_ = "the web UI is off (ui_listen = \"off\")";
    return;
  }
  web::ServerOptions o;
  const auto colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? "" : listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  const unsigned long port = colon == std::string::npos ? 70000 : std::strtoul(listen.c_str() + colon + 1, &end, 10);
  if (host.empty() || port > 65535 || end == nullptr || *end != '\0') {
    error_ = "web ui: ui_listen '" + listen + "' is not ADDRESS:PORT (like 127.0.0.1:7780) or \"off\"";
    spdlog::error("{}", error_);
    return;
  }
  o.address = host;
  o.port = static_cast<std::uint16_t>(port);
  auto token = web::newToken();
  if (!token) {
    error_ = "web ui: " + token.error().message;
    spdlog::error("{}", error_);
    return;
  }
  // A new token each start: an address shown earlier stops working when cellwalld restarts.
  if (auto w = web::writeTokenFile(state_dir / kTokenFile, *token); !w) {
    error_ = "web ui: " + w.error().message;
    spdlog::error("{}", error_);
    return;
  }
  o.token = token_ = *token;
  token_file_ = state_dir / kTokenFile;
  o.api = std::move(api);
  o.events = &hub_;
  o.peer_uid = peerOwner();
  auto s = web::Server::start(std::move(o));
  if (!s) {
    error_ = s.error().message;
    spdlog::error("{}; cellwalld runs on without it", error_);
    return;
  }
  server_ = std::move(s.value());
  spdlog::info("web UI on {} (`cellwall ui` prints the address with its token, also in {})", server_->origin(),
               (state_dir / kTokenFile).string());
}

void WebUi::stop() {
  hub_.close();
  server_.reset();
  if (!token_file_.empty()) {  // the token opens nothing any more: no file pretends it does
    std::error_code ec;
    std::filesystem::remove(token_file_, ec);
    token_file_.clear();
  }
}

std::string WebUi::url() const { return server_ ? server_->origin() + "?token=" + token_ : std::string(); }

void WebUi::prompts(const api::Reply& r) { hub_.state("prompts", api::encodeReply(r)); }

void WebUi::cells(const std::vector<api::CellInfo>& cells) {
  api::Reply r;
  r.cells = cells;
  hub_.state("cells", api::encodeReply(r));
}

void WebUi::log(const std::vector<api::LogEntry>& entries) {
  if (entries.empty()) return;
  api::Reply r;
  const std::size_t from = entries.size() > kLogBatch ? entries.size() - kLogBatch : 0;
  r.log.assign(entries.begin() + static_cast<std::ptrdiff_t>(from), entries.end());
  hub_.history("log", api::encodeReply(r), kLogHistory);
}

void WebUi::counters(const std::vector<Counter>& c) {
  if (c.empty()) return;
  json conns = json::array();
  for (const auto& x : c)
    conns.push_back(json{{"id", x.log_id}, {"packets", x.packets}, {"bytes", x.bytes}, {"open", x.open}});
  hub_.event("counters", json{{"conns", std::move(conns)}}.dump());
}

void WebUi::switchState(const std::string& state, const std::string& text) {
  hub_.state("switch", json{{"state", state}, {"text", text}}.dump());
}

void WebUi::rulesChanged(const std::string& app) { hub_.event("rules", json{{"app", app}}.dump()); }

void WebUi::scriptsChanged(const std::vector<api::ScriptInfo>& scripts) {
  api::Reply r;
  r.scripts = scripts;
  hub_.state("scripts", api::encodeReply(r));
}

namespace {

std::uint64_t readCounter(const std::string& ifname, const char* which) {
  std::ifstream f("/sys/class/net/" + ifname + "/statistics/" + which);
  std::uint64_t v = 0;
  f >> v;
  return v;
}

}  // namespace

void WebUi::sampleTraffic(const std::vector<CellIf>& cells, std::int64_t now_unix_ms) {
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> apps;  // app -> (out, in)
  std::map<std::uint32_t, std::pair<std::uint64_t, std::uint64_t>> now;
  for (const auto& c : cells) {
    // The host side of the cell's link: what it receives, the cell sent.
    const std::uint64_t rx = readCounter(c.ifname, "rx_bytes"), tx = readCounter(c.ifname, "tx_bytes");
    now[c.id] = {rx, tx};
    auto& a = apps[c.app];
    auto it = last_.find(c.id);
    if (it == last_.end() || rx < it->second.first || tx < it->second.second) continue;
    a.first += rx - it->second.first;
    a.second += tx - it->second.second;
  }
  last_ = std::move(now);
  const std::int64_t span = last_ms_ == 0 ? 1000 : std::max<std::int64_t>(1, now_unix_ms - last_ms_);
  last_ms_ = now_unix_ms;
  json j{{"t", now_unix_ms}, {"apps", json::object()}};
  for (const auto& [app, io] : apps)  // bytes per second
    j["apps"][app] = json{{"out", io.first * 1000 / static_cast<std::uint64_t>(span)},
                          {"in", io.second * 1000 / static_cast<std::uint64_t>(span)}};
  hub_.history("traffic", j.dump(), kTrafficHistory);
}

}  // namespace cw::daemon
