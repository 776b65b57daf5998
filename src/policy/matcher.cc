// Matcher: the compiled, immutable index behind decide().
//
// Layout. Per direction ("side"): exact host names in a hash map, wildcard suffixes in another
// (both case-insensitive), and a path-compressed binary trie over the 128-bit IPv4-mapped
// address space; rules without a destination live in one more bucket. Every place a rule can
// be found (a name, a suffix, a trie node, the bucket) owns a table: per key protocol
// (any/tcp/udp/icmp), a run of "port segments", the port line 0..65535 cut into pieces, each
// labelled with the best few entries covering it, best first (computed once with a sweep).
// Every trie node links up to its nearest ancestor with a table, and a big trie (2,048 nodes of
// a family or more) gets a direct-indexed first stride over the first 16 bits of an address of
// that family: a lookup jumps to the deepest node covering its /16, walks down from there and
// climbs back by the up links, so with 100,000 rules it touches a few nodes instead of a path
// of twenty (each a likely cache miss).
//
// decide() visits the places from most to least specific destination (docs/policy.md):
// exact names, wildcard suffixes by label count, trie nodes deepest first, the bucket. At
// each it does one binary search over at most 65,537 segments and takes the first usable entry
// of the segment's run; the first place with one decides. Names of equal specificity (two
// resolved names, two suffixes with as many labels) are compared by rank. Nothing depends on
// the number of rules and nothing allocates. Only when a filter rejects every entry of a
// truncated run does it scan that place's entries in rank order.
//
// IPv6 prefixes never match IPv4 keys (as Cidr::contains says): every IPv4 prefix sits at
// depth >= 96 under ::ffff:0:0/96 and every node shallower than 96 holds only IPv6 prefixes,
// so IPv4 keys simply skip nodes shallower than 96.
//
// explain() does not use the index: it ranks every rule literally, which also makes it a
// cross-check of the index in the tests.

#include <algorithm>
#include <array>
#include <cstring>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "policy/policy.h"

namespace cw::policy {

namespace {

constexpr std::uint32_t kNone = 0xffffffffu;
constexpr std::size_t kProtocols = 4;           // indexed by Protocol
constexpr std::uint32_t kAnyPortWidth = 65537;  // wider than any explicit range
constexpr std::size_t kRun = 4;       // entries kept per segment for filters to skip through
constexpr unsigned kStrideBits = 16;  // the first step of a big trie's walk, direct-indexed
// A family's stride (256 KiB) is built from this many nodes of that family on: at most 128 B
// a node, against a walk of a dozen levels or more from the root.
constexpr std::size_t kStrideMinNodes = 2048;

unsigned bitAt(const IpAddr& a, unsigned i) {
  return (static_cast<unsigned>(a.b[i / 8]) >> (7 - i % 8)) & 1u;
}

IpAddr masked(const IpAddr& a, unsigned len) {
  IpAddr m = a;
  for (unsigned i = len; i < 128; ++i) m.b[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
  return m;
}

bool samePrefix(const IpAddr& a, const IpAddr& b, unsigned len) {
  unsigned full = len / 8;
  if (std::memcmp(a.b.data(), b.b.data(), full) != 0) return false;
  if (len % 8 == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff00u >> (len % 8));
  return (a.b[full] & mask) == (b.b[full] & mask);
}

unsigned commonPrefix(const IpAddr& a, const IpAddr& b, unsigned limit) {
  unsigned i = 0;
  while (i < limit && bitAt(a, i) == bitAt(b, i)) ++i;
  return i;
}

// Precedence within one destination, smaller is better: narrowest port range, then a named
// protocol, then deny/reject over allow, then the lower rule id, then the earlier rule.
struct Rank {
  std::uint32_t width;
  std::uint8_t any_protocol;
  std::uint8_t is_allow;
  std::uint32_t id;
  std::uint32_t rule;
  bool operator<(const Rank& o) const {
    return std::tie(width, any_protocol, is_allow, id, rule) <
           std::tie(o.width, o.any_protocol, o.is_allow, o.id, o.rule);
  }
};

// One (rule, port range) pair placed at one destination.
struct Entry {
  std::uint32_t rule;  // index into AppPolicy::rules
  std::uint16_t lo, hi;
  bool any_port;
  Rank rank;
};

bool isPortProtocol(Protocol p) {
  return p == Protocol::kTcp || p == Protocol::kUdp;
}

bool entryServes(const Entry& e, Protocol rule_proto, Protocol key_proto) {
  if (rule_proto != Protocol::kAny && rule_proto != key_proto) return false;
  // Port rules only make sense where there are ports.
  if (!e.any_port) return isPortProtocol(key_proto);
  return true;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool sameName(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Case-insensitive hash of a host name, 8 bytes at a time. Host names hold only letters,
// digits, '-', '_' and '.', and OR-ing 0x20 into each byte folds case without merging any two
// of those (it maps '_' to DEL, which a name never holds); equality is checked exactly anyway.
std::uint64_t nameHash(std::string_view s) {
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ s.size();
  std::size_t i = 0;
  auto mix = [&h](std::uint64_t w) {
    w |= 0x2020202020202020ULL;
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  };
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    mix(w);
  }
  if (i < s.size()) {
    std::uint64_t w = 0;
    std::memcpy(&w, s.data() + i, s.size() - i);
    mix(w);
  }
  h ^= h >> 29;
  return h * 0xc4ceb9fe1a85ec53ULL;
}

// Host name -> value, open addressing over one flat slot array and one arena of name bytes,
// behind a Bloom filter: most probes are for names no rule mentions, and the filter (one byte
// per 24-byte slot) answers those from cache. Built once, then read-only (thread-safe lookups).
template <class V>
class FlatNameMap {
 public:
  void emplace(std::string_view name, V value) {
    if ((count_ + 1) * 4 > slots_.size() * 3) grow();
    std::uint64_t h = nameHash(name);
    place(h, static_cast<std::uint32_t>(arena_.size()), static_cast<std::uint32_t>(name.size()),
          value);
    arena_.append(name);
    ++count_;
    setBloom(h);
  }
  const V* find(std::string_view name) const {
    if (count_ == 0) return nullptr;
    std::uint64_t h = nameHash(name);
    if (!inBloom(h)) return nullptr;
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.len == kEmpty) return nullptr;
      if (s.hash == h && s.len == name.size() &&
          sameName(std::string_view(arena_.data() + s.offset, s.len), name))
        return &s.value;
    }
  }
  bool empty() const { return count_ == 0; }

 private:
  static constexpr std::uint32_t kEmpty = 0xffffffffu;
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t offset = 0, len = kEmpty;
    V value{};
  };
  void place(std::uint64_t h, std::uint32_t offset, std::uint32_t len, V value) {
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].len != kEmpty) continue;
      slots_[i] = Slot{h, offset, len, value};
      return;
    }
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    // 8 filter bits per slot (slots are at most 3/4 full: >= 10.7 bits per key, a few per cent
    // false positives), so the filter of 100,000 names stays within a core's L2 cache.
    bloom_.assign(slots_.size() / 8, 0);
    bloom_mask_ = bloom_.size() - 1;
    for (const Slot& s : old)
      if (s.len != kEmpty) {
        place(s.hash, s.offset, s.len, s.value);
        setBloom(s.hash);
      }
  }
  // A blocked filter: both bits in one 64-bit word, so a probe costs one load. The word comes
  // from the hash's upper half (the slot index uses the lower bits), the two bits from its top.
  void setBloom(std::uint64_t h) { bloom_[(h >> 32) & bloom_mask_] |= bloomBits(h); }
  bool inBloom(std::uint64_t h) const {
    std::uint64_t bits = bloomBits(h);
    return (bloom_[(h >> 32) & bloom_mask_] & bits) == bits;
  }
  static std::uint64_t bloomBits(std::uint64_t h) {
    return std::uint64_t{1} << (h >> 52 & 63) | std::uint64_t{1} << (h >> 58);
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::vector<std::uint64_t> bloom_;
  std::size_t bloom_mask_ = 0;
  std::size_t count_ = 0;
  std::string arena_;
};

// Resolved names arrive as the resolver saw them: drop the root label's dot.
std::string_view normalName(std::string_view n) {
  if (!n.empty() && n.back() == '.') n.remove_suffix(1);
  return n;
}

std::uint32_t labelCount(std::string_view s) {
  return static_cast<std::uint32_t>(std::count(s.begin(), s.end(), '.')) + 1;
}

// The suffix of `name` with exactly `labels` labels, if something lies before it
// ("a.b.example.org", 2 -> "example.org"); empty otherwise.
std::string_view suffixWithLabels(std::string_view name, std::uint32_t labels) {
  std::uint32_t dots = 0;
  for (std::size_t i = name.size(); i > 0; --i) {
    if (name[i - 1] != '.') continue;
    if (++dots == labels) return i - 1 == 0 ? std::string_view() : name.substr(i);
  }
  return {};
}

// Does resolved name n (normalised) fall strictly below wildcard suffix s?
bool below(std::string_view n, std::string_view s) {
  return n.size() > s.size() + 1 && n[n.size() - s.size() - 1] == '.' &&
         sameName(n.substr(n.size() - s.size()), s);
}

}  // namespace

struct Matcher::Index {
  struct Segment {
    std::uint32_t start;       // first port of the segment; segments are sorted by start
    std::uint32_t run_offset;  // into runs
    std::uint8_t run_count;    // 0: no entry covers these ports
    bool truncated;            // more entries cover these ports than the run holds
  };
  struct Span {
    std::uint32_t offset = 0, count = 0;
  };
  struct Table {
    std::array<Span, kProtocols> by_protocol{};  // into segments
    Span sorted;                                 // into order: this table's entries, best first
  };
  // 32 bytes on a 32-byte boundary: a node is never split over two cache lines.
  struct alignas(32) Node {
    IpAddr prefix;  // masked to len bits
    std::uint32_t len = 0;
    std::array<std::uint32_t, 2> child{kNone, kNone};
    std::uint32_t table = kNone;  // index into tables; kNone: no rules here
  };
  static_assert(sizeof(Node) == 32);
  struct NameSlot {
    std::uint32_t table;
    std::uint32_t labels;
  };
  using NameMap = FlatNameMap<NameSlot>;
  struct Side {
    std::vector<Node> nodes;  // the trie; nodes[0] is the root (::/0)
    // Per node, the nearest strict ancestor with a table (kNone at the top). Apart from the
    // nodes: only a lookup that found nothing below its start climbs.
    std::vector<std::uint32_t> up;
    // First strides, for big tries: slot s of stride4 is the deepest node whose prefix covers
    // all of ::ffff:s.0.0/112 (IPv4 s.0.0.0/16), of stride6 the same for s::/16. A lookup
    // starts there instead of at the root. Empty when the trie is small.
    std::vector<std::uint32_t> stride4, stride6;
    std::uint32_t any_address = kNone;  // table for rules without a destination
    NameMap exact;
    NameMap wildcard;  // keyed by the suffix: "*.example.org" -> "example.org"
    std::uint32_t max_wildcard_labels = 0;
  };

  std::array<Side, 2> by_direction;  // rules naming no process, indexed by Direction
  // Rules naming a process, by tier (RuleMatch::processTier() - 1) and direction; searched
  // before by_direction, highest tier first, only for attributed keys.
  std::array<std::array<Side, 2>, 3> by_tier;
  std::array<bool, 3> tier_used{};
  // Name resolution (resolvableBy): per name or wildcard suffix, the outbound allow rules
  // whose hosts name it, by id.
  struct NameRules {
    std::uint32_t list;    // into resolve_lists
    std::uint32_t labels;
  };
  FlatNameMap<NameRules> resolve_exact, resolve_wildcard;
  std::vector<std::vector<std::uint32_t>> resolve_lists;  // rule indices
  std::uint32_t resolve_max_labels = 0;
  void buildResolve(const std::vector<Rule>& rules);
  std::vector<Entry> entries;
  std::vector<std::uint32_t> order;  // entry indices
  std::vector<std::uint32_t> runs;   // entry indices
  std::vector<Table> tables;
  std::vector<Segment> segments;

  std::uint32_t insert(Side& s, const IpAddr& addr, unsigned len);
  static void link(Side& s);
  // The first-stride slot for `a` (nullptr when its family has no stride), and so where a
  // lookup of `a` starts: the slot's node, or the root.
  static const std::uint32_t* strideSlot(const Side& s, const IpAddr& a) {
    const bool v4 = a.is_v4();
    const std::vector<std::uint32_t>& stride = v4 ? s.stride4 : s.stride6;
    if (stride.empty()) return nullptr;
    const std::size_t at = v4 ? 12 : 0;
    return &stride[std::uint32_t{a.b[at]} << 8 | a.b[at + 1]];
  }
  static std::uint32_t startNode(const Side& s, const IpAddr& a) {
    const std::uint32_t* slot = strideSlot(s, a);
    return slot == nullptr ? 0 : *slot;
  }
  std::uint32_t buildTable(const std::vector<Entry>& es, const std::vector<Rule>& rules);
  std::uint32_t firstUsable(std::uint32_t table, Protocol proto, std::uint16_t port,
                            const std::vector<Rule>& rules, const RuleFilter& filter) const;
  // Places the rules of `tier` with direction d in `side`.
  void build(Side& side, std::size_t d, unsigned tier, const std::vector<Rule>& rules);
  // The best usable entry for `key` on one side, or kNone.
  std::uint32_t search(const Side& side, const ConnKey& key, const std::vector<Rule>& rules,
                       const RuleFilter& filter) const;
};

std::uint32_t Matcher::Index::insert(Side& s, const IpAddr& addr, unsigned len) {
  std::vector<Node>& nodes = s.nodes;
  IpAddr p = masked(addr, len);
  auto make = [&](const IpAddr& pre, unsigned l) {
    Node n;
    n.prefix = pre;
    n.len = l;
    nodes.push_back(n);
    return static_cast<std::uint32_t>(nodes.size() - 1);
  };
  std::uint32_t cur = 0;
  for (;;) {
    if (nodes[cur].len == len) return cur;
    unsigned bit = bitAt(p, nodes[cur].len);
    std::uint32_t c = nodes[cur].child[bit];
    if (c == kNone) {
      std::uint32_t leaf = make(p, len);
      nodes[cur].child[bit] = leaf;
      return leaf;
    }
    unsigned clen = nodes[c].len;
    unsigned common = commonPrefix(p, nodes[c].prefix, std::min(len, clen));
    if (common == clen) {
      cur = c;
      continue;
    }
    // The new prefix diverges from (or ends inside) the child's compressed path: split it.
    std::uint32_t mid = make(masked(p, common), common);
    nodes[mid].child[bitAt(nodes[c].prefix, common)] = c;
    nodes[cur].child[bit] = mid;
    if (common == len) return mid;
    std::uint32_t leaf = make(p, len);
    nodes[mid].child[bitAt(p, common)] = leaf;
    return leaf;
  }
}

// Once the tables are placed: the up links, and the first strides when the trie is big
// enough for a walk from the root to cost more than a lookup in a 256 KiB table.
void Matcher::Index::link(Side& s) {
  std::vector<Node>& nodes = s.nodes;
  s.up.assign(nodes.size(), kNone);
  std::vector<std::uint32_t> stack{0};
  while (!stack.empty()) {
    std::uint32_t n = stack.back();
    stack.pop_back();
    for (std::uint32_t c : nodes[n].child) {
      if (c == kNone) continue;
      s.up[c] = nodes[n].table != kNone ? n : s.up[n];
      stack.push_back(c);
    }
  }
  std::size_t v4_nodes = 0;
  for (const Node& n : nodes)
    if (n.len >= 96 && n.prefix.is_v4()) ++v4_nodes;
  auto fill = [&](std::vector<std::uint32_t>& stride, unsigned base) {
    stride.resize(std::size_t{1} << kStrideBits);
    IpAddr block;  // all zeros: the IPv6 blocks
    if (base == 96) block = IpAddr(Ip4{0});
    const unsigned end = base + kStrideBits;
    for (std::uint32_t slot = 0; slot < stride.size(); ++slot) {
      block.b[base / 8] = static_cast<std::uint8_t>(slot >> 8);
      block.b[base / 8 + 1] = static_cast<std::uint8_t>(slot);
      std::uint32_t cur = 0;
      while (nodes[cur].len < end) {
        std::uint32_t c = nodes[cur].child[bitAt(block, nodes[cur].len)];
        if (c == kNone || nodes[c].len > end || !samePrefix(block, nodes[c].prefix, nodes[c].len))
          break;
        cur = c;
      }
      stride[slot] = cur;
    }
  };
  if (nodes.size() - v4_nodes >= kStrideMinNodes) fill(s.stride6, 0);
  if (v4_nodes >= kStrideMinNodes) fill(s.stride4, 96);
}

std::uint32_t Matcher::Index::buildTable(const std::vector<Entry>& es,
                                         const std::vector<Rule>& rules) {
  Table table;
  const auto base = static_cast<std::uint32_t>(entries.size());
  entries.insert(entries.end(), es.begin(), es.end());
  auto better = [&](std::uint32_t a, std::uint32_t b) {
    return entries[a].rank < entries[b].rank || (!(entries[b].rank < entries[a].rank) && a < b);
  };
  table.sorted.offset = static_cast<std::uint32_t>(order.size());
  for (std::uint32_t i = 0; i < es.size(); ++i) order.push_back(base + i);
  std::sort(order.begin() + table.sorted.offset, order.end(), better);
  table.sorted.count = static_cast<std::uint32_t>(es.size());

  for (std::size_t pi = 0; pi < kProtocols; ++pi) {
    auto proto = static_cast<Protocol>(pi);
    std::vector<std::uint32_t> list;
    for (std::uint32_t i = base; i < entries.size(); ++i)
      if (entryServes(entries[i], rules[entries[i].rule].match.protocol, proto)) list.push_back(i);
    Span span;
    span.offset = static_cast<std::uint32_t>(segments.size());
    if (list.empty()) {
      table.by_protocol[pi] = span;
      continue;
    }
    // Sweep the port line: at each boundary drop the entries that ended, add the ones that
    // start, and label the segment with the best few still active.
    std::vector<std::uint32_t> by_end = list;
    std::sort(list.begin(), list.end(),
              [&](std::uint32_t a, std::uint32_t b) { return entries[a].lo < entries[b].lo; });
    std::sort(by_end.begin(), by_end.end(),
              [&](std::uint32_t a, std::uint32_t b) { return entries[a].hi < entries[b].hi; });
    std::vector<std::uint32_t> bounds;
    bounds.reserve(list.size() * 2 + 1);
    bounds.push_back(0);
    for (std::uint32_t e : list) {
      bounds.push_back(entries[e].lo);
      bounds.push_back(std::uint32_t{entries[e].hi} + 1);
    }
    std::sort(bounds.begin(), bounds.end());
    bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
    std::set<std::uint32_t, decltype(better)> active(better);
    std::size_t next_add = 0;
    std::size_t next_drop = 0;
    for (std::uint32_t b : bounds) {
      if (b > 65535) break;
      while (next_drop < by_end.size() && std::uint32_t{entries[by_end[next_drop]].hi} + 1 <= b)
        active.erase(by_end[next_drop++]);
      while (next_add < list.size() && entries[list[next_add]].lo <= b)
        active.insert(list[next_add++]);
      Segment seg{b, static_cast<std::uint32_t>(runs.size()), 0, active.size() > kRun};
      for (auto it = active.begin(); it != active.end() && seg.run_count < kRun; ++it) {
        runs.push_back(*it);
        ++seg.run_count;
      }
      // Merge with the previous segment when both say the same.
      if (segments.size() > span.offset) {
        const Segment& prev = segments.back();
        if (prev.run_count == seg.run_count && prev.truncated == seg.truncated &&
            std::equal(runs.begin() + prev.run_offset,
                       runs.begin() + prev.run_offset + prev.run_count,
                       runs.begin() + seg.run_offset)) {
          runs.resize(seg.run_offset);
          continue;
        }
      }
      segments.push_back(seg);
    }
    span.count = static_cast<std::uint32_t>(segments.size()) - span.offset;
    table.by_protocol[pi] = span;
  }
  tables.push_back(table);
  return static_cast<std::uint32_t>(tables.size() - 1);
}

std::uint32_t Matcher::Index::firstUsable(std::uint32_t table, Protocol proto, std::uint16_t port,
                                          const std::vector<Rule>& rules,
                                          const RuleFilter& filter) const {
  const Table& t = tables[table];
  const Span& span = t.by_protocol[static_cast<std::size_t>(proto)];
  if (span.count == 0) return kNone;
  const Segment* first = segments.data() + span.offset;
  const Segment* last = first + span.count;
  // ICMP and protocol-less keys have no port; their segments cover everything from 0.
  std::uint32_t p = isPortProtocol(proto) ? port : 0;
  const Segment* it = std::upper_bound(
      first, last, p, [](std::uint32_t v, const Segment& s) { return v < s.start; });
  if (it == first) return kNone;
  const Segment& seg = *(it - 1);
  for (std::uint32_t k = 0; k < seg.run_count; ++k) {
    std::uint32_t e = runs[seg.run_offset + k];
    if (filter(rules[entries[e].rule])) return e;
  }
  if (!seg.truncated) return kNone;
  // The filter rejected every entry the segment keeps: walk the rest in rank order.
  for (std::uint32_t k = 0; k < t.sorted.count; ++k) {
    std::uint32_t e = order[t.sorted.offset + k];
    const Entry& en = entries[e];
    if (!entryServes(en, rules[en.rule].match.protocol, proto)) continue;
    if (p < en.lo || p > en.hi) continue;
    if (filter(rules[en.rule])) return e;
  }
  return kNone;
}

void Matcher::Index::build(Side& side, std::size_t d, unsigned tier,
                           const std::vector<Rule>& rules) {
  side.nodes.push_back(Index::Node{});  // the root, ::/0
  std::vector<std::vector<Entry>> node_entries;
  std::vector<Entry> any_entries;
  std::unordered_map<std::string, std::vector<Entry>> exact_entries, wildcard_entries;
  for (std::size_t ri = 0; ri < rules.size(); ++ri) {
    const Rule& r = rules[ri];
    if (static_cast<std::size_t>(r.match.direction) != d || r.match.processTier() != tier) continue;
    Rank base{kAnyPortWidth, r.match.protocol == Protocol::kAny ? std::uint8_t{1} : std::uint8_t{0},
              r.action == Action::kAllow ? std::uint8_t{1} : std::uint8_t{0}, r.id,
              static_cast<std::uint32_t>(ri)};
    std::vector<Entry> es;
    if (r.match.ports.empty()) {
      es.push_back(Entry{static_cast<std::uint32_t>(ri), 0, 65535, true, base});
    } else {
      for (const auto& pr : r.match.ports) {
        if (pr.lo > pr.hi) continue;  // an empty range matches nothing
        Rank rk = base;
        rk.width = std::uint32_t{pr.hi} - pr.lo + 1;
        es.push_back(Entry{static_cast<std::uint32_t>(ri), pr.lo, pr.hi, false, rk});
      }
    }
    if (r.match.addresses.empty() && r.match.hosts.empty()) {
      any_entries.insert(any_entries.end(), es.begin(), es.end());
      continue;
    }
    for (const HostPattern& h : r.match.hosts) {
      // The parser gives lowercase without a trailing dot; rules built in code may not.
      std::string name(normalName(h.name));
      std::transform(name.begin(), name.end(), name.begin(), lower);
      auto& bucket = h.wildcard ? wildcard_entries[name] : exact_entries[name];
      bucket.insert(bucket.end(), es.begin(), es.end());
    }
    for (const auto& c : r.match.addresses) {
      if (c.bits() > 128) continue;  // malformed (only possible through the API)
      std::uint32_t n = insert(side, c.addr, c.bits());
      if (node_entries.size() < side.nodes.size()) node_entries.resize(side.nodes.size());
      node_entries[n].insert(node_entries[n].end(), es.begin(), es.end());
    }
  }
  node_entries.resize(side.nodes.size());
  for (std::size_t n = 0; n < side.nodes.size(); ++n)
    if (!node_entries[n].empty()) side.nodes[n].table = buildTable(node_entries[n], rules);
  Index::link(side);
  if (!any_entries.empty()) side.any_address = buildTable(any_entries, rules);
  for (const auto& [name, es] : exact_entries)
    if (!es.empty())
      side.exact.emplace(name, Index::NameSlot{buildTable(es, rules), labelCount(name)});
  for (const auto& [name, es] : wildcard_entries) {
    if (es.empty()) continue;
    std::uint32_t labels = labelCount(name);
    side.wildcard.emplace(name, Index::NameSlot{buildTable(es, rules), labels});
    side.max_wildcard_labels = std::max(side.max_wildcard_labels, labels);
  }
}

void Matcher::Index::buildResolve(const std::vector<Rule>& rules) {
  std::unordered_map<std::string, std::vector<std::uint32_t>> exact, wildcard;
  for (std::size_t ri = 0; ri < rules.size(); ++ri) {
    const Rule& r = rules[ri];
    if (r.action != Action::kAllow || r.match.direction != Direction::kOutbound) continue;
    for (const HostPattern& h : r.match.hosts) {
      std::string name(normalName(h.name));
      std::transform(name.begin(), name.end(), name.begin(), lower);
      (h.wildcard ? wildcard : exact)[name].push_back(static_cast<std::uint32_t>(ri));
    }
  }
  auto place = [&](FlatNameMap<NameRules>& map, auto& by_name) {
    for (auto& [name, list] : by_name) {
      std::sort(list.begin(), list.end(), [&](std::uint32_t a, std::uint32_t b) {
        return std::tie(rules[a].id, a) < std::tie(rules[b].id, b);
      });
      list.erase(std::unique(list.begin(), list.end()), list.end());
      const std::uint32_t labels = labelCount(name);
      map.emplace(name, NameRules{static_cast<std::uint32_t>(resolve_lists.size()), labels});
      resolve_lists.push_back(std::move(list));
      if (&map == &resolve_wildcard) resolve_max_labels = std::max(resolve_max_labels, labels);
    }
  };
  place(resolve_exact, exact);
  place(resolve_wildcard, wildcard);
}

const Rule* Matcher::resolvableBy(std::string_view name, RuleFilter filter) const {
  const Index& ix = *index_;
  const auto& rules = policy_.rules;
  name = normalName(name);
  if (name.empty()) return nullptr;
  auto first = [&](const Index::NameRules* nr) -> const Rule* {
    if (nr == nullptr) return nullptr;
    for (std::uint32_t ri : ix.resolve_lists[nr->list])
      if (filter(rules[ri])) return &rules[ri];
    return nullptr;
  };
  if (const Rule* r = first(ix.resolve_exact.find(name))) return r;
  for (std::uint32_t labels = ix.resolve_max_labels; labels >= 1; --labels) {
    std::string_view suffix = suffixWithLabels(name, labels);
    if (suffix.data() == nullptr) continue;  // too few labels
    if (const Rule* r = first(ix.resolve_wildcard.find(suffix))) return r;
  }
  return nullptr;
}

Matcher::Matcher(AppPolicy policy) : policy_(std::move(policy)), index_(new Index) {
  const auto& rules = policy_.rules;
  index_->buildResolve(rules);
  restricts_resolution_ = resolveOf(policy_) == Resolve::kRules;
  for (const Rule& r : rules)
    if (unsigned t = r.match.processTier(); t > 0) index_->tier_used[t - 1] = true;
  for (std::size_t d = 0; d < 2; ++d) {
    index_->build(index_->by_direction[d], d, 0, rules);
    for (unsigned t = 1; t <= 3; ++t)
      if (index_->tier_used[t - 1]) index_->build(index_->by_tier[t - 1][d], d, t, rules);
  }
  names_processes_ = index_->tier_used[0] || index_->tier_used[1] || index_->tier_used[2];
}

Matcher::~Matcher() {
  delete index_;
}

Verdict Matcher::fallback() const {
  Verdict v;
  v.fallback = policy_.default_action;
  switch (policy_.default_action) {
    case DefaultAction::kAllow:
      v.action = Action::kAllow;
      break;
    case DefaultAction::kReject:
      v.action = Action::kReject;
      break;
    // Until a prompt answers, the connection is held as if denied.
    case DefaultAction::kDeny:
    case DefaultAction::kPrompt:
      v.action = Action::kDeny;
      break;
  }
  return v;
}

Matcher::IndexStats Matcher::indexStats() const {
  IndexStats st;
  for (const Index::Side& side : index_->by_direction) {
    st.trie_nodes += side.nodes.size();
    st.strides4 += std::size_t{!side.stride4.empty()};
    st.strides6 += std::size_t{!side.stride6.empty()};
  }
  return st;
}

void Matcher::prefetch(const ConnKey& key) const {
  auto d = static_cast<std::size_t>(key.direction);
  if (d >= 2) return;
  if (const std::uint32_t* slot = Index::strideSlot(index_->by_direction[d], key.remote))
    __builtin_prefetch(slot);
}

std::uint32_t Matcher::Index::search(const Side& side, const ConnKey& key,
                                     const std::vector<Rule>& rules,
                                     const RuleFilter& filter) const {
  // Keeps the better of the running best and what table t offers.
  auto consider = [&](std::uint32_t table, std::uint32_t& best) {
    std::uint32_t e = firstUsable(table, key.protocol, key.remote_port, rules, filter);
    if (e != kNone && (best == kNone || entries[e].rank < entries[best].rank)) best = e;
  };

  const bool v4 = key.remote.is_v4();
  const unsigned min_depth = v4 ? 96 : 0;
  const std::uint32_t start = Index::startNode(side, key.remote);
  __builtin_prefetch(&side.nodes[start]);

  // 1. Exact host names: all equally specific, so every resolved name competes by rank.
  if (!side.exact.empty()) {
    std::uint32_t best = kNone;
    for (std::string_view raw : key.names) {
      std::string_view n = normalName(raw);
      if (n.empty()) continue;
      if (const auto* slot = side.exact.find(n)) consider(slot->table, best);
    }
    if (best != kNone) return best;
  }
  {
    // By now the start node has arrived: fetch the child the walk will visit first while the
    // wildcards are probed.
    const Index::Node& s0 = side.nodes[start];
    if (s0.len < 128) {
      std::uint32_t c = s0.child[bitAt(key.remote, s0.len)];
      if (c != kNone) __builtin_prefetch(&side.nodes[c]);
    }
  }
  // 2. Wildcards, the pattern with more labels first.
  for (std::uint32_t labels = side.max_wildcard_labels; labels >= 1 && !side.wildcard.empty();
       --labels) {
    std::uint32_t best = kNone;
    for (std::string_view raw : key.names) {
      std::string_view suffix = suffixWithLabels(normalName(raw), labels);
      if (suffix.data() == nullptr) continue;  // too few labels
      if (const auto* slot = side.wildcard.find(suffix)) consider(slot->table, best);
    }
    if (best != kNone) return best;
  }
  // 3. Address prefixes, longest first: walk down from the first stride's node (or the root)
  // collecting tables, then climb from that node by its up links. (`start` was looked up and
  // its node prefetched before the names: that load overlaps their probes.)
  std::array<std::uint32_t, 129> path{};
  std::size_t depth = 0;
  for (std::uint32_t cur = start;;) {
    const Index::Node& n = side.nodes[cur];
    if (n.table != kNone && n.len >= min_depth) path[depth++] = n.table;
    if (n.len >= 128) break;
    std::uint32_t c = n.child[bitAt(key.remote, n.len)];
    if (c == kNone || !samePrefix(key.remote, side.nodes[c].prefix, side.nodes[c].len)) break;
    cur = c;
  }
  while (depth > 0) {
    std::uint32_t best = kNone;
    consider(path[--depth], best);
    if (best != kNone) return best;
  }
  for (std::uint32_t u = side.up[start]; u != kNone && side.nodes[u].len >= min_depth;
       u = side.up[u]) {
    std::uint32_t best = kNone;
    consider(side.nodes[u].table, best);
    if (best != kNone) return best;
  }
  // 4. No destination.
  if (side.any_address != kNone) {
    std::uint32_t best = kNone;
    consider(side.any_address, best);
    if (best != kNone) return best;
  }
  return kNone;
}

Verdict Matcher::decide(const ConnKey& key, RuleFilter filter) const {
  Verdict v = fallback();
  auto d = static_cast<std::size_t>(key.direction);
  auto proto_index = static_cast<std::size_t>(key.protocol);
  if (d >= 2 || proto_index >= kProtocols) return v;
  const Index& ix = *index_;
  const auto& rules = policy_.rules;
  auto found = [&](std::uint32_t e) {
    v.rule = &rules[ix.entries[e].rule];
    v.action = v.rule->action;
    return v;
  };
  // 0. Rules naming the process, the most specific tier first; only for an attributed key.
  if (names_processes_ && key.process != nullptr) {
    auto own = [&](const Rule& r) { return processMatches(r.match, key.process) && filter(r); };
    const RuleFilter mine = RuleFilter::of(own);
    for (std::size_t t = 3; t-- > 0;) {
      if (!ix.tier_used[t]) continue;
      std::uint32_t e = ix.search(ix.by_tier[t][d], key, rules, mine);
      if (e != kNone) return found(e);
    }
  }
  std::uint32_t e = ix.search(ix.by_direction[d], key, rules, filter);
  return e != kNone ? found(e) : v;
}

// --- explain: a literal ranking of every rule -------------------------------------------

namespace {

constexpr const char* kClassName[] = {"an exact host", "a wildcard host", "an address prefix",
                                      "no destination"};

constexpr const char* kTierName[] = {"no process", "a user",
                                     "an executable, process name or parent", "a pid"};

struct Scored {
  std::size_t index;
  // Smaller is better, field by field (docs/policy.md).
  std::uint8_t tier_rank;  // 3 - processTier(): a rule naming a pid first
  std::uint8_t cls;        // 0 exact host, 1 wildcard, 2 prefix, 3 none
  std::uint32_t dest_len;  // wildcard labels / prefix bits in the family; larger is better
  std::uint32_t width;
  std::uint8_t any_protocol;
  std::uint8_t is_allow;
  std::uint32_t id;
  std::string what;
  auto key() const {
    return std::make_tuple(tier_rank, cls, kNone - dest_len, width, any_protocol, is_allow, id,
                           index);
  }
};

std::string whyBelow(const Scored& up, const Scored& me) {
  if (up.tier_rank != me.tier_rank)
    return std::string("a rule naming ") + kTierName[3 - up.tier_rank] + " beats one naming " +
           kTierName[3 - me.tier_rank];
  if (up.cls != me.cls) return std::string(kClassName[up.cls]) + " beats " + kClassName[me.cls];
  if (up.dest_len != me.dest_len) {
    std::string a = std::to_string(me.dest_len), b = std::to_string(up.dest_len);
    return me.cls == 1 ? "wildcard with fewer labels (" + a + " < " + b + ")"
                       : "shorter prefix (" + a + " < " + b + " bits)";
  }
  if (up.width != me.width) {
    if (me.width == kAnyPortWidth) return "any port is wider than a port range";
    return "wider ports (" + std::to_string(me.width) + " > " + std::to_string(up.width) + ")";
  }
  if (up.any_protocol != me.any_protocol) return "a named protocol wins over proto any";
  if (up.is_allow != me.is_allow) return "deny/reject wins over allow at equal specificity";
  if (up.id != me.id)
    return "higher id (" + std::to_string(me.id) + " > " + std::to_string(up.id) + ")";
  return "later in the policy";
}

}  // namespace

Explanation Matcher::explain(const ConnKey& key, RuleFilter filter) const {
  Explanation out;
  out.verdict = decide(key, filter);
  std::vector<Scored> scored;
  const auto& rules = policy_.rules;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const Rule& r = rules[i];
    const RuleMatch& m = r.match;
    if (m.direction != key.direction) continue;
    if (m.protocol != Protocol::kAny && m.protocol != key.protocol) continue;
    if (!processMatches(m, key.process)) continue;
    Scored s{i,
             static_cast<std::uint8_t>(3 - m.processTier()),
             4,
             0,
             kAnyPortWidth,
             m.protocol == Protocol::kAny ? std::uint8_t{1} : std::uint8_t{0},
             r.action == Action::kAllow ? std::uint8_t{1} : std::uint8_t{0},
             r.id,
             {}};
    auto offer = [&](std::uint8_t cls, std::uint32_t len, std::string what) {
      if (cls < s.cls || (cls == s.cls && len > s.dest_len)) {
        s.cls = cls;
        s.dest_len = len;
        s.what = std::move(what);
      }
    };
    for (const HostPattern& h : m.hosts) {
      std::string_view pattern = normalName(h.name);
      for (std::string_view raw : key.names) {
        std::string_view n = normalName(raw);
        if (n.empty()) continue;
        if (!h.wildcard && sameName(n, pattern)) offer(0, 0, "exact host " + h.str());
        if (h.wildcard && below(n, pattern))
          offer(1, labelCount(pattern),
                "wildcard host " + h.str() + " (" + std::to_string(labelCount(pattern)) +
                    " labels) for " + std::string(n));
      }
    }
    for (const Cidr& c : m.addresses)
      if (c.contains(key.remote))
        offer(2, c.length, "prefix " + c.str() + " (" + std::to_string(c.length) + " bits)");
    if (m.hosts.empty() && m.addresses.empty()) offer(3, 0, "no destination (any address)");
    if (s.cls > 3) continue;
    if (!m.ports.empty()) {
      if (!isPortProtocol(key.protocol)) continue;
      const PortRange* best = nullptr;
      for (const PortRange& pr : m.ports)
        if (pr.contains(key.remote_port) &&
            (best == nullptr || pr.hi - pr.lo < best->hi - best->lo))
          best = &pr;
      if (best == nullptr) continue;
      s.width = std::uint32_t{best->hi} - best->lo + 1;
      s.what += ", ports " + std::to_string(best->lo);
      if (best->hi != best->lo) s.what += "-" + std::to_string(best->hi);
      s.what += " (width " + std::to_string(s.width) + ")";
    } else {
      s.what += ", any port";
    }
    s.what += m.protocol == Protocol::kAny ? ", any proto"
                                           : ", proto " + std::string(protocolName(m.protocol));
    if (m.processTier() > 0)
      s.what += ", process (" + std::string(kTierName[m.processTier()]) + ")";
    s.what += ", ";
    s.what += actionName(r.action);
    scored.push_back(std::move(s));
  }
  std::sort(scored.begin(), scored.end(),
            [](const Scored& a, const Scored& b) { return a.key() < b.key(); });
  for (std::size_t i = 0; i < scored.size(); ++i) {
    Candidate c;
    c.rule = &rules[scored[i].index];
    c.usable = filter(*c.rule);
    c.reason = scored[i].what;
    if (i > 0)
      c.reason += "; below rule " + std::to_string(scored[i - 1].id) + ": " +
                  whyBelow(scored[i - 1], scored[i]);
    if (!c.usable) c.reason += "; skipped (used up or filtered out)";
    out.candidates.push_back(std::move(c));
  }
  return out;
}

}  // namespace cw::policy
