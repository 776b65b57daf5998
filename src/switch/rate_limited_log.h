// Logs about bad input are rate-limited: at most one line per key per interval, with a count
// of what was suppressed. One instance per thread (not synchronized).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <spdlog/spdlog.h>

namespace cw::sw {

class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::chrono::milliseconds interval = std::chrono::seconds(1))
      : interval_(interval) {}

  template <class... Args>
  void warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < interval_) {
      ++suppressed_;
      return;
    }
    if (suppressed_ > 0) spdlog::warn("({} similar messages suppressed)", suppressed_);
    suppressed_ = 0;
    last_ = now;
    spdlog::warn(fmt, std::forward<Args>(args)...);
  }

 private:
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_{};
  std::uint64_t suppressed_ = 0;
};

}  // namespace cw::sw
