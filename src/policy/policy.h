// The rule model and the per-app TOML policy. Pure: no I/O (the caller reads the file).
//
// Designed for the long run: host names and wildcards (from DNS snooping), lifetimes
// (until a time, for N connections), prompts, process/user matches and inbound rules all fit
// here without changing the shape; the first policy language accepts the subset listed in
// docs/policy.md and rejects the rest by name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "common/result.h"

namespace cw::policy {

enum class Action : std::uint8_t { kAllow, kDeny, kReject };
// What happens to a connection no rule matches. kPrompt arrives with the prompt issue.
enum class DefaultAction : std::uint8_t { kAllow, kDeny, kReject, kPrompt };
enum class Protocol : std::uint8_t { kAny, kTcp, kUdp, kIcmp };
enum class Direction : std::uint8_t { kOutbound, kInbound };

const char* actionName(Action a);
const char* protocolName(Protocol p);
const char* defaultActionName(DefaultAction a);
const char* directionName(Direction d);

struct PortRange {
  std::uint16_t lo = 0, hi = 65535;
  bool contains(std::uint16_t p) const { return p >= lo && p <= hi; }
  bool operator==(const PortRange&) const = default;
};

struct RuleMatch {
  Protocol protocol = Protocol::kAny;
  Direction direction = Direction::kOutbound;
  std::vector<Cidr> addresses;   // empty: any address
  std::vector<PortRange> ports;  // empty: any port (only meaningful for tcp/udp/any)
  std::vector<std::string> hosts;  // reserved for name rules (next issue); parser rejects for now
  bool operator==(const RuleMatch&) const = default;
};

struct Rule {
  std::uint32_t id = 0;  // unique within the daemon; 0 is reserved for "the app's default"
  Action action = Action::kDeny;
  RuleMatch match;
  std::string origin;   // "file.toml:12" or "api"
  std::string comment;
  bool operator==(const Rule&) const = default;
};

struct AppPolicy {
  std::string app;  // empty in the file: taken from the file name or --app
  DefaultAction default_action = DefaultAction::kDeny;
  std::string env = "default";  // the network environment the app's cells live in
  std::vector<Rule> rules;
  std::string origin;  // the file it came from
};

struct PolicyError {
  std::string file;
  std::uint32_t line = 0;    // 1-based; 0 when not known
  std::uint32_t column = 0;  // 1-based; 0 when not known
  std::string reason;
  std::string str() const;  // "file:line:column: reason"
};

// Parses one app's policy. Rule ids are assigned first_rule_id, first_rule_id + 1, ... in
// file order. Unknown keys and bad values are errors naming the line.
// Errors: the first problem found, with line and column of the offending key or value (TOML
// syntax errors come from toml++). Never throws. Each rule's origin is "filename:line" of its
// [[allow]]/[[deny]]/[[rule]] header; AppPolicy::origin is filename; app stays empty when the
// file does not set it. CIDRs with host bits set ("10.0.0.1/8") are refused, not widened.
Result<AppPolicy, PolicyError> parsePolicy(std::string_view text, std::string_view filename,
                                           std::uint32_t first_rule_id = 1);

// A connection as policy sees it.
struct ConnKey {
  Protocol protocol = Protocol::kTcp;  // kIcmp for ICMP/ICMPv6
  Direction direction = Direction::kOutbound;
  IpAddr remote;
  std::uint16_t remote_port = 0;  // TCP/UDP destination port (outbound) / local port (inbound)
};

struct Verdict {
  Action action = Action::kDeny;
  const Rule* rule = nullptr;        // nullptr: the app's default decided
  DefaultAction fallback = DefaultAction::kDeny;  // meaningful when rule == nullptr
};

// An immutable, compiled form of one AppPolicy. Decision cost does not grow with the number of
// rules: rules are indexed by address prefix (a binary trie over the 128-bit IPv4-mapped
// space) and, within a prefix, by protocol and port. Precedence (docs/policy.md): the rule
// with the longest matching address prefix wins; then the narrowest port range; then a rule
// naming a protocol over one that does not; then deny/reject over allow; then file order.
// Details the one-line summary leaves open:
//  - A rule with no address ranks below every address prefix, ::/0 and 0.0.0.0/0 included.
//  - IPv6 prefixes never match IPv4 keys and vice versa (as Cidr::contains).
//  - Port width: a single port is 1, "lo-hi" is hi-lo+1, no ports is wider than any range. A
//    rule with several ranges competes with the narrowest one containing the port.
//  - Rules with ports match only tcp/udp keys; proto "any" without ports also matches icmp.
//    A key with protocol kAny matches only rules with proto "any" and no ports.
//  - Rules with hosts match nothing until name rules arrive.
//  - With no match, Verdict::action is the default (kDeny for kPrompt, until prompts exist).
// decide() is const, allocation-free and safe to call from many threads at once. Verdict::rule
// points into policy(), so it lives as long as the Matcher.
class Matcher {
 public:
  explicit Matcher(AppPolicy policy);
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;
  ~Matcher();

  Verdict decide(const ConnKey& key) const;
  const AppPolicy& policy() const { return policy_; }

 private:
  struct Index;
  AppPolicy policy_;
  Index* index_;
};

}  // namespace cw::policy
