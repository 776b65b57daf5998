#include "cell/vm_cell.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <optional>

#include "vm/channel.h"

namespace cw::cell {

namespace {

using vm::FrameType;

// From the VMM's start to the guest's kReady; a boot takes ~2 s under TCG here.
constexpr std::chrono::seconds kBootTimeout{60};

// A descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

// The persistent tap the daemon made for the cell (ip tuntap: no packet info, no vnet header).
Expected<int> openTap(const std::string& name) {
  int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(errnoText("/dev/net/tun"));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
    ::close(fd);
    return fail(errnoText("attach to tap " + name));
  }
  return fd;
}

bool writeAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t w = ::write(fd, s.data(), s.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    s.remove_prefix(static_cast<std::size_t>(w));
  }
  return true;
}

// The last `cap` bytes of a stream (the guest's console, QEMU's stderr), for error messages.
void keepTail(std::string& tail, std::string_view more, std::size_t cap = 8192) {
  tail.append(more);
  if (tail.size() > cap) tail.erase(0, tail.size() - cap);
}

std::string winsizeText(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0) return "";
  return std::to_string(ws.ws_row) + " " + std::to_string(ws.ws_col);
}

// The terminal in raw mode while the guest's command has it; restored however this ends.
class RawTerminal {
 public:
  explicit RawTerminal(bool on) {
    if (!on || ::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

// Signals are read from a descriptor while the VM runs, and blocked; the old mask comes back.
class BlockedSignals {
 public:
  BlockedSignals() {
    sigset_t set;
    ::sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGCHLD}) ::sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, &old_);
    fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    // A closed stdout is an EPIPE to handle, not a signal that kills the launcher.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &old_pipe_);
  }
  ~BlockedSignals() {
    if (fd >= 0) ::close(fd);
    ::sigaction(SIGPIPE, &old_pipe_, nullptr);
    ::sigprocmask(SIG_SETMASK, &old_, nullptr);
  }
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;
  int fd = -1;

 private:
  sigset_t old_{};
  struct sigaction old_pipe_ {};
};

}  // namespace

Expected<TargetUser> vmmUser(const TargetUser& target, vm::Accel accel) {
  TargetUser u = target;
  if (u.uid == 0) {
    auto nobody = resolveUser("nobody");
    if (!nobody) return fail("there is no user 'nobody' to run the VM as");
    u = *nobody;
  }
  if (accel == vm::Accel::kKvm)
    if (struct group* g = ::getgrnam("kvm")) u.groups.push_back(g->gr_gid);
  return u;
}

Result<int, VmRunError> runVmCell(const VmCellSpec& s, const vm::Vmm& vmm) {
  auto runner = vmmUser(s.user, s.vm.accel);
  if (!runner) return Unexpected(runner.error());
  auto tap_fd = openTap(s.cell_name);
  if (!tap_fd) return Unexpected(tap_fd.error());
  Fd tap(*tap_fd);
  int ctl_pair[2], con_pair[2], err_pipe[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl_pair) != 0) return fail(errnoText("socketpair"));
  Fd ctl(ctl_pair[0]), ctl_vm(ctl_pair[1]);
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con_pair) != 0) return fail(errnoText("socketpair"));
  Fd con(con_pair[0]), con_vm(con_pair[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return fail(errnoText("pipe"));
  Fd vmm_err(err_pipe[0]), vmm_err_w(err_pipe[1]);
  Fd kernel(::open(s.kernel.c_str(), O_RDONLY | O_CLOEXEC));
  if (kernel.fd < 0) return fail(errnoText(s.kernel));
  Fd initrd(::open(s.initrd.c_str(), O_RDONLY | O_CLOEXEC));
  if (initrd.fd < 0) return fail(errnoText(s.initrd));
  Fd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));

  vm::VmSpec vs = s.vm;
  vs.mac = s.mac;
  auto argv = vmm.command(vs);
  if (!argv) return Unexpected(argv.error());

  LaunchSpec ls;
  ls.cell_name = s.cell_name;
  ls.netns_path = s.netns_path;
  ls.cgroup_dir = s.cgroup_dir;
  ls.hide_dir = s.hide_dir;
  ls.uid = runner->uid;
  ls.gid = runner->gid;
  ls.groups = runner->groups;
  ls.user_name = runner->name;
  ls.home.assign(1, '/');  // (= "/" trips GCC 12's -Wrestrict)
  ls.shell = runner->shell;
  ls.env = s.env;  // the VMM needs none of the caller's secrets either
  ls.argv = *argv;
  ls.pass_fds = {tap.fd, ctl_vm.fd, con_vm.fd, kernel.fd, initrd.fd};  // VmFds' order
  ls.std_fds[0] = devnull.fd;
  ls.std_fds[1] = devnull.fd;
  ls.std_fds[2] = vmm_err_w.fd;

  const bool tty = ::isatty(STDIN_FILENO) == 1 && ::isatty(STDOUT_FILENO) == 1;
  vm::GuestSpec g;
  g.argv = s.argv;
  g.env = cellEnvironment(s.user.name, s.user.home, s.user.shell, s.env);
  g.uid = s.user.uid;
  g.gid = s.user.gid;
  g.groups.assign(s.user.groups.begin(), s.user.groups.end());
  g.cwd = s.user.home.empty() ? "/" : s.user.home;
  g.ip = s.ip;
  g.gateway = s.gateway;
  g.mtu = s.mtu;
  g.resolv_conf = s.resolv_conf;
  g.hosts = s.hosts;
  g.tty = tty;
  if (tty) {
    winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
      g.rows = ws.ws_row;
      g.cols = ws.ws_col;
    }
  }

  BlockedSignals sigs;
  if (sigs.fd < 0) return fail(errnoText("signalfd"));
  auto pid = launch(ls);
  if (!pid) return Unexpected(pid.error());
  ctl_vm.reset();
  con_vm.reset();
  vmm_err_w.reset();
  tap.reset();
  kernel.reset();
  initrd.reset();

  ::fcntl(ctl.fd, F_SETFL, O_NONBLOCK);
  std::string out;  // to the guest, unsent
  RawTerminal raw(tty);
  vm::FrameDecoder dec;
  std::string console, vmm_text, failure;
  std::optional<int> status;
  int signalled = 0;
  bool vmm_exited = false, stdin_open = true, started = false;
  bool guest_spoke = false;  // a byte came over the control channel
  int vmm_status = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline;  // for the VM to end after kExit
  const auto boot_deadline = std::chrono::steady_clock::now() + kBootTimeout;
  char buf[65536];

  auto endVm = [&](int sig) {
    if (!vmm_exited) ::kill(*pid, sig);
  };
  // Reads what the guest sent; false once the VMM closed its end.
  auto readControl = [&] {
    ssize_t r = ::read(ctl.fd, buf, sizeof buf);
    if (r > 0) {
      guest_spoke = true;
      dec.feed(std::string_view(buf, static_cast<std::size_t>(r)));
    }
    while (auto f = dec.next()) {
      if (f->type == FrameType::kStdout) {
        // A reader that went away (`cellwall run --vm -- yes | head -1`) ends the command as
        // SIGPIPE would have ended it on the host: the VM ends, with status 141.
        if (!writeAll(STDOUT_FILENO, f->payload) && errno == EPIPE && signalled == 0) {
          signalled = SIGPIPE;
          endVm(SIGTERM);
        }
      } else if (f->type == FrameType::kStderr) {
        (void)writeAll(STDERR_FILENO, f->payload);
      } else if (f->type == FrameType::kExit && !status) {
        int code = 125;
        auto [p, ec] = std::from_chars(f->payload.data(), f->payload.data() + f->payload.size(), code);
        status = ec == std::errc() && p == f->payload.data() + f->payload.size() && code >= 0 && code <= 255
                     ? code
                     : 125;
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      } else if (f->type == FrameType::kReady && !started) {
        started = true;
        g.unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
        out += vm::encodeFrame(FrameType::kStart, vm::encodeSpec(g));
      } else if (f->type == FrameType::kFailed && failure.empty()) {
        failure = f->payload;
      }
    }
    if (dec.failed() && failure.empty()) {
      failure = "the guest broke the control protocol: " + dec.error();
      endVm(SIGKILL);
    }
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
      ctl.reset();  // the VMM closed it: it is ending
      return false;
    }
    return r > 0;
  };
  while (!vmm_exited) {
    pollfd fds[5] = {
        {sigs.fd, POLLIN, 0},
        // stdin is read only while the guest keeps up.
        {started && stdin_open && out.size() < (256U << 10) && !status ? STDIN_FILENO : -1, POLLIN, 0},
        {ctl.fd, static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0},
        {con.fd, POLLIN, 0},
        {vmm_err.fd, POLLIN, 0},
    };
    int timeout = -1;
    if (!started) {
      // A guest that never boots (a hang in its kernel) must not hang the launcher.
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(boot_deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 && failure.empty()) {
        failure = "the guest did not boot within " + std::to_string(kBootTimeout.count()) + " s";
        endVm(SIGKILL);
      }
      timeout = static_cast<int>(std::max<std::int64_t>(left.count(), 100));
    }
    if (deadline)
      timeout = static_cast<int>(std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now()).count()));
    int n = ::poll(fds, 5, timeout);
    if (n < 0 && errno != EINTR) return fail(errnoText("poll"));
    if (n == 0 && deadline) {
      endVm(SIGKILL);  // it reported its status and did not power off: end it
      deadline.reset();
    }
    if (fds[0].revents != 0) {
      signalfd_siginfo si;
      while (::read(sigs.fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        int sig = static_cast<int>(si.ssi_signo);
        if (sig == SIGCHLD) {
          if (::waitpid(*pid, &vmm_status, WNOHANG) == *pid) vmm_exited = true;
        } else if (sig == SIGWINCH) {
          if (tty) out += vm::encodeFrame(FrameType::kWinsize, winsizeText(STDOUT_FILENO));
        } else if (signalled == 0) {
          signalled = sig;
          endVm(SIGTERM);
        }
      }
    }
    if (fds[1].revents != 0) {
      ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
      if (r > 0) {
        out += vm::encodeFrame(FrameType::kStdin, std::string_view(buf, static_cast<std::size_t>(r)));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;
        out += vm::encodeFrame(FrameType::kStdinEof, "");
      }
    }
    if ((fds[2].revents & POLLOUT) != 0 && !out.empty()) {
      ssize_t w = ::send(ctl.fd, out.data(), out.size(), MSG_NOSIGNAL);
      if (w > 0) out.erase(0, static_cast<std::size_t>(w));
    }
    if ((fds[2].revents & (POLLIN | POLLHUP)) != 0) readControl();
    if (fds[3].revents != 0) {
      ssize_t r = ::read(con.fd, buf, sizeof buf);
      if (r > 0) keepTail(console, std::string_view(buf, static_cast<std::size_t>(r)));
      if (r == 0) con.reset();
    }
    if (fds[4].revents != 0) {
      ssize_t r = ::read(vmm_err.fd, buf, sizeof buf);
      if (r > 0) keepTail(vmm_text, std::string_view(buf, static_cast<std::size_t>(r)));
      if (r == 0) vmm_err.reset();
    }
  }
  // What the guest sent just before the end.
  while (ctl.fd >= 0 && readControl()) {
  }
  if (signalled != 0) return 128 + signalled;
  if (status && failure.empty()) return *status;
  std::string why = !failure.empty() ? failure
                    : WIFSIGNALED(vmm_status)
                        ? vmm.name() + " was killed by signal " + std::to_string(WTERMSIG(vmm_status))
                        : vmm.name() + " exited with status " + std::to_string(WEXITSTATUS(vmm_status)) +
                              " before the command ended";
  VmRunError e;
  e.message = "the VM of cell " + s.cell_name + " failed: " + why;
  if (!vmm_text.empty()) e.message += "\n" + vmm.name() + " said:\n" + vmm_text;
  if (!console.empty()) e.message += "\nthe guest's console ended with:\n" + console;
  // Nobody ended it (no signal, no boot timeout, no broken protocol) and the guest never spoke.
  e.before_guest = !started && failure.empty() && !guest_spoke;
  e.vmm_said = vmm_text;
  return Unexpected(std::move(e));
}

}  // namespace cw::cell
