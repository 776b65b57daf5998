// The rule model and the per-app TOML policy. Pure: no I/O, no clock (callers pass "now").
//
// What the language means is documented in docs/policy.md; this header is the contract for
// code: the model (Rule, AppPolicy), parsing and exporting text, and the Matcher that decides
// connections. Prompts and process/user matches still fit this shape without changing it; the
// parser rejects the prompt keywords by name until they exist.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
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
// Which names a cell may resolve through its environment's resolver (docs/policy.md, "Name
// resolution"): kAny, every name (the query goes straight to the resolver); kRules, only names
// an outbound allow rule's hosts match, the others refused by the controller.
enum class Resolve : std::uint8_t { kAny, kRules };

const char* actionName(Action a);
// The inverse of actionName: "allow", "deny" or "reject"; nullopt for anything else.
std::optional<Action> actionFromName(std::string_view name);
const char* protocolName(Protocol p);
const char* defaultActionName(DefaultAction a);
const char* directionName(Direction d);
const char* resolveName(Resolve r);  // "any", "rules"

struct PortRange {
  std::uint16_t lo = 0, hi = 65535;
  bool contains(std::uint16_t p) const { return p >= lo && p <= hi; }
  bool operator==(const PortRange&) const = default;
};

// A host name a rule names: "api.example.org" (wildcard = false) or "*.example.org"
// (wildcard = true, name = "example.org"), which matches every name strictly below
// example.org at any depth but not example.org itself. name is lowercase, has no trailing dot
// and consists of 1-63 character labels of a-z 0-9 - _ (no '-' at either end of a label),
// at most 253 characters with the "*." of a wildcard.
struct HostPattern {
  std::string name;
  bool wildcard = false;
  std::string str() const;  // as written in a policy file: "api.example.org", "*.example.org"
  bool operator==(const HostPattern&) const = default;
};

// Validates and normalises one hosts entry as written in a policy file ("API.Example.org.",
// "*.example.org"). Errors say what is wrong and what is accepted (no position: the caller
// knows where the text came from). Refused: "*" alone (leave hosts out to match any host),
// "*" anywhere but as the whole first label, names whose last label is all digits (an
// address: use to/from), empty labels, bad characters and lengths.
Result<HostPattern, std::string> parseHostPattern(std::string_view text);

struct RuleMatch {
  Protocol protocol = Protocol::kAny;
  Direction direction = Direction::kOutbound;
  // The remote side: `to` of an outbound rule, `from` of an inbound one. Empty: any address.
  std::vector<Cidr> addresses;
  std::vector<PortRange> ports;  // empty: any port. Inbound: the cell's local (listening) port
  // Outbound only. A rule names hosts or addresses, not both (the parser refuses both; a rule
  // built in code with both matches either). Matched against ConnKey::names.
  std::vector<HostPattern> hosts;
  // The process inside the cell that owns the connection (docs/policy.md, "Rules by
  // process"). Each list, when not empty, must match (any of its items); a rule naming any of
  // them matches only connections attributed to a process. Globs are fnmatch(3) patterns
  // without flags: '*' also crosses '/'.
  std::vector<std::string> exe;      // the executable's path: "/usr/bin/curl", "/opt/*"
  std::vector<std::string> process;  // the process name (comm, at most 15 bytes), glob
  std::vector<std::string> users;    // the process's user: a name, or a uid in decimal
  std::vector<std::string> parent;   // the parent process's executable path, glob
  std::vector<std::uint32_t> pids;   // the process id (as the host sees it): auto-rules
  bool operator==(const RuleMatch&) const = default;
  // Where a rule stands among process rules: 3 names pids, 2 an executable, name or parent,
  // 1 only users, 0 no process at all. A higher tier ranks first (Matcher).
  unsigned processTier() const {
    if (!pids.empty()) return 3;
    if (!exe.empty() || !process.empty() || !parent.empty()) return 2;
    return users.empty() ? 0 : 1;
  }
};

// How long a rule lives: whichever limit is reached first ends it. All zero / false: forever.
// The state (connections used so far, whether the cell exited, the clock) belongs to the
// daemon; it skips rules that ended through the RuleFilter passed to Matcher::decide.
struct Lifetime {
  std::int64_t for_ms = 0;         // relative: "for = 15m"; 0 = none. See resolveLifetime
  std::int64_t until_ms = 0;       // absolute, unix milliseconds; 0 = none
  std::uint32_t connections = 0;   // the rule decides at most this many connections; 0 = no limit
  bool until_exit = false;         // until the app's cell exits
  bool operator==(const Lifetime&) const = default;
  bool forever() const { return for_ms == 0 && until_ms == 0 && connections == 0 && !until_exit; }
  // True when until_ms is set and has passed. (for_ms must be resolved first.)
  bool expiredAt(std::int64_t now_ms) const { return until_ms != 0 && now_ms >= until_ms; }
};

// Limits the parser enforces (and the docs state).
inline constexpr std::int64_t kMaxForMs = 3650LL * 24 * 3600 * 1000;  // 3650 days
inline constexpr std::uint32_t kMaxConnections = 1000000;
inline constexpr std::size_t kMaxPassEnv = 64;           // pass_env items
inline constexpr std::size_t kMaxPassEnvLength = 128;    // characters of one, '*' included

// The one rule for a connection count, wherever a rule gets one (a policy file's
// `connections`, `cellwall rules add --connections`, a prompt answer's count): 1 to
// kMaxConnections. 0 is refused, not read as "no limit": a rule for no connections is a typo
// or a misunderstanding, and the way to say "no limit" is to leave the count out. Returns why
// `n` is refused ("connections = 0 is out of range; ..."), or nullopt when it is valid.
std::optional<std::string> connectionsProblem(std::int64_t n);

struct Rule {
  std::uint32_t id = 0;  // unique within the daemon; 0 is reserved for "the app's default"
  Action action = Action::kDeny;
  RuleMatch match;
  Lifetime lifetime;
  std::string origin;   // "file.toml:12", "api", ...
  std::string comment;  // UTF-8
  bool operator==(const Rule&) const = default;
};

// Turns a relative lifetime into an absolute one: until_ms = min(until_ms, now_ms + for_ms)
// and for_ms = 0. The daemon calls it when a rule is loaded or added, so that stored and
// exported rules carry absolute times. No-op when for_ms is 0.
void resolveLifetime(Rule& rule, std::int64_t now_ms);
void resolveLifetimes(std::vector<Rule>& rules, std::int64_t now_ms);

struct AppPolicy {
  std::string app;  // empty in the file: taken from the file name or --app
  DefaultAction default_action = DefaultAction::kDeny;
  std::string env = "default";  // the network environment the app's cells live in
  // default = "prompt": how long an unknown connection is held for an answer, and what then.
  static constexpr std::int64_t kDefaultPromptTimeoutMs = 60'000;
  std::int64_t prompt_timeout_ms = kDefaultPromptTimeoutMs;
  Action prompt_timeout_action = Action::kDeny;
  // `resolve`, when the file sets it; unset: it follows `default` (resolveOf).
  std::optional<Resolve> resolve;
  // clean_env = true: the app's commands get only a safe list of environment variables
  // (docs/launcher.md, "The environment"), plus the names in pass_env: "NAME", or "PREFIX_*"
  // for every name with that prefix. Each is [A-Za-z_][A-Za-z0-9_]* (with the one trailing
  // '*'), at most 128 characters, at most 64 of them; pass_env also applies to
  // `cellwall run --clean-env`.
  bool clean_env = false;
  std::vector<std::string> pass_env;
  std::vector<Rule> rules;
  std::string origin;  // the file it came from
};

// The resolution policy in force: the `resolve` key when set, else kRules under a default
// that refuses (deny, reject: what no rule names must not leave through query names either)
// and kAny under allow and prompt (an allowing app, and one that asks, need names to work).
Resolve resolveOf(const AppPolicy& policy);

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
// now_ms (unix ms) > 0 refuses `until` times at or before now; pass it for text a person just
// submitted, and 0 when reloading stored text, whose rules may have ended meanwhile (the
// daemon's filter skips those). `for` stays relative: call resolveLifetime(s) after parsing.
Result<AppPolicy, PolicyError> parsePolicy(std::string_view text, std::string_view filename,
                                           std::uint32_t first_rule_id = 1,
                                           std::int64_t now_ms = 0);

// The check parsePolicy makes of the text itself before parsing it: UTF-8 throughout (comments
// too), and none of the code points toml++ 3.3 mishandles. The first problem with its line and
// column (in characters), or nullopt. For callers that pass the text on before anyone parses it
// (`cellwall` sends a policy file to cellwalld as JSON, which could not carry the bad bytes).
std::optional<PolicyError> checkPolicyText(std::string_view text, std::string_view filename);

// Parses one rule as exportRule writes it: exactly one [[allow]], [[deny]] or [[rule]] table
// and nothing else (top-level keys are errors). The rule gets `id`, and `origin` verbatim;
// errors name `origin` as the file. now_ms as for parsePolicy.
Result<Rule, PolicyError> parseRule(std::string_view text, std::string_view origin,
                                    std::uint32_t id = 0, std::int64_t now_ms = 0);

// Canonical TOML for a policy / one rule, for storage and `cellwall rules export`.
// For any policy parsePolicy accepted, parsePolicy(exportPolicy(p)) equals p except for rule
// ids and origins, and exporting that again gives byte-identical text. The form (see
// docs/policy.md): app (if set), default, env, prompt_timeout, prompt_timeout_action,
// clean_env, pass_env (each only when not the default), then one block per rule in order,
// [[allow]] / [[deny]] / [[rule]] + action = "reject", keys in the fixed order direction,
// proto, hosts, to/from, ports, for, until, connections, comment, each only when not the
// default; single values unbracketed; `until` as an RFC 3339 UTC datetime; comments as TOML
// basic strings, escaping what toml++ 3.3 cannot read (invalid UTF-8 becomes U+FFFD).
// `resolve` follows env (and the prompt keys) only when the policy sets it.
// Rules the parser would refuse (built in code) are written as they are and will not parse.
std::string exportPolicy(const AppPolicy& policy);
std::string exportRule(const Rule& rule);  // "[[allow]]\nproto = \"tcp\"\n...", ends in '\n'

// Durations as in `for`: an integer and unit, units d, h, m, s, each at most once and in that
// order ("1h30m", "90m", "2d"). parseDuration returns milliseconds (> 0, <= kMaxForMs) or why
// not. formatDuration writes the canonical form (largest units first: 90m -> "1h30m"),
// rounding sub-second parts up; ms must be > 0.
Result<std::int64_t, std::string> parseDuration(std::string_view text);
std::string formatDuration(std::int64_t ms);
// Timestamps as in `until`: RFC 3339 with "Z" or an offset, optional fraction (kept to the
// millisecond), years 1970-9999. formatTimestamp writes UTC with "Z", with ".mmm" only when
// the millisecond part is not zero: "2026-12-01T10:00:00Z", "2026-12-01T10:00:00.250Z".
Result<std::int64_t, std::string> parseTimestamp(std::string_view text);
std::string formatTimestamp(std::int64_t unix_ms);

// A connection as policy sees it.
// The process a connection was attributed to, as rules see it (the daemon fills it from
// kernel state: docs/attribution.md). Views into the caller's strings.
struct ProcessKey {
  std::uint32_t pid = 0;
  std::uint32_t uid = 0;
  std::string_view user;        // the uid's name; empty if it has none
  std::string_view exe;         // empty if unknown (the process exited before it was read)
  std::string_view comm;
  std::string_view parent_exe;  // empty if unknown
};

// Whether a rule's process fields admit the process (true for a rule without any; false for
// one with some when `p` is null: an unattributed connection).
bool processMatches(const RuleMatch& m, const ProcessKey* p);

struct ConnKey {
  ConnKey() = default;
  ConnKey(Protocol p, Direction d, IpAddr remote_addr, std::uint16_t port,
          std::span<const std::string_view> resolved_names = {})
      : protocol(p), direction(d), remote(remote_addr), remote_port(port), names(resolved_names) {}

  Protocol protocol = Protocol::kTcp;  // kIcmp for ICMP/ICMPv6
  Direction direction = Direction::kOutbound;
  // Outbound: the destination the cell connects to. Inbound: the source connecting to the cell.
  IpAddr remote;
  // TCP/UDP only. Outbound: the destination port. Inbound: the cell's local (listening) port.
  std::uint16_t remote_port = 0;
  // The names this cell itself resolved to `remote` (DNS snooping; CNAME chain included), any
  // case, trailing dot allowed. Host rules match only through these. Owned by the caller;
  // only read during decide()/explain().
  std::span<const std::string_view> names;
  // The owning process; null when the connection was not attributed (process rules then do
  // not match it).
  const ProcessKey* process = nullptr;
};

struct Verdict {
  Action action = Action::kDeny;
  const Rule* rule = nullptr;        // nullptr: the app's default decided
  DefaultAction fallback = DefaultAction::kDeny;  // meaningful when rule == nullptr
};

// Lets decide() skip rules the caller considers used up (connection count reached, until
// passed, cell exited): an unusable rule is treated as absent and the next best decides.
// A plain function pointer and context, so passing one costs nothing and never allocates.
// usable is called only for candidate rules, possibly more than once per rule, from the
// deciding thread; it must not throw. RuleFilter{} accepts every rule.
struct RuleFilter {
  bool (*usable)(const void* ctx, const Rule& rule) = nullptr;
  const void* ctx = nullptr;

  bool operator()(const Rule& r) const { return usable == nullptr || usable(ctx, r); }
  // RuleFilter::of(f) for any callable `bool f(const Rule&)` that outlives the filter.
  template <class F>
  static RuleFilter of(const F& f) {
    return RuleFilter{[](const void* c, const Rule& r) -> bool {
                        return (*static_cast<const F*>(c))(r);
                      },
                      &f};
  }
  template <class F>
  static RuleFilter of(const F&& f) = delete;  // a temporary would dangle
};

// Why each matching rule ranks where it does (Matcher::explain).
struct Candidate {
  const Rule* rule = nullptr;
  bool usable = true;  // what the filter said
  // What matched and, after the first, why it ranks below the one before it:
  // "prefix 10.0.0.0/8 (8 bits), ports 443 (width 1), proto tcp, deny; below rule 3: ..."
  std::string reason;
};

struct Explanation {
  Verdict verdict;                     // the same as decide(key, filter)
  std::vector<Candidate> candidates;   // every matching rule once, best first
};

// An immutable, compiled form of one AppPolicy.
//
// Precedence (docs/policy.md, "Which rule wins"). Among the rules matching a key, the usable
// one that ranks first decides:
//  0. Process specificity (RuleMatch::processTier): a rule naming pids > one naming an
//     executable, process name or parent > one naming only users > one naming no process.
//  1. Destination specificity: an exact host name > a wildcard host (more labels in the
//     pattern wins: *.a.example.org > *.example.org) > an address prefix (longer wins; any
//     prefix, ::/0 and 0.0.0.0/0 included, beats none) > a rule without hosts or addresses.
//  2. Then the narrowest port range containing the port (a single port is width 1, "lo-hi"
//     is hi-lo+1, no ports is wider than any range).
//  3. Then a rule naming a protocol over proto "any".
//  4. Then deny/reject over allow.
//  5. Then the lower id (and, for equal ids, which only code can make, the earlier rule).
// A rule with several hosts/addresses/ranges competes with its best-ranking combination.
// Matching details:
//  - Inbound keys see only inbound rules and outbound keys only outbound rules.
//  - IPv6 prefixes never match IPv4 keys and vice versa (as Cidr::contains).
//  - Host rules match only through ConnKey::names, compared case-insensitively without a
//    trailing dot. "*.example.org" matches "x.y.example.org", not "example.org".
//  - Rules with ports match only tcp/udp keys; proto "any" without ports also matches icmp.
//    A key with protocol kAny matches only rules with proto "any" and no ports.
//  - Lifetimes are not looked at: the caller's RuleFilter decides which rules still live.
//  - With no usable match, Verdict::action is the default (kDeny for kPrompt, until prompts
//    exist).
// Cost: decide() walks the address trie once (at most 129 nodes) and does a few hash lookups
// per resolved name and label; each visited node costs one binary search over port segments.
// It does not grow with the number of rules, and it does not allocate; a filter that rejects
// more than the first few candidates at one place falls back to a scan of that place's rules.
// decide() and explain() are const and safe to call from many threads at once. Verdict::rule
// and Candidate::rule point into policy(), so they live as long as the Matcher.
class Matcher {
 public:
  explicit Matcher(AppPolicy policy);
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;
  ~Matcher();

  Verdict decide(const ConnKey& key, RuleFilter filter = {}) const;
  // A hint, no effect on results: starts loading the first things decide(key) will read (only
  // the key's direction and remote address are used), so a caller's own work in between (the
  // name lookup) overlaps those cache misses.
  void prefetch(const ConnKey& key) const;
  // For `cellwall rules explain`: allocates, and costs linear time in the number of rules.
  Explanation explain(const ConnKey& key, RuleFilter filter = {}) const;
  // Name resolution (resolve = "rules"): the outbound allow rule whose hosts match `name`
  // (any case, trailing dot allowed), the same way hosts match a connection's names: an exact
  // name first, then wildcards with more labels first, then the lower id; rules the filter
  // rejects are skipped. nullptr: no usable allow rule names it. Ports, protocol and process
  // are not looked at (a lookup has none of them), and deny rules do not stop a lookup: they
  // decide connections. A few hash lookups; no allocation.
  const Rule* resolvableBy(std::string_view name, RuleFilter filter = {}) const;
  // resolveOf(policy()), kept at construction.
  bool restrictsResolution() const { return restricts_resolution_; }
  const AppPolicy& policy() const { return policy_; }
  // Whether any rule names a process: only then does a connection need attributing.
  bool namesProcesses() const { return names_processes_; }

  // The shape of the index, for tests and benchmarks.
  struct IndexStats {
    std::size_t trie_nodes = 0;  // both directions
    std::size_t strides4 = 0;    // IPv4 first strides built (one per direction at most)
    std::size_t strides6 = 0;    // IPv6 first strides built
  };
  IndexStats indexStats() const;

 private:
  struct Index;
  Verdict fallback() const;
  AppPolicy policy_;
  Index* index_;
  bool names_processes_ = false;
  bool restricts_resolution_ = false;
};

}  // namespace cw::policy
