#include <algorithm>
#include <limits>
#include <string_view>
#include <utility>

#include "dns/dns.h"

namespace cw::dns {

namespace {

Unexpected<ParseError> err(ParseError e) {
  return Unexpected<ParseError>(e);
}

constexpr std::uint8_t kLabelTypeMask = 0xc0, kPointer = 0xc0;
constexpr std::size_t kRecordFixedSize = 10;   // type, class, ttl, rdlength
constexpr std::uint32_t kMaxTtl = 0x7fffffff;  // RFC 2181 8: larger values mean zero

// A decoded name: dotted lowercase text plus what the parser needs to compare it cheaply.
struct Name {
  std::array<char, kMaxNameWireSize> text{};
  std::size_t size = 0;
  std::uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a over text
  bool usable = true;                          // only [a-z0-9-_] bytes and at least one label

  std::string_view view() const { return {text.data(), size}; }
  void reset() {
    size = 0;
    hash = 0xcbf29ce484222325ull;
    usable = true;
  }
  void add(char c) {
    text[size++] = c;
    hash = (hash ^ static_cast<std::uint8_t>(c)) * 0x100000001b3ull;
  }
};

bool hostByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

char lower(std::uint8_t b) {
  return static_cast<char>(b >= 'A' && b <= 'Z' ? b + ('a' - 'A') : b);
}

// Reads the (possibly compressed) name at `pos`. Its in-place part must end by `limit` (the
// message end, or the end of the rdata that holds it); what pointers lead to may be anywhere
// earlier in the message. Each pointer must point before the start of the run of labels that
// holds it: a forward (or past-the-end) pointer is kBadPointer, one into the name's own bytes
// (itself included) is kNameLoop. Segment starts thus strictly decrease, so the walk ends.
// Returns the offset just after the in-place part.
Result<std::size_t, ParseError> readName(Bytes msg, std::size_t pos, std::size_t limit, Name& out,
                                         ParseError truncated) {
  out.reset();
  std::size_t cursor = pos, segment = pos, bound = limit, wire = 0, jumps = 0;
  std::size_t end = 0;
  bool jumped = false;
  for (;;) {
    if (cursor >= bound) return err(truncated);
    const std::uint8_t len = msg[cursor];
    if ((len & kLabelTypeMask) == kPointer) {
      if (cursor + 1 >= bound) return err(truncated);
      const std::size_t target = (std::size_t{len} & 0x3f) << 8 | msg[cursor + 1];
      if (!jumped) end = cursor + 2;
      jumped = true;
      if (target > cursor) return err(ParseError::kBadPointer);
      if (target >= segment || ++jumps > kMaxPointerJumps) return err(ParseError::kNameLoop);
      cursor = segment = target;
      bound = msg.size();
      continue;
    }
    if ((len & kLabelTypeMask) != 0) return err(ParseError::kBadLabelType);
    if (len == 0) {
      if (!jumped) end = cursor + 1;
      break;
    }
    wire += std::size_t{len} + 1;
    if (wire + 1 > kMaxNameWireSize) return err(ParseError::kNameTooLong);
    if (len > bound - cursor - 1) return err(truncated);
    if (out.size != 0) out.add('.');
    for (std::size_t i = 1; i <= len; ++i) {
      const char c = lower(msg[cursor + i]);
      out.usable = out.usable && hostByte(c);
      out.add(c);
    }
    cursor += std::size_t{len} + 1;
  }
  if (out.size == 0) out.usable = false;  // the root is not a host name
  return end;
}

// An answer record worth a second look: a type we use, class IN, a host-name owner.
// Trivial types (no member initializers): Walk keeps arrays of them that are filled before
// use, and zeroing ~12 KiB on every parse would cost more than the parse itself.
struct Ref {
  std::uint64_t owner_hash;
  std::size_t owner_pos;
  std::size_t owner_text_at;  // in Walk::text_, or kNotSaved: decode again from owner_pos
  std::size_t owner_text_size;
  std::size_t rdata_pos;
  std::uint16_t rdata_size;
  std::uint16_t type;
  std::uint32_t ttl;
};

struct PendingMapping {
  std::size_t chain_index;
  std::array<std::uint8_t, 16> ip;  // IpAddr's bytes
  std::uint32_t ttl;
};

// The ipv4hint and ipv6hint values of a ServiceMode SVCB/HTTPS rdata (empty for AliasMode),
// or nothing when the rdata breaks RFC 9460's framing: a TargetName that is compressed, cut
// short or too long; SvcParamKeys not strictly ascending; a value past the end; a hint
// whose size is zero or not a multiple of an address size.
struct Hints {
  Bytes v4, v6;
};

std::optional<Hints> readSvcb(Bytes rdata) {
  ByteReader r(rdata);
  const std::uint16_t priority = r.u16();
  std::size_t wire = 0;
  for (;;) {
    const std::uint8_t len = r.u8();
    if (!r.ok() || (len & kLabelTypeMask) != 0) return std::nullopt;  // compression forbidden
    wire += std::size_t{len} + 1;
    if (wire > kMaxNameWireSize) return std::nullopt;
    if (len == 0) break;
    r.skip(len);
  }
  if (!r.ok()) return std::nullopt;
  Hints hints;
  if (priority == 0) return hints;  // AliasMode: SvcParams are to be ignored
  int previous_key = -1;
  while (!r.empty()) {
    const std::uint16_t key = r.u16();
    const std::uint16_t size = r.u16();
    const Bytes value = r.bytes(size);
    if (!r.ok() || int{key} <= previous_key) return std::nullopt;
    previous_key = key;
    if (key == kSvcKeyIpv4Hint) {
      if (size == 0 || size % 4 != 0) return std::nullopt;
      hints.v4 = value;
    } else if (key == kSvcKeyIpv6Hint) {
      if (size == 0 || size % 16 != 0) return std::nullopt;
      hints.v6 = value;
    }
  }
  return hints;
}

class Walk {
 public:
  Walk(Bytes msg, Answer& answer, std::uint64_t qname_hash) : msg_(msg), answer_(answer) {
    chain_hash_[0] = qname_hash;
  }

  Result<void, ParseError> run(ByteReader& r, std::uint16_t ancount) {
    if (ancount > kMaxAnswersInspected) count(Skip::kRecordLimit);
    const std::size_t records = std::min<std::size_t>(ancount, kMaxAnswersInspected);
    std::size_t pos = r.position();
    for (std::size_t i = 0; i < records; ++i) {
      auto end = readName(msg_, pos, msg_.size(), name_, ParseError::kTruncatedRecord);
      if (!end) return err(end.error());
      ByteReader rr(msg_.subspan(*end));
      Ref ref{};
      ref.owner_hash = name_.hash;
      ref.owner_pos = pos;
      ref.type = rr.u16();
      const std::uint16_t klass = rr.u16();
      ref.ttl = rr.u32();
      ref.rdata_size = rr.u16();
      rr.skip(ref.rdata_size);
      if (!rr.ok()) return err(ParseError::kTruncatedRecord);
      ref.rdata_pos = *end + kRecordFixedSize;
      pos = ref.rdata_pos + ref.rdata_size;
      if (ref.ttl > kMaxTtl) ref.ttl = 0;
      if (ref.type != kTypeA && ref.type != kTypeAaaa && ref.type != kTypeCname &&
          ref.type != kTypeSvcb && ref.type != kTypeHttps)
        continue;  // RRSIG, TXT...: not ours to judge
      if (klass != kClassIn) {
        count(Skip::kBadClass);
      } else if (!name_.usable) {
        count(Skip::kBadOwnerName);
      } else {
        ref.owner_text_at = kNotSaved;
        ref.owner_text_size = name_.size;
        if (text_.size() - text_used_ >= name_.size) {
          std::copy_n(name_.text.begin(), name_.size,
                      text_.begin() + static_cast<std::ptrdiff_t>(text_used_));
          ref.owner_text_at = text_used_;
          text_used_ += name_.size;
        }
        refs_[ref_count_++] = ref;
      }
    }
    followChain();
    collect();
    return {};
  }

 private:
  void count(Skip s) {
    auto& n = answer_.skipped[static_cast<std::size_t>(s)];
    if (n < std::numeric_limits<std::uint16_t>::max()) ++n;
  }

  // Index of the ref's owner on the chain, or nullopt. Hashes pick the candidate; the text
  // decides, so a crafted hash collision cannot put a name on the chain.
  std::optional<std::size_t> chainIndex(const Ref& ref) {
    for (std::size_t i = 0; i < answer_.chain.size(); ++i) {
      if (chain_hash_[i] != ref.owner_hash) continue;
      if (ownerText(ref) == answer_.chain[i]) return i;
    }
    return std::nullopt;
  }

  std::string_view ownerText(const Ref& ref) {
    if (ref.owner_text_at != kNotSaved)
      return {text_.data() + ref.owner_text_at, ref.owner_text_size};
    // Framing was checked in run(); only the text is wanted here.
    if (!readName(msg_, ref.owner_pos, msg_.size(), name_, ParseError::kTruncatedRecord)) return {};
    return name_.view();
  }

  void followChain() {
    path_ttl_[0] = std::numeric_limits<std::uint32_t>::max();
    for (;;) {
      const std::size_t tail = answer_.chain.size() - 1;
      const Ref* cname = nullptr;
      for (std::size_t i = 0; i < ref_count_ && cname == nullptr; ++i) {
        if (refs_[i].type == kTypeCname && chainIndex(refs_[i]) == tail) cname = &refs_[i];
      }
      if (cname == nullptr) return;
      const std::size_t rdata_end = cname->rdata_pos + cname->rdata_size;
      auto end = readName(msg_, cname->rdata_pos, rdata_end, name_, ParseError::kTruncatedRecord);
      if (!end || *end != rdata_end) return count(Skip::kBadRdata);
      if (!name_.usable) return count(Skip::kBadTarget);
      for (const auto& n : answer_.chain) {
        if (n == name_.view()) return count(Skip::kChainLoop);
      }
      if (answer_.chain.size() == kMaxChainLength) return count(Skip::kChainTooLong);
      chain_hash_[tail + 1] = name_.hash;
      path_ttl_[tail + 1] = std::min(path_ttl_[tail], cname->ttl);
      answer_.chain.emplace_back(name_.view());
    }
  }

  void map(std::size_t k, const IpAddr& ip, std::uint32_t record_ttl) {
    if (pending_count_ == kMaxMappings) {
      // Full: drop without the duplicate scan, so 16k hints in one rdata stay cheap.
      for (std::size_t i = 0; i <= k; ++i) count(Skip::kMappingLimit);
      return;
    }
    const std::uint32_t ttl = std::min(record_ttl, path_ttl_[k]);
    for (std::size_t i = 0; i <= k; ++i) {
      bool seen = false;
      for (std::size_t m = 0; m < pending_count_ && !seen; ++m) {
        auto& p = pending_[m];
        if (p.chain_index == i && p.ip == ip.b) {
          p.ttl = std::max(p.ttl, ttl);
          seen = true;
        }
      }
      if (seen) continue;
      if (pending_count_ == kMaxMappings) {
        count(Skip::kMappingLimit);
        continue;
      }
      pending_[pending_count_++] = PendingMapping{i, ip.b, ttl};
    }
  }

  void collect() {
    for (std::size_t i = 0; i < ref_count_; ++i) {
      const Ref& ref = refs_[i];
      const auto k = chainIndex(ref);
      if (!k) {
        count(Skip::kOffChain);
        continue;
      }
      const Bytes rdata = msg_.subspan(ref.rdata_pos, ref.rdata_size);
      if (ref.type == kTypeA || ref.type == kTypeAaaa) {
        const bool v4 = ref.type == kTypeA;
        if (rdata.size() != (v4 ? 4u : 16u)) {
          count(Skip::kBadRdata);
          continue;
        }
        addAddresses(*k, rdata, v4, ref.ttl);
      } else if (ref.type == kTypeSvcb || ref.type == kTypeHttps) {
        const auto hints = readSvcb(rdata);
        if (!hints) {
          count(Skip::kBadRdata);
          continue;
        }
        addAddresses(*k, hints->v4, true, ref.ttl);
        addAddresses(*k, hints->v6, false, ref.ttl);
      }
    }
    answer_.mappings.reserve(pending_count_);
    for (std::size_t m = 0; m < pending_count_; ++m) {
      const auto& p = pending_[m];
      Mapping mapping{answer_.chain[p.chain_index], IpAddr{}, p.ttl};
      mapping.ip.b = p.ip;
      answer_.mappings.push_back(std::move(mapping));
    }
  }

  // `addresses` is a whole number of 4- or 16-byte addresses (checked by the caller).
  void addAddresses(std::size_t k, Bytes addresses, bool v4, std::uint32_t ttl) {
    const std::size_t step = v4 ? 4 : 16;
    for (std::size_t at = 0; at + step <= addresses.size(); at += step) {
      IpAddr ip;
      if (v4) {
        ByteReader r(addresses.subspan(at, 4));
        ip = IpAddr(Ip4{r.u32()});
      } else {
        Ip6 a;
        std::copy_n(addresses.begin() + static_cast<std::ptrdiff_t>(at), 16, a.b.begin());
        ip = IpAddr(a);
      }
      map(k, ip, ttl);
    }
  }

  Bytes msg_;
  Answer& answer_;
  Name name_;
  static constexpr std::size_t kNotSaved = ~std::size_t{0};
  std::array<Ref, kMaxAnswersInspected> refs_;
  std::array<char, 4096> text_;  // owner names of refs_, back to back (left uninitialised)
  std::size_t text_used_ = 0;
  std::size_t ref_count_ = 0;
  std::array<std::uint64_t, kMaxChainLength> chain_hash_{};
  std::array<std::uint32_t, kMaxChainLength> path_ttl_{};
  std::array<PendingMapping, kMaxMappings> pending_;
  std::size_t pending_count_ = 0;
};

}  // namespace

const char* parseErrorName(ParseError e) {
  static constexpr std::array<const char*, static_cast<std::size_t>(ParseError::kCount)> kNames = {
      "truncated_header",   "not_response",       "bad_opcode",         "no_question",
      "too_many_questions", "truncated_question", "bad_question_class", "bad_name",
      "bad_label_type",     "bad_pointer",        "name_loop",          "name_too_long",
      "truncated_record",   "not_query",          "unexpected_records", "bad_additional",
      "trailing_bytes",
  };
  const auto i = static_cast<std::size_t>(e);
  return i < kNames.size() ? kNames[i] : "unknown";
}

const char* skipName(Skip s) {
  static constexpr std::array<const char*, static_cast<std::size_t>(Skip::kCount)> kNames = {
      "off_chain",  "bad_owner_name", "bad_class",    "bad_rdata",     "bad_target",
      "chain_loop", "chain_too_long", "record_limit", "mapping_limit",
  };
  const auto i = static_cast<std::size_t>(s);
  return i < kNames.size() ? kNames[i] : "unknown";
}

Result<Answer, ParseError> parseResponse(Bytes message) {
  ByteReader r(message);
  Answer answer;
  answer.id = r.u16();
  const std::uint16_t flags = r.u16();
  const std::uint16_t qdcount = r.u16();
  const std::uint16_t ancount = r.u16();
  r.skip(4);  // NSCOUNT, ARCOUNT: those sections are never read
  if (!r.ok()) return err(ParseError::kTruncatedHeader);
  if ((flags & 0x8000) == 0) return err(ParseError::kNotResponse);
  if (((flags >> 11) & 0xf) != 0) return err(ParseError::kBadOpcode);
  if (qdcount == 0) return err(ParseError::kNoQuestion);
  if (qdcount > 1) return err(ParseError::kTooManyQuestions);
  answer.truncated = (flags & 0x0200) != 0;
  answer.rcode = static_cast<std::uint8_t>(flags & 0xf);

  Name qname;
  auto end = readName(message, kHeaderSize, message.size(), qname, ParseError::kTruncatedQuestion);
  if (!end) return err(end.error());
  if (!qname.usable) return err(ParseError::kBadName);
  r.skip(*end - kHeaderSize);
  answer.qtype = r.u16();
  const std::uint16_t qclass = r.u16();
  if (!r.ok()) return err(ParseError::kTruncatedQuestion);
  if (qclass != kClassIn) return err(ParseError::kBadQuestionClass);
  answer.qname = qname.view();
  answer.chain.push_back(answer.qname);
  if (answer.rcode != kRcodeNoError) return answer;

  // Walk holds a few KiB of fixed arrays; on the stack that is cheaper than the heap.
  Walk walk(message, answer, qname.hash);
  auto walked = walk.run(r, ancount);
  if (!walked) return err(walked.error());
  return answer;
}

}  // namespace cw::dns
