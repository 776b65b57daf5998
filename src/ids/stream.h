// Flows and TCP reassembly for the IDS: a flow key that both directions share, a bounded LRU
// flow table, and per-direction in-order reassembly.
//
// Pure and single-threaded: an Engine owns one FlowTable; nothing here locks. Times are the
// caller's (nanoseconds, any monotonic origin).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/net.h"

namespace cw::ids {

// A 5-tuple with the two ends in a fixed order (the lower address/port first), so that both
// directions of a connection find the same flow.
struct FlowKey {
  IpAddr a, b;
  std::uint16_t port_a = 0, port_b = 0;
  std::uint8_t proto = 0;

  static FlowKey of(const IpAddr& src, std::uint16_t sport, const IpAddr& dst, std::uint16_t dport,
                    std::uint8_t proto);
  bool operator==(const FlowKey&) const = default;
};

struct FlowKeyHash {
  std::size_t operator()(const FlowKey& k) const noexcept;
};

// One direction of a TCP connection: segments in, in-order bytes out. Bytes before the
// first segment seen (or the SYN) are never delivered; a retransmitted segment's bytes that
// were already delivered are trimmed (the first copy wins); segments after a hole wait, up to
// `ooo_limit` bytes, for the hole to fill. Once more would have to wait, the direction has a
// gap for good: failed() and nothing more is delivered.
class Reassembler {
 public:
  explicit Reassembler(std::size_t ooo_limit = 64 * 1024) : ooo_limit_(ooo_limit) {}

  // A SYN: the data starts at seq + 1. Ignored once data has been seen.
  void syn(std::uint32_t seq);
  // One segment's payload at `seq`; calls deliver(Bytes) for each newly in-order run, in order.
  template <class Deliver>
  void segment(std::uint32_t seq, Bytes data, Deliver&& deliver);

  bool failed() const { return failed_; }
  bool sawSyn() const { return saw_syn_; }
  // Where the stream started: the SYN's seq + 1, or the first segment's seq.
  std::uint32_t firstSeq() const { return first_seq_; }
  std::uint64_t delivered() const { return next_off_; }  // bytes delivered so far
  std::size_t buffered() const { return pending_size_; }
  std::uint64_t trimmedBytes() const { return trimmed_; }    // retransmitted, dropped
  std::uint64_t outOfOrderSegments() const { return ooo_; }  // held for a hole

 private:
  template <class Deliver>
  void drain(Deliver& deliver);

  std::size_t ooo_limit_;
  bool started_ = false, failed_ = false, saw_syn_ = false;
  std::uint32_t first_seq_ = 0;
  std::uint32_t next_seq_ = 0;  // sequence number of the next byte to deliver
  std::uint64_t next_off_ = 0;  // its offset from the start of the stream
  std::map<std::uint64_t, std::vector<std::uint8_t>> pending_;  // by stream offset
  std::size_t pending_size_ = 0;
  std::uint64_t trimmed_ = 0, ooo_ = 0;
};

template <class Deliver>
void Reassembler::segment(std::uint32_t seq, Bytes data, Deliver&& deliver) {
  if (failed_ || data.empty()) return;
  if (!started_) {
    started_ = true;
    next_seq_ = first_seq_ = seq;
  }
  // Serial-number arithmetic: how far this segment starts after the next expected byte.
  auto rel = static_cast<std::int32_t>(seq - next_seq_);
  if (rel < 0) {
    const std::uint64_t old = static_cast<std::uint64_t>(-static_cast<std::int64_t>(rel));
    if (old >= data.size()) {
      trimmed_ += data.size();
      return;
    }
    trimmed_ += old;
    data = data.subspan(static_cast<std::size_t>(old));
    rel = 0;
  }
  if (rel == 0) {
    next_seq_ += static_cast<std::uint32_t>(data.size());
    next_off_ += data.size();
    deliver(data);
    drain(deliver);
    return;
  }
  ++ooo_;
  if (pending_size_ + data.size() > ooo_limit_) {
    failed_ = true;
    pending_.clear();
    pending_size_ = 0;
    return;
  }
  auto& slot = pending_[next_off_ + static_cast<std::uint64_t>(rel)];
  if (slot.size() < data.size()) {
    pending_size_ += data.size() - slot.size();
    slot.assign(data.begin(), data.end());
  }
}

template <class Deliver>
void Reassembler::drain(Deliver& deliver) {
  while (!pending_.empty() && pending_.begin()->first <= next_off_) {
    auto node = pending_.extract(pending_.begin());
    pending_size_ -= node.mapped().size();
    const std::uint64_t start = node.key();
    const std::vector<std::uint8_t>& d = node.mapped();
    if (start + d.size() <= next_off_) {
      trimmed_ += d.size();
      continue;
    }
    const auto skip = static_cast<std::size_t>(next_off_ - start);
    trimmed_ += skip;
    Bytes rest = Bytes(d).subspan(skip);
    next_seq_ += static_cast<std::uint32_t>(rest.size());
    next_off_ += rest.size();
    deliver(rest);
  }
}

// At most `capacity` flows, least recently used first out. Values live in a list: pointers to
// them stay valid until that flow is erased or evicted.
template <class V>
class FlowTable {
 public:
  explicit FlowTable(std::size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  // The flow, marked used now; null if absent.
  V* find(const FlowKey& k, std::uint64_t now) {
    auto it = index_.find(k);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    it->second->last_seen = now;
    return &it->second->value;
  }
  // A new flow (the key must be absent). Evicts the least recently used one when full.
  V& insert(const FlowKey& k, std::uint64_t now, V v) {
    if (index_.size() >= capacity_) {
      index_.erase(lru_.back().key);
      lru_.pop_back();
      ++evictions_;
    }
    lru_.push_front(Entry{k, now, std::move(v)});
    index_.emplace(k, lru_.begin());
    return lru_.front().value;
  }
  void erase(const FlowKey& k) {
    auto it = index_.find(k);
    if (it == index_.end()) return;
    lru_.erase(it->second);
    index_.erase(it);
  }
  // Erases up to `max` flows unused since before now - idle; returns how many.
  std::size_t expire(std::uint64_t now, std::uint64_t idle, std::size_t max = SIZE_MAX) {
    std::size_t n = 0;
    while (n < max && !lru_.empty() && lru_.back().last_seen + idle < now) {
      index_.erase(lru_.back().key);
      lru_.pop_back();
      ++n;
    }
    return n;
  }
  std::size_t size() const { return index_.size(); }
  std::uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    FlowKey key;
    std::uint64_t last_seen;
    V value;
  };
  std::size_t capacity_;
  std::list<Entry> lru_;
  std::unordered_map<FlowKey, typename std::list<Entry>::iterator, FlowKeyHash> index_;
  std::uint64_t evictions_ = 0;
};

}  // namespace cw::ids
