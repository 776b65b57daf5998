#include "report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace cw::ofload {

namespace {

double toUs(std::int64_t ns) { return static_cast<double>(ns) / 1000.0; }

double percentile(const std::vector<std::int64_t>& sorted, double p) {
  // Nearest rank: the smallest sample with at least p of all samples at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return toUs(sorted[rank - 1]);
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// JSON string escaping for the few free-text fields (host, error text).
std::string jsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

LatencySummary summarize(std::vector<std::int64_t>& rtts_ns) {
  LatencySummary s;
  if (rtts_ns.empty()) return s;
  std::sort(rtts_ns.begin(), rtts_ns.end());
  s.count = rtts_ns.size();
  long double sum = std::accumulate(rtts_ns.begin(), rtts_ns.end(), 0.0L);
  s.mean_us = static_cast<double>(sum / static_cast<long double>(rtts_ns.size()) / 1000.0L);
  s.p50_us = percentile(rtts_ns, 0.50);
  s.p90_us = percentile(rtts_ns, 0.90);
  s.p99_us = percentile(rtts_ns, 0.99);
  s.p999_us = percentile(rtts_ns, 0.999);
  s.max_us = toUs(rtts_ns.back());
  return s;
}

double RunResult::setupsPerSecond() const {
  return seconds > 0 ? static_cast<double>(measured.setups) / seconds : 0.0;
}

std::string formatHuman(const Options& opts, const RunResult& r) {
  std::string out;
  out += "cw-ofload: " + std::string(modeName(opts.mode)) + ", " + std::to_string(opts.switches) +
         " switches x " + std::to_string(opts.ports) + " ports, window " +
         std::to_string(opts.window) + ", wait " + waitName(opts.wait) + ", complete on " +
         completeOnName(opts.complete_on) +
         ", controller " + opts.host + ":" + opts.port + "\n";
  out += "  measured " + fixed(r.seconds, 3) + " s after " + fixed(opts.warmup, 1) +
         " s warmup\n";
  out += "  setups        " + std::to_string(r.measured.setups) + "  (" +
         fixed(r.setupsPerSecond(), 0) + " setups/s)\n";
  out += "  packet-ins    " + std::to_string(r.measured.packet_ins) + " sent, " +
         std::to_string(r.measured.timeouts) + " timed out\n";
  out += "  received      " + std::to_string(r.measured.flow_mods) + " flow mods, " +
         std::to_string(r.measured.packet_outs) + " packet outs, " +
         std::to_string(r.measured.errors) + " errors\n";
  const LatencySummary& l = r.latency;
  if (l.count > 0) {
    out += "  latency (us)  p50 " + fixed(l.p50_us, 1) + "  p90 " + fixed(l.p90_us, 1) +
           "  p99 " + fixed(l.p99_us, 1) + "  p99.9 " + fixed(l.p999_us, 1) + "  max " +
           fixed(l.max_us, 1) + "  mean " + fixed(l.mean_us, 1) + "  (n=" +
           std::to_string(l.count) + ")\n";
  }
  if (!r.first_error.empty()) out += "  first controller error: " + r.first_error + "\n";
  if (r.measured.setups == 0) {
    out += "  no setup completed: does the controller answer these Packet-Ins with a FLOW_MOD "
           "add (or use --complete-on packet_out)?\n";
  }
  return out;
}

std::string formatJson(const Options& opts, const RunResult& r) {
  const LatencySummary& l = r.latency;
  std::string out = "{";
  auto field = [&](const char* name, const std::string& value) {
    if (out.size() > 1) out += ",";
    out += "\"";
    out += name;
    out += "\":" + value;
  };
  auto num = [](std::uint64_t v) { return std::to_string(v); };
  field("tool", "\"cw-ofload\"");
  field("mode", jsonString(modeName(opts.mode)));
  field("controller", jsonString(opts.host + ":" + opts.port));
  field("switches", num(opts.switches));
  field("ports", num(opts.ports));
  field("window", num(opts.window));
  field("wait", jsonString(waitName(opts.wait)));
  field("complete_on", jsonString(completeOnName(opts.complete_on)));
  field("flows_per_setup", num(opts.flows_per_setup));
  field("warmup", fixed(opts.warmup, 3));
  field("seconds", fixed(r.seconds, 3));
  field("setups", num(r.measured.setups));
  field("setups_per_sec", fixed(r.setupsPerSecond(), 1));
  field("packet_ins", num(r.measured.packet_ins));
  field("timeouts", num(r.measured.timeouts));
  field("flow_mods", num(r.measured.flow_mods));
  field("packet_outs", num(r.measured.packet_outs));
  field("errors", num(r.total.errors));
  field("count", num(l.count));
  field("mean_us", fixed(l.mean_us, 1));
  field("p50_us", fixed(l.p50_us, 1));
  field("p90_us", fixed(l.p90_us, 1));
  field("p99_us", fixed(l.p99_us, 1));
  field("p999_us", fixed(l.p999_us, 1));
  field("max_us", fixed(l.max_us, 1));
  if (!r.first_error.empty()) field("first_error", jsonString(r.first_error));
  return out + "}";
}

}  // namespace cw::ofload
