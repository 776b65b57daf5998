// NameTable: for one cell, which host names it resolved to which addresses, learned from
// snooped DNS answers. The decide layer asks, for each new connection, "which names did this
// cell resolve to X that are still valid?" and matches name rules against the answer.
//
// Pure data structure: no I/O, no clock (callers pass now_ms), no threads, no locks. Not
// thread-safe: the owner serialises every call (the DNS snooper writes, the decider reads on
// the same thread or under the owner's lock). Const calls may run concurrently with each other.
//
// Hostile input: a cell chooses its own queries and, through wildcard zones or its own
// resolver, the answers. So memory is bounded (Limits::max_entries, kMaxNamesPerIp), every
// overflow evicts instead of growing and is counted, and hashes are keyed by Limits::hash_seed
// so a cell cannot precompute colliding names or addresses.
//
// Time: all times are milliseconds on the caller's monotonic clock. An entry recorded at t
// with TTL ttl is valid for now in [t, expiry) where
//     expiry = t + clamp(ttl, min_ttl_s, max_ttl_s) * 1000 + grace_s * 1000,
// i.e. it is no longer returned when now_ms == expiry. Re-recording the same (name, address)
// sets expiry = max(old, new); it never shortens.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "names/flat_index.h"

namespace cw::names {

// Names kept per address. CDN addresses serve many names, but one cell rarely resolves more
// than a handful to the same address within a TTL; beyond this the entry expiring soonest is
// evicted (counted in Stats::evictions). Callers size their names() buffer with it.
inline constexpr std::size_t kMaxNamesPerIp = 16;

// Longest DNS name in text form without the trailing dot (RFC 1035: 255 octets on the wire).
inline constexpr std::size_t kMaxNameLength = 253;

struct Limits {
  std::size_t max_entries =
      100000;  // (name, address) pairs; at the limit the soonest-expiring goes; at most 2^24 - 1
  std::uint32_t grace_s = 30;  // kept after TTL expiry: apps connect a little after TTL
  std::uint32_t min_ttl_s = 0;
  std::uint32_t max_ttl_s = 86400;  // cap: a hostile answer cannot pin an entry forever
  std::uint64_t hash_seed = 0;      // the daemon passes a random value per table
};

struct Stats {
  std::size_t entries = 0;      // (name, address) pairs held, including expired not yet removed
  std::size_t names = 0;        // distinct names interned
  std::size_t addresses = 0;    // distinct addresses
  std::uint64_t evictions = 0;  // valid entries dropped for max_entries or kMaxNamesPerIp
  std::uint64_t expired = 0;    // entries removed after expiry (by expire() or to make room)
  std::uint64_t ignored = 0;    // record() calls with an invalid name or max_entries == 0
  std::size_t size = 0;         // estimated heap bytes held by the table, name strings included
  std::size_t name_size = 0;    // of which name strings (bytes requested, without malloc overhead)
};

// One (address, name) pair for listings; see snapshot().
struct SnapshotEntry {
  IpAddr ip;
  std::string name;
  std::int64_t expires_ms = 0;
  bool operator==(const SnapshotEntry&) const = default;
};

class NameTable {
 public:
  explicit NameTable(Limits limits = {});
  NameTable(const NameTable&) = delete;
  NameTable& operator=(const NameTable&) = delete;
  NameTable(NameTable&&) noexcept;
  NameTable& operator=(NameTable&&) noexcept;
  ~NameTable();

  // Remembers that `name` resolved to `ip`. `name` is lowercase without the trailing dot (the
  // DNS layer normalises); only its length is checked (1..kMaxNameLength) and other names are
  // ignored and counted. May evict: first the soonest-expiring name of `ip` when it already has
  // kMaxNamesPerIp names, else the soonest-expiring entry of the table at max_entries. The new
  // answer always goes in: it is the one the app is about to connect to.
  void record(std::string_view name, const IpAddr& ip, std::uint32_t ttl_s, std::int64_t now_ms);

  // Writes the names valid for `ip` at now_ms into `out`, newest first, and returns how many it
  // wrote (at most out.size(); a buffer of kMaxNamesPerIp always holds them all). Does not
  // allocate. The views point into the table and stay valid until the next non-const call.
  // `expiries` (when as long as `out`): when each name ends, monotonic ms.
  std::size_t names(const IpAddr& ip, std::int64_t now_ms, std::span<std::string_view> out,
                    std::span<std::int64_t> expiries = {}) const;

  // Whether `name` resolved to `ip` and is still valid at now_ms. Does not allocate.
  bool resolved(std::string_view name, const IpAddr& ip, std::int64_t now_ms) const;

  // Removes entries whose expiry is <= now_ms, soonest first, at most max_count of them, and
  // returns how many it removed. Cost is O(removed * log(entries)), independent of the entries
  // that stay, so a timer can call it every second (and pass max_count to bound one call).
  std::size_t expire(std::int64_t now_ms, std::size_t max_count = SIZE_MAX);

  // Drops every name of `ip` (e.g. the cell's connection to it was reset by policy).
  void forget(const IpAddr& ip);

  // Drops everything and returns the memory. Counters (evictions, expired, ignored) are kept:
  // they count over the table's life.
  void clear();

  Stats stats() const;
  const Limits& limits() const { return limits_; }

  // Every entry valid at now_ms, sorted by address then name, for `cellwall names --cell X`.
  // Allocates; not for the packet path.
  std::vector<SnapshotEntry> snapshot(std::int64_t now_ms) const;

 private:
  static constexpr std::uint32_t kNone = 0xffffffffu;
  static constexpr std::uint32_t kV6Flag = 0x80000000u;  // in Entry::pos

  // 32 bytes. The lookup path reads expiry, text, len and next, all in this one record: the
  // name's characters are not touched until the matcher hashes them, and then the names of one
  // address are fetched in parallel instead of one dependent load after another. ip and pos
  // serve removal.
  static constexpr std::uint32_t kMaxIndex = (1u << 24) - 1;  // entries and names: 24 bits
  struct Entry {
    std::int64_t expiry_ms;
    const char* text;         // the name's characters (no terminator)
    std::uint32_t name : 24;  // index into names_; next free entry while on the free list
    std::uint32_t len : 8;    // the name's length (kMaxNameLength < 256)
    std::uint32_t ip;    // IPv4: the address's tag in index4_; IPv6: index into ip6_
    std::uint32_t next;  // next entry of the same address, newest first
    std::uint32_t pos;   // position in heap_, | kV6Flag for IPv6
  };
  static_assert(sizeof(Entry) == 32);

  // IPv4 addresses have no record: index4_ maps the address's tag (a bijection, so the address
  // can be recovered for listings) straight to the head of its entry list. IPv6 addresses need
  // their 16 bytes to confirm a match: index6_ maps a hash to an Ip6Rec. A free Ip6Rec has
  // head == kNone and keeps the next free index in its first address bytes.
  struct Ip6Rec {
    std::array<std::uint8_t, 16> addr;
    std::uint32_t head;
  };
  static_assert(sizeof(Ip6Rec) == 20);

  // An interned name is one allocation: refs (u32), tag (u32, its hash in index_names_),
  // length (u8), then the characters. names_ holds only the pointer (8 bytes per name);
  // nullptr marks a free slot, listed in free_names_.
  static constexpr std::size_t kNameHeader = 9;

  // The head of ip's entry list, or nullptr. Good until the next insert into an index.
  const std::uint32_t* headFor(const IpAddr& ip) const;
  std::uint32_t* headFor(const IpAddr& ip);
  std::uint32_t* headOf(const Entry& e);
  std::uint32_t findName(std::string_view name, std::uint32_t tag) const;  // kNone if absent
  std::uint32_t internName(std::string_view name, std::uint32_t tag);
  std::string_view nameOf(std::uint32_t name_index) const;
  std::uint32_t nameTag(std::string_view name) const;
  std::uint32_t ip4Tag(std::uint32_t addr) const;
  std::uint32_t ip4FromTag(std::uint32_t tag) const;
  std::uint32_t ip6Tag(const std::array<std::uint8_t, 16>& addr) const;
  std::int64_t expiryFor(std::uint32_t ttl_s, std::int64_t now_ms) const;

  void evict(std::uint32_t entry, std::int64_t now_ms);  // counts expired or evictions
  void removeEntry(std::uint32_t entry);
  void releaseName(std::uint32_t name_index);
  void resetStorage();

  // Min-heap of entry indices by expiry: the soonest-expiring entry is heap_[0].
  bool earlier(std::uint32_t a, std::uint32_t b) const;
  void heapPush(std::uint32_t entry);
  void heapRemove(std::uint32_t pos);
  void siftUp(std::uint32_t pos);
  void siftDown(std::uint32_t pos);
  void heapPlace(std::uint32_t pos, std::uint32_t entry);

  Limits limits_;
  std::uint64_t k0_ = 0, k1_ = 0;  // hash key from hash_seed

  std::vector<Entry> entries_;
  std::uint32_t free_entry_ = kNone;
  std::size_t entry_count_ = 0;
  std::vector<std::uint32_t> heap_;

  std::vector<std::unique_ptr<char[]>> names_;
  std::vector<std::uint32_t> free_names_;
  std::size_t name_count_ = 0;
  std::size_t name_size_ = 0;
  FlatIndex index_names_;

  FlatIndex index4_;
  std::vector<Ip6Rec> ip6_;
  std::uint32_t free_ip6_ = kNone;
  FlatIndex index6_;

  std::uint64_t evictions_ = 0;
  std::uint64_t expired_ = 0;
  std::uint64_t ignored_ = 0;
};

}  // namespace cw::names
