// The engine: frame -> flow -> (TCP) reassembly -> Hyperscan -> rule judgement -> alert.
//
// A TCP rule's patterns are in the stream database, scanned over each direction's in-order
// bytes. Each match is recorded in that direction's Progress for the rule (per pattern: the
// first and the latest few match ends); a relative pattern's match counts only if it sits at
// the right distance after a recorded match of the pattern it is relative to. After the
// packet's bytes are scanned, each rule that got a match and has all its positive Hyperscan
// patterns matched is judged on the rest (header, flow, dsize, flags, negated patterns, PCRE2
// patterns) and alerts at most once per flow direction. UDP, ICMP and `ip` rules are the same
// over one packet's payload with the block database and fresh Progress.
#include "ids/engine.h"

#include <array>

#include "ids/compiled.h"
#include "ids/stream.h"
#include "ids/threshold.h"
#include "packet/frame.h"

namespace cw::ids {
namespace {

using packet::Frame;

// What is known about one pattern's matches in one stream (or packet).
struct PatternState {
  bool seen = false;
  std::uint64_t first = 0;                // the earliest end: best for distance alone
  std::array<std::uint64_t, 4> recent{};  // the latest ends: best for within
  std::uint8_t count = 0, next = 0;

  void add(std::uint64_t end) {
    if (!seen) first = end;
    seen = true;
    recent[next] = end;
    next = static_cast<std::uint8_t>((next + 1) % recent.size());
    if (count < recent.size()) ++count;
  }
};

struct Progress {
  std::vector<PatternState> patterns;
  std::uint64_t epoch = 0;    // the packet that last touched it
  std::uint32_t hs_seen = 0;  // positive Hyperscan patterns matched
  bool fired = false;
};
// Progress by rule index: open addressing over a power-of-two table, since this lookup runs
// for every Hyperscan match (std::unordered_map's was half the engine's time with 1,000
// rules). References stay valid until the next insertion.
class ProgressMap {
 public:
  Progress* find(std::uint32_t rule) {
    if (table_.empty()) return nullptr;
    for (std::size_t i = slotOf(rule);; i = (i + 1) & (table_.size() - 1)) {
      const std::uint32_t at = table_[i];
      if (at == kEmpty) return nullptr;
      if (items_[at].rule == rule) return &items_[at].progress;
    }
  }
  Progress& operator[](std::uint32_t rule) {
    if (Progress* p = find(rule)) return *p;
    if ((items_.size() + 1) * 2 > table_.size()) grow();
    std::size_t i = slotOf(rule);
    while (table_[i] != kEmpty) i = (i + 1) & (table_.size() - 1);
    table_[i] = static_cast<std::uint32_t>(items_.size());
    items_.push_back(Item{rule, static_cast<std::uint32_t>(i), Progress{}});
    return items_.back().progress;
  }
  void clear() {
    for (const Item& it : items_) table_[it.slot] = kEmpty;
    items_.clear();
  }

 private:
  static constexpr std::uint32_t kEmpty = UINT32_MAX;
  struct Item {
    std::uint32_t rule, slot;
    Progress progress;
  };
  std::size_t slotOf(std::uint32_t rule) const {
    return (rule * 0x9e3779b1u) & (table_.size() - 1);
  }
  void grow() {
    table_.assign(table_.empty() ? 16 : table_.size() * 2, kEmpty);
    for (std::size_t k = 0; k < items_.size(); ++k) {
      std::size_t i = slotOf(items_[k].rule);
      while (table_[i] != kEmpty) i = (i + 1) & (table_.size() - 1);
      table_[i] = static_cast<std::uint32_t>(k);
      items_[k].slot = static_cast<std::uint32_t>(i);
    }
  }
  std::vector<std::uint32_t> table_;
  std::vector<Item> items_;
};

struct HsStreamClose {
  void operator()(hs_stream_t* s) const { hs_close_stream(s, nullptr, nullptr, nullptr); }
};
struct ScratchFree {
  void operator()(hs_scratch_t* s) const { hs_free_scratch(s); }
};
struct MatchDataFree {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
struct MatchContextFree {
  void operator()(pcre2_match_context* m) const { pcre2_match_context_free(m); }
};

struct Direction {
  Reassembler reasm;
  std::unique_ptr<hs_stream_t, HsStreamClose> hs;
  ProgressMap progress;
  std::vector<std::uint8_t> window;  // the last bytes, for PCRE2 patterns
  std::uint64_t inspected = 0;
  bool ended = false;  // a gap, or stream_depth reached
  bool fin = false;
};

struct Flow {
  IpAddr client;
  std::uint16_t client_port = 0;
  bool established = false;
  std::array<bool, 2> seen{};
  std::array<Direction, 2> dir;  // [0] client -> server, [1] server -> client (TCP only)
};

struct Packet {
  const Frame* f = nullptr;
  Bytes payload;
  std::uint64_t now = 0;
  bool has_flow = false, from_client = true, established = false;
};

bool protoMatches(Proto p, const Frame& f) {
  switch (p) {
    case Proto::kIp:
      return true;
    case Proto::kTcp:
      return f.isTcp();
    case Proto::kUdp:
      return f.isUdp();
    case Proto::kIcmp:
      return f.l4 == packet::L4::kIcmp || f.l4 == packet::L4::kIcmpv6;
  }
  return false;
}

bool headerMatches(const Rule& r, const Frame& f) {
  const bool ports = f.isTcp() || f.isUdp();
  auto one = [&](const IpAddr& s, std::uint16_t sp, const IpAddr& d, std::uint16_t dp) {
    return r.src.matches(s) && r.dst.matches(d) &&
           (!ports || (r.sport.matches(sp) && r.dport.matches(dp)));
  };
  return one(f.ip_src, f.src_port, f.ip_dst, f.dst_port) ||
         (r.bidirectional && one(f.ip_dst, f.dst_port, f.ip_src, f.src_port));
}

bool flowMatches(const FlowOpts& o, const Packet& pk) {
  if (o.to_server && !(pk.has_flow && pk.from_client)) return false;
  if (o.to_client && !(pk.has_flow && !pk.from_client)) return false;
  if (o.established && !(pk.has_flow && pk.established)) return false;
  if (o.not_established && pk.has_flow && pk.established) return false;
  return true;
}

// Whether a match of relative pattern `p` ending at `end` sits where it must after one of
// the recorded matches of the pattern it is relative to.
bool relativeOk(const Pattern& p, std::uint32_t size, const PatternState& prev, std::uint64_t end) {
  if (!prev.seen) return false;
  const auto start = static_cast<std::int64_t>(end) - static_cast<std::int64_t>(size);
  const std::int64_t d = p.distance.value_or(0);
  auto fits = [&](std::uint64_t e) {
    const auto from = static_cast<std::int64_t>(e) + d;
    if (start < from) return false;
    return !p.within ||
           static_cast<std::int64_t>(end) <= from + static_cast<std::int64_t>(*p.within);
  };
  if (fits(prev.first)) return true;
  for (std::uint8_t i = 0; i < prev.count; ++i)
    if (fits(prev.recent[i])) return true;
  return false;
}

std::uint32_t tcpSeq(const Frame& f) {
  ByteReader r(f.raw);
  r.skip(f.l4_offset + 4);
  return r.u32();
}

}  // namespace

struct Engine::Impl {
  const CompiledRules& c;
  Limits limits;
  FlowTable<Flow> flows;
  ThresholdTable thresholds;
  std::unique_ptr<hs_scratch_t, ScratchFree> scratch;
  std::unique_ptr<pcre2_match_data, MatchDataFree> match_data;
  std::unique_ptr<pcre2_match_context, MatchContextFree> match_ctx;
  Stats stats;
  std::uint64_t epoch = 0;
  ProgressMap block_progress;
  std::vector<std::uint32_t> touched, block_touched;
  bool block_for_tcp = false;  // an `ip` rule has Hyperscan patterns: scan TCP packets too

  // The callback's view of one scan.
  struct Scan {
    Impl* self;
    const std::vector<PatternRef>* refs;
    ProgressMap* progress;
    std::vector<std::uint32_t>* touched;
  };

  Impl(const CompiledRules& rules, Limits l)
      : c(rules), limits(l), flows(l.max_flows), thresholds(l.max_threshold_entries) {
    hs_scratch_t* s = nullptr;
    for (const HsDatabase* db : {&c.stream_db, &c.block_db}) {
      // Fails only on allocation failure; a null scratch then skips scanning (scan_errors).
      if (*db && hs_alloc_scratch(db->get(), &s) != HS_SUCCESS) ++stats.scan_errors;
    }
    scratch.reset(s);
    match_data.reset(pcre2_match_data_create(1, nullptr));
    match_ctx.reset(pcre2_match_context_create(nullptr));
    if (match_ctx) {
      pcre2_set_match_limit(match_ctx.get(), 100000);
      pcre2_set_depth_limit(match_ctx.get(), 1000);
    }
    for (std::size_t i = 0; i < c.rules.size(); ++i) {
      if (c.info[i].stream || c.rules[i].proto != Proto::kIp) continue;
      for (int p : c.info[i].pcre2) block_for_tcp = block_for_tcp || p < 0;
    }
  }

  static int onMatch(unsigned id, unsigned long long /*from*/, unsigned long long to,
                     unsigned /*flags*/, void* ctx) {
    auto* scan = static_cast<Scan*>(ctx);
    scan->self->record(*scan, id, to);
    return 0;
  }

  void record(const Scan& scan, unsigned id, std::uint64_t end) {
    if (id >= scan.refs->size()) return;
    const PatternRef ref = (*scan.refs)[id];
    const Rule& rule = c.rules[ref.rule];
    const RuleInfo& info = c.info[ref.rule];
    Progress& p = (*scan.progress)[ref.rule];
    if (p.fired) return;
    if (p.patterns.empty()) p.patterns.resize(rule.patterns.size());
    const Pattern& pat = rule.patterns[ref.pattern];
    const int prev = info.prev[ref.pattern];
    if (prev >= 0 &&
        !relativeOk(pat, info.size[ref.pattern], p.patterns[static_cast<std::size_t>(prev)], end))
      return;
    PatternState& st = p.patterns[ref.pattern];
    if (!st.seen && !pat.negated) ++p.hs_seen;
    st.add(end);
    if (p.epoch != epoch) {
      p.epoch = epoch;
      scan.touched->push_back(ref.rule);
    }
  }

  bool pcre2Matches(int program, Bytes window) {
    if (!match_data) return false;
    int rc = pcre2_match(c.pcre2[static_cast<std::size_t>(program)].get(), window.data(),
                         window.size(), 0, 0, match_data.get(), match_ctx.get());
    if (rc >= 0) return true;
    if (rc != PCRE2_ERROR_NOMATCH) ++stats.scan_errors;
    return false;
  }

  // Everything but the positive Hyperscan patterns, which the caller has checked.
  bool judge(std::uint32_t ri, const Packet& pk, const Progress* p, Bytes window) {
    const Rule& r = c.rules[ri];
    const RuleInfo& info = c.info[ri];
    const Frame& f = *pk.f;
    if (!protoMatches(r.proto, f) || !headerMatches(r, f) || !flowMatches(r.flow, pk)) return false;
    if (r.dsize && !r.dsize->matches(pk.payload.size())) return false;
    if (r.flags && (!f.isTcp() || !r.flags->matches(f.tcp_flags))) return false;
    if (!r.patterns.empty() && pk.payload.empty()) return false;
    for (std::size_t i = 0; i < r.patterns.size(); ++i) {
      const Pattern& pat = r.patterns[i];
      if (info.pcre2[i] >= 0) {
        if (pcre2Matches(info.pcre2[i], window) == pat.negated) return false;
      } else if (pat.negated && p != nullptr && i < p->patterns.size() && p->patterns[i].seen) {
        return false;
      }
    }
    return true;
  }

  void raise(std::uint32_t ri, const Packet& pk, std::vector<Alert>& out) {
    const Rule& r = c.rules[ri];
    const Frame& f = *pk.f;
    for (const auto* t : {&r.detection_filter, &r.threshold}) {
      if (*t && !thresholds.allow(**t, ri, f.ip_src, f.ip_dst, pk.now)) {
        ++stats.alerts_suppressed;
        return;
      }
    }
    Alert a;
    a.sid = r.sid;
    a.rev = r.rev;
    a.msg = r.msg;
    a.src = f.ip_src;
    a.dst = f.ip_dst;
    a.sport = f.src_port;
    a.dport = f.dst_port;
    a.proto = f.ip_proto;
    a.from_client = pk.from_client;
    a.time_ns = pk.now;
    out.push_back(std::move(a));
    ++stats.alerts;
  }

  void feed(Direction& d, Bytes chunk) {
    if (d.ended) return;
    const std::uint64_t room = limits.stream_depth - d.inspected;
    if (chunk.size() > room) chunk = chunk.first(static_cast<std::size_t>(room));
    if (c.stream_db && scratch && !d.hs) {
      hs_stream_t* s = nullptr;
      if (hs_open_stream(c.stream_db.get(), 0, &s) == HS_SUCCESS)
        d.hs.reset(s);
      else
        ++stats.scan_errors;
    }
    if (d.hs && !chunk.empty()) {
      Scan scan{this, &c.stream_refs, &d.progress, &touched};
      if (hs_scan_stream(d.hs.get(), reinterpret_cast<const char*>(chunk.data()),
                         static_cast<unsigned>(chunk.size()), 0, scratch.get(), onMatch,
                         &scan) != HS_SUCCESS)
        ++stats.scan_errors;
    }
    if (c.stream_needs_window) {
      d.window.insert(d.window.end(), chunk.begin(), chunk.end());
      if (d.window.size() > limits.pcre_window)
        d.window.erase(d.window.begin(),
                       d.window.end() - static_cast<std::ptrdiff_t>(limits.pcre_window));
    }
    d.inspected += chunk.size();
    stats.stream_bytes += chunk.size();
    if (d.inspected >= limits.stream_depth) {
      d.ended = true;
      d.hs.reset();
      ++stats.depth_reached;
    }
  }

  // Block-mode rules over this packet's payload, then the rules judged on every packet.
  void packetRules(const Packet& pk, Direction* d, std::vector<Alert>& out) {
    ++epoch;  // fresh Progress entries must count as untouched by this scan
    block_progress.clear();
    block_touched.clear();
    const bool scan =
        c.block_db && scratch && !pk.payload.empty() && (!pk.f->isTcp() || block_for_tcp);
    if (scan) {
      Scan s{this, &c.block_refs, &block_progress, &block_touched};
      if (hs_scan(c.block_db.get(), reinterpret_cast<const char*>(pk.payload.data()),
                  static_cast<unsigned>(pk.payload.size()), 0, scratch.get(), onMatch,
                  &s) != HS_SUCCESS)
        ++stats.scan_errors;
    }
    for (std::uint32_t ri : block_touched) {
      const Progress& p = *block_progress.find(ri);
      if (p.hs_seen == c.info[ri].hs_positive && judge(ri, pk, &p, pk.payload)) raise(ri, pk, out);
    }
    for (std::uint32_t ri : c.packet_rules) {
      const bool stream = c.info[ri].stream;
      ProgressMap* map = stream ? (d != nullptr ? &d->progress : nullptr) : &block_progress;
      const Progress* p = map != nullptr ? map->find(ri) : nullptr;
      Bytes window =
          stream && d != nullptr && c.stream_needs_window ? Bytes(d->window) : pk.payload;
      if (judge(ri, pk, p, window)) raise(ri, pk, out);
    }
  }

  void tcp(const Frame& f, Packet& pk, std::vector<Alert>& out) {
    const std::uint8_t fl = f.tcp_flags;
    const bool syn = (fl & packet::kTcpSyn) != 0, ack = (fl & packet::kTcpAck) != 0;
    const bool rst = (fl & packet::kTcpRst) != 0, fin = (fl & packet::kTcpFin) != 0;
    const FlowKey key = FlowKey::of(f.ip_src, f.src_port, f.ip_dst, f.dst_port, f.ip_proto);
    Flow* flow = flows.find(key, pk.now);
    // A new connection on the tuple of an old one: start over. But not for the SYN of this
    // very connection arriving after its first data: copies sent to the monitor port from
    // different CPUs can reach it out of order, and starting over would leave a hole where
    // that data was (and end the direction's inspection).
    if (flow != nullptr && syn && !ack && flow->dir[0].reasm.delivered() > 0) {
      const Reassembler& r = flow->dir[0].reasm;
      const std::uint32_t ahead = r.firstSeq() - (tcpSeq(f) + 1);  // serial arithmetic
      const bool late_syn = !r.sawSyn() && f.ip_src == flow->client && f.src_port == flow->client_port &&
                            ahead < (1u << 20);
      if (!late_syn) {
        flows.erase(key);
        flow = nullptr;
      }
    }
    if (flow == nullptr) {
      // No flow from a packet that ends one, or a bare ACK (e.g. the last of a close).
      if (rst || fin || (!syn && f.payload.empty())) {
        pk.has_flow = false;
        packetRules(pk, nullptr, out);
        return;
      }
      Flow nf;
      const bool from_responder = syn && ack;
      nf.client = from_responder ? f.ip_dst : f.ip_src;
      nf.client_port = from_responder ? f.dst_port : f.src_port;
      nf.established = !syn;  // picked up mid-stream
      for (Direction& d : nf.dir) d.reasm = Reassembler(limits.ooo_limit);
      flow = &flows.insert(key, pk.now, std::move(nf));
      ++stats.flows_created;
    }
    pk.has_flow = true;
    pk.from_client = f.ip_src == flow->client && f.src_port == flow->client_port;
    if (ack && !syn) flow->established = true;
    pk.established = flow->established;
    Direction& d = flow->dir[pk.from_client ? 0 : 1];
    if (syn) d.reasm.syn(tcpSeq(f));

    ++epoch;
    touched.clear();
    const std::uint64_t before = d.inspected;
    if (!f.payload.empty() && !d.ended) {
      const std::uint64_t trimmed = d.reasm.trimmedBytes(), ooo = d.reasm.outOfOrderSegments();
      const std::uint32_t seq = tcpSeq(f) + (syn ? 1u : 0u);
      d.reasm.segment(seq, f.payload, [&](Bytes chunk) { feed(d, chunk); });
      stats.trimmed_bytes += d.reasm.trimmedBytes() - trimmed;
      stats.out_of_order += d.reasm.outOfOrderSegments() - ooo;
      if (d.reasm.failed()) {
        d.ended = true;
        d.hs.reset();
        ++stats.gaps;
      }
    }
    Bytes window = c.stream_needs_window ? Bytes(d.window) : f.payload;
    for (std::uint32_t ri : touched) {
      Progress& p = d.progress[ri];
      if (!p.fired && p.hs_seen == c.info[ri].hs_positive && judge(ri, pk, &p, window)) {
        p.fired = true;
        raise(ri, pk, out);
      }
    }
    if (d.inspected > before) {
      for (std::uint32_t ri : c.stream_pcre2) {
        const RuleInfo& info = c.info[ri];
        Progress* found = d.progress.find(ri);
        if (info.kind == RuleKind::kHs && (found == nullptr || found->hs_seen < info.hs_positive))
          continue;
        Progress& p = found != nullptr ? *found : d.progress[ri];
        if (!p.fired && judge(ri, pk, &p, window)) {
          p.fired = true;
          raise(ri, pk, out);
        }
      }
    }
    packetRules(pk, &d, out);
    if (fin) d.fin = true;
    if (rst || (flow->dir[0].fin && flow->dir[1].fin)) {
      flows.erase(key);
      ++stats.flows_closed;
    }
  }

  void other(const Frame& f, Packet& pk, std::vector<Alert>& out) {
    const FlowKey key = FlowKey::of(f.ip_src, f.src_port, f.ip_dst, f.dst_port, f.ip_proto);
    Flow* flow = flows.find(key, pk.now);
    if (flow == nullptr) {
      Flow nf;
      nf.client = f.ip_src;
      nf.client_port = f.src_port;
      flow = &flows.insert(key, pk.now, std::move(nf));
      ++stats.flows_created;
    }
    pk.has_flow = true;
    pk.from_client = f.ip_src == flow->client && f.src_port == flow->client_port;
    flow->seen[pk.from_client ? 0 : 1] = true;
    flow->established = flow->seen[0] && flow->seen[1];
    pk.established = flow->established;
    packetRules(pk, nullptr, out);
  }

  void onFrame(Bytes frame, std::uint64_t now, std::vector<Alert>& out) {
    ++stats.frames;
    stats.bytes += frame.size();
    stats.flows_expired += flows.expire(now, limits.idle_timeout_ns, 2);
    auto parsed = packet::parseFrame(frame);
    if (!parsed) {
      ++stats.parse_errors;
      return;
    }
    const Frame& f = *parsed;
    if (!f.isIp()) {
      ++stats.not_ip;
      return;
    }
    if (f.ip_later_fragment) {
      ++stats.fragments;
      return;
    }
    Packet pk;
    pk.f = &f;
    pk.now = now;
    pk.payload = f.l4 == packet::L4::kNone || f.l4 == packet::L4::kOther ? f.ip_payload : f.payload;
    if (f.isTcp())
      tcp(f, pk, out);
    else
      other(f, pk, out);
  }
};

Engine::Engine(std::shared_ptr<const RuleSet> rules, Limits limits)
    : rules_(std::move(rules)), impl_(std::make_unique<Impl>(rules_->compiled(), limits)) {}
Engine::~Engine() = default;

void Engine::onFrame(Bytes frame, std::uint64_t now_ns, std::vector<Alert>& out) {
  impl_->onFrame(frame, now_ns, out);
}

void Engine::expire(std::uint64_t now_ns) {
  impl_->stats.flows_expired += impl_->flows.expire(now_ns, impl_->limits.idle_timeout_ns);
}

Stats Engine::stats() const {
  Stats s = impl_->stats;
  s.flows = impl_->flows.size();
  s.flow_evictions = impl_->flows.evictions();
  return s;
}

}  // namespace cw::ids
