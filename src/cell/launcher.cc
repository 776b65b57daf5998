#include "cell/launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace cw::cell {

namespace {

// A step's failure: "<step>: <reason>". Only async-signal-safe work happens after fork, so
// messages are built in a fixed buffer.
struct StepError {
  char text[512];
};

bool stepFail(StepError& e, const char* step, const char* what) {
  std::snprintf(e.text, sizeof e.text, "%s: %s: %s", step, what, std::strerror(errno));
  return false;
}

// Everything above stderr goes except the error pipe (close-on-exec) and the descriptors to
// pass, which end up at 3, 4, ...: first moved out of the way (high numbers), then placed.
bool placeFds(const LaunchSpec& s, int& err_fd, StepError& e) {
  for (int i = 0; i < 3; ++i)
    if (s.std_fds[i] >= 0 && ::dup2(s.std_fds[i], i) < 0) return stepFail(e, "stdio", "dup2");
  constexpr int kHigh = 900;
  err_fd = ::fcntl(err_fd, F_DUPFD_CLOEXEC, kHigh + 64);
  if (err_fd < 0) return stepFail(e, "close inherited fds", "move the error pipe");
  const int n = static_cast<int>(s.pass_fds.size());
  for (int i = 0; i < n; ++i)
    if (::dup3(s.pass_fds[static_cast<std::size_t>(i)], kHigh + i, O_CLOEXEC) < 0)
      return stepFail(e, "pass fds", "dup3");
  for (int fd = 3; fd < 1024; ++fd)
    if (fd != err_fd && (fd < kHigh || fd >= kHigh + n)) ::close(fd);
  if (::syscall(SYS_close_range, 1024U, ~0U, 0U) != 0 && errno != ENOSYS && errno != EINVAL)
    return stepFail(e, "close inherited fds", "close_range");
  for (int i = 0; i < n; ++i) {
    if (::dup2(kHigh + i, 3 + i) < 0) return stepFail(e, "pass fds", "dup2");
    ::close(kHigh + i);
  }
  return true;
}

}  // namespace

namespace {

// The safe list (docs/launcher.md says why each is safe). HOME, USER, LOGNAME and SHELL are
// set for the target user anyway.
constexpr std::string_view kSafeNames[] = {
    "PATH", "TERM", "COLORTERM", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    // a window: X11 or Wayland, and where the desktop's sockets and files are
    "DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "XDG_SESSION_TYPE",
    "XDG_CURRENT_DESKTOP", "XDG_SESSION_DESKTOP", "DESKTOP_SESSION", "XDG_DATA_DIRS", "XDG_CONFIG_DIRS",
};
constexpr std::string_view kSafePrefixes[] = {"LC_"};

// Never passed, whatever the filter: they point at cellwall itself or change what the loader
// loads into the command.
bool alwaysDropped(std::string_view key) {
  return key.starts_with("CELLWALL_") || key.starts_with("SUDO_") || key == "LD_PRELOAD" ||
         key == "LD_LIBRARY_PATH" || key == "LD_AUDIT";
}

bool passMatches(std::string_view pattern, std::string_view key) {
  if (!pattern.empty() && pattern.back() == '*') return key.starts_with(pattern.substr(0, pattern.size() - 1));
  return key == pattern;
}

}  // namespace

bool isSafeEnvName(std::string_view name) {
  for (auto n : kSafeNames)
    if (name == n) return true;
  for (auto p : kSafePrefixes)
    if (name.starts_with(p) && name.size() > p.size()) return true;
  return false;
}

std::vector<std::string> cellEnvironment(const std::vector<std::string>& from, const std::string& user_name,
                                         const std::string& home, const std::string& shell,
                                         const EnvFilter& filter) {
  std::vector<std::string> env;
  for (const auto& kv : from) {
    const std::string_view key = std::string_view(kv).substr(0, kv.find('='));
    if (alwaysDropped(key) || key == "HOME" || key == "USER" || key == "LOGNAME" || key == "SHELL") continue;
    if (filter.clean && !isSafeEnvName(key) &&
        std::none_of(filter.pass.begin(), filter.pass.end(), [&](const std::string& p) { return passMatches(p, key); }))
      continue;
    env.push_back(kv);
  }
  env.push_back("HOME=" + home);
  env.push_back("USER=" + user_name);
  env.push_back("LOGNAME=" + user_name);
  env.push_back("SHELL=" + shell);
  return env;
}

std::vector<std::string> cellEnvironment(const std::string& user_name, const std::string& home,
                                         const std::string& shell, const EnvFilter& filter) {
  std::vector<std::string> from;
  for (char** p = environ; *p != nullptr; ++p) from.emplace_back(*p);
  return cellEnvironment(from, user_name, home, shell, filter);
}

namespace {

bool enterCgroup(const LaunchSpec& s, StepError& e) {
  if (s.cgroup_dir.empty()) return true;
  std::string procs = s.cgroup_dir + "/cgroup.procs";
  int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return stepFail(e, "cgroup", procs.c_str());
  // "0" means the writing process itself.
  bool ok = ::write(fd, "0", 1) == 1;
  ::close(fd);
  if (!ok) return stepFail(e, "cgroup", procs.c_str());
  return true;
}

bool enterNetns(const LaunchSpec& s, StepError& e) {
  int fd = ::open(s.netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return stepFail(e, "network namespace", s.netns_path.c_str());
  // setns: join the cell's network namespace; needs CAP_SYS_ADMIN.
  int rc = ::setns(fd, CLONE_NEWNET);
  ::close(fd);
  if (rc != 0) return stepFail(e, "network namespace", "setns");
  return true;
}

bool bindOver(const std::string& src, const char* target, StepError& e) {
  // mount(MS_BIND) follows a symlinked target, which is what a symlinked resolv.conf needs.
  if (::mount(src.c_str(), target, nullptr, MS_BIND, nullptr) != 0)
    return stepFail(e, "mounts", target);
  return true;
}

// A sysfs of the cell's own network namespace over /sys (sysfs shows the network devices of
// the namespace it was mounted from): /sys/class/net lists the cell's interfaces, not the
// host's. The host's /sys/fs is carried over with what is mounted under it (the cgroup tree,
// whose limits language runtimes read); the other mounts under /sys are not.
bool mountOwnSysfs(StepError& e) {
  const int fs_tree = ::open_tree(AT_FDCWD, "/sys/fs", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (fs_tree < 0) return stepFail(e, "mounts", "open_tree /sys/fs");
  bool ok = ::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0;
  if (!ok) stepFail(e, "mounts", "sysfs on /sys");
  if (ok && ::move_mount(fs_tree, "", AT_FDCWD, "/sys/fs", MOVE_MOUNT_F_EMPTY_PATH) != 0)
    ok = stepFail(e, "mounts", "move_mount /sys/fs");
  ::close(fs_tree);
  return ok;
}

bool setupMounts(const LaunchSpec& s, StepError& e) {
  // unshare(CLONE_NEWNS): a private mount table for the cell.
  if (::unshare(CLONE_NEWNS) != 0) return stepFail(e, "mount namespace", "unshare");
  // Slave propagation: host mounts still appear, ours never leak back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0)
    return stepFail(e, "mounts", "make / rslave");
  if (!mountOwnSysfs(e)) return false;
  if (!s.resolv_conf.empty() && !bindOver(s.resolv_conf, "/etc/resolv.conf", e)) return false;
  if (!s.hosts.empty() && !bindOver(s.hosts, "/etc/hosts", e)) return false;
  if (!s.hide_dir.empty() &&
      ::mount("cw-hidden", s.hide_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=4k,mode=0555") != 0)
    return stepFail(e, "mounts", "hide cellwall's state directory");
  return true;
}

bool dropPrivileges(const LaunchSpec& s, StepError& e) {
  if (::setgroups(s.groups.size(), s.groups.data()) != 0) return stepFail(e, "drop privileges", "setgroups");
  if (::setresgid(s.gid, s.gid, s.gid) != 0) return stepFail(e, "drop privileges", "setresgid");
  // A uid-0 target could regain capabilities from setuid or file-capability binaries: empty
  // its bounding set (needs CAP_SETPCAP, which we still have). For other users no_new_privs
  // alone keeps exec from granting anything, and an empty bounding set would make the kernel
  // refuse to run file-capability binaries such as ping (EPERM) instead of running them
  // without their capabilities.
  if (s.uid == 0) {
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
        return stepFail(e, "drop privileges", "PR_CAPBSET_DROP");
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return stepFail(e, "drop privileges", "clear ambient capabilities");
  if (::setresuid(s.uid, s.uid, s.uid) != 0) return stepFail(e, "drop privileges", "setresuid");
  // For uid 0 the kernel keeps capabilities across setresuid: clear them explicitly.
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capset, &hdr, data) != 0) return stepFail(e, "drop privileges", "capset");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return stepFail(e, "drop privileges", "no_new_privs");
  return true;
}

[[noreturn]] void childMain(const LaunchSpec& s, char* const* argv, char* const* envp, int err_fd) {
  StepError e{};
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGQUIT, SIG_DFL);
  ::signal(SIGHUP, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  bool ok = placeFds(s, err_fd, e) && enterCgroup(s, e) && enterNetns(s, e) &&
            setupMounts(s, e) && dropPrivileges(s, e);
  if (ok) {
    if (!s.home.empty() && ::chdir(s.home.c_str()) != 0) {
      // The working directory stays as it was: not every user has a home.
    }
    ::execvpe(argv[0], argv, envp);
    stepFail(e, "exec", argv[0]);
  }
  auto n = ::write(err_fd, e.text, std::strlen(e.text));
  (void)n;
  ::_exit(127);
}

}  // namespace

Expected<TargetUser> resolveUser(const std::string& requested) {
  struct passwd* pw = nullptr;
  bool nobody = false;
  if (!requested.empty()) {
    char* end = nullptr;
    unsigned long uid = std::strtoul(requested.c_str(), &end, 10);
    pw = (end != nullptr && *end == '\0') ? ::getpwuid(static_cast<uid_t>(uid))
                                          : ::getpwnam(requested.c_str());
    if (pw == nullptr) return fail("no such user '" + requested + "' (see --user)");
  } else if (const char* sudo_uid = std::getenv("SUDO_UID")) {
    pw = ::getpwuid(static_cast<uid_t>(std::strtoul(sudo_uid, nullptr, 10)));
    if (pw == nullptr) return fail(std::string("SUDO_UID=") + sudo_uid + " names no user; pass --user");
  } else if (::getuid() != 0) {
    pw = ::getpwuid(::getuid());
  } else {
    pw = ::getpwnam("nobody");
    nobody = true;
    if (pw == nullptr) return fail("running as root and there is no user 'nobody': pass --user");
  }
  TargetUser u{pw->pw_uid, pw->pw_gid, {}, pw->pw_name, pw->pw_dir, pw->pw_shell, nobody};
  int n = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(n));
  if (::getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<std::size_t>(n));
    ::getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n);
  }
  groups.resize(static_cast<std::size_t>(n));
  u.groups = std::move(groups);
  return u;
}

Expected<pid_t> launch(const LaunchSpec& spec) {
  if (spec.argv.empty()) return fail("no command to run (cellwall run ... -- CMD [ARGS...])");
  if (::geteuid() != 0)
    return fail("cellwall run needs root (setns and mount need CAP_SYS_ADMIN); try sudo");
  // Everything the child needs is prepared before fork: after it, no allocation.
  std::vector<std::string> env = cellEnvironment(spec.user_name, spec.home, spec.shell, spec.env);
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& kv : env) envp.push_back(const_cast<char*>(kv.c_str()));
  envp.push_back(nullptr);

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    return fail(std::string("cannot create a pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return fail(std::string("cannot fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(pipefd[0]);
    childMain(spec, argv.data(), envp.data(), pipefd[1]);
  }
  ::close(pipefd[1]);
  char buf[600];
  ssize_t n = 0;
  do {
    n = ::read(pipefd[0], buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  ::close(pipefd[0]);
  if (n > 0) {
    buf[n] = '\0';
    int status = 0;
    ::waitpid(pid, &status, 0);
    return fail("cannot start " + spec.argv[0] + " in cell " + spec.cell_name + ": " + buf);
  }
  return pid;
}

namespace {
volatile sig_atomic_t g_child = 0;
void forwardSignal(int sig) {
  if (g_child > 0) ::kill(g_child, sig);
}
}  // namespace

int waitForward(pid_t pid) {
  g_child = pid;
  struct sigaction sa {};
  sa.sa_handler = forwardSignal;
  ::sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaction(sig, &sa, nullptr);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 127;
  }
  g_child = 0;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 127;
}

}  // namespace cw::cell
