#include "env/wg_config.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace cw::env {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Comma-separated items, trimmed, empty ones dropped.
std::vector<std::string_view> items(std::string_view v) {
  std::vector<std::string_view> out;
  while (!v.empty()) {
    const std::size_t comma = v.find(',');
    std::string_view item = trim(v.substr(0, comma));
    if (!item.empty()) out.push_back(item);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

Expected<WgConfig> parseWgConfig(std::string_view text, std::string_view filename) {
  WgConfig c;
  std::string section;
  bool interface_seen = false;
  std::size_t line_no = 0;
  auto at = [&](const std::string& why) {
    return fail(std::string(filename).append(":").append(std::to_string(line_no)).append(": ").append(why));
  };
  while (!text.empty()) {
    ++line_no;
    const std::size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    std::string_view line = raw;
    if (const std::size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']') return at("a section header ends with ']'");
      section = lower(trim(line.substr(1, line.size() - 2)));
      if (section == "interface") {
        if (interface_seen) return at("a second [Interface] section");
        interface_seen = true;
      } else if (section == "peer") {
        ++c.peers;
      } else {
        return at(std::string("unknown section ").append(line).append("; expected [Interface] or [Peer]"));
      }
      c.setconf += section == "peer" ? "[Peer]\n" : "[Interface]\n";
      continue;
    }
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) return at("expected KEY = VALUE");
    const std::string name(trim(line.substr(0, eq)));
    const std::string key = lower(name);
    const std::string_view value = trim(line.substr(eq + 1));
    if (section.empty()) return at("a key before any [Interface] or [Peer] section");
    if (section == "interface") {
      if (key == "address") {
        for (auto item : items(value)) {
          auto addr = IfAddress::parse(item);
          if (!addr)
            return at(std::string("Address: '").append(item).append("' is not an address with a prefix length"));
          c.addresses.push_back(*addr);
        }
        continue;
      }
      if (key == "dns") {
        for (auto item : items(value)) {
          if (auto ip = IpAddr::parse(item))
            c.dns.push_back(*ip);
          else
            c.search.emplace_back(item);
        }
        continue;
      }
      if (key == "mtu") {
        std::uint32_t mtu = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), mtu);
        if (ec != std::errc() || end != value.data() + value.size() || mtu < 1280 || mtu > 65535)
          return at("MTU must be a number from 1280 to 65535");
        c.mtu = mtu;
        continue;
      }
      if (key == "preup" || key == "postup" || key == "predown" || key == "postdown")
        return at(std::string(name).append(" runs commands on the host; cellwall does not run it"));
      if (key == "table" || key == "saveconfig")
        return at(std::string(name).append(" is about the host's routing or files; cellwall routes inside the environment's gateway"));
      if (key != "privatekey" && key != "listenport" && key != "fwmark")
        return at(std::string("unknown [Interface] key '").append(name).append("'"));
    } else if (key != "publickey" && key != "presharedkey" && key != "endpoint" && key != "allowedips" &&
               key != "persistentkeepalive") {
      return at(std::string("unknown [Peer] key '").append(name).append("'"));
    }
    c.setconf.append(line).append("\n");
  }
  if (!interface_seen) return fail(std::string(filename) + ": no [Interface] section");
  if (c.peers == 0) return fail(std::string(filename) + ": no [Peer] section: the tunnel would lead nowhere");
  if (c.addresses.empty()) return fail(std::string(filename) + ": [Interface] has no Address");
  return c;
}

}  // namespace cw::env
