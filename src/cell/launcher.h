// Starts a command inside a cell whose network the daemon has built (docs/launcher.md lists
// the steps; each is one function in launcher.cc). Runs in the `cellwall run` process, as root.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace cw::cell {

// Which of the caller's environment variables a cell's command gets (docs/launcher.md, "The
// environment"). By default all but cellwall's and the loader's; clean: only the safe list
// (isSafeEnvName) and the names in `pass`.
struct EnvFilter {
  bool clean = false;              // `cellwall run --clean-env`, or the policy's clean_env = true
  std::vector<std::string> pass;   // more names when clean: "NAME", or "PREFIX_*" for a family
};

struct LaunchSpec {
  std::string cell_name;  // "cw-c3": the netns name, for messages
  std::string netns_path;  // /run/netns/cw-c3
  std::string resolv_conf, hosts;
  std::string cgroup_dir;    // "" to skip (with a warning printed by the caller)
  std::string hide_dir;      // cellwall's state directory: covered by an empty tmpfs
  uid_t uid = 65534;
  gid_t gid = 65534;
  std::vector<gid_t> groups;
  std::string user_name, home, shell;
  EnvFilter env;
  std::vector<std::string> argv;
  // Descriptors the command gets at 3, 4, ... in this order (a VM cell's devices); -1 in the
  // std_fds keeps the caller's stdin, stdout, stderr.
  std::vector<int> pass_fds;
  int std_fds[3] = {-1, -1, -1};
};

struct TargetUser {
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;
  std::string name, home, shell;
  bool defaulted_to_nobody = false;
};

// --user NAME|UID, else SUDO_UID, else nobody (see docs/launcher.md).
Expected<TargetUser> resolveUser(const std::string& requested);

// Whether a clean environment keeps this variable without being told: what a command needs
// to find programs, speak the user's language and show a window, and nothing that is a
// credential or leads to one (the list and the reason for each: docs/launcher.md).
bool isSafeEnvName(std::string_view name);

// The environment a cell's command gets: `from` (the caller's, NAME=VALUE each) filtered by
// `filter`, never cellwall's (CELLWALL_*, SUDO_*) or the loader's (LD_PRELOAD,
// LD_LIBRARY_PATH, LD_AUDIT) variables, with the target user's HOME, USER, LOGNAME and SHELL.
std::vector<std::string> cellEnvironment(const std::vector<std::string>& from, const std::string& user_name,
                                         const std::string& home, const std::string& shell,
                                         const EnvFilter& filter);
// The same of this process's environment.
std::vector<std::string> cellEnvironment(const std::string& user_name, const std::string& home,
                                         const std::string& shell, const EnvFilter& filter);

// Forks, runs the steps in the child and execs. Returns the child's pid; fails if any step
// failed in the child (its message says which).
Expected<pid_t> launch(const LaunchSpec& spec);

// Waits for pid, forwarding SIGINT/SIGTERM/SIGHUP/SIGQUIT to it. Returns the shell-style exit
// status (128+N for a signal).
int waitForward(pid_t pid);

}  // namespace cw::cell
