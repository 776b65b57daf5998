// A connected OpenFlow switch, as the rest of the controller sees it, and the handler
// interface through which the channel reports events.
//
// Threading: each Switch lives on exactly one worker thread (its event loop). Every method
// must be called on that thread; other threads hand work over with post(). Handler callbacks
// are made on the switch's thread.
//
// Lifetime: the channel owns connections. A Switch& handed to a callback is valid for the
// call; to keep a switch beyond it, hold the std::shared_ptr from SwitchServer::find() (the
// object then outlives the connection but isConnected() turns false).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ofp/codec.h"
#include "ofp/messages.h"

namespace cw::sw {

// How a connection proved which switch it is. Ordered from weakest to strongest: a
// connection never takes a datapath id from one authenticated more strongly (server.h).
//   kNone: plain TCP; anyone who can reach the port can claim any datapath id.
//   kTls: mutual TLS with a certificate signed by the CA the operator installed.
//   kUnixPeerCred: the controller's UNIX socket, in a root-only directory, from a peer whose
//     SO_PEERCRED uid is root, the controller's own or the local Open vSwitch's.
enum class Auth : std::uint8_t { kNone = 0, kTls = 1, kUnixPeerCred = 2 };
// "none", "tls", "unix-peercred": as `cellwall status` and the logs show it.
const char* authName(Auth a);

// Counters of one connection, readable from any thread (relaxed atomics behind the accessor).
struct SwitchCounters {
  std::uint64_t rx_messages = 0;
  std::uint64_t tx_messages = 0;
  std::uint64_t packet_ins = 0;
  std::uint64_t flow_mods = 0;
  std::uint64_t packet_outs = 0;
  std::uint64_t errors_received = 0;
  std::uint64_t decode_errors = 0;
};

class Switch {
 public:
  virtual ~Switch() = default;

  virtual std::uint64_t datapathId() const = 0;
  virtual ofp::Version version() const = 0;
  virtual bool isConnected() const = 0;
  // "tcp:127.0.0.1:40512", "ssl:192.0.2.7:40512" or "unix:PATH pid=N uid=U".
  virtual std::string peer() const = 0;
  virtual Auth auth() const = 0;
  virtual const std::vector<ofp::PortDesc>& ports() const = 0;

  // Queues a message; bytes go out when the event loop next writes (writes are batched).
  // Returns the xid used.
  virtual std::uint32_t send(const ofp::Message& msg) = 0;
  virtual void sendFlowMod(const ofp::FlowMod& fm) = 0;
  virtual void sendPacketOut(const ofp::PacketOut& po) = 0;
  // Calls `done` once the switch has processed everything sent before (BARRIER). `done(false)`
  // if the connection closes first.
  virtual void barrier(std::function<void(bool ok)> done) = 0;
  // Full flow-table dump (all MULTIPART/STATS replies joined). Empty + false on disconnect.
  virtual void dumpFlows(const ofp::FlowStatsRequest& req,
                         std::function<void(bool ok, std::vector<ofp::FlowStats>)> done) = 0;

  // Runs fn on this switch's thread.
  virtual void post(std::function<void()> fn) = 0;
  virtual SwitchCounters counters() const = 0;
  // Closes the connection (the switch will reconnect on its own schedule).
  virtual void close(const std::string& why) = 0;
};

class SwitchHandler {
 public:
  virtual ~SwitchHandler() = default;
  // Handshake done: version agreed, features (datapath id) and ports known.
  virtual void onSwitchUp(Switch& sw) = 0;
  virtual void onSwitchDown(Switch& sw) = 0;
  // Hot path: data points into the receive buffer and is valid only during the call.
  virtual void onPacketIn(Switch& sw, const ofp::PacketIn& pi) = 0;
  virtual void onPortStatus(Switch& sw, const ofp::PortStatus& ps) = 0;
  virtual void onFlowRemoved(Switch& sw, const ofp::FlowRemoved& fr) = 0;
  // An ERROR the switch sent about one of our messages.
  virtual void onError(Switch& sw, std::uint32_t xid, const ofp::ErrorMsg& err) = 0;
};

}  // namespace cw::sw
