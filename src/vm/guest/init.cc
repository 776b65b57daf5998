// The init of a VM cell's guest (docs/vm-cells.md), linked statically into cellwall's
// initramfs. As PID 1 it loads the kernel modules listed in /modules, mounts the host's root
// (virtio-9p, read-only) at /host, waits for the host's kStart frame on the "cw.ctl"
// virtio-serial port, configures eth0 as the frame says, runs the command in a chroot of the
// host's root as the requested user, relays its stdio over the port, reports its exit status
// and powers the VM off.
//
// Nothing here is a security boundary: the guest is untrusted by design, and the host's switch
// is what confines it. Failures are reported (kFailed, or the console when the port is not
// there yet) and end the VM.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "vm/channel.h"

extern char** environ;

namespace {

using cw::vm::FrameType;

int g_port = -1;

[[noreturn]] void powerOff() {
  ::sync();
  // With -no-reboot, a reset ends QEMU: the quickest way out of a microvm.
  ::reboot(RB_AUTOBOOT);
  for (;;) ::pause();
}

bool writeAll(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

void send(FrameType t, std::string_view payload) {
  std::string f = cw::vm::encodeFrame(t, payload);
  (void)writeAll(g_port, f.data(), f.size());
}

// Before the port is open the console (the VM's serial line, kept by the host) is all there is.
[[noreturn]] void fatal(const std::string& what) {
  std::string line = "cw-init: " + what + (errno != 0 ? std::string(": ") + std::strerror(errno) : "");
  if (g_port >= 0) send(FrameType::kFailed, line);
  std::fprintf(stderr, "%s\n", line.c_str());
  powerOff();
}

void mountOrDie(const char* src, const char* target, const char* type, unsigned long flags,
                const char* data = nullptr) {
  ::mkdir(target, 0755);
  errno = 0;
  if (::mount(src, target, type, flags, data) != 0) fatal(std::string("mount ") + type + " on " + target);
}

std::string readFile(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

bool writeFile(const std::string& path, std::string_view text, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  bool ok = writeAll(fd, text.data(), text.size());
  return ::close(fd) == 0 && ok;
}

// /modules: one path per line, each after its dependencies (the host worked out the order).
void loadModules() {
  std::string list = readFile("/modules");
  std::size_t start = 0;
  while (start < list.size()) {
    std::size_t end = list.find('\n', start);
    if (end == std::string::npos) end = list.size();
    std::string path = "/lib/modules/" + list.substr(start, end - start);
    start = end + 1;
    if (path.size() <= 13) continue;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    errno = 0;
    if (fd < 0) fatal("open module " + path);
    // Compressed modules are decompressed by the kernel (MODULE_INIT_COMPRESSED_FILE).
    unsigned flags = path.ends_with(".ko") ? 0U : 4U;
    if (::syscall(SYS_finit_module, fd, "", flags) != 0 && errno != EEXIST) fatal("load module " + path);
    ::close(fd);
  }
}

// The virtio-serial port named "cw.ctl": /sys/class/virtio-ports/vportNpM/name.
int openPort() {
  for (int attempt = 0; attempt < 1000; ++attempt) {  // 10 s: emulation on a busy host is slow
    if (DIR* d = ::opendir("/sys/class/virtio-ports")) {
      while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::string name = readFile(std::string("/sys/class/virtio-ports/") + e->d_name + "/name");
        if (name == "cw.ctl\n" || name == "cw.ctl") {
          std::string dev = std::string("/dev/") + e->d_name;
          ::closedir(d);
          return ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
        }
      }
      ::closedir(d);
    }
    ::usleep(10000);
  }
  errno = 0;
  fatal("no virtio-serial port named cw.ctl");
}

bool readExact(int fd, char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

cw::vm::GuestSpec readStart() {
  send(FrameType::kReady, "");
  char head[cw::vm::kFrameHeader];
  errno = 0;
  if (!readExact(g_port, head, sizeof head)) fatal("the host closed the control port");
  std::uint32_t len = 0;
  for (int i = 1; i < 5; ++i) len = (len << 8) | static_cast<unsigned char>(head[i]);
  if (static_cast<FrameType>(head[0]) != FrameType::kStart || len > cw::vm::kMaxFrame) fatal("no start frame");
  std::string payload(len, '\0');
  if (!readExact(g_port, payload.data(), len)) fatal("the host closed the control port");
  auto spec = cw::vm::decodeSpec(payload);
  if (!spec) fatal("a malformed start frame");
  return *spec;
}

void ifaceIoctl(int sock, unsigned long req, ifreq& ifr, const char* what) {
  errno = 0;
  if (::ioctl(sock, req, &ifr) != 0) fatal(std::string("eth0: ") + what);
}

void setAddr(sockaddr& sa, const std::string& ip) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  if (::inet_pton(AF_INET, ip.c_str(), &sin.sin_addr) != 1) {
    errno = 0;
    fatal("bad address " + ip);
  }
  std::memcpy(&sa, &sin, sizeof sin);
}

void addRoute(int sock, const std::string& dst, const std::string& mask, const std::string& gw,
              unsigned short flags) {
  rtentry rt{};
  setAddr(rt.rt_dst, dst);
  setAddr(rt.rt_genmask, mask);
  if (!gw.empty()) setAddr(rt.rt_gateway, gw);
  rt.rt_flags = flags;
  char dev[] = "eth0";
  rt.rt_dev = dev;
  errno = 0;
  if (::ioctl(sock, SIOCADDRT, &rt) != 0) fatal("route " + dst + "/" + mask);
}

void configureNetwork(const cw::vm::GuestSpec& s) {
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) fatal("socket");
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  ifaceIoctl(sock, SIOCGIFFLAGS, ifr, "lo flags");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  ifaceIoctl(sock, SIOCSIFFLAGS, ifr, "lo up");
  // IPv6 stays off, as in a namespace cell (the switch drops it either way).
  (void)writeFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
  (void)writeFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
  (void)writeFile("/proc/sys/net/ipv4/ping_group_range", "0 2147483647");
  ifr = ifreq{};
  std::strcpy(ifr.ifr_name, "eth0");
  setAddr(ifr.ifr_addr, s.ip);
  ifaceIoctl(sock, SIOCSIFADDR, ifr, "address");
  setAddr(ifr.ifr_netmask, "255.255.255.255");
  ifaceIoctl(sock, SIOCSIFNETMASK, ifr, "netmask");
  if (s.mtu != 0) {
    ifr.ifr_mtu = static_cast<int>(s.mtu);
    ifaceIoctl(sock, SIOCSIFMTU, ifr, "mtu");
  }
  ifaceIoctl(sock, SIOCGIFFLAGS, ifr, "flags");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  ifaceIoctl(sock, SIOCSIFFLAGS, ifr, "up");
  addRoute(sock, s.gateway, "255.255.255.255", "", RTF_UP | RTF_HOST);
  addRoute(sock, "0.0.0.0", "0.0.0.0", s.gateway, RTF_UP | RTF_GATEWAY);
  ::close(sock);
}

// Puts `text` where `path` (inside the new root) points: over the file with a bind mount, or,
// when it is a symlink into the tmpfs /run, at the symlink's target.
void placeFile(const std::string& path, const std::string& text, const std::string& copy) {
  if (!writeFile(copy, text)) fatal("write " + copy);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
    if (n > 0) {
      std::string t(target, static_cast<std::size_t>(n));
      if (t.starts_with("/run/")) {
        for (std::size_t slash = 5; (slash = t.find('/', slash)) != std::string::npos; ++slash)
          ::mkdir(t.substr(0, slash).c_str(), 0755);
        if (!writeFile(t, text)) fatal("write " + t);
        return;
      }
    }
  }
  errno = 0;
  if (::mount(copy.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) fatal("bind " + path);
}

std::string g_warnings;  // sent as the command's stderr once the port is up

// `dir` (the host's /tmp, read-only over 9p) made writable: an overlay whose upper layer is a
// tmpfs, so the host's files there are visible (a program downloaded to /tmp runs) and what the
// guest writes stays in the guest. Without overlayfs: an empty tmpfs, and a warning.
void writableView(const char* dir, const std::string& name) {
  std::string scratch = "/overlay/" + name;
  ::mkdir("/overlay", 0755);
  mountOrDie("tmpfs", scratch.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  std::string upper = scratch + "/upper", work = scratch + "/work";
  if (::mkdir(upper.c_str(), 01777) != 0 || ::chmod(upper.c_str(), 01777) != 0 || ::mkdir(work.c_str(), 0700) != 0)
    fatal("overlay directories for " + std::string(dir));
  std::string opts = "lowerdir=" + std::string(dir) + ",upperdir=" + upper + ",workdir=" + work;
  if (::mount("overlay", dir, "overlay", MS_NOSUID | MS_NODEV, opts.c_str()) == 0) return;
  g_warnings += "cellwall: the host's " + std::string(dir + 5) + " is not visible in this VM (overlayfs: " +
                std::strerror(errno) + "); it is empty\n";
  mountOrDie("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
}

// The host's root, read-only, with the guest's own /proc, /sys, /dev, an empty writable /run
// and /dev/shm, and writable views of the host's /tmp and /var/tmp.
void enterRoot(const cw::vm::GuestSpec& s) {
  mountOrDie("proc", "/host/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mountOrDie("sysfs", "/host/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mountOrDie("devtmpfs", "/host/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  mountOrDie("devpts", "/host/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
  mountOrDie("tmpfs", "/host/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  writableView("/host/tmp", "tmp");
  writableView("/host/var/tmp", "var-tmp");
  mountOrDie("tmpfs", "/host/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  errno = 0;
  if (::chroot("/host") != 0 || ::chdir("/") != 0) fatal("chroot /host");
  // /dev/ptmx of devtmpfs is not the new devpts instance's.
  ::unlink("/dev/ptmx");
  if (::symlink("pts/ptmx", "/dev/ptmx") != 0) fatal("/dev/ptmx");
  ::mkdir("/run/cellwall", 0755);
  placeFile("/etc/resolv.conf", s.resolv_conf, "/run/cellwall/resolv.conf");
  placeFile("/etc/hosts", s.hosts, "/run/cellwall/hosts");
}

struct Child {
  pid_t pid = -1;
  int in = -1, out = -1, err = -1;  // our ends; with a tty, out is the terminal and in == out
};

Child startCommand(const cw::vm::GuestSpec& s) {
  Child c;
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  int pty = -1;
  std::string pts;
  errno = 0;
  if (s.tty) {
    pty = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (pty < 0 || ::grantpt(pty) != 0 || ::unlockpt(pty) != 0) fatal("a terminal for the command");
    pts = ::ptsname(pty);
    winsize ws{s.rows, s.cols, 0, 0};
    if (s.rows != 0) ::ioctl(pty, TIOCSWINSZ, &ws);
  } else if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    fatal("pipes for the command");
  }
  std::vector<char*> argv, envp;
  for (const auto& a : s.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : s.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::vector<gid_t> groups(s.groups.begin(), s.groups.end());

  c.pid = ::fork();
  if (c.pid < 0) fatal("fork");
  if (c.pid == 0) {
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setsid();
    if (s.tty) {
      int t = ::open(pts.c_str(), O_RDWR);
      if (t < 0 || ::ioctl(t, TIOCSCTTY, 0) != 0) ::_exit(126);
      ::dup2(t, 0);
      ::dup2(t, 1);
      ::dup2(t, 2);
    } else {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
    }
    const char* step = "setgroups";
    if (::setgroups(groups.size(), groups.data()) == 0 && (step = "setgid", ::setresgid(s.gid, s.gid, s.gid) == 0) &&
        (step = "setuid", ::setresuid(s.uid, s.uid, s.uid) == 0)) {
      if (::chdir(s.cwd.c_str()) != 0) (void)::chdir("/");
      environ = envp.data();  // execvp searches the command's PATH
      ::execvp(argv[0], argv.data());
      step = argv[0];
    }
    std::fprintf(stderr, "cellwall: cannot run %s in the VM cell: %s: %s\n", s.argv[0].c_str(), step,
                 std::strerror(errno));
    ::_exit(errno == ENOENT ? 127 : 126);
  }
  if (s.tty) {
    c.in = c.out = pty;
  } else {
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    c.in = in[1];
    c.out = out[0];
    c.err = err[0];
    ::fcntl(c.in, F_SETFL, O_NONBLOCK);
  }
  return c;
}

int shellStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

// Sends what `fd` has as `type` frames; false at its end.
bool forward(int fd, FrameType type) {
  char buf[65536];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;  // EOF, or EIO: a terminal with no process left on it
  send(type, std::string_view(buf, static_cast<std::size_t>(n)));
  return true;
}

// Relays until the command exits; returns its status. Orphans the command leaves are reaped
// (this is PID 1) and die with the VM.
int relay(Child c, int sigfd) {
  cw::vm::FrameDecoder dec;
  std::string pending;  // stdin bytes the command has not read yet
  bool stdin_eof = false, exited = false;
  int status = 0;
  char buf[65536];
  while (!exited) {
    pollfd fds[5];
    nfds_t n = 0;
    fds[n++] = {sigfd, POLLIN, 0};
    // Stop reading stdin frames while the command has a backlog: the host waits then.
    fds[n++] = {pending.size() < (1 << 20) ? g_port : -1, POLLIN, 0};
    fds[n++] = {c.out, POLLIN, 0};
    fds[n++] = {c.err, POLLIN, 0};
    fds[n++] = {c.in != c.out && !pending.empty() ? c.in : -1, POLLOUT, 0};
    if (::poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      fatal("poll");
    }
    if (fds[0].revents != 0) {
      signalfd_siginfo si;
      while (::read(sigfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      }
      int st = 0;
      pid_t p;
      while ((p = ::waitpid(-1, &st, WNOHANG)) > 0)
        if (p == c.pid) {
          exited = true;
          status = shellStatus(st);
        }
    }
    if (fds[1].revents != 0) {
      ssize_t r = ::read(g_port, buf, sizeof buf);
      if (r > 0) dec.feed(std::string_view(buf, static_cast<std::size_t>(r)));
      while (auto f = dec.next()) {
        if (f->type == FrameType::kStdin) {
          pending += f->payload;
        } else if (f->type == FrameType::kStdinEof) {
          stdin_eof = true;
        } else if (f->type == FrameType::kWinsize) {
          unsigned rows = 0, cols = 0;
          if (std::sscanf(f->payload.c_str(), "%u %u", &rows, &cols) == 2) {
            winsize ws{static_cast<unsigned short>(rows), static_cast<unsigned short>(cols), 0, 0};
            ::ioctl(c.out, TIOCSWINSZ, &ws);
          }
        }
      }
    }
    if (!pending.empty() && c.in >= 0) {
      ssize_t w = ::write(c.in, pending.data(), pending.size());
      if (w > 0) pending.erase(0, static_cast<std::size_t>(w));
      if (w < 0 && errno == EPIPE) pending.clear();
    }
    if (stdin_eof && pending.empty() && c.in >= 0 && c.in != c.out) {
      ::close(c.in);
      c.in = -1;
    }
    if (fds[2].revents != 0 && !forward(c.out, FrameType::kStdout)) {
      if (c.in == c.out) c.in = -1;
      ::close(c.out);
      c.out = -1;
    }
    if (fds[3].revents != 0 && !forward(c.err, FrameType::kStderr)) {
      ::close(c.err);
      c.err = -1;
    }
  }
  // What the command wrote before it exited is still to be sent; writers it left behind
  // (background processes) are not waited for.
  for (int fd : {c.out, c.err}) {
    if (fd < 0) continue;
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
    while (forward(fd, fd == c.out ? FrameType::kStdout : FrameType::kStderr)) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
    }
  }
  return status;
}

}  // namespace

int main() {
  mountOrDie("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mountOrDie("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mountOrDie("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  loadModules();
  g_port = openPort();
  if (g_port < 0) fatal("open the control port");
  // The host's root (the 9p export is read-only on the host side too). Its page cache may go
  // stale while the host changes files, as a read-only view of a live tree does anyway.
  mountOrDie("hostroot", "/host", "9p", MS_RDONLY | MS_NODEV,
             "trans=virtio,version=9p2000.L,msize=262144,cache=loose");
  cw::vm::GuestSpec spec = readStart();
  if (spec.unix_ns > 0) {
    timespec now{static_cast<time_t>(spec.unix_ns / 1000000000), static_cast<long>(spec.unix_ns % 1000000000)};
    ::clock_settime(CLOCK_REALTIME, &now);
  }
  configureNetwork(spec);
  enterRoot(spec);

  sigset_t mask;
  ::sigemptyset(&mask);
  ::sigaddset(&mask, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  int sigfd = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sigfd < 0) fatal("signalfd");
  if (!g_warnings.empty()) send(FrameType::kStderr, g_warnings);
  Child c = startCommand(spec);
  int status = relay(c, sigfd);
  send(FrameType::kExit, std::to_string(status));
  powerOff();
}
