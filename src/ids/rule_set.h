// A compiled, immutable rule set: the parsed rules plus their Hyperscan databases (one stream
// database for TCP rules, one block database for UDP/ICMP/IP rules) and the PCRE2 programs of
// the pcre options Hyperscan cannot take.
//
// Built once by compileRules() and shared (shared_ptr<const RuleSet>) by any number of
// Engines on any threads: nothing in it changes after compilation. Reloading rules means
// compiling a new RuleSet and giving it to new Engines.
#pragma once

#include <memory>
#include <string_view>

#include "common/result.h"
#include "ids/rules.h"

namespace cw::ids {

struct CompiledRules;  // compiled.h: the engine's view of the databases

class RuleSet {
 public:
  explicit RuleSet(std::unique_ptr<CompiledRules> c);
  ~RuleSet();
  RuleSet(const RuleSet&) = delete;
  RuleSet& operator=(const RuleSet&) = delete;

  std::size_t size() const;
  const Rule& rule(std::size_t i) const;
  const CompiledRules& compiled() const { return *c_; }

 private:
  std::unique_ptr<CompiledRules> c_;
};

// Parses and compiles a rules file. Rules outside the subset (or that neither Hyperscan nor
// PCRE2 can compile) are skipped and reported in `report`, which also counts the rules loaded.
// A text without usable rules gives an empty RuleSet (alerts nothing), not an error: check
// report.loaded. The error is for a Hyperscan failure that is not about one rule (out of
// memory, unsupported CPU).
Expected<std::shared_ptr<const RuleSet>> compileRules(std::string_view text, const Variables& vars,
                                                      LoadReport& report);

// The same from already parsed rules (their sids must be unique).
Expected<std::shared_ptr<const RuleSet>> compileRules(std::vector<Rule> rules, LoadReport& report);

}  // namespace cw::ids
