#include "daemon/daemon.h"

#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unordered_set>

#include <asio.hpp>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "api/commands.h"
#include "attrib/proc_info.h"
#include "common/cgroup.h"
#include "daemon/attribution.h"
#include "daemon/auto_rules.h"
#include "daemon/ids_monitor.h"
#include "daemon/cell_table.h"
#include "daemon/env_admin.h"
#include "daemon/gateways.h"
#include "daemon/switch_channel.h"
#include "daemon/prompts.h"
#include "daemon/rule_counters.h"
#include "daemon/rules.h"
#include "daemon/script_admin.h"
#include "daemon/scripts.h"
#include "daemon/web_ui.h"
#include "vm/accel.h"
#include "store/store.h"
#include "decide/pipeline.h"
#include "decide/rule_flows.h"
#include "netdev/net_ops.h"
#include "netdev/system_runner.h"
#include "ovs/ovs.h"
#include "packet/frame.h"
#include "path/observer.h"
#include "path/packet_path.h"

namespace cw::daemon {

namespace {

using decide::CellPort;
using decide::GatewayPort;
using decide::Now;
using path::clockNow;

// The policy language's rule for app names (docs/policy.md).
bool validAppName(const std::string& s) {
  if (s.empty() || s.size() > 32 || s[0] == '-' || s[0] == '.') return false;
  for (char ch : s)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
      return false;
  return true;
}


bool processAlive(std::int64_t pid) { return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == 0; }

// Why a connection has no process, when that is known: a VM cell's guest runs its own kernel,
// and attribution reads the host's.
std::string noProcessNote(bool vm_cell) { return vm_cell ? "not visible (VM cell)" : ""; }

api::ProcessRef processRefOf(const decide::ProcessInfo& p) {
  return api::ProcessRef{p.pid, p.uid, p.user, p.exe.empty() && p.exited ? "[" + p.comm + "]" : p.exe,
                         p.cmdline, p.exited, ""};
}

api::LogEntry logEntryOf(const store::LogRow& row) {
  api::LogEntry e;
  e.id = row.id;
  e.time_ms = row.time_ms;
  e.app = row.app;
  e.cell = static_cast<std::uint32_t>(std::strtoul(row.cell.c_str(), nullptr, 10));
  e.proto = row.proto;
  e.remote_ip = row.remote_ip;
  e.remote_port = row.remote_port;
  e.names = row.names;
  e.verdict = row.verdict;
  e.rule_id = row.rule_id;
  e.reason = row.reason;
  e.packets = row.packets;
  e.bytes = row.bytes;
  e.process = api::ProcessRef{row.pid, row.uid, row.user, row.exe, row.cmdline,
                              !row.exe.empty() && row.exe.front() == '[', row.note};
  return e;
}

// What the web UI may do: look at everything, change rules, answer prompts. Not: start or end
// cells, stop the daemon, or replace a whole policy (the command line does those).
bool webAllowed(const api::Command& cmd) {
  return std::holds_alternative<api::CellList>(cmd) || std::holds_alternative<api::Status>(cmd) ||
         std::holds_alternative<api::RulesList>(cmd) || std::holds_alternative<api::RuleAdd>(cmd) ||
         std::holds_alternative<api::RuleRemove>(cmd) || std::holds_alternative<api::RuleReplace>(cmd) ||
         std::holds_alternative<api::RulesExplain>(cmd) || std::holds_alternative<api::PolicyExport>(cmd) ||
         std::holds_alternative<api::LogQuery>(cmd) || std::holds_alternative<api::NamesQuery>(cmd) ||
         std::holds_alternative<api::PromptList>(cmd) || std::holds_alternative<api::PromptAnswer>(cmd) ||
         std::holds_alternative<api::ScriptList>(cmd) ||
         std::holds_alternative<api::ScriptReload>(cmd);
}

}  // namespace

struct Daemon::Impl {
  explicit Impl(Config c)
      : cfg(std::move(c)),
        ops(runner),
        cells(cfg.state_dir),
        attribution(cfg.attribution == "off"      ? AttributionMode::kOff
                    : cfg.attribution == "always" ? AttributionMode::kAlways
                                                  : AttributionMode::kRules) {}

  Config cfg;
  SystemRunner runner;
  NetOps ops;
  std::unique_ptr<Ovs> ovs;
  Gateways gateways;
  EnvAdmin env_admin{cfg, gateways, ops};
  CellTable cells;
  std::unique_ptr<sw::SwitchServer> server;
  decide::ViewHolder views;
  path::Observer observer;
  Attribution attribution;
  IdsMonitor ids_monitor;
  path::PacketPath packets{views, {}, &observer};
  std::unique_ptr<store::Store> db;
  std::unique_ptr<RuleBook> rules;
  Prompts prompts;
  WebUi ui;
  bool stopping = false;
  std::uint64_t log_failures = 0;

  std::shared_ptr<decide::CellRuntime> newRuntime() {
    names::Limits l;
    l.hash_seed = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
    return std::make_shared<decide::CellRuntime>(l);
  }

  // Each app's policy epoch (docs/pipeline.md): the connections its cells decided carry it in
  // their conntrack mark, and only those of the current epoch pass the switch on their own.
  // They start from the clock, so connections a previous daemon decided are decided again.
  std::map<std::string, std::uint32_t> epochs;
  std::uint32_t epoch_start = decide::nextEpoch(static_cast<std::uint32_t>(clockNow().unix_ms / 1000));
  std::uint32_t epochOf(const std::string& app) { return epochs.try_emplace(app, epoch_start).first->second; }

  // After the rules of `apps` changed (null: of every app; a rule ran out and which app's it was
  // is not known here): their cells' epoch moves and their verdict flows are replaced, so each
  // open connection's next packet goes to the controller, which decides it again under the
  // rules now in force — as an open connection: counts are neither checked nor charged, a
  // script's or a prompt's verdict stays. Those the rules no longer allow are cut there and
  // then (committed as denied: their later packets are dropped by the switch); the others go
  // on. Nothing happens to apps without cells.
  void redecide(const std::optional<std::vector<std::string>>& apps, const char* why) {
    std::vector<std::uint32_t> ids;
    std::set<std::string> moved;
    for (const auto& [id, c] : cells.all()) {
      const std::string& app = c.info.app;
      if (apps && std::find(apps->begin(), apps->end(), app) == apps->end()) continue;
      if (moved.insert(app).second) epochs[app] = decide::nextEpoch(epochOf(app));
      ids.push_back(id);
    }
    if (ids.empty()) return;
    publish();
    std::string list;
    for (const auto& a : moved) list += (list.empty() ? "'" : ", '") + a + "'";
    spdlog::info("{}: the open connections of {} are decided again under the rules in force", why, list);
    sendFlowsOf(ids, false);
  }
  // The flows of cells `ids` as the current view says, on the bridge's thread (sendCellFlows).
  void sendFlowsOf(std::vector<std::uint32_t> ids, bool all) {
    auto s = bridge();
    if (!s) return;
    s->post([this, s, view = views.current(), ids = std::move(ids), all] {
      const decide::SwitchView* sv = view->find(s->datapathId());
      if (sv == nullptr || s->version() != ofp::Version::kOf13) return;
      for (const auto& [port, c] : sv->cells_by_port) {
        if (std::find(ids.begin(), ids.end(), c.cell_id) == ids.end()) continue;
        if (const GatewayPort* gw = sv->gatewayFor(c.env)) sendCellFlows(*s, *sv, c, *gw, all);
      }
    });
  }
  void redecide(const std::string& app, const char* why) { redecide(std::vector<std::string>{app}, why); }

  void cellsChanged() {
    std::vector<api::CellInfo> list;
    for (const auto& [id, rec] : cells.all()) list.push_back(rec.info);
    ui.cells(list);
  }

  // Every 250 ms: the decisions queued by the packet path go to the log and the connection
  // counts; rules whose time is up go; old names are dropped.
  void tick(asio::steady_timer& timer) {
    timer.expires_after(std::chrono::milliseconds(250));
    timer.async_wait([this, &timer](const asio::error_code& ec) {
      if (ec) return;
      Now now = clockNow();
      auto events = observer.drain();
      bool changed = false;
      std::vector<store::LogRow> rows;
      rows.reserve(events.size());
      for (auto& e : events) {
        if (e.counted_rule != 0) changed = rules->connectionCounted(e.counted_rule) || changed;
        if (e.app.empty()) continue;
        store::LogRow r;
        r.time_ms = e.time_ms;
        r.app = e.app;
        r.cell = std::to_string(e.cell);
        r.proto = e.proto;
        r.remote_ip = e.remote_ip;
        r.remote_port = e.remote_port;
        r.names = e.names;
        r.verdict = e.verdict;
        r.rule_id = e.rule_id;
        r.reason = e.reason;
        if (e.process) {
          r.pid = e.process->pid;
          r.uid = e.process->uid;
          r.user = e.process->user;
          r.exe = e.process->exited && e.process->exe.empty() ? "[" + e.process->comm + "]" : e.process->exe;
          r.cmdline = e.process->cmdline;
        } else {
          r.note = noProcessNote(e.vm);
        }
        rows.push_back(std::move(r));
      }
      if (!rows.empty()) {
        auto ids = db->appendLog(rows);
        if (!ids) {
          if (log_failures++ % 100 == 0) spdlog::error("connection log: {}", ids.error().message);
        } else {
          std::vector<api::LogEntry> entries;
          entries.reserve(rows.size());
          for (std::size_t i = 0; i < rows.size(); ++i) {
            rows[i].id = (*ids)[i];
            entries.push_back(logEntryOf(rows[i]));
          }
          ui.log(entries);
        }
      }
      auto expired = rules->expire(now.unix_ms);
      if (changed || !expired.empty()) {
        publish();
        ui.rulesChanged("");
      }
      if (!expired.empty()) redecide(std::nullopt, "rules ran out");
      // Every tick: a dead Open vSwitch daemon is restarted within 250 ms, a tunnel that came
      // up is routed within 250 ms.
      superviseOvs();
      for (const auto& e : gateways.supervise()) spdlog::warn("{}", e);
      if (ticks % 4 == 0) {  // every second
        renewRuleLeases();
        std::vector<WebUi::CellIf> ifs;
        for (const auto& [id, c] : cells.all()) ifs.push_back(WebUi::CellIf{id, c.info.app, c.info.ifname_host});
        ui.sampleTraffic(ifs, now.unix_ms);
      }
      if (ticks % 8 == 0 && ui.watched()) {
        if (scripts.any()) ui.scriptsChanged(script_admin.list().scripts);
      }
      for (auto& [id, c] : cells.all()) {
        std::lock_guard lock(c.runtime->mu);
        c.runtime->names.expire(now.mono_ms, 10000);
      }
      if (++ticks % 240 == 0)  // every minute
        (void)db->pruneLog(cfg.log_max_rows, 0, now.unix_ms);
      auto timed_out = prompts.expired(now.mono_ms);
      if (!timed_out.empty()) wakePromptWaiters();
      for (auto& q : timed_out) {
        spdlog::info("prompt #{} ({} {} {}:{}) unanswered: {}", q.id, q.app, policy::protocolName(q.proto),
                     q.remote.str(), q.port, policy::actionName(q.timeout_action));
        const decide::HeldVerdict v{q.timeout_action, decide::Reason::kPromptTimeout};
        releaseQuestion(std::move(q), v);
      }
      tick(timer);
    });
  }
  std::uint64_t ticks = 0;
  std::uint64_t generation = 0;
  asio::io_context control;
  std::unique_ptr<asio::local::stream_protocol::acceptor> acceptor;

  // ---- scripts ----
  // What scripts asked to put on the bridge while it was not connected: sent when it is.
  std::vector<std::pair<std::vector<ofp::MeterMod>, std::vector<ofp::FlowMod>>> pending_script_flows;
  std::mutex pending_mu;
  ScriptHost scripts{views, scriptHooks()};
  ScriptAdmin script_admin{scripts, cfg, control};

  ScriptHost::Hooks scriptHooks() {
    ScriptHost::Hooks h;
    h.send = [this](std::vector<ofp::MeterMod> meters, std::vector<ofp::FlowMod> flows) {
      auto s = server && ovs ? bridge() : nullptr;
      if (!s || !s->isConnected()) {
        std::lock_guard lock(pending_mu);
        pending_script_flows.emplace_back(std::move(meters), std::move(flows));
        return;
      }
      s->post([s, meters = std::move(meters), flows = std::move(flows)] {
        for (const auto& mm : meters) s->send(mm);
        for (const auto& fm : flows) s->sendFlowMod(fm);
      });
    };
    h.disabled = [this](const std::string& name, const std::string& why) {
      spdlog::warn("script {} disabled: {}; traffic goes on without it (cellwall script reload {} "
                   "runs it again)", name, why, name);
      asio::post(control, [this] { scriptsChanged(api::Reply{}); });
    };
    h.log = [this](const std::string& name, const std::string& line) {
      // At most 20 lines a second from all scripts reach the journal; every line is in
      // `cellwall script status` (the newest 50 per script).
      std::int64_t sec = clockNow().mono_ms / 1000;
      std::lock_guard lock(script_log_mu);
      if (sec != script_log_second) {
        if (script_log_skipped > 0) spdlog::info("scripts: {} more log lines not shown", script_log_skipped);
        script_log_second = sec;
        script_log_lines = 0;
        script_log_skipped = 0;
      }
      if (++script_log_lines <= 20) spdlog::info("script {}: {}", name, line);
      else ++script_log_skipped;
    };
    return h;
  }
  std::mutex script_log_mu;
  std::int64_t script_log_second = 0;
  int script_log_lines = 0, script_log_skipped = 0;

  void flushPendingScriptFlows(sw::Switch& s) {
    std::vector<std::pair<std::vector<ofp::MeterMod>, std::vector<ofp::FlowMod>>> pending;
    {
      std::lock_guard lock(pending_mu);
      pending.swap(pending_script_flows);
    }
    for (const auto& [meters, flows] : pending) {
      for (const auto& mm : meters) s.send(mm);
      for (const auto& fm : flows) s.sendFlowMod(fm);
    }
  }

  // ---- prompts (docs/prompts.md) ----
  struct Client;  // a control connection (below)
  struct PromptWaiter {
    std::shared_ptr<Client> c;
    std::uint64_t after = 0;
    std::shared_ptr<asio::steady_timer> timer;
  };
  std::vector<PromptWaiter> prompt_waiters;

  bool idsWatches(const std::string& app) const {
    return ids_monitor.running() &&
           (cfg.ids_apps.empty() || std::find(cfg.ids_apps.begin(), cfg.ids_apps.end(), app) != cfg.ids_apps.end());
  }

  // Control thread: what the IDS found. Each alert denies the process that raised it (or, not
  // attributed, the connection's destination) in its app, and its connections are decided
  // again at once: the offending process's flows are cut, the others' stay. K such rules for
  // processes of one user become one rule for the user.
  void onAlerts(const std::vector<ids::Alert>& alerts) {
    Now now = clockNow();
    std::vector<store::LogRow> rows;
    std::set<std::string> apps;
    for (const auto& a : alerts) {
      const CellRecord* cell = nullptr;
      for (const auto& [id, c] : cells.all())
        if (a.src.is_v4() && c.ip == a.src.v4()) cell = &c;
      if (cell == nullptr) {
        spdlog::warn("IDS sid {} \"{}\": {} -> {}: from no cell (gone already)", a.sid, a.msg, a.src.str(), a.dst.str());
        continue;
      }
      const std::string app = cell->info.app;
      std::shared_ptr<const decide::ProcessInfo> who;
      if (attribution.mode() != AttributionMode::kOff && a.dst.is_v4()) {
        decide::CellPort cp;
        cp.cell_id = cell->info.id;
        who = attribution.find(cp, decide::ConnTuple{a.proto, a.src.v4(), a.dst.v4(), a.sport, a.dport, false});
      }
      store::LogRow row;
      row.time_ms = now.unix_ms;
      row.app = app;
      row.cell = std::to_string(cell->info.id);
      row.proto = a.proto == packet::kProtoTcp ? "tcp" : a.proto == packet::kProtoUdp ? "udp" : "ip";
      row.remote_ip = a.dst.str();
      row.remote_port = a.dport;
      row.verdict = "alert";
      row.reason = "ids:" + std::to_string(a.sid) + " " + a.msg;
      if (who) {
        row.pid = who->pid;
        row.uid = who->uid;
        row.user = who->user;
        row.exe = who->exe.empty() ? "[" + who->comm + "]" : who->exe;
        row.cmdline = who->cmdline;
      } else {
        row.note = noProcessNote(cell->info.backend == "vm");
      }
      rows.push_back(row);
      const auto existing = rules->list(app);
      if (who && alreadyDenied(existing, *who)) continue;
      auto text = policy::exportRule(autoRuleFor(a, who.get()));
      auto added = rules->addRule(app, text, kIdsOrigin, now.unix_ms);
      if (!added) {
        spdlog::error("IDS sid {}: cannot add its rule for '{}': {}", a.sid, app, added.error().message);
        continue;
      }
      spdlog::warn("IDS sid {} \"{}\" in cell {} ({}): rule {} denies {}", a.sid, a.msg, cell->info.id, app,
                   added->id, who ? (who->exe.empty() ? who->comm : who->exe) + " pid " + std::to_string(who->pid)
                                  : a.dst.str() + ":" + std::to_string(a.dport));
      apps.insert(app);
      if (auto fold = foldAutoRules(rules->list(app), cfg.ids_fold)) {
        auto user_rule = rules->addRule(app, policy::exportRule(fold->rule), kIdsFoldOrigin, now.unix_ms);
        if (!user_rule) {
          spdlog::error("IDS: cannot fold the rules of uid {}: {}", fold->uid, user_rule.error().message);
          continue;
        }
        for (auto id : fold->remove) (void)rules->removeRule(id);
        spdlog::warn("IDS: {} processes of uid {} in '{}' raised alerts: rule {} denies the user, replacing rules {}",
                     fold->remove.size(), fold->uid, app, user_rule->id, fmt::join(fold->remove, ", "));
      }
    }
    if (!rows.empty()) {
      if (auto ids_done = db->appendLog(rows)) {
        std::vector<api::LogEntry> entries;
        for (std::size_t i = 0; i < rows.size(); ++i) {
          rows[i].id = (*ids_done)[i];
          entries.push_back(logEntryOf(rows[i]));
        }
        ui.log(entries);
      }
    }
    if (apps.empty()) return;
    publish();
    for (const auto& app : apps) {
      redecide(app, "IDS rules added");  // the offending process's open connections are cut now
      ui.rulesChanged(app);
    }
  }

  // A switch thread: a connection no rule covers, of an app that asks.
  void onHeld(const decide::CellPort& cell, const decide::Decision& d, const packet::Frame& f,
              std::uint64_t dpid, std::uint32_t in_port, Now now) {
    const policy::AppPolicy& pol = cell.policy->matcher->policy();
    Prompts::Ask a;
    a.app = cell.app;
    a.cell_id = cell.cell_id;
    a.proto = decide::protocolOf(f);
    a.remote = f.ip_dst;
    const bool ports = a.proto == policy::Protocol::kTcp || a.proto == policy::Protocol::kUdp;
    a.port = ports ? f.dst_port : 0;
    a.local_port = ports ? f.src_port : 0;
    a.names = d.names;
    a.process = d.process;
    a.vm = cell.vm;
    a.now_unix_ms = now.unix_ms;
    a.now_mono_ms = now.mono_ms;
    a.timeout_ms = pol.prompt_timeout_ms;
    a.timeout_action = pol.prompt_timeout_action;
    HeldPacket h{dpid, in_port, std::vector<std::uint8_t>(f.raw.begin(), f.raw.end())};
    if (prompts.hold(a, h) != Prompts::Held::kFull) return;
    // At the bounds (questions or bytes held): the timeout action at once, logged as a timeout.
    Question alone;
    alone.held.push_back(std::move(h));
    releaseQuestion(std::move(alone), decide::HeldVerdict{pol.prompt_timeout_action, decide::Reason::kPromptTimeout});
  }

  // Decides the question's held packets again on their switch's thread: by `v`, or by the
  // policy as it now is (an answer that made a rule).
  void releaseQuestion(Question q, std::optional<decide::HeldVerdict> v) {
    for (auto& h : q.held) {
      auto s = server->find(h.dpid);
      if (!s) continue;
      s->post([this, s, h = std::move(h), v] { packets.release(*s, h.in_port, h.frame, v ? &*v : nullptr); });
    }
  }

  api::Reply promptReply() {
    api::Reply r;
    r.version = prompts.version();
    const std::int64_t mono = clockNow().mono_ms;
    for (const auto& q : prompts.list()) {
      api::PromptInfo p;
      p.id = q.id;
      p.app = q.app;
      p.cell = q.cell_id;
      p.proto = policy::protocolName(q.proto);
      p.remote_ip = q.remote.str();
      p.remote_port = q.port;
      p.names = q.names;
      p.asked_ms = q.asked_unix_ms;
      p.timeout_in_ms = std::max<std::int64_t>(0, q.deadline_mono_ms - mono);
      p.timeout_action = policy::actionName(q.timeout_action);
      p.connections = q.connections;
      if (q.process)
        p.process = processRefOf(*q.process);
      else
        p.process.note = noProcessNote(q.vm);
      r.prompts.push_back(std::move(p));
    }
    return r;
  }

  // Control thread: answers everyone waiting for news of the prompts.
  void wakePromptWaiters() {
    ui.prompts(promptReply());
    const std::uint64_t v = prompts.version();
    std::vector<PromptWaiter> ready;
    std::erase_if(prompt_waiters, [&](PromptWaiter& w) {
      if (v <= w.after) return false;
      ready.push_back(w);
      return true;
    });
    for (auto& w : ready) {
      w.timer->cancel();
      reply(w.c, promptReply());
    }
  }

  void listPrompts(const std::shared_ptr<Client>& c, const api::PromptList& pl) {
    if (pl.wait_ms == 0 || prompts.version() > pl.after_version) {
      reply(c, promptReply());
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(control);
    timer->expires_after(std::chrono::milliseconds(std::min<std::uint32_t>(pl.wait_ms, 60000)));
    prompt_waiters.push_back(PromptWaiter{c, pl.after_version, timer});
    timer->async_wait([this, c, timer](const asio::error_code& ec) {
      if (ec) return;  // cancelled: wakePromptWaiters answered
      std::erase_if(prompt_waiters, [&](const PromptWaiter& w) { return w.timer == timer; });
      reply(c, promptReply());
    });
  }

  // An answer: a rule (persisted, like any other) unless it is for these connections only.
  api::Reply answerPrompt(const api::PromptAnswer& a) {
    const std::optional<Question> q = prompts.find(a.id);
    if (!q) return api::Reply::failed("no open question #" + std::to_string(a.id) +
                                      " (answered, timed out, or its cell exited)");
    const auto parsed = policy::actionFromName(a.action);
    if (!parsed) return api::Reply::failed("answer: action '" + a.action + "' is not allow, deny or reject");
    const policy::Action action = *parsed;

    if (a.connections)
      if (auto why = policy::connectionsProblem(*a.connections)) return api::Reply::failed("answer: " + *why);
    const std::int64_t now = clockNow().unix_ms;
    if (a.lifetime == "once" && !a.connections) {
      auto taken = prompts.take(a.id);
      if (!taken) return api::Reply::failed("question #" + std::to_string(a.id) + " closed meanwhile");
      spdlog::info("prompt #{} answered: {} once", a.id, a.action);
      releaseQuestion(std::move(*taken), decide::HeldVerdict{action, decide::Reason::kPromptAnswer});
      return promptReply();
    }

    std::string text = "[[rule]]\naction = \"" + a.action + "\"\n";
    if (q->proto != policy::Protocol::kAny)
      text += "proto = \"" + std::string(policy::protocolName(q->proto)) + "\"\n";
    std::vector<std::string> names;
    for (std::size_t at = 0; at < q->names.size();) {
      std::size_t comma = q->names.find(',', at);
      if (comma == std::string::npos) comma = q->names.size();
      if (comma > at) names.push_back(q->names.substr(at, comma - at));
      at = comma + 1;
    }
    if (a.scope == "ip") {
      text += "to = \"" + q->remote.str() + "\"\n";
    } else if (a.scope == "host" || a.scope == "domain") {
      std::string name = a.host.empty() ? (names.empty() ? "" : names.front()) : a.host;
      if (name.empty())
        return api::Reply::failed("answer: the cell resolved no name for " + q->remote.str() +
                                  "; answer for the address (scope ip)");
      if (std::find(names.begin(), names.end(), name) == names.end())
        return api::Reply::failed("answer: the cell did not resolve " + name + " to " + q->remote.str() +
                                  " (it resolved: " + (q->names.empty() ? "nothing" : q->names) + ")");
      if (a.scope == "host") {
        text += "hosts = [\"" + name + "\"]\n";
      } else {
        // The name's parent domain and everything below it (api.example.org -> example.org,
        // *.example.org); a two-label name is its own domain.
        std::string parent = name;
        if (std::count(name.begin(), name.end(), '.') >= 2) parent = name.substr(name.find('.') + 1);
        text += "hosts = [\"" + parent + "\", \"*." + parent + "\"]\n";
      }
    } else {
      return api::Reply::failed("answer: scope '" + a.scope + "' is not ip, host or domain");
    }
    if (!a.any_port && q->port != 0) text += "ports = " + std::to_string(q->port) + "\n";
    if (a.lifetime == "exit") {
      text += "until = \"exit\"\n";
    } else if (a.lifetime != "forever" && a.lifetime != "once") {
      text += "for = \"" + a.lifetime + "\"\n";
    }
    if (a.connections) text += "connections = " + std::to_string(*a.connections) + "\n";
    text += "comment = \"answer to prompt #" + std::to_string(a.id) + "\"\n";

    auto added = rules->addRule(q->app, text, "prompt", now);
    if (!added) return api::Reply::failed("answer: " + added.error().message);
    publish();
    ui.rulesChanged(q->app);
    auto taken = prompts.take(a.id);
    spdlog::info("prompt #{} answered: rule {} ({})", a.id, added->id, a.action);
    if (taken) releaseQuestion(std::move(*taken), std::nullopt);
    api::Reply r = promptReply();
    r.rules.push_back(*added);
    return r;
  }

  // ---- Conntrack zone limits (docs/pipeline.md, "One cell cannot fill conntrack") ----
  // The cell's zone (its id) holds at most cfg.conntrack_per_cell connections.
  Expected<void> limitConntrack(std::uint32_t id) {
    if (cfg.conntrack_per_cell == 0) return {};
    if (auto r = ovs->setZoneLimit(static_cast<std::uint16_t>(id), cfg.conntrack_per_cell); !r)
      return fail(r.error().message + " (cellwalld limits each cell's connections so that one cell cannot fill "
                  "the conntrack table the others share; conntrack_per_cell = 0 in the config runs without)");
    return {};
  }
  void unlimitConntrack(std::uint32_t id) {
    if (cfg.conntrack_per_cell == 0) return;
    if (auto r = ovs->clearZoneLimit(static_cast<std::uint16_t>(id)); !r)
      spdlog::debug("cell {}: {}", id, r.error().message);
  }
  // Every 5 s: a cell that reached its limit is said once (and again after it went below 90 %).
  void checkConntrack() {
    if (cfg.conntrack_per_cell == 0 || ++conntrack_ticks % 20 != 0) return;
    std::vector<std::uint16_t> zones;
    for (const auto& [id, c] : cells.all()) zones.push_back(static_cast<std::uint16_t>(id));
    auto u = ovs->zoneUsage(zones);
    if (!u) {
      spdlog::debug("{}", u.error().message);
      return;
    }
    conntrack_usage = *u;
    for (const auto& [id, c] : cells.all()) {
      auto it = u->find(static_cast<std::uint16_t>(id));
      if (it == u->end()) continue;
      bool full = it->second.limit != 0 && it->second.count >= it->second.limit;
      bool was = conntrack_full.count(id) != 0;
      if (full && !was) {
        conntrack_full.insert(id);
        spdlog::warn("cell {} ({}): {} connections in conntrack, its limit: its new connections are refused until "
                     "some end (conntrack_per_cell)", id, c.info.app, it->second.count);
      } else if (was && it->second.count < it->second.limit / 10 * 9) {
        conntrack_full.erase(id);
      }
    }
  }
  // What the count flows of cells that ended counted (control thread; until cellwalld stops).
  std::vector<api::RuleCounters> ended_counts;
  unsigned conntrack_ticks = 0;
  std::set<std::uint32_t> conntrack_full;
  std::map<std::uint16_t, ZoneUsage> conntrack_usage;

  // ---- Open vSwitch supervision (docs/ovs.md) ----
  void superviseOvs() {
    auto sup = ovs->supervise(std::chrono::steady_clock::now());
    // In the order they happened: the death, failed attempts, the restart.
    for (const auto& m : sup.warnings) spdlog::warn("{}", m);
    for (const auto& m : sup.errors) spdlog::error("{}", m);
    for (const auto& m : sup.info) spdlog::info("{}", m);
    if (sup.restarted) reattachPorts();
    if (sup.restarted || !sup.warnings.empty() || !sup.errors.empty()) showSwitchState();
    if (ovs->health().state == OvsHealth::State::kUp) checkConntrack();
  }

  // After a restart of Open vSwitch: every port of ours is read back from the bridge. The
  // database keeps their OpenFlow numbers, so they come back the same; one that does not is
  // followed (and said). The switch reconnects by itself and reconcile() reprograms it; a
  // switch that stayed connected (only the database restarted) is reconciled now.
  void reattachPorts() {
    std::size_t same = 0, total = 0;
    bool moved = false;
    auto check = [&](const std::string& ifname, std::uint32_t before, std::uint32_t after, const std::string& error) {
      ++total;
      if (!error.empty()) {
        spdlog::error("Open vSwitch: port {} is not back on {}: {}", ifname, ovs->bridge(), error);
      } else if (after != before) {
        moved = true;
        spdlog::warn("Open vSwitch: port {} came back as OpenFlow port {} (was {}); following it",
                     ifname, after, before);
      } else {
        ++same;
      }
    };
    std::vector<std::uint32_t> ids;
    for (const auto& [id, c] : cells.all()) ids.push_back(id);
    for (auto id : ids) {
      CellRecord* c = cells.find(id);
      auto p = ovs->addPort(c->info.netns);
      check(c->info.netns, c->info.ofport, p ? *p : 0, p ? "" : p.error().message);
      if (p) c->info.ofport = *p;
      // A restarted ovs-vswitchd forgot the zones' limits.
      if (auto r = limitConntrack(id); !r) spdlog::error("cell {}: {}", id, r.error().message);
    }
    for (const auto& g : gateways.replug(*ovs)) check(g.ifname, g.before, g.after, g.error);
    if (ids_monitor.running()) {
      auto p = ovs->addPort(IdsMonitor::kPort);
      check(IdsMonitor::kPort, ids_monitor.ofport(), p ? *p : 0, p ? "" : p.error().message);
      if (p && *p != ids_monitor.ofport())
        spdlog::error("Open vSwitch: the IDS's mirror port moved; the IDS sees nothing until cellwalld restarts");
    }
    spdlog::info("Open vSwitch: {} of {} ports back on their OpenFlow numbers", same, total);
    if (moved) {
      (void)cells.save();
      cellsChanged();
    }
    publish();
    if (auto s = bridge(); s && s->isConnected()) s->post([this, s] { reconcile(*s); });
  }

  static std::string isoTime(std::int64_t unix_ms) {
    std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
  }

  // `cellwall status`'s line: state, who owns it, the channel, and the outages seen.
  std::string ovsStatusLine() const {
    const OvsHealth& h = ovs->health();
    auto s = bridge();
    std::string line = std::string("openvswitch state=") + ovsStateName(h.state) +
                       " mode=" + (ovs->isEmbedded() ? "embedded" : "external") +
                       " bridge=" + (s && s->isConnected() ? "connected" : "disconnected") +
                       " restarts=" + std::to_string(h.restarts);
    if (h.state != OvsHealth::State::kUp) {
      line += " since=" + isoTime(h.since_unix_ms) +
              " down_for=" + std::to_string((clockNow().unix_ms - h.since_unix_ms) / 1000) + "s";
      if (h.attempts > 0) line += " attempts=" + std::to_string(h.attempts);
    } else if (h.last_restart_unix_ms != 0) {
      line += " last_restart=" + isoTime(h.last_restart_unix_ms);
    }
    if (!h.cause.empty()) line += " cause=\"" + h.cause + "\"";
    if (!h.last_error.empty()) line += " last_error=\"" + h.last_error + "\"";
    return line;
  }

  void showSwitchState() {
    const OvsHealth& h = ovs->health();
    std::string text;
    switch (h.state) {
      case OvsHealth::State::kUp:
        if (h.restarts > 0)
          text = "Open vSwitch restarted " + std::to_string(h.restarts) + "× (last at " +
                 isoTime(h.last_restart_unix_ms) + ", after " + h.cause + ")";
        break;
      case OvsHealth::State::kRestarting:
      case OvsHealth::State::kFailing:
        text = "Open vSwitch down since " + isoTime(h.since_unix_ms) + " (" + h.cause + "), restarting" +
               (h.last_error.empty() ? "" : ": " + h.last_error) + ". Cells have no network meanwhile.";
        break;
      case OvsHealth::State::kDown:
        text = "Open vSwitch (not cellwall's) unreachable since " + isoTime(h.since_unix_ms) + ": " + h.last_error +
               ". Nothing new is decided until it is back.";
        break;
    }
    ui.switchState(ovsStateName(h.state), text);
  }

  // ---- view ----
  void publish() {
    auto v = std::make_shared<decide::NetView>();
    v->generation = ++generation;
    decide::SwitchView& sv = v->switches[ovs->datapathId()];
    sv.dpid = ovs->datapathId();
    sv.ids_port = ids_monitor.ofport();
    for (const auto& g : gateways.all()) {
      sv.gateways_by_port[g.port.ofport] = g.port;
      sv.gateway_port_by_env[g.port.env] = g.port.ofport;
    }
    for (const auto& [id, c] : cells.all()) {
      CellPort cp{id, c.info.app, c.info.env, c.info.ofport, c.mac, c.ip, rules->compiled(c.info.app),
                  c.runtime, c.info.inspect, idsWatches(c.info.app), c.info.backend == "vm"};
      cp.epoch = epochOf(c.info.app);
      cp.meter_id = meterId(id);
      cp.switch_rules = switchMayDecide(cp);
      cp.count = cfg.rule_counters == "on";
      cp.log_copies = cfg.log_switch_decided == "on";
      cp.scripts_see_invalid = scripts.any();
      sv.cell_port_by_ip[c.ip.v] = cp.ofport;
      sv.any_inspect = sv.any_inspect || cp.inspect;
      sv.cells_by_port[cp.ofport] = std::move(cp);
    }
    auto old = views.current();
    views.publish(std::move(v));
    retireView(std::move(old));
  }

  // The view publish() replaced dies on this thread, never on a switch thread's packet path,
  // and soon: each switch thread's reader keeps the view it last used until its next Packet-In,
  // which on a quiet bridge may never come, and a replaced policy of 200,000 rules lived on in
  // it. So every switch thread takes the new view now and hands its old one back here; this
  // thread holds the replaced view until all have, then lets go of it last. If a big policy
  // went (trimSoon), the memory it freed is then given back to the system.
  void retireView(std::shared_ptr<const decide::NetView> old) {
    if (!server || server->threadCount() == 0) {
      old.reset();
      if (trim_pending) trimMemory();
      return;
    }
    ++retiring;
    auto left = std::make_shared<unsigned>(server->threadCount());
    auto keep = std::make_shared<std::shared_ptr<const decide::NetView>>(std::move(old));
    server->postToEveryThread([this, left, keep] {
      asio::post(control, [this, left, keep, theirs = packets.renewView()]() mutable {
        theirs.reset();
        if (--*left != 0) return;
        keep->reset();
        if (--retiring == 0 && trim_pending) trimMemory();
      });
    });
  }

  // After a change that dropped (or parsed) thousands of rules: glibc keeps what a program
  // freed for its next allocations, in every thread's arena, so cellwalld's memory stayed at the
  // peak of the biggest policy it ever held (350 MiB after 200,000 rules were replaced by 2:
  // bench/RESULTS.md, section 13). malloc_trim gives the free pages back; it runs here, once
  // the switch threads let go of the old views, not on the packet path.
  static constexpr std::size_t kTrimAfterRules = 10000;
  void trimSoon(std::size_t rules_changed) {
    if (rules_changed >= kTrimAfterRules) trim_pending = true;
  }
  void trimMemory() {
    trim_pending = false;
    const auto t0 = std::chrono::steady_clock::now();
    const long before = residentKib();
    ::malloc_trim(0);
    const long after = residentKib();
    spdlog::info("gave {} MiB back to the system after a large policy change (now {} MiB resident, {} ms)",
                 (before - after) / 1024, after / 1024,
                 std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
  }
  static long residentKib() {
    std::ifstream f("/proc/self/statm");
    long size = 0, resident = 0;
    f >> size >> resident;
    return resident * (::sysconf(_SC_PAGESIZE) / 1024);
  }
  bool trim_pending = false;
  unsigned retiring = 0;

  std::shared_ptr<sw::Switch> bridge() const { return server->find(ovs->datapathId()); }

  // Whether the switch may decide a cell's new connections by its rules' flows (table 6): when
  // nothing but the rules has a say — no script (they are asked first), no inspect mode, no IDS
  // watching the app, no attribution of every connection for the log — and the rules name no
  // process. Whether the policy can be written as flows is ruleFlows' to say.
  bool switchMayDecide(const CellPort& c) const {
    return cfg.decide == "switch" && !c.inspect && !c.ids && !scripts.any() &&
           attribution.mode() != AttributionMode::kAlways && c.policy && c.policy->matcher &&
           !c.policy->matcher->namesProcesses();
  }

  // The flows of a cell's rules, and of its host rules for the names it resolved so far (each
  // for as long as its name table keeps the name).
  decide::RuleFlows ruleFlowsFor(const CellPort& c, const GatewayPort& gw) const {
    const Now now = clockNow();
    decide::RuleFlows made = decide::ruleFlows(*c.policy, c, gw, c.meter_id, now.unix_ms);
    if (made.all_to_controller || !c.runtime) return made;
    std::vector<names::SnapshotEntry> known;
    {
      std::lock_guard lock(c.runtime->mu);
      known = c.runtime->names.snapshot(now.mono_ms);
    }
    // By address: every name the cell has for it at once (two names reaching one rule make the
    // same flow, which must live as long as the longer-lived name).
    std::map<std::uint32_t, std::vector<decide::ResolvedName>> by_ip;
    for (const auto& n : known)
      if (n.ip.is_v4()) by_ip[n.ip.v4().v].push_back(decide::ResolvedName{n.name, n.expires_ms - now.mono_ms});
    for (const auto& [ip, named] : by_ip)
      for (auto& fm : decide::nameFlows(*c.policy, c, gw, c.meter_id, named, Ip4{ip}, now.unix_ms))
        made.flows.push_back(std::move(fm));
    return made;
  }

  // A cell's flows, on the switch's thread: its base flows (`all`), or only what its epoch
  // decides (its verdict flows); and its rules' flows in table 6 when the switch decides its new
  // connections (docs/pipeline.md), after a delete of the ones before: they carry the epoch in
  // the marks they commit, and the policy they were made from may have changed.
  void sendCellFlows(sw::Switch& s, const decide::SwitchView& sv, const CellPort& cell, const GatewayPort& gw,
                     bool all) {
    CellPort c = cell;
    std::vector<ofp::FlowMod> rule_flows;
    if (c.switch_rules) {
      auto made = ruleFlowsFor(c, gw);
      if (made.all_to_controller) {
        c.switch_rules = false;
        spdlog::debug("cell {}: the controller decides its connections: {}", c.cell_id, made.why);
      } else {
        rule_flows = std::move(made.flows);
      }
    }
    if (all) {
      for (const auto& fm : decide::cellBaseFlows(s.version(), c, gw, meterId(c.cell_id), sv.ids_port))
        s.sendFlowMod(fm);
    } else {
      for (const auto& fm : decide::cellVerdictFlows(c, gw)) s.sendFlowMod(fm);
    }
    forgetGoneRuleCounts(s, c);
    // Between this delete and the adds, a new connection goes to the controller, which decides
    // it the same way.
    for (const auto& fm : decide::cellRulesRemove(c)) s.sendFlowMod(fm);
    rules_leased.erase(c.cell_id);
    if (!c.switch_rules) return;
    // The controller hears of none of the connections these flows decide: their count flows now.
    if (!c.log_copies)
      for (std::uint64_t label : decide::allowedLabels(rule_flows)) path::PacketPath::ensureCountFlows(s, c, label);
    for (const auto& fm : rule_flows) s.sendFlowMod(fm);
    for (const auto& fm : decide::cellRulesEntry(c, gw)) s.sendFlowMod(fm);
    rules_leased.insert(c.cell_id);
  }
  // The count flows of rules the cell's policy no longer has go, and their counts with them
  // (docs/pipeline.md, table 7). On the bridge's thread.
  static void forgetGoneRuleCounts(sw::Switch& s, const CellPort& c) {
    if (!c.runtime || !c.policy || !c.policy->matcher) return;
    std::vector<std::uint32_t> counted;
    {
      std::lock_guard lock(c.runtime->mu);
      for (std::uint64_t label : c.runtime->counted)
        if (decide::labelSource(label) == decide::LabelSource::kRule && decide::labelRule(label) != 0)
          counted.push_back(decide::labelRule(label));
    }
    if (counted.empty()) return;
    std::unordered_set<std::uint32_t> ids;
    for (const auto& r : c.policy->matcher->policy().rules) ids.insert(r.id);
    for (std::uint32_t rule : counted) {
      if (ids.contains(rule)) continue;
      {
        std::lock_guard lock(c.runtime->mu);
        c.runtime->counted.erase(decide::labelOf(decide::LabelSource::kRule, rule));
      }
      s.sendFlowMod(decide::cellCountRemove(c, rule));
    }
  }

  // Cells whose rules the switch decides: their entry flows are a lease (kRulesLeaseS) renewed
  // every second. Only on the bridge's thread.
  std::set<std::uint32_t> rules_leased;
  void renewRuleLeases() {
    auto s = bridge();
    if (!s) return;
    s->post([this, s, view = views.current()] {
      const decide::SwitchView* sv = view->find(s->datapathId());
      if (sv == nullptr) return;
      for (auto it = rules_leased.begin(); it != rules_leased.end();) {
        const CellPort* c = nullptr;
        for (const auto& [port, cp] : sv->cells_by_port)
          if (cp.cell_id == *it) c = &cp;
        const GatewayPort* gw = c != nullptr ? sv->gatewayFor(c->env) : nullptr;
        if (gw == nullptr || !c->switch_rules) {  // gone, or no longer the switch's to decide
          it = rules_leased.erase(it);
          continue;
        }
        // Added again with the same match and priority: replaced, its hard timeout starting over.
        for (const auto& fm : decide::cellRulesEntry(*c, *gw)) s->sendFlowMod(fm);
        ++it;
      }
    });
  }

  // Programs everything the view says onto a switch (on its thread). Stale flows (of cells
  // that are gone, or from before a crash) are found in a dump and deleted.
  void reconcile(sw::Switch& s) {
    if (s.version() != ofp::Version::kOf13) {
      spdlog::error("switch {:016x} speaks only OpenFlow 1.0; cellwall's pipeline needs 1.3 "
                    "(two tables, meters): not programming it",
                    s.datapathId());
      return;
    }
    auto view = views.current();
    // Before the first view is published the daemon is still starting; it reconciles the
    // bridge again right after publishing.
    if (view->generation == 0) return;
    const decide::SwitchView* sv = view->find(s.datapathId());
    if (sv == nullptr) {
      spdlog::warn("switch {:016x} is not cellwall's bridge; leaving it alone", s.datapathId());
      return;
    }
    for (const auto& [port, c] : sv->cells_by_port) {
      if (meterId(c.cell_id) != 0) s.send(meterFor(c.cell_id));
    }
    s.dumpFlows(ofp::FlowStatsRequest{}, [this, &s, view, sv](bool ok, std::vector<ofp::FlowStats> flows) {
      if (ok) {
        std::size_t stale = 0;
        for (const auto& f : flows) {
          std::uint32_t cell = decide::cookieCell(f.cookie);
          const auto kind = decide::cookieKind(f.cookie);
          if (kind == decide::CookieKind::kScript) {
            if (scripts.ownsFlowsOf(cell)) continue;  // the middle field is the script's id
          } else if (kind == decide::CookieKind::kConnAllow || kind == decide::CookieKind::kConnDeny) {
            // An earlier version's per-connection flows: those connections are in conntrack now
            // (or decided again when their next packet comes).
          } else if (cell == 0 || cellInView(*sv, cell)) {
            continue;
          }
          ofp::FlowMod del;
          del.command = ofp::FlowModCommand::kDeleteStrict;
          del.table_id = f.table_id;
          del.priority = f.priority;
          del.match = f.match;
          s.sendFlowMod(del);
          ++stale;
        }
        if (stale > 0) spdlog::info("removed {} stale flows from switch {:016x}", stale, s.datapathId());
      }
      for (const auto& fm : decide::switchBaseFlows(s.version())) s.sendFlowMod(fm);
      for (const auto& [port, gw] : sv->gateways_by_port) {
        std::vector<const CellPort*> env_cells;
        for (const auto& [p, c] : sv->cells_by_port)
          if (c.env == gw.env) env_cells.push_back(&c);
        for (const auto& fm : decide::gatewayBaseFlows(s.version(), gw, env_cells)) s.sendFlowMod(fm);
      }
      for (const auto& [port, c] : sv->cells_by_port) {
        // Count flows are installed again as connections are decided: this switch may be a
        // restarted Open vSwitch without them (those still there keep their counters when
        // added again).
        if (c.runtime) {
          std::lock_guard lock(c.runtime->mu);
          c.runtime->counted.clear();
        }
        if (const GatewayPort* gw = sv->gatewayFor(c.env))
          sendCellFlows(s, *sv, c, *gw, true);
      }
      flushPendingScriptFlows(s);
      s.barrier([dpid = s.datapathId()](bool done) {
        if (done) spdlog::info("switch {:016x} programmed", dpid);
      });
    });
  }

  static bool cellInView(const decide::SwitchView& sv, std::uint32_t cell) {
    for (const auto& [p, c] : sv.cells_by_port)
      if (c.cell_id == cell) return true;
    return false;
  }

  // Rate 0 turns the per-cell meter off (the OVS-wide controller rate limit still applies).
  std::uint32_t meterId(std::uint32_t cell_id) const { return cfg.cell_packet_in_pps != 0 ? cell_id : 0; }

  ofp::MeterMod meterFor(std::uint32_t cell_id) const {
    ofp::MeterMod mm;
    mm.command = ofp::MeterModCommand::kAdd;
    mm.flags = ofp::kMeterPktps | ofp::kMeterBurst;
    mm.meter_id = cell_id;
    mm.bands.push_back({cfg.cell_packet_in_pps, cfg.cell_packet_in_pps / 4});
    return mm;
  }

  // ---- published ports ----
  // "[ADDR:]PORT[:CELLPORT][/tcp|/udp]" -> canonical "PORT:CELLPORT/PROTO", or with a listen
  // address (the host uplink only) "ADDR:PORT:CELLPORT/PROTO".
  static Expected<std::string> canonicalPublish(const std::string& spec, bool host_uplink) {
    std::string s = spec, proto = "tcp";
    if (auto slash = s.find('/'); slash != std::string::npos) {
      proto = s.substr(slash + 1);
      s = s.substr(0, slash);
      if (proto != "tcp" && proto != "udp")
        return fail("--publish " + spec + ": the protocol is tcp or udp");
    }
    std::vector<std::string> parts;
    for (std::size_t at = 0;;) {
      std::size_t colon = s.find(':', at);
      parts.push_back(s.substr(at, colon == std::string::npos ? std::string::npos : colon - at));
      if (colon == std::string::npos) break;
      at = colon + 1;
    }
    std::string addr;
    if (parts.size() == 3) {
      auto ip = Ip4::parse(parts[0]);
      if (!ip) return fail("--publish " + spec + ": " + parts[0] + " is not an IPv4 address to listen on");
      if (!host_uplink)
        return fail("--publish " + spec + ": a listen address applies to the host uplink only; on "
                    "this environment's uplink the port is forwarded at the gateway's address");
      addr = ip->str() + ":";
      parts.erase(parts.begin());
    }
    if (parts.size() == 1) parts.push_back(parts[0]);
    auto port = [](const std::string& t) -> long {
      if (t.empty() || t.size() > 5 || t.find_first_not_of("0123456789") != std::string::npos) return -1;
      long v = std::stol(t);
      return v >= 1 && v <= 65535 ? v : -1;
    };
    long up = parts.size() == 2 ? port(parts[0]) : -1, cp = parts.size() == 2 ? port(parts[1]) : -1;
    if (up < 0 || cp < 0)
      return fail("--publish " + spec + ": expected [ADDR:]PORT[:CELLPORT][/udp] with ports 1-65535");
    return addr + std::to_string(up) + ":" + std::to_string(cp) + "/" + proto;
  }

  static Published toPublished(const std::string& canonical, Ip4 ip) {
    Published p;
    std::string rest = canonical;
    if (std::count(rest.begin(), rest.end(), ':') == 2) {
      p.listen_addr = rest.substr(0, rest.find(':'));
      rest = rest.substr(rest.find(':') + 1);
    }
    unsigned up = 0, cp = 0;
    char proto[4] = {};
    std::sscanf(rest.c_str(), "%u:%u/%3s", &up, &cp, proto);
    p.uplink_port = static_cast<std::uint16_t>(up);
    p.cell_port = static_cast<std::uint16_t>(cp);
    p.cell_ip = ip;
    p.udp = std::string(proto) == "udp";
    return p;
  }

  Expected<void> republish(const std::string& env) {
    std::vector<Published> ports;
    for (const auto& [id, c] : cells.all())
      if (c.info.env == env)
        for (const auto& spec : c.info.published) ports.push_back(toPublished(spec, c.ip));
    return gateways.setPublished(env, ports);
  }

  // ---- cells (control thread) ----
  Expected<api::CellInfo> createCell(const api::CellCreate& req) {
    std::string app = req.app.empty() ? "app" : req.app;
    if (!validAppName(app)) return fail("invalid app name '" + app + "' (1-32 of a-z 0-9 - _ ., not starting with - or .)");
    if (!req.policy_text.empty()) {
      // `run --policy FILE`: the file becomes the app's policy (persisted), in force for
      // every cell of the app.
      auto imported = rules->importPolicy(app, req.policy_text,
                                          req.policy_origin.empty() ? "<policy>" : req.policy_origin,
                                          false, clockNow().unix_ms);
      if (!imported) return Unexpected(imported.error());
      trimSoon(imported->added + imported->removed.size());
      publish();
      if (!imported->removed.empty()) redecide(app, "policy replaced");
      ui.rulesChanged(app);
    }
    if (const OvsHealth& h = ovs->health(); h.state != OvsHealth::State::kUp)
      return fail("Open vSwitch is " + std::string(ovsStateName(h.state)) + " since " + isoTime(h.since_unix_ms) +
                  " (" + h.cause + "): no cell can start until it is back (cellwall status shows its state)");
    std::string env = req.env.empty() ? rules->envOf(app) : req.env;
    const Gateways::Entry* gw = gateways.find(env);
    if (gw == nullptr) return fail("no network environment named '" + env + "'");
    std::vector<std::string> published;
    const bool host_uplink = gw->gateway->hostUplink();
    for (const auto& spec : req.publish) {
      auto c = canonicalPublish(spec, host_uplink);
      if (!c) return Unexpected(c.error());
      const Published mine = toPublished(*c, Ip4{});
      for (const auto& [oid, other] : cells.all())
        for (const auto& o : other.info.published) {
          const Published theirs = toPublished(o, Ip4{});
          if (other.info.env == env && theirs.uplink_port == mine.uplink_port && theirs.udp == mine.udp)
            return fail("--publish " + spec + ": that port of environment '" + env +
                        "' is already published by cell " + std::to_string(oid));
        }
      published.push_back(*c);
    }

    std::uint32_t id = cells.nextId();
    if (id == 0) return fail("65,535 cells run already: end one first (a cell's id is its conntrack zone)");
    auto ip = cells.allocateIp(gw->pool);
    if (!ip) return fail("environment '" + env + "' has no free address left in " + gw->pool.str());
    MacAddr mac = CellTable::macFor(*ip);
    std::string name = "cw-c" + std::to_string(id);
    auto dir = cells.cellDir(id);
    std::filesystem::create_directories(dir);
    const auto env_status = gw->gateway->status();
    {
      std::ofstream resolv(dir / "resolv.conf");
      resolv << "# written by cellwall: the environment's resolver\n"
             << "nameserver " << gw->port.ip.str() << "\n";
      if (!env_status.search.empty()) {
        resolv << "search";
        for (const auto& d : env_status.search) resolv << " " << d;
        resolv << "\n";
      }
      std::ofstream(dir / "hosts") << "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n";
    }
    auto undo = [&] {
      (void)ovs->delPort(name);
      (void)ops.deleteNetns(name);
      (void)ops.deleteLink("", name);
      std::filesystem::remove_all(dir);
    };
    const bool vm = req.backend == "vm";
    if (req.backend != "netns" && !vm) return fail("unknown cell backend '" + req.backend + "' (netns or vm)");
    vm::AccelDecision accel;
    if (vm) {
      auto a = vmAccel(req.vm_accel);
      if (!a) {
        undo();
        return Unexpected(a.error());
      }
      accel = *a;
    }
    // A VM cell's port is a tap the VMM attaches to; its (empty) namespace is where the VMM
    // runs, so that even a compromised VMM has no network but the tap.
    Expected<void> r = ops.createNetns(name);
    if (r && vm) {
      r = ops.createTap(name);
      if (r) r = ops.setLinkUp(name, "lo");
    } else if (r) {
      r = ops.createVethPair(name, "eth0", name, mac);
      if (r) r = ops.setSysctl(name, "net.ipv6.conf.all.disable_ipv6", "1");
      // ICMP echo without CAP_NET_RAW (ping's datagram sockets) for the unprivileged app.
      if (r) r = ops.setSysctl(name, "net.ipv4.ping_group_range", "0 2147483647");
      if (r) r = ops.setLinkUp(name, "lo");
      if (r) r = ops.setLinkUp(name, "eth0");
      // A tunnel's MTU, so that the cell's own stack sizes its datagrams for it: the
      // gateway's "fragmentation needed" would not reach it. (A VM's guest sets it itself.)
      if (r && env_status.cell_mtu != 0) r = ops.setMtu(name, "eth0", env_status.cell_mtu);
    }
    // The bridge side carries no addresses: without IPv6 it adds no routes to the host.
    if (r) r = ops.setSysctl("", "net.ipv6.conf." + name + ".disable_ipv6", "1");
    if (r) r = ops.setLinkUp("", name);
    if (r && !vm) r = ops.addAddress(name, "eth0", IfAddress{IpAddr(*ip), 32});
    if (r && !vm) r = ops.addRoute(name, gw->port.ip.str() + "/32", std::nullopt, "eth0", false);
    if (r && !vm) r = ops.addRoute(name, "default", IpAddr(gw->port.ip), "eth0", true);
    if (r && !vm && needSoftwareChecksums()) r = ops.fillUdpChecksums(name, "eth0");
    if (!r) {
      undo();
      return Unexpected(r.error());
    }
    auto ofport = ovs->addPort(name);
    if (!ofport) {
      undo();
      return Unexpected(ofport.error());
    }
    if (auto lim = limitConntrack(id); !lim) {
      undo();
      return Unexpected(lim.error());
    }
    CellRecord rec;
    rec.info.id = id;
    rec.info.app = app;
    rec.info.env = env;
    rec.info.netns = name;
    rec.info.ifname_host = name;
    rec.info.ip = ip->str();
    rec.info.mac = mac.str();
    rec.info.gateway = gw->port.ip.str();
    rec.info.ofport = *ofport;
    rec.info.resolv_conf = (dir / "resolv.conf").string();
    rec.info.hosts = (dir / "hosts").string();
    rec.info.launcher_pid = req.launcher_pid;
    rec.info.backend = req.backend;
    rec.info.vm_accel = vm ? vm::accelName(accel.accel) : "";
    rec.info.vm_accel_note = vm ? accel.note : "";
    rec.info.vm_may_fall_back = vm && accel.may_fall_back;
    rec.info.mtu = env_status.cell_mtu;
    {
      auto e = rules->environmentOf(app);
      rec.info.clean_env = e.clean;
      rec.info.pass_env = std::move(e.pass);
    }
    // The cell's processes live in their own cgroup: attribution checks a socket's cgroup
    // against it, and removing the cell kills what is left in it.
    if (auto cg = cgroup::create(name)) {
      rec.info.cgroup = *cg;
    } else {
      spdlog::warn("cell {} gets no cgroup: {}", id, cg.error().message);
    }
    rec.info.created_unix = static_cast<std::int64_t>(::time(nullptr));
    rec.info.inspect = req.inspect || std::find(cfg.inspect_apps.begin(), cfg.inspect_apps.end(), app) !=
                                          cfg.inspect_apps.end();
    rec.ip = *ip;
    rec.mac = mac;
    rec.runtime = newRuntime();
    rec.info.published = published;
    for (const auto& spec : published)
      rec.info.published_at.push_back(gw->gateway->publishedWhere(toPublished(spec, *ip)) +
                                      " -> cell port " + spec.substr(spec.rfind(':') + 1));
    cells.add(rec);
    // Attribution cannot see into a VM: its sockets are the guest kernel's.
    if (!vm) attribution.addCell(id, "/run/netns/" + name, rec.info.cgroup);
    if (!published.empty())
      if (auto pr = republish(env); !pr) {
        cells.remove(id);
        attribution.removeCell(id);
        (void)republish(env);
        (void)cgroup::killAndRemove(rec.info.cgroup);
        undo();
        return Unexpected(pr.error());
      }
    (void)cells.save();
    publish();
    spdlog::info("cell {} ({}) for app '{}' in env '{}': {} {} on port {}{}{}", id, name, rec.info.app,
                 env, ip->str(), mac.str(), *ofport, rec.info.inspect ? ", inspect mode" : "",
                 vm ? ", a VM (" + std::string(accel.accel == vm::Accel::kKvm ? "KVM" : "software emulation") +
                          "): its processes are not visible to attribution"
                    : "");
    for (const auto& at : rec.info.published_at) spdlog::info("cell {} published: {}", id, at);
    return rec.info;
  }

  bool needSoftwareChecksums() const { return ovs->datapathType() == "netdev"; }

  // A VM cell's accelerator (vm/accel.h): the launcher's --vm-accel, else vm_accel; what
  // /dev/kvm says; and whether QEMU under KVM failed on this host before.
  Expected<vm::AccelDecision> vmAccel(const std::string& requested) {
    const std::string name = requested.empty() ? cfg.vm_accel : requested;
    auto mode = vm::parseAccelMode(name);
    if (!mode) return fail("unknown VM accelerator '" + name + "' (auto, kvm or tcg)");
    const auto record = vm::kvmRecordPath(cfg.state_dir);
    return vm::decideAccel(*mode, vm::detectAccel(), vm::readKvmRecord(record, vm::kvmHostKey()), record);
  }

  // The launcher of VM cell `id` saw QEMU under KVM die before the guest spoke: KVM is not
  // usable here. Recorded, so that auto sends later cells straight to TCG, and said once.
  api::Reply vmFallback(const api::CellVmFallback& fb) {
    CellRecord* cell = cells.find(fb.id);
    if (cell == nullptr || cell->info.backend != "vm" || !cell->info.vm_may_fall_back)
      return api::Reply::failed("cell " + std::to_string(fb.id) + " is not a VM cell started under KVM by auto");
    const auto record = vm::kvmRecordPath(cfg.state_dir);
    const std::string why = fb.why.empty() ? "QEMU under KVM ended before the guest started" : fb.why;
    std::string where = "recorded in " + record.string();
    if (auto w = vm::writeKvmRecord(record, vm::kvmHostKey(), why); !w) {
      spdlog::warn("cannot record that KVM is unusable: {}", w.error().message);
      where = "not recorded: " + w.error().message;
    }
    const std::string msg = "QEMU under KVM ended before the guest started (" + why +
                            "): KVM is not usable on this host, so VM cells run under software emulation "
                            "(TCG) from now on, much slower (" + where +
                            "; it is forgotten when QEMU or the kernel changes, or when the file is removed; "
                            "--vm-accel kvm tries KVM anyway)";
    spdlog::warn("cell {} ({}): {}", fb.id, cell->info.netns, msg);
    cell->info.vm_accel = vm::accelName(vm::Accel::kTcg);
    cell->info.vm_accel_note = msg;
    cell->info.vm_may_fall_back = false;
    (void)cells.save();
    cellsChanged();
    api::Reply r;
    r.text = msg;
    return r;
  }

  // Installs the cell's flows; `done` runs on the control thread once the switch has them.
  void programCell(std::uint32_t id, std::function<void(bool)> done) {
    auto s = bridge();
    auto view = views.current();
    if (!s) {
      done(false);
      return;
    }
    s->post([this, s, view, id, done = std::move(done)]() mutable {
      const decide::SwitchView* sv = view->find(s->datapathId());
      const CellPort* c = nullptr;
      if (sv != nullptr)
        for (const auto& [p, cp] : sv->cells_by_port)
          if (cp.cell_id == id) c = &cp;
      const GatewayPort* gw = c != nullptr ? sv->gatewayFor(c->env) : nullptr;
      if (c == nullptr || gw == nullptr || s->version() != ofp::Version::kOf13) {
        asio::post(control, [done] { done(false); });
        return;
      }
      if (meterId(id) != 0) s->send(meterFor(id));
      // A zone nobody else uses, empty: whatever an earlier cell with this id left is gone.
      s->send(decide::ctFlushOf(*c));
      sendCellFlows(*s, *sv, *c, *gw, true);
      s->sendFlowMod(decide::gatewayArpForCell(*gw, *c));
      s->barrier([this, done](bool ok) { asio::post(control, [done, ok] { done(ok); }); });
    });
  }

  // The app's cells' base flows again, as the view now says: after its resolve setting
  // changed, their queries to the resolver go straight through or to the controller (a flow
  // added with the same match and priority replaces the old one in place).
  void resendCellFlows(const std::string& app) {
    std::vector<std::uint32_t> ids;
    for (const auto& [id, c] : cells.all())
      if (c.info.app == app) ids.push_back(id);
    sendFlowsOf(std::move(ids), true);
  }

  void removeCell(std::uint32_t id, const char* why) {
    CellRecord* rec = cells.find(id);
    if (rec == nullptr) return;
    CellRecord c = *rec;
    cells.remove(id);
    attribution.removeCell(id);
    cellsChanged();
    if (!prompts.forgetCell(id).empty()) wakePromptWaiters();
    (void)cells.save();
    publish();
    if (!c.info.published.empty())
      if (auto r = republish(c.info.env); !r) spdlog::warn("unpublishing cell {}: {}", id, r.error().message);
    if (auto s = bridge()) {
      CellPort cp{id, c.info.app, c.info.env, c.info.ofport, c.mac, c.ip, nullptr, nullptr};
      const bool counted = cfg.rule_counters == "on";
      s->post([this, s, cp, counted] {
        // The cell's counts outlive it: read before its count flows go (the switch answers one
        // channel's messages in order, so the dump sees them as they were).
        if (counted) {
          ofp::FlowStatsRequest req;
          req.table_id = decide::kTableCount;
          req.cookie = decide::makeCookie(decide::CookieKind::kCount, cp.cell_id, 0);
          req.cookie_mask = decide::kCookieKindMask | decide::kCookieCellMask;
          s->dumpFlows(req, [this, id = cp.cell_id, app = cp.app](bool ok, std::vector<ofp::FlowStats> flows) {
            if (!ok) {
              spdlog::warn("cell {}: its rule counters could not be read before it went; they are lost", id);
              return;
            }
            auto sums = sumRuleCounters(flows, {{id, app}});
            asio::post(control, [this, sums = std::move(sums)] { addRuleCounters(ended_counts, sums); });
          });
        }
        for (const auto& fm : decide::cellRemoveFlows(cp)) s->sendFlowMod(fm);
        // Its connections go with it: the next cell with its id gets an empty zone.
        s->send(decide::ctFlushOf(cp));
        // Flows of other cells that pointed at this port must not outlive it: OVS may give
        // the port number to the next cell.
        ofp::FlowMod by_out;
        by_out.command = ofp::FlowModCommand::kDelete;
        by_out.table_id = ofp::kTableAll;
        by_out.out_port = cp.ofport;
        s->sendFlowMod(by_out);
        ofp::FlowMod by_in = by_out;
        by_in.out_port = ofp::kPortAny;
        by_in.match.inPort(cp.ofport);
        s->sendFlowMod(by_in);
        ofp::MeterMod mm;
        mm.command = ofp::MeterModCommand::kDelete;
        mm.meter_id = cp.cell_id;
        s->send(mm);
      });
    }
    if (auto r = cgroup::killAndRemove(c.info.cgroup); !r)
      spdlog::warn("cell {}: {}", id, r.error().message);
    (void)ovs->delPort(c.info.netns);
    unlimitConntrack(id);
    (void)ops.deleteNetns(c.info.netns);
    (void)ops.deleteLink("", c.info.netns);
    std::filesystem::remove_all(cells.cellDir(id));
    spdlog::info("cell {} ({}) removed: {}", id, c.info.netns, why);
    bool last = true;
    for (const auto& [other, rec2] : cells.all()) last = last && rec2.info.app != c.info.app;
    if (last && !stopping) {
      auto gone = rules->appExited(c.info.app);
      if (!gone.empty()) {
        publish();
        ui.rulesChanged(c.info.app);
      }
    }
  }

  // After a crash: cells whose launcher still runs are adopted (their processes keep their
  // network); the rest are removed.
  void recoverCells() {
    auto saved = cells.load();
    if (!saved) {
      spdlog::warn("cannot read the saved cells: {}", saved.error().message);
      return;
    }
    for (const auto& info : *saved) {
      auto dir = cells.cellDir(info.id);
      bool alive = processAlive(info.launcher_pid) && ops.netnsExists(info.netns);
      if (!alive) {
        if (auto r = cgroup::killAndRemove(info.cgroup); !r)
          spdlog::warn("stale cell {}: {}", info.id, r.error().message);
        (void)ovs->delPort(info.netns);
        unlimitConntrack(info.id);
        (void)ops.deleteNetns(info.netns);
        (void)ops.deleteLink("", info.netns);
        std::filesystem::remove_all(dir);
        spdlog::info("removed stale cell {} ({})", info.id, info.netns);
        continue;
      }
      auto ofport = ovs->addPort(info.netns);
      if (!ofport) {
        spdlog::warn("cannot re-plug cell {}: {}", info.id, ofport.error().message);
        continue;
      }
      if (auto r = limitConntrack(info.id); !r) spdlog::error("cell {}: {}", info.id, r.error().message);
      CellRecord rec;
      rec.info = info;
      rec.info.ofport = *ofport;
      rec.ip = IpAddr::parse(info.ip)->v4();
      rec.mac = *MacAddr::parse(info.mac);
      rec.runtime = newRuntime();
      cells.add(rec);
      if (info.backend != "vm") attribution.addCell(info.id, "/run/netns/" + info.netns, info.cgroup);
      spdlog::info("adopted running cell {} ({}) of app '{}'", info.id, info.netns, info.app);
    }
    (void)cells.save();
  }

  // Cells whose launcher is gone (killed, or lost with a crashed daemon's connections) are
  // removed: nothing else would ever end them.
  void reapCells(asio::steady_timer& timer) {
    timer.expires_after(std::chrono::seconds(1));
    timer.async_wait([this, &timer](const asio::error_code& ec) {
      if (ec) return;
      std::vector<std::uint32_t> dead;
      for (const auto& [id, c] : cells.all())
        if (!processAlive(c.info.launcher_pid)) dead.push_back(id);
      for (auto id : dead) removeCell(id, "its launcher is gone");
      reapCells(timer);
    });
  }

  // ---- control socket ----
  struct Client : std::enable_shared_from_this<Client> {
    explicit Client(asio::local::stream_protocol::socket s) : sock(std::move(s)) {}
    asio::local::stream_protocol::socket sock;
    asio::streambuf in;
    std::vector<std::uint32_t> cells;
  };

  void acceptControl() {
    acceptor->async_accept([this](const asio::error_code& ec, asio::local::stream_protocol::socket s) {
      if (ec) return;
      auto c = std::make_shared<Client>(std::move(s));
      readControl(c);
      acceptControl();
    });
  }

  void readControl(const std::shared_ptr<Client>& c) {
    asio::async_read_until(c->sock, c->in, '\n', [this, c](const asio::error_code& ec, std::size_t n) {
      if (ec) {
        // The launcher went away: its cells go with it.
        for (auto id : c->cells) removeCell(id, "its launcher disconnected");
        return;
      }
      std::string line(asio::buffers_begin(c->in.data()),
                       asio::buffers_begin(c->in.data()) + static_cast<std::ptrdiff_t>(n));
      c->in.consume(n);
      auto cmd = api::decodeCommand(line);
      if (!cmd) {
        reply(c, api::Reply::failed(cmd.error().message));
        return;
      }
      execute(c, *cmd);
    });
  }

  void reply(const std::shared_ptr<Client>& c, const api::Reply& r) {
    auto text = std::make_shared<std::string>(api::encodeReply(r) + "\n");
    asio::async_write(c->sock, asio::buffer(*text), [this, c, text](const asio::error_code& ec, std::size_t) {
      if (!ec) readControl(c);
    });
  }

  void execute(const std::shared_ptr<Client>& c, const api::Command& cmd) {
    if (auto* create = std::get_if<api::CellCreate>(&cmd)) {
      auto info = createCell(*create);
      if (!info) {
        reply(c, api::Reply::failed(info.error().message));
        return;
      }
      c->cells.push_back(info->id);
      programCell(info->id, [this, c, info = *info](bool ok) {
        if (!ok) {
          removeCell(info.id, "its flows could not be installed");
          reply(c, api::Reply::failed("the bridge is not connected to cellwalld; cell not started"));
          return;
        }
        api::Reply r;
        r.cells.push_back(info);
        reply(c, r);
        cellsChanged();
      });
    } else if (auto* fb = std::get_if<api::CellVmFallback>(&cmd)) {
      // Only the launcher that made the cell speaks for it.
      reply(c, std::find(c->cells.begin(), c->cells.end(), fb->id) == c->cells.end()
                   ? api::Reply::failed("cell " + std::to_string(fb->id) + " is not this connection's")
                   : vmFallback(*fb));
    } else if (auto* ex = std::get_if<api::CellExit>(&cmd)) {
      removeCell(ex->id, "its command exited");
      std::erase(c->cells, ex->id);
      reply(c, api::Reply{});
    } else if (std::holds_alternative<api::FlowDump>(cmd)) {
      dumpFlows(c);
    } else if (const auto* rl = std::get_if<api::RulesList>(&cmd); rl != nullptr && rl->counters) {
      listRuleCounters(c, *rl);
    } else if (const auto* pl = std::get_if<api::PromptList>(&cmd); pl != nullptr && pl->wait_ms > 0) {
      listPrompts(c, *pl);
    } else if (std::holds_alternative<api::Shutdown>(cmd)) {
      reply(c, api::Reply{});
      asio::post(control, [this] { control.stop(); });
    } else {
      reply(c, executeNow(cmd, "cli"));
    }
  }

  api::Reply statusReply() {
    api::Reply r;
    r.lines.push_back(ovsStatusLine());
    r.lines.push_back("cells " + std::to_string(cells.all().size()));
    r.lines.push_back("decisions allowed=" + std::to_string(packets.allowed()) +
                      " denied=" + std::to_string(packets.denied()));
    r.lines.push_back("repeats " + std::to_string(packets.repeats()));
    r.lines.push_back("switch_decided " + std::to_string(packets.switchDecided()) + " disagreed " +
                      std::to_string(packets.switchDisagreed()));
    {
      // As of the last check (every 5 s): each cell's connections in conntrack, its limit.
      std::string line = "conntrack per_cell_limit=" + std::to_string(cfg.conntrack_per_cell);
      for (const auto& [zone, u] : conntrack_usage)
        if (cells.find(zone) != nullptr)
          line += " cell" + std::to_string(zone) + "=" + std::to_string(u.count) + (u.count >= u.limit ? "(full)" : "");
      r.lines.push_back(line);
    }
    r.lines.push_back("inspect packets=" + std::to_string(packets.inspected()) +
                      " refused=" + std::to_string(packets.inspectRefused()));
    r.lines.push_back("dns answers=" + std::to_string(packets.answersSnooped()) +
                      " parsed=" + std::to_string(observer.answersParsed()) +
                      " names_learned=" + std::to_string(observer.namesLearned()));
    for (std::size_t i = 0; i < static_cast<std::size_t>(dns::ParseError::kCount); ++i) {
      auto e = static_cast<dns::ParseError>(i);
      if (observer.dnsErrors(e) > 0)
        r.lines.push_back(std::string("weird dns_") + dns::parseErrorName(e) + " " +
                          std::to_string(observer.dnsErrors(e)));
      if (packets.queryWeirdCount(e) > 0)
        r.lines.push_back(std::string("weird dns_query_") + dns::parseErrorName(e) + " " +
                          std::to_string(packets.queryWeirdCount(e)));
    }
    r.lines.push_back("log dropped=" + std::to_string(observer.dropped()));
    {
      const auto a = attribution.stats();
      r.lines.push_back(std::string("attribution mode=") + attributionModeName(attribution.mode()) +
                        " bpf=" + (attribution.usesBpf() ? "yes" : "no") + " found=" + std::to_string(a.found) +
                        " no_socket=" + std::to_string(a.no_socket) + " no_owner=" + std::to_string(a.no_owner) +
                        " errors=" + std::to_string(a.errors));
    }
    if (ids_monitor.running()) {
      const auto st = ids_monitor.stats();
      r.lines.push_back("ids rules=" + std::to_string(ids_monitor.rules()) +
                        " skipped=" + std::to_string(ids_monitor.report().skipped.size()) +
                        " frames=" + std::to_string(st.engine.frames) + " bytes=" + std::to_string(st.engine.bytes) +
                        " flows=" + std::to_string(st.engine.flows) + " alerts=" + std::to_string(st.engine.alerts) +
                        " gaps=" + std::to_string(st.engine.gaps) + " ring_drops=" + std::to_string(st.ring.drops) +
                        " ring_packets=" + std::to_string(st.ring.packets));
    }
    for (std::size_t i = 0; i < static_cast<std::size_t>(decide::Reason::kCount); ++i) {
      auto reason = static_cast<decide::Reason>(i);
      r.lines.push_back(std::string("reason ") + decide::reasonName(reason) + " " +
                        std::to_string(packets.reasonCount(reason)));
    }
    for (std::size_t i = 0; i < static_cast<std::size_t>(packet::ParseError::kCount); ++i) {
      auto weird = static_cast<packet::ParseError>(i);
      if (packets.weirdCount(weird) > 0)
        r.lines.push_back(std::string("weird ") + packet::parseErrorName(weird) + " " +
                          std::to_string(packets.weirdCount(weird)));
    }
    // Connected switches and how each proved who it is; then who was turned away.
    for (const auto& s : server->all())
      r.lines.push_back(fmt::format("switch {:016x} auth={} peer={}", s->datapathId(), sw::authName(s->auth()),
                                    s->peer()));
    const auto refused = server->refused();
    r.lines.push_back("switches_refused peer_credentials=" + std::to_string(refused.peer_credentials) +
                      " takeovers=" + std::to_string(refused.takeovers));
    auto counts = server->decodeErrorCounts();
    for (std::size_t i = 0; i < counts.size(); ++i) {
      if (counts[i] > 0)
        r.lines.push_back(std::string("openflow_error ") +
                          ofp::decodeErrorName(static_cast<ofp::DecodeError>(i)) + " " +
                          std::to_string(counts[i]));
    }
    return r;
  }

  std::map<std::string, std::uint32_t> cellsPerEnv() const {
    std::map<std::string, std::uint32_t> n;
    for (const auto& [id, c] : cells.all()) ++n[c.info.env];
    return n;
  }

  // The switch learns of a gateway port added or gone.
  api::Reply envsChanged(api::Reply r) {
    if (!r.ok) return r;
    publish();
    if (auto s = bridge()) s->post([this, s] { reconcile(*s); });
    return r;
  }

  api::Reply removeEnv(const api::EnvRemove& cmd) {
    std::vector<std::uint32_t> inside;
    for (const auto& [id, c] : cells.all())
      if (c.info.env == cmd.name) inside.push_back(id);
    if (env_admin.fromFile(cmd.name))
      return api::Reply::failed("environment '" + cmd.name + "' is defined in the configuration file; remove it there");
    if (!inside.empty() && !cmd.force)
      return api::Reply::failed(std::to_string(inside.size()) + " cell(s) live in environment '" + cmd.name +
                                "' (cellwall ps): end them first, or use --force to end them");
    for (auto id : inside) removeCell(id, "its environment was removed");
    return envsChanged(env_admin.remove(cmd.name, *ovs));
  }

  api::Reply scriptsChanged(api::Reply r) {
    ui.scriptsChanged(script_admin.list().scripts);
    // Scripts are asked about every new connection: with none loaded the switch may decide
    // them by the rules' flows, with one it may not (switchMayDecide). Each cell's flows follow.
    if (scripts.any() != scripts_were_any) {
      scripts_were_any = scripts.any();
      publish();
      std::set<std::string> apps;
      for (const auto& [id, c] : cells.all()) apps.insert(c.info.app);
      for (const auto& app : apps) resendCellFlows(app);
    }
    return r;
  }
  bool scripts_were_any = false;

  // Every command answered at once on the control thread, from the control socket or the web
  // UI (`origin` is what rules added by it are marked with).
  api::Reply executeNow(const api::Command& cmd, const char* origin) {
    if (std::holds_alternative<api::CellList>(cmd)) {
      api::Reply r;
      for (const auto& [id, rec] : cells.all()) r.cells.push_back(rec.info);
      return r;
    }
    if (std::holds_alternative<api::Status>(cmd)) return statusReply();
    if (std::holds_alternative<api::PromptList>(cmd)) return promptReply();
    if (const auto* pa = std::get_if<api::PromptAnswer>(&cmd)) {
      api::Reply r = answerPrompt(*pa);
      wakePromptWaiters();
      return r;
    }
    if (std::holds_alternative<api::ScriptList>(cmd)) return script_admin.list();
    if (std::holds_alternative<api::EnvList>(cmd)) return env_admin.list(cellsPerEnv());
    if (const auto* ea = std::get_if<api::EnvAdd>(&cmd)) return envsChanged(env_admin.add(*ea, *ovs));
    if (const auto* er = std::get_if<api::EnvRemove>(&cmd)) return removeEnv(*er);
    if (const auto* sl = std::get_if<api::ScriptLoad>(&cmd)) return scriptsChanged(script_admin.load(*sl));
    if (const auto* su = std::get_if<api::ScriptUnload>(&cmd)) return scriptsChanged(script_admin.unload(*su));
    if (const auto* sr = std::get_if<api::ScriptReload>(&cmd)) return scriptsChanged(script_admin.reload(*sr));
    if (std::holds_alternative<api::UiInfo>(cmd)) {
      std::string url = ui.url();
      if (url.empty()) return api::Reply::failed(ui.error());
      api::Reply r;
      r.text = url;
      return r;
    }
    return executeRules(cmd, origin);
  }

  // The web UI's commands (from the web server's loop thread): run on the control thread, whose
  // answer is handed back through `reply`. If the control thread never gets to it (stopping),
  // the server answers 503 at its deadline.
  void webApi(const std::string& body, web::ApiReply reply) {
    auto cmd = api::decodeCommand(body);
    if (!cmd) return reply({400, api::encodeReply(api::Reply::failed(cmd.error().message))});
    if (!webAllowed(*cmd))
      return reply({403, api::encodeReply(api::Reply::failed("not a command of the web UI; use the cellwall command"))});
    asio::post(control, [this, reply = std::move(reply), c = std::move(*cmd)] {
      api::Reply r = executeNow(c, "web");
      reply({r.ok ? 200 : 400, api::encodeReply(r)});
    });
  }

  // rules.*, log, names: answered at once on the control thread.
  api::Reply executeRules(const api::Command& cmd, const char* origin) {
    api::Reply r;
    std::int64_t now = clockNow().unix_ms;
    if (const auto* lst = std::get_if<api::RulesList>(&cmd)) {
      r.rules = rules->list(lst->app);
    } else if (const auto* add = std::get_if<api::RuleAdd>(&cmd)) {
      if (!validAppName(add->app)) return api::Reply::failed("invalid app name '" + add->app + "'");
      auto added = rules->addRule(add->app, add->rule_text, origin, now);
      if (!added) return api::Reply::failed(added.error().message);
      publish();
      redecide(add->app, "rule added");  // open connections the new rule decides otherwise are cut
      ui.rulesChanged(add->app);
      r.rules.push_back(*added);
      spdlog::info("rule {} added for '{}'", added->id, add->app);
    } else if (const auto* rm = std::get_if<api::RuleRemove>(&cmd)) {
      auto gone = rules->removeRule(rm->id);
      if (!gone) return api::Reply::failed(gone.error().message);
      if (!gone->has_value()) return api::Reply::failed("no rule " + std::to_string(rm->id));
      publish();
      redecide(**gone, "rule removed");
      ui.rulesChanged(**gone);
    } else if (const auto* rep = std::get_if<api::RuleReplace>(&cmd)) {
      auto edited = rules->replaceRule(rep->id, rep->rule_text, origin, now);
      if (!edited) return api::Reply::failed(edited.error().message);
      publish();
      redecide(edited->app, "rule edited");  // its connections were decided by the old text
      ui.rulesChanged(edited->app);
      r.rules.push_back(*edited);
      spdlog::info("rule {} of '{}' edited", edited->id, edited->app);
    } else if (const auto* imp = std::get_if<api::PolicyImport>(&cmd)) {
      if (!validAppName(imp->app)) return api::Reply::failed("invalid app name '" + imp->app + "'");
      const bool checked_before = rules->compiled(imp->app)->matcher->restrictsResolution();
      auto imported = rules->importPolicy(imp->app, imp->text, imp->origin, imp->merge, now);
      if (!imported) return api::Reply::failed(imported.error().message);
      trimSoon(imported->added + imported->removed.size());
      publish();
      if (rules->compiled(imp->app)->matcher->restrictsResolution() != checked_before)
        resendCellFlows(imp->app);
      redecide(imp->app, "policy imported");
      ui.rulesChanged(imp->app);
      r.lines.push_back("imported " + std::to_string(imported->added) + " rule(s) for " + imp->app +
                        (imported->removed.empty() ? std::string()
                                                   : ", replacing " + std::to_string(imported->removed.size())));
    } else if (const auto* exp = std::get_if<api::PolicyExport>(&cmd)) {
      auto text = rules->exportPolicy(exp->app);
      if (!text) return api::Reply::failed(text.error().message);
      r.text = *text;
    } else if (const auto* ex = std::get_if<api::RulesExplain>(&cmd)) {
      return explain(*ex, now);
    } else if (const auto* logq = std::get_if<api::LogQuery>(&cmd)) {
      store::LogQuery lq;
      if (!logq->app.empty()) lq.app = logq->app;
      lq.after_id = logq->after_id;
      lq.limit = std::min<std::uint32_t>(logq->limit == 0 ? 50 : logq->limit, 10000);
      auto rows = db->queryLog(lq);
      if (!rows) return api::Reply::failed(rows.error().message);
      for (auto it = rows->rbegin(); it != rows->rend(); ++it) r.log.push_back(logEntryOf(*it));
    } else if (const auto* nq = std::get_if<api::NamesQuery>(&cmd)) {
      CellRecord* rec = cells.find(nq->cell);
      if (rec == nullptr) return api::Reply::failed("no cell " + std::to_string(nq->cell));
      std::vector<names::SnapshotEntry> snap;
      {
        std::lock_guard lock(rec->runtime->mu);
        snap = rec->runtime->names.snapshot(clockNow().mono_ms);
      }
      std::int64_t mono = clockNow().mono_ms;
      for (const auto& e : snap)
        r.lines.push_back(e.ip.str() + " " + e.name + " (" + std::to_string((e.expires_ms - mono) / 1000) + " s)");
    }
    return r;
  }

  api::Reply explain(const api::RulesExplain& q, std::int64_t now) {
    policy::ConnKey key;
    key.direction = q.inbound ? policy::Direction::kInbound : policy::Direction::kOutbound;
    key.protocol = q.proto == "udp"    ? policy::Protocol::kUdp
                   : q.proto == "icmp" ? policy::Protocol::kIcmp
                   : q.proto == "any"  ? policy::Protocol::kAny
                                       : policy::Protocol::kTcp;
    key.remote_port = q.port;
    // The process, when one is named: rules by process take part as for an attributed
    // connection.
    policy::ProcessKey proc;
    std::string user_name = q.user;
    if (q.pid != 0 || !q.exe.empty() || !q.process.empty() || !q.user.empty() || !q.parent.empty()) {
      proc.pid = q.pid;
      proc.exe = q.exe;
      proc.comm = q.process;
      proc.parent_exe = q.parent;
      if (!q.user.empty() && std::all_of(q.user.begin(), q.user.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        proc.uid = static_cast<std::uint32_t>(std::strtoul(q.user.c_str(), nullptr, 10));
        user_name = attrib::userName(proc.uid);
        if (user_name == q.user) user_name.clear();
      } else if (!q.user.empty()) {
        struct passwd pw {};
        struct passwd* found = nullptr;
        std::array<char, 4096> buf{};
        if (::getpwnam_r(q.user.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr)
          proc.uid = found->pw_uid;
        else
          proc.uid = 0xffffffffu;  // a name with no uid: only rules by that name match
      }
      proc.user = user_name;
      key.process = &proc;
    }
    api::Reply r;
    if (auto ip = IpAddr::parse(q.remote)) {
      key.remote = *ip;
      const decide::CellRuntime* runtime = nullptr;
      if (q.cell != 0) {
        CellRecord* rec = cells.find(q.cell);
        if (rec == nullptr) return api::Reply::failed("no cell " + std::to_string(q.cell));
        runtime = rec->runtime.get();
      }
      decide::ResolvedNames names(runtime, *ip, clockNow().mono_ms);
      key.names = names.get();
      r.lines = rules->explain(q.app, key, now);
    } else {
      // A host name: explained as if the cell had resolved it (to an address no address rule
      // names).
      std::string name = q.remote;
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (!name.empty() && name.back() == '.') name.pop_back();
      std::string_view view = name;
      key.remote = *IpAddr::parse("0.0.0.0");
      key.names = std::span<const std::string_view>(&view, 1);
      r.lines = rules->explain(q.app, key, now);
      if (!q.inbound) r.lines.push_back(rules->explainResolve(q.app, name, now));
    }
    return r;
  }

  // `rules list --counters`: the rules, and what the count table (docs/pipeline.md, table 7)
  // says each let the app's running cells send and receive, summed over its cells. Read from
  // the bridge on request (one cookie-masked flow-stats dump of table 7), never polled.
  void listRuleCounters(const std::shared_ptr<Client>& c, const api::RulesList& q) {
    if (cfg.rule_counters != "on") {
      reply(c, api::Reply::failed("cellwalld counts no rules: it runs with --rule-counters off (or rule_counters = "
                                  "\"off\" in cellwalld.toml); start it without that to count"));
      return;
    }
    api::Reply listed = executeRules(api::Command{api::RulesList{q.app, false}}, "cli");
    auto s = bridge();
    if (!s) {
      reply(c, api::Reply::failed("cannot read the rule counters: the bridge is not connected to cellwalld "
                                  "(see `cellwall status`)"));
      return;
    }
    std::map<std::uint32_t, std::string> app_of;
    for (const auto& [id, rec] : cells.all())
      if (q.app.empty() || rec.info.app == q.app) app_of[id] = rec.info.app;
    ofp::FlowStatsRequest req;
    req.table_id = decide::kTableCount;
    req.cookie = decide::makeCookie(decide::CookieKind::kCount, 0, 0);
    req.cookie_mask = decide::kCookieKindMask;
    s->post([this, s, c, req, listed = std::move(listed), app_of = std::move(app_of), q_app = q.app] {
      s->dumpFlows(req, [this, c, listed, app_of, q_app](bool ok, std::vector<ofp::FlowStats> flows) {
        api::Reply r = listed;
        if (!ok) {
          r = api::Reply::failed("cannot read the rule counters: the flow dump of table 7 failed "
                                 "(the bridge disconnected?); try again");
        } else {
          r.counters = sumRuleCounters(flows, app_of);
        }
        asio::post(control, [this, c, r, app = q_app]() mutable {
          // With what the cells that ended counted.
          if (r.ok) {
            std::vector<api::RuleCounters> ended;
            for (const auto& e : ended_counts)
              if (app.empty() || e.app == app) ended.push_back(e);
            addRuleCounters(r.counters, ended);
          }
          reply(c, r);
        });
      });
    });
  }
  void dumpFlows(const std::shared_ptr<Client>& c) {
    auto s = bridge();
    if (!s) {
      reply(c, api::Reply::failed("the bridge is not connected"));
      return;
    }
    s->post([this, s, c] {
      s->dumpFlows(ofp::FlowStatsRequest{}, [this, c, v = s->version()](bool ok, std::vector<ofp::FlowStats> flows) {
        api::Reply r;
        r.ok = ok;
        if (!ok) r.error = "flow dump failed";
        for (const auto& f : flows) {
          ofp::FlowMod fm;
          fm.table_id = f.table_id;
          fm.priority = f.priority;
          fm.cookie = f.cookie;
          fm.idle_timeout = f.idle_timeout;
          fm.hard_timeout = f.hard_timeout;
          fm.match = f.match;
          fm.instructions = f.instructions;
          std::string line = ofp::format(ofp::Decoded{ofp::Header{static_cast<std::uint8_t>(v), 14, 0, 0}, fm});
          // A flow, not a message: drop the "FLOW_MOD xid=0x0 add " prefix.
          if (auto pos = line.find(" add "); pos != std::string::npos) line.erase(0, pos + 5);
          line += " n_packets=" + std::to_string(f.packet_count) + " n_bytes=" + std::to_string(f.byte_count);
          r.lines.push_back(std::move(line));
        }
        asio::post(control, [this, c, r] { reply(c, r); });
      });
    });
  }
};

Daemon::Daemon(Config cfg) : impl_(std::make_unique<Impl>(std::move(cfg))) {}
Daemon::~Daemon() = default;

Expected<void> Daemon::run() {
  auto& im = *impl_;
  if (::geteuid() != 0)
    return fail("cellwalld needs root (it runs Open vSwitch, creates network namespaces and "
                "veth pairs: CAP_NET_ADMIN and CAP_SYS_ADMIN)");
  std::error_code ec;
  std::filesystem::create_directories(im.cfg.state_dir, ec);
  if (ec) return fail("cannot create state directory " + im.cfg.state_dir.string() + ": " + ec.message());
  ::chmod(im.cfg.state_dir.c_str(), 0700);

  OvsOptions oo;
  oo.state_dir = im.cfg.state_dir;
  oo.existing_db = im.cfg.ovs_db;
  oo.bridge = im.cfg.bridge;
  oo.datapath = im.cfg.datapath;
  oo.datapath_max_idle_ms = im.cfg.datapath_max_idle_ms;
  // Per-cell meters limit Packet-Ins (pipeline.md); the switch-wide limiter of Open vSwitch
  // queues them and costs milliseconds per flow setup (bench/RESULTS.md).
  oo.packet_in_rate_limit = im.cfg.cell_packet_in_pps != 0 ? 0 : 1000;
  // The switch proves who it is by how it connects (daemon/switch_channel.h): the local Open
  // vSwitch over a root-only UNIX socket in its rundir, made before Ovs::open so it is there
  // when the switch first connects.
  auto run_dir = Ovs::runDirFor(oo);
  std::uint32_t run_dir_owner = 0;
  if (run_dir && oo.existing_db.empty()) {
    std::filesystem::create_directories(*run_dir, ec);
    if (ec) return fail("cannot create the Open vSwitch directory " + run_dir->string() + ": " + ec.message());
    ::chmod(run_dir->c_str(), 0700);
  }
  if (run_dir) {
    struct stat st {};
    if (::stat(run_dir->c_str(), &st) != 0)
      return fail("cannot find the Open vSwitch run directory " + run_dir->string() + " (from --ovs-db " +
                  oo.existing_db + "): " + std::strerror(errno) + " (is Open vSwitch running on this host?)");
    run_dir_owner = st.st_uid;
  }
  auto channel = planSwitchChannel(im.cfg, Ovs::datapathIdFor(im.cfg.bridge), run_dir, run_dir_owner, ::geteuid());
  if (!channel) return Unexpected(channel.error());
  for (const auto& w : channel->warnings) spdlog::warn("{}", w);
  oo.controllers = {channel->controller_target};
  auto db = store::Store::open(im.cfg.state_dir / "cellwall.db");
  if (!db) return Unexpected(db.error());
  im.db = std::move(db.value());
  im.rules = std::make_unique<RuleBook>(*im.db);
  im.cells.attach(im.db.get());
  if (auto r = im.rules->load(clockNow().unix_ms); !r) return r;
  // Scripts load before any switch connects: what they ask for at load waits for the bridge.
  if (auto r = im.script_admin.start(); !r) return r;
  im.packets.setJudge(&im.scripts);
  im.scripts_were_any = im.scripts.any();
  spdlog::info("{}", im.attribution.start());
  if (im.attribution.mode() != AttributionMode::kOff) im.packets.setProcessFinder(&im.attribution);

  im.observer.on_held = [&im](const decide::CellPort& cell, const decide::Decision& d,
                              const packet::Frame& f, std::uint64_t dpid, std::uint32_t in_port,
                              Now now) { im.onHeld(cell, d, f, dpid, in_port, now); };
  im.prompts.setOnChange([&im] { asio::post(im.control, [&im] { im.wakePromptWaiters(); }); });
  im.server = std::make_unique<sw::SwitchServer>(channel->server, *this);
  if (auto r = im.server->start(); !r) return r;

  auto ovs = Ovs::open(oo, im.runner);
  if (!ovs) return Unexpected(ovs.error());
  im.ovs = std::move(ovs.value());
  spdlog::info("Open vSwitch: {} ({}), bridge {} datapath {}",
               im.ovs->isEmbedded() ? (im.ovs->adopted() ? "embedded, adopted from an earlier run" : "embedded")
                                    : "existing",
               im.ovs->dbTarget(), im.ovs->bridge(), im.ovs->datapathType());
  if (auto r = im.ovs->ensureBridge(); !r) return r;

  // Gateways left by a crashed daemon: those of environments still configured are adopted as
  // they are when they match their configuration (their NAT and conntrack state carry the
  // connections that outlived the daemon) and rebuilt otherwise (Gateways::start); the rest go
  // now, before any starts.
  auto sweep = [&im](const std::set<std::string>& keep, const char* why) {
    auto removed = Gateway::removeStale(im.cfg.state_dir, im.ops, keep);
    if (!removed) spdlog::warn("removing gateways of an earlier run: {}", removed.error().message);
    for (const auto& env : removed ? *removed : std::vector<std::string>{}) {
      (void)im.ovs->delPort(Gateway::ifnameFor(env));
      spdlog::info("removed the gateway of environment '{}' left by an earlier run: {}", env, why);
    }
  };
  {
    std::set<std::string> configured;
    for (const auto& e : im.cfg.envs) configured.insert(e.name);
    for (const auto& n : im.env_admin.storedNames()) configured.insert(n);
    sweep(configured, "the environment is no longer configured");
  }
  for (const auto& e : im.cfg.envs) {
    auto r = im.gateways.start(e, im.ops, *im.ovs, im.cfg.state_dir);
    if (!r) {
      im.gateways.stopAll(im.ops, *im.ovs);
      return r;
    }
  }
  im.env_admin.startStored(*im.ovs);
  {
    // A stored environment that did not start (its file broken meanwhile) leaves no gateway
    // running that nothing owns.
    std::set<std::string> running;
    for (const auto& g : im.gateways.all()) running.insert(g.port.env);
    sweep(running, "the environment did not start");
  }
  if (im.cfg.ids) {
    std::vector<std::string> files = im.cfg.ids_rules;
    if (files.empty()) files.push_back(CW_SHIPPED_IDS_RULES);
    std::string home;
    for (const auto& e : im.cfg.envs) home += (home.empty() ? "" : ",") + e.pool.str();
    auto started = im.ids_monitor.start(files, "[" + home + "]", im.ops, *im.ovs, [&im](std::vector<ids::Alert> alerts) {
      asio::post(im.control, [&im, alerts = std::move(alerts)] { im.onAlerts(alerts); });
    });
    if (!started) {
      im.gateways.stopAll(im.ops, *im.ovs);
      return started;
    }
  }
  im.recoverCells();
  for (const auto& g : im.gateways.all())
    if (auto r = im.republish(g.port.env); !r) spdlog::warn("republishing ports: {}", r.error().message);
  im.publish();
  if (auto s = im.bridge()) s->post([&im, s] { im.reconcile(*s); });

  auto sock = im.cfg.state_dir / "cellwall.sock";
  ::unlink(sock.c_str());
  im.acceptor = std::make_unique<asio::local::stream_protocol::acceptor>(
      im.control, asio::local::stream_protocol::endpoint(sock.string()));
  ::chmod(sock.c_str(), 0600);
  im.acceptControl();
  im.ui.start(im.cfg.ui_listen, im.cfg.state_dir,
              [&im](const std::string& body, web::ApiReply reply) { im.webApi(body, std::move(reply)); });
  im.cellsChanged();
  im.ui.prompts(im.promptReply());
  im.ui.scriptsChanged(im.script_admin.list().scripts);
  im.showSwitchState();
  asio::signal_set signals(im.control, SIGINT, SIGTERM);
  signals.async_wait([&im](const asio::error_code&, int sig) {
    spdlog::info("signal {}: shutting down", sig);
    im.control.stop();
  });
  ::signal(SIGPIPE, SIG_IGN);
  asio::steady_timer reaper(im.control);
  im.reapCells(reaper);
  asio::steady_timer ticker(im.control);
  im.tick(ticker);
  spdlog::info("cellwalld ready: control socket {}, OpenFlow on {}", sock.string(), channel->listeners);
  im.control.run();
  im.ui.stop();  // first: its requests wait for the control thread, which runs no more
  im.script_admin.stop();

  // Orderly stop: cells, gateways, the bridge (and embedded OVS), the channel. Rules that
  // last "until the app exits" stay: the apps did not exit, cellwalld did.
  im.stopping = true;
  std::vector<std::uint32_t> ids;
  for (const auto& [id, c] : im.cells.all()) ids.push_back(id);
  for (auto id : ids) im.removeCell(id, "cellwalld stopping");
  im.ids_monitor.stop(im.ops, *im.ovs);
  im.gateways.stopAll(im.ops, *im.ovs);
  auto stopped = im.ovs->stop(true);
  im.server->stop();
  ::unlink(sock.c_str());
  if (!stopped) spdlog::warn("stopping Open vSwitch: {}", stopped.error().message);
  spdlog::info("cellwalld stopped; everything it created is removed");
  return {};
}

void Daemon::onSwitchUp(sw::Switch& s) { impl_->reconcile(s); }
void Daemon::onSwitchDown(sw::Switch& /*s*/) {}

void Daemon::onPacketIn(sw::Switch& s, const ofp::PacketIn& pi) { impl_->packets.handle(s, pi); }

void Daemon::onPortStatus(sw::Switch& /*s*/, const ofp::PortStatus& /*ps*/) {}
void Daemon::onFlowRemoved(sw::Switch& /*s*/, const ofp::FlowRemoved& /*fr*/) {
  // No flow of cellwall's asks for FLOW_REMOVED: connections live in conntrack, not in flows.
}
void Daemon::onError(sw::Switch& /*s*/, std::uint32_t /*xid*/, const ofp::ErrorMsg& err) {
  // A meter that already exists (after a reconnect) is expected; everything else is logged
  // by the channel already.
  (void)err;
}

}  // namespace cw::daemon
