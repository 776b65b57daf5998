#include "ids/stream.h"

#include <tuple>

namespace cw::ids {

FlowKey FlowKey::of(const IpAddr& src, std::uint16_t sport, const IpAddr& dst, std::uint16_t dport,
                    std::uint8_t proto) {
  FlowKey k;
  k.proto = proto;
  if (std::tie(src, sport) <= std::tie(dst, dport)) {
    k.a = src, k.port_a = sport, k.b = dst, k.port_b = dport;
  } else {
    k.a = dst, k.port_a = dport, k.b = src, k.port_b = sport;
  }
  return k;
}

std::size_t FlowKeyHash::operator()(const FlowKey& k) const noexcept {
  // FNV-1a over the fields: cheap, and the table is keyed by traffic we merely observe.
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const std::uint8_t* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  mix(k.a.b.data(), k.a.b.size());
  mix(k.b.b.data(), k.b.b.size());
  const std::uint8_t rest[5] = {
      static_cast<std::uint8_t>(k.port_a >> 8), static_cast<std::uint8_t>(k.port_a),
      static_cast<std::uint8_t>(k.port_b >> 8), static_cast<std::uint8_t>(k.port_b), k.proto};
  mix(rest, sizeof rest);
  return static_cast<std::size_t>(h);
}

void Reassembler::syn(std::uint32_t seq) {
  if (next_off_ > 0 || !pending_.empty()) return;
  started_ = saw_syn_ = true;
  next_seq_ = first_seq_ = seq + 1;
}

}  // namespace cw::ids
