// Snort/Suricata-style signatures: the parsed form and the parser (docs/ids.md lists the subset).
//
// parseRules() reads a whole rules file and never fails as a whole: each rule that uses a
// keyword outside the subset, or is malformed, is skipped and reported (line, sid if known,
// reason), so that a public rule set loads partially. Pure: no I/O, no Hyperscan; safe on any
// input (fuzzed by fuzz/ids_rules_fuzz.cc). The values here are plain data, copied into the
// compiled RuleSet (rule_set.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "common/result.h"

namespace cw::ids {

// Rule variables by name without the '$' ("HOME_NET" -> "[10.0.0.0/8,192.168.0.0/16]").
// A value is an address or port expression and may name other variables. Rule files may also
// set them with `var NAME value` (or `ipvar`/`portvar`) lines, which apply to later rules.
using Variables = std::map<std::string, std::string, std::less<>>;

// HOME_NET and EXTERNAL_NET = any, the usual *_SERVERS = $HOME_NET and the usual *_PORTS of
// public rule sets (HTTP_PORTS = [80,8000,8080,8888], ...), so that those rules parse.
Variables defaultVariables();

// A rule that was not loaded, and why. `keyword` is the option or word at fault when there is
// one ("flowbits", "http_uri", "pcre"), so that a caller can sum skips by keyword.
struct Skipped {
  int line = 0;           // 1-based; the first line of a continued rule
  std::uint32_t sid = 0;  // 0 when not known
  std::string keyword;
  std::string reason;  // "unsupported keyword flowbits", "depth 2 is shorter than the content"
};

struct LoadReport {
  std::size_t loaded = 0;  // rules in the compiled set
  std::vector<Skipped> skipped;
};

enum class Proto : std::uint8_t { kIp, kTcp, kUdp, kIcmp };
const char* protoName(Proto p);

struct PortRange {
  std::uint16_t lo = 0, hi = 65535;
  bool contains(std::uint16_t p) const { return p >= lo && p <= hi; }
  auto operator<=>(const PortRange&) const = default;
};

// An address or port expression: `any`, one leaf (a CIDR, a port range), or a `[...]` list;
// each possibly negated with `!`. A list matches a value when one of its positive items does
// (or it has none) and none of its negated items do.
template <class Leaf, class Value>
struct SetExpr {
  enum class Kind : std::uint8_t { kAny, kLeaf, kList };
  Kind kind = Kind::kAny;
  bool negated = false;
  Leaf leaf{};
  std::vector<SetExpr> list;

  bool matches(const Value& v) const {
    bool in = true;
    if (kind == Kind::kLeaf) {
      in = leaf.contains(v);
    } else if (kind == Kind::kList) {
      bool any_positive = false, positive_hit = false;
      for (const SetExpr& e : list) {
        if (e.negated) {
          if (!e.matches(v)) {
            in = false;
            break;
          }
        } else {
          any_positive = true;
          positive_hit = positive_hit || e.matches(v);
        }
      }
      in = in && (!any_positive || positive_hit);
    }
    return negated ? !in : in;
  }
};
using AddrExpr = SetExpr<Cidr, IpAddr>;
using PortExpr = SetExpr<PortRange, std::uint16_t>;

// One `content` or `pcre` option with its modifiers. Offsets count bytes from the start of
// the direction's TCP stream, or of the datagram (docs/ids.md: how this differs from Snort).
struct Pattern {
  enum class Kind : std::uint8_t { kContent, kPcre };
  Kind kind = Kind::kContent;
  std::string bytes;  // content: the bytes to find; pcre: the expression between the slashes
  bool negated = false;
  bool nocase = false;  // content `nocase`, pcre flag i
  // pcre flags s, m, x, A (anchored), G (ungreedy), E (dollar matches at the very end only)
  bool dotall = false, multiline = false, extended = false, anchored = false, ungreedy = false,
       dollar_endonly = false;
  // content only
  std::optional<std::uint32_t> offset, depth, within;
  std::optional<std::int32_t> distance;

  bool relative() const { return distance.has_value() || within.has_value(); }
};

struct Dsize {
  enum class Op : std::uint8_t { kEq, kLt, kGt, kRange };  // kRange: lo < size < hi
  Op op = Op::kEq;
  std::uint32_t lo = 0, hi = 0;
  bool matches(std::size_t size) const;
};

// TCP flags test. kExact: the packet's flags, minus `ignore`, are exactly `bits`; kAll (`+`):
// all of `bits` are set, others may be; kAny (`*`): at least one of `bits` is set; kNone (`!`):
// none of `bits` is set.
struct FlagsTest {
  enum class Mode : std::uint8_t { kExact, kAll, kAny, kNone };
  Mode mode = Mode::kExact;
  std::uint8_t bits = 0, ignore = 0;
  bool matches(std::uint8_t flags) const;
};

struct FlowOpts {
  bool to_server = false;  // also from_client
  bool to_client = false;  // also from_server
  bool established = false;
  bool not_established = false;
  bool stateless = false;
};

// threshold (limit, threshold, both) and detection_filter, per rule and tracked address.
struct Threshold {
  enum class Type : std::uint8_t { kLimit, kThreshold, kBoth, kDetectionFilter };
  enum class Track : std::uint8_t { kBySrc, kByDst, kByRule, kByBoth };
  Type type = Type::kLimit;
  Track track = Track::kBySrc;
  std::uint32_t count = 1;
  std::uint32_t seconds = 60;
};

struct Rule {
  int line = 0;
  std::uint32_t sid = 0, rev = 0;
  std::string msg;
  Proto proto = Proto::kIp;
  AddrExpr src, dst;
  PortExpr sport, dport;
  bool bidirectional = false;     // `<>`
  std::vector<Pattern> patterns;  // in rule order
  std::optional<Dsize> dsize;
  std::optional<FlagsTest> flags;
  FlowOpts flow;
  std::optional<Threshold> threshold, detection_filter;
};

// One rule (already joined if it was continued over lines). The error names the line, the
// sid when the rule got that far, the keyword at fault and why.
Result<Rule, Skipped> parseRule(std::string_view text, const Variables& vars, int line = 1);

// A whole file: comments (`#`), blank lines, `\` line continuation, `var`/`ipvar`/`portvar`
// lines (which add to a copy of `vars`). Duplicate sids: the first wins, later ones are
// skipped. Appends to `report.skipped`; does not touch `report.loaded`.
std::vector<Rule> parseRules(std::string_view text, const Variables& vars, LoadReport& report);

}  // namespace cw::ids
