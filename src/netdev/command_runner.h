// CommandRunner: the seam between cellwall and the host's network tools (ip, nft, sysctl,
// ovs-vsctl, dnsmasq). Everything that changes the host goes through it, so unit tests swap in
// FakeRunner (fake_runner.h) and check the exact commands issued.
//
// Commands run without a shell: argv[0] is looked up in PATH and every argument is passed as
// is, so names from configuration cannot inject shell syntax.
//
// Errors: run() fails only when the command could not be run at all (not found, fork failed);
// a command that ran and exited non-zero is a successful run() whose CommandResult says so.
// Threading: implementations must be callable from one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace cw {

struct Command {
  std::vector<std::string> argv;
  std::string stdin_text;  // written to the command's stdin, which is then closed
  // Extra environment variables (NAME, value) on top of the daemon's environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::chrono::milliseconds timeout{10000};
};

struct CommandResult {
  int exit_code = 0;  // -1 when killed by a signal or the timeout
  bool timed_out = false;
  std::string out;
  std::string err;

  bool ok() const { return exit_code == 0 && !timed_out; }
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;

  // Runs argv to completion (or until the timeout, then SIGKILL) and captures its output.
  virtual Expected<CommandResult> run(const Command& cmd) = 0;

  // Starts a long-running child (a supervised daemon such as dnsmasq) with stdin on
  // /dev/null and stdout/stderr appended to log_path. Returns its pid; the caller owns it
  // and must eventually terminate() it.
  virtual Expected<pid_t> spawn(const Command& cmd, const std::string& log_path) = 0;

  // True when pid is a live process whose name (/proc/<pid>/comm) is comm: guards against a
  // recycled pid from a pidfile. Reaps it first when it is our exited child; a zombie (dead,
  // not yet reaped by its parent) is not alive.
  virtual bool alive(pid_t pid, const std::string& comm) = 0;

  // SIGTERM, wait up to grace, then SIGKILL. A pid that is already gone is success.
  virtual Expected<void> terminate(pid_t pid, std::chrono::milliseconds grace) = 0;

  // Whether commands run with enough privilege to create namespaces and run Open vSwitch
  // (euid 0, or CAP_NET_ADMIN and CAP_SYS_ADMIN).
  virtual bool privileged() const = 0;
};

// Joins argv with spaces for messages and logs (not for execution).
std::string joinArgv(const std::vector<std::string>& argv);

}  // namespace cw
