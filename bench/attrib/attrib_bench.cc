// What attributing one connection costs, against how many sockets are open (issue 6's target:
// <= 5 us a connection, flat from 10 to 20,000 sockets). The process opens N idle loopback TCP
// sockets (N/2 connections), then, for one more connection, times:
//  - SockDiagFind: the exact sock_diag lookup of its socket (docs/attribution.md, step 1);
//  - Attribute: that and the BPF map lookup of its owner by cookie (step 2). Needs root: the
//    process moves itself into a cgroup of its own (cw-bench-attrib-PID) for the programs to
//    see its sockets, and back out at the end.
// Run (root): taskset -c 0 build/release/bench/attrib/cw-attrib-bench
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "attrib/owners.h"
#include "attrib/proc_info.h"
#include "attrib/sock_diag.h"
#include "common/cgroup.h"

namespace {

using namespace cw;
using namespace cw::attrib;

constexpr std::uint32_t kLoopback = 0x7f000001;

std::uint16_t portOf(int fd) {
  sockaddr_in a{};
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  return ntohs(a.sin_port);
}

// n sockets: n/2 connections to one listener, both ends kept open. The accepting ends are held
// by a child process (one process may not be allowed 20,000 fds; the kernel's socket tables
// are the namespace's, whoever holds the sockets).
struct Sockets {
  std::vector<int> fds;
  pid_t holder = -1;
  int hold = -1;
  std::uint16_t client_port = 0, server_port = 0;  // the measured connection
  explicit Sockets(std::int64_t n) {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(kLoopback);
    ::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listener, 4096);
    server_port = portOf(listener);
    a.sin_port = htons(server_port);
    const std::int64_t conns = n / 2 + 1;  // the last one is the measured one
    int p[2];
    if (::pipe(p) != 0) return;
    holder = ::fork();
    if (holder == 0) {
      ::close(p[1]);
      std::vector<int> kept;
      for (std::int64_t i = 0; i < conns; ++i) kept.push_back(::accept(listener, nullptr, nullptr));
      char b;
      while (::read(p[0], &b, 1) > 0) {
      }
      ::_exit(0);
    }
    ::close(p[0]);
    hold = p[1];
    ::close(listener);  // the child has it
    for (std::int64_t i = 0; i < conns; ++i) {
      const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(c);
        break;
      }
      fds.push_back(c);
      client_port = portOf(c);
    }
  }
  ~Sockets() {
    for (int fd : fds) ::close(fd);
    if (hold >= 0) ::close(hold);
    if (holder > 0) ::waitpid(holder, nullptr, 0);
  }
  std::size_t count() const { return 2 * fds.size() + 1; }
  SocketId measured() const { return SocketId{6, Ip4{kLoopback}, client_port, Ip4{kLoopback}, server_port}; }
};

void raiseFdLimit() {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max = std::max<rlim_t>(r.rlim_max, 65536);
  if (::setrlimit(RLIMIT_NOFILE, &r) != 0) {
    ::getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

void BM_SockDiagFind(benchmark::State& state) {
  raiseFdLimit();
  Sockets socks(state.range(0));
  auto diag = SockDiag::open();
  if (!diag) return state.SkipWithError(diag.error().message.c_str());
  for (auto _ : state) {
    auto r = diag->find(socks.measured());
    if (!r || !r->has_value()) return state.SkipWithError("the connection was not found");
    benchmark::DoNotOptimize((*r)->cookie);
  }
  state.counters["sockets"] = static_cast<double>(socks.count());
}
BENCHMARK(BM_SockDiagFind)->Arg(10)->Arg(1000)->Arg(10000)->Arg(20000)->Unit(benchmark::kNanosecond);

// This process in a cgroup of its own with the owner programs attached, while it lives.
class OwnCgroup {
 public:
  OwnCgroup() {
    auto mnt = cgroup::root();
    auto old = cgroup::ofProcess();
    if (!mnt || !old) {
      why_ = !mnt ? mnt.error().message : old.error().message;
      return;
    }
    mnt_ = *mnt;
    old_ = *old;
    dir_ = mnt_ + "/cw-bench-attrib-" + std::to_string(::getpid());
    if (::mkdir(dir_.c_str(), 0755) != 0) {
      why_ = "cannot make " + dir_ + " (run as root)";
      dir_.clear();
      return;
    }
    auto o = OwnerMap::attach(dir_);
    if (!o) {
      why_ = o.error().message;
      return;
    }
    owners_ = std::move(o.value());
    std::ofstream(dir_ + "/cgroup.procs") << ::getpid() << "\n";
  }
  ~OwnCgroup() {
    if (dir_.empty()) return;
    std::ofstream(old_ + "/cgroup.procs") << ::getpid() << "\n";
    owners_.reset();
    ::rmdir(dir_.c_str());
  }
  const OwnerMap* owners() const { return owners_.get(); }
  std::uint64_t id() const {
    auto i = cgroup::id(dir_);
    return i ? *i : 0;
  }
  const std::string& why() const { return why_; }

 private:
  std::string mnt_, old_, dir_, why_;
  std::unique_ptr<OwnerMap> owners_;
};

void BM_Attribute(benchmark::State& state) {
  raiseFdLimit();
  OwnCgroup cg;
  if (cg.owners() == nullptr) return state.SkipWithError(cg.why().c_str());
  Sockets socks(state.range(0));
  auto diag = SockDiag::open();
  if (!diag) return state.SkipWithError(diag.error().message.c_str());
  for (auto _ : state) {
    auto r = diag->find(socks.measured());
    if (!r || !r->has_value()) return state.SkipWithError("the connection was not found");
    auto o = cg.owners()->bySocket((*r)->cookie);
    if (!o) return state.SkipWithError("no owner recorded");
    benchmark::DoNotOptimize(o->pid);
  }
  state.counters["sockets"] = static_cast<double>(socks.count());
}
BENCHMARK(BM_Attribute)->Arg(10)->Arg(1000)->Arg(10000)->Arg(20000)->Unit(benchmark::kNanosecond);

// What cellwalld does for a new connection (daemon/attribution.cc): the opener by the
// connection's 4-tuple (one bpf() call), then the process's details from the cache, checked
// against the recorded start time and exec count (no system call when it is known).
void BM_AttributeByConnection(benchmark::State& state) {
  raiseFdLimit();
  OwnCgroup cg;
  if (cg.owners() == nullptr) return state.SkipWithError(cg.why().c_str());
  Sockets socks(state.range(0));
  const std::uint64_t cgid = cg.id();
  const SocketId c = socks.measured();
  ProcessCache procs;
  const std::uint64_t per_tick = 1'000'000'000ull / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
  for (auto _ : state) {
    auto o = cg.owners()->byConnection(cgid, 6, c.local, c.local_port, c.remote, c.remote_port);
    if (!o) return state.SkipWithError("no owner recorded for the connection");
    auto p = procs.lookupKnown(o->pid, o->start_ns / per_tick, o->exec_id);
    if (!p) return state.SkipWithError("the process was not found");
    benchmark::DoNotOptimize(p->exe.data());
  }
  state.counters["sockets"] = static_cast<double>(socks.count());
  state.counters["proc_reads"] = static_cast<double>(procs.stats().misses);
}
// The first connection of a process: its details read from /proc (exe, cmdline, status, the
// parent's exe), once per process and exec.
void BM_ProcessDetailsFirstSight(benchmark::State& state) {
  const auto self = static_cast<std::uint32_t>(::getpid());
  for (auto _ : state) {
    ProcessCache procs;
    auto p = procs.lookup(self);
    if (!p) return state.SkipWithError("cannot read this process");
    benchmark::DoNotOptimize(p->exe.data());
  }
}
BENCHMARK(BM_ProcessDetailsFirstSight)->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_AttributeByConnection)->Arg(10)->Arg(1000)->Arg(10000)->Arg(20000)->Unit(benchmark::kNanosecond);

}  // namespace

BENCHMARK_MAIN();
