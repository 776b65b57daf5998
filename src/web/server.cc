#include "web/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/net.h"
#include "web/token.h"

namespace cw::web {

namespace {

// What every answer carries: nothing is cached, framed, sniffed or sent on as a referrer, and
// the page may load nothing but its own scripts and styles and talk to nobody but this server.
constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Request {
  std::string body;
  bool too_big = false;
};

void logFromMhd(void* /*cls*/, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string s(buf);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  spdlog::warn("web ui: {}", s);
}

void secure(MHD_Response* r, const char* type) {
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, "Content-Security-Policy", kCsp);
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "X-Frame-Options", "DENY");
  MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

MHD_Result send(MHD_Connection* c, unsigned status, const std::string& body, const char* type) {
  MHD_Response* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                                    MHD_RESPMEM_MUST_COPY);
  if (r == nullptr) return MHD_NO;
  secure(r, type);
  MHD_Result ok = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ok;
}

std::string jsonError(const std::string& why) {
  std::string s = "{\"ok\":false,\"error\":\"";
  for (char ch : why) {
    if (ch == '"' || ch == '\\') s.push_back('\\');
    if (static_cast<unsigned char>(ch) >= 0x20) s.push_back(ch);
  }
  return s + "\"}";
}

const char* header(MHD_Connection* c, const char* name) {
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

ssize_t readEvents(void* cls, std::uint64_t /*pos*/, char* buf, std::size_t max) {
  long n = static_cast<EventHub::Stream*>(cls)->read(buf, max, std::chrono::seconds(10));
  return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : static_cast<ssize_t>(n);
}

void freeEvents(void* cls) { delete static_cast<EventHub::Stream*>(cls); }

}  // namespace

struct Server::Impl {
  ServerOptions opts;
  std::uint16_t port = 0;
  MHD_Daemon* mhd = nullptr;
  std::string index;  // index.html with the token in its asset links
  std::atomic<std::uint64_t> refused{0};

  MHD_Result refuse(MHD_Connection* c, unsigned status, const std::string& why) {
    auto n = refused.fetch_add(1, std::memory_order_relaxed);
    if (n < 10 || n % 1000 == 0) spdlog::warn("web ui: refused a request: {} ({} so far)", why, n + 1);
    return send(c, status, jsonError(why), "application/json");
  }

  bool authorized(MHD_Connection* c) const {
    if (const char* auth = header(c, MHD_HTTP_HEADER_AUTHORIZATION)) {
      std::string_view a(auth);
      constexpr std::string_view kBearer = "Bearer ";
      return a.substr(0, kBearer.size()) == kBearer && tokenEquals(a.substr(kBearer.size()), opts.token);
    }
    const char* t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    return t != nullptr && tokenEquals(t, opts.token);
  }

  MHD_Result handle(MHD_Connection* c, const std::string& url, const std::string& method,
                    const char* upload, std::size_t* upload_size, void** ctx) {
    if (*ctx != nullptr) {  // the body of POST /api, in pieces
      auto* req = static_cast<Request*>(*ctx);
      if (*upload_size > 0) {
        if (req->body.size() + *upload_size > opts.max_body) req->too_big = true;
        else req->body.append(upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
      }
      if (req->too_big)
        return send(c, MHD_HTTP_CONTENT_TOO_LARGE,
                    jsonError("request larger than " + std::to_string(opts.max_body) + " bytes"),
                    "application/json");
      ApiResult res = opts.api(req->body);
      return send(c, static_cast<unsigned>(res.status), res.json, "application/json");
    }

    // Headers only, so far: who is asking, and for what.
    const char* host = header(c, MHD_HTTP_HEADER_HOST);
    if (host == nullptr || !hostAllowed(host, opts.address, port))
      return refuse(c, MHD_HTTP_MISDIRECTED_REQUEST, "Host header is not this server's loopback address");
    if (!authorized(c))
      return refuse(c, MHD_HTTP_UNAUTHORIZED, "a token is needed: `cellwall ui` prints the address with it");

    if (method == MHD_HTTP_METHOD_POST && url == "/api") {
      const char* origin = header(c, "Origin");
      if (origin != nullptr && std::string(origin) != "http://" + std::string(host))
        return refuse(c, MHD_HTTP_FORBIDDEN, "request from another origin");
      const char* type = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
      if (type == nullptr || std::string_view(type).substr(0, 16) != "application/json")
        return refuse(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "POST /api takes application/json");
      *ctx = new Request;
      return MHD_YES;
    }
    if (method != MHD_HTTP_METHOD_GET && method != MHD_HTTP_METHOD_HEAD)
      return send(c, MHD_HTTP_METHOD_NOT_ALLOWED, jsonError("method not allowed"), "application/json");

    if (url == "/events") {
      if (opts.events == nullptr) return send(c, MHD_HTTP_NOT_FOUND, jsonError("no events"), "application/json");
      auto stream = opts.events->subscribe();
      MHD_Response* r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, readEvents,
                                                          stream.get(), freeEvents);
      if (r == nullptr) return MHD_NO;
      stream.release();  // freeEvents owns it now
      secure(r, "text/event-stream");
      MHD_add_response_header(r, "X-Accel-Buffering", "no");
      MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
      MHD_destroy_response(r);
      return ok;
    }
    if (url == "/" || url == "/index.html") return send(c, MHD_HTTP_OK, index, "text/html; charset=utf-8");
    const Asset* a = findAsset(url);
    if (a == nullptr)
      return send(c, MHD_HTTP_NOT_FOUND, jsonError("no such page"), "application/json");
    return send(c, MHD_HTTP_OK, std::string(reinterpret_cast<const char*>(a->data), a->size), a->type);
  }
};

namespace {

MHD_Result onRequest(void* cls, MHD_Connection* c, const char* url, const char* method,
                     const char* /*version*/, const char* upload, std::size_t* upload_size, void** ctx) {
  return static_cast<Server::Impl*>(cls)->handle(c, url, method, upload, upload_size, ctx);
}

void onCompleted(void* /*cls*/, MHD_Connection* /*c*/, void** ctx, MHD_RequestTerminationCode /*toe*/) {
  delete static_cast<Request*>(*ctx);
  *ctx = nullptr;
}

}  // namespace

bool hostAllowed(const std::string& host, const std::string& address, std::uint16_t port) {
  const std::string p = ":" + std::to_string(port);
  const bool v6 = address.find(':') != std::string::npos;
  return host == (v6 ? "[" + address + "]" : address) + p || host == "localhost" + p;
}

Expected<std::unique_ptr<Server>> Server::start(ServerOptions opts) {
  auto ip = IpAddr::parse(opts.address);
  if (!ip) return fail("web ui: '" + opts.address + "' is not an IP address");
  const bool loopback = ip->is_v4() ? (ip->v4().v >> 24) == 127 : ip->str() == "::1";
  if (!loopback)
    return fail("web ui: it listens on a loopback address only (127.0.0.1 or ::1), not " + opts.address +
                "; reach it from elsewhere through an SSH tunnel");
  if (opts.token.size() < 32) return fail("web ui: no token");
  if (!opts.api) return fail("web ui: no command handler");

  std::unique_ptr<Server> s(new Server);
  s->impl_ = std::make_unique<Impl>();
  Impl& im = *s->impl_;
  im.opts = std::move(opts);
  const Asset* index = findAsset("/index.html");
  if (index == nullptr) return fail("web ui: the binary was built without its pages");
  im.index.assign(reinterpret_cast<const char*>(index->data), index->size);
  for (std::size_t at; (at = im.index.find("{{token}}")) != std::string::npos;)
    im.index.replace(at, 9, im.opts.token);

  sockaddr_in sin{};
  sockaddr_in6 sin6{};
  sockaddr* sa = nullptr;
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  if (ip->is_v4()) {
    sin.sin_family = AF_INET;
    sin.sin_port = htons(im.opts.port);
    inet_pton(AF_INET, im.opts.address.c_str(), &sin.sin_addr);
    sa = reinterpret_cast<sockaddr*>(&sin);
  } else {
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(im.opts.port);
    inet_pton(AF_INET6, im.opts.address.c_str(), &sin6.sin6_addr);
    sa = reinterpret_cast<sockaddr*>(&sin6);
    flags |= MHD_USE_IPv6;
  }
  im.mhd = MHD_start_daemon(flags, im.opts.port, nullptr, nullptr, onRequest, &im,  //
                            MHD_OPTION_SOCK_ADDR, sa,                              //
                            MHD_OPTION_CONNECTION_LIMIT, im.opts.max_connections,  //
                            MHD_OPTION_CONNECTION_TIMEOUT, 60u,                    //
                            MHD_OPTION_NOTIFY_COMPLETED, onCompleted, nullptr,     //
                            MHD_OPTION_EXTERNAL_LOGGER, logFromMhd, nullptr,       //
                            MHD_OPTION_END);
  if (im.mhd == nullptr)
    return fail("web ui: cannot listen on " + im.opts.address + ":" + std::to_string(im.opts.port) +
                " (in use? set ui_listen in cellwalld.toml, or \"off\")");
  const MHD_DaemonInfo* info = MHD_get_daemon_info(im.mhd, MHD_DAEMON_INFO_BIND_PORT);
  im.port = s->port_ = info != nullptr ? info->port : im.opts.port;
  return s;
}

Server::~Server() {
  if (!impl_) return;
  if (impl_->opts.events != nullptr) impl_->opts.events->close();  // ends the event streams
  if (impl_->mhd != nullptr) MHD_stop_daemon(impl_->mhd);
}

std::string Server::origin() const {
  const bool v6 = impl_->opts.address.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + impl_->opts.address + "]" : impl_->opts.address) + ":" + std::to_string(port_) + "/";
}

std::uint64_t Server::refused() const { return impl_->refused.load(std::memory_order_relaxed); }

}  // namespace cw::web
