#include "script/watchdog.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <vector>

namespace cw::script::watchdog {

namespace {

// One per thread that makes calls. seq is odd while a call runs; the watchdog writes arm (the
// seq it wants armed) before it signals, and the handler arms only that call.
struct Slot {
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint64_t> arm{0};
  std::atomic<Armable*> call{nullptr};
  pthread_t thread{};
  std::uint64_t seen = 0;  // the watchdog's: seq at its last tick
};

struct Registry {
  std::mutex mu;
  std::vector<Slot*> slots;  // under mu; a thread leaves it (under mu) before it ends
  int signo = 0;
  bool tried = false;
  bool ok = false;
};

// Never destroyed: the watchdog's thread uses it until the process ends.
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

std::atomic<std::uint64_t> g_armed{0};
std::atomic<int> g_signo{0};  // 0 until the watchdog runs
thread_local Slot* t_slot = nullptr;

void onSignal(int /*signo*/) {
  const int saved = errno;
  Slot* s = t_slot;
  if (s != nullptr) {
    const std::uint64_t seq = s->seq.load(std::memory_order_relaxed);
    if ((seq & 1) != 0 && s->arm.load(std::memory_order_relaxed) == seq) {
      if (Armable* a = s->call.load(std::memory_order_relaxed)) {
        a->armFromSignal();
        g_armed.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  errno = saved;
}

void* watch(void*) {
  Registry& r = registry();
  const timespec tick{0, kTickMs * 1000000L};
  for (;;) {
    timespec left = tick;
    while (::nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
    std::lock_guard lock(r.mu);
    for (Slot* s : r.slots) {
      const std::uint64_t seq = s->seq.load(std::memory_order_acquire);
      if ((seq & 1) != 0 && seq == s->seen) {
        s->arm.store(seq, std::memory_order_relaxed);
        ::pthread_kill(s->thread, r.signo);  // the thread is alive: it leaves the list, under mu, first
      }
      s->seen = seq;
    }
  }
  return nullptr;
}

// Leaves the list when its thread ends.
struct Enrolment {
  Slot slot;
  ~Enrolment() {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    r.slots.erase(std::remove(r.slots.begin(), r.slots.end(), &slot), r.slots.end());
    t_slot = nullptr;
  }
};

Slot* enrol() noexcept {
  const int signo = g_signo.load(std::memory_order_acquire);
  if (signo == 0) return nullptr;
  try {
    thread_local Enrolment e;
    e.slot.thread = ::pthread_self();
    // A thread that blocks signals (many daemons' workers do) takes this one.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    if (::pthread_sigmask(SIG_UNBLOCK, &set, nullptr) != 0) return nullptr;
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    r.slots.push_back(&e.slot);
    t_slot = &e.slot;
    return t_slot;
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

bool start() noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  if (r.tried) return r.ok;
  r.tried = true;
  // A real-time signal nobody else in the process has taken.
  for (int signo = SIGRTMIN + 4; signo <= SIGRTMAX && r.signo == 0; ++signo) {
    struct sigaction old{};
    if (::sigaction(signo, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;
    struct sigaction sa{};
    sa.sa_handler = &onSignal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(signo, &sa, nullptr) == 0) r.signo = signo;
  }
  if (r.signo == 0) return false;
  pthread_attr_t attr;
  if (::pthread_attr_init(&attr) != 0) return false;
  ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  ::pthread_attr_setstacksize(&attr, std::size_t{256} << 10);
  // The watchdog's thread takes no signal: process-directed ones go to the others.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  const int e = ::pthread_create(&thread, &attr, &watch, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::pthread_attr_destroy(&attr);
  if (e != 0) {
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(r.signo, &dfl, nullptr);
    return false;
  }
  r.ok = true;
  g_signo.store(r.signo, std::memory_order_release);
  return true;
}

bool begin(Armable* call) noexcept {
  Slot* s = t_slot;
  if (s == nullptr && (s = enrol()) == nullptr) return false;
  s->call.store(call, std::memory_order_relaxed);
  // A new odd number, even if the last call never ended (an exception through it).
  s->seq.store((s->seq.load(std::memory_order_relaxed) + 2) | 1, std::memory_order_release);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return true;
}

void end() noexcept {
  Slot* s = t_slot;
  if (s == nullptr) return;
  const std::uint64_t seq = s->seq.load(std::memory_order_relaxed);
  if ((seq & 1) != 0) s->seq.store(seq + 1, std::memory_order_release);
  // What the caller does next (it looks whether the call was armed) stays after this.
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

std::uint64_t armed() noexcept { return g_armed.load(std::memory_order_relaxed); }

}  // namespace cw::script::watchdog
