// FakeRunner: a scripted CommandRunner for hermetic unit tests. Records every command and
// returns, for each, the result of the most recently added rule whose text is contained in
// the command line (argv joined with spaces); unmatched commands succeed with empty output.
// Not thread-safe; test use only (linked as cw_netdev_fake, never into the daemon).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "netdev/command_runner.h"

namespace cw {

class FakeRunner final : public CommandRunner {
 public:
  struct Rule {
    std::string contains;
    CommandResult result;
    int times = -1;  // how many commands it answers; -1 = forever
  };

  // Answers commands containing `contains` with `result`. Later rules win, so a test can
  // override a fixture's default; a rule with `times` left stops answering when used up.
  void on(std::string contains, CommandResult result, int times = -1) {
    rules_.push_back(Rule{std::move(contains), std::move(result), times});
  }
  void onFail(std::string contains, std::string err, int exit_code = 1, int times = -1) {
    on(std::move(contains), CommandResult{exit_code, false, "", std::move(err)}, times);
  }
  void onOutput(std::string contains, std::string out, int times = -1) {
    on(std::move(contains), CommandResult{0, false, std::move(out), ""}, times);
  }

  Expected<CommandResult> run(const Command& cmd) override;
  Expected<pid_t> spawn(const Command& cmd, const std::string& log_path) override;
  bool alive(pid_t pid, const std::string& comm) override;
  Expected<void> terminate(pid_t pid, std::chrono::milliseconds grace) override;
  bool privileged() const override { return privileged_; }

  // What was run, in order: each command line, spawns prefixed with "spawn: " and
  // terminations recorded as "terminate <pid>".
  const std::vector<std::string>& log() const { return log_; }
  const std::vector<Command>& commands() const { return commands_; }
  void clear() { log_.clear(); commands_.clear(); }
  // Log lines containing text, in order.
  std::vector<std::string> matching(const std::string& text) const;

  // Called for every run() before the rules, to simulate side effects (a daemon writing its
  // pidfile).
  std::function<void(const Command&)> on_run_;
  bool privileged_ = true;
  std::map<pid_t, std::string> live_;  // pid -> comm, for alive()
  pid_t next_pid_ = 4242;

 private:
  std::vector<Rule> rules_;
  std::vector<std::string> log_;
  std::vector<Command> commands_;
};

}  // namespace cw
