// A small network for decision tests: one switch, gateway on port 1, cells on ports 2 and 3.
#pragma once

#include <memory>
#include <string>

#include "decide/net_view.h"
#include "packet/builder.h"
#include "policy/policy.h"

namespace cw::decide::testing {

inline std::shared_ptr<const CompiledPolicy> compile(const std::string& toml) {
  auto p = policy::parsePolicy(toml, "test.toml");
  if (!p) throw std::runtime_error(p.error().str());
  return CompiledPolicy::of(std::make_shared<const policy::Matcher>(std::move(p.value())));
}

struct Net {
  GatewayPort gw{"default", 1, *MacAddr::parse("02:d1:00:00:00:01"), *Ip4::parse("10.200.0.1")};
  CellPort web{2, "web", "default", 2, *MacAddr::parse("02:c3:0a:c8:00:02"),
               *Ip4::parse("10.200.0.2"),
               compile("default = \"deny\"\nresolve = \"any\"\n"
                       "[[allow]]\nproto = \"tcp\"\nto = \"192.0.2.10\"\nports = [80, 443]\n"
                       "[[rule]]\naction = \"reject\"\nto = \"192.0.2.66\"\n"
                       "[[allow]]\nto = \"10.200.0.3\"\nproto = \"tcp\"\nports = 8000\n"
                       "[[allow]]\nproto = \"udp\"\nto = \"192.0.2.53\"\n"),
               nullptr};
  CellPort db{3, "db", "default", 3, *MacAddr::parse("02:c3:0a:c8:00:03"),
              *Ip4::parse("10.200.0.3"), compile("default = \"deny\"\n"), nullptr};
  // Default deny, so resolve = "rules": its queries to the resolver are checked by name.
  CellPort api{4, "api", "default", 4, *MacAddr::parse("02:c3:0a:c8:00:04"),
               *Ip4::parse("10.200.0.4"),
               compile("default = \"deny\"\n"
                       "[[allow]]\nproto = \"tcp\"\nhosts = \"api.example.test\"\nports = 8080\n"
                       "[[allow]]\nhosts = \"*.cdn.example.test\"\n"
                       "[[deny]]\nhosts = [\"*.example.test\", \"blocked.example.org\"]\n"
                       "[[allow]]\nto = \"192.0.2.10\"\n"),
               nullptr};
  SwitchView view;

  Net() {
    view.dpid = 1;
    view.gateways_by_port[gw.ofport] = gw;
    view.gateway_port_by_env[gw.env] = gw.ofport;
    for (const CellPort* c : {&web, &db, &api}) {
      view.cells_by_port[c->ofport] = *c;
      view.cell_port_by_ip[c->ip.v] = c->ofport;
    }
  }
  packet::EthSpec fromCell(const CellPort& c) const { return {c.mac, gw.mac, 0}; }
  packet::EthSpec toCell(const CellPort& c) const { return {gw.mac, c.mac, 0}; }
};

inline Ip4 ip(const char* s) { return *Ip4::parse(s); }

}  // namespace cw::decide::testing
