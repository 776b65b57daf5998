#include <algorithm>

#include "dns/dns.h"

namespace cw::dns {

void TcpFramer::reset(std::uint32_t first_seq) {
  next_seq_ = first_seq;
  lost_ = false;
  have_length_ = 0;
  want_ = 0;
  body_.clear();
  body_.shrink_to_fit();
}

std::vector<std::vector<std::uint8_t>> TcpFramer::feed(std::uint32_t seq, Bytes payload) {
  std::vector<std::vector<std::uint8_t>> out;
  if (lost_ || payload.empty()) return out;
  if (!next_seq_) next_seq_ = seq;
  // Sequence numbers wrap: compare them as a signed 32-bit distance (RFC 1982 style).
  const std::uint32_t ahead = seq - *next_seq_;
  if (ahead != 0 && ahead < 0x80000000u) {
    ++gaps_;
    lost_ = true;
    have_length_ = 0;
    body_.clear();
    body_.shrink_to_fit();
    return out;
  }
  if (ahead != 0) {
    const std::uint32_t seen = *next_seq_ - seq;  // retransmitted bytes at the front
    if (seen >= payload.size()) return out;
    payload = payload.subspan(seen);
  }
  *next_seq_ += static_cast<std::uint32_t>(payload.size());

  std::size_t i = 0;
  while (i < payload.size()) {
    if (have_length_ < 2) {
      length_bytes_[have_length_++] = payload[i++];
      if (have_length_ == 2) {
        want_ = std::size_t{length_bytes_[0]} << 8 | length_bytes_[1];
        if (want_ == 0) have_length_ = 0;
        body_.reserve(want_);
      }
      continue;
    }
    const std::size_t take = std::min(want_ - body_.size(), payload.size() - i);
    const auto from = payload.begin() + static_cast<std::ptrdiff_t>(i);
    body_.insert(body_.end(), from, from + static_cast<std::ptrdiff_t>(take));
    i += take;
    if (body_.size() == want_) {
      out.push_back(std::move(body_));
      body_ = {};
      have_length_ = 0;
      ++messages_;
    }
  }
  return out;
}

}  // namespace cw::dns
