#include "netdev/net_ops.h"

#include <nlohmann/json.hpp>

#include <cassert>
#include <cctype>
#include <charconv>

namespace cw {

namespace {

bool validName(std::string_view name, std::size_t max) {
  if (name.empty() || name.size() > max || name.front() == '-') return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 0x7f || c == '/' || c == ':' || c == '"' || c == '\'' || c == '\\')
      return false;
  }
  return name != "." && name != "..";
}

bool owned(std::string_view name) { return name.substr(0, NetOps::kOwnedPrefix.size()) == NetOps::kOwnedPrefix; }

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// What a person should do about a common failure.
std::string hint(const std::string& err, bool netns_op) {
  if (err.find("Operation not permitted") != std::string::npos ||
      err.find("Permission denied") != std::string::npos)
    return netns_op ? " (run as root or give CAP_SYS_ADMIN)" : " (run as root or give CAP_NET_ADMIN)";
  if (err.find("File exists") != std::string::npos)
    return " (left over from an earlier run? `cellwalld --cleanup` removes stale cw- objects)";
  return "";
}

std::string nsSuffix(const std::string& ns) { return ns.empty() ? "" : " in namespace " + ns; }

}  // namespace

bool validIfName(std::string_view name) { return validName(name, 15); }
bool validNetnsName(std::string_view name) { return validName(name, 64); }

std::optional<IfAddress> IfAddress::parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto addr = IpAddr::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  auto digits = text.substr(slash + 1);
  unsigned len = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
  if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size()) return std::nullopt;
  if (len > (addr->is_v4() ? 32u : 128u)) return std::nullopt;
  return IfAddress{*addr, static_cast<std::uint8_t>(len)};
}

std::string IfAddress::str() const { return addr.str() + "/" + std::to_string(prefix_length); }

Cidr IfAddress::network() const {
  auto c = Cidr::parse(str());
  assert(c.has_value());  // str() of a valid IfAddress always parses
  return *c;
}

Expected<std::vector<std::string>> parseNetnsList(std::string_view json) {
  std::vector<std::string> names;
  if (trimmed(std::string(json)).empty()) return names;  // older iproute2 prints nothing
  auto doc = nlohmann::json::parse(json, nullptr, false);
  if (doc.is_discarded() || !doc.is_array()) return fail("cannot parse `ip -json netns list` output");
  for (const auto& entry : doc) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string())
      return fail("cannot parse `ip -json netns list` output: entry without a name");
    names.push_back(entry["name"].get<std::string>());
  }
  return names;
}

Expected<std::vector<LinkInfo>> parseLinkList(std::string_view json) {
  std::vector<LinkInfo> links;
  if (trimmed(std::string(json)).empty()) return links;
  auto doc = nlohmann::json::parse(json, nullptr, false);
  if (doc.is_discarded() || !doc.is_array()) return fail("cannot parse `ip -json link` output");
  for (const auto& entry : doc) {
    if (!entry.is_object() || !entry.contains("ifname") || !entry["ifname"].is_string())
      return fail("cannot parse `ip -json link` output: entry without ifname");
    LinkInfo link;
    link.name = entry["ifname"].get<std::string>();
    if (entry.contains("ifindex") && entry["ifindex"].is_number_integer()) {
      auto idx = entry["ifindex"].get<std::int64_t>();
      if (idx > 0 && idx < (1LL << 31)) link.ifindex = static_cast<int>(idx);
    }
    if (entry.contains("address") && entry["address"].is_string())
      link.mac = MacAddr::parse(entry["address"].get<std::string>()).value_or(MacAddr{});
    if (entry.contains("flags") && entry["flags"].is_array())
      for (const auto& f : entry["flags"])
        if (f.is_string() && f.get<std::string>() == "UP") link.up = true;
    if (entry.contains("addr_info") && entry["addr_info"].is_array())
      for (const auto& a : entry["addr_info"]) {
        if (!a.is_object() || !a.contains("local") || !a["local"].is_string() || !a.contains("prefixlen") ||
            !a["prefixlen"].is_number_unsigned())
          continue;
        auto addr = IpAddr::parse(a["local"].get<std::string>());
        auto len = a["prefixlen"].get<std::uint64_t>();
        if (addr && len <= (addr->is_v4() ? 32u : 128u))
          link.addresses.push_back(IfAddress{*addr, static_cast<std::uint8_t>(len)});
      }
    links.push_back(std::move(link));
  }
  return links;
}

std::vector<std::string> NetOps::ip(const std::string& ns, std::vector<std::string> args) {
  std::vector<std::string> argv{"ip"};
  if (!ns.empty()) {
    argv.push_back("-n");
    argv.push_back(ns);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

Expected<CommandResult> NetOps::runIn(const std::string& ns, std::vector<std::string> argv,
                                      std::string stdin_text) {
  if (!ns.empty()) {
    if (!validNetnsName(ns)) return fail("invalid network namespace name '" + ns + "'");
    argv.insert(argv.begin(), {"ip", "netns", "exec", ns});
  }
  Command cmd;
  cmd.argv = std::move(argv);
  cmd.stdin_text = std::move(stdin_text);
  return runner_.run(cmd);
}

Expected<void> NetOps::check(const std::string& what, const std::string& ns,
                             std::vector<std::string> argv, std::string stdin_text) {
  bool netns_op = argv.size() > 1 && argv[1] == "netns";
  auto r = runIn(ns, std::move(argv), std::move(stdin_text));
  if (!r) return fail("cannot " + what + ": " + r.error().message);
  if (r->timed_out) return fail("cannot " + what + ": timed out");
  if (!r->ok()) {
    std::string err = trimmed(r->err.empty() ? r->out : r->err);
    return fail("cannot " + what + ": " + err + hint(err, netns_op));
  }
  return {};
}

Expected<void> NetOps::createNetns(const std::string& name) {
  if (!validNetnsName(name) || !owned(name))
    return fail("refusing to create network namespace '" + name + "': cellwall names start with cw-");
  return check("create network namespace " + name, "", {"ip", "netns", "add", name});
}

Expected<void> NetOps::deleteNetns(const std::string& name) {
  if (!validNetnsName(name) || !owned(name))
    return fail("refusing to delete network namespace '" + name + "': not created by cellwall");
  if (!netnsExists(name)) return {};
  return check("delete network namespace " + name, "", {"ip", "netns", "del", name});
}

Expected<std::vector<std::string>> NetOps::listNetns(std::string_view prefix) {
  auto r = runIn("", {"ip", "-json", "netns", "list"});
  if (!r) return fail("cannot list network namespaces: " + r.error().message);
  if (!r->ok()) return fail("cannot list network namespaces: " + trimmed(r->err));
  auto all = parseNetnsList(r->out);
  if (!all) return all;
  std::vector<std::string> out;
  for (auto& n : *all)
    if (n.substr(0, prefix.size()) == prefix) out.push_back(std::move(n));
  return out;
}

bool NetOps::netnsExists(const std::string& name) {
  auto all = listNetns(name);
  if (!all) return false;
  for (const auto& n : *all)
    if (n == name) return true;
  return false;
}

Expected<void> NetOps::createVethPair(const std::string& host_name, const std::string& peer_name,
                                      const std::string& peer_netns,
                                      std::optional<MacAddr> peer_mac) {
  if (!validIfName(host_name) || !owned(host_name))
    return fail("invalid interface name '" + host_name + "' (cw-..., at most 15 characters)");
  if (!validIfName(peer_name)) return fail("invalid interface name '" + peer_name + "'");
  if (!peer_netns.empty() && !validNetnsName(peer_netns))
    return fail("invalid network namespace name '" + peer_netns + "'");
  std::vector<std::string> argv{"ip", "link", "add", host_name, "type", "veth", "peer", "name", peer_name};
  if (!peer_netns.empty()) {
    argv.push_back("netns");
    argv.push_back(peer_netns);
  }
  if (peer_mac) {
    argv.push_back("address");
    argv.push_back(peer_mac->str());
  }
  return check("create veth pair " + host_name + " <-> " + peer_name + nsSuffix(peer_netns), "", argv);
}

Expected<void> NetOps::createTap(const std::string& name) {
  if (!validIfName(name) || !owned(name))
    return fail("invalid interface name '" + name + "' (cw-..., at most 15 characters)");
  return check("create tap " + name, "", {"ip", "tuntap", "add", "dev", name, "mode", "tap"});
}

Expected<void> NetOps::moveLink(const std::string& ifname, const std::string& to_ns) {
  if (!validIfName(ifname) || !owned(ifname))
    return fail("refusing to move interface '" + ifname + "': not created by cellwall");
  if (!validNetnsName(to_ns)) return fail("invalid network namespace name '" + to_ns + "'");
  return check("move " + ifname + " into namespace " + to_ns, "",
               {"ip", "link", "set", "dev", ifname, "netns", to_ns});
}

Expected<void> NetOps::setLinkUp(const std::string& ns, const std::string& ifname) {
  if (!validIfName(ifname)) return fail("invalid interface name '" + ifname + "'");
  return check("bring up " + ifname + nsSuffix(ns), "", ip(ns, {"link", "set", "dev", ifname, "up"}));
}

Expected<void> NetOps::setMac(const std::string& ns, const std::string& ifname, const MacAddr& mac) {
  if (!validIfName(ifname)) return fail("invalid interface name '" + ifname + "'");
  return check("set MAC " + mac.str() + " on " + ifname + nsSuffix(ns), "",
               ip(ns, {"link", "set", "dev", ifname, "address", mac.str()}));
}

Expected<void> NetOps::addAddress(const std::string& ns, const std::string& ifname,
                                  const IfAddress& addr) {
  if (!validIfName(ifname)) return fail("invalid interface name '" + ifname + "'");
  return check("add address " + addr.str() + " to " + ifname + nsSuffix(ns), "",
               ip(ns, {"addr", "add", addr.str(), "dev", ifname}));
}

Expected<void> NetOps::addRoute(const std::string& ns, const std::string& dest,
                                std::optional<IpAddr> via, const std::string& dev, bool onlink,
                                std::uint32_t table, std::uint32_t metric) {
  if (!validIfName(dev)) return fail("invalid interface name '" + dev + "'");
  if (dest != "default" && !Cidr::parse(dest)) return fail("invalid route destination '" + dest + "'");
  std::vector<std::string> args{"route", "add", dest};
  if (via) {
    args.push_back("via");
    args.push_back(via->str());
  }
  args.push_back("dev");
  args.push_back(dev);
  if (onlink) args.push_back("onlink");
  if (table != 0) {
    args.push_back("table");
    args.push_back(std::to_string(table));
  }
  if (metric != 0) {
    args.push_back("metric");
    args.push_back(std::to_string(metric));
  }
  return check("add route " + dest + " dev " + dev + nsSuffix(ns), "", ip(ns, args));
}

Expected<void> NetOps::deleteRoute(const std::string& ns, const std::string& dest, std::uint32_t table) {
  if (dest != "default" && !Cidr::parse(dest)) return fail("invalid route destination '" + dest + "'");
  std::vector<std::string> args{"route", "del", dest};
  if (table != 0) {
    args.push_back("table");
    args.push_back(std::to_string(table));
  }
  auto r = check("delete route " + dest + nsSuffix(ns), "", ip(ns, args));
  if (!r && r.error().message.find("No such process") != std::string::npos) return {};
  return r;
}

Expected<void> NetOps::addMarkRule(const std::string& ns, std::uint32_t mark, std::uint32_t table) {
  if (ns.empty()) return fail("refusing to add a routing rule to the host's namespace");
  return check("add rule fwmark " + std::to_string(mark) + nsSuffix(ns), "",
               ip(ns, {"rule", "add", "fwmark", std::to_string(mark), "table", std::to_string(table)}));
}

Expected<void> NetOps::setMtu(const std::string& ns, const std::string& ifname, std::uint32_t mtu) {
  if (!validIfName(ifname)) return fail("invalid interface name '" + ifname + "'");
  return check("set MTU " + std::to_string(mtu) + " on " + ifname + nsSuffix(ns), "",
               ip(ns, {"link", "set", "dev", ifname, "mtu", std::to_string(mtu)}));
}

Expected<void> NetOps::adoptLink(const std::string& ifname, const std::string& to_ns, const std::string& new_name) {
  if (!validIfName(ifname) || !validIfName(new_name)) return fail("invalid interface name '" + ifname + "'");
  if (ifname == "lo") return fail("refusing to move the loopback interface");
  if (!validNetnsName(to_ns) || !owned(to_ns)) return fail("invalid network namespace name '" + to_ns + "'");
  if (auto r = check("move " + ifname + " into namespace " + to_ns, "", {"ip", "link", "set", "dev", ifname, "netns", to_ns});
      !r)
    return r;
  return check("rename " + ifname + " to " + new_name + nsSuffix(to_ns), "",
               ip(to_ns, {"link", "set", "dev", ifname, "name", new_name}));
}

Expected<void> NetOps::returnLink(const std::string& ns, const std::string& name, const std::string& original,
                                  pid_t to_pid) {
  if (!validIfName(name) || !validIfName(original)) return fail("invalid interface name '" + original + "'");
  if (!validNetnsName(ns)) return fail("invalid network namespace name '" + ns + "'");
  if (auto r = check("rename " + name + " back to " + original + nsSuffix(ns), "",
                     ip(ns, {"link", "set", "dev", name, "down", "name", original}));
      !r)
    return r;
  return check("move " + original + " back to the host", "",
               ip(ns, {"link", "set", "dev", original, "netns", std::to_string(to_pid)}));
}

Expected<LinkInfo> NetOps::linkInfo(const std::string& ns, const std::string& ifname) {
  if (!validIfName(ifname)) return fail("invalid interface name '" + ifname + "'");
  auto r = runIn("", ip(ns, {"-json", "addr", "show", "dev", ifname}));
  if (!r) return fail("cannot look at interface " + ifname + nsSuffix(ns) + ": " + r.error().message);
  if (!r->ok()) return fail("cannot look at interface " + ifname + nsSuffix(ns) + ": " + trimmed(r->err));
  auto all = parseLinkList(r->out);
  if (!all) return Unexpected(all.error());
  if (all->size() != 1) return fail("interface " + ifname + nsSuffix(ns) + " not found");
  return all->front();
}

Expected<void> NetOps::deleteLink(const std::string& ns, const std::string& ifname) {
  if (!validIfName(ifname)) return fail("invalid interface name '" + ifname + "'");
  if (ns.empty() && !owned(ifname))
    return fail("refusing to delete interface '" + ifname + "': not created by cellwall");
  auto links = listLinks(ns, ifname);
  if (!links) return fail("cannot delete interface " + ifname + ": " + links.error().message);
  bool found = false;
  for (const auto& l : *links) found = found || l.name == ifname;
  if (!found) return {};
  auto r = check("delete interface " + ifname + nsSuffix(ns), "", ip(ns, {"link", "del", "dev", ifname}));
  // A veth goes away on its own when its peer's namespace is deleted, which the kernel
  // finishes asynchronously: losing that race is success.
  if (!r && r.error().message.find("Cannot find device") != std::string::npos) return {};
  return r;
}

Expected<std::vector<LinkInfo>> NetOps::listLinks(const std::string& ns, std::string_view prefix) {
  if (!ns.empty() && !validNetnsName(ns)) return fail("invalid network namespace name '" + ns + "'");
  auto r = runIn("", ip(ns, {"-json", "link", "show"}));
  if (!r) return fail("cannot list interfaces" + nsSuffix(ns) + ": " + r.error().message);
  if (!r->ok()) return fail("cannot list interfaces" + nsSuffix(ns) + ": " + trimmed(r->err));
  auto all = parseLinkList(r->out);
  if (!all) return all;
  std::vector<LinkInfo> out;
  for (auto& l : *all)
    if (l.name.substr(0, prefix.size()) == prefix) out.push_back(std::move(l));
  return out;
}

Expected<void> NetOps::setSysctl(const std::string& ns, const std::string& key,
                                 const std::string& value) {
  for (char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return fail("invalid sysctl key '" + key + "'");
  // Spaces are fine (ranges like "0 2147483647"): argv is passed without a shell.
  for (char c : value)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == ' '))
      return fail("invalid sysctl value '" + value + "' for " + key);
  if (key.empty() || key.front() == '-' || value.empty() || value.front() == '-')
    return fail("invalid sysctl '" + key + "=" + value + "'");
  return check("set " + key + "=" + value + nsSuffix(ns), ns, {"sysctl", "-q", "-w", key + "=" + value});
}

Expected<void> NetOps::nft(const std::string& ns, const std::string& ruleset_text) {
  return check("load nftables rules" + nsSuffix(ns.empty() ? std::string("root") : ns), ns,
               {"nft", "-f", "-"}, ruleset_text);
}

namespace {

// The rule's own words, for adding (-A) and checking (-C).
std::vector<std::string> checksumRule(const char* verb) {
  return {"iptables", "-w", "-t", "mangle", verb, "POSTROUTING", "-p", "udp", "-j", "CHECKSUM", "--checksum-fill"};
}

}  // namespace

Expected<void> NetOps::fillUdpChecksums(const std::string& ns, const std::string& ifname) {
  if (ns.empty()) return fail("refusing to add a checksum rule to the host's namespace");
  if (!validNetnsName(ns)) return fail("invalid network namespace name '" + ns + "'");
  if (!validIfName(ifname)) return fail("invalid interface name '" + ifname + "'");
  if (auto r = runIn(ns, {"ethtool", "-K", ifname, "tx-udp-segmentation", "off"}); !r || r->timed_out || !r->ok())
    return fail("cannot turn off UDP segmentation offload on " + ifname + nsSuffix(ns) + ": " +
                (!r ? r.error().message : r->timed_out ? "timed out" : trimmed(r->err)) + " (is ethtool installed?)");
  auto r = runIn(ns, checksumRule("-A"));
  const std::string what = "cannot add the UDP checksum rule (iptables -t mangle ... -j CHECKSUM --checksum-fill)" +
                           nsSuffix(ns) + ": ";
  if (!r) return fail(what + r.error().message);
  if (r->timed_out) return fail(what + "timed out");
  if (r->ok()) return {};
  std::string err = trimmed(r->err.empty() ? r->out : r->err);
  if (err.find("CHECKSUM") != std::string::npos)
    return fail(what + err + " (the kernel needs the xt_CHECKSUM module, CONFIG_NETFILTER_XT_TARGET_CHECKSUM)");
  if (err.find("exec of") != std::string::npos || err.find("No such file") != std::string::npos)
    return fail(what + err + " (install the iptables package)");
  return fail(what + err + hint(err, false));
}

Expected<bool> NetOps::fillsUdpChecksums(const std::string& ns) {
  if (ns.empty()) return fail("refusing to look for a checksum rule in the host's namespace");
  if (!validNetnsName(ns)) return fail("invalid network namespace name '" + ns + "'");
  auto r = runIn(ns, checksumRule("-C"));
  if (!r) return Unexpected(r.error());
  if (r->timed_out) return fail("cannot list the mangle table" + nsSuffix(ns) + ": timed out");
  return r->ok();
}

Expected<void> NetOps::removeAllWithPrefix(std::string_view prefix) {
  if (!owned(prefix)) return fail("refusing to remove objects with prefix '" + std::string(prefix) + "'");
  std::string errors;
  auto namespaces = listNetns(prefix);
  if (!namespaces) {
    errors += namespaces.error().message + "; ";
  } else {
    for (const auto& n : *namespaces)
      if (auto r = deleteNetns(n); !r) errors += r.error().message + "; ";
  }
  auto links = listLinks("", prefix);
  if (!links) {
    errors += links.error().message + "; ";
  } else {
    for (const auto& l : *links)
      if (auto r = deleteLink("", l.name); !r) errors += r.error().message + "; ";
  }
  if (!errors.empty()) {
    errors.resize(errors.size() - 2);
    return fail("stale cleanup incomplete: " + errors);
  }
  return {};
}

}  // namespace cw
