#include "web/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/net.h"
#include "web/token.h"

namespace cw::web {

namespace {

using Clock = std::chrono::steady_clock;

// What every answer carries: nothing is cached, framed, sniffed or sent on as a referrer, and
// the page may load nothing but its own scripts and styles and talk to nobody but this server.
constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// Logs the first few of a kind of event and then every thousandth: a peer can cause as many as
// it likes, and the log must not become its tool.
bool worthLogging(std::atomic<std::uint64_t>& count) {
  const auto n = count.fetch_add(1, std::memory_order_relaxed);
  return n < 10 || n % 1000 == 0;
}

std::atomic<std::uint64_t> mhd_messages{0};

void logFromMhd(void* /*cls*/, const char* fmt, va_list ap) {
  if (!worthLogging(mhd_messages)) return;
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string s(buf);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  spdlog::warn("web ui: {}", s);
}

// A command waiting for its answer; its connection is suspended meanwhile.
struct PendingApi {
  MHD_Connection* conn = nullptr;
  Clock::time_point deadline;
  std::optional<ApiResult> result;  // under Mailbox::mu
  bool suspended = false;           // the loop thread's
};

// What other threads hand to the loop thread: answered commands and news of events. The loop
// polls `fd` (an eventfd) beside libmicrohttpd's epoll fd. Every pending reply shares it, so a
// reply that comes after the server is gone still writes to a live (unread) eventfd.
struct Mailbox {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  std::mutex mu;
  std::vector<std::shared_ptr<PendingApi>> answered;
  std::atomic<bool> events{false};

  Mailbox() = default;
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;
  ~Mailbox() {
    if (fd >= 0) ::close(fd);
  }
  void poke() {
    const std::uint64_t one = 1;
    const ssize_t n = ::write(fd, &one, sizeof one);  // EAGAIN: it is poked already
    (void)n;
  }
  void drain() {
    std::uint64_t n;
    while (::read(fd, &n, sizeof n) > 0) {
    }
  }
};

// One HTTP request (libmicrohttpd's per-request context).
struct Request {
  std::string body;
  bool too_big = false;
  std::shared_ptr<PendingApi> pending;  // POST /api, once its body is complete
};

// One TCP connection (libmicrohttpd's per-socket context).
struct Conn {
  Admission::Id id = 0;
  int fd = -1;
  std::optional<std::uint32_t> owner;
  bool proven = false;  // a request on it carried the token
};

std::string ownerText(const std::optional<std::uint32_t>& owner) {
  return owner ? "uid " + std::to_string(*owner) : std::string("a client whose uid is not known");
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

MHD_Result send(MHD_Connection* c, unsigned status, const std::string& body, const char* type,
                bool close = false) {
  MHD_Response* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                                    MHD_RESPMEM_MUST_COPY);
  if (r == nullptr) return MHD_NO;
  secure(r, type);
  if (close) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
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

std::optional<IpAddr> addressOf(const sockaddr* sa, std::uint16_t* port) {
  if (sa == nullptr) return std::nullopt;
  if (sa->sa_family == AF_INET) {
    sockaddr_in sin;
    std::memcpy(&sin, sa, sizeof sin);
    *port = ntohs(sin.sin_port);
    return IpAddr(Ip4{ntohl(sin.sin_addr.s_addr)});
  }
  if (sa->sa_family == AF_INET6) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, sa, sizeof sin6);
    *port = ntohs(sin6.sin6_port);
    Ip6 a;
    std::memcpy(a.b.data(), &sin6.sin6_addr, a.b.size());
    return IpAddr(a);
  }
  return std::nullopt;
}

long long millisUntil(Clock::time_point t, Clock::time_point now) {
  if (t <= now) return 0;
  return std::chrono::ceil<std::chrono::milliseconds>(t - now).count();
}

// An event stream (the content reader's context); freed by libmicrohttpd with its response.
struct StreamCtx {
  Server::Impl* im;
  MHD_Connection* conn;
  std::unique_ptr<EventHub::Stream> stream;
  Clock::time_point last_sent;
};

ssize_t readEvents(void* cls, std::uint64_t /*pos*/, char* buf, std::size_t max);
void freeEvents(void* cls);

}  // namespace

struct Server::Impl {
  explicit Impl(ServerOptions o) : opts(std::move(o)), admission(opts.admission) {}

  ServerOptions opts;
  IpAddr ip;  // opts.address
  std::uint16_t port = 0;
  MHD_Daemon* mhd = nullptr;
  std::string index;  // index.html with the token in its asset links
  std::atomic<std::uint64_t> refused{0}, dropped{0};
  std::shared_ptr<Mailbox> mail = std::make_shared<Mailbox>();
  std::thread loop_thread;
  std::atomic<bool> stopping{false};

  // The loop thread's own; libmicrohttpd's callbacks run on it too (inside MHD_run), and after
  // it has ended, the stopping thread's.
  Admission admission;
  Admission::Id next_id = 1;
  std::unordered_map<Admission::Id, Conn*> conns;  // every open connection
  std::vector<Admission::Id> to_close;            // dropped, to be shut down after MHD_run
  std::set<StreamCtx*> quiet;                      // suspended event streams
  std::set<std::shared_ptr<PendingApi>> waiting;   // suspended commands

  MHD_Result refuse(MHD_Connection* c, unsigned status, const std::string& why) {
    if (worthLogging(refused))
      spdlog::warn("web ui: refused a request: {} ({} so far)", why, refused.load(std::memory_order_relaxed));
    // Closed after the answer: a peer without the token gets one request per connection.
    return send(c, status, jsonError(why), "application/json", true);
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

  // ---- connections: admission (web/admission.h) ----

  void connectionStarted(MHD_Connection* c, void** socket_context) {
    auto* conn = new Conn;
    conn->id = next_id++;
    if (const MHD_ConnectionInfo* i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD))
      conn->fd = i->connect_fd;
    if (opts.peer_uid) {
      const MHD_ConnectionInfo* i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
      ConnectionEnds ends;
      if (auto a = addressOf(i != nullptr ? i->client_addr : nullptr, &ends.client_port)) {
        ends.client = *a;
        ends.server = ip;
        ends.server_port = port;
        conn->owner = opts.peer_uid(ends);
      }
    }
    conns[conn->id] = conn;
    *socket_context = conn;
    for (auto id : admission.admit(conn->id, conn->owner, Clock::now())) {
      auto it = conns.find(id);
      const bool same = it != conns.end() && it->second->owner == conn->owner;
      drop(id, same ? ownerText(conn->owner) + " holds more than " + std::to_string(admission.limits().per_owner) +
                          " connections that have not shown the token (its oldest is closed)"
                    : "more than " + std::to_string(admission.limits().total) +
                          " connections have not shown the token (the oldest is closed)");
    }
  }

  void connectionClosed(void** socket_context) {
    auto* conn = static_cast<Conn*>(*socket_context);
    if (conn == nullptr) return;
    admission.closed(conn->id);
    conns.erase(conn->id);
    delete conn;
    *socket_context = nullptr;
  }

  void proven(MHD_Connection* c) {
    const MHD_ConnectionInfo* i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    auto* conn = i != nullptr ? static_cast<Conn*>(i->socket_context) : nullptr;
    if (conn == nullptr || conn->proven) return;
    conn->proven = true;
    admission.proven(conn->id);
  }

  void drop(Admission::Id id, const std::string& why) {
    to_close.push_back(id);
    if (worthLogging(dropped))
      spdlog::warn("web ui: closed a connection: {} ({} so far)", why, dropped.load(std::memory_order_relaxed));
  }

  // Between MHD_run calls, when every connection still in `conns` has its socket open (its
  // CLOSED notice, which removes it, comes before libmicrohttpd closes the socket).
  void shutDownDropped() {
    for (auto id : to_close) {
      auto it = conns.find(id);
      // The peer sees the end at once; libmicrohttpd reads it and closes the connection.
      if (it != conns.end() && it->second->fd >= 0) ::shutdown(it->second->fd, SHUT_RDWR);
    }
    to_close.clear();
  }

  // ---- requests ----

  MHD_Result handle(MHD_Connection* c, const std::string& url, const std::string& method,
                    const char* upload, std::size_t* upload_size, void** ctx) {
    if (*ctx != nullptr) return apiBody(c, static_cast<Request*>(*ctx), upload, upload_size);

    // Headers only, so far: who is asking, and for what.
    const char* host = header(c, MHD_HTTP_HEADER_HOST);
    if (host == nullptr || !hostAllowed(host, opts.address, port))
      return refuse(c, MHD_HTTP_MISDIRECTED_REQUEST, "Host header is not this server's loopback address");
    if (!authorized(c))
      return refuse(c, MHD_HTTP_UNAUTHORIZED, "a token is needed: `cellwall ui` prints the address with it");
    proven(c);

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
      auto* s = new StreamCtx{this, c, opts.events->subscribe(), Clock::now()};
      MHD_Response* r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, readEvents, s, freeEvents);
      if (r == nullptr) {
        delete s;
        return MHD_NO;
      }
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

  // The body of POST /api, in pieces; then the command, which runs elsewhere while the
  // connection is suspended; then (resumed) its answer.
  MHD_Result apiBody(MHD_Connection* c, Request* req, const char* upload, std::size_t* upload_size) {
    if (req->pending) {
      ApiResult res;
      {
        std::lock_guard lock(mail->mu);
        res = *req->pending->result;
      }
      return send(c, static_cast<unsigned>(res.status), res.json, "application/json");
    }
    if (*upload_size > 0) {
      if (req->body.size() + *upload_size > opts.max_body) req->too_big = true;
      else req->body.append(upload, *upload_size);
      *upload_size = 0;
      return MHD_YES;
    }
    if (req->too_big)
      return send(c, MHD_HTTP_CONTENT_TOO_LARGE,
                  jsonError("request larger than " + std::to_string(opts.max_body) + " bytes"), "application/json");
    if (stopping.load())
      return send(c, MHD_HTTP_SERVICE_UNAVAILABLE, jsonError("cellwalld is stopping"), "application/json");
    auto p = std::make_shared<PendingApi>();
    p->conn = c;
    p->deadline = Clock::now() + opts.api_deadline;
    p->suspended = true;
    req->pending = p;
    MHD_suspend_connection(c);
    waiting.insert(p);
    opts.api(req->body, [mail = mail, p](ApiResult r) {
      {
        std::lock_guard lock(mail->mu);
        if (p->result) return;  // too late: it was answered 503 already
        p->result = std::move(r);
        mail->answered.push_back(p);
      }
      mail->poke();
    });
    return MHD_YES;
  }

  bool resume(const std::shared_ptr<PendingApi>& p) {
    if (!p->suspended) return false;
    p->suspended = false;
    waiting.erase(p);
    MHD_resume_connection(p->conn);
    return true;
  }

  // Called by an event stream's reader: nothing to send now; wait for news (or the keep-alive).
  void quietStream(StreamCtx* s) {
    MHD_suspend_connection(s->conn);
    quiet.insert(s);
  }

  // ---- the loop ----

  int pollTimeout() {
    const auto now = Clock::now();
    long long ms = 60'000;  // nothing due: wake now and then regardless
    MHD_UNSIGNED_LONG_LONG mhd_ms = 0;
    if (MHD_get_timeout(mhd, &mhd_ms) == MHD_YES) ms = std::min<long long>(ms, static_cast<long long>(mhd_ms));
    if (auto d = admission.nextDeadline()) ms = std::min(ms, millisUntil(*d, now));
    for (const auto& p : waiting) ms = std::min(ms, millisUntil(p->deadline, now));
    for (const auto* s : quiet) ms = std::min(ms, millisUntil(s->last_sent + opts.keep_alive, now));
    return static_cast<int>(ms);
  }

  // Returns whether it resumed a connection: libmicrohttpd (with no thread of its own) gets to
  // it only in the next MHD_run, which must come at once.
  bool afterRun() {
    const auto now = Clock::now();
    const auto deadline_s = std::chrono::duration_cast<std::chrono::seconds>(admission.limits().header_deadline);
    for (auto id : admission.expired(now)) {
      auto it = conns.find(id);
      drop(id, ownerText(it != conns.end() ? it->second->owner : std::nullopt) +
                   " sent no request with the token within " + std::to_string(deadline_s.count()) + " s");
    }
    shutDownDropped();

    std::vector<std::shared_ptr<PendingApi>> ready;
    {
      std::lock_guard lock(mail->mu);
      ready.swap(mail->answered);
      for (const auto& p : waiting) {
        if (p->result || p->deadline > now) continue;
        p->result = ApiResult{503, jsonError("cellwalld did not answer within " +
                                             std::to_string(opts.api_deadline.count() / 1000) +
                                             " s (busy or stopping); try again")};
        ready.push_back(p);
      }
    }
    bool resumed = false;
    for (const auto& p : ready) resumed |= resume(p);

    const bool news = mail->events.exchange(false);
    for (auto it = quiet.begin(); it != quiet.end();) {
      StreamCtx* s = *it;
      if (!news && now - s->last_sent < opts.keep_alive) {
        ++it;
        continue;
      }
      it = quiet.erase(it);
      MHD_resume_connection(s->conn);
      resumed = true;
    }
    return resumed;
  }

  void loop() {
    const MHD_DaemonInfo* info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const int epoll_fd = info != nullptr ? info->epoll_fd : -1;
    bool again = false;
    while (!stopping.load()) {
      pollfd p[2] = {{epoll_fd, POLLIN, 0}, {mail->fd, POLLIN, 0}};
      if (::poll(p, 2, again ? 0 : pollTimeout()) < 0 && errno != EINTR) {
        spdlog::error("web ui: poll failed: {}; the web UI stops answering", std::strerror(errno));
        return;
      }
      if (p[1].revents != 0) mail->drain();
      MHD_run(mhd);
      again = afterRun();
    }
  }

  // libmicrohttpd must not be stopped with suspended connections: answer and end them first.
  void stop() {
    {
      std::lock_guard lock(mail->mu);
      for (const auto& p : waiting)
        if (!p->result) p->result = ApiResult{503, jsonError("cellwalld is stopping")};
    }
    for (auto p : std::vector<std::shared_ptr<PendingApi>>(waiting.begin(), waiting.end())) resume(p);
    for (auto* s : quiet) MHD_resume_connection(s->conn);  // their hub is closed: they end
    quiet.clear();
    MHD_run(mhd);
    MHD_stop_daemon(mhd);
    mhd = nullptr;
  }
};

namespace {

ssize_t readEvents(void* cls, std::uint64_t /*pos*/, char* buf, std::size_t max) {
  auto* s = static_cast<StreamCtx*>(cls);
  long n = s->stream->readNow(buf, max);
  const auto now = Clock::now();
  if (n == 0 && now - s->last_sent >= s->im->opts.keep_alive) {
    s->stream->keepAlive();
    n = s->stream->readNow(buf, max);
  }
  if (n < 0) return MHD_CONTENT_READER_END_OF_STREAM;
  if (n == 0) {
    s->im->quietStream(s);
    return 0;
  }
  s->last_sent = now;
  return static_cast<ssize_t>(n);
}

void freeEvents(void* cls) {
  auto* s = static_cast<StreamCtx*>(cls);
  s->im->quiet.erase(s);
  delete s;
}

MHD_Result onRequest(void* cls, MHD_Connection* c, const char* url, const char* method,
                     const char* /*version*/, const char* upload, std::size_t* upload_size, void** ctx) {
  return static_cast<Server::Impl*>(cls)->handle(c, url, method, upload, upload_size, ctx);
}

void onCompleted(void* /*cls*/, MHD_Connection* /*c*/, void** ctx, MHD_RequestTerminationCode /*toe*/) {
  delete static_cast<Request*>(*ctx);
  *ctx = nullptr;
}

void onConnection(void* cls, MHD_Connection* c, void** socket_context, MHD_ConnectionNotificationCode toe) {
  auto* im = static_cast<Server::Impl*>(cls);
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) im->connectionStarted(c, socket_context);
  else im->connectionClosed(socket_context);
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
  s->impl_ = std::make_unique<Impl>(std::move(opts));
  Impl& im = *s->impl_;
  im.ip = *ip;
  if (im.mail->fd < 0) return fail(std::string("web ui: cannot make an eventfd: ") + std::strerror(errno));
  const Asset* index = findAsset("/index.html");
  if (index == nullptr) return fail("web ui: the binary was built without its pages");
  im.index.assign(reinterpret_cast<const char*>(index->data), index->size);
  for (std::size_t at; (at = im.index.find("{{token}}")) != std::string::npos;)
    im.index.replace(at, 9, im.opts.token);

  sockaddr_in sin{};
  sockaddr_in6 sin6{};
  sockaddr* sa = nullptr;
  // No thread of libmicrohttpd's own: ours runs its epoll loop (Impl::loop), which also keeps
  // the deadlines and resumes suspended connections.
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
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
                            MHD_OPTION_EXTERNAL_LOGGER, logFromMhd, nullptr,       //
                            MHD_OPTION_SOCK_ADDR, sa,                              //
                            MHD_OPTION_CONNECTION_LIMIT, im.opts.max_connections,  //
                            MHD_OPTION_CONNECTION_TIMEOUT, 60u,                    //
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,                 //
                            MHD_OPTION_NOTIFY_COMPLETED, onCompleted, nullptr,     //
                            MHD_OPTION_NOTIFY_CONNECTION, onConnection, &im,       //
                            MHD_OPTION_END);
  if (im.mhd == nullptr)
    return fail("web ui: cannot listen on " + im.opts.address + ":" + std::to_string(im.opts.port) +
                " (in use? set ui_listen in cellwalld.toml, or \"off\")");
  const MHD_DaemonInfo* info = MHD_get_daemon_info(im.mhd, MHD_DAEMON_INFO_BIND_PORT);
  im.port = s->port_ = info != nullptr ? info->port : im.opts.port;
  if (im.opts.events != nullptr)
    im.opts.events->setWaker([mail = im.mail] {
      mail->events.store(true);
      mail->poke();
    });
  im.loop_thread = std::thread([&im] { im.loop(); });
  return s;
}

Server::~Server() {
  if (!impl_) return;
  Impl& im = *impl_;
  if (im.opts.events != nullptr) {
    im.opts.events->setWaker({});
    im.opts.events->close();  // ends the event streams
  }
  im.stopping.store(true);
  im.mail->poke();
  if (im.loop_thread.joinable()) im.loop_thread.join();
  if (im.mhd != nullptr) im.stop();
}

std::string Server::origin() const {
  const bool v6 = impl_->opts.address.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + impl_->opts.address + "]" : impl_->opts.address) + ":" + std::to_string(port_) + "/";
}

std::uint64_t Server::refused() const { return impl_->refused.load(std::memory_order_relaxed); }
std::uint64_t Server::dropped() const { return impl_->dropped.load(std::memory_order_relaxed); }

}  // namespace cw::web
