// What one cw-ofload run measured, and its two renderings: a human summary and one line of
// JSON for scripts (bench/RESULTS.md records both with the command that produced them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "options.h"
#include "sim_switch.h"

namespace cw::ofload {

struct LatencySummary {
  std::uint64_t count = 0;
  double mean_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};

// Sorts `rtts_ns` in place. Percentiles are nearest-rank.
LatencySummary summarize(std::vector<std::int64_t>& rtts_ns);

struct RunResult {
  double seconds = 0;         // measured wall time (steady clock)
  SwitchCounters measured;    // counted inside the measured window only
  SwitchCounters total;       // whole run, handshake and warmup included
  LatencySummary latency;     // setups completed inside the measured window
  std::string first_error;    // first OpenFlow ERROR the controller sent, if any

  double setupsPerSecond() const;
};

std::string formatHuman(const Options& opts, const RunResult& r);
std::string formatJson(const Options& opts, const RunResult& r);  // one line, no newline

}  // namespace cw::ofload
