#include "options.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>

namespace cw::ofload {

const char* modeName(Mode m) { return m == Mode::kThroughput ? "throughput" : "latency"; }

const char* waitName(Wait w) {
  switch (w) {
    case Wait::kEpoll: return "epoll";
    case Wait::kBlock: return "block";
    case Wait::kBusy: return "busy";
  }
  return "?";
}

const char* completeOnName(CompleteOn c) {
  return c == CompleteOn::kFlowMod ? "flow_mod" : "packet_out";
}

namespace {

// Unsigned integer in decimal or 0x-prefixed hex, within [lo, hi].
bool parseUint(std::string_view text, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return false;
  if (v < lo || v > hi) return false;
  out = v;
  return true;
}

bool parseSeconds(std::string_view text, double& out) {
  // from_chars for double is in libstdc++ 11+; keep it strict like the integers.
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return false;
  if (!std::isfinite(v) || v < 0 || v > 86400) return false;
  out = v;
  return true;
}

// "host:port", "[v6]:port", "host" or ":port".
bool parseController(std::string_view text, std::string& host, std::string& port) {
  std::string_view h = text;
  std::string_view p;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return false;
    h = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      p = rest.substr(1);
    }
  } else if (auto colon = text.rfind(':'); colon != std::string_view::npos) {
    if (text.find(':') != colon) return false;  // bare IPv6 needs brackets
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  std::uint64_t port_no = 0;
  if (!p.empty() && !parseUint(p, 1, 65535, port_no)) return false;
  if (!h.empty()) host = std::string(h);
  if (!p.empty()) port = std::string(p);
  return true;
}

bool takesValue(std::string_view flag) {
  static constexpr std::string_view kFlags[] = {
      "--controller", "--mode", "--switches", "--window", "--seconds", "--warmup",
      "--settle-ms", "--timeout-ms", "--wait", "--handshake-timeout-ms", "--complete-on",
      "--flows-per-setup", "--dpid-base", "--ports", "--port-prefix", "--table",
      "--src-mac-base", "--src-ip-base", "--src-ip-step", "--dst-mac", "--dst-ip", "--dst-port",
      "--dst-port-count"};
  for (std::string_view f : kFlags) {
    if (f == flag) return true;
  }
  return false;
}

Unexpected<Error> bad(std::string_view flag, std::string_view value, std::string_view want) {
  return fail("invalid value '" + std::string(value) + "' for " + std::string(flag) + ": expected " +
              std::string(want) + " (see --help)");
}

}  // namespace

Expected<Options> parseOptions(const std::vector<std::string>& args, bool& help) {
  Options o;
  help = false;
  bool wait_given = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view flag = args[i];
    std::string_view value;
    if (auto eq = flag.find('='); flag.starts_with("--") && eq != std::string_view::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    auto boolean = [&](bool& target) -> bool {
      if (!value.empty()) return false;
      target = true;
      return true;
    };
    if (flag == "--help" || flag == "-h") {
      help = true;
      return o;
    }
    if (flag == "--json") {
      if (!boolean(o.json)) return bad(flag, value, "no value");
      continue;
    }
    if (flag == "--progress") {
      if (!boolean(o.progress)) return bad(flag, value, "no value");
      continue;
    }
    if (!takesValue(flag)) return fail("unknown option '" + std::string(flag) + "' (see --help)");
    if (value.empty() && args[i].find('=') == std::string::npos) {
      if (i + 1 >= args.size()) return fail("missing value for " + std::string(flag) + " (see --help)");
      value = args[++i];
    }
    std::uint64_t n = 0;
    if (flag == "--controller") {
      if (!parseController(value, o.host, o.port)) return bad(flag, value, "HOST:PORT");
    } else if (flag == "--mode") {
      if (value == "throughput") o.mode = Mode::kThroughput;
      else if (value == "latency") o.mode = Mode::kLatency;
      else return bad(flag, value, "throughput or latency");
    } else if (flag == "--switches") {
      if (!parseUint(value, 1, 10000, n)) return bad(flag, value, "1..10000");
      o.switches = static_cast<std::uint32_t>(n);
    } else if (flag == "--window") {
      // Outstanding requests are keyed by TCP source port, so they must stay unique.
      if (!parseUint(value, 1, 32768, n)) return bad(flag, value, "1..32768");
      o.window = static_cast<std::uint32_t>(n);
    } else if (flag == "--seconds") {
      if (!parseSeconds(value, o.seconds) || o.seconds <= 0) return bad(flag, value, "seconds > 0");
    } else if (flag == "--warmup") {
      if (!parseSeconds(value, o.warmup)) return bad(flag, value, "seconds >= 0");
    } else if (flag == "--settle-ms") {
      if (!parseUint(value, 0, 600000, n)) return bad(flag, value, "0..600000");
      o.settle_ms = static_cast<std::uint32_t>(n);
    } else if (flag == "--timeout-ms") {
      if (!parseUint(value, 1, 600000, n)) return bad(flag, value, "1..600000");
      o.timeout_ms = static_cast<std::uint32_t>(n);
    } else if (flag == "--handshake-timeout-ms") {
      if (!parseUint(value, 1, 600000, n)) return bad(flag, value, "1..600000");
      o.handshake_timeout_ms = static_cast<std::uint32_t>(n);
    } else if (flag == "--wait") {
      if (value == "epoll") o.wait = Wait::kEpoll;
      else if (value == "block") o.wait = Wait::kBlock;
      else if (value == "busy") o.wait = Wait::kBusy;
      else return bad(flag, value, "epoll, block or busy");
      wait_given = true;
    } else if (flag == "--complete-on") {
      if (value == "flow_mod") o.complete_on = CompleteOn::kFlowMod;
      else if (value == "packet_out") o.complete_on = CompleteOn::kPacketOut;
      else return bad(flag, value, "flow_mod or packet_out");
    } else if (flag == "--flows-per-setup") {
      if (!parseUint(value, 1, 64, n)) return bad(flag, value, "1..64");
      o.flows_per_setup = static_cast<std::uint32_t>(n);
    } else if (flag == "--dpid-base") {
      if (!parseUint(value, 0, std::numeric_limits<std::uint64_t>::max() - 10000, n)) {
        return bad(flag, value, "a datapath id (decimal or 0x hex)");
      }
      o.dpid_base = n;
    } else if (flag == "--ports") {
      if (!parseUint(value, 1, 4096, n)) return bad(flag, value, "1..4096");
      o.ports = static_cast<std::uint32_t>(n);
    } else if (flag == "--port-prefix") {
      if (value.size() > 10) return bad(flag, value, "at most 10 characters (port names are 15)");
      o.port_prefix = std::string(value);
    } else if (flag == "--table") {
      if (!parseUint(value, 0, 254, n)) return bad(flag, value, "0..254");
      o.table_id = static_cast<std::uint8_t>(n);
    } else if (flag == "--src-mac-base") {
      auto mac = MacAddr::parse(value);
      if (!mac) return bad(flag, value, "a MAC address like 02:00:00:c8:00:01");
      o.src_mac_base = *mac;
    } else if (flag == "--src-ip-base") {
      auto ip = Ip4::parse(value);
      if (!ip) return bad(flag, value, "an IPv4 address");
      o.src_ip_base = *ip;
    } else if (flag == "--src-ip-step") {
      if (auto ip = Ip4::parse(value)) {
        o.src_ip_step = ip->v;  // "0.1.0.0": one subnet per cell
      } else if (parseUint(value, 0, 0xffffffff, n)) {
        o.src_ip_step = static_cast<std::uint32_t>(n);
      } else {
        return bad(flag, value, "an integer or a dotted step like 0.1.0.0");
      }
    } else if (flag == "--dst-mac") {
      auto mac = MacAddr::parse(value);
      if (!mac) return bad(flag, value, "a MAC address");
      o.dst_mac = *mac;
    } else if (flag == "--dst-ip") {
      auto ip = Ip4::parse(value);
      if (!ip) return bad(flag, value, "an IPv4 address");
      o.dst_ip = *ip;
    } else if (flag == "--dst-port") {
      if (!parseUint(value, 1, 65535, n)) return bad(flag, value, "1..65535");
      o.dst_port = static_cast<std::uint16_t>(n);
    } else if (flag == "--dst-port-count") {
      if (!parseUint(value, 1, 65535, n)) return bad(flag, value, "1..65535");
      o.dst_port_count = static_cast<std::uint16_t>(n);
    }
  }
  if (static_cast<std::uint32_t>(o.dst_port) + o.dst_port_count - 1 > 65535) {
    return fail("--dst-port + --dst-port-count - 1 must not exceed 65535");
  }
  if (o.mode == Mode::kLatency) o.window = 1;
  if (!wait_given && o.mode == Mode::kLatency && o.switches == 1) o.wait = Wait::kBlock;
  if (o.wait == Wait::kBlock && o.switches != 1) {
    return fail("--wait block needs --switches 1 (it blocks on one socket); use --wait epoll or "
                "--wait busy with " + std::to_string(o.switches) + " switches");
  }
  return o;
}

std::string usage() {
  return R"(usage: cw-ofload [options]

Plays N OpenFlow 1.3 switches against a controller and measures flow setups per second
(--mode throughput) or flow-setup round-trip latency (--mode latency). Each Packet-In
carries a TCP SYN of a new connection from the cell on one of the switch's ports; a setup
is complete when the controller's FLOW_MOD add (or PACKET_OUT) for that connection arrives.

controller and load
  --controller HOST:PORT   controller address (default 127.0.0.1:6653)
  --mode throughput|latency                      (default throughput)
  --switches N             simulated switches (default 16)
  --window W               outstanding Packet-Ins per switch, throughput mode (default 64)
  --seconds S              measured duration (default 10)
  --warmup S               unmeasured load before it (default 2)
  --settle-ms MS           start load this long after the handshake unless the controller's
                           first BARRIER_REQUEST comes sooner (default 1000)
  --timeout-ms MS          give up on an unanswered Packet-In after this (default 1000)
  --handshake-timeout-ms MS  fail when a switch has not started load by then (default 10000)
  --wait epoll|block|busy  how to wait for replies: epoll over all sockets, a blocking
                           recv on the only socket (--switches 1), or busy polling that
                           never sleeps and takes a whole core (default: block in latency
                           mode with 1 switch, else epoll)
  --complete-on flow_mod|packet_out  what finishes a setup (default flow_mod)
  --flows-per-setup N      matching FLOW_MOD adds needed per setup (default 1)

switches and cells
  --dpid-base ID           switch i has datapath id ID+i (default 1)
  --ports P                ports 1..P per switch, one cell each (default 4)
  --port-prefix NAME       port k is named NAME<k> (default ofload)
  --table T                Packet-In table id (default 0)
  --src-mac-base MAC       port k's cell MAC is MAC+(k-1) (default 02:00:00:c8:00:01)
  --src-ip-base IP         port k's cell IP is IP+(k-1)*STEP (default 10.200.0.2)
  --src-ip-step STEP       integer or dotted, e.g. 0.1.0.0 (default 1)
  --dst-mac MAC            gateway MAC the frames are sent to (default 02:00:00:c8:00:fe)
  --dst-ip IP              destination address (default 198.51.100.1)
  --dst-port PORT          destination TCP port (default 443)
  --dst-port-count N       destination ports used as the source ports wrap (default 1)

output
  --json                   one line of JSON on stdout (the summary goes to stderr)
  --progress               setups per second on stderr while running

exit status: 0 done, 1 run failed, 2 cannot connect to the controller, 64 bad usage
)";
}

}  // namespace cw::ofload
