// Server-sent events for the web UI. The control thread publishes; each browser's stream is
// read by the web server's loop thread, which never waits: it reads what is there, and the hub's
// waker tells it when there is news. A new stream first gets a snapshot (the latest value of every
// state, the retained history of every history) and then every event after it, in order, with
// nothing missed or doubled: both come from one sequence under one lock.
//
// Memory is bounded: the live ring keeps the newest events up to a count and a byte size. A
// stream that falls behind the ring (a stalled browser) gets `resync` and is ended; the browser
// reconnects and starts from a new snapshot. Publishing never waits for a reader.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace cw::web {

class EventHub {
 public:
  struct Limits {
    std::size_t ring_events = 4096;
    std::size_t ring_bytes = 8u << 20;
  };
  EventHub() = default;
  explicit EventHub(Limits l) : limits_(l) {}

  // ---- the control thread ----
  // `data` is one line of JSON. A state replaces the previous value of that name.
  void state(const std::string& name, const std::string& data);
  // Kept in a history of the newest `keep` events of that name, which a new stream replays.
  void history(const std::string& name, const std::string& data, std::size_t keep);
  // Delivered to the streams open now only.
  void event(const std::string& name, const std::string& data);
  // Ends every stream (at shutdown); later subscriptions end at once.
  void close();
  // Streams open now: the daemon only gathers what nobody would see when this is 0.
  std::size_t listeners() const;
  // Called after every publish and at close, on the publishing thread, outside the hub's lock;
  // it must be quick and must not call back into the hub (the web server pokes its loop).
  // Empty: none.
  void setWaker(std::function<void()> waker);

  // ---- the reader of a stream (one thread at a time) ----
  class Stream {
   public:
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    // Copies up to `max` bytes of what is due into `out` without waiting. Returns the bytes
    // copied, 0 when nothing is new, or -1 when the stream has ended.
    long readNow(char* out, std::size_t max);
    // Queues a comment line, which keeps proxies and the browser from giving up on a quiet
    // stream; the next readNow returns it.
    void keepAlive();
    // readNow, but waits up to `wait` for news and sends a keep-alive when there was none.
    long read(char* out, std::size_t max, std::chrono::milliseconds wait);

   private:
    friend class EventHub;
    explicit Stream(EventHub& hub) : hub_(hub) {}
    EventHub& hub_;
    std::uint64_t next_ = 0;  // sequence number of the next event to send
    std::string pending_;
    std::size_t sent_ = 0;  // of pending_
    bool ending_ = false;
  };
  std::unique_ptr<Stream> subscribe();

  static std::string format(const std::string& name, const std::string& data);

 private:
  struct Item {
    std::uint64_t seq;
    std::string text;  // formatted
  };
  void push(std::string text);
  void wake();

  Limits limits_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t next_seq_ = 1;
  std::deque<Item> ring_;
  std::size_t ring_bytes_ = 0;
  std::map<std::string, std::string> states_;
  std::map<std::string, std::deque<std::string>> histories_;
  std::size_t listeners_ = 0;
  bool closed_ = false;
  std::shared_ptr<const std::function<void()>> waker_;
};

}  // namespace cw::web
