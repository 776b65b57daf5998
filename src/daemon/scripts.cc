#include "daemon/scripts.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "daemon/script_helper.h"
#include "decide/pipeline.h"
#include "packet/frame.h"

namespace cw::daemon {

namespace {

constexpr std::size_t kRecentLogs = 50;
constexpr std::size_t kMaxMetersPerScript = 256;
constexpr std::size_t kMaxCounters = 256;

class InProcess final : public ScriptRunner {
 public:
  explicit InProcess(std::unique_ptr<script::Script> s) : s_(std::move(s)) {}
  script::Verdict onPacket(const script::Packet& p, script::Effects& out) override { return s_->onPacket(p, out); }
  int runTimers(std::int64_t now_ms, script::Effects& out) override { return s_->runTimers(now_ms, out); }
  std::int64_t nextTimer() const override { return s_->nextTimer(); }
  bool disabled() const override { return s_->disabled(); }
  std::string whyDisabled() const override { return s_->whyDisabled(); }
  std::size_t memoryUsed() const override { return s_->memoryUsed(); }
  std::size_t filters() const override { return s_->filters(); }
  script::Effects takeLoadEffects() override { return s_->takeLoadEffects(); }
  script::Verdict onInspect(const script::Packet& p, script::Effects& out) override { return s_->onInspect(p, out); }
  std::size_t inspectors() const override { return s_->inspectors(); }

 private:
  std::unique_ptr<script::Script> s_;
};

// The names the cell resolved for the remote address, looked up only if a script reads them.
class LazyNames final : public script::Packet::Names {
 public:
  // Nothing is copied or looked up until a script asks: this is built for every call.
  LazyNames(const decide::CellRuntime* rt, const IpAddr* remote, std::int64_t now_ms)
      : rt_(rt), remote_(remote), now_ms_(now_ms) {}
  std::string_view get() const override {
    if (!done_) {
      done_ = true;
      decide::ResolvedNames names(rt_, *remote_, now_ms_);
      for (auto n : names.get()) {
        if (!text_.empty()) text_.push_back(',');
        text_.append(n);
      }
    }
    return text_;
  }

 private:
  const decide::CellRuntime* rt_;
  const IpAddr* remote_;
  std::int64_t now_ms_;
  mutable bool done_ = false;
  mutable std::string text_;
};

std::int64_t unixMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

Expected<std::string> readScriptFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return fail("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > kMaxScriptBytes) return fail(p.string() + ": a script is at most 1 MiB");
  return ss.str();
}

namespace {

policy::Action actionOf(script::Verdict v) {
  return v == script::Verdict::kAllow ? policy::Action::kAllow
         : v == script::Verdict::kReject ? policy::Action::kReject
                                         : policy::Action::kDeny;
}

}  // namespace

std::unique_ptr<ScriptRunner> inProcessRunner(std::unique_ptr<script::Script> s) {
  return std::make_unique<InProcess>(std::move(s));
}

// The lock of one script: taken for every call on the packet path, where a pthread mutex's
// lock and unlock cost more than the rest of the host's share. Spins briefly, then yields
// (a helper-process call can take milliseconds).
class SpinLock {
 public:
  void lock() {
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire); ++spins) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 64) std::this_thread::yield();
      }
    }
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

struct ScriptHost::Entry {
  Spec spec;
  std::string text;
  std::uint32_t id = 0;
  std::int64_t loaded_unix_ms = 0;
  SpinLock mu;  // everything below; held for one call, never contended on a single bridge
  std::unique_ptr<ScriptRunner> runner;
  std::uint64_t calls = 0, allowed = 0, dropped = 0, rejected = 0, flows = 0, inspected = 0;
  std::vector<std::pair<std::string, std::int64_t>> counters;  // in the order first counted
  std::deque<std::string> logs;
  std::map<std::string, std::uint32_t> meters;  // rate and burst -> meter id
  bool reported = false;  // its being disabled was reported
};

ScriptHost::ScriptHost(const decide::ViewHolder& views, Hooks hooks, script::Limits limits)
    : views_(views), hooks_(std::move(hooks)), limits_(limits), set_(std::make_shared<const Set>()) {}

ScriptHost::~ScriptHost() = default;

void ScriptHost::publish(std::shared_ptr<const Set> set) {
  // mu_ held by the caller.
  any_.store(!set->empty(), std::memory_order_release);
  bool inspectors = false;
  for (const auto& e : *set) {
    std::lock_guard el(e->mu);
    inspectors = inspectors || e->runner->inspectors() > 0;
  }
  any_inspectors_.store(inspectors, std::memory_order_release);
  set_ = std::move(set);
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

Expected<void> ScriptHost::load(const Spec& spec, const std::string* given) {
  Expected<std::string> text = given != nullptr ? Expected<std::string>(*given) : readScriptFile(spec.path);
  if (!text) return Unexpected(text.error());
  std::unique_ptr<ScriptRunner> runner;
  if (spec.mode == Mode::kHelper) {
    // The helper's kill-on-parent-death follows the thread that starts it: loads run on the
    // control thread, which lives as long as cellwalld.
    auto r = helperRunner(helper_exe_, spec.name, *text, limits_, spec.settings);
    if (!r) return Unexpected(r.error());
    runner = std::move(r.value());
  } else {
    auto s = script::Script::load(spec.name, *text, limits_, spec.settings);
    if (!s) return Unexpected(s.error());
    runner = inProcessRunner(std::move(s.value()));
  }
  auto e = std::make_shared<Entry>();
  e->spec = spec;
  e->text = *text;
  e->loaded_unix_ms = unixMs();
  e->runner = std::move(runner);
  std::vector<ofp::MeterMod> meters;
  std::vector<ofp::FlowMod> flows;
  {
    std::lock_guard lock(mu_);
    e->id = next_id_++;
    auto next = std::make_shared<Set>(*set_);
    bool replaced = false;
    for (auto& old : *next) {
      if (old->spec.name != spec.name) continue;
      std::lock_guard ol(old->mu);
      for (auto& fm : removeAllFlows(*old, meters)) flows.push_back(std::move(fm));
      old = e;
      replaced = true;
    }
    if (!replaced) next->push_back(e);
    {
      std::lock_guard el(e->mu);
      script::Effects fx = e->runner->takeLoadEffects();
      auto view = views_.current();
      const decide::SwitchView* sw = view->switches.empty() ? nullptr : &view->switches.begin()->second;
      toFlows(*e, fx, sw, meters, flows);
      account(*e, fx);
    }
    publish(std::move(next));
  }
  if ((!meters.empty() || !flows.empty()) && hooks_.send) hooks_.send(std::move(meters), std::move(flows));
  spdlog::info("script {} loaded ({}, {}{})", spec.name, spec.path.string(),
               spec.mode == Mode::kHelper ? "helper process" : "in-process", "");
  return {};
}

Expected<void> ScriptHost::unload(const std::string& name) {
  std::vector<ofp::MeterMod> meters;
  std::vector<ofp::FlowMod> flows;
  {
    std::lock_guard lock(mu_);
    auto next = std::make_shared<Set>();
    bool found = false;
    for (const auto& e : *set_) {
      if (e->spec.name == name) {
        std::lock_guard el(e->mu);
        flows = removeAllFlows(*e, meters);
        found = true;
      } else {
        next->push_back(e);
      }
    }
    if (!found) return fail("no script named '" + name + "' is loaded");
    publish(std::move(next));
  }
  if (hooks_.send) hooks_.send(std::move(meters), std::move(flows));
  spdlog::info("script {} unloaded", name);
  return {};
}

Expected<void> ScriptHost::reload(const std::string& name) {
  auto s = spec(name);
  if (!s) return fail("no script named '" + name + "' is loaded");
  return load(*s);
}

bool ScriptHost::loaded(const std::string& name) const { return spec(name).has_value(); }

bool ScriptHost::runsText(const std::string& name, const std::string& text) const {
  std::lock_guard lock(mu_);
  for (const auto& e : *set_)
    if (e->spec.name == name) return e->text == text;
  return false;
}

std::optional<ScriptHost::Spec> ScriptHost::spec(const std::string& name) const {
  std::lock_guard lock(mu_);
  for (const auto& e : *set_)
    if (e->spec.name == name) return e->spec;
  return std::nullopt;
}

bool ScriptHost::ownsFlowsOf(std::uint32_t script_id) const {
  std::lock_guard lock(mu_);
  for (const auto& e : *set_)
    if (e->id == script_id) return true;
  return false;
}

std::vector<ScriptHost::Info> ScriptHost::list() const {
  std::shared_ptr<const Set> set;
  {
    std::lock_guard lock(mu_);
    set = set_;
  }
  std::vector<Info> out;
  for (const auto& e : *set) {
    std::lock_guard el(e->mu);
    Info i;
    i.name = e->spec.name;
    i.path = e->spec.path.string();
    i.origin = e->spec.origin;
    i.mode = e->spec.mode == Mode::kHelper ? "helper" : "in-process";
    i.state = e->runner->disabled() ? "disabled" : "running";
    i.why = e->runner->whyDisabled();
    i.calls = e->calls;
    i.allowed = e->allowed;
    i.dropped = e->dropped;
    i.rejected = e->rejected;
    i.flows = e->flows;
    i.inspected = e->inspected;
    i.memory = e->runner->memoryUsed();
    i.filters = e->runner->filters();
    i.timers = e->runner->nextTimer() >= 0 ? 1 : 0;
    i.loaded_unix_ms = e->loaded_unix_ms;
    i.counters.assign(e->counters.begin(), e->counters.end());
    i.recent_logs.assign(e->logs.begin(), e->logs.end());
    out.push_back(std::move(i));
  }
  return out;
}

std::int64_t ScriptHost::runTimers() {
  std::shared_ptr<const Set> set;
  {
    std::lock_guard lock(mu_);
    set = set_;
  }
  std::int64_t next = -1;
  std::vector<ofp::MeterMod> meters;
  std::vector<ofp::FlowMod> flows;
  auto view = views_.current();
  const decide::SwitchView* sw = view->switches.empty() ? nullptr : &view->switches.begin()->second;
  for (const auto& e : *set) {
    std::lock_guard el(e->mu);
    if (e->runner->disabled()) continue;
    std::int64_t now = script::monotonicMs();
    if (std::int64_t due = e->runner->nextTimer(); due >= 0 && due <= now) {
      script::Effects fx;
      e->calls += static_cast<std::uint64_t>(e->runner->runTimers(now, fx));
      toFlows(*e, fx, sw, meters, flows);
      account(*e, fx);
    }
    if (std::int64_t due = e->runner->nextTimer(); due >= 0 && (next < 0 || due < next)) next = due;
  }
  if ((!meters.empty() || !flows.empty()) && hooks_.send) hooks_.send(std::move(meters), std::move(flows));
  return next;
}

std::optional<decide::ScriptVerdict> ScriptHost::judge(const decide::SwitchView& sw, const decide::CellPort& cell,
                                                       std::uint32_t in_port, const packet::Frame& f,
                                                       bool inbound, decide::Now now,
                                                       decide::Decision::ScriptRequests& out) {
  if (!any_.load(std::memory_order_acquire)) return std::nullopt;
  return ask(sw, cell, in_port, f, inbound, now, out, false);
}

std::optional<decide::ScriptVerdict> ScriptHost::inspect(const decide::SwitchView& sw, const decide::CellPort& cell,
                                                         std::uint32_t in_port, const packet::Frame& f,
                                                         bool inbound, decide::Now now,
                                                         decide::Decision::ScriptRequests& out) {
  if (!any_inspectors_.load(std::memory_order_acquire)) return std::nullopt;
  return ask(sw, cell, in_port, f, inbound, now, out, true);
}

std::optional<decide::ScriptVerdict> ScriptHost::ask(const decide::SwitchView& sw, const decide::CellPort& cell,
                                                     std::uint32_t in_port, const packet::Frame& f, bool inbound,
                                                     decide::Now now, decide::Decision::ScriptRequests& out,
                                                     bool inspect) {
  // This thread's copy of the set: refreshed only when it changed.
  struct Cache {
    const ScriptHost* host = nullptr;
    std::uint64_t generation = 0;
    std::shared_ptr<const Set> set;
  };
  thread_local Cache cache;
  const std::uint64_t g = generation_.load(std::memory_order_acquire);
  if (cache.host != this || cache.generation != g) {
    std::lock_guard lock(mu_);
    cache.host = this;
    cache.generation = generation_.load(std::memory_order_acquire);
    cache.set = set_;
  }
  // Scripts read the frame at ETH_HEADER_LEN (14): untagged only (table 0 admits no other).
  if (!f.isIpv4() || f.vlan_count != 0) return std::nullopt;
  script::Packet p;
  p.frame = std::string_view(reinterpret_cast<const char*>(f.raw.data()), f.raw.size());
  p.cell = cell.cell_id;
  p.app = cell.app;
  p.in_port = in_port;
  p.ip_src = f.ip_src.v4().v;
  p.ip_dst = f.ip_dst.v4().v;
  p.proto = f.ip_proto;
  if (f.l4 == packet::L4::kTcp || f.l4 == packet::L4::kUdp) {
    p.port_src = f.src_port;
    p.port_dst = f.dst_port;
  }
  p.tcp_flags = f.l4 == packet::L4::kTcp ? f.tcp_flags : 0;
  p.direction = inbound ? "in" : "out";
  p.now_ms = now.mono_ms;
  LazyNames names(cell.runtime.get(), inbound ? &f.ip_src : &f.ip_dst, now.mono_ms);
  p.names = &names;

  // One Effects per thread, cleared between calls: its vectors keep their memory, so a call
  // that counts or logs allocates nothing in the common case.
  thread_local script::Effects fx;
  for (const auto& e : *cache.set) {
    std::lock_guard el(e->mu);
    ScriptRunner& r = *e->runner;
    if (r.disabled() || (inspect && r.inspectors() == 0)) continue;
    fx.flows.clear();
    fx.removes.clear();
    fx.logs.clear();
    fx.counts.clear();
    script::Verdict v = inspect ? r.onInspect(p, fx) : r.onPacket(p, fx);
    ++e->calls;
    if (inspect) ++e->inspected;
    if (!fx.flows.empty() || !fx.removes.empty()) toFlows(*e, fx, &sw, out.meters, out.flows);
    if (!fx.counts.empty() || !fx.logs.empty() || r.disabled()) account(*e, fx);
    if (v == script::Verdict::kContinue) continue;
    (v == script::Verdict::kAllow ? e->allowed : v == script::Verdict::kReject ? e->rejected : e->dropped)++;
    return decide::ScriptVerdict{actionOf(v), e->spec.name};
  }
  return std::nullopt;
}

void ScriptHost::account(Entry& e, const script::Effects& fx) {
  for (const auto& [name, n] : fx.counts) {
    if (name.empty() || name.size() > 64) continue;  // the engine's limit; a helper's answer is checked
    // A few counters per script, looked up by a short name: a vector beats a map here.
    auto it = std::find_if(e.counters.begin(), e.counters.end(), [&name](const auto& c) { return c.first == name; });
    if (it == e.counters.end()) {
      if (e.counters.size() >= kMaxCounters) continue;
      it = e.counters.insert(e.counters.end(), {name, 0});
    }
    it->second += n;
  }
  for (const auto& line : fx.logs) {
    e.logs.push_back(line.size() > 1024 ? line.substr(0, 1024) : line);
    if (e.logs.size() > kRecentLogs) e.logs.pop_front();
    if (hooks_.log) hooks_.log(e.spec.name, e.logs.back());
  }
  if (!e.reported && e.runner->disabled()) {
    e.reported = true;
    if (hooks_.disabled) hooks_.disabled(e.spec.name, e.runner->whyDisabled());
  }
}

void ScriptHost::toFlows(Entry& e, const script::Effects& fx, const decide::SwitchView* sw,
                         std::vector<ofp::MeterMod>& meters, std::vector<ofp::FlowMod>& flows) {
  using script::FlowRequest;
  for (const auto& r : fx.flows) {
    // The engine refuses these already; a helper process's answer is checked again here, as a
    // helper whose Lua was subverted must not place a flow above the inspect-mode flows or
    // give a meter a rate of nothing.
    const bool limit = r.action == FlowRequest::Action::kLimit;
    if (r.priority > 999 || r.match.src_len > 32 || r.match.dst_len > 32 ||
        (limit && (r.rate_pps == 0) == (r.rate_kbps == 0)) ||
        static_cast<std::uint8_t>(r.action) > static_cast<std::uint8_t>(FlowRequest::Action::kLimit)) {
      if (hooks_.log) hooks_.log(e.spec.name, "a flow request out of range was refused: " + r.match.str());
      continue;
    }
    ofp::Match m;
    m.ethType(packet::kEthIpv4);
    if (r.match.cell != 0) {
      // Packets from that cell: its port (a cell that is gone has nothing left to match).
      // Also by its address (anti-spoofing makes it the only source its port has): the flow
      // then ends with the cell, as every script flow naming a cell's address does.
      const decide::CellPort* cell = nullptr;
      if (sw != nullptr)
        for (const auto& [p, c] : sw->cells_by_port)
          if (c.cell_id == r.match.cell) cell = &c;
      if (cell == nullptr) {
        if (hooks_.log) hooks_.log(e.spec.name, "flow for cell " + std::to_string(r.match.cell) + " skipped: no such cell");
        continue;
      }
      m.inPort(cell->ofport);
      if (r.match.src_len == 0) m.ipv4Src(cell->ip);
    }
    auto mask = [](std::uint8_t len) { return Ip4{len == 0 ? 0u : ~std::uint32_t{0} << (32 - len)}; };
    if (r.match.src_len != 0) m.ipv4Src(Ip4{r.match.ip_src}, mask(r.match.src_len));
    if (r.match.dst_len != 0) m.ipv4Dst(Ip4{r.match.ip_dst}, mask(r.match.dst_len));
    std::vector<ofp::Instruction> ins;
    if (r.action == FlowRequest::Action::kLimit) {
      // One meter per distinct rate: a script that limits many matches alike shares it.
      std::string key = std::to_string(r.rate_pps) + "/" + std::to_string(r.rate_kbps) + "/" + std::to_string(r.burst);
      auto it = e.meters.find(key);
      if (it == e.meters.end()) {
        if (e.meters.size() >= kMaxMetersPerScript) {
          if (hooks_.log) hooks_.log(e.spec.name, "limit skipped: more than 256 distinct rates");
          continue;
        }
        ofp::MeterMod mm;
        mm.command = ofp::MeterModCommand::kAdd;
        mm.meter_id = next_meter_.fetch_add(1, std::memory_order_relaxed);
        mm.flags = static_cast<std::uint16_t>((r.rate_pps != 0 ? ofp::kMeterPktps : ofp::kMeterKbps) |
                                              (r.burst != 0 ? ofp::kMeterBurst : 0) | ofp::kMeterStats);
        mm.bands.push_back({r.rate_pps != 0 ? r.rate_pps : r.rate_kbps, r.burst});
        meters.push_back(mm);
        it = e.meters.emplace(key, mm.meter_id).first;
      }
      ins.emplace_back(ofp::InstrMeter{it->second});
      ins.emplace_back(ofp::InstrGotoTable{decide::kTableConn});
    } else if (r.action == FlowRequest::Action::kAllow) {
      ins.emplace_back(ofp::InstrGotoTable{decide::kTableConn});
    }
    auto add = [&](std::uint8_t proto) {
      ofp::FlowMod fm;
      fm.table_id = decide::kTableScript;
      fm.priority = static_cast<std::uint16_t>(decide::kPrioScriptBase + r.priority);
      fm.idle_timeout = r.idle;
      fm.hard_timeout = r.hard;
      fm.cookie = decide::makeCookie(decide::CookieKind::kScript, e.id, r.cookie);
      fm.match = m;
      if (proto != 0) {
        fm.match.ipProto(proto);
        if (proto == packet::kProtoTcp) {
          if (r.match.port_src != 0) fm.match.tcpSrc(r.match.port_src);
          if (r.match.port_dst != 0) fm.match.tcpDst(r.match.port_dst);
        } else if (proto == packet::kProtoUdp) {
          if (r.match.port_src != 0) fm.match.udpSrc(r.match.port_src);
          if (r.match.port_dst != 0) fm.match.udpDst(r.match.port_dst);
        }
      }
      fm.instructions = ins;
      flows.push_back(std::move(fm));
      ++e.flows;
    };
    const bool ports = r.match.port_src != 0 || r.match.port_dst != 0;
    if (r.match.proto != 0) {
      add(r.match.proto);
    } else if (ports) {
      add(packet::kProtoTcp);  // a port without a protocol: both that have ports
      add(packet::kProtoUdp);
    } else {
      add(0);
    }
  }
  for (std::uint32_t c : fx.removes) {
    ofp::FlowMod del;
    del.command = ofp::FlowModCommand::kDelete;
    del.table_id = decide::kTableScript;
    del.cookie = decide::makeCookie(decide::CookieKind::kScript, e.id, c);
    del.cookie_mask = ~std::uint64_t{0};
    flows.push_back(std::move(del));
  }
}

std::vector<ofp::FlowMod> ScriptHost::removeAllFlows(const Entry& e, std::vector<ofp::MeterMod>& meters) const {
  ofp::FlowMod del;
  del.command = ofp::FlowModCommand::kDelete;
  del.table_id = decide::kTableScript;
  del.cookie = decide::makeCookie(decide::CookieKind::kScript, e.id, 0);
  del.cookie_mask = decide::kCookieKindMask | decide::kCookieCellMask;
  // The flows first, then their meters.
  std::vector<ofp::FlowMod> out{del};
  for (const auto& [key, id] : e.meters) {
    ofp::MeterMod mm;
    mm.command = ofp::MeterModCommand::kDelete;
    mm.meter_id = id;
    meters.push_back(mm);
  }
  return out;
}

}  // namespace cw::daemon
