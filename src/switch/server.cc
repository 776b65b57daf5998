#include "switch/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <spdlog/spdlog.h>

#include "switch/admission.h"
#include "switch/connection.h"

namespace cw::sw {

struct SwitchServer::Impl final : ConnectionOwner {
  Impl(ServerOptions o, SwitchHandler& h) : options(std::move(o)), handler(h) {}

  ServerOptions options;
  SwitchHandler& handler;
  // One event loop per worker thread; connections are pinned to one for their life.
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::unique_ptr<asio::ip::tcp::acceptor> tcp_acceptor;
  std::unique_ptr<asio::local::stream_protocol::acceptor> unix_acceptor;
  std::unique_ptr<asio::ip::tcp::acceptor> tls_acceptor;
  std::unique_ptr<asio::ssl::context> tls;
  std::mutex tls_log_mu;  // handshakes finish on any loop; the log limiter is not thread-safe
  RateLimitedLog tls_log;
  std::atomic<unsigned> next_loop{0};
  bool running = false;

  mutable std::mutex mu;  // guards switches, floors, takeover_log (control plane only; never taken per packet)
  std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> switches;
  // Per datapath id, the weakest authentication still accepted (admission.h): the configured
  // floor, raised to the strongest authentication that ever held the id.
  std::unordered_map<std::uint64_t, Auth> floors;
  RateLimitedLog takeover_log;
  RateLimitedLog peer_log;  // only on loops[0], where the UNIX acceptor runs
  std::atomic<std::uint64_t> refused_peers{0}, refused_takeovers{0};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(ofp::DecodeError::kCount)>
      decode_errors{};

  asio::io_context& pickLoop() {
    return *loops[next_loop.fetch_add(1, std::memory_order_relaxed) % loops.size()];
  }

  bool registerSwitch(const std::shared_ptr<Connection>& c) override {
    std::lock_guard lock(mu);
    const std::uint64_t dpid = c->datapathId();
    auto it = switches.find(dpid);
    std::shared_ptr<Connection> old = it == switches.end() ? nullptr : it->second.lock();
    if (old && !old->isConnected()) old.reset();  // closing: its unregister is on its way
    std::optional<Auth> held;
    if (old) held = old->auth();
    auto fit = floors.find(dpid);
    const Auth min_auth = fit == floors.end() ? Auth::kNone : fit->second;
    switch (admit(c->auth(), held, min_auth)) {
      case Admission::kRefuse:
        refused_takeovers.fetch_add(1, std::memory_order_relaxed);
        if (old)
          takeover_log.warn("refused switch {:016x} from {} (authenticated: {}): that datapath id is held by {} "
                            "(authenticated: {}), which a weaker connection never replaces; a real switch "
                            "must connect the way that one did",
                            dpid, c->peer(), authName(c->auth()), old->peer(), authName(old->auth()));
        else
          takeover_log.warn("refused switch {:016x} from {} (authenticated: {}): that datapath id accepts only "
                            "connections authenticated as {} or better; a real switch must connect over the "
                            "UNIX socket (local) or mutual TLS (remote)",
                            dpid, c->peer(), authName(c->auth()), authName(min_auth));
        return false;
      case Admission::kReplace:
        // A switch that restarted reconnects before its old connection times out. Loud, because
        // it is also what a stolen certificate or a second root process would look like.
        spdlog::warn("switch {:016x}: the connection from {} (authenticated: {}) replaces the one from {} "
                     "(authenticated: {})",
                     dpid, c->peer(), authName(c->auth()), old->peer(), authName(old->auth()));
        old->post([old] { old->close("replaced by a new connection from the same switch"); });
        break;
      case Admission::kAdmit:
        break;
    }
    switches[dpid] = c;
    floors[dpid] = std::max(min_auth, c->auth());
    return true;
  }
  void unregisterSwitch(const Connection* c) override {
    std::lock_guard lock(mu);
    auto it = switches.find(c->datapathId());
    if (it != switches.end()) {
      auto cur = it->second.lock();
      if (!cur || cur.get() == c) switches.erase(it);
    }
  }
  void countDecodeError(ofp::DecodeError e) override {
    decode_errors[static_cast<std::size_t>(e)].fetch_add(1, std::memory_order_relaxed);
  }

  void adopt(int fd, const asio::generic::stream_protocol& proto, std::string peer, Auth auth) {
    asio::io_context& loop = pickLoop();
    asio::post(loop, [this, &loop, fd, proto, peer = std::move(peer), auth]() mutable {
      auto stream = std::make_unique<PlainStream>(asio::generic::stream_protocol::socket(loop, proto, fd));
      auto c = std::make_shared<Connection>(std::move(stream), std::move(peer), auth, options, handler, *this);
      c->start();
    });
  }

  void acceptTcp() {
    tcp_acceptor->async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket s) {
      if (ec) {
        if (ec != asio::error::operation_aborted) {
          spdlog::warn("accepting a switch connection failed: {}", ec.message());
          acceptTcp();
        }
        return;
      }
      asio::error_code ignored;
      s.set_option(asio::ip::tcp::no_delay(true), ignored);
      auto ep = s.remote_endpoint(ignored);
      std::string peer = "tcp:" + ep.address().to_string() + ":" + std::to_string(ep.port());
      bool v6 = ep.address().is_v6();
      int fd = s.release(ignored);
      adopt(fd, asio::generic::stream_protocol(v6 ? AF_INET6 : AF_INET, IPPROTO_TCP),
            std::move(peer), Auth::kNone);
      acceptTcp();
    });
  }

  void acceptTls() {
    asio::io_context& loop = pickLoop();
    tls_acceptor->async_accept(loop, [this, &loop](const asio::error_code& ec, asio::ip::tcp::socket s) {
      if (ec) {
        if (ec != asio::error::operation_aborted) acceptTls();
        return;
      }
      asio::error_code ignored;
      s.set_option(asio::ip::tcp::no_delay(true), ignored);
      auto ep = s.remote_endpoint(ignored);
      std::string peer = "ssl:" + ep.address().to_string() + ":" + std::to_string(ep.port());
      auto st = std::make_shared<TlsStream::Stream>(std::move(s), *tls);
      // The handshake runs on the connection's own loop; a peer that stalls it is dropped.
      auto timer = std::make_shared<asio::steady_timer>(loop, std::chrono::seconds(options.handshake_timeout_sec));
      timer->async_wait([weak = std::weak_ptr<TlsStream::Stream>(st)](const asio::error_code& e) {
        auto strong = weak.lock();
        if (!e && strong) {
          asio::error_code ig;
          strong->lowest_layer().close(ig);
        }
      });
      st->async_handshake(asio::ssl::stream_base::server,
                          [this, timer, peer, st](const asio::error_code& hec) {
                            timer->cancel();
                            if (hec) {
                              std::lock_guard lock(tls_log_mu);
                              tls_log.warn("TLS handshake with {} failed: {}", peer, hec.message());
                              return;
                            }
                            auto c = std::make_shared<Connection>(std::make_unique<TlsStream>(st), peer,
                                                                  Auth::kTls, options, handler, *this);
                            c->start();
                          });
      acceptTls();
    });
  }

  // A bound, listening TCP acceptor on the configured address (TCP and TLS listeners alike).
  Expected<std::unique_ptr<asio::ip::tcp::acceptor>> listenTcp(std::uint16_t port, const char* what) {
    asio::error_code ec;
    auto addr = asio::ip::make_address(options.tcp_address, ec);
    if (ec) return fail("bad OpenFlow listen address '" + options.tcp_address + "'");
    asio::ip::tcp::endpoint ep(addr, port);
    auto a = std::make_unique<asio::ip::tcp::acceptor>(*loops[0]);
    a->open(ep.protocol(), ec);
    if (!ec) a->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) a->bind(ep, ec);
    if (!ec) a->listen(options.listen_backlog, ec);
    if (ec)
      return fail(std::string("cannot listen for ") + what + " on " + options.tcp_address + ":" +
                  std::to_string(port) + ": " + ec.message() +
                  " (is another controller running? choose another port)");
    return a;
  }

  Expected<void> setupTls() {
    tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    asio::error_code ec;
    tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1,
                     ec);
    auto need = [](const std::string& v, const char* what) -> Expected<void> {
      if (v.empty()) return fail(std::string("TLS for switches needs ") + what);
      return {};
    };
    if (auto r = need(options.tls_cert, "a certificate (--of-tls-cert)"); !r) return r;
    if (auto r = need(options.tls_key, "a private key (--of-tls-key)"); !r) return r;
    if (auto r = need(options.tls_ca, "the CA that signs switch certificates (--of-tls-ca)"); !r) return r;
    tls->use_certificate_chain_file(options.tls_cert, ec);
    if (ec) return fail("cannot load TLS certificate " + options.tls_cert + ": " + ec.message());
    tls->use_private_key_file(options.tls_key, asio::ssl::context::pem, ec);
    if (ec) return fail("cannot load TLS private key " + options.tls_key + ": " + ec.message());
    tls->load_verify_file(options.tls_ca, ec);
    if (ec) return fail("cannot load TLS CA " + options.tls_ca + ": " + ec.message());
    tls->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
    if (ec) return fail("cannot require switch certificates: " + ec.message());
    return {};
  }

  // The peer's identity as the kernel recorded it at connect(), or an error.
  static bool peerCredentials(int fd, ucred& cred) {
    socklen_t len = sizeof cred;
    return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof cred;
  }

  std::string allowedUids() const {
    std::string out;
    for (auto u : options.unix_peer_uids) out += (out.empty() ? "" : ", ") + std::to_string(u);
    return out;
  }

  void acceptUnix() {
    unix_acceptor->async_accept(
        [this](const asio::error_code& ec, asio::local::stream_protocol::socket s) {
          if (ec) {
            if (ec != asio::error::operation_aborted) {
              spdlog::warn("accepting a switch connection failed: {}", ec.message());
              acceptUnix();
            }
            return;
          }
          // Defence in depth: the socket's directory is root-only already, but a peer is a
          // switch only if the kernel says it runs as an allowed uid.
          ucred cred{};
          bool known = peerCredentials(s.native_handle(), cred);
          const auto& uids = options.unix_peer_uids;
          if (!known || std::find(uids.begin(), uids.end(), cred.uid) == uids.end()) {
            refused_peers.fetch_add(1, std::memory_order_relaxed);
            if (known)
              peer_log.warn("refused a switch connection on {} from pid {} uid {}: only uids [{}] may connect "
                            "(root, cellwalld's and the local Open vSwitch's)",
                            options.unix_path, cred.pid, cred.uid, allowedUids());
            else
              peer_log.warn("refused a switch connection on {}: cannot read its peer credentials: {}",
                            options.unix_path, std::strerror(errno));
            asio::error_code ignored;
            s.close(ignored);
            acceptUnix();
            return;
          }
          asio::error_code ignored;
          int fd = s.release(ignored);
          adopt(fd, asio::generic::stream_protocol(AF_UNIX, 0),
                "unix:" + options.unix_path + " pid=" + std::to_string(cred.pid) + " uid=" + std::to_string(cred.uid),
                Auth::kUnixPeerCred);
          acceptUnix();
        });
  }

  Expected<void> listenUnix() {
    const std::string& path = options.unix_path;
    ::unlink(path.c_str());
    unix_acceptor = std::make_unique<asio::local::stream_protocol::acceptor>(*loops[0]);
    asio::local::stream_protocol::endpoint ep(path);
    asio::error_code ec;
    unix_acceptor->open(ep.protocol(), ec);
    if (!ec) unix_acceptor->bind(ep, ec);
    if (ec) return fail("cannot listen for switches on " + path + ": " + ec.message());
    // Before listen(): until then a connect() is refused, so nobody slips in while the file
    // still has the umask's mode.
    if (::chmod(path.c_str(), 0600) != 0)
      return fail("cannot make " + path + " private (chmod 0600): " + std::strerror(errno));
    if (options.unix_owner_uid && ::chown(path.c_str(), *options.unix_owner_uid, static_cast<gid_t>(-1)) != 0)
      return fail("cannot give " + path + " to uid " + std::to_string(*options.unix_owner_uid) +
                  " (the Open vSwitch user): " + std::strerror(errno));
    unix_acceptor->listen(options.listen_backlog, ec);
    if (ec) return fail("cannot listen for switches on " + path + ": " + ec.message());
    return {};
  }
};

SwitchServer::SwitchServer(ServerOptions options, SwitchHandler& handler)
    : impl_(std::make_unique<Impl>(std::move(options), handler)) {}

SwitchServer::~SwitchServer() { stop(); }

Expected<void> SwitchServer::start() {
  auto& im = *impl_;
  unsigned n = im.options.threads != 0 ? im.options.threads
                                       : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) {
    im.loops.push_back(std::make_unique<asio::io_context>(1));
    im.guards.push_back(asio::make_work_guard(*im.loops.back()));
  }
  im.floors.insert(im.options.dpid_floor.begin(), im.options.dpid_floor.end());
  if (im.options.tcp_port != 0) {
    auto a = im.listenTcp(im.options.tcp_port, "switches");
    if (!a) return Unexpected(a.error());
    im.tcp_acceptor = std::move(a.value());
    im.acceptTcp();
  }
  if (!im.options.unix_path.empty()) {
    if (auto r = im.listenUnix(); !r) return r;
    im.acceptUnix();
  }
  if (im.options.tls_port != 0) {
    if (auto r = im.setupTls(); !r) return r;
    auto a = im.listenTcp(im.options.tls_port, "TLS switches");
    if (!a) return Unexpected(a.error());
    im.tls_acceptor = std::move(a.value());
    im.acceptTls();
  }
  for (auto& loop : im.loops) {
    im.threads.emplace_back([l = loop.get()] { l->run(); });
  }
  im.running = true;
  return {};
}

void SwitchServer::stop() {
  auto& im = *impl_;
  if (!im.running) return;
  im.running = false;
  asio::post(*im.loops[0], [&im] {
    asio::error_code ignored;
    if (im.tcp_acceptor) im.tcp_acceptor->close(ignored);
    if (im.unix_acceptor) im.unix_acceptor->close(ignored);
    if (im.tls_acceptor) im.tls_acceptor->close(ignored);
  });
  for (auto& sw : all()) sw->post([sw] { sw->close("controller stopping"); });
  im.guards.clear();
  for (auto& loop : im.loops) {
    // Give queued closes a moment, then stop whatever is still pending.
    asio::post(*loop, [l = loop.get()] { l->stop(); });
  }
  for (auto& t : im.threads) t.join();
  im.threads.clear();
  if (!im.options.unix_path.empty()) ::unlink(im.options.unix_path.c_str());
}

std::shared_ptr<Switch> SwitchServer::find(std::uint64_t dpid) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->switches.find(dpid);
  return it == impl_->switches.end() ? nullptr : it->second.lock();
}

std::vector<std::shared_ptr<Switch>> SwitchServer::all() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::shared_ptr<Switch>> out;
  for (auto& [dpid, w] : impl_->switches)
    if (auto s = w.lock()) out.push_back(std::move(s));
  return out;
}

void SwitchServer::postToEveryThread(const std::function<void()>& fn) {
  for (auto& loop : impl_->loops) asio::post(*loop, fn);
}

unsigned SwitchServer::threadCount() const { return static_cast<unsigned>(impl_->loops.size()); }

std::uint16_t SwitchServer::tcpPort() const {
  if (!impl_->tcp_acceptor) return 0;
  asio::error_code ec;
  return impl_->tcp_acceptor->local_endpoint(ec).port();
}

SwitchServer::Refused SwitchServer::refused() const {
  return {impl_->refused_peers.load(std::memory_order_relaxed),
          impl_->refused_takeovers.load(std::memory_order_relaxed)};
}

std::vector<std::uint64_t> SwitchServer::decodeErrorCounts() const {
  std::vector<std::uint64_t> out;
  for (auto& c : impl_->decode_errors) out.push_back(c.load(std::memory_order_relaxed));
  return out;
}

}  // namespace cw::sw
