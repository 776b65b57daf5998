// cellwalld's side of the web UI (docs/web-ui.md): starts the HTTP server (web/server.h) with a
// fresh token, and turns what the daemon does into the events the UI shows — open prompts,
// cells, new connections and their byte counts, rule changes, and each app's traffic every
// second (from the cells' host-side interface counters, which the app cannot touch).
//
// Control thread only, except that the server calls `api` on its loop thread (web/server.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/commands.h"
#include "web/events.h"
#include "web/server.h"

namespace cw::daemon {

class WebUi {
 public:
  ~WebUi();
  // listen: "ADDRESS:PORT", "[::1]:PORT" or "off". Failing to start is reported by error() and
  // logged: the firewall runs on without its UI (which holds no security of its own).
  void start(const std::string& listen, const std::filesystem::path& state_dir,
             std::function<void(const std::string&, web::ApiReply)> api);
  void stop();

  std::string url() const;  // with the token; "" when not running
  const std::string& error() const { return error_; }
  // Whether a browser is watching: what only a browser would see need not be gathered.
  bool watched() const { return hub_.listeners() > 0; }

  void prompts(const api::Reply& r);
  void cells(const std::vector<api::CellInfo>& cells);
  void log(const std::vector<api::LogEntry>& entries);
  struct Counter {
    std::int64_t log_id = 0;
    std::uint64_t packets = 0, bytes = 0;
    bool open = false;
  };
  void counters(const std::vector<Counter>& c);
  void rulesChanged(const std::string& app);  // "": any app
  // The scripts, their state and counters (on a change, and every 2 s while watched).
  void scriptsChanged(const std::vector<api::ScriptInfo>& scripts);
  // Open vSwitch's state (status's `openvswitch` line): "up", "restarting", "failing" or
  // "down", and a sentence for the top bar ("" when it is up and never was down).
  void switchState(const std::string& state, const std::string& text);
  struct CellIf {
    std::uint32_t id = 0;
    std::string app, ifname;
  };
  // Once a second: bytes each app's cells sent (out) and received (in) since the last call.
  void sampleTraffic(const std::vector<CellIf>& cells, std::int64_t now_unix_ms);

  static constexpr std::size_t kLogBatch = 200;         // newest entries per event
  static constexpr std::size_t kLogHistory = 25;        // batches a new browser gets
  static constexpr std::size_t kTrafficHistory = 300;   // seconds of traffic
  static const char* const kTokenFile;                   // in the state directory

 private:
  web::EventHub hub_;
  std::unique_ptr<web::Server> server_;
  std::string token_, error_;
  std::filesystem::path token_file_;
  std::map<std::uint32_t, std::pair<std::uint64_t, std::uint64_t>> last_;  // cell -> (rx, tx)
  std::int64_t last_ms_ = 0;
};

}  // namespace cw::daemon
