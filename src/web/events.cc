#include "web/events.h"

#include <algorithm>
#include <cstring>

namespace cw::web {

std::string EventHub::format(const std::string& name, const std::string& data) {
  std::string s;
  s.reserve(name.size() + data.size() + 16);
  s.append("event: ").append(name).append("\ndata: ").append(data).append("\n\n");
  return s;
}

void EventHub::push(std::string text) {
  ring_bytes_ += text.size();
  ring_.push_back(Item{next_seq_++, std::move(text)});
  while (!ring_.empty() && (ring_.size() > limits_.ring_events || ring_bytes_ > limits_.ring_bytes)) {
    ring_bytes_ -= ring_.front().text.size();
    ring_.pop_front();
  }
}

void EventHub::setWaker(std::function<void()> waker) {
  std::lock_guard lock(mu_);
  waker_ = waker ? std::make_shared<const std::function<void()>>(std::move(waker)) : nullptr;
}

void EventHub::wake() {
  std::shared_ptr<const std::function<void()>> w;
  {
    std::lock_guard lock(mu_);
    w = waker_;
  }
  if (w) (*w)();
}

void EventHub::state(const std::string& name, const std::string& data) {
  std::string text = format(name, data);
  {
    std::lock_guard lock(mu_);
    states_[name] = text;
    push(std::move(text));
  }
  cv_.notify_all();
  wake();
}

void EventHub::history(const std::string& name, const std::string& data, std::size_t keep) {
  std::string text = format(name, data);
  {
    std::lock_guard lock(mu_);
    auto& h = histories_[name];
    h.push_back(text);
    while (h.size() > keep) h.pop_front();
    push(std::move(text));
  }
  cv_.notify_all();
  wake();
}

void EventHub::event(const std::string& name, const std::string& data) {
  std::string text = format(name, data);
  {
    std::lock_guard lock(mu_);
    push(std::move(text));
  }
  cv_.notify_all();
  wake();
}

void EventHub::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
  wake();
}

std::size_t EventHub::listeners() const {
  std::lock_guard lock(mu_);
  return listeners_;
}

std::unique_ptr<EventHub::Stream> EventHub::subscribe() {
  std::unique_ptr<Stream> s(new Stream(*this));
  std::lock_guard lock(mu_);
  ++listeners_;
  s->next_ = next_seq_;
  s->pending_ = "retry: 1000\n\n";
  for (const auto& [name, text] : states_) s->pending_ += text;
  for (const auto& [name, h] : histories_)
    for (const auto& text : h) s->pending_ += text;
  return s;
}

EventHub::Stream::~Stream() {
  std::lock_guard lock(hub_.mu_);
  --hub_.listeners_;
}

long EventHub::Stream::readNow(char* out, std::size_t max) {
  if (sent_ == pending_.size()) {
    if (ending_) return -1;
    pending_.clear();
    sent_ = 0;
    std::lock_guard lock(hub_.mu_);
    if (hub_.closed_) return -1;
    if (hub_.next_seq_ <= next_) return 0;
    if (hub_.ring_.empty() || hub_.ring_.front().seq > next_) {
      // Fell behind the ring: what was missed is gone. Start again from a snapshot.
      pending_ = format("resync", "{}");
      ending_ = true;
    } else {
      auto it = std::lower_bound(hub_.ring_.begin(), hub_.ring_.end(), next_,
                                 [](const Item& i, std::uint64_t seq) { return i.seq < seq; });
      // Copy a bounded batch so the lock is held briefly; the rest comes on the next read.
      for (std::size_t bytes = 0; it != hub_.ring_.end() && bytes < (256u << 10); ++it) {
        pending_ += it->text;
        bytes += it->text.size();
        next_ = it->seq + 1;
      }
    }
  }
  std::size_t n = std::min(max, pending_.size() - sent_);
  std::memcpy(out, pending_.data() + sent_, n);
  sent_ += n;
  return static_cast<long>(n);
}

void EventHub::Stream::keepAlive() {
  if (sent_ == pending_.size()) {
    pending_ = ": keep-alive\n\n";
    sent_ = 0;
  }
}

long EventHub::Stream::read(char* out, std::size_t max, std::chrono::milliseconds wait) {
  long n = readNow(out, max);
  if (n != 0) return n;
  {
    std::unique_lock lock(hub_.mu_);
    hub_.cv_.wait_for(lock, wait, [this] { return hub_.closed_ || hub_.next_seq_ > next_; });
  }
  n = readNow(out, max);
  if (n != 0) return n;
  keepAlive();
  return readNow(out, max);
}

}  // namespace cw::web
