#include "names/name_table.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <utility>

namespace cw::names {
namespace {

static_assert(kMaxNamesPerIp > 1, "per-address eviction relies on the address keeping a name");
static_assert(kMaxNameLength < 256, "the length is stored in one byte");

constexpr std::uint64_t rotl(std::uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}

struct SipState {
  std::uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }
};

// SipHash-1-3: keyed, so a cell that picks its own names and addresses cannot aim them at one
// probe run without knowing the table's seed. Fast enough for names of a few dozen bytes.
std::uint64_t sipHash13(std::uint64_t k0, std::uint64_t k1, const unsigned char* p, std::size_t n) {
  SipState s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
             k1 ^ 0x7465646279746573ULL};
  std::size_t words = n / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t m = 0;
    std::memcpy(&m, p + i * 8, 8);  // little-endian hosts; the hash is never persisted
    s.v3 ^= m;
    s.round();
    s.v0 ^= m;
  }
  std::uint64_t last = static_cast<std::uint64_t>(n) << 56;
  for (std::size_t i = 0; i < n % 8; ++i) last |= std::uint64_t{p[words * 8 + i]} << (8 * i);
  s.v3 ^= last;
  s.round();
  s.v0 ^= last;
  s.v2 ^= 0xff;
  s.round();
  s.round();
  s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

std::uint32_t fold(std::uint64_t h) {
  return static_cast<std::uint32_t>(h ^ (h >> 32));
}

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// MurmurHash3's finaliser: a bijection on 32 bits, so equal tags mean equal addresses.
std::uint32_t fmix32(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

constexpr std::uint32_t inverseMod32(std::uint32_t c) {  // c odd; Newton doubles the good bits
  std::uint32_t x = c;
  for (int i = 0; i < 4; ++i) x *= 2u - c * x;
  return x;
}
static_assert(0x85ebca6bu * inverseMod32(0x85ebca6bu) == 1u);
static_assert(0xc2b2ae35u * inverseMod32(0xc2b2ae35u) == 1u);

std::uint32_t unfmix32(std::uint32_t h) {
  h ^= h >> 16;
  h *= inverseMod32(0xc2b2ae35u);
  h ^= (h >> 13) ^ (h >> 26);
  h *= inverseMod32(0x85ebca6bu);
  h ^= h >> 16;
  return h;
}

constexpr std::array<std::uint8_t, 12> kV4Prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool isV4(const IpAddr& ip) {
  return std::memcmp(ip.b.data(), kV4Prefix.data(), 12) == 0;
}

std::uint32_t v4Of(const IpAddr& ip) {
  return (std::uint32_t{ip.b[12]} << 24) | (std::uint32_t{ip.b[13]} << 16) |
         (std::uint32_t{ip.b[14]} << 8) | ip.b[15];
}

}  // namespace

NameTable::NameTable(Limits limits) : limits_(limits) {
  // Entry::name holds entry and name indices in 24 bits (and Entry::pos shares 32 with kV6Flag).
  limits_.max_entries = std::min<std::size_t>(limits_.max_entries, kMaxIndex);
  std::uint64_t x = limits_.hash_seed;
  k0_ = splitmix64(x);
  k1_ = splitmix64(x);
}

NameTable::NameTable(NameTable&& o) noexcept {
  *this = std::move(o);
}

NameTable& NameTable::operator=(NameTable&& o) noexcept {
  if (this == &o) return *this;
  limits_ = o.limits_;
  k0_ = o.k0_;
  k1_ = o.k1_;
  entries_ = std::move(o.entries_);
  free_entry_ = o.free_entry_;
  entry_count_ = o.entry_count_;
  heap_ = std::move(o.heap_);
  names_ = std::move(o.names_);
  free_names_ = std::move(o.free_names_);
  name_count_ = o.name_count_;
  name_size_ = o.name_size_;
  index_names_ = std::move(o.index_names_);
  index4_ = std::move(o.index4_);
  ip6_ = std::move(o.ip6_);
  free_ip6_ = o.free_ip6_;
  index6_ = std::move(o.index6_);
  evictions_ = o.evictions_;
  expired_ = o.expired_;
  ignored_ = o.ignored_;
  o.resetStorage();  // the moved-from table is empty and usable
  return *this;
}

NameTable::~NameTable() = default;

std::int64_t NameTable::expiryFor(std::uint32_t ttl_s, std::int64_t now_ms) const {
  std::uint32_t ttl = std::min(std::max(ttl_s, limits_.min_ttl_s), limits_.max_ttl_s);
  return now_ms + std::int64_t{ttl} * 1000 + std::int64_t{limits_.grace_s} * 1000;
}

std::uint32_t NameTable::nameTag(std::string_view name) const {
  return fold(
      sipHash13(k0_, k1_, reinterpret_cast<const unsigned char*>(name.data()), name.size()));
}

std::uint32_t NameTable::ip4Tag(std::uint32_t addr) const {
  return fmix32(addr ^ static_cast<std::uint32_t>(k0_)) ^ static_cast<std::uint32_t>(k1_);
}

std::uint32_t NameTable::ip4FromTag(std::uint32_t tag) const {
  return unfmix32(tag ^ static_cast<std::uint32_t>(k1_)) ^ static_cast<std::uint32_t>(k0_);
}

std::uint32_t NameTable::ip6Tag(const std::array<std::uint8_t, 16>& addr) const {
  return fold(sipHash13(k0_, k1_, addr.data(), addr.size()));
}

std::string_view NameTable::nameOf(std::uint32_t name_index) const {
  const char* d = names_[name_index].get();
  return {d + kNameHeader, static_cast<unsigned char>(d[kNameHeader - 1])};
}

const std::uint32_t* NameTable::headFor(const IpAddr& ip) const {
  if (isV4(ip)) {
    // The tag is a bijection of the address: a tag match is the address.
    return index4_.find(ip4Tag(v4Of(ip)), [](std::uint32_t) { return true; });
  }
  const std::uint32_t* i =
      index6_.find(ip6Tag(ip.b), [&](std::uint32_t id) { return ip6_[id].addr == ip.b; });
  return i == nullptr ? nullptr : &ip6_[*i].head;
}

std::uint32_t* NameTable::headFor(const IpAddr& ip) {
  return const_cast<std::uint32_t*>(std::as_const(*this).headFor(ip));
}

std::uint32_t* NameTable::headOf(const Entry& e) {
  if ((e.pos & kV6Flag) != 0) return &ip6_[e.ip].head;
  return index4_.find(e.ip, [](std::uint32_t) { return true; });
}

std::uint32_t NameTable::findName(std::string_view name, std::uint32_t tag) const {
  const std::uint32_t* i =
      index_names_.find(tag, [&](std::uint32_t id) { return nameOf(id) == name; });
  return i == nullptr ? kNone : *i;
}

std::uint32_t NameTable::internName(std::string_view name, std::uint32_t tag) {
  auto data = std::make_unique_for_overwrite<char[]>(kNameHeader + name.size());
  const std::uint32_t refs = 0;
  std::memcpy(data.get(), &refs, 4);
  std::memcpy(data.get() + 4, &tag, 4);
  data[kNameHeader - 1] = static_cast<char>(name.size());
  std::memcpy(data.get() + kNameHeader, name.data(), name.size());
  std::uint32_t i;
  if (!free_names_.empty()) {
    i = free_names_.back();
    free_names_.pop_back();
    names_[i] = std::move(data);
  } else {
    i = static_cast<std::uint32_t>(names_.size());
    names_.push_back(std::move(data));
  }
  index_names_.insert(tag, i);
  ++name_count_;
  name_size_ += kNameHeader + name.size();
  return i;
}

void NameTable::record(std::string_view name, const IpAddr& ip, std::uint32_t ttl_s,
                       std::int64_t now_ms) {
  if (name.empty() || name.size() > kMaxNameLength || limits_.max_entries == 0) {
    ++ignored_;
    return;
  }
  const std::int64_t expiry = expiryFor(ttl_s, now_ms);
  const std::uint32_t tag = nameTag(name);
  std::uint32_t name_index = findName(name, tag);

  bool made_room = false;
  if (const std::uint32_t* head = headFor(ip)) {
    std::size_t count = 0;
    std::uint32_t soonest = kNone;
    for (std::uint32_t e = *head; e != kNone; e = entries_[e].next) {
      if (entries_[e].name == name_index) {
        if (expiry > entries_[e].expiry_ms) {
          entries_[e].expiry_ms = expiry;
          siftDown(entries_[e].pos & ~kV6Flag);
        }
        return;
      }
      ++count;
      if (soonest == kNone || earlier(e, soonest)) soonest = e;
    }
    if (count >= kMaxNamesPerIp) {
      // The address keeps kMaxNamesPerIp - 1 > 0 names, and the victim's name is not ours (we
      // are not paired with this address), so name_index stays valid.
      evict(soonest, now_ms);
      made_room = true;
    }
  }
  if (!made_room && entry_count_ >= limits_.max_entries) {
    evict(heap_[0], now_ms);
    name_index = findName(name, tag);  // the victim may have been its last user
  }

  if (name_index == kNone) name_index = internName(name, tag);
  char* refs_at = names_[name_index].get();
  std::uint32_t refs;
  std::memcpy(&refs, refs_at, 4);
  ++refs;
  std::memcpy(refs_at, &refs, 4);

  std::uint32_t e = free_entry_;
  if (e != kNone) {
    free_entry_ = entries_[e].name == kMaxIndex ? kNone : entries_[e].name;
  } else {
    e = static_cast<std::uint32_t>(entries_.size());
    entries_.emplace_back();
  }
  Entry& en = entries_[e];
  en.expiry_ms = expiry;
  en.name = name_index & kMaxIndex;  // < max_entries <= kMaxIndex
  en.text = names_[name_index].get() + kNameHeader;
  en.len = name.size() & 0xffu;  // checked above: <= kMaxNameLength
  if (isV4(ip)) {
    en.ip = ip4Tag(v4Of(ip));
    en.pos = 0;
    if (std::uint32_t* head = index4_.find(en.ip, [](std::uint32_t) { return true; })) {
      en.next = *head;
      *head = e;
    } else {
      en.next = kNone;
      index4_.insert(en.ip, e);
    }
  } else {
    en.pos = kV6Flag;
    const std::uint32_t tag6 = ip6Tag(ip.b);
    if (const std::uint32_t* i =
            index6_.find(tag6, [&](std::uint32_t id) { return ip6_[id].addr == ip.b; })) {
      en.ip = *i;
    } else {
      en.ip = free_ip6_;
      if (en.ip != kNone) {
        std::memcpy(&free_ip6_, ip6_[en.ip].addr.data(), 4);
        ip6_[en.ip] = Ip6Rec{ip.b, kNone};
      } else {
        en.ip = static_cast<std::uint32_t>(ip6_.size());
        ip6_.push_back(Ip6Rec{ip.b, kNone});
      }
      index6_.insert(tag6, en.ip);
    }
    en.next = ip6_[en.ip].head;
    ip6_[en.ip].head = e;
  }
  ++entry_count_;
  heapPush(e);
}

std::size_t NameTable::names(const IpAddr& ip, std::int64_t now_ms,
                             std::span<std::string_view> out, std::span<std::int64_t> expiries) const {
  const std::uint32_t* head = headFor(ip);
  if (head == nullptr) return 0;
  std::size_t n = 0;
  for (std::uint32_t e = *head; e != kNone && n < out.size(); e = entries_[e].next) {
    const Entry& en = entries_[e];
    if (now_ms >= en.expiry_ms) continue;
    __builtin_prefetch(en.text);  // the caller hashes every name next
    if (n < expiries.size()) expiries[n] = en.expiry_ms;
    out[n++] = std::string_view(en.text, en.len);
  }
  return n;
}

bool NameTable::resolved(std::string_view name, const IpAddr& ip, std::int64_t now_ms) const {
  const std::uint32_t* head = headFor(ip);
  if (head == nullptr) return false;
  for (std::uint32_t e = *head; e != kNone; e = entries_[e].next)
    if (std::string_view(entries_[e].text, entries_[e].len) == name)
      return now_ms < entries_[e].expiry_ms;
  return false;
}

std::size_t NameTable::expire(std::int64_t now_ms, std::size_t max_count) {
  std::size_t removed = 0;
  while (removed < max_count && !heap_.empty() && entries_[heap_[0]].expiry_ms <= now_ms) {
    removeEntry(heap_[0]);
    ++removed;
  }
  expired_ += removed;
  return removed;
}

void NameTable::forget(const IpAddr& ip) {
  const std::uint32_t* head = headFor(ip);
  if (head == nullptr) return;
  std::size_t count = 0;
  for (std::uint32_t e = *head; e != kNone; e = entries_[e].next) ++count;
  // Removing the last entry drops the address (and may reset the storage): count first, and
  // look the head up again each time because index slots move on erase.
  while (count-- > 0) removeEntry(*headFor(ip));
}

void NameTable::clear() {
  resetStorage();
}

void NameTable::evict(std::uint32_t entry, std::int64_t now_ms) {
  if (entries_[entry].expiry_ms <= now_ms)
    ++expired_;
  else
    ++evictions_;
  removeEntry(entry);
}

void NameTable::removeEntry(std::uint32_t e) {
  const Entry en = entries_[e];
  heapRemove(en.pos & ~kV6Flag);
  std::uint32_t* head = headOf(en);
  if (*head == e) {
    *head = en.next;
  } else {
    std::uint32_t p = *head;
    while (entries_[p].next != e) p = entries_[p].next;
    entries_[p].next = en.next;
  }
  if (*head == kNone) {  // the address has no names left
    if ((en.pos & kV6Flag) != 0) {
      index6_.erase(ip6Tag(ip6_[en.ip].addr), [&](std::uint32_t id) { return id == en.ip; });
      std::memcpy(ip6_[en.ip].addr.data(), &free_ip6_, 4);
      free_ip6_ = en.ip;
    } else {
      index4_.erase(en.ip, [](std::uint32_t) { return true; });
    }
  }
  releaseName(en.name);
  entries_[e].name = (free_entry_ == kNone ? kMaxIndex : free_entry_) & kMaxIndex;
  free_entry_ = e;
  // An idle table gives its memory back: a cell that once resolved a million names should not
  // hold their arrays for the rest of its life.
  if (--entry_count_ == 0) resetStorage();
}

void NameTable::releaseName(std::uint32_t name_index) {
  char* d = names_[name_index].get();
  std::uint32_t refs;
  std::memcpy(&refs, d, 4);
  if (--refs != 0) {
    std::memcpy(d, &refs, 4);
    return;
  }
  std::uint32_t tag;
  std::memcpy(&tag, d + 4, 4);
  index_names_.erase(tag, [&](std::uint32_t id) { return id == name_index; });
  name_size_ -= kNameHeader + static_cast<unsigned char>(d[kNameHeader - 1]);
  names_[name_index].reset();
  free_names_.push_back(name_index);
  --name_count_;
}

void NameTable::resetStorage() {
  // Move-assigning empty vectors frees them; "= {}" assigns an initializer_list and keeps the
  // capacity.
  entries_ = std::vector<Entry>();
  free_entry_ = kNone;
  entry_count_ = 0;
  heap_ = std::vector<std::uint32_t>();
  names_ = std::vector<std::unique_ptr<char[]>>();
  free_names_ = std::vector<std::uint32_t>();
  name_count_ = 0;
  name_size_ = 0;
  index_names_.clear();
  index4_.clear();
  ip6_ = std::vector<Ip6Rec>();
  free_ip6_ = kNone;
  index6_.clear();
}

bool NameTable::earlier(std::uint32_t a, std::uint32_t b) const {
  return entries_[a].expiry_ms < entries_[b].expiry_ms;
}

void NameTable::heapPlace(std::uint32_t pos, std::uint32_t entry) {
  heap_[pos] = entry;
  entries_[entry].pos = (entries_[entry].pos & kV6Flag) | pos;
}

void NameTable::heapPush(std::uint32_t entry) {
  heap_.push_back(entry);
  auto pos = static_cast<std::uint32_t>(heap_.size() - 1);
  heapPlace(pos, entry);
  siftUp(pos);
}

void NameTable::heapRemove(std::uint32_t pos) {
  std::uint32_t last = heap_.back();
  heap_.pop_back();
  if (pos == heap_.size()) return;
  heapPlace(pos, last);
  siftUp(pos);
  siftDown(entries_[last].pos & ~kV6Flag);
}

void NameTable::siftUp(std::uint32_t pos) {
  std::uint32_t e = heap_[pos];
  while (pos > 0) {
    std::uint32_t parent = (pos - 1) / 2;
    if (!earlier(e, heap_[parent])) break;
    heapPlace(pos, heap_[parent]);
    pos = parent;
  }
  heapPlace(pos, e);
}

void NameTable::siftDown(std::uint32_t pos) {
  std::uint32_t e = heap_[pos];
  const auto n = static_cast<std::uint32_t>(heap_.size());
  for (;;) {
    std::uint32_t c = 2 * pos + 1;
    if (c >= n) break;
    if (c + 1 < n && earlier(heap_[c + 1], heap_[c])) ++c;
    if (!earlier(heap_[c], e)) break;
    heapPlace(pos, heap_[c]);
    pos = c;
  }
  heapPlace(pos, e);
}

Stats NameTable::stats() const {
  Stats s;
  s.entries = entry_count_;
  s.names = name_count_;
  s.addresses = index4_.count() + index6_.count();
  s.evictions = evictions_;
  s.expired = expired_;
  s.ignored = ignored_;
  s.name_size = name_size_;
  // malloc rounds each name up to 16 bytes and adds an 8-byte header: count 16 per name.
  s.size = entries_.capacity() * sizeof(Entry) + heap_.capacity() * sizeof(std::uint32_t) +
           names_.capacity() * sizeof(names_[0]) + free_names_.capacity() * sizeof(std::uint32_t) +
           ip6_.capacity() * sizeof(Ip6Rec) + index_names_.size() + index4_.size() +
           index6_.size() + name_size_ + name_count_ * 16;
  return s;
}

std::vector<SnapshotEntry> NameTable::snapshot(std::int64_t now_ms) const {
  std::vector<SnapshotEntry> out;
  auto add = [&](const IpAddr& ip, std::uint32_t head) {
    for (std::uint32_t e = head; e != kNone; e = entries_[e].next)
      if (now_ms < entries_[e].expiry_ms)
        out.push_back(
            SnapshotEntry{ip, std::string(nameOf(entries_[e].name)), entries_[e].expiry_ms});
  };
  index4_.forEach(
      [&](std::uint32_t tag, std::uint32_t head) { add(IpAddr(Ip4{ip4FromTag(tag)}), head); });
  for (const Ip6Rec& r : ip6_)
    if (r.head != kNone) add(IpAddr(Ip6{r.addr}), r.head);
  std::sort(out.begin(), out.end(), [](const SnapshotEntry& a, const SnapshotEntry& b) {
    return a.ip != b.ip ? a.ip < b.ip : a.name < b.name;
  });
  return out;
}

}  // namespace cw::names
