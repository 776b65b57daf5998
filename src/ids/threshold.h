// threshold / detection_filter state: per rule and tracked address(es), a counting window.
// Bounded: when full, windows that have ended are dropped, and if none has, all are (a burst
// of new sources then alerts as if first seen). Single-threaded (one per Engine).
#pragma once

#include <cstdint>
#include <unordered_map>

#include "common/net.h"
#include "ids/rules.h"

namespace cw::ids {

class ThresholdTable {
 public:
  explicit ThresholdTable(std::size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  // Counts one match of rule `rule` under `t` and says whether it may alert:
  //   limit: the first `count` matches of each window; threshold: every count-th match;
  //   both: the count-th match of a window only; detection_filter: each match after the
  //   count-th. A window lasts `seconds` from its first match.
  bool allow(const Threshold& t, std::uint32_t rule, const IpAddr& src, const IpAddr& dst,
             std::uint64_t now_ns);
  std::size_t size() const { return map_.size(); }
  std::uint64_t resets() const { return resets_; }

 private:
  struct Key {
    std::uint32_t rule = 0;
    std::uint8_t kind = 0;  // threshold or detection_filter (a rule may have both)
    IpAddr a, b;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept;
  };
  struct Window {
    std::uint64_t end = 0;  // when the window closes
    std::uint32_t count = 0;
    bool open = false;
  };
  std::size_t capacity_;
  std::unordered_map<Key, Window, KeyHash> map_;
  std::uint64_t resets_ = 0;
};

}  // namespace cw::ids
