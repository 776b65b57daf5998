// Rules -> Hyperscan databases and PCRE2 programs.
//
// Each content becomes one Hyperscan expression (every byte written as \xHH, nocase as
// HS_FLAG_CASELESS, offset/depth as the expression's min/max end offset). A pcre goes to
// Hyperscan when hs_expression_ext_info accepts it and it cannot match empty (nor, for TCP
// rules, only at the end of data, which a stream never reaches here); otherwise to PCRE2 with
// JIT. When compiling a whole database still fails on one expression, that pattern moves to
// PCRE2 (a pcre) or its rule is skipped (a content), and the database is compiled again.
#include <cstdio>
#include <set>
#include <string>
#include <utility>

#include "ids/compiled.h"
#include "ids/rule_set.h"

namespace cw::ids {
namespace {

struct Expression {
  std::string text;
  unsigned flags = 0;
  hs_expr_ext_t ext{};
  bool has_ext = false;
  PatternRef ref;
};

std::string literalRegex(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size() * 4);
  char buf[8];
  for (char c : bytes) {
    std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
    out += buf;
  }
  return out;
}

unsigned pcreHsFlags(const Pattern& p) {
  unsigned f = 0;
  if (p.nocase) f |= HS_FLAG_CASELESS;
  if (p.dotall) f |= HS_FLAG_DOTALL;
  if (p.multiline) f |= HS_FLAG_MULTILINE;
  return f;
}

std::string pcreHsText(const Pattern& p) {
  std::string t = p.extended ? "(?x)" : "";
  if (p.anchored) return t + "^(?:" + p.bytes + ")";
  return t + p.bytes;
}

// Whether Hyperscan can take this pcre (for a stream database when `stream`).
bool hyperscanTakes(const Pattern& p, bool stream) {
  if (p.ungreedy || p.dollar_endonly || (p.anchored && p.extended)) return false;
  std::string text = pcreHsText(p);
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_expression_info(text.c_str(), pcreHsFlags(p), &info, &err) != HS_SUCCESS) {
    hs_free_compile_error(err);
    return false;
  }
  bool ok = info->min_width > 0 && !(stream && (info->matches_at_eod || info->matches_only_at_eod));
  std::free(info);
  return ok;
}

Result<Pcre2Code, std::string> compilePcre2(const Pattern& p) {
  std::uint32_t opts = 0;
  if (p.nocase) opts |= PCRE2_CASELESS;
  if (p.dotall) opts |= PCRE2_DOTALL;
  if (p.multiline) opts |= PCRE2_MULTILINE;
  if (p.extended) opts |= PCRE2_EXTENDED;
  if (p.anchored) opts |= PCRE2_ANCHORED;
  if (p.ungreedy) opts |= PCRE2_UNGREEDY;
  if (p.dollar_endonly) opts |= PCRE2_DOLLAR_ENDONLY;
  int code = 0;
  PCRE2_SIZE at = 0;
  pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.bytes.data()), p.bytes.size(), opts,
                                &code, &at, nullptr);
  if (c == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    return Unexpected<std::string>("pcre does not compile at offset " + std::to_string(at) + ": " +
                                   reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);  // without JIT the interpreter runs it
  return Pcre2Code(c);
}

// Distance/within on a rule's first content are relative to the start of the data, which is
// what offset/depth say.
void anchorLeadingRelative(Rule& r) {
  bool before = false;
  for (Pattern& p : r.patterns) {
    if (p.kind == Pattern::Kind::kContent && p.relative() && !before) {
      std::int32_t d = p.distance.value_or(0);
      p.offset = static_cast<std::uint32_t>(d > 0 ? d : 0);
      if (p.within) p.depth = *p.within;
      p.distance.reset();
      p.within.reset();
    }
    if (!p.negated) before = true;
  }
}

// The per-rule view the engine needs, given which patterns are PCRE2.
RuleInfo ruleInfo(const Rule& r, const std::vector<int>& pcre2) {
  RuleInfo info;
  info.stream = r.proto == Proto::kTcp;
  info.pcre2 = pcre2;
  int last_positive = -1;
  bool any_positive = false;
  for (std::size_t i = 0; i < r.patterns.size(); ++i) {
    const Pattern& p = r.patterns[i];
    const bool hs = pcre2[i] < 0;
    info.size.push_back(
        p.kind == Pattern::Kind::kContent ? static_cast<std::uint32_t>(p.bytes.size()) : 0);
    info.prev.push_back(p.relative() ? last_positive : -1);
    if (!p.negated) {
      any_positive = true;
      if (hs) {
        ++info.hs_positive;
        last_positive = static_cast<int>(i);
      }
    }
  }
  info.kind = info.hs_positive > 0 ? RuleKind::kHs
              : any_positive       ? RuleKind::kPcreOnly
                                   : RuleKind::kHeader;
  return info;
}

std::vector<Expression> expressions(const std::vector<Rule>& rules,
                                    const std::vector<RuleInfo>& infos, bool stream) {
  std::vector<Expression> out;
  for (std::size_t ri = 0; ri < rules.size(); ++ri) {
    const Rule& r = rules[ri];
    const RuleInfo& info = infos[ri];
    if (info.stream != stream) continue;
    // SINGLEMATCH unless later matches matter: for relative patterns, and for rules judged on
    // the packet (dsize, flags), which a later packet with the pattern again may satisfy.
    std::vector<bool> needs_all(r.patterns.size(), r.dsize.has_value() || r.flags.has_value());
    for (std::size_t i = 0; i < r.patterns.size(); ++i) {
      if (info.prev[i] >= 0) {
        needs_all[i] = true;
        needs_all[static_cast<std::size_t>(info.prev[i])] = true;
      }
    }
    for (std::size_t i = 0; i < r.patterns.size(); ++i) {
      if (info.pcre2[i] >= 0) continue;
      const Pattern& p = r.patterns[i];
      Expression e;
      e.ref = {static_cast<std::uint32_t>(ri), static_cast<std::uint32_t>(i)};
      if (p.kind == Pattern::Kind::kContent) {
        e.text = literalRegex(p.bytes);
        e.flags = p.nocase ? HS_FLAG_CASELESS : 0;
        if (p.offset && *p.offset > 0) {
          e.ext.flags |= HS_EXT_FLAG_MIN_OFFSET;
          e.ext.min_offset = *p.offset + p.bytes.size();
        }
        if (p.depth) {
          e.ext.flags |= HS_EXT_FLAG_MAX_OFFSET;
          e.ext.max_offset = std::uint64_t{p.offset.value_or(0)} + *p.depth;
        }
        e.has_ext = e.ext.flags != 0;
      } else {
        e.text = pcreHsText(p);
        e.flags = pcreHsFlags(p);
      }
      if (!needs_all[i]) e.flags |= HS_FLAG_SINGLEMATCH;
      out.push_back(std::move(e));
    }
  }
  return out;
}

// Compiles one database; on an error about one expression, says which.
struct DbError {
  int expression = -1;
  std::string message;
};
Result<HsDatabase, DbError> compileDb(const std::vector<Expression>& exprs, unsigned mode) {
  if (exprs.empty()) return HsDatabase();
  std::vector<const char*> texts;
  std::vector<unsigned> flags, ids;
  std::vector<const hs_expr_ext_t*> exts;
  for (std::size_t i = 0; i < exprs.size(); ++i) {
    texts.push_back(exprs[i].text.c_str());
    flags.push_back(exprs[i].flags);
    ids.push_back(static_cast<unsigned>(i));
    exts.push_back(exprs[i].has_ext ? &exprs[i].ext : nullptr);
  }
  hs_database_t* db = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_compile_ext_multi(texts.data(), flags.data(), ids.data(), exts.data(),
                           static_cast<unsigned>(exprs.size()), mode, nullptr, &db,
                           &err) != HS_SUCCESS) {
    DbError e{err != nullptr ? err->expression : -1,
              err != nullptr ? err->message : "unknown error"};
    hs_free_compile_error(err);
    return Unexpected<DbError>(std::move(e));
  }
  return HsDatabase(db);
}

}  // namespace

RuleSet::RuleSet(std::unique_ptr<CompiledRules> c) : c_(std::move(c)) {}
RuleSet::~RuleSet() = default;
std::size_t RuleSet::size() const {
  return c_->rules.size();
}
const Rule& RuleSet::rule(std::size_t i) const {
  return c_->rules.at(i);
}

Expected<std::shared_ptr<const RuleSet>> compileRules(std::string_view text, const Variables& vars,
                                                      LoadReport& report) {
  return compileRules(parseRules(text, vars, report), report);
}

Expected<std::shared_ptr<const RuleSet>> compileRules(std::vector<Rule> rules, LoadReport& report) {
  auto c = std::make_unique<CompiledRules>();
  // Which patterns go to PCRE2: decided per pattern first, then by whole-database failures.
  std::vector<Rule> kept;
  std::vector<std::vector<int>> pcre2_of;  // per kept rule, per pattern
  for (Rule& r : rules) {
    anchorLeadingRelative(r);
    std::vector<int> marks(r.patterns.size(), -1);
    std::optional<Skipped> skip;
    for (std::size_t i = 0; i < r.patterns.size() && !skip; ++i) {
      const Pattern& p = r.patterns[i];
      if (p.kind != Pattern::Kind::kPcre || hyperscanTakes(p, r.proto == Proto::kTcp)) continue;
      auto prog = compilePcre2(p);
      if (!prog) {
        skip = Skipped{r.line, r.sid, "pcre", std::move(prog).error()};
        break;
      }
      marks[i] = static_cast<int>(c->pcre2.size());
      c->pcre2.push_back(std::move(prog).value());
    }
    if (skip) {
      report.skipped.push_back(std::move(*skip));
      continue;
    }
    kept.push_back(std::move(r));
    pcre2_of.push_back(std::move(marks));
  }

  // Bounded: every retry moves one pattern to PCRE2 or drops one rule.
  for (std::size_t attempt = 0;; ++attempt) {
    std::vector<RuleInfo> infos;
    for (std::size_t i = 0; i < kept.size(); ++i) infos.push_back(ruleInfo(kept[i], pcre2_of[i]));
    auto stream_exprs = expressions(kept, infos, true);
    auto block_exprs = expressions(kept, infos, false);
    auto stream_db = compileDb(stream_exprs, HS_MODE_STREAM);
    auto block_db = stream_db ? compileDb(block_exprs, HS_MODE_BLOCK)
                              : Result<HsDatabase, DbError>(HsDatabase());
    if (stream_db && block_db) {
      c->stream_db = std::move(stream_db).value();
      c->block_db = std::move(block_db).value();
      for (const Expression& e : stream_exprs) c->stream_refs.push_back(e.ref);
      for (const Expression& e : block_exprs) c->block_refs.push_back(e.ref);
      c->info = std::move(infos);
      break;
    }
    const DbError& err = stream_db ? block_db.error() : stream_db.error();
    const auto& exprs = stream_db ? block_exprs : stream_exprs;
    if (err.expression < 0 || static_cast<std::size_t>(err.expression) >= exprs.size() ||
        attempt > 2 * kept.size() + 16)
      return fail("cannot compile the IDS rules with Hyperscan: " + err.message);
    const PatternRef ref = exprs[static_cast<std::size_t>(err.expression)].ref;
    Rule& r = kept[ref.rule];
    const Pattern& p = r.patterns[ref.pattern];
    if (p.kind == Pattern::Kind::kPcre) {
      if (auto prog = compilePcre2(p)) {
        pcre2_of[ref.rule][ref.pattern] = static_cast<int>(c->pcre2.size());
        c->pcre2.push_back(std::move(prog).value());
        continue;
      }
    }
    report.skipped.push_back({r.line, r.sid, p.kind == Pattern::Kind::kPcre ? "pcre" : "content",
                              "Hyperscan cannot compile it: " + err.message});
    kept.erase(kept.begin() + static_cast<std::ptrdiff_t>(ref.rule));
    pcre2_of.erase(pcre2_of.begin() + static_cast<std::ptrdiff_t>(ref.rule));
  }

  c->rules = std::move(kept);
  for (std::size_t i = 0; i < c->rules.size(); ++i) {
    const RuleInfo& info = c->info[i];
    const auto idx = static_cast<std::uint32_t>(i);
    if (info.kind == RuleKind::kHeader || (info.kind == RuleKind::kPcreOnly && !info.stream))
      c->packet_rules.push_back(idx);
    if (!info.stream) continue;
    bool positive_pcre2 = false;
    for (std::size_t p = 0; p < info.pcre2.size(); ++p) {
      if (info.pcre2[p] < 0) continue;
      c->stream_needs_window = true;
      positive_pcre2 = positive_pcre2 || !c->rules[i].patterns[p].negated;
    }
    if (positive_pcre2) c->stream_pcre2.push_back(idx);
  }
  report.loaded = c->rules.size();
  return std::shared_ptr<const RuleSet>(std::make_shared<RuleSet>(std::move(c)));
}

}  // namespace cw::ids
