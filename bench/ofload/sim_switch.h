// One simulated OpenFlow 1.3 switch: the protocol side only, no sockets. The event loop
// (load_loop.h) hands it the bytes read from its connection and sends what it appends to the
// output buffer, so the switch logic can be driven and checked without a network.
//
// As a switch it says HELLO, answers FEATURES_REQUEST, ECHO, GET_CONFIG, BARRIER, ROLE and
// the port-desc / flow-stats / table-stats multiparts, and counts FLOW_MOD, PACKET_OUT and
// METER_MOD. Once started it sends Packet-Ins, each a TCP SYN of a new connection, and keeps
// them outstanding (keyed by TCP source port, unique while outstanding) until the
// controller's FLOW_MOD add (or PACKET_OUT) naming that connection arrives.
//
// Single-threaded; times are steady-clock nanoseconds supplied by the caller.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "ofp/codec.h"
#include "options.h"

namespace cw::ofload {

struct SwitchCounters {
  std::uint64_t packet_ins = 0;        // sent
  std::uint64_t setups = 0;            // completed
  std::uint64_t timeouts = 0;          // given up after --timeout-ms
  std::uint64_t flow_mods = 0;         // all FLOW_MODs received
  std::uint64_t packet_outs = 0;
  std::uint64_t meter_mods = 0;
  std::uint64_t errors = 0;            // OpenFlow ERROR messages from the controller
  std::uint64_t other = 0;             // anything else we do not answer
  std::uint64_t bytes_in = 0, bytes_out = 0;

  SwitchCounters& operator+=(const SwitchCounters& o);
};

class SimSwitch {
 public:
  // `opts` must outlive the switch.
  SimSwitch(const Options& opts, std::uint64_t datapath_id);

  // Appends the switch's HELLO; call once when the connection is up.
  void start(std::vector<std::uint8_t>& out);

  // Consumes whole messages from the front of `stream`, appends replies to `out` and the
  // round-trip times (ns) of setups completed by them to `rtts`. Returns the number of bytes
  // consumed (a partial message at the end is left for later), or a description of the
  // undecodable message: the stream cannot be resynchronised after that.
  Result<std::size_t, std::string> consume(Bytes stream, std::int64_t now_ns,
                                           std::vector<std::uint8_t>& out,
                                           std::vector<std::int64_t>& rtts);

  // True once load may start: the controller's first barrier after the handshake was
  // answered, or --settle-ms passed since FEATURES_REPLY.
  bool loadReady(std::int64_t now_ns) const;
  bool handshakeDone() const { return features_at_ns_ >= 0; }

  // Sends Packet-Ins until `window` are outstanding; returns how many were sent.
  std::size_t fillWindow(std::size_t window, std::int64_t now_ns, std::vector<std::uint8_t>& out);

  // Restamps the Packet-Ins appended since the last call with `now_ns`: the event loop calls
  // it right before it writes them, so that a round trip starts at the write, not when the
  // Packet-In was built.
  void markSent(std::int64_t now_ns);

  // Gives up on Packet-Ins sent before `deadline_ns`; returns how many.
  std::size_t expire(std::int64_t deadline_ns);

  std::size_t outstanding() const { return pending_.size(); }
  std::uint64_t datapathId() const { return datapath_id_; }
  SwitchCounters& counters() { return counters_; }
  const SwitchCounters& counters() const { return counters_; }
  // The first ERROR the controller sent, formatted (empty if none): shown in the report.
  const std::string& firstError() const { return first_error_; }

 private:
  struct Pending {
    std::int64_t sent_ns = 0;
    std::uint16_t dst_port = 0;
    std::uint32_t flow_mods = 0;  // matching adds so far
  };

  void reply(std::uint32_t xid, const ofp::Message& msg, std::vector<std::uint8_t>& out);
  void handle(const ofp::Decoded& d, std::int64_t now_ns, std::vector<std::uint8_t>& out,
              std::vector<std::int64_t>& rtts);
  void onFlowMod(const ofp::FlowMod& fm, std::int64_t now_ns, std::vector<std::int64_t>& rtts);
  void onPacketOut(const ofp::PacketOut& po, std::int64_t now_ns, std::vector<std::int64_t>& rtts);
  // Credits one message to the connection (sport, dport) in either direction.
  void credit(std::uint16_t tcp_src, std::uint16_t tcp_dst, bool has_src, bool has_dst,
              std::uint32_t needed, std::int64_t now_ns, std::vector<std::int64_t>& rtts);
  void sendPacketIn(std::int64_t now_ns, std::vector<std::uint8_t>& out);
  std::vector<ofp::PortDesc> portList() const;

  const Options& opts_;
  std::uint64_t datapath_id_;
  std::uint32_t xid_ = 1;
  std::uint16_t miss_send_len_ = 128;
  std::int64_t features_at_ns_ = -1;
  bool barrier_seen_ = false;

  std::uint64_t next_conn_ = 0;  // connection counter: picks port, source port, destination
  std::unordered_map<std::uint16_t, Pending> pending_;  // by TCP source port
  std::vector<std::uint8_t> frame_;  // reused for each Packet-In's frame
  std::vector<std::uint16_t> unsent_;  // source ports of Packet-Ins not yet markSent()

  SwitchCounters counters_;
  std::string first_error_;
};

}  // namespace cw::ofload
