// One switch connection: framing, handshake, keepalive, xids, barriers, multipart joining and
// batched writes. Private to src/switch; the rest of the controller sees it as a Switch.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include <asio.hpp>

#include "switch/rate_limited_log.h"
#include "switch/server.h"
#include "switch/stream.h"
#include "switch/switch.h"

namespace cw::sw {

class Connection;

// What a connection needs from its server (kept narrow so connections are testable).
class ConnectionOwner {
 public:
  virtual ~ConnectionOwner() = default;
  // The handshake is done: c claims c->datapathId(). False: the claim is refused (admission.h)
  // and c must close without becoming a switch.
  virtual bool registerSwitch(const std::shared_ptr<Connection>& c) = 0;
  virtual void unregisterSwitch(const Connection* c) = 0;
  virtual void countDecodeError(ofp::DecodeError e) = 0;
};

class Connection final : public Switch, public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::unique_ptr<ByteStream> stream, std::string peer, Auth auth, const ServerOptions& options,
             SwitchHandler& handler, ConnectionOwner& owner);
  void start();

  // Switch
  std::uint64_t datapathId() const override { return dpid_; }
  ofp::Version version() const override { return version_; }
  bool isConnected() const override { return connected_.load(std::memory_order_relaxed); }
  std::string peer() const override { return peer_; }
  Auth auth() const override { return auth_; }
  const std::vector<ofp::PortDesc>& ports() const override { return ports_; }
  std::uint32_t send(const ofp::Message& msg) override;
  void sendFlowMod(const ofp::FlowMod& fm) override;
  void sendPacketOut(const ofp::PacketOut& po) override;
  void barrier(std::function<void(bool ok)> done) override;
  void dumpFlows(const ofp::FlowStatsRequest& req,
                 std::function<void(bool ok, std::vector<ofp::FlowStats>)> done) override;
  void post(std::function<void()> fn) override;
  SwitchCounters counters() const override;
  void close(const std::string& why) override;

 private:
  enum class State { kHello, kFeatures, kPorts, kUp, kClosed };

  void readMore();
  void onRead(std::size_t n);
  bool handleMessage(Bytes message);  // false: framing lost, stop reading
  void handleHello(const ofp::Header& h, Bytes message);
  void dispatch(const ofp::Decoded& d);
  void becomeUp();
  void replyError(ofp::DecodeError e, const ofp::Header& h, Bytes message);
  std::uint32_t nextXid() { return next_xid_++; }
  void flush();
  void afterSend();
  void tick();

  std::unique_ptr<ByteStream> stream_;
  std::string peer_;
  Auth auth_;
  bool refused_ = false;  // the owner refused our datapath id (and logged it, rate-limited)
  const ServerOptions& options_;
  SwitchHandler& handler_;
  ConnectionOwner& owner_;
  asio::steady_timer timer_;

  State state_ = State::kHello;
  ofp::Version version_ = ofp::Version::kOf13;
  std::uint64_t dpid_ = 0;
  std::vector<ofp::PortDesc> ports_;
  std::atomic<bool> connected_{true};
  std::uint32_t next_xid_ = 1;
  std::chrono::steady_clock::time_point started_, last_rx_;
  bool echo_outstanding_ = false;

  std::vector<std::uint8_t> rbuf_;
  std::size_t rlen_ = 0;
  std::vector<std::uint8_t> wbuf_, wbuf_inflight_;
  bool writing_ = false;
  bool in_batch_ = false;

  std::deque<std::pair<std::uint32_t, std::function<void(bool)>>> barriers_;
  struct FlowDump {
    std::vector<ofp::FlowStats> flows;
    std::function<void(bool, std::vector<ofp::FlowStats>)> done;
  };
  std::unordered_map<std::uint32_t, FlowDump> flow_dumps_;
  std::uint32_t port_desc_xid_ = 0;

  struct AtomicCounters {
    std::atomic<std::uint64_t> rx{0}, tx{0}, packet_ins{0}, flow_mods{0}, packet_outs{0},
        errors{0}, decode_errors{0};
  } counters_;
  RateLimitedLog log_;
};

}  // namespace cw::sw
