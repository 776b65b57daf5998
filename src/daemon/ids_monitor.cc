#include "daemon/ids_monitor.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>

#include <spdlog/spdlog.h>

namespace cw::daemon {

IdsMonitor::~IdsMonitor() {
  stop_ = true;
  if (reader_.joinable()) reader_.join();
}

Expected<void> IdsMonitor::start(const std::vector<std::string>& rule_files, const std::string& home_net,
                                 NetOps& ops, Ovs& ovs, std::function<void(std::vector<ids::Alert>)> on_alerts) {
  std::string text;
  for (const auto& f : rule_files) {
    std::ifstream in(f);
    if (!in) return fail("IDS: cannot read rules file " + f + ": " + std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    text += ss.str();
    text += '\n';
  }
  ids::Variables vars = ids::defaultVariables();
  vars["HOME_NET"] = home_net;
  auto compiled = ids::compileRules(text, vars, report_);
  if (!compiled) return fail("IDS: " + compiled.error().message);
  if (report_.loaded == 0) return fail("IDS: no usable rule in " + std::to_string(rule_files.size()) + " file(s)");
  rules_ = std::move(compiled).value();
  for (const auto& s : report_.skipped) spdlog::warn("IDS: rule sid {} at line {} skipped: {}", s.sid, s.line, s.reason);

  auto undo = [&] {
    (void)ovs.delPort(kPort);
    (void)ops.deleteNetns(kNetns);
    (void)ops.deleteLink("", kPort);
  };
  undo();  // what a crashed run left
  Expected<void> r = ops.createNetns(kNetns);
  if (r) r = ops.createVethPair(kPort, "eth0", kNetns, std::nullopt);
  if (r) r = ops.setSysctl(kNetns, "net.ipv6.conf.all.disable_ipv6", "1");
  if (r) r = ops.setSysctl("", "net.ipv6.conf." + std::string(kPort) + ".disable_ipv6", "1");
  if (r) r = ops.setLinkUp(kNetns, "eth0");
  if (r) r = ops.setLinkUp("", kPort);
  if (!r) {
    undo();
    return fail("IDS: cannot make its port: " + r.error().message);
  }
  // The ring is opened inside the namespace, by the reader thread, which stays there.
  std::promise<Expected<void>> opened;
  auto ready = opened.get_future();
  on_alerts_ = std::move(on_alerts);
  stop_ = false;
  reader_ = std::thread([this, &opened] {
    ::pthread_setname_np(::pthread_self(), "cw-ids");  // its CPU time shows in /proc (bench/ids_net.py)
    const std::string path = std::string("/run/netns/") + kNetns;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      opened.set_value(fail("IDS: cannot enter " + path + ": " + std::strerror(errno)));
      if (fd >= 0) ::close(fd);
      return;
    }
    ::close(fd);
    auto ring = capture::Ring::open("eth0");
    if (!ring) {
      opened.set_value(fail("IDS: " + ring.error().message));
      return;
    }
    opened.set_value(Expected<void>{});
    run(std::move(ring).value());
  });
  auto ok = ready.get();
  if (!ok) {
    reader_.join();
    undo();
    return ok;
  }
  auto port = ovs.addPort(kPort);
  if (!port) {
    stop_ = true;
    reader_.join();
    undo();
    return fail("IDS: cannot add its port to the bridge: " + port.error().message);
  }
  ofport_ = *port;
  spdlog::info("IDS: {} rule(s) loaded, {} skipped; watching port {} ({})", report_.loaded, report_.skipped.size(),
               ofport_, kPort);
  return {};
}

void IdsMonitor::run(std::unique_ptr<capture::Ring> ring) {
  ids::Engine engine(rules_);
  std::vector<ids::Alert> alerts;
  auto now_ns = [] {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  };
  std::uint64_t last_stats = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    const std::uint64_t now = now_ns();
    ring->poll(100, [&](Bytes frame, std::uint64_t /*ts_ns*/) { engine.onFrame(frame, now, alerts); });
    if (!alerts.empty()) {
      on_alerts_(std::move(alerts));
      alerts.clear();
    }
    if (now - last_stats > 250'000'000) {  // stats for `cellwall status`, and idle flows out
      engine.expire(now);
      std::lock_guard lock(stats_mu_);
      stats_.engine = engine.stats();
      stats_.ring = ring->stats();
      last_stats = now;
    }
  }
}

void IdsMonitor::stop(NetOps& ops, Ovs& ovs) {
  stop_ = true;
  if (reader_.joinable()) reader_.join();
  if (ofport_ == 0) return;
  (void)ovs.delPort(kPort);
  (void)ops.deleteNetns(kNetns);
  (void)ops.deleteLink("", kPort);
  ofport_ = 0;
}

IdsMonitor::Stats IdsMonitor::stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

}  // namespace cw::daemon
