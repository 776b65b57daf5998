// Matcher: the compiled, immutable index behind decide().
//
// Layout. Per direction, a path-compressed binary trie over the 128-bit IPv4-mapped address
// space; each node with rules owns, per key protocol (any/tcp/udp/icmp), a run of "port
// segments": the port line 0..65535 cut into pieces, each labelled with the best rule entry
// covering it (computed once with a sweep). Rules without an address live in a separate
// bucket consulted after every trie node, so any address prefix beats "any address".
//
// decide() walks the trie once (at most 129 nodes), then from the deepest matching node
// toward the root does one binary search over that node's segments (at most 17 steps, since
// there are at most 65,537 segments). Nothing depends on the number of rules beyond that, and
// nothing allocates.
//
// IPv6 prefixes never match IPv4 keys (as Cidr::contains says): every IPv4 prefix sits at
// depth >= 96 under ::ffff:0:0/96 and every node shallower than 96 holds only IPv6 prefixes,
// so IPv4 keys simply skip nodes shallower than 96.

#include <algorithm>
#include <array>
#include <cstring>
#include <queue>
#include <tuple>
#include <vector>

#include "policy/policy.h"

namespace cw::policy {

namespace {

constexpr std::uint32_t kNone = 0xffffffffu;
constexpr std::size_t kProtocols = 4;  // indexed by Protocol
constexpr std::uint32_t kAnyPortWidth = 65537;  // wider than any explicit range

unsigned bitAt(const IpAddr& a, unsigned i) {
  return (static_cast<unsigned>(a.b[i / 8]) >> (7 - i % 8)) & 1u;
}

IpAddr masked(const IpAddr& a, unsigned len) {
  IpAddr m = a;
  for (unsigned i = len; i < 128; ++i)
    m.b[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
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

// Precedence within one address prefix, smaller is better: narrowest port range, then a named
// protocol, then deny/reject over allow, then the lower rule id.
struct Rank {
  std::uint32_t width;
  std::uint8_t any_protocol;
  std::uint8_t is_allow;
  std::uint32_t id;
  bool operator<(const Rank& o) const {
    return std::tie(width, any_protocol, is_allow, id) <
           std::tie(o.width, o.any_protocol, o.is_allow, o.id);
  }
};

// One (rule, port range) pair placed at one address prefix.
struct Entry {
  std::uint32_t rule;  // index into AppPolicy::rules
  std::uint16_t lo, hi;
  bool any_port;
  Rank rank;
};

bool entryServes(const Entry& e, Protocol rule_proto, Protocol key_proto) {
  if (rule_proto != Protocol::kAny && rule_proto != key_proto) return false;
  // Port rules only make sense where there are ports.
  if (!e.any_port) return key_proto == Protocol::kTcp || key_proto == Protocol::kUdp;
  return true;
}

}  // namespace

struct Matcher::Index {
  struct Segment {
    std::uint32_t start;  // first port of the segment; segments are sorted by start
    std::uint32_t rule;   // kNone: no rule covers these ports
  };
  struct Span {
    std::uint32_t offset = 0, count = 0;
  };
  struct Table {
    std::array<Span, kProtocols> by_protocol{};
  };
  struct Node {
    IpAddr prefix;  // masked to len bits
    std::uint32_t len = 0;
    std::array<std::uint32_t, 2> child{kNone, kNone};
    std::uint32_t table = kNone;  // index into tables; kNone: no rules here
  };
  struct Trie {
    std::vector<Node> nodes;  // nodes[0] is the root (::/0)
    std::uint32_t any_address = kNone;  // table for rules without an address
  };

  std::array<Trie, 2> by_direction;  // indexed by Direction
  std::vector<Table> tables;
  std::vector<Segment> segments;

  std::uint32_t insert(Trie& t, const IpAddr& addr, unsigned len);
  std::uint32_t buildTable(const std::vector<Entry>& entries, const std::vector<Rule>& rules);
  std::uint32_t best(std::uint32_t table, Protocol proto, std::uint16_t port) const;
};

std::uint32_t Matcher::Index::insert(Trie& t, const IpAddr& addr, unsigned len) {
  IpAddr p = masked(addr, len);
  auto make = [&](const IpAddr& pre, unsigned l) {
    Node n;
    n.prefix = pre;
    n.len = l;
    t.nodes.push_back(n);
    return static_cast<std::uint32_t>(t.nodes.size() - 1);
  };
  std::uint32_t cur = 0;
  for (;;) {
    if (t.nodes[cur].len == len) return cur;
    unsigned bit = bitAt(p, t.nodes[cur].len);
    std::uint32_t c = t.nodes[cur].child[bit];
    if (c == kNone) {
      std::uint32_t leaf = make(p, len);
      t.nodes[cur].child[bit] = leaf;
      return leaf;
    }
    unsigned clen = t.nodes[c].len;
    unsigned common = commonPrefix(p, t.nodes[c].prefix, std::min(len, clen));
    if (common == clen) {
      cur = c;
      continue;
    }
    // The new prefix diverges from (or ends inside) the child's compressed path: split it.
    std::uint32_t mid = make(masked(p, common), common);
    t.nodes[mid].child[bitAt(t.nodes[c].prefix, common)] = c;
    t.nodes[cur].child[bit] = mid;
    if (common == len) return mid;
    std::uint32_t leaf = make(p, len);
    t.nodes[mid].child[bitAt(p, common)] = leaf;
    return leaf;
  }
}

std::uint32_t Matcher::Index::buildTable(const std::vector<Entry>& entries,
                                         const std::vector<Rule>& rules) {
  Table table;
  for (std::size_t pi = 0; pi < kProtocols; ++pi) {
    auto proto = static_cast<Protocol>(pi);
    std::vector<const Entry*> list;
    for (const auto& e : entries)
      if (entryServes(e, rules[e.rule].match.protocol, proto)) list.push_back(&e);
    Span span;
    span.offset = static_cast<std::uint32_t>(segments.size());
    if (list.empty()) {
      table.by_protocol[pi] = span;
      continue;
    }
    // Sweep the port line: at each boundary add the entries starting there, drop the ones that
    // ended (lazily, from the top of the heap), and label the segment with the best left.
    std::sort(list.begin(), list.end(), [](const Entry* a, const Entry* b) { return a->lo < b->lo; });
    std::vector<std::uint32_t> bounds;
    bounds.reserve(list.size() * 2 + 1);
    bounds.push_back(0);
    for (const Entry* e : list) {
      bounds.push_back(e->lo);
      bounds.push_back(std::uint32_t{e->hi} + 1);
    }
    std::sort(bounds.begin(), bounds.end());
    bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
    auto worse = [](const Entry* a, const Entry* b) { return b->rank < a->rank; };
    std::priority_queue<const Entry*, std::vector<const Entry*>, decltype(worse)> heap(worse);
    std::size_t next = 0;
    std::uint32_t last = kNone - 1;  // differs from every label, so the first one is emitted
    for (std::uint32_t b : bounds) {
      if (b > 65535) break;
      while (next < list.size() && list[next]->lo == b) heap.push(list[next++]);
      while (!heap.empty() && heap.top()->hi < b) heap.pop();
      std::uint32_t label = heap.empty() ? kNone : heap.top()->rule;
      if (label != last) {
        segments.push_back(Segment{b, label});
        last = label;
      }
    }
    span.count = static_cast<std::uint32_t>(segments.size()) - span.offset;
    table.by_protocol[pi] = span;
  }
  tables.push_back(table);
  return static_cast<std::uint32_t>(tables.size() - 1);
}

std::uint32_t Matcher::Index::best(std::uint32_t table, Protocol proto,
                                   std::uint16_t port) const {
  const Span& span = tables[table].by_protocol[static_cast<std::size_t>(proto)];
  if (span.count == 0) return kNone;
  const Segment* first = segments.data() + span.offset;
  const Segment* last = first + span.count;
  // ICMP and protocol-less keys have no port; their segments cover everything from 0.
  std::uint32_t p = (proto == Protocol::kTcp || proto == Protocol::kUdp) ? port : 0;
  const Segment* it = std::upper_bound(
      first, last, p, [](std::uint32_t v, const Segment& s) { return v < s.start; });
  return it == first ? kNone : (it - 1)->rule;
}

Matcher::Matcher(AppPolicy policy) : policy_(std::move(policy)), index_(new Index) {
  const auto& rules = policy_.rules;
  for (std::size_t d = 0; d < 2; ++d) {
    Index::Trie& trie = index_->by_direction[d];
    trie.nodes.push_back(Index::Node{});  // the root, ::/0
    std::vector<std::vector<Entry>> node_entries;
    std::vector<Entry> any_entries;
    for (std::size_t ri = 0; ri < rules.size(); ++ri) {
      const Rule& r = rules[ri];
      if (static_cast<std::size_t>(r.match.direction) != d) continue;
      // Name rules need the DNS table; until it exists they match nothing.
      if (!r.match.hosts.empty()) continue;
      Rank base{kAnyPortWidth, r.match.protocol == Protocol::kAny ? std::uint8_t{1} : std::uint8_t{0},
                r.action == Action::kAllow ? std::uint8_t{1} : std::uint8_t{0}, r.id};
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
      if (r.match.addresses.empty()) {
        any_entries.insert(any_entries.end(), es.begin(), es.end());
        continue;
      }
      for (const auto& c : r.match.addresses) {
        if (c.bits() > 128) continue;  // malformed (only possible through the API)
        std::uint32_t n = index_->insert(trie, c.addr, c.bits());
        if (node_entries.size() < trie.nodes.size()) node_entries.resize(trie.nodes.size());
        node_entries[n].insert(node_entries[n].end(), es.begin(), es.end());
      }
    }
    node_entries.resize(trie.nodes.size());
    for (std::size_t n = 0; n < trie.nodes.size(); ++n)
      if (!node_entries[n].empty()) trie.nodes[n].table = index_->buildTable(node_entries[n], rules);
    if (!any_entries.empty()) trie.any_address = index_->buildTable(any_entries, rules);
  }
}

Matcher::~Matcher() { delete index_; }

Verdict Matcher::decide(const ConnKey& key) const {
  Verdict v;
  v.fallback = policy_.default_action;
  switch (policy_.default_action) {
    case DefaultAction::kAllow: v.action = Action::kAllow; break;
    case DefaultAction::kReject: v.action = Action::kReject; break;
    // Until a prompt answers, the connection is held as if denied.
    case DefaultAction::kDeny:
    case DefaultAction::kPrompt: v.action = Action::kDeny; break;
  }
  auto d = static_cast<std::size_t>(key.direction);
  auto proto_index = static_cast<std::size_t>(key.protocol);
  if (d >= 2 || proto_index >= kProtocols) return v;
  const Index::Trie& trie = index_->by_direction[d];

  unsigned min_depth = key.remote.is_v4() ? 96 : 0;
  std::array<std::uint32_t, 129> path{};
  std::size_t depth = 0;
  std::uint32_t cur = 0;
  for (;;) {
    const Index::Node& n = trie.nodes[cur];
    if (n.table != kNone && n.len >= min_depth) path[depth++] = n.table;
    if (n.len >= 128) break;
    std::uint32_t c = n.child[bitAt(key.remote, n.len)];
    if (c == kNone || !samePrefix(key.remote, trie.nodes[c].prefix, trie.nodes[c].len)) break;
    cur = c;
  }
  auto found = [&](std::uint32_t rule) {
    v.rule = &policy_.rules[rule];
    v.action = v.rule->action;
    return v;
  };
  while (depth > 0) {
    std::uint32_t r = index_->best(path[--depth], key.protocol, key.remote_port);
    if (r != kNone) return found(r);
  }
  if (trie.any_address != kNone) {
    std::uint32_t r = index_->best(trie.any_address, key.protocol, key.remote_port);
    if (r != kNone) return found(r);
  }
  return v;
}

}  // namespace cw::policy
