#include "load_loop.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "sim_switch.h"

namespace cw::ofload {

namespace {

constexpr std::size_t kRxBufferSize = 256 * 1024;  // several maximal (64 KiB) messages
constexpr std::size_t kTxHighWater = 1024 * 1024;  // stop adding load above this backlog
constexpr int kSocketBuffer = 4 * 1024 * 1024;
constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kExpireEvery = 50 * kMs;
constexpr std::int64_t kScanEvery = 5 * kMs;  // start switches whose settle time passed
constexpr std::int64_t kTick = 1 * kMs;        // longest sleep: timers are checked this often

std::int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  void reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

struct Conn {
  Conn(const Options& opts, std::uint64_t dpid) : sw(opts, dpid), rx(kRxBufferSize) {}
  Fd fd;
  SimSwitch sw;
  std::vector<std::uint8_t> rx;
  std::size_t rx_len = 0;
  std::vector<std::uint8_t> tx;
  std::size_t tx_off = 0;
  bool want_out = false;  // EPOLLOUT registered: the socket buffer was full
  bool started = false;   // load running
  bool touched = false;   // in this turn's list of connections to refill and flush
};

std::string hexId(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

class Loop {
 public:
  explicit Loop(const Options& opts) : opts_(opts), epoll_(::epoll_create1(EPOLL_CLOEXEC)) {}

  Result<RunResult, RunError> run();

 private:
  Result<void, RunError> connectAll();
  // Reads what the connection has and hands it to its switch; `block` waits (up to the
  // receive timeout) for the first bytes, else only what is there is read.
  Result<void, RunError> onReadable(Conn& c, bool block = false);
  Result<void, RunError> waitAndRead();
  Result<void, RunError> flush(Conn& c);
  void touch(Conn& c) {
    if (!c.touched) {
      c.touched = true;
      touched_.push_back(&c);
    }
  }
  void setWantOut(Conn& c, bool want);
  SwitchCounters totals() const;
  RunError runtime(const Conn& c, const std::string& what) const {
    std::string msg = "switch dpid " + hexId(c.sw.datapathId()) + ": " + what;
    if (!c.sw.firstError().empty()) msg += " (controller's first error: " + c.sw.firstError() + ")";
    return RunError{RunFailure::kRuntime, msg};
  }

  const Options& opts_;
  Fd epoll_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> touched_;
  std::vector<epoll_event> events_;
  std::vector<std::int64_t> rtts_;      // this turn's completions
  std::vector<std::int64_t> samples_;   // completions inside the measured window
  bool measuring_ = false;
};

Result<void, RunError> Loop::connectAll() {
  const std::string where = opts_.host + ":" + opts_.port;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(opts_.host.c_str(), opts_.port.c_str(), &hints, &res); rc != 0) {
    return Unexpected(RunError{RunFailure::kConnect, "cannot resolve controller address " + where +
                                                         ": " + ::gai_strerror(rc)});
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);

  for (std::uint32_t i = 0; i < opts_.switches; ++i) {
    auto c = std::make_unique<Conn>(opts_, opts_.dpid_base + i);
    int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      return Unexpected(RunError{RunFailure::kRuntime,
                                 std::string("cannot create socket: ") + std::strerror(errno) +
                                     " (raise the open-files limit: ulimit -n)"});
    }
    c->fd.reset(fd);
    int one = 1;
    // Set before connect so the window scaling negotiated covers the large buffers.
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSocketBuffer, sizeof kSocketBuffer);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof kSocketBuffer);
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Blocking connect keeps this simple; switches connect one after another like a restart.
    if (::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
      int err = errno;
      std::string hint = err == ECONNREFUSED ? " (is the controller running and listening there?)" : "";
      return Unexpected(RunError{RunFailure::kConnect,
                                 "cannot connect switch " + std::to_string(i + 1) + " of " +
                                     std::to_string(opts_.switches) + " to the controller at " +
                                     where + ": " + std::strerror(err) + hint});
    }
    // The socket stays blocking for --wait block; every other send and recv passes
    // MSG_DONTWAIT. The receive timeout bounds a blocking wait so the timers still run.
    if (opts_.wait == Wait::kBlock) {
      timeval tick{0, static_cast<suseconds_t>(kTick / 1000)};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return Unexpected(RunError{RunFailure::kRuntime,
                                 std::string("epoll_ctl failed: ") + std::strerror(errno)});
    }
    c->sw.start(c->tx);
    touch(*c);
    conns_.push_back(std::move(c));
  }
  return {};
}

void Loop::setWantOut(Conn& c, bool want) {
  if (c.want_out == want) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
  ev.data.ptr = &c;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
  c.want_out = want;
}

Result<void, RunError> Loop::flush(Conn& c) {
  if (c.tx_off < c.tx.size()) c.sw.markSent(nowNs());
  while (c.tx_off < c.tx.size()) {
    ssize_t n = ::send(c.fd.get(), c.tx.data() + c.tx_off, c.tx.size() - c.tx_off,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        setWantOut(c, true);
        return {};
      }
      return Unexpected(runtime(c, std::string("send failed: ") + std::strerror(errno)));
    }
    c.tx_off += static_cast<std::size_t>(n);
  }
  c.tx.clear();
  c.tx_off = 0;
  setWantOut(c, false);
  return {};
}

Result<void, RunError> Loop::onReadable(Conn& c, bool block) {
  int flags = block ? 0 : MSG_DONTWAIT;
  while (true) {
    ssize_t n = ::recv(c.fd.get(), c.rx.data() + c.rx_len, c.rx.size() - c.rx_len, flags);
    // The round trip ends when the reply's bytes are in hand, not when the wait began.
    const std::int64_t now = nowNs();
    if (n == 0) return Unexpected(runtime(c, "the controller closed the connection"));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
      return Unexpected(runtime(c, std::string("receive failed: ") + std::strerror(errno)));
    }
    flags = MSG_DONTWAIT;
    c.rx_len += static_cast<std::size_t>(n);
    auto used = c.sw.consume(Bytes(c.rx.data(), c.rx_len), now, c.tx, rtts_);
    if (!used) return Unexpected(runtime(c, used.error()));
    if (*used > 0) {
      std::memmove(c.rx.data(), c.rx.data() + *used, c.rx_len - *used);
      c.rx_len -= *used;
    }
    if (measuring_) samples_.insert(samples_.end(), rtts_.begin(), rtts_.end());
    rtts_.clear();
    touch(c);
    // A short read means the socket is drained; skip the extra recv() that would say EAGAIN.
    if (static_cast<std::size_t>(n) < kRxBufferSize / 2) return {};
  }
}

Result<void, RunError> Loop::waitAndRead() {
  // A blocking recv() wakes this thread straight from the socket; epoll adds its own wake-up
  // path and a second system call. Blocking needs the one socket to have nothing to write
  // (a full send buffer is waited for with epoll).
  if (opts_.wait == Wait::kBlock && !conns_.front()->want_out) {
    return onReadable(*conns_.front(), true);
  }
  const int timeout = opts_.wait == Wait::kBusy ? 0 : static_cast<int>(kTick / kMs);
  int n = ::epoll_wait(epoll_.get(), events_.data(), static_cast<int>(events_.size()), timeout);
  if (n < 0 && errno != EINTR) {
    return Unexpected(RunError{RunFailure::kRuntime, std::string("epoll_wait: ") + std::strerror(errno)});
  }
  for (int i = 0; i < n; ++i) {
    auto& c = *static_cast<Conn*>(events_[static_cast<std::size_t>(i)].data.ptr);
    const std::uint32_t ev = events_[static_cast<std::size_t>(i)].events;
    if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
      if (auto ok = onReadable(c); !ok) return Unexpected(ok.error());
    }
    if ((ev & EPOLLOUT) != 0) touch(c);
  }
  return {};
}

SwitchCounters Loop::totals() const {
  SwitchCounters t;
  for (const auto& c : conns_) t += c->sw.counters();
  return t;
}

SwitchCounters minus(SwitchCounters a, const SwitchCounters& b) {
  a.packet_ins -= b.packet_ins;
  a.setups -= b.setups;
  a.timeouts -= b.timeouts;
  a.flow_mods -= b.flow_mods;
  a.packet_outs -= b.packet_outs;
  a.meter_mods -= b.meter_mods;
  a.errors -= b.errors;
  a.other -= b.other;
  a.bytes_in -= b.bytes_in;
  a.bytes_out -= b.bytes_out;
  return a;
}

Result<RunResult, RunError> Loop::run() {
  if (epoll_.get() < 0) {
    return Unexpected(RunError{RunFailure::kRuntime, std::string("epoll_create1: ") + std::strerror(errno)});
  }
  if (auto ok = connectAll(); !ok) return Unexpected(ok.error());

  const std::int64_t begin = nowNs();
  const std::int64_t window = static_cast<std::int64_t>(opts_.window);
  const std::int64_t timeout = static_cast<std::int64_t>(opts_.timeout_ms) * kMs;
  const auto warmup = static_cast<std::int64_t>(opts_.warmup * 1e9);
  const auto duration = static_cast<std::int64_t>(opts_.seconds * 1e9);
  std::int64_t all_started = -1, measure_from = -1, measure_until = -1;
  std::int64_t next_expire = begin + kExpireEvery, next_scan = begin, next_progress = -1;
  std::uint32_t started = 0;
  std::uint64_t progress_setups = 0;
  SwitchCounters at_start;
  events_.resize(std::min<std::size_t>(conns_.size(), 1024));
  samples_.reserve(1 << 20);

  while (true) {
    for (Conn* c : touched_) {
      if (auto ok = flush(*c); !ok) return Unexpected(ok.error());
    }
    for (Conn* c : touched_) c->touched = false;
    touched_.clear();

    if (auto ok = waitAndRead(); !ok) return Unexpected(ok.error());
    const std::int64_t now = nowNs();

    if (now >= next_scan) {
      next_scan = now + kScanEvery;
      for (auto& c : conns_) {
        if (!c->started) {
          if (c->sw.loadReady(now)) {
            c->started = true;
            ++started;
            touch(*c);
          }
        }
      }
    }
    if (now >= next_expire) {
      next_expire = now + kExpireEvery;
      for (auto& c : conns_) {
        if (c->started && c->sw.expire(now - timeout) > 0) touch(*c);
      }
    }
    // Refill windows of the connections that moved this turn; writes happen at the loop top.
    for (Conn* c : touched_) {
      if (c->started && c->tx.size() - c->tx_off < kTxHighWater) {
        c->sw.fillWindow(static_cast<std::size_t>(window), nowNs(), c->tx);
      }
    }

    if (all_started < 0) {
      if (started == conns_.size()) {
        all_started = now;
        measure_from = now + warmup;
        measure_until = measure_from + duration;
        next_progress = now + kSec;
      } else if (now - begin > static_cast<std::int64_t>(opts_.handshake_timeout_ms) * kMs) {
        std::uint32_t no_features = 0;
        for (const auto& c : conns_) no_features += c->sw.handshakeDone() ? 0u : 1u;
        return Unexpected(RunError{
            RunFailure::kRuntime,
            std::to_string(conns_.size() - started) + " of " + std::to_string(conns_.size()) +
                " switches did not start load within " + std::to_string(opts_.handshake_timeout_ms) +
                " ms (" + std::to_string(no_features) +
                " never got a FEATURES_REQUEST): is this an OpenFlow 1.3 controller?"});
      }
      continue;
    }
    if (!measuring_ && now >= measure_from) {
      measuring_ = true;
      at_start = totals();
      measure_from = now;
      measure_until = now + duration;
    }
    if (opts_.progress && now >= next_progress) {
      std::uint64_t setups = totals().setups;
      std::fprintf(stderr, "%6.1f s  %10llu setups/s%s\n",
                   static_cast<double>(now - all_started) / 1e9,
                   static_cast<unsigned long long>(setups - progress_setups),
                   measuring_ ? "" : "  (warmup)");
      progress_setups = setups;
      next_progress += kSec;
    }
    if (measuring_ && now >= measure_until) {
      RunResult r;
      r.total = totals();
      r.measured = minus(r.total, at_start);
      r.seconds = static_cast<double>(now - measure_from) / 1e9;
      r.latency = summarize(samples_);
      for (const auto& c : conns_) {
        if (!c->sw.firstError().empty()) {
          r.first_error = c->sw.firstError();
          break;
        }
      }
      return r;
    }
  }
}

}  // namespace

Result<RunResult, RunError> runLoad(const Options& opts) {
  Loop loop(opts);
  return loop.run();
}

}  // namespace cw::ofload
