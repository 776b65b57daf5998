#include "daemon/config.h"

#include <algorithm>

#include <toml++/toml.h>

#include <cstdio>

namespace cw::daemon {

namespace {

std::string where(const std::filesystem::path& file, const toml::node& n) {
  return file.string() + ":" + std::to_string(n.source().begin.line);
}

Expected<EnvSpec> parseEnvTable(const std::string& env_name, const toml::node& node, const std::filesystem::path& file) {
  const toml::table* t = node.as_table();
  if (t == nullptr) return fail(where(file, node) + ": env." + env_name + " must be a table");
  EnvSpec e;
  e.name = env_name;
  std::string kill_switch_line;
  auto strings = [&](const toml::node& v, const std::string& key, auto check) -> Expected<std::vector<std::string>> {
    const toml::array* a = v.as_array();
    if (a == nullptr) return fail(where(file, v) + ": " + key + " must be an array of strings");
    std::vector<std::string> out;
    for (auto&& d : *a) {
      auto s = d.value<std::string>();
      if (!s) return fail(where(file, d) + ": " + key + " holds strings");
      if (auto r = check(*s); !r) return fail(where(file, d) + ": " + r.error().message);
      out.push_back(*s);
    }
    return out;
  };
  for (auto&& [k, v] : *t) {
    std::string key(k.str());
    if (key == "pool") {
      auto c = Cidr::parse(v.value_or(std::string()));
      if (!c || !c->is_v4() || c->length > 28)
        return fail(where(file, v) + ": pool must be an IPv4 prefix of /28 or larger, like \"10.200.0.0/16\"");
      e.pool = *c;
    } else if (key == "dns") {
      auto a = strings(v, "dns", [](const std::string& x) -> Expected<void> {
        if (!IpAddr::parse(x)) return fail("'" + x + "' is not an IP address");
        return {};
      });
      if (!a) return Unexpected(a.error());
      e.dns = *a;
    } else if (key == "search") {
      auto a = strings(v, "search", [](const std::string& x) -> Expected<void> {
        if (x.empty() || x.find_first_of(" \t\n/") != std::string::npos) return fail("'" + x + "' is not a domain");
        return {};
      });
      if (!a) return Unexpected(a.error());
      e.search = *a;
    } else if (key == "routes") {
      auto a = strings(v, "routes", [](const std::string& x) -> Expected<void> {
        if (!parseExtraRoute(x)) return fail("route '" + x + "' is not \"PREFIX via ADDRESS\"");
        return {};
      });
      if (!a) return Unexpected(a.error());
      e.routes = *a;
    } else if (key == "uplink") {
      const toml::table* u = v.as_table();
      if (u == nullptr) return fail(where(file, v) + ": uplink must be a table");
      for (auto&& [uk, uv] : *u) {
        std::string ukey(uk.str());
        auto s = uv.value<std::string>();
        if (!s) return fail(where(file, uv) + ": uplink." + ukey + " must be a string");
        if (ukey == "kind") e.uplink.kind = *s;
        else if (ukey == "config") e.uplink.config = *s;
        else if (ukey == "carrier") e.uplink.carrier = *s;
        else if (ukey == "netns") e.uplink.netns = *s;
        else if (ukey == "interface") e.uplink.interface = *s;
        else if (ukey == "address") e.uplink.address = *s;
        else if (ukey == "peer_address") e.uplink.peer_address = *s;
        else if (ukey == "next_hop") e.uplink.next_hop = *s;
        else return fail(where(file, uv) + ": unknown key uplink." + ukey +
                         " (known: kind, config, carrier, netns, interface, address, peer_address, next_hop)");
      }
      const auto& kind = e.uplink.kind;
      const bool vpn = kind == "wireguard" || kind == "openvpn";
      if (kind != "host" && kind != "netns" && kind != "host-nat" && kind != "interface" && !vpn)
        return fail(where(file, v) + ": uplink.kind must be \"host\" (user-mode, the default), "
                    "\"host-nat\", \"netns\", \"interface\", \"wireguard\" or \"openvpn\"");
      if (vpn && e.uplink.config.empty())
        return fail(where(file, v) + ": a " + kind + " uplink needs config = \"FILE\"");
      if (!vpn && !e.uplink.config.empty())
        return fail(where(file, v) + ": uplink.config is for wireguard and openvpn uplinks");
      const auto& c = e.uplink.carrier;
      if (c != "host" && c != "netns" && c != "host-nat" && c != "interface")
        return fail(where(file, v) + ": uplink.carrier must be \"host\" (the default), \"host-nat\", \"netns\" "
                    "or \"interface\"");
      if (!vpn && c != "host")
        return fail(where(file, v) + ": uplink.carrier is for wireguard and openvpn uplinks");
      const bool on_interface = kind == "interface" || (vpn && c == "interface");
      if (on_interface && (e.uplink.interface.empty() || e.uplink.address.empty()))
        return fail(where(file, v) + ": an interface uplink needs interface = \"NAME\" and address = \"ADDRESS/PREFIX\"");
      if (!on_interface && !e.uplink.interface.empty())
        return fail(where(file, v) + ": uplink.interface is for interface uplinks and carriers");
      if (vpn && !e.uplink.config.empty() && std::filesystem::path(e.uplink.config).is_relative())
        e.uplink.config = (std::filesystem::absolute(file).parent_path() / e.uplink.config).string();
    } else if (key == "kill_switch") {
      auto b = v.value<bool>();
      if (!b) return fail(where(file, v) + ": kill_switch must be true or false");
      e.kill_switch = *b;
      kill_switch_line = where(file, v);
    } else {
      return fail(where(file, v) + ": unknown key '" + key + "' in env." + e.name +
                  " (known: pool, dns, search, routes, uplink, kill_switch)");
    }
  }
  if (!kill_switch_line.empty() && e.uplink.kind != "wireguard" && e.uplink.kind != "openvpn")
    return fail(kill_switch_line + ": kill_switch is for wireguard and openvpn uplinks");
  if (!e.routes.empty() && (e.uplink.kind == "host" || (e.uplink.kind != "netns" && e.uplink.kind != "host-nat" && e.uplink.carrier == "host")))
    return fail(where(file, node) + ": env." + e.name + ": routes need a veth or interface uplink or carrier: "
                "slirp4netns has one way out");
  if (!e.routes.empty() && (e.uplink.kind == "wireguard" || e.uplink.kind == "openvpn") && e.kill_switch)
    return fail(where(file, node) + ": env." + e.name + ": routes through the carrier bypass the tunnel; "
                "they need kill_switch = false");
  return e;
}

}  // namespace

std::optional<GatewayRoute> parseExtraRoute(std::string_view text) {
  auto via = text.find(" via ");
  if (via == std::string_view::npos) return std::nullopt;
  auto prefix = Cidr::parse(text.substr(0, via));
  auto hop = Ip4::parse(text.substr(via + 5));
  if (!prefix || !prefix->is_v4() || !hop) return std::nullopt;
  return GatewayRoute{*prefix, *hop};
}

namespace {

// The keys whose value is one of a few words, and where each goes.
struct Choice {
  const char* key;
  std::vector<std::string> words;
  std::string Config::*field;
};
const std::vector<Choice>& choices() {
  static const std::vector<Choice> all{
      {"attribution", {"off", "rules", "always"}, &Config::attribution},
      {"decide", {"switch", "controller"}, &Config::decide},
      {"rule_counters", {"on", "off"}, &Config::rule_counters},
      {"log_switch_decided", {"on", "off"}, &Config::log_switch_decided},
      {"vm_accel", {"auto", "kvm", "tcg"}, &Config::vm_accel}};
  return all;
}
const Choice* choiceFor(std::string_view key) {
  for (const auto& c : choices())
    if (key == c.key) return &c;
  return nullptr;
}
// "a", "b" or "c"
std::string wordsText(const std::vector<std::string>& words) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += i + 1 == words.size() ? " or " : ", ";
    out += "\"" + words[i] + "\"";
  }
  return out;
}

}  // namespace

Expected<void> loadConfigFile(const std::filesystem::path& file, Config& cfg) {
  auto parsed = toml::parse_file(file.string());
  if (!parsed) {
    const auto& err = parsed.error();
    return fail(file.string() + ":" + std::to_string(err.source().begin.line) + ": " +
                std::string(err.description()));
  }
  const toml::table& root = parsed.table();
  for (auto&& [key, value] : root) {
    if (const Choice* c = choiceFor(key.str())) {
      auto v = value.value<std::string>();
      if (!v || std::find(c->words.begin(), c->words.end(), *v) == c->words.end())
        return fail(where(file, value) + ": " + c->key + " must be " + wordsText(c->words));
      cfg.*(c->field) = *v;
    } else if (key.str() == "openflow_port") {
      auto v = value.value<std::int64_t>();
      if (!v || *v < 0 || *v > 65535)
        return fail(where(file, value) + ": openflow_port must be 0..65535 (0: no plain TCP listener)");
      cfg.of_port = static_cast<std::uint16_t>(*v);
    } else if (key.str() == "ui_listen") {
      auto v = value.value<std::string>();
      if (!v) return fail(where(file, value) + ": ui_listen must be a string, \"127.0.0.1:7780\" or \"off\"");
      cfg.ui_listen = *v;
    } else if (key.str() == "inspect_apps") {
      const toml::array* a = value.as_array();
      if (a == nullptr) return fail(where(file, value) + ": inspect_apps must be an array of app names");
      for (auto&& n : *a) {
        auto app = n.value<std::string>();
        if (!app) return fail(where(file, n) + ": inspect_apps: an app name is a string");
        cfg.inspect_apps.push_back(*app);
      }
    } else if (key.str() == "conntrack_per_cell") {
      auto v = value.value<std::int64_t>();
      if (!v || *v < 0 || *v > 100000000)
        return fail(where(file, value) + ": conntrack_per_cell must be 0..100000000 (0: no limit)");
      cfg.conntrack_per_cell = static_cast<std::uint32_t>(*v);
    } else if (key.str() == "ids") {
      const toml::table* t = value.as_table();
      if (t == nullptr) return fail(where(file, value) + ": ids must be a table: [ids]");
      for (auto&& [k, v] : *t) {
        const std::string ks(k.str());
        auto strings = [&](std::vector<std::string>& out) -> Expected<void> {
          const toml::array* a = v.as_array();
          if (a == nullptr) return fail(where(file, v) + ": ids." + ks + " must be an array of strings");
          for (auto&& n : *a) {
            auto s = n.value<std::string>();
            if (!s) return fail(where(file, n) + ": ids." + ks + " holds strings");
            out.push_back(*s);
          }
          return {};
        };
        if (ks == "enabled") {
          auto b = v.value<bool>();
          if (!b) return fail(where(file, v) + ": ids.enabled must be true or false");
          cfg.ids = *b;
        } else if (ks == "rules") {
          if (auto r = strings(cfg.ids_rules); !r) return r;
        } else if (ks == "apps") {
          if (auto r = strings(cfg.ids_apps); !r) return r;
        } else if (ks == "fold_after") {
          auto n = v.value<std::int64_t>();
          if (!n || *n < 1 || *n > 1000) return fail(where(file, v) + ": ids.fold_after must be 1..1000");
          cfg.ids_fold = static_cast<unsigned>(*n);
        } else {
          return fail(where(file, v) + ": unknown key ids." + ks + " (known: enabled, rules, apps, fold_after)");
        }
      }
    } else if (key.str() == "scripts_dir") {
      auto v = value.value<std::string>();
      if (!v) return fail(where(file, value) + ": scripts_dir must be a directory's path");
      cfg.scripts_dir = *v;
    } else if (key.str() == "script") {
      const toml::table* scripts = value.as_table();
      if (scripts == nullptr) return fail(where(file, value) + ": script must be a table of [script.NAME] tables");
      for (auto&& [name, node] : *scripts) {
        const toml::table* t = node.as_table();
        if (t == nullptr) return fail(where(file, node) + ": script." + std::string(name.str()) + " must be a table");
        ScriptConf sc;
        sc.name = std::string(name.str());
        for (auto&& [k, v] : *t) {
          std::string skey(k.str());
          if (skey == "mode") {
            auto m = v.value<std::string>();
            if (!m || (*m != "helper" && *m != "in-process"))
              return fail(where(file, v) + ": mode is \"in-process\" (the default) or \"helper\"");
            sc.helper = *m == "helper";
          } else if (auto i = v.as_integer()) {
            sc.settings.push_back({skey, i->get()});
          } else if (auto d = v.as_floating_point()) {
            sc.settings.push_back({skey, d->get()});
          } else if (auto b = v.as_boolean()) {
            sc.settings.push_back({skey, b->get()});
          } else if (auto str = v.as_string()) {
            sc.settings.push_back({skey, str->get()});
          } else {
            return fail(where(file, v) + ": script." + sc.name + "." + skey +
                        " must be a number, a boolean or a string");
          }
        }
        cfg.scripts.push_back(std::move(sc));
      }
    } else if (key.str() != "env") {
      return fail(where(file, value) + ": unknown key '" + std::string(key.str()) +
                  "' (known: openflow_port, ui_listen, scripts_dir, inspect_apps, attribution, decide, rule_counters, log_switch_decided, conntrack_per_cell, vm_accel, ids, env, script)");
    }
  }
  const toml::table* envs = root["env"].as_table();
  if (envs == nullptr) return {};
  cfg.envs.clear();
  for (auto&& [name, node] : *envs) {
    auto e = parseEnvTable(std::string(name.str()), node, file);
    if (!e) return Unexpected(e.error());
    e->origin = file.string();
    cfg.envs.push_back(std::move(*e));
  }
  return {};
}

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string quotedList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + quoted(items[i]);
  return out + "]";
}

}  // namespace

std::string envToToml(const EnvSpec& e) {
  std::string t = "[env." + e.name + "]\n";
  t += "pool = " + quoted(e.pool.str()) + "\n";
  if (!e.dns.empty()) t += "dns = " + quotedList(e.dns) + "\n";
  if (!e.search.empty()) t += "search = " + quotedList(e.search) + "\n";
  if (!e.routes.empty()) t += "routes = " + quotedList(e.routes) + "\n";
  const bool vpn = e.uplink.kind == "wireguard" || e.uplink.kind == "openvpn";
  if (vpn) t += std::string("kill_switch = ") + (e.kill_switch ? "true" : "false") + "\n";
  t += "[env." + e.name + ".uplink]\n";
  t += "kind = " + quoted(e.uplink.kind) + "\n";
  if (vpn) t += "config = " + quoted(e.uplink.config) + "\ncarrier = " + quoted(e.uplink.carrier) + "\n";
  const std::pair<const char*, const std::string*> keys[] = {{"netns", &e.uplink.netns},
                                                             {"interface", &e.uplink.interface},
                                                             {"address", &e.uplink.address},
                                                             {"peer_address", &e.uplink.peer_address},
                                                             {"next_hop", &e.uplink.next_hop}};
  for (const auto& [key, value] : keys)
    if (!value->empty()) t += std::string(key) + " = " + quoted(*value) + "\n";
  return t;
}

Expected<std::vector<EnvSpec>> loadEnvText(std::string_view text, const std::filesystem::path& origin) {
  auto parsed = toml::parse(text, origin.string());
  if (!parsed) {
    const auto& err = parsed.error();
    return fail(origin.string() + ":" + std::to_string(err.source().begin.line) + ": " + std::string(err.description()));
  }
  std::vector<EnvSpec> out;
  for (auto&& [key, value] : parsed.table()) {
    const toml::table* envs = key.str() == "env" ? value.as_table() : nullptr;
    if (envs == nullptr) return fail(where(origin, value) + ": expected only [env.NAME] tables");
    for (auto&& [name, node] : *envs) {
      auto e = parseEnvTable(std::string(name.str()), node, origin);
      if (!e) return Unexpected(e.error());
      e->origin = origin.string();
      out.push_back(std::move(*e));
    }
  }
  return out;
}

}  // namespace cw::daemon
