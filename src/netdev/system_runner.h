// SystemRunner: the real CommandRunner, using fork/exec, pipes and signals.
//
// Children get a clean descriptor table (only stdin/stdout/stderr) so sockets of the daemon
// never leak into ip, nft or dnsmasq. Threading: one call at a time per instance; children
// spawned by one instance may be terminated by another (pids are process-wide).
#pragma once

#include "netdev/command_runner.h"

namespace cw {

class SystemRunner final : public CommandRunner {
 public:
  Expected<CommandResult> run(const Command& cmd) override;
  Expected<pid_t> spawn(const Command& cmd, const std::string& log_path) override;
  bool alive(pid_t pid, const std::string& comm) override;
  Expected<void> terminate(pid_t pid, std::chrono::milliseconds grace) override;
  bool privileged() const override;
};

}  // namespace cw
