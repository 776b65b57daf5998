// What the decision path knows about the network: which cell sits on which switch port, its
// assigned MAC/IP and compiled policy, and each environment's gateway port.
//
// A NetView is immutable once published. The control thread builds a new one on every change
// (cell added/removed, policy reloaded) and publishes it through ViewHolder; switch threads
// pick it up without taking a lock per Packet-In (see ViewHolder).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/net.h"
#include "policy/policy.h"

namespace cw::decide {

struct CellPort {
  std::uint32_t cell_id = 0;
  std::string app;
  std::string env;
  std::uint32_t ofport = 0;
  MacAddr mac;
  Ip4 ip;
  std::shared_ptr<const policy::Matcher> policy;
};

struct GatewayPort {
  std::string env;
  std::uint32_t ofport = 0;
  MacAddr mac;
  Ip4 ip;  // the gateway address cells use (and their DNS server)
};

// Everything on one switch (datapath).
struct SwitchView {
  std::uint64_t dpid = 0;
  std::unordered_map<std::uint32_t, CellPort> cells_by_port;
  std::unordered_map<std::uint32_t, std::uint32_t> cell_port_by_ip;  // Ip4::v -> ofport
  std::unordered_map<std::uint32_t, GatewayPort> gateways_by_port;
  std::unordered_map<std::string, std::uint32_t> gateway_port_by_env;

  const CellPort* cellOnPort(std::uint32_t port) const {
    auto it = cells_by_port.find(port);
    return it == cells_by_port.end() ? nullptr : &it->second;
  }
  const CellPort* cellWithIp(Ip4 ip) const {
    auto it = cell_port_by_ip.find(ip.v);
    return it == cell_port_by_ip.end() ? nullptr : cellOnPort(it->second);
  }
  const GatewayPort* gatewayOnPort(std::uint32_t port) const {
    auto it = gateways_by_port.find(port);
    return it == gateways_by_port.end() ? nullptr : &it->second;
  }
  const GatewayPort* gatewayFor(const std::string& env) const {
    auto it = gateway_port_by_env.find(env);
    return it == gateway_port_by_env.end() ? nullptr : gatewayOnPort(it->second);
  }
};

struct NetView {
  std::uint64_t generation = 0;
  std::unordered_map<std::uint64_t, SwitchView> switches;

  const SwitchView* find(std::uint64_t dpid) const {
    auto it = switches.find(dpid);
    return it == switches.end() ? nullptr : &it->second;
  }
};

// Publishes NetViews. publish() (control thread) takes a mutex; readers keep their own
// shared_ptr and only check an atomic generation number per Packet-In, re-reading the
// pointer (under the mutex) when it changed: no lock and no refcount traffic on the packet
// path in the steady state.
class ViewHolder {
 public:
  ViewHolder() : view_(std::make_shared<const NetView>()) {}

  void publish(std::shared_ptr<const NetView> v) {
    std::lock_guard lock(mu_);
    view_ = std::move(v);
    generation_.store(view_->generation, std::memory_order_release);
  }
  std::shared_ptr<const NetView> current() const {
    std::lock_guard lock(mu_);
    return view_;
  }
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // A per-thread reader: refresh() is one atomic load unless the view changed.
  class Reader {
   public:
    explicit Reader(const ViewHolder& h) : holder_(h), view_(h.current()) {}
    const NetView& refresh() {
      if (holder_.generation() != view_->generation) view_ = holder_.current();
      return *view_;
    }

   private:
    const ViewHolder& holder_;
    std::shared_ptr<const NetView> view_;
  };

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const NetView> view_;
  std::atomic<std::uint64_t> generation_{0};
};

}  // namespace cw::decide
