// Which connections the web UI's server keeps when peers without the token crowd it
// (docs/web-ui.md, "Nobody without the token can crowd it out").
//
// A connection is *unproven* from its accept until a request on it carries the token. Only
// unproven connections are what a peer without the token can hold, so only they are limited:
//  - each must complete its first request's headers within `header_deadline` of its accept,
//    whatever its pace (a byte every few seconds defeats an idle timeout, not a deadline);
//  - each owner (the uid of the client's socket; one shared bucket when it cannot be told)
//    holds at most `per_owner` of them: one more closes that owner's oldest;
//  - all owners together hold at most `total`: one more closes the oldest of all.
// A new connection is never refused for the sake of older ones: a browser, whose request
// follows its connect at once, always gets in, and whatever another user keeps open crowds out
// only that user's own connections.
//
// Pure bookkeeping: no I/O, the time is passed in, the server closes what it is told to.
// Not thread-safe: the server's loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace cw::web {

class Admission {
 public:
  using Clock = std::chrono::steady_clock;
  using Id = std::uint64_t;  // given by the caller, increasing with each accept
  struct Limits {
    std::chrono::milliseconds header_deadline{10'000};
    std::size_t per_owner = 16;
    std::size_t total = 256;
  };

  explicit Admission(Limits limits) : limits_(limits) {}

  // A new connection (unproven). Returns the older connections to close now; never `id`.
  std::vector<Id> admit(Id id, std::optional<std::uint32_t> owner, Clock::time_point now);
  // A request on it carried the token: no limit applies to it any more.
  void proven(Id id);
  // It is gone (closed by either side).
  void closed(Id id);
  // Unproven connections whose deadline has passed; they count as closed from now on.
  std::vector<Id> expired(Clock::time_point now);
  // When the next unproven connection's deadline passes, if there is one.
  std::optional<Clock::time_point> nextDeadline() const;

  std::size_t unproven() const { return unproven_.size(); }
  std::size_t unproven(std::optional<std::uint32_t> owner) const;
  const Limits& limits() const { return limits_; }

 private:
  using Owner = std::int64_t;  // a uid, or -1: not known
  static Owner key(std::optional<std::uint32_t> owner) { return owner ? Owner{*owner} : -1; }
  struct Entry {
    Owner owner;
    Clock::time_point deadline;
  };
  void forget(std::map<Id, Entry>::iterator it);

  Limits limits_;
  // Ids grow with each accept, so both orders are oldest first (and so earliest deadline first).
  std::map<Id, Entry> unproven_;
  std::map<Owner, std::set<Id>> by_owner_;
};

}  // namespace cw::web
