#include "ids/threshold.h"

#include <iterator>

namespace cw::ids {

namespace {
constexpr std::uint64_t kNsPerSecond = 1'000'000'000;
}

std::size_t ThresholdTable::KeyHash::operator()(const Key& k) const noexcept {
  std::hash<IpAddr> h;
  std::size_t v = h(k.a) * 31 + h(k.b);
  return v * 131 + k.rule * 2 + k.kind;
}

bool ThresholdTable::allow(const Threshold& t, std::uint32_t rule, const IpAddr& src,
                           const IpAddr& dst, std::uint64_t now) {
  Key k;
  k.rule = rule;
  k.kind = t.type == Threshold::Type::kDetectionFilter ? 1 : 0;
  switch (t.track) {
    case Threshold::Track::kBySrc:
      k.a = src;
      break;
    case Threshold::Track::kByDst:
      k.a = dst;
      break;
    case Threshold::Track::kByRule:
      break;
    case Threshold::Track::kByBoth:
      k.a = src, k.b = dst;
      break;
  }
  const std::uint64_t span = std::uint64_t{t.seconds} * kNsPerSecond;
  auto it = map_.find(k);
  if (it == map_.end()) {
    if (map_.size() >= capacity_) {
      for (auto i = map_.begin(); i != map_.end();)
        i = now >= i->second.end ? map_.erase(i) : std::next(i);
      if (map_.size() >= capacity_) {
        map_.clear();
        ++resets_;
      }
    }
    it = map_.emplace(k, Window{}).first;
  }
  Window& w = it->second;
  if (!w.open || now >= w.end) w = Window{now + span, 0, true};
  ++w.count;
  switch (t.type) {
    case Threshold::Type::kLimit:
      return w.count <= t.count;
    case Threshold::Type::kThreshold:
      if (w.count < t.count) return false;
      w.count = 0;
      return true;
    case Threshold::Type::kBoth:
      return w.count == t.count;
    case Threshold::Type::kDetectionFilter:
      return w.count > t.count;
  }
  return true;
}

}  // namespace cw::ids
