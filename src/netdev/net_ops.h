// NetOps: the host network primitives cellwall needs (namespaces, veth pairs, addresses,
// routes, sysctls, nftables), issued as iproute2/nft/sysctl/iptables commands through a
// CommandRunner.
// Queries use `ip -json` and are parsed here.
//
// Namespaces: every namespace-scoped call takes the netns name first; "" means the root
// namespace (the daemon's own). Safety: cellwall only touches what it created, so creating or
// deleting a namespace, and deleting a link in the root namespace, is refused unless the name
// starts with "cw-". Names are checked before any command runs (length, characters, not
// starting with '-'), so configuration cannot smuggle options into ip or nft.
//
// Errors: each failure names the operation, the object and the tool's stderr, e.g.
// "cannot create network namespace cw-c3: Operation not permitted (run as root or give
// CAP_SYS_ADMIN)". Ownership: NetOps borrows the runner, which must outlive it.
// Threading: as the runner (one call at a time).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "common/result.h"
#include "netdev/command_runner.h"

namespace cw {

// An interface address: host address plus prefix length ("10.200.0.1/16"). Unlike Cidr the
// host bits are kept.
struct IfAddress {
  IpAddr addr;
  std::uint8_t prefix_length = 0;

  static std::optional<IfAddress> parse(std::string_view text);
  std::string str() const;
  // The network it is on, host bits cleared.
  Cidr network() const;
  auto operator<=>(const IfAddress&) const = default;
};

struct LinkInfo {
  std::string name;
  int ifindex = 0;
  MacAddr mac;
  bool up = false;  // administratively up (IFF_UP)
  std::vector<IfAddress> addresses;  // IPv4 and IPv6, from `ip -json addr` (empty from `ip link`)
  bool operator==(const LinkInfo&) const = default;
};

// Interface names: 1..15 bytes, no '/', whitespace, ':' or leading '-'. Netns names the same
// rules but up to 64 bytes.
bool validIfName(std::string_view name);
bool validNetnsName(std::string_view name);

// Parsers for `ip -json` output, exposed for tests and fuzzing. Malformed text is an error.
Expected<std::vector<std::string>> parseNetnsList(std::string_view json);
Expected<std::vector<LinkInfo>> parseLinkList(std::string_view json);

class NetOps {
 public:
  static constexpr std::string_view kOwnedPrefix = "cw-";

  explicit NetOps(CommandRunner& runner) : runner_(runner) {}

  Expected<void> createNetns(const std::string& name);
  // Deleting a namespace that does not exist is success (idempotent cleanup).
  Expected<void> deleteNetns(const std::string& name);
  Expected<std::vector<std::string>> listNetns(std::string_view prefix);
  bool netnsExists(const std::string& name);

  // Creates host_name in the root namespace and its peer directly inside peer_netns ("" =
  // root), optionally with a fixed MAC on the peer. Both ends stay down.
  Expected<void> createVethPair(const std::string& host_name, const std::string& peer_name,
                                const std::string& peer_netns, std::optional<MacAddr> peer_mac);
  // A persistent tap in the root namespace (a VM cell's port; the VMM attaches to it): no
  // packet information, no virtio-net header. Deleted with deleteLink.
  Expected<void> createTap(const std::string& name);
  // Moves a root-namespace link into to_ns (used to hand one end of a veth to a namespace
  // cellwall did not create, e.g. an environment's uplink namespace).
  Expected<void> moveLink(const std::string& ifname, const std::string& to_ns);
  Expected<void> setLinkUp(const std::string& ns, const std::string& ifname);
  Expected<void> setMac(const std::string& ns, const std::string& ifname, const MacAddr& mac);
  Expected<void> addAddress(const std::string& ns, const std::string& ifname,
                            const IfAddress& addr);
  // dest is a prefix ("10.0.0.0/8") or "default"; via may be empty for a device route;
  // onlink lets the next hop lie outside the interface's subnet. table 0 is the main table;
  // metric 0 leaves the kernel's default.
  Expected<void> addRoute(const std::string& ns, const std::string& dest,
                          std::optional<IpAddr> via, const std::string& dev, bool onlink,
                          std::uint32_t table = 0, std::uint32_t metric = 0);
  // Deleting a route that does not exist is success.
  Expected<void> deleteRoute(const std::string& ns, const std::string& dest, std::uint32_t table = 0);
  // A policy rule: packets whose mark is `mark` look up `table` (a VPN gateway's own
  // packets to its server). Never in the root namespace.
  Expected<void> addMarkRule(const std::string& ns, std::uint32_t mark, std::uint32_t table);
  Expected<void> setMtu(const std::string& ns, const std::string& ifname, std::uint32_t mtu);
  // A host interface cellwall did not create, given to an environment's gateway as its uplink:
  // moved into to_ns and renamed new_name there (the move removes its addresses).
  Expected<void> adoptLink(const std::string& ifname, const std::string& to_ns, const std::string& new_name);
  // The way back: renamed `original` and moved into the network namespace of process to_pid
  // (the daemon's own: the host's).
  Expected<void> returnLink(const std::string& ns, const std::string& name, const std::string& original,
                            pid_t to_pid);
  // One link with its addresses.
  Expected<LinkInfo> linkInfo(const std::string& ns, const std::string& ifname);
  // Deleting a link that does not exist is success. Root-namespace links must be "cw-".
  Expected<void> deleteLink(const std::string& ns, const std::string& ifname);
  Expected<std::vector<LinkInfo>> listLinks(const std::string& ns, std::string_view prefix);
  // key in sysctl dotted form ("net.ipv4.ip_forward").
  Expected<void> setSysctl(const std::string& ns, const std::string& key,
                           const std::string& value);
  // Loads ruleset_text with `nft -f -` (inside ns unless "").
  Expected<void> nft(const std::string& ns, const std::string& ruleset_text);
  // With TX checksum offload on, makes UDP leave namespace `ns` (never the root one) through
  // `ifname` with finished checksums (docs/ovs.md, "Checksum offload"):
  //  - iptables' CHECKSUM target in the mangle table finishes what TX offload left partial (nft
  //    has no statement for it; Debian's iptables-nft keeps the rule in nftables, table ip
  //    mangle, through nft_compat);
  //  - UDP segmentation offload off on ifname: a UDP_SEGMENT (GSO) send passes that rule
  //    unsegmented and Open vSwitch 3.1 drops it; segmented in software it arrives.
  Expected<void> fillUdpChecksums(const std::string& ns, const std::string& ifname);
  // Whether that rule is in ns (a gateway left by an earlier run is adopted only with it).
  Expected<bool> fillsUdpChecksums(const std::string& ns);

  // Crash recovery: deletes every namespace and every root-namespace link whose name starts
  // with prefix (which must itself start with "cw-"). Keeps going past failures and reports
  // them all at the end.
  Expected<void> removeAllWithPrefix(std::string_view prefix);

  CommandRunner& runner() { return runner_; }

 private:
  // Runs argv inside ns (via `ip netns exec`) or in the root namespace.
  Expected<CommandResult> runIn(const std::string& ns, std::vector<std::string> argv,
                                std::string stdin_text = "");
  // Runs and turns a non-zero exit into "cannot <what>: <stderr><hint>".
  Expected<void> check(const std::string& what, const std::string& ns,
                       std::vector<std::string> argv, std::string stdin_text = "");
  // `ip` with "-n ns" when ns is not root.
  static std::vector<std::string> ip(const std::string& ns, std::vector<std::string> args);

  CommandRunner& runner_;
};

}  // namespace cw
