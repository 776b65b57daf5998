#include "env/ovpn_config.h"

#include <algorithm>
#include <array>

namespace cw::env {

namespace {

// Directives that run a program (or load code) on the host.
constexpr std::array kRunsPrograms = {
    "up", "down", "route-up", "route-pre-down", "ipchange", "client-connect", "client-disconnect",
    "learn-address", "tls-verify", "auth-user-pass-verify", "plugin", "script-security", "iproute",
    "tls-export-cert", "client-crresponse",
};
// Directives cellwall sets itself, or that would move the tunnel outside the gateway.
// (`dev tun` is fine: cellwall's --dev, given after the file, names the device.)
constexpr std::array kOwnedByCellwall = {
    "dev-node", "mark", "route-noexec", "ifconfig-noexec", "daemon", "log", "log-append",
    "writepid", "chroot", "cd", "config", "management", "management-client",
    "management-query-passwords", "management-hold", "syslog", "up-restart", "lladdr", "mktun",
    "rmtun",
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool among(std::string_view word, const auto& list) {
  return std::any_of(list.begin(), list.end(), [&](const char* w) { return word == w; });
}

}  // namespace

Expected<OvpnConfig> parseOpenVpnConfig(std::string_view text, std::string_view filename) {
  OvpnConfig c;
  std::size_t line_no = 0;
  std::string inline_block;  // inside <tag> ... </tag>: key material, not directives
  auto at = [&](std::string_view why) {
    return fail(std::string(filename).append(":").append(std::to_string(line_no)).append(": ").append(why));
  };
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    auto line = trim(raw);
    if (!inline_block.empty()) {
      if (line == "</" + inline_block + ">") inline_block.clear();
      continue;
    }
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '<') {
      if (line.back() != '>' || line.size() < 3 || line[1] == '/') return at("malformed inline block tag");
      inline_block = std::string(line.substr(1, line.size() - 2));
      if (inline_block == "secret")
        return at("<secret>: static-key mode is deprecated and not supported; use a TLS configuration");
      continue;
    }
    // The directive is the first word; a leading "--" is allowed as on the command line.
    auto end = line.find_first_of(" \t");
    std::string_view word = line.substr(0, end);
    if (word.substr(0, 2) == "--") word.remove_prefix(2);
    std::string key(word);
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    std::string_view rest = end == std::string_view::npos ? std::string_view() : trim(line.substr(end));
    if (key == "secret")
      return at("'secret': static-key mode is deprecated and not supported; use a TLS configuration");
    if (among(key, kRunsPrograms))
      return at(std::string("'").append(key).append("' runs a program on the host; cellwall does not run it"));
    if (among(key, kOwnedByCellwall))
      return at(std::string("'").append(key).append("' is set by cellwall, which runs the tunnel inside the environment's gateway"));
    if (key == "user" || key == "group")
      return at(std::string("'").append(key).append(
          "': after dropping privileges openvpn cannot re-create its device or report it when it reconnects; "
          "remove it (cellwall keeps the tunnel inside the environment's gateway)"));
    if ((key == "dev" || key == "dev-type") && rest.substr(0, 3) != "tun")
      return at(std::string("'").append(key).append(" ").append(rest).append(
          "': cellwall routes IP through the tunnel; only tun devices are supported"));
    if (key == "mode" && rest == "server") return at("'mode server': this is a server configuration");
    if (key == "server" || key == "server-bridge") return at(std::string("'").append(key).append("': this is a server configuration"));
    if (key == "client" || key == "pull") c.client = true;
    if (key == "remote") {
      if (rest.empty()) return at("'remote' needs a host");
      c.remotes.emplace_back(rest);
    }
  }
  if (!inline_block.empty()) return fail(std::string(filename).append(": <").append(inline_block).append("> is never closed"));
  if (c.remotes.empty()) return fail(std::string(filename) + ": no 'remote': the tunnel would lead nowhere");
  if (!c.client) return fail(std::string(filename) + ": not a client configuration (no 'client' or 'pull')");
  return c;
}

}  // namespace cw::env

namespace cw::env {

std::string openVpnUpRecord(const std::function<const char*(const char*)>& getenv) {
  std::string out;
  if (const char* dev = getenv("dev")) out.append("dev=").append(dev).append("\n");
  // foreign_option_1.. are consecutive: "dhcp-option DNS 10.8.0.1", "dhcp-option DOMAIN corp".
  for (int i = 1; i < 1000; ++i) {
    const char* opt = getenv(("foreign_option_" + std::to_string(i)).c_str());
    if (opt == nullptr) break;
    std::string_view o(opt);
    constexpr std::string_view kDhcp = "dhcp-option ";
    if (o.substr(0, kDhcp.size()) != kDhcp) continue;
    o.remove_prefix(kDhcp.size());
    auto sp = o.find(' ');
    if (sp == std::string_view::npos) continue;
    auto kind = o.substr(0, sp);
    auto value = trim(o.substr(sp + 1));
    if (kind == "DNS" || kind == "DNS6") out.append("dns=").append(value).append("\n");
    else if (kind == "DOMAIN" || kind == "DOMAIN-SEARCH") out.append("domain=").append(value).append("\n");
  }
  return out;
}

OvpnPushed parseOpenVpnUpRecord(std::string_view text) {
  OvpnPushed p;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    auto key = line.substr(0, eq);
    auto value = std::string(line.substr(eq + 1));
    if (key == "dev") p.dev = value;
    else if (key == "dns") {
      if (auto a = IpAddr::parse(value)) p.dns.push_back(*a);
    } else if (key == "domain" && !value.empty()) {
      p.domains.push_back(value);
    }
  }
  return p;
}

}  // namespace cw::env
