// The web UI's HTTP server (libmicrohttpd, in cellwalld's process).
//
// Event-driven: one thread of its own runs libmicrohttpd's epoll loop for every connection, so
// a connection costs a socket and a little memory, not a thread. Nothing on that thread waits:
// a command is handed to `api` and its connection suspended until the answer comes (from any
// thread); an event stream is suspended while it has nothing to send and resumed by the event
// hub's waker. Peers that have not shown the token cannot crowd out those that have: see
// web/admission.h for the limits (a deadline for the request headers, a cap per uid).
//
// Every request needs the token — in `Authorization: Bearer TOKEN` or a `token` query argument
// (how a browser loads the page, its assets and the event stream) — and a Host header naming
// the loopback address it listens on (so a web page elsewhere cannot reach it by DNS
// rebinding). There is no other way in: no unauthenticated path, no cookies, no CORS. A
// refused request's connection is closed after the answer.
// It listens on loopback only, in the host's network namespace, where no cell can connect.
//
//   GET  /?token=T          the UI (index.html, app.js, app.css; built into the binary)
//   GET  /events?token=T    server-sent events (web/events.h)
//   POST /api               one command of the control socket's protocol (api/commands.h), as
//                           JSON; the answer is the reply's JSON
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/net.h"
#include "common/result.h"
#include "web/admission.h"
#include "web/events.h"

namespace cw::web {

struct ApiResult {
  int status = 200;
  std::string json;
};

// Gives the answer to one command; callable once, from any thread, at any time (also after the
// server is gone, when it does nothing).
using ApiReply = std::function<void(ApiResult)>;

// The two ends of a TCP connection to the server, as the kernel knows them.
struct ConnectionEnds {
  IpAddr client;
  std::uint16_t client_port = 0;
  IpAddr server;
  std::uint16_t server_port = 0;
};

struct ServerOptions {
  std::string address = "127.0.0.1";  // a loopback address
  std::uint16_t port = 7780;          // 0: any free port
  std::string token;
  // Starts one command (the request body). Called on the server's loop thread: it must not
  // wait; it calls `reply` when the answer is there (at once, or later from another thread).
  std::function<void(const std::string& body, ApiReply reply)> api;
  // A command not answered within this gets 503 (the control thread is busy or stopping).
  std::chrono::milliseconds api_deadline{10'000};
  // Who owns the client's end of a connection: the uid of its socket, from one exact kernel
  // lookup (the daemon passes attrib/sock_diag.h). Called on the loop thread for every accepted
  // connection; nullopt when it cannot be told. Unset: every client is in one bucket.
  std::function<std::optional<std::uint32_t>(const ConnectionEnds&)> peer_uid;
  Admission::Limits admission{};
  EventHub* events = nullptr;
  std::chrono::milliseconds keep_alive{10'000};  // a quiet event stream gets a comment line
  std::size_t max_body = 1u << 20;
  // All connections, with the token or not. Unproven ones are held to admission.total, so
  // this leaves room for those with the token; it stays well under cellwalld's file limit.
  unsigned max_connections = 512;
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
  // Requests refused (no token, wrong Host...).
  std::uint64_t refused() const;
  // Connections closed before they showed the token: past the header deadline, or the oldest
  // of a uid (or of all) with too many.
  std::uint64_t dropped() const;

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
