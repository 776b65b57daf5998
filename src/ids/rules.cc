// The rule parser: header (action, protocol, addresses, ports, direction) and options.
// Every failure is a Skipped value naming the keyword; nothing here throws or recurses without
// a bound (variables nest at most kMaxVarDepth, lists at most kMaxListDepth).
#include "ids/rules.h"

#include <charconv>
#include <set>
#include <utility>

namespace cw::ids {
namespace {

constexpr int kMaxVarDepth = 8;
constexpr int kMaxListDepth = 16;

// What went wrong, before the line and sid are known.
struct Fault {
  std::string keyword, reason;
};
using Parsed = Unexpected<Fault>;
Parsed fault(std::string keyword, std::string reason) {
  return Unexpected<Fault>(Fault{std::move(keyword), std::move(reason)});
}
template <class T>
using R = Result<T, Fault>;

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

template <class T>
std::optional<T> number(std::string_view s) {
  s = trim(s);
  T v{};
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> splitComma(std::string_view s) {
  std::vector<std::string_view> out;
  while (true) {
    auto c = s.find(',');
    out.push_back(trim(s.substr(0, c)));
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return out;
}

// Splits a `[a,[b,c],d]` list body on top-level commas.
R<std::vector<std::string_view>> splitList(std::string_view body, const char* what) {
  std::vector<std::string_view> out;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '[') {
      ++depth;
    } else if (body[i] == ']') {
      if (--depth < 0) return fault(what, "unbalanced ']'");
    } else if (body[i] == ',' && depth == 0) {
      out.push_back(trim(body.substr(start, i - start)));
      start = i + 1;
    }
  }
  if (depth != 0) return fault(what, "unbalanced '['");
  out.push_back(trim(body.substr(start)));
  return out;
}

// Address and port expressions share the grammar; only the leaf differs.
template <class Expr, class LeafParser>
R<Expr> parseSet(std::string_view text, const Variables& vars, const char* what, int depth,
                 int var_depth, const LeafParser& leaf) {
  text = trim(text);
  if (depth > kMaxListDepth) return fault(what, "lists nested too deep");
  Expr e;
  while (!text.empty() && text.front() == '!') {
    e.negated = !e.negated;
    text = trim(text.substr(1));
  }
  if (text.empty()) return fault(what, std::string("empty ") + what);
  if (text == "any") {
    if (e.negated) return fault(what, "!any matches nothing");
    return e;
  }
  if (text.front() == '$') {
    std::string_view name = text.substr(1);
    auto it = vars.find(name);
    if (it == vars.end()) return fault(what, "unknown variable $" + std::string(name));
    if (var_depth >= kMaxVarDepth)
      return fault(what, "variables nested too deep at $" + std::string(name));
    auto inner = parseSet<Expr>(it->second, vars, what, depth + 1, var_depth + 1, leaf);
    if (!inner) return inner;
    Expr out = std::move(inner).value();
    if (e.negated) out.negated = !out.negated;
    return out;
  }
  if (text.front() == '[') {
    if (text.back() != ']') return fault(what, "list without closing ']'");
    auto items = splitList(text.substr(1, text.size() - 2), what);
    if (!items) return Unexpected<Fault>(std::move(items).error());
    e.kind = Expr::Kind::kList;
    for (std::string_view item : *items) {
      auto sub = parseSet<Expr>(item, vars, what, depth + 1, var_depth, leaf);
      if (!sub) return sub;
      e.list.push_back(std::move(sub).value());
    }
    return e;
  }
  auto l = leaf(text);
  if (!l) return fault(what, std::string("bad ") + what + " '" + std::string(text) + "'");
  e.kind = Expr::Kind::kLeaf;
  e.leaf = *l;
  return e;
}

std::optional<Cidr> addrLeaf(std::string_view t) {
  return Cidr::parse(t);
}

std::optional<PortRange> portLeaf(std::string_view t) {
  auto colon = t.find(':');
  if (colon == std::string_view::npos) {
    auto p = number<std::uint16_t>(t);
    if (!p) return std::nullopt;
    return PortRange{*p, *p};
  }
  std::string_view a = t.substr(0, colon), b = t.substr(colon + 1);
  PortRange r;
  if (!a.empty()) {
    auto p = number<std::uint16_t>(a);
    if (!p) return std::nullopt;
    r.lo = *p;
  }
  if (!b.empty()) {
    auto p = number<std::uint16_t>(b);
    if (!p) return std::nullopt;
    r.hi = *p;
  }
  if ((a.empty() && b.empty()) || r.lo > r.hi) return std::nullopt;
  return r;
}

// The header, split on blanks outside brackets: "[1.2.3.4, 5.6.7.8]" stays one token.
std::vector<std::string_view> headerTokens(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && isSpace(s[i])) ++i;
    if (i >= s.size()) break;
    std::size_t start = i;
    int depth = 0;
    while (i < s.size() && (depth > 0 || !isSpace(s[i]))) {
      if (s[i] == '[') ++depth;
      if (s[i] == ']' && depth > 0) --depth;
      ++i;
    }
    out.push_back(s.substr(start, i - start));
  }
  return out;
}

// Options split on ';' outside quotes and not escaped with '\'.
std::vector<std::string_view> splitOptions(std::string_view body) {
  std::vector<std::string_view> out;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c == '\\') {
      ++i;  // the escaped character is never a separator or a quote
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == ';' && !quoted) {
      out.push_back(trim(body.substr(start, i - start)));
      start = i + 1;
    }
  }
  std::string_view last = trim(body.substr(std::min(start, body.size())));
  if (!last.empty()) out.push_back(last);
  return out;
}

// A quoted option value: `"..."` with \" \; \\ \: escapes. Returns the unescaped text.
R<std::string> quoted(std::string_view v, const char* what) {
  v = trim(v);
  if (v.size() < 2 || v.front() != '"' || v.back() != '"')
    return fault(what, std::string(what) + " needs a quoted value");
  v = v.substr(1, v.size() - 2);
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\') {
      if (i + 1 >= v.size()) return fault(what, "dangling '\\' in " + std::string(what));
      out.push_back(v[++i]);
    } else if (v[i] == '"') {
      return fault(what, std::string("unescaped '\"' inside ") + what);
    } else {
      out.push_back(v[i]);
    }
  }
  return out;
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Content text after unescaping: `|41 42|` hex sections in between literal bytes.
R<std::string> contentBytes(std::string_view v) {
  // Hex sections are found before unescaping so that an escaped '|' ("\|") stays literal.
  v = trim(v);
  if (v.size() < 2 || v.front() != '"' || v.back() != '"')
    return fault("content", "content needs a quoted value");
  v = v.substr(1, v.size() - 2);
  std::string out;
  bool hex = false;
  int pending = -1;
  for (std::size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (hex) {
      if (c == '|') {
        if (pending >= 0) return fault("content", "odd number of hex digits in content");
        hex = false;
      } else if (c == ' ') {
        if (pending >= 0) return fault("content", "space inside a hex byte in content");
      } else {
        int d = hexDigit(c);
        if (d < 0) return fault("content", std::string("bad hex digit '") + c + "' in content");
        if (pending < 0) {
          pending = d;
        } else {
          out.push_back(static_cast<char>(pending * 16 + d));
          pending = -1;
        }
      }
      continue;
    }
    if (c == '|') {
      hex = true;
    } else if (c == '\\') {
      if (i + 1 >= v.size()) return fault("content", "dangling '\\' in content");
      out.push_back(v[++i]);
    } else if (c == '"') {
      return fault("content", "unescaped '\"' inside content");
    } else {
      out.push_back(c);
    }
  }
  if (hex) return fault("content", "unterminated |hex| section in content");
  if (out.empty()) return fault("content", "empty content");
  return out;
}

R<Pattern> parsePcre(std::string_view v) {
  Pattern p;
  p.kind = Pattern::Kind::kPcre;
  v = trim(v);
  if (!v.empty() && v.front() == '!') {
    p.negated = true;
    v = trim(v.substr(1));
  }
  auto text = quoted(v, "pcre");
  if (!text) return Unexpected<Fault>(std::move(text).error());
  // quoted() removed one level of escaping; pcre keeps its own, so take the raw text instead.
  std::string_view raw = trim(v);
  raw = raw.substr(1, raw.size() - 2);
  if (raw.empty() || raw.front() != '/')
    return fault("pcre", "pcre must look like \"/regex/flags\"");
  auto last = raw.rfind('/');
  if (last == 0) return fault("pcre", "pcre has no closing '/'");
  std::string body;
  std::string_view inner = raw.substr(1, last - 1);
  // Rule-level escapes of ';' and '"' are for the rule parser, not for the regex.
  for (std::size_t i = 0; i < inner.size(); ++i) {
    if (inner[i] == '\\' && i + 1 < inner.size() && (inner[i + 1] == ';' || inner[i + 1] == '"')) {
      body.push_back(inner[++i]);
    } else {
      body.push_back(inner[i]);
    }
  }
  if (body.empty()) return fault("pcre", "empty pcre");
  p.bytes = std::move(body);
  for (char f : raw.substr(last + 1)) {
    switch (f) {
      case 'i':
        p.nocase = true;
        break;
      case 's':
        p.dotall = true;
        break;
      case 'm':
        p.multiline = true;
        break;
      case 'x':
        p.extended = true;
        break;
      case 'A':
        p.anchored = true;
        break;
      case 'G':
        p.ungreedy = true;
        break;
      case 'E':
        p.dollar_endonly = true;
        break;
      case 'B':
      case 'O':
        break;  // rawbytes, override match limits: no effect here
      case 'R':
        return fault("pcre", "pcre flag R (relative) is not supported");
      default:
        return fault("pcre",
                     std::string("pcre flag ") + f + " is not supported (HTTP buffers and others)");
    }
  }
  return p;
}

R<Dsize> parseDsize(std::string_view v) {
  v = trim(v);
  Dsize d;
  auto range = v.find("<>");
  if (range != std::string_view::npos) {
    auto lo = number<std::uint32_t>(v.substr(0, range)),
         hi = number<std::uint32_t>(v.substr(range + 2));
    if (!lo || !hi || *lo > *hi) return fault("dsize", "bad dsize range '" + std::string(v) + "'");
    d.op = Dsize::Op::kRange;
    d.lo = *lo;
    d.hi = *hi;
    return d;
  }
  if (!v.empty() && (v.front() == '<' || v.front() == '>')) {
    d.op = v.front() == '<' ? Dsize::Op::kLt : Dsize::Op::kGt;
    v.remove_prefix(1);
  }
  auto n = number<std::uint32_t>(v);
  if (!n) return fault("dsize", "bad dsize '" + std::string(v) + "'");
  d.lo = *n;
  return d;
}

std::optional<std::uint8_t> flagBits(std::string_view s) {
  std::uint8_t bits = 0;
  for (char c : s) {
    switch (c) {
      case 'F':
      case 'f':
        bits |= 0x01;
        break;
      case 'S':
      case 's':
        bits |= 0x02;
        break;
      case 'R':
      case 'r':
        bits |= 0x04;
        break;
      case 'P':
      case 'p':
        bits |= 0x08;
        break;
      case 'A':
      case 'a':
        bits |= 0x10;
        break;
      case 'U':
      case 'u':
        bits |= 0x20;
        break;
      case 'E':
      case 'e':
      case '2':
        bits |= 0x40;
        break;
      case 'C':
      case 'c':
      case '1':
        bits |= 0x80;
        break;
      case '0':
        break;
      default:
        return std::nullopt;
    }
  }
  return bits;
}

R<FlagsTest> parseFlags(std::string_view v) {
  FlagsTest t;
  v = trim(v);
  auto comma = v.find(',');
  if (comma != std::string_view::npos) {
    auto ignore = flagBits(trim(v.substr(comma + 1)));
    if (!ignore) return fault("flags", "bad flags ignore mask '" + std::string(v) + "'");
    t.ignore = *ignore;
    v = trim(v.substr(0, comma));
  }
  auto modifier = [&](char c) {
    switch (c) {
      case '+':
        t.mode = FlagsTest::Mode::kAll;
        return true;
      case '*':
        t.mode = FlagsTest::Mode::kAny;
        return true;
      case '!':
        t.mode = FlagsTest::Mode::kNone;
        return true;
      default:
        return false;
    }
  };
  if (!v.empty() && modifier(v.front())) {
    v.remove_prefix(1);
  } else if (!v.empty() && modifier(v.back())) {
    v.remove_suffix(1);
  }
  auto bits = flagBits(v);
  if (!bits || v.empty()) return fault("flags", "bad flags '" + std::string(v) + "'");
  t.bits = *bits;
  return t;
}

R<FlowOpts> parseFlow(std::string_view v, FlowOpts f) {
  for (std::string_view w : splitComma(v)) {
    if (w == "to_server" || w == "from_client") {
      f.to_server = true;
    } else if (w == "to_client" || w == "from_server") {
      f.to_client = true;
    } else if (w == "established") {
      f.established = true;
    } else if (w == "not_established") {
      f.not_established = true;
    } else if (w == "stateless") {
      f.stateless = true;
    } else if (w == "only_stream" || w == "no_stream") {
      // Contents of TCP rules are always matched on the stream here; accepted as no-ops.
    } else {
      return fault("flow", "unsupported flow option '" + std::string(w) + "'");
    }
  }
  if (f.to_server && f.to_client) return fault("flow", "flow both to_server and to_client");
  if (f.established && f.not_established) return fault("flow", "flow both established and not");
  return f;
}

R<Threshold> parseThreshold(std::string_view v, const char* what, bool filter) {
  Threshold t;
  if (filter) t.type = Threshold::Type::kDetectionFilter;
  bool have_type = filter, have_track = false, have_count = false, have_seconds = false;
  for (std::string_view item : splitComma(v)) {
    auto sp = item.find_first_of(" \t");
    if (sp == std::string_view::npos)
      return fault(what, "bad " + std::string(what) + " item '" + std::string(item) + "'");
    std::string_view key = item.substr(0, sp), val = trim(item.substr(sp));
    if (key == "type" && !filter) {
      if (val == "limit")
        t.type = Threshold::Type::kLimit;
      else if (val == "threshold")
        t.type = Threshold::Type::kThreshold;
      else if (val == "both")
        t.type = Threshold::Type::kBoth;
      else
        return fault(what, "unknown threshold type '" + std::string(val) + "'");
      have_type = true;
    } else if (key == "track") {
      if (val == "by_src")
        t.track = Threshold::Track::kBySrc;
      else if (val == "by_dst")
        t.track = Threshold::Track::kByDst;
      else if (val == "by_rule")
        t.track = Threshold::Track::kByRule;
      else if (val == "by_both")
        t.track = Threshold::Track::kByBoth;
      else
        return fault(what, "unknown track '" + std::string(val) + "'");
      have_track = true;
    } else if (key == "count") {
      auto n = number<std::uint32_t>(val);
      if (!n || *n == 0) return fault(what, "bad count '" + std::string(val) + "'");
      t.count = *n;
      have_count = true;
    } else if (key == "seconds") {
      auto n = number<std::uint32_t>(val);
      if (!n || *n == 0) return fault(what, "bad seconds '" + std::string(val) + "'");
      t.seconds = *n;
      have_seconds = true;
    } else {
      return fault(what, "unknown " + std::string(what) + " item '" + std::string(key) + "'");
    }
  }
  if (!have_type || !have_track || !have_count || !have_seconds)
    return fault(what, std::string(what) + " needs type, track, count and seconds");
  return t;
}

// Keywords accepted and ignored: they describe the rule, they do not change what matches.
const std::set<std::string_view, std::less<>>& ignoredKeywords() {
  static const std::set<std::string_view, std::less<>> k = {"classtype",    "reference", "metadata",
                                                            "priority",     "gid",       "target",
                                                            "fast_pattern", "rawbytes"};
  return k;
}

// Applies one content modifier to the last pattern.
std::optional<Fault> applyModifier(Rule& r, std::string_view key, std::string_view val) {
  if (r.patterns.empty() || r.patterns.back().kind != Pattern::Kind::kContent)
    return Fault{std::string(key), std::string(key) + " without a content before it"};
  Pattern& p = r.patterns.back();
  if (key == "nocase") {
    p.nocase = true;
    return std::nullopt;
  }
  if (key == "distance") {
    auto n = number<std::int32_t>(val);
    if (!n) return Fault{"distance", "bad distance '" + std::string(val) + "'"};
    p.distance = *n;
    return std::nullopt;
  }
  auto n = number<std::uint32_t>(val);
  if (!n) return Fault{std::string(key), "bad " + std::string(key) + " '" + std::string(val) + "'"};
  if (key == "offset") p.offset = *n;
  if (key == "depth") p.depth = *n;
  if (key == "within") p.within = *n;
  return std::nullopt;
}

std::optional<Fault> checkPattern(const Pattern& p) {
  if (p.kind != Pattern::Kind::kContent) return std::nullopt;
  const auto size = p.bytes.size();
  if ((p.offset || p.depth) && p.relative())
    return Fault{"distance", "offset/depth mixed with distance/within on one content"};
  if (p.depth && *p.depth < size)
    return Fault{"depth", "depth " + std::to_string(*p.depth) + " is shorter than the content"};
  if (p.within && *p.within < size)
    return Fault{"within", "within " + std::to_string(*p.within) + " is shorter than the content"};
  return std::nullopt;
}

// Fills r from its options; the first fault (after the sid is seen) when it cannot.
std::optional<Fault> parseOptions(Rule& r, std::string_view body) {
  std::optional<Fault> first;  // reported once the sid (which may come later) is known
  bool have_sid = false;
  for (std::string_view opt : splitOptions(body)) {
    auto colon = opt.find(':');
    std::string_view key = trim(opt.substr(0, colon));
    std::string_view val =
        colon == std::string_view::npos ? std::string_view{} : trim(opt.substr(colon + 1));
    auto note = [&](Fault f) {
      if (!first) first = std::move(f);
    };
    if (key == "sid") {
      auto n = number<std::uint32_t>(val);
      if (!n || *n == 0) {
        note({"sid", "bad sid '" + std::string(val) + "'"});
      } else {
        r.sid = *n;
        have_sid = true;
      }
    } else if (first) {
      continue;  // only the sid still matters
    } else if (key == "msg") {
      auto m = quoted(val, "msg");
      if (m)
        r.msg = std::move(m).value();
      else
        note(std::move(m).error());
    } else if (key == "rev") {
      auto n = number<std::uint32_t>(val);
      if (n)
        r.rev = *n;
      else
        note({"rev", "bad rev '" + std::string(val) + "'"});
    } else if (ignoredKeywords().count(key) != 0) {
      // accepted, no effect
    } else if (key == "content") {
      Pattern p;
      std::string_view v = val;
      if (!v.empty() && v.front() == '!') {
        p.negated = true;
        v = trim(v.substr(1));
      }
      auto bytes = contentBytes(v);
      if (!bytes) {
        note(std::move(bytes).error());
      } else {
        p.bytes = std::move(bytes).value();
        r.patterns.push_back(std::move(p));
      }
    } else if (key == "nocase" || key == "offset" || key == "depth" || key == "distance" ||
               key == "within") {
      if (auto f = applyModifier(r, key, val)) note(std::move(*f));
    } else if (key == "pcre") {
      auto p = parsePcre(val);
      if (p)
        r.patterns.push_back(std::move(p).value());
      else
        note(std::move(p).error());
    } else if (key == "dsize") {
      auto d = parseDsize(val);
      if (d)
        r.dsize = *d;
      else
        note(std::move(d).error());
    } else if (key == "flags") {
      auto f = parseFlags(val);
      if (f)
        r.flags = *f;
      else
        note(std::move(f).error());
    } else if (key == "flow") {
      auto f = parseFlow(val, r.flow);
      if (f)
        r.flow = *f;
      else
        note(std::move(f).error());
    } else if (key == "threshold") {
      auto t = parseThreshold(val, "threshold", false);
      if (t)
        r.threshold = *t;
      else
        note(std::move(t).error());
    } else if (key == "detection_filter") {
      auto t = parseThreshold(val, "detection_filter", true);
      if (t)
        r.detection_filter = *t;
      else
        note(std::move(t).error());
    } else if (key.empty()) {
      note({"", "empty option"});
    } else {
      note({std::string(key), "unsupported keyword " + std::string(key)});
    }
  }
  if (first) return first;
  if (!have_sid) return Fault{"sid", "rule has no sid"};
  for (const Pattern& p : r.patterns)
    if (auto f = checkPattern(p)) return f;
  return std::nullopt;
}

}  // namespace

const char* protoName(Proto p) {
  switch (p) {
    case Proto::kIp:
      return "ip";
    case Proto::kTcp:
      return "tcp";
    case Proto::kUdp:
      return "udp";
    case Proto::kIcmp:
      return "icmp";
  }
  return "?";
}

bool Dsize::matches(std::size_t size) const {
  switch (op) {
    case Op::kEq:
      return size == lo;
    case Op::kLt:
      return size < lo;
    case Op::kGt:
      return size > lo;
    case Op::kRange:
      return size > lo && size < hi;
  }
  return false;
}

bool FlagsTest::matches(std::uint8_t f) const {
  switch (mode) {
    case Mode::kExact:
      return (f & ~ignore & 0xff) == bits;
    case Mode::kAll:
      return (f & bits) == bits;
    case Mode::kAny:
      return (f & bits) != 0;
    case Mode::kNone:
      return (f & bits) == 0;
  }
  return false;
}

Variables defaultVariables() {
  Variables v = {
      {"HOME_NET", "any"},
      {"EXTERNAL_NET", "any"},
      {"HTTP_PORTS",
       "[80,81,311,383,591,593,901,1220,1414,1741,1830,2301,2381,2809,3037,3128,3702,"
       "4343,4848,5250,6988,7000,7001,7144,7145,7510,7777,7779,8000,8008,8014,8028,"
       "8080,8085,8088,8090,8118,8123,8180,8181,8243,8280,8300,8800,8888,8899,9000,"
       "9060,9080,9090,9091,9443,9999,11371,34443,34444,41080,50002,55555]"},
      {"SHELLCODE_PORTS", "!80"},
      {"ORACLE_PORTS", "1521"},
      {"SSH_PORTS", "22"},
      {"FTP_PORTS", "[21,2100,3535]"},
      {"SIP_PORTS", "[5060,5061,5600]"},
      {"FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"},
      {"GTP_PORTS", "[2123,2152,3386]"},
      {"DNP3_PORTS", "20000"},
      {"MODBUS_PORTS", "502"},
  };
  for (const char* s :
       {"HTTP_SERVERS", "SMTP_SERVERS", "SQL_SERVERS", "DNS_SERVERS", "TELNET_SERVERS",
        "AIM_SERVERS", "DC_SERVERS", "DNP3_SERVER", "DNP3_CLIENT", "MODBUS_CLIENT", "MODBUS_SERVER",
        "ENIP_CLIENT", "ENIP_SERVER", "SIP_SERVERS", "SSH_SERVERS", "FTP_SERVERS"})
    v.emplace(s, "$HOME_NET");
  return v;
}

Result<Rule, Skipped> parseRule(std::string_view text, const Variables& vars, int line) {
  Rule r;
  r.line = line;
  auto skip = [&](Fault f) {
    return Unexpected<Skipped>(Skipped{line, r.sid, std::move(f.keyword), std::move(f.reason)});
  };
  text = trim(text);
  auto open = text.find('(');
  if (open == std::string_view::npos || text.back() != ')')
    return skip({"", "a rule is `action proto src sport dir dst dport (options)`"});
  std::string_view body = text.substr(open + 1, text.size() - open - 2);
  // Options first: a skipped rule should still say its sid.
  if (auto f = parseOptions(r, body)) return skip(std::move(*f));

  auto tok = headerTokens(text.substr(0, open));
  if (tok.size() != 7)
    return skip({"", "the header needs 7 fields, found " + std::to_string(tok.size())});
  std::string_view action = tok[0], proto = tok[1];
  if (action != "alert" && action != "drop" && action != "reject" && action != "sdrop")
    return skip({std::string(action), "unsupported action " + std::string(action)});
  if (proto == "tcp")
    r.proto = Proto::kTcp;
  else if (proto == "udp")
    r.proto = Proto::kUdp;
  else if (proto == "icmp")
    r.proto = Proto::kIcmp;
  else if (proto == "ip")
    r.proto = Proto::kIp;
  else
    return skip({std::string(proto), "unsupported protocol " + std::string(proto)});
  if (tok[4] == "<>")
    r.bidirectional = true;
  else if (tok[4] != "->")
    return skip({std::string(tok[4]), "bad direction " + std::string(tok[4])});

  auto addr = [&](std::string_view t, AddrExpr& out) -> std::optional<Fault> {
    auto e = parseSet<AddrExpr>(t, vars, "address", 0, 0, addrLeaf);
    if (!e) return std::move(e).error();
    out = std::move(e).value();
    return std::nullopt;
  };
  auto port = [&](std::string_view t, PortExpr& out) -> std::optional<Fault> {
    auto e = parseSet<PortExpr>(t, vars, "port", 0, 0, portLeaf);
    if (!e) return std::move(e).error();
    out = std::move(e).value();
    return std::nullopt;
  };
  if (auto f = addr(tok[2], r.src)) return skip(std::move(*f));
  if (auto f = port(tok[3], r.sport)) return skip(std::move(*f));
  if (auto f = addr(tok[5], r.dst)) return skip(std::move(*f));
  if (auto f = port(tok[6], r.dport)) return skip(std::move(*f));
  return r;
}

std::vector<Rule> parseRules(std::string_view text, const Variables& vars_in, LoadReport& report) {
  Variables vars = vars_in;
  std::vector<Rule> rules;
  std::map<std::uint32_t, int> sid_lines;
  int line_no = 0;
  std::string joined;
  int first_line = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (joined.empty()) first_line = line_no;
    std::string_view t = trim(line);
    if (!t.empty() && t.back() == '\\') {
      joined.append(t.substr(0, t.size() - 1));
      if (!text.empty()) continue;
    } else {
      joined.append(t);
    }
    std::string_view rule = trim(joined);
    if (rule.empty() || rule.front() == '#') {
      joined.clear();
      continue;
    }
    // var / ipvar / portvar NAME VALUE
    auto sp = rule.find_first_of(" \t");
    std::string_view word = rule.substr(0, sp);
    if (word == "var" || word == "ipvar" || word == "portvar") {
      auto rest = sp == std::string_view::npos ? std::string_view{} : trim(rule.substr(sp));
      auto sp2 = rest.find_first_of(" \t");
      if (rest.empty() || sp2 == std::string_view::npos) {
        report.skipped.push_back(
            {first_line, 0, std::string(word), std::string(word) + " needs a name and a value"});
      } else {
        std::string name(rest.substr(0, sp2));
        if (!name.empty() && name.front() == '$') name.erase(0, 1);
        vars[name] = std::string(trim(rest.substr(sp2)));
      }
      joined.clear();
      continue;
    }
    auto r = parseRule(rule, vars, first_line);
    joined.clear();
    if (!r) {
      report.skipped.push_back(std::move(r).error());
      continue;
    }
    auto [it, fresh] = sid_lines.emplace(r->sid, first_line);
    if (!fresh) {
      report.skipped.push_back({first_line, r->sid, "sid",
                                "duplicate sid " + std::to_string(r->sid) + " (first on line " +
                                    std::to_string(it->second) + ")"});
      continue;
    }
    rules.push_back(std::move(r).value());
  }
  return rules;
}

}  // namespace cw::ids
