// `cellwall rules ...`, `cellwall log` and `cellwall names`: flags -> one api::Command each.
#include "cli/rules_cmd.h"

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include "cli/process_text.h"
#include "policy/policy.h"

namespace cw::cli {

namespace {

// A TOML basic string.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string stringArray(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 0) out += ", ";
    out += quoted(v[i]);
  }
  return out + "]";
}

std::string timeText(std::int64_t ms) {
  if (ms == 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// printf into a string of whatever length it takes (the names of a busy host can be long).
[[gnu::format(printf, 1, 2)]] std::string formatted(const char* format, ...) {
  std::va_list args, again;
  va_start(args, format);
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string out(n > 0 ? static_cast<std::size_t>(n) + 1 : 1, '\0');
  std::vsnprintf(out.data(), out.size(), format, again);
  va_end(again);
  out.pop_back();
  return out;
}

std::string lifetimeText(const api::RuleInfo& r) {
  std::string out;
  auto add = [&](const std::string& s) {
    if (!out.empty()) out += ", ";
    out += s;
  };
  if (r.expires_ms != 0) add("until " + timeText(r.expires_ms));
  if (r.connections_max != 0)
    add(std::to_string(r.connections_used) + "/" + std::to_string(r.connections_max) + " connections");
  if (r.until_exit) add("until the app exits");
  return out.empty() ? "forever" : out;
}

// The rule's match on one line: the text's lines without the table header, joined.
std::string matchText(const std::string& text) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '[' || line.rfind("action", 0) == 0) continue;
    if (line.rfind("for ", 0) == 0 || line.rfind("until ", 0) == 0 ||
        line.rfind("connections ", 0) == 0)
      continue;
    if (!out.empty()) out += "  ";
    out += line;
  }
  return out;
}

}  // namespace

std::string ruleTextFromFlags(const RuleFlags& f) {
  std::string t = "[[rule]]\n";
  t += "action = " + quoted(f.action) + "\n";
  if (!f.proto.empty()) t += "proto = " + quoted(f.proto) + "\n";
  if (f.inbound) t += "direction = \"inbound\"\n";
  if (!f.hosts.empty()) t += "hosts = " + stringArray(f.hosts) + "\n";
  if (!f.to.empty()) t += "to = " + stringArray(f.to) + "\n";
  if (!f.from.empty()) t += "from = " + stringArray(f.from) + "\n";
  if (!f.ports.empty()) {
    // "443", "8000-8100" and "80,443" all become port specs the policy language checks.
    std::vector<std::string> specs;
    for (const auto& p : f.ports) {
      std::stringstream ss(p);
      std::string one;
      while (std::getline(ss, one, ','))
        if (!one.empty()) specs.push_back(one);
    }
    t += "ports = " + stringArray(specs) + "\n";
  }
  if (!f.for_duration.empty()) t += "for = " + quoted(f.for_duration) + "\n";
  if (!f.until.empty()) t += "until = " + quoted(f.until) + "\n";
  if (f.connections) t += "connections = " + std::to_string(*f.connections) + "\n";
  if (!f.comment.empty()) t += "comment = " + quoted(f.comment) + "\n";
  return t;
}

namespace {

// n scaled by 1000s with one decimal from the first step: "999", "1.2 k", "3.4 M".
std::string scaled(std::uint64_t n, const char* unit, const char* const* prefixes) {
  if (n < 1000) return std::to_string(n) + (*unit != 0 ? std::string(" ") + unit : "");
  double v = static_cast<double>(n);
  int i = 0;
  while (v >= 999.95 && prefixes[i + 1] != nullptr) {
    v /= 1000;
    ++i;
  }
  return formatted("%.1f %s%s", v, prefixes[i], unit);
}

}  // namespace

std::string humanBytes(std::uint64_t n) {
  static const char* const kPrefixes[] = {"", "k", "M", "G", "T", "P", "E", nullptr};
  return scaled(n, "B", kPrefixes);
}
std::string humanCount(std::uint64_t n) {
  static const char* const kPrefixes[] = {"", "k", "M", "G", "T", "P", "E", nullptr};
  return scaled(n, "", kPrefixes);
}

std::string rulesCountersTable(const std::vector<api::RuleInfo>& rules,
                               const std::vector<api::RuleCounters>& counters) {
  auto find = [&](const std::string& app, const std::string& source, std::uint32_t rule) {
    for (const auto& c : counters)
      if (c.app == app && c.source == source && c.rule == rule) return c;
    return api::RuleCounters{app, rule, source};
  };
  auto row = [](const std::string& id, const std::string& app, const std::string& action, const api::RuleCounters& c,
                const std::string& what) {
    return formatted("%-6s %-14s %-9s %9s %10s %9s %10s  %s\n", id.c_str(), app.c_str(), action.c_str(),
                     humanCount(c.sent_packets).c_str(), humanBytes(c.sent_bytes).c_str(),
                     humanCount(c.received_packets).c_str(), humanBytes(c.received_bytes).c_str(), what.c_str());
  };
  std::string out = formatted("%-6s %-14s %-9s %9s %10s %9s %10s  %s\n", "ID", "APP", "ACTION", "PACKETS", "SENT",
                              "PACKETS", "RECEIVED", "MATCH");
  for (const auto& x : rules)
    out += row(std::to_string(x.id), x.app, x.action, find(x.app, "rule", x.id), matchText(x.text));
  // What no rule of the list decided, per app, where anything was counted.
  static const std::pair<const char*, const char*> kOthers[] = {
      {"default", "no rule matched: the app's default"},
      {"script", "a script's verdict"},
      {"prompt", "a prompt's answer without a rule, or its timeout"},
      {"controller", "from another cell, or the controller's own (no rule of this app)"},
      {"other", "not yet attributed: before cellwalld first heard of the rule in that cell"}};
  for (const auto& [name, what] : kOthers) {
    for (const auto& c : counters) {
      const bool dflt = std::string_view(name) == "default";
      if (dflt ? (c.source != "rule" || c.rule != 0) : c.source != name) continue;
      if (c.sent_packets == 0 && c.received_packets == 0) continue;
      out += row("-", c.app, std::string("(") + name + ")", c, what);
    }
  }
  // A rule that is gone but still counted (removed between the listing and the dump): skipped.
  return out;
}

int rulesList(Client& c, const std::string& app, bool json, bool counters) {
  auto r = c.callOk(api::RulesList{app, counters});
  if (!r) return die(r.error().message);
  if (json) {
    for (const auto& x : r->rules) std::printf("%s\n", api::ruleInfoJsonText(x).c_str());
    for (const auto& x : r->counters) std::printf("%s\n", api::ruleCountersJsonText(x).c_str());
    return 0;
  }
  if (counters) {
    std::fputs(rulesCountersTable(r->rules, r->counters).c_str(), stdout);
    return 0;
  }
  std::printf("%-6s %-14s %-7s %-28s %s\n", "ID", "APP", "ACTION", "LIFETIME", "MATCH");
  for (const auto& x : r->rules)
    std::printf("%-6u %-14s %-7s %-28s %s\n", x.id, x.app.c_str(), x.action.c_str(),
                lifetimeText(x).c_str(), matchText(x.text).c_str());
  return 0;
}

int rulesAdd(Client& c, const std::string& app, const RuleFlags& f, bool json) {
  if (app.empty()) return die("rules add needs --app NAME", 2);
  if (f.connections)
    if (auto why = policy::connectionsProblem(*f.connections))
      return die("rules add --connections " + std::to_string(*f.connections) + ": " + *why, 2);
  auto r = c.callOk(api::RuleAdd{app, ruleTextFromFlags(f)});
  if (!r) return die(r.error().message);
  for (const auto& x : r->rules) {
    if (json)
      std::printf("%s\n", api::ruleInfoJsonText(x).c_str());
    else
      std::printf("added rule %u for %s (%s)\n", x.id, x.app.c_str(), lifetimeText(x).c_str());
  }
  return 0;
}

int rulesRemove(Client& c, const std::vector<std::uint32_t>& ids) {
  if (ids.empty()) return die("rules rm needs one or more rule ids", 2);
  int rc = 0;
  for (auto id : ids) {
    auto r = c.callOk(api::RuleRemove{id});
    if (!r) {
      rc = die(r.error().message);
      continue;
    }
    std::printf("removed rule %u\n", id);
  }
  return rc;
}

int rulesExplain(Client& c, const api::RulesExplain& q, bool json) {
  auto r = c.callOk(q);
  if (!r) return die(r.error().message);
  if (json) {
    // TOML basic strings of printable text are valid JSON strings.
    std::printf("%s\n", stringArray(r->lines).c_str());
    return 0;
  }
  for (const auto& l : r->lines) std::printf("%s\n", l.c_str());
  return 0;
}

int rulesExport(Client& c, const std::string& app) {
  if (app.empty()) return die("rules export needs --app NAME", 2);
  auto r = c.callOk(api::PolicyExport{app});
  if (!r) return die(r.error().message);
  std::fputs(r->text.c_str(), stdout);
  return 0;
}

int rulesImport(Client& c, const std::string& app, const std::string& file, bool merge) {
  if (app.empty()) return die("rules import needs --app NAME", 2);
  std::ifstream in(file);
  if (!in) return die("cannot read policy file " + file, 2);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Checked here, where the bytes are: the command's JSON could not carry them to the daemon.
  if (auto bad = policy::checkPolicyText(text, file)) return die(bad->str(), 2);
  auto r = c.callOk(api::PolicyImport{app, text, file, merge});
  if (!r) return die(r.error().message);
  for (const auto& l : r->lines) std::printf("%s\n", l.c_str());
  return 0;
}

std::string logHeader() {
  return formatted("%-19s %-12s %-5s %-5s %-22s %-30s %-7s %-6s %-13s %s", "TIME", "APP", "CELL", "PROTO", "REMOTE",
                   "NAMES", "VERDICT", "RULE", "PACKETS/BYTES", "PROCESS");
}

std::string logLine(const api::LogEntry& e) {
  std::string remote = e.remote_ip;
  if (e.remote_port != 0) {
    remote += ':';
    remote += std::to_string(e.remote_port);
  }
  const std::string counts = std::to_string(e.packets) + "/" + std::to_string(e.bytes);
  std::string line = formatted("%-19s %-12s %-5u %-5s %-22s %-30s %-7s %-6s ", timeText(e.time_ms).c_str(),
                               e.app.c_str(), e.cell, e.proto.c_str(), remote.c_str(),
                               e.names.empty() ? "-" : e.names.c_str(), e.verdict.c_str(),
                               api::decidedBy(e).c_str());
  line += counts;
  const std::string process = processText(e.process, kLogCommandMax);
  if (process.empty()) return line;  // not attributed, for no known reason: nothing to add
  if (counts.size() < 13) line.append(13 - counts.size(), ' ');
  return line.append(" ").append(process);
}

int log(Client& c, const std::string& app, bool follow, bool json, std::uint32_t limit) {
  std::int64_t after = 0;
  bool first = true;
  for (;;) {
    auto r = c.callOk(api::LogQuery{app, after, limit});
    if (!r) return die(r.error().message);
    if (first && !json) std::printf("%s\n", logHeader().c_str());
    first = false;
    for (const auto& e : r->log) {
      after = std::max(after, e.id);
      if (json)
        std::printf("%s\n", api::logEntryJsonText(e).c_str());
      else
        std::printf("%s\n", logLine(e).c_str());
    }
    std::fflush(stdout);
    if (!follow) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

int names(Client& c, std::uint32_t cell) {
  auto r = c.callOk(api::NamesQuery{cell});
  if (!r) return die(r.error().message);
  for (const auto& l : r->lines) std::printf("%s\n", l.c_str());
  return 0;
}

}  // namespace cw::cli
