#include "netdev/fake_runner.h"

namespace cw {

Expected<CommandResult> FakeRunner::run(const Command& cmd) {
  std::string line = joinArgv(cmd.argv);
  log_.push_back(line);
  commands_.push_back(cmd);
  if (on_run_) on_run_(cmd);
  for (auto it = rules_.rbegin(); it != rules_.rend(); ++it) {
    auto& rule = *it;
    if (rule.times == 0 || line.find(rule.contains) == std::string::npos) continue;
    if (rule.times > 0) --rule.times;
    return rule.result;
  }
  return CommandResult{};
}

Expected<pid_t> FakeRunner::spawn(const Command& cmd, const std::string& log_path) {
  log_.push_back("spawn: " + joinArgv(cmd.argv) + " > " + log_path);
  commands_.push_back(cmd);
  pid_t pid = next_pid_++;
  // Like the kernel's comm: the program that finally runs, past "ip netns exec <ns>".
  std::size_t prog = cmd.argv.size() > 4 && cmd.argv[0] == "ip" && cmd.argv[1] == "netns" ? 4 : 0;
  live_[pid] = cmd.argv.empty() ? "" : cmd.argv[prog];
  return pid;
}

bool FakeRunner::alive(pid_t pid, const std::string& comm) {
  auto it = live_.find(pid);
  return it != live_.end() && it->second == comm;
}

Expected<void> FakeRunner::terminate(pid_t pid, std::chrono::milliseconds) {
  log_.push_back("terminate " + std::to_string(pid));
  live_.erase(pid);
  return {};
}

std::vector<std::string> FakeRunner::matching(const std::string& text) const {
  std::vector<std::string> out;
  for (const auto& l : log_)
    if (l.find(text) != std::string::npos) out.push_back(l);
  return out;
}

}  // namespace cw
