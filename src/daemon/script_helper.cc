#include "daemon/script_helper.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>

extern char** environ;

// Sanitizers reserve terabytes of address space for their shadow memory: an RLIMIT_AS would
// stop such a helper from starting at all, so those builds go without it.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CW_HELPER_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define CW_HELPER_SANITIZED 1
#endif
#endif
#ifndef CW_HELPER_SANITIZED
#define CW_HELPER_SANITIZED 0
#endif

namespace cw::daemon {

namespace {

using script::Effects;
using script::FlowRequest;
using script::Verdict;

constexpr int kHelperFd = 3;
constexpr int kCallTimeoutMs = 250;
// The first answer waits for the exec, the confinement and the compilation of up to 1 MiB of
// Lua: on the control thread, so a longer wait stalls no packet.
constexpr int kLoadTimeoutMs = 5000;
// How long a helper whose socket closed gets to finish dying before it is killed.
constexpr int kReapGraceMs = 200;

// A message is a 4-byte length (of the whole message, itself included), an op byte and the
// op's fields. It travels as one datagram, or as several when it is larger than kDatagram: a
// SEQPACKET datagram must fit the sender's socket buffer (about 200 KiB by default, and not
// raisable past net.core.wmem_max without CAP_NET_ADMIN), and a 1 MiB script would not.
constexpr std::size_t kMaxMessage = kMaxScriptBytes + (std::size_t{64} << 10);
constexpr std::size_t kDatagram = std::size_t{32} << 10;
// What the helper sends back is clipped so that every reply fits in kMaxMessage: an error or
// a log line can be as long as a script makes it.
constexpr std::size_t kMaxWhy = 4096;
constexpr std::size_t kMaxLogLine = std::size_t{32} << 10;  // at most 16 lines per call

constexpr std::size_t kAddressSpaceSlack = std::size_t{256} << 20;
constexpr uid_t kNobody = 65534;

// The helper's exit codes besides 0 (cellwalld closed the socket).
constexpr int kExitUsage = 2;     // not started by cellwalld (no socket on fd 3)
constexpr int kExitProtocol = 3;  // a request it cannot read

enum class Op : std::uint8_t { kLoad = 1, kPacket = 2, kTimers = 3, kTakeLoadEffects = 4, kInspect = 5 };

std::string errnoText(int err) { return std::strerror(err); }

// At most max bytes of s, not cutting a UTF-8 sequence in two.
std::string_view clip(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return s.substr(0, n);
}

// ---- Encoding ----

class Writer {
 public:
  // Starts a message for op in buf (reused from call to call: no allocation per packet).
  Writer(std::string& buf, Op op) : buf_(buf) {
    buf_.assign(sizeof(std::uint32_t), '\0');  // the length: sendMessage() fills it in
    u8(static_cast<std::uint8_t>(op));
  }
  void u8(std::uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void flag(bool v) { u8(v ? 1 : 0); }
  void u16(std::uint16_t v) { raw(v); }
  void u32(std::uint32_t v) { raw(v); }
  void u64(std::uint64_t v) { raw(v); }
  void i64(std::int64_t v) { raw(v); }
  void f64(double v) { raw(v); }
  void str(std::string_view s) {
    // Longer than 4 GiB cannot happen (kMaxMessage is far smaller): the size check sees it.
    u32(static_cast<std::uint32_t>(std::min<std::size_t>(s.size(), UINT32_MAX)));
    buf_.append(s.data(), std::min<std::size_t>(s.size(), UINT32_MAX));
  }

 private:
  template <class T>
  void raw(T v) {
    char b[sizeof v];
    std::memcpy(b, &v, sizeof v);
    buf_.append(b, sizeof v);
  }
  std::string& buf_;
};

// Reads what a Writer wrote; never past the end. A read past it (or an impossible value) makes
// the reader bad, and everything after reads as zero.
class Reader {
 public:
  Reader() = default;
  explicit Reader(std::string_view d) : d_(d) {}
  std::uint8_t u8() { return get<std::uint8_t>(); }
  bool flag() {
    const std::uint8_t v = u8();
    if (v > 1) bad_ = true;
    return v == 1;
  }
  std::uint16_t u16() { return get<std::uint16_t>(); }
  std::uint32_t u32() { return get<std::uint32_t>(); }
  std::uint64_t u64() { return get<std::uint64_t>(); }
  std::int64_t i64() { return get<std::int64_t>(); }
  double f64() { return get<double>(); }
  std::string_view str() {
    const std::uint32_t n = u32();
    if (bad_ || n > d_.size() - at_) {
      bad_ = true;
      return {};
    }
    std::string_view s = d_.substr(at_, n);
    at_ += n;
    return s;
  }
  void fail() { bad_ = true; }
  bool ok() const { return !bad_; }
  // Everything read, and nothing left over.
  bool done() const { return !bad_ && at_ == d_.size(); }

 private:
  template <class T>
  T get() {
    T v{};
    if (bad_ || d_.size() - at_ < sizeof v) {
      bad_ = true;
      return v;
    }
    std::memcpy(&v, d_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string_view d_;
  std::size_t at_ = 0;
  bool bad_ = false;
};

void putEffects(Writer& w, const Effects& fx) {
  w.u32(static_cast<std::uint32_t>(fx.flows.size()));
  for (const FlowRequest& f : fx.flows) {
    w.u32(f.match.cell);
    w.u32(f.match.ip_src);
    w.u32(f.match.ip_dst);
    w.u8(f.match.src_len);
    w.u8(f.match.dst_len);
    w.u8(f.match.proto);
    w.u16(f.match.port_src);
    w.u16(f.match.port_dst);
    w.u8(static_cast<std::uint8_t>(f.action));
    w.u16(f.priority);
    w.u16(f.idle);
    w.u16(f.hard);
    w.u32(f.cookie);
    w.u32(f.rate_pps);
    w.u32(f.rate_kbps);
    w.u32(f.burst);
  }
  w.u32(static_cast<std::uint32_t>(fx.removes.size()));
  for (std::uint32_t c : fx.removes) w.u32(c);
  w.u32(static_cast<std::uint32_t>(fx.logs.size()));
  for (const auto& line : fx.logs) w.str(clip(line, kMaxLogLine));
  w.u32(static_cast<std::uint32_t>(fx.counts.size()));
  for (const auto& [name, n] : fx.counts) {
    w.str(name);
    w.i64(n);
  }
}

// Appends what r holds to fx; false (r bad) if it is not well formed. The loops stop at the
// first bad read, so a forged count cannot make them run for long.
bool getEffects(Reader& r, Effects& fx) {
  for (std::uint32_t i = 0, n = r.u32(); i < n && r.ok(); ++i) {
    FlowRequest f;
    f.match.cell = r.u32();
    f.match.ip_src = r.u32();
    f.match.ip_dst = r.u32();
    f.match.src_len = r.u8();
    f.match.dst_len = r.u8();
    f.match.proto = r.u8();
    f.match.port_src = r.u16();
    f.match.port_dst = r.u16();
    const std::uint8_t action = r.u8();
    f.priority = r.u16();
    f.idle = r.u16();
    f.hard = r.u16();
    f.cookie = r.u32();
    f.rate_pps = r.u32();
    f.rate_kbps = r.u32();
    f.burst = r.u32();
    if (action > static_cast<std::uint8_t>(FlowRequest::Action::kLimit) || f.match.src_len > 32 ||
        f.match.dst_len > 32)
      r.fail();
    f.action = static_cast<FlowRequest::Action>(action);
    if (r.ok()) fx.flows.push_back(f);
  }
  for (std::uint32_t i = 0, n = r.u32(); i < n && r.ok(); ++i) {
    const std::uint32_t c = r.u32();
    if (r.ok()) fx.removes.push_back(c);
  }
  for (std::uint32_t i = 0, n = r.u32(); i < n && r.ok(); ++i) {
    const std::string_view line = r.str();
    if (r.ok()) fx.logs.emplace_back(line);
  }
  for (std::uint32_t i = 0, n = r.u32(); i < n && r.ok(); ++i) {
    const std::string_view name = r.str();
    const std::int64_t v = r.i64();
    if (r.ok()) fx.counts.emplace_back(std::string(name), v);
  }
  return r.ok();
}

// Every reply ends with the script's status, which the parent keeps for its const getters.
void putStatus(Writer& w, const script::Script& s) {
  w.flag(s.disabled());
  w.str(clip(s.whyDisabled(), kMaxWhy));
  w.u64(s.memoryUsed());
  w.u64(s.filters());
  w.u64(s.inspectors());
  w.i64(s.nextTimer());
}

template <class T>
void appendAll(std::vector<T>& to, std::vector<T>&& from) {
  if (to.empty()) {
    to = std::move(from);
    return;
  }
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

void append(Effects& out, Effects&& fx) {
  appendAll(out.flows, std::move(fx.flows));
  appendAll(out.removes, std::move(fx.removes));
  appendAll(out.logs, std::move(fx.logs));
  appendAll(out.counts, std::move(fx.counts));
}

// ---- Transport ----

enum class Io { kOk, kTimeout, kClosed, kError, kMalformed };

// Milliseconds left until deadline (monotonic ms; -1: no deadline), as poll() takes them.
int msLeft(std::int64_t deadline) {
  if (deadline < 0) return -1;
  return static_cast<int>(std::clamp<std::int64_t>(deadline - script::monotonicMs(), 0, INT_MAX));
}

// Waits until fd is ready for events (or has an error or hangup, which the next call reports).
Io waitFor(int fd, short events, std::int64_t deadline) {
  for (;;) {
    pollfd pfd{fd, events, 0};
    const int r = ::poll(&pfd, 1, msLeft(deadline));
    if (r > 0) return Io::kOk;
    if (r == 0) return Io::kTimeout;
    if (errno != EINTR) return Io::kError;
  }
}

// Sends the message a Writer built in msg. With a deadline, non-blocking calls and poll(), so
// that a peer that stops reading cannot hold the sender past it; without one (the helper's
// side), plain blocking calls. MSG_NOSIGNAL: a dead peer is an error to handle, not a SIGPIPE.
Io sendMessage(int fd, std::string& msg, std::int64_t deadline) {
  if (msg.size() > kMaxMessage) return Io::kMalformed;
  const auto total = static_cast<std::uint32_t>(msg.size());
  std::memcpy(msg.data(), &total, sizeof total);
  const int flags = MSG_NOSIGNAL | (deadline >= 0 ? MSG_DONTWAIT : 0);
  for (std::size_t at = 0; at < msg.size();) {
    const std::size_t n = std::min(kDatagram, msg.size() - at);
    const ssize_t w = ::send(fd, msg.data() + at, n, flags);
    if (w >= 0) {
      if (static_cast<std::size_t>(w) != n) return Io::kError;  // a SEQPACKET send is whole
      at += n;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      if (Io io = waitFor(fd, POLLOUT, deadline); io != Io::kOk) return io;
      continue;
    }
    return errno == EPIPE || errno == ECONNRESET ? Io::kClosed : Io::kError;
  }
  return Io::kOk;
}

// Receives one message into msg (length prefix included), by way of scratch (kDatagram bytes):
// both reused from call to call, so a call allocates nothing. With a deadline it waits in
// poll() first (the answer to a request just sent is never there yet); without one it blocks.
Io recvMessage(int fd, std::string& msg, char* scratch, std::int64_t deadline) {
  msg.clear();
  std::uint32_t want = 0;
  bool ready = deadline < 0;
  for (;;) {
    if (!ready) {
      if (Io io = waitFor(fd, POLLIN, deadline); io != Io::kOk) return io;
      ready = true;
    }
    iovec iov{scratch, kDatagram};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    const ssize_t n = ::recvmsg(fd, &mh, deadline >= 0 ? MSG_DONTWAIT : 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        ready = false;
        continue;
      }
      return errno == ECONNRESET ? Io::kClosed : Io::kError;
    }
    if (n == 0) return Io::kClosed;  // nobody sends empty datagrams: this is the end
    if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) return Io::kMalformed;
    msg.append(scratch, static_cast<std::size_t>(n));
    if (want == 0) {
      if (msg.size() < sizeof want + 1) return Io::kMalformed;
      std::memcpy(&want, msg.data(), sizeof want);
      if (want < sizeof want + 1 || want > kMaxMessage) return Io::kMalformed;
    }
    if (msg.size() > want) return Io::kMalformed;
    if (msg.size() == want) return Io::kOk;
    // More datagrams of this message follow: with a deadline, wait for them too.
    ready = deadline < 0;
  }
}

// The message's op and fields, after its length.
std::string_view bodyOf(const std::string& msg) { return std::string_view(msg).substr(sizeof(std::uint32_t)); }

std::string describeEnd(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return "helper process killed by signal " + std::to_string(sig) +
           (abbrev != nullptr ? std::string(" (SIG") + abbrev + ")" : std::string());
  }
  if (WIFEXITED(status)) return "helper process exited with status " + std::to_string(WEXITSTATUS(status));
  return "helper process ended (wait status " + std::to_string(status) + ")";
}

// ---- cellwalld's side ----

class HelperRunner final : public ScriptRunner {
 public:
  HelperRunner(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  ~HelperRunner() override { stop(); }
  HelperRunner(const HelperRunner&) = delete;
  HelperRunner& operator=(const HelperRunner&) = delete;

  Expected<void> load(const std::string& name, const std::string& text, const script::Limits& limits,
                      const std::vector<script::Setting>& settings);

  Verdict onPacket(const script::Packet& p, Effects& out) override { return call(Op::kPacket, p, out); }
  Verdict onInspect(const script::Packet& p, Effects& out) override { return call(Op::kInspect, p, out); }
  std::size_t inspectors() const override { return disabled_ ? 0 : inspectors_; }
  int runTimers(std::int64_t now_ms, Effects& out) override;
  std::int64_t nextTimer() const override { return disabled_ ? -1 : next_timer_; }
  bool disabled() const override { return disabled_; }
  std::string whyDisabled() const override { return why_; }
  std::size_t memoryUsed() const override { return memory_; }
  std::size_t filters() const override { return filters_; }
  Effects takeLoadEffects() override;

  pid_t pid() const { return pid_; }

 private:
  // A packet to on_packet and friends (kPacket) or to the inspect_* functions (kInspect).
  Verdict call(Op op, const script::Packet& p, Effects& out);
  // Sends tx_ and waits for the answer to it, which r then reads (after its op). False: no
  // usable answer; the helper is gone and the runner disabled, with the reason.
  bool exchange(int timeout_ms, Reader& r);
  // The status that ends every reply; false if the reply is not well formed (then handled).
  bool readStatus(Reader& r);
  // Something went wrong with the helper: it is killed (if need be) and reaped, and the runner
  // disabled with a reason that says what happened.
  void broken(Io io, int err, int timeout_ms);
  void disable(std::string why);
  // Closes the socket, kills the helper if it still runs and reaps it: no zombie, no fd left.
  void stop();
  // Waits up to grace_ms for the helper to exit by itself, then kills it. The wait status, or
  // nothing if it could not be reaped (someone else did); `killed`: whether it took SIGKILL.
  std::optional<int> reap(int grace_ms, bool& killed);

  pid_t pid_;
  int fd_;
  std::string tx_, rx_;
  std::unique_ptr<char[]> scratch_ = std::make_unique<char[]>(kDatagram);
  bool disabled_ = false;
  std::string why_;
  std::size_t memory_ = 0, filters_ = 0, inspectors_ = 0;
  std::int64_t next_timer_ = -1;
};

Expected<void> HelperRunner::load(const std::string& name, const std::string& text, const script::Limits& limits,
                                  const std::vector<script::Setting>& settings) {
  Writer w(tx_, Op::kLoad);
  w.str(name);
  w.str(text);
  w.u64(limits.memory_bytes);
  w.u64(limits.instructions_per_call);
  w.u32(static_cast<std::uint32_t>(settings.size()));
  for (const auto& s : settings) {
    w.str(s.key);
    w.u8(static_cast<std::uint8_t>(s.value.index()));
    std::visit([&w](const auto& v) {
      using T = std::decay_t<decltype(v)>;
      if constexpr (std::is_same_v<T, std::int64_t>) w.i64(v);
      else if constexpr (std::is_same_v<T, double>) w.f64(v);
      else if constexpr (std::is_same_v<T, bool>) w.flag(v);
      else w.str(v);
    }, s.value);
  }
  if (tx_.size() > kMaxMessage) return fail(name + ": the script and its settings are too large for a helper process");
  Reader r;
  if (!exchange(kLoadTimeoutMs, r)) return fail(name + ": " + why_);
  if (!r.flag()) {
    const std::string_view error = r.str();
    if (!r.done()) {
      broken(Io::kMalformed, 0, kLoadTimeoutMs);
      return fail(name + ": " + why_);
    }
    std::string message(error);
    stop();
    return fail(std::move(message));
  }
  if (!readStatus(r)) return fail(name + ": " + why_);
  return {};
}

Verdict HelperRunner::call(Op op, const script::Packet& p, Effects& out) {
  if (disabled_) return Verdict::kContinue;
  const std::string_view names = p.names != nullptr ? p.names->get() : std::string_view();
  Writer w(tx_, op);
  w.str(p.frame);
  w.u32(p.cell);
  w.str(p.app);
  w.u32(p.in_port);
  w.u32(p.ip_src);
  w.u32(p.ip_dst);
  w.u16(p.port_src);
  w.u16(p.port_dst);
  w.u8(p.proto);
  w.u8(p.tcp_flags);
  w.str(names);
  w.str(p.direction);
  w.str(p.process);
  // Not a frame OpenFlow can carry (at most 64 KiB): the script does not see it, and is not
  // blamed for it.
  if (tx_.size() > kMaxMessage) return Verdict::kContinue;
  Reader r;
  if (!exchange(kCallTimeoutMs, r)) return Verdict::kContinue;
  const std::uint8_t v = r.u8();
  Effects fx;
  if (v > static_cast<std::uint8_t>(Verdict::kReject)) r.fail();
  if (!getEffects(r, fx)) {
    broken(Io::kMalformed, 0, kCallTimeoutMs);
    return Verdict::kContinue;
  }
  if (!readStatus(r)) return Verdict::kContinue;
  append(out, std::move(fx));
  return static_cast<Verdict>(v);
}

int HelperRunner::runTimers(std::int64_t now_ms, Effects& out) {
  if (disabled_) return 0;
  Writer w(tx_, Op::kTimers);
  w.i64(now_ms);
  Reader r;
  if (!exchange(kCallTimeoutMs, r)) return 0;
  const std::int64_t ran = r.i64();
  Effects fx;
  if (ran < 0 || ran > INT_MAX) r.fail();
  if (!getEffects(r, fx)) {
    broken(Io::kMalformed, 0, kCallTimeoutMs);
    return 0;
  }
  if (!readStatus(r)) return 0;
  append(out, std::move(fx));
  return static_cast<int>(ran);
}

Effects HelperRunner::takeLoadEffects() {
  if (disabled_) return {};
  Writer w(tx_, Op::kTakeLoadEffects);
  Reader r;
  if (!exchange(kCallTimeoutMs, r)) return {};
  Effects fx;
  if (!getEffects(r, fx)) {
    broken(Io::kMalformed, 0, kCallTimeoutMs);
    return {};
  }
  if (!readStatus(r)) return {};
  return fx;
}

bool HelperRunner::exchange(int timeout_ms, Reader& r) {
  if (fd_ < 0) return false;
  const auto op = static_cast<std::uint8_t>(tx_[sizeof(std::uint32_t)]);
  const std::int64_t deadline = script::monotonicMs() + timeout_ms;
  Io io = sendMessage(fd_, tx_, deadline);
  if (io == Io::kOk) io = recvMessage(fd_, rx_, scratch_.get(), deadline);
  const int err = errno;
  if (io == Io::kOk) {
    r = Reader(bodyOf(rx_));
    if (r.u8() != op) io = Io::kMalformed;
  }
  if (io != Io::kOk) {
    broken(io, err, timeout_ms);
    return false;
  }
  return true;
}

bool HelperRunner::readStatus(Reader& r) {
  const bool off = r.flag();
  const std::string_view why = r.str();
  const std::uint64_t memory = r.u64();
  const std::uint64_t filters = r.u64();
  const std::uint64_t inspectors = r.u64();
  const std::int64_t next = r.i64();
  if (!r.done()) {
    broken(Io::kMalformed, 0, 0);
    return false;
  }
  memory_ = static_cast<std::size_t>(memory);
  filters_ = static_cast<std::size_t>(filters);
  inspectors_ = static_cast<std::size_t>(inspectors);
  next_timer_ = next;
  if (off) {
    // Disabled for good (until loaded again): the helper has nothing left to do.
    disable(why.empty() ? std::string("disabled in its helper process") : std::string(why));
    stop();
  }
  return true;
}

void HelperRunner::broken(Io io, int err, int timeout_ms) {
  std::string why;
  bool killed = false;
  if (io == Io::kTimeout || io == Io::kMalformed) {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    reap(0, killed);
    why = io == Io::kTimeout
              ? "helper process did not answer within " + std::to_string(timeout_ms) + " ms (killed)"
              : std::string("helper process sent a malformed reply (killed)");
  } else {
    // The socket closed or failed: almost always because the helper died. How it ended is the
    // reason; if it still runs, it is killed and the socket's fate is the reason.
    std::optional<int> status = reap(kReapGraceMs, killed);
    if (!killed && status) why = describeEnd(*status);
    else if (io == Io::kClosed) why = "helper process closed its socket (killed)";
    else why = "helper process: socket error: " + errnoText(err) + " (killed)";
  }
  stop();
  disable(std::move(why));
}

void HelperRunner::disable(std::string why) {
  disabled_ = true;
  why_ = std::move(why);
  next_timer_ = -1;
}

std::optional<int> HelperRunner::reap(int grace_ms, bool& killed) {
  killed = false;
  if (pid_ <= 0) return std::nullopt;
  const std::int64_t until = script::monotonicMs() + grace_ms;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {  // not ours to reap any more: nothing to know about how it ended
      pid_ = -1;
      return std::nullopt;
    }
    if (script::monotonicMs() >= until) {
      ::kill(pid_, SIGKILL);
      killed = true;
      pid_t w = 0;
      while ((w = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
      }
      if (w != pid_) {
        pid_ = -1;
        return std::nullopt;
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  pid_ = -1;
  return status;
}

void HelperRunner::stop() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (pid_ > 0) {
    // pid_ is still unreaped, so it cannot name another process yet.
    ::kill(pid_, SIGKILL);
    bool killed = false;
    reap(0, killed);
  }
}

// Starts `self_exe --script-helper` with child_fd as its fd 3 and no other fd but 0-2. Its own
// session, so a Ctrl-C meant for cellwalld's terminal reaches only cellwalld, which then closes
// the socket; the signal mask and dispositions (cellwalld ignores SIGPIPE) reset to defaults.
Expected<pid_t> spawnHelper(const std::string& self_exe, int child_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  if (int e = posix_spawn_file_actions_init(&actions); e != 0) return fail("posix_spawn: " + errnoText(e));
  if (int e = posix_spawnattr_init(&attr); e != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return fail("posix_spawn: " + errnoText(e));
  }
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  int e = posix_spawn_file_actions_adddup2(&actions, child_fd, kHelperFd);
  if (e == 0) e = posix_spawn_file_actions_addclosefrom_np(&actions, kHelperFd + 1);
  if (e == 0) e = posix_spawnattr_setsigmask(&attr, &none);
  if (e == 0) e = posix_spawnattr_setsigdefault(&attr, &all);
  if (e == 0)
    e = posix_spawnattr_setflags(&attr, static_cast<short>(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                           POSIX_SPAWN_SETSID));
  pid_t pid = -1;
  char* argv[] = {const_cast<char*>(self_exe.c_str()), const_cast<char*>("--script-helper"), nullptr};
  if (e == 0) e = posix_spawn(&pid, self_exe.c_str(), &actions, &attr, argv, environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (e != 0) return fail("cannot start a helper process (" + self_exe + "): " + errnoText(e));
  return pid;
}

// ---- The helper's side ----

struct ViewNames final : script::Packet::Names {
  std::string_view text;
  std::string_view get() const override { return text; }
};

// Confines the helper before it compiles a line of the script. Only the uid change is
// required (when root): without it the helper would run a script as root, so it refuses.
Expected<void> confine(pid_t parent, const script::Limits& limits) {
  // No core dump: it would write the script's memory (and whatever it saw) to disk.
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return fail("helper process: cannot set no_new_privs: " + errnoText(errno));
  // Not to keep the directory cellwalld started in busy; the helper opens no file.
  if (::chdir("/") != 0) {
  }
  // An empty network namespace (a loopback that is down, nothing else): a socket the helper
  // might open reaches nothing. It takes CAP_SYS_ADMIN; an unprivileged cellwalld goes on
  // without it (and has no privileges to lose either).
  if (::unshare(CLONE_NEWNET) != 0) {
  }
  if (::geteuid() == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0)
      return fail("helper process: cannot drop privileges to uid/gid 65534: " + errnoText(errno));
    if (::geteuid() == 0 || ::getegid() == 0)
      return fail("helper process: still root after dropping privileges");
  }
  // The uid change cleared the parent-death signal: set it (again), then make sure the parent
  // did not go before it was set.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
    return fail("helper process: cannot set its parent-death signal: " + errnoText(errno));
  if (::getppid() != parent) return fail("helper process: cellwalld has exited");
  // Not dumpable (the uid change made it so already; an unprivileged helper is made so here):
  // other processes of its uid cannot ptrace it or read its memory, and it leaves no core.
  // Sanitized builds are the exception: LeakSanitizer ptraces its own process at exit.
  ::prctl(PR_SET_DUMPABLE, CW_HELPER_SANITIZED ? 1 : 0, 0, 0, 0);
  if (!CW_HELPER_SANITIZED) {
    // A backstop for what the script's own memory cap does not count (Lua's allocator counts
    // only the Lua state): the binary, its libraries and the messages fit in the slack.
    const rlim_t as = limits.memory_bytes > RLIM_INFINITY - kAddressSpaceSlack
                          ? RLIM_INFINITY
                          : limits.memory_bytes + kAddressSpaceSlack;
    const rlimit cap{as, as};
    if (::setrlimit(RLIMIT_AS, &cap) != 0)
      return fail("helper process: cannot limit its address space: " + errnoText(errno));
  }
  return {};
}

// Reads LOAD's fields after the op byte.
struct LoadRequest {
  std::string name;
  std::string_view text;
  script::Limits limits;
  std::vector<script::Setting> settings;
};

bool readLoad(Reader& r, LoadRequest& load) {
  load.name = std::string(r.str());
  load.text = r.str();
  load.limits.memory_bytes = static_cast<std::size_t>(r.u64());
  load.limits.instructions_per_call = r.u64();
  for (std::uint32_t i = 0, n = r.u32(); i < n && r.ok(); ++i) {
    script::Setting s;
    s.key = std::string(r.str());
    switch (r.u8()) {
      case 0: s.value = r.i64(); break;
      case 1: s.value = r.f64(); break;
      case 2: s.value = r.flag(); break;
      case 3: s.value = std::string(r.str()); break;
      default: r.fail();
    }
    if (r.ok()) load.settings.push_back(std::move(s));
  }
  return r.done();
}

bool readPacket(Reader& r, script::Packet& p, ViewNames& names) {
  p.frame = r.str();
  p.cell = r.u32();
  p.app = r.str();
  p.in_port = r.u32();
  p.ip_src = r.u32();
  p.ip_dst = r.u32();
  p.port_src = r.u16();
  p.port_dst = r.u16();
  p.proto = r.u8();
  p.tcp_flags = r.u8();
  names.text = r.str();
  p.names = &names;
  p.direction = r.str();
  p.process = r.str();
  return r.done();
}

}  // namespace

Expected<std::unique_ptr<ScriptRunner>> helperRunner(const std::string& self_exe, const std::string& name,
                                                     const std::string& text, const script::Limits& limits,
                                                     const std::vector<script::Setting>& settings) {
  if (text.size() > kMaxScriptBytes) return fail(name + ": a script is at most 1 MiB");
  int sv[2];
  // Close-on-exec on both ends: a process another thread starts meanwhile must not inherit
  // either (the spawn's dup2 clears it on the helper's fd 3).
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return fail(name + ": cannot create a socket for the helper process: " + errnoText(errno));
  auto pid = spawnHelper(self_exe, sv[1]);
  ::close(sv[1]);
  if (!pid) {
    ::close(sv[0]);
    return fail(name + ": " + pid.error().message);
  }
  auto runner = std::make_unique<HelperRunner>(*pid, sv[0]);
  if (auto r = runner->load(name, text, limits, settings); !r) return Unexpected(r.error());
  return std::unique_ptr<ScriptRunner>(std::move(runner));
}

pid_t helperPid(const ScriptRunner& runner) {
  const auto* h = dynamic_cast<const HelperRunner*>(&runner);
  return h != nullptr ? h->pid() : -1;
}

int scriptHelperMain() {
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(kHelperFd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
    std::fprintf(stderr, "cellwalld --script-helper: fd 3 is not a script helper's socket "
                         "(cellwalld starts its helpers itself)\n");
    return kExitUsage;
  }
  const pid_t parent = ::getppid();
  // At once, for the time until confine() sets it again after the uid change.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);

  std::string rx;
  std::string tx;
  auto scratch = std::make_unique<char[]>(kDatagram);
  if (Io io = recvMessage(kHelperFd, rx, scratch.get(), -1); io != Io::kOk) return io == Io::kClosed ? 0 : kExitProtocol;
  Reader r(bodyOf(rx));
  LoadRequest load;
  if (r.u8() != static_cast<std::uint8_t>(Op::kLoad) || !readLoad(r, load)) return kExitProtocol;

  std::unique_ptr<script::Script> s;
  {
    Writer w(tx, Op::kLoad);
    auto refuse = [&](const std::string& why) {
      w.flag(false);
      w.str(clip(why, kMaxWhy));
      sendMessage(kHelperFd, tx, -1);
      return 0;
    };
    if (auto confined = confine(parent, load.limits); !confined) return refuse(confined.error().message);
    auto loaded = script::Script::load(load.name, load.text, load.limits, load.settings);
    if (!loaded) return refuse(loaded.error().message);
    s = std::move(loaded.value());
    w.flag(true);
    putStatus(w, *s);
    if (sendMessage(kHelperFd, tx, -1) != Io::kOk) return 0;
  }
  rx.shrink_to_fit();  // the script's text is in the Lua state now

  for (;;) {
    if (Io io = recvMessage(kHelperFd, rx, scratch.get(), -1); io != Io::kOk) return io == Io::kClosed ? 0 : kExitProtocol;
    Reader req(bodyOf(rx));
    const std::uint8_t op = req.u8();
    Effects fx;
    if (op == static_cast<std::uint8_t>(Op::kPacket) || op == static_cast<std::uint8_t>(Op::kInspect)) {
      script::Packet p;
      ViewNames names;
      if (!readPacket(req, p, names)) return kExitProtocol;
      const bool inspect = op == static_cast<std::uint8_t>(Op::kInspect);
      const Verdict v = inspect ? s->onInspect(p, fx) : s->onPacket(p, fx);
      Writer w(tx, inspect ? Op::kInspect : Op::kPacket);
      w.u8(static_cast<std::uint8_t>(v));
      putEffects(w, fx);
      putStatus(w, *s);
    } else if (op == static_cast<std::uint8_t>(Op::kTimers)) {
      const std::int64_t now = req.i64();
      if (!req.done()) return kExitProtocol;
      const int ran = s->runTimers(now, fx);
      Writer w(tx, Op::kTimers);
      w.i64(ran);
      putEffects(w, fx);
      putStatus(w, *s);
    } else if (op == static_cast<std::uint8_t>(Op::kTakeLoadEffects)) {
      if (!req.done()) return kExitProtocol;
      fx = s->takeLoadEffects();
      Writer w(tx, Op::kTakeLoadEffects);
      putEffects(w, fx);
      putStatus(w, *s);
    } else {
      return kExitProtocol;
    }
    if (sendMessage(kHelperFd, tx, -1) != Io::kOk) return 0;  // cellwalld went away
  }
}

}  // namespace cw::daemon
