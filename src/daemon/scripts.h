// The Lua scripts cellwalld runs (docs/scripts.md): loading, hot reload, the per-packet call
// on the decision path, their flows and meters on the bridge, timers, counters and status.
//
// Threads: judge() runs on the switch threads, concurrently. Each script has its own lock (a
// Lua state belongs to one thread at a time); the set of scripts is a snapshot that judge()
// reads without a lock, so loading or unloading never stalls the packet path. Everything
// else (load, unload, timers, status) runs on the control thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "decide/decider.h"
#include "decide/net_view.h"
#include "ofp/messages.h"
#include "script/engine.h"

namespace cw::daemon {

// Meter ids of scripts' rate limits start here (below: the cells' Packet-In meters).
inline constexpr std::uint32_t kScriptMeterBase = 0x01000000;

// One script as it runs: in cellwalld's process or in a helper process (script_helper.h),
// with the same API.
class ScriptRunner {
 public:
  virtual ~ScriptRunner() = default;
  virtual script::Verdict onPacket(const script::Packet& p, script::Effects& out) = 0;
  virtual int runTimers(std::int64_t now_ms, script::Effects& out) = 0;
  virtual std::int64_t nextTimer() const = 0;
  virtual bool disabled() const = 0;
  virtual std::string whyDisabled() const = 0;
  virtual std::size_t memoryUsed() const = 0;
  virtual std::size_t filters() const = 0;
  virtual script::Effects takeLoadEffects() = 0;
  // Inspect mode (every packet of an inspected cell): the script's inspect_* functions.
  virtual script::Verdict onInspect(const script::Packet& /*p*/, script::Effects& /*out*/) {
    return script::Verdict::kContinue;
  }
  virtual std::size_t inspectors() const { return 0; }
};

class ScriptHost final : public decide::PacketJudge {
 public:
  enum class Mode { kInProcess, kHelper };
  struct Spec {
    std::string name;
    std::filesystem::path path;
    std::string origin;  // "shipped" or "user"
    Mode mode = Mode::kInProcess;
    std::vector<script::Setting> settings;  // config.<key>
  };
  struct Info {
    std::string name, path, origin, mode, state, why;  // state: "running" or "disabled"
    std::uint64_t calls = 0, allowed = 0, dropped = 0, rejected = 0, flows = 0;
    std::uint64_t inspected = 0;  // packets of inspected cells its inspect_* functions saw
    std::size_t memory = 0, filters = 0, timers = 0;
    std::int64_t loaded_unix_ms = 0;
    std::vector<std::pair<std::string, std::int64_t>> counters;
    std::vector<std::string> recent_logs;
  };
  struct Hooks {
    // Flows and meters to put on the bridge (from timers, loads and unloads), in order.
    std::function<void(std::vector<ofp::MeterMod>, std::vector<ofp::FlowMod>)> send;
    // A script was disabled (an error, a loop, its memory): for the log and the UI.
    std::function<void(const std::string& name, const std::string& why)> disabled;
    std::function<void(const std::string& name, const std::string& line)> log;
  };

  ScriptHost(const decide::ViewHolder& views, Hooks hooks, script::Limits limits = {});
  // The binary a helper process runs (`<exe> --script-helper`): cellwalld itself by default.
  void setHelperExe(std::string exe) { helper_exe_ = std::move(exe); }
  ~ScriptHost() override;

  // Loads a script, or replaces the one of that name (whose flows and meters are removed, and
  // whose state is gone: a reload starts afresh). On failure the old one keeps running.
  // `text`: the script's text when it is not (yet) in spec.path.
  Expected<void> load(const Spec& spec, const std::string* text = nullptr);
  Expected<void> unload(const std::string& name);
  // Reads the script's file again (the same spec): after an edit.
  Expected<void> reload(const std::string& name);
  bool loaded(const std::string& name) const;
  bool any() const { return any_.load(std::memory_order_acquire); }
  // Whether the script of that name runs exactly this text (a file event after our own write).
  bool runsText(const std::string& name, const std::string& text) const;
  std::optional<Spec> spec(const std::string& name) const;
  std::vector<Info> list() const;
  // Whether a script flow's id (its cookie's middle field) belongs to a loaded script.
  bool ownsFlowsOf(std::uint32_t script_id) const;

  // Runs the timers that are due; returns when the next one is (monotonic ms, -1: none).
  std::int64_t runTimers();

  // Inspect mode: one packet of an inspected cell through every script's inspect_* functions
  // (switch threads). nullopt: none decided (the packet goes on as its connection was decided).
  std::optional<decide::ScriptVerdict> inspect(const decide::SwitchView& sw, const decide::CellPort& cell,
                                               std::uint32_t in_port, const packet::Frame& f, bool inbound,
                                               decide::Now now, decide::Decision::ScriptRequests& out) override;
  bool anyInspectors() const { return any_inspectors_.load(std::memory_order_acquire); }

  // decide::PacketJudge (switch threads).
  std::optional<decide::ScriptVerdict> judge(const decide::SwitchView& sw, const decide::CellPort& cell,
                                             std::uint32_t in_port, const packet::Frame& f,
                                             bool inbound, decide::Now now,
                                             decide::Decision::ScriptRequests& out) override;

  struct Entry;

 private:
  using Set = std::vector<std::shared_ptr<Entry>>;
  void publish(std::shared_ptr<const Set> set);
  // Asks each script (on_packet... or inspect_*) in order; the first verdict decides.
  std::optional<decide::ScriptVerdict> ask(const decide::SwitchView& sw, const decide::CellPort& cell,
                                           std::uint32_t in_port, const packet::Frame& f, bool inbound,
                                           decide::Now now, decide::Decision::ScriptRequests& out, bool inspect);
  // The flows (and new meters) for a script's requests; what cannot be a flow is logged.
  void toFlows(Entry& e, const script::Effects& fx, const decide::SwitchView* sw,
               std::vector<ofp::MeterMod>& meters, std::vector<ofp::FlowMod>& flows);
  // Counters, logs and a disabled script's report, after a call (the entry's lock held).
  void account(Entry& e, const script::Effects& fx);
  std::vector<ofp::FlowMod> removeAllFlows(const Entry& e, std::vector<ofp::MeterMod>& meters) const;

  const decide::ViewHolder& views_;
  Hooks hooks_;
  script::Limits limits_;
  std::string helper_exe_ = "/proc/self/exe";
  mutable std::mutex mu_;  // set_ and the control thread's changes
  std::shared_ptr<const Set> set_;
  std::atomic<std::uint64_t> generation_{1};
  std::atomic<bool> any_{false};
  std::atomic<bool> any_inspectors_{false};
  std::uint32_t next_id_ = 1;
  std::atomic<std::uint32_t> next_meter_{kScriptMeterBase};
};

inline constexpr std::size_t kMaxScriptBytes = std::size_t{1} << 20;
Expected<std::string> readScriptFile(const std::filesystem::path& p);

// The in-process runner.
std::unique_ptr<ScriptRunner> inProcessRunner(std::unique_ptr<script::Script> s);

}  // namespace cw::daemon
