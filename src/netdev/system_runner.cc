#include "netdev/system_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace cw {

std::string joinArgv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

namespace {

using Clock = std::chrono::steady_clock;

// argv/envp as the C arrays exec wants, built before fork: after fork in a threaded daemon
// only async-signal-safe calls are allowed.
struct ExecArgs {
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;

  explicit ExecArgs(const Command& cmd) {
    for (const auto& a : cmd.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& [k, v] : cmd.env) env_storage.push_back(k + "=" + v);
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string_view entry(*e);
      bool overridden = false;
      for (const auto& [k, v] : cmd.env)
        if (entry.size() > k.size() && entry.substr(0, k.size()) == k && entry[k.size()] == '=')
          overridden = true;
      if (!overridden) env_storage.emplace_back(entry);
    }
    for (auto& s : env_storage) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
};

std::string errnoText(int err) { return std::strerror(err); }

// In the child: wire fds 0..2, close everything else, exec. Never returns.
[[noreturn]] void execChild(const ExecArgs& args, int in_fd, int out_fd, int err_fd) {
  // Own process group, so terminate() and timeouts reach grandchildren too.
  setpgid(0, 0);
  dup2(in_fd, 0);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  close_range(3, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execvpe(args.argv[0], args.argv.data(), args.envp.data());
  _exit(127);
}

bool readSome(int fd, std::string& into) {
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    into.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  return n < 0 && (errno == EINTR || errno == EAGAIN);
}

// A child that exits without reading its stdin must not kill the daemon with SIGPIPE, and a
// library must not change process-wide signal dispositions: block it in this thread for the
// write and swallow the one it raised.
ssize_t writeNoSigpipe(int fd, const char* data, std::size_t size) {
  sigset_t pipe_set;
  sigset_t old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  ssize_t w = write(fd, data, size);
  int saved = errno;
  if (w < 0 && errno == EPIPE) {
    timespec zero{0, 0};
    sigtimedwait(&pipe_set, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  errno = saved;
  return w;
}

}  // namespace

Expected<CommandResult> SystemRunner::run(const Command& cmd) {
  if (cmd.argv.empty()) return fail("internal error: empty command");
  ExecArgs args(cmd);
  int in_pipe[2];
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return fail("cannot create pipe: " + errnoText(errno));
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]);
    close(in_pipe[1]);
    return fail("cannot create pipe: " + errnoText(errno));
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) close(fd);
    return fail("cannot create pipe: " + errnoText(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
      close(fd);
    return fail("cannot run " + cmd.argv[0] + ": fork failed: " + errnoText(e));
  }
  if (pid == 0) execChild(args, in_pipe[0], out_pipe[1], err_pipe[1]);

  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  int in_fd = in_pipe[1];
  fcntl(in_fd, F_SETFL, O_NONBLOCK);
  std::size_t written = 0;
  if (cmd.stdin_text.empty()) {
    close(in_fd);
    in_fd = -1;
  }

  CommandResult result;
  auto deadline = Clock::now() + cmd.timeout;
  int out_fd = out_pipe[0];
  int err_fd = err_pipe[0];
  while (out_fd >= 0 || err_fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd fds[3];
    nfds_t n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    int r = poll(fds, n, static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < n && r > 0; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        ssize_t w = writeNoSigpipe(in_fd, cmd.stdin_text.data() + written,
                                   cmd.stdin_text.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == cmd.stdin_text.size()) {
          close(in_fd);
          in_fd = -1;
        }
      } else if (fds[i].fd == out_fd) {
        if (!readSome(out_fd, result.out)) {
          close(out_fd);
          out_fd = -1;
        }
      } else if (fds[i].fd == err_fd) {
        if (!readSome(err_fd, result.err)) {
          close(err_fd);
          err_fd = -1;
        }
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd})
    if (fd >= 0) close(fd);
  if (result.timed_out) kill(-pid, SIGKILL);

  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
    if (result.exit_code == 127 && result.out.empty() && result.err.empty())
      return fail("cannot run " + cmd.argv[0] + ": not found or not executable (is it installed?)");
  } else {
    result.exit_code = -1;
  }
  return result;
}

Expected<pid_t> SystemRunner::spawn(const Command& cmd, const std::string& log_path) {
  if (cmd.argv.empty()) return fail("internal error: empty command");
  ExecArgs args(cmd);
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0) return fail("cannot open log file " + log_path + ": " + errnoText(errno));
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    close(log_fd);
    return fail("cannot open /dev/null: " + errnoText(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(log_fd);
    close(null_fd);
    return fail("cannot start " + cmd.argv[0] + ": fork failed: " + errnoText(e));
  }
  if (pid == 0) execChild(args, null_fd, log_fd, log_fd);
  close(log_fd);
  close(null_fd);
  return pid;
}

bool SystemRunner::alive(pid_t pid, const std::string& comm) {
  if (pid <= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == pid) return false;  // our child, and it just exited
  std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  if (!f || !std::getline(f, name)) return false;
  // Kernel truncates comm to 15 characters.
  if (name != comm.substr(0, 15)) return false;
  // A daemon that detached is not our child: killed, it stays a zombie (comm intact) until
  // its parent, init, reaps it, and an init that never reaps would make it look alive for
  // good. The state follows "(comm) " in /proc/<pid>/stat.
  std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!st || !std::getline(st, stat)) return false;
  auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ||
         (stat[close + 2] != 'Z' && stat[close + 2] != 'X');
}

Expected<void> SystemRunner::terminate(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return {};
  if (kill(pid, SIGTERM) != 0) {
    if (errno == ESRCH) {
      waitpid(pid, nullptr, WNOHANG);
      return {};
    }
    return fail("cannot stop process " + std::to_string(pid) + ": " + errnoText(errno));
  }
  auto deadline = Clock::now() + grace;
  for (;;) {
    pid_t r = waitpid(pid, nullptr, WNOHANG);
    if (r == pid) return {};
    if (r < 0 && kill(pid, 0) != 0) return {};  // not our child, and gone
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  for (int i = 0; i < 100; ++i) {
    pid_t r = waitpid(pid, nullptr, WNOHANG);
    if (r == pid || (r < 0 && kill(pid, 0) != 0)) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return fail("process " + std::to_string(pid) + " did not exit after SIGKILL");
}

bool SystemRunner::privileged() const {
  if (geteuid() == 0) return true;
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    std::uint64_t caps = std::stoull(line.substr(7), nullptr, 16);
    constexpr std::uint64_t kNetAdmin = 1ULL << 12;
    constexpr std::uint64_t kSysAdmin = 1ULL << 21;
    return (caps & kNetAdmin) != 0 && (caps & kSysAdmin) != 0;
  }
  return false;
}

}  // namespace cw
