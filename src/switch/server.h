// The OpenFlow channel: listens for switches on TCP and a UNIX socket, runs the handshake,
// keepalive, xid tracking and barriers, and shards connections over worker threads (one event
// loop each) so that a Packet-In burst from one switch cannot stall switches on other threads,
// and a busy connection yields to others on its own thread after each read batch.
//
// Errors: listen and TLS setup failures come back from start(); a switch that fails the TLS
// handshake is logged (rate-limited) and never becomes a switch; malformed messages get an OpenFlow ERROR,
// are counted per DecodeError and logged at most once a second; a connection is closed only
// when framing is lost (length < 8) or the switch stops answering echoes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "switch/switch.h"

namespace cw::sw {

struct ServerOptions {
  std::string tcp_address = "127.0.0.1";
  std::uint16_t tcp_port = 6653;  // 0: no TCP listener
  std::string unix_path;          // empty: no UNIX listener
  // TLS (mutual, as Open vSwitch does it): the controller presents tls_cert/tls_key and
  // requires every switch to present a certificate signed by tls_ca. 0: no TLS listener.
  std::uint16_t tls_port = 0;
  std::string tls_cert, tls_key, tls_ca;
  unsigned threads = 0;           // 0: one per core
  unsigned echo_interval_sec = 5;
  unsigned echo_timeout_sec = 15;
  unsigned handshake_timeout_sec = 30;
  int listen_backlog = 1024;
  bool offer_of10 = true;
};

class SwitchServer {
 public:
  SwitchServer(ServerOptions options, SwitchHandler& handler);
  ~SwitchServer();
  SwitchServer(const SwitchServer&) = delete;
  SwitchServer& operator=(const SwitchServer&) = delete;

  // Binds the listeners and starts the worker threads.
  Expected<void> start();
  // Closes listeners and connections, joins the threads. Idempotent.
  void stop();

  // The connected switch with this datapath id, or nullptr. Any thread.
  std::shared_ptr<Switch> find(std::uint64_t dpid) const;
  std::vector<std::shared_ptr<Switch>> all() const;
  std::uint16_t tcpPort() const;  // the bound port (useful when options asked for 0... not supported)

  // Runs fn once on every worker thread (each event loop), whether or not a switch is pinned
  // to it now: for per-thread state such as the packet path's view reader. Any thread; after
  // start() and before stop().
  void postToEveryThread(const std::function<void()>& fn);
  unsigned threadCount() const;

  // Decode errors by DecodeError, summed over all connections. Any thread.
  std::vector<std::uint64_t> decodeErrorCounts() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cw::sw
