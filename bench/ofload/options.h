// Command line of cw-ofload: what load to generate against which controller. Parsing is pure
// (no I/O) and every rejected flag comes back as an Error that names the flag and the
// accepted values, so main() only prints it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/net.h"
#include "common/result.h"

namespace cw::ofload {

enum class Mode : std::uint8_t {
  kThroughput,  // up to `window` Packet-Ins outstanding per switch
  kLatency,     // one outstanding Packet-In per switch, every round trip recorded
};
const char* modeName(Mode m);

// How the generator waits for the controller's replies. Every wait that sleeps costs a
// wake-up (a context switch, on a VM an interrupt into an idle vCPU) that lands inside the
// measured round trip; `block` has the least of it while sleeping, `busy` none at all.
enum class Wait : std::uint8_t {
  kEpoll,  // epoll_wait on all switches' sockets (any number of switches)
  kBlock,  // one blocking recv() on the only switch's socket (--switches 1)
  kBusy,   // never sleep: poll the sockets in a loop; burns the core it runs on
};
const char* waitName(Wait w);

// Which controller message finishes a flow setup.
enum class CompleteOn : std::uint8_t { kFlowMod, kPacketOut };
const char* completeOnName(CompleteOn c);

struct Options {
  std::string host = "127.0.0.1";
  std::string port = "6653";

  Mode mode = Mode::kThroughput;
  std::uint32_t switches = 16;
  std::uint32_t window = 64;  // throughput mode only; latency mode uses 1
  double seconds = 10.0;      // measured time, after warmup
  double warmup = 2.0;        // load runs but is not counted
  std::uint32_t settle_ms = 1000;     // start load this long after FEATURES_REPLY at the latest
  std::uint32_t timeout_ms = 1000;    // an unanswered Packet-In is given up after this
  std::uint32_t handshake_timeout_ms = 10000;

  // Default: block in latency mode with one switch, epoll otherwise (set by parseOptions).
  Wait wait = Wait::kEpoll;
  CompleteOn complete_on = CompleteOn::kFlowMod;
  std::uint32_t flows_per_setup = 1;  // matching FLOW_MOD adds that complete one setup

  std::uint64_t dpid_base = 1;        // switch i has datapath id dpid_base + i
  std::uint32_t ports = 4;            // switch ports 1..ports, each one cell
  std::string port_prefix = "ofload";  // port k is named <prefix><k>
  std::uint8_t table_id = 0;          // Packet-In table id (the table-miss table)

  // Port k (1-based) sends as the cell src_mac_base + (k-1), src_ip_base + (k-1)*src_ip_step.
  MacAddr src_mac_base = MacAddr::from_u64(0x020000c80001);
  Ip4 src_ip_base{0x0ac80002};  // 10.200.0.2
  std::uint32_t src_ip_step = 1;
  MacAddr dst_mac = MacAddr::from_u64(0x020000c800fe);
  Ip4 dst_ip{0xc6336401};  // 198.51.100.1 (TEST-NET-2)
  std::uint16_t dst_port = 443;
  // Each time the source ports wrap around, the destination moves on to the next of
  // dst_port_count ports (then to the next IP) so that every Packet-In is a new 5-tuple.
  std::uint16_t dst_port_count = 1;

  bool json = false;
  bool progress = false;
};

// Parses argv (without argv[0]). `help` is set when --help was given.
Expected<Options> parseOptions(const std::vector<std::string>& args, bool& help);
std::string usage();

}  // namespace cw::ofload
