// Inside a RuleSet: what the Engine needs to scan and to judge matches. Internal to src/ids
// (includes Hyperscan and PCRE2); the public view is rule_set.h.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <hs/hs.h>
#include <pcre2.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "ids/rules.h"

namespace cw::ids {

struct HsDatabaseFree {
  void operator()(hs_database_t* db) const { hs_free_database(db); }
};
using HsDatabase = std::unique_ptr<hs_database_t, HsDatabaseFree>;

struct Pcre2Free {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
using Pcre2Code = std::unique_ptr<pcre2_code, Pcre2Free>;

// A Hyperscan match id names one pattern of one rule.
struct PatternRef {
  std::uint32_t rule = 0;
  std::uint32_t pattern = 0;
};

enum class RuleKind : std::uint8_t {
  kHeader,    // no positive pattern: judged on every packet of its protocol
  kHs,        // at least one positive pattern in Hyperscan: judged when they have all matched
  kPcreOnly,  // positive patterns, all PCRE2: judged on each packet that carries data
};

struct RuleInfo {
  RuleKind kind = RuleKind::kHeader;
  bool stream = false;  // a TCP rule: its patterns are in the stream database
  // Per pattern: the previous positive Hyperscan pattern this one is relative to (-1: none),
  // the PCRE2 program (-1: the pattern is in Hyperscan) and the content size (0 for pcre).
  std::vector<int> prev;
  std::vector<int> pcre2;
  std::vector<std::uint32_t> size;
  std::uint32_t hs_positive = 0;  // positive patterns in Hyperscan
};

struct CompiledRules {
  std::vector<Rule> rules;  // relative patterns without a previous one already made absolute
  std::vector<RuleInfo> info;
  HsDatabase stream_db, block_db;  // null when they would be empty
  std::vector<PatternRef> stream_refs, block_refs;
  std::vector<Pcre2Code> pcre2;
  // TCP rules with a positive PCRE2 pattern: judged again on each packet that brings data,
  // once their Hyperscan patterns have matched, since the PCRE2 match may come later.
  std::vector<std::uint32_t> stream_pcre2;
  std::vector<std::uint32_t> packet_rules;  // kHeader rules, and non-TCP kPcreOnly rules
  bool stream_needs_window = false;         // a TCP rule has a PCRE2 pattern
};

}  // namespace cw::ids
