// The web UI's HTTP server (libmicrohttpd, a thread per connection, in cellwalld's process).
//
// Every request needs the token — in `Authorization: Bearer TOKEN` or a `token` query argument
// (how a browser loads the page, its assets and the event stream) — and a Host header naming
// the loopback address it listens on (so a web page elsewhere cannot reach it by DNS
// rebinding). There is no other way in: no unauthenticated path, no cookies, no CORS.
// It listens on loopback only, in the host's network namespace, where no cell can connect.
//
//   GET  /?token=T          the UI (index.html, app.js, app.css; built into the binary)
//   GET  /events?token=T    server-sent events (web/events.h)
//   POST /api               one command of the control socket's protocol (api/commands.h), as
//                           JSON; the answer is the reply's JSON
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "web/events.h"

namespace cw::web {

struct ApiResult {
  int status = 200;
  std::string json;
};

struct ServerOptions {
  std::string address = "127.0.0.1";  // a loopback address
  std::uint16_t port = 7780;          // 0: any free port
  std::string token;
  // Runs one command (the request body); called on a connection thread, may block briefly.
  std::function<ApiResult(const std::string& body)> api;
  EventHub* events = nullptr;
  std::size_t max_body = 1u << 20;
  unsigned max_connections = 64;
};

class Server {
 public:
  static Expected<std::unique_ptr<Server>> start(ServerOptions opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const { return port_; }
  // http://ADDRESS:PORT/ (no token).
  std::string origin() const;
  std::uint64_t refused() const;

  struct Impl;

 private:
  Server() = default;
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
};

// The path is "/" or "/app.js"...; nullptr when there is no such asset.
struct Asset {
  const char* path;
  const char* type;
  const unsigned char* data;
  std::size_t size;
};
const Asset* findAsset(const std::string& path);

// Whether a Host header names this server: "127.0.0.1:7780", "localhost:7780", "[::1]:7780".
bool hostAllowed(const std::string& host, const std::string& address, std::uint16_t port);

}  // namespace cw::web
