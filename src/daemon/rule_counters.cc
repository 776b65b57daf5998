#include "daemon/rule_counters.h"

#include <algorithm>
#include <tuple>

#include "decide/pipeline.h"

namespace cw::daemon {

namespace {

const char* sourceName(decide::LabelSource s) {
  switch (s) {
    case decide::LabelSource::kRule: return "rule";
    case decide::LabelSource::kScript: return "script";
    case decide::LabelSource::kPrompt: return "prompt";
    case decide::LabelSource::kController: return "controller";
  }
  return "controller";  // a label from a later version: counted, not attributed
}

}  // namespace

std::vector<api::RuleCounters> sumRuleCounters(const std::vector<ofp::FlowStats>& flows,
                                               const std::map<std::uint32_t, std::string>& app_of) {
  std::map<std::tuple<std::string, std::string, std::uint32_t>, api::RuleCounters> sums;
  for (const auto& f : flows) {
    if (f.table_id != decide::kTableCount || decide::cookieKind(f.cookie) != decide::CookieKind::kCount) continue;
    auto app = app_of.find(decide::cookieCell(f.cookie));
    if (app == app_of.end()) continue;
    // The catch-all counts what no rule's flows count yet.
    std::string source = "other";
    std::uint32_t rule = 0;
    if ((f.cookie & decide::kCookieRuleMask) != decide::kCountOther && f.match.has(ofp::Field::kCtLabel)) {
      const std::uint64_t label = f.match.ct_label_lo;
      source = sourceName(decide::labelSource(label));
      rule = decide::labelRule(label);
    }
    api::RuleCounters& sum = sums[{app->second, source, rule}];
    sum.app = app->second;
    sum.source = source;
    sum.rule = rule;
    if (f.match.has(ofp::Field::kInPort)) {
      sum.sent_packets += f.packet_count;
      sum.sent_bytes += f.byte_count;
    } else {
      sum.received_packets += f.packet_count;
      sum.received_bytes += f.byte_count;
    }
  }
  std::vector<api::RuleCounters> out;
  out.reserve(sums.size());
  for (auto& [key, sum] : sums) out.push_back(std::move(sum));
  return out;
}

void addRuleCounters(std::vector<api::RuleCounters>& into, const std::vector<api::RuleCounters>& more) {
  auto key = [](const api::RuleCounters& c) { return std::tie(c.app, c.source, c.rule); };
  for (const auto& m : more) {
    auto it = std::lower_bound(into.begin(), into.end(), m, [&](const auto& a, const auto& b) { return key(a) < key(b); });
    if (it == into.end() || key(*it) != key(m)) it = into.insert(it, api::RuleCounters{m.app, m.rule, m.source});
    it->sent_packets += m.sent_packets;
    it->sent_bytes += m.sent_bytes;
    it->received_packets += m.received_packets;
    it->received_bytes += m.received_bytes;
  }
}

}  // namespace cw::daemon
