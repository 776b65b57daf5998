#include "daemon/prompts.h"

#include <algorithm>

namespace cw::daemon {

Prompts::Held Prompts::hold(const Ask& ask, HeldPacket packet) {
  Held result;
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    const Key key{ask.app, ask.proto, ask.remote, ask.port};
    auto k = by_key_.find(key);
    if (k == by_key_.end()) {
      if (by_id_.size() >= limits_.max_questions || bytes_ + packet.frame.size() > limits_.max_bytes)
        return Held::kFull;
      Question q;
      q.id = next_id_++;
      q.app = ask.app;
      q.cell_id = ask.cell_id;
      q.proto = ask.proto;
      q.remote = ask.remote;
      q.port = ask.port;
      q.names = ask.names;
      q.process = ask.process;
      q.vm = ask.vm;
      q.asked_unix_ms = ask.now_unix_ms;
      q.deadline_mono_ms = ask.now_mono_ms + ask.timeout_ms;
      q.timeout_action = ask.timeout_action;
      k = by_key_.emplace(key, q.id).first;
      by_id_.emplace(q.id, std::move(q));
      ++version_;
      result = Held::kNew;
    } else {
      result = Held::kJoined;
    }
    Question& q = by_id_.at(k->second);
    if (q.names.empty()) q.names = ask.names;  // an answer may have arrived meanwhile
    if (conns_[q.id].emplace(ask.cell_id, ask.local_port).second) {
      ++q.connections;
      if (result == Held::kJoined) ++version_;  // one more connection waits: news for the UI
      changed = true;
    }
    if (q.held.size() >= limits_.max_packets_per_question ||
        bytes_ + packet.frame.size() > limits_.max_bytes) {
      ++q.dropped;  // the app retransmits; the question is open either way
    } else {
      bytes_ += packet.frame.size();
      q.held.push_back(std::move(packet));
    }
  }
  if (changed && on_change_) on_change_();
  return result;
}

Question Prompts::removeLocked(std::map<std::uint64_t, Question>::iterator it) {
  Question q = std::move(it->second);
  by_id_.erase(it);
  by_key_.erase(Key{q.app, q.proto, q.remote, q.port});
  conns_.erase(q.id);
  for (const auto& h : q.held) bytes_ -= h.frame.size();
  ++version_;
  return q;
}

std::optional<Question> Prompts::find(std::uint64_t id) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  Question copy = it->second;
  copy.held.clear();
  return copy;
}

std::optional<Question> Prompts::take(std::uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return removeLocked(it);
}

std::vector<Question> Prompts::expired(std::int64_t now_mono_ms) {
  std::lock_guard lock(mu_);
  std::vector<Question> out;
  for (auto it = by_id_.begin(); it != by_id_.end();) {
    auto next = std::next(it);
    if (it->second.deadline_mono_ms <= now_mono_ms) out.push_back(removeLocked(it));
    it = next;
  }
  return out;
}

std::vector<Question> Prompts::forgetCell(std::uint32_t cell_id) {
  std::lock_guard lock(mu_);
  std::vector<Question> out;
  for (auto it = by_id_.begin(); it != by_id_.end();) {
    auto next = std::next(it);
    Question& q = it->second;
    // A held packet's cell is the one whose port it came in on; the question only remembers
    // the first, so drop by the connection set.
    auto& conns = conns_[q.id];
    std::erase_if(conns, [&](const auto& c) { return c.first == cell_id; });
    if (conns.empty()) {
      out.push_back(removeLocked(it));
    }
    it = next;
  }
  return out;
}

std::vector<Question> Prompts::list() const {
  std::lock_guard lock(mu_);
  std::vector<Question> out;
  for (const auto& [id, q] : by_id_) {
    Question copy = q;
    copy.held.clear();
    out.push_back(std::move(copy));
  }
  return out;  // by id: oldest first
}

std::uint64_t Prompts::version() const {
  std::lock_guard lock(mu_);
  return version_;
}

std::size_t Prompts::heldBytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

}  // namespace cw::daemon
