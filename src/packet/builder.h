// Builds well-formed frames (correct lengths and checksums) for tests, benchmarks and the
// controller's own replies (TCP RST, ICMP unreachable, ARP replies).
//
// Inputs are trusted (our own code): a payload that would overflow the IP length field is a
// programming error and asserts. Frames are not padded to Ethernet's 60-byte minimum (the
// switch or NIC pads). IPv4 headers carry DF, TTL 64, identification 0; IPv6 hop limit 64.
// ICMP/ICMPv6 `payload` is the message body after type, code and checksum (for an echo: the
// identifier and sequence first), matching Frame::payload.
#pragma once

#include <cstdint>
#include <vector>

#include "common/bytes.h"
#include "common/net.h"

namespace cw::packet {

struct EthSpec {
  MacAddr src, dst;
  std::uint16_t vlan_vid = 0;  // 0: untagged
};

std::vector<std::uint8_t> buildTcp4(const EthSpec& eth, Ip4 src, Ip4 dst, std::uint16_t sport,
                                    std::uint16_t dport, std::uint8_t flags, std::uint32_t seq = 0,
                                    std::uint32_t ack = 0, Bytes payload = {});
std::vector<std::uint8_t> buildUdp4(const EthSpec& eth, Ip4 src, Ip4 dst, std::uint16_t sport,
                                    std::uint16_t dport, Bytes payload = {});
std::vector<std::uint8_t> buildIcmp4(const EthSpec& eth, Ip4 src, Ip4 dst, std::uint8_t type,
                                     std::uint8_t code, Bytes payload = {});
std::vector<std::uint8_t> buildTcp6(const EthSpec& eth, const Ip6& src, const Ip6& dst,
                                    std::uint16_t sport, std::uint16_t dport, std::uint8_t flags,
                                    std::uint32_t seq = 0, std::uint32_t ack = 0,
                                    Bytes payload = {});
std::vector<std::uint8_t> buildUdp6(const EthSpec& eth, const Ip6& src, const Ip6& dst,
                                    std::uint16_t sport, std::uint16_t dport, Bytes payload = {});
std::vector<std::uint8_t> buildIcmp6(const EthSpec& eth, const Ip6& src, const Ip6& dst,
                                     std::uint8_t type, std::uint8_t code, Bytes payload = {});
std::vector<std::uint8_t> buildArp(const EthSpec& eth, std::uint16_t op, MacAddr sha, Ip4 spa,
                                   MacAddr tha, Ip4 tpa);

// Internet checksum over `data` (RFC 1071), folded, not inverted. Chain calls through `sum`;
// every chunk but the last must have an even size (an odd tail is padded with a zero byte).
// A region that includes a correct checksum field sums to 0xffff (checksumFinish gives 0).
std::uint32_t checksumPartial(Bytes data, std::uint32_t sum = 0);
std::uint16_t checksumFinish(std::uint32_t sum);

}  // namespace cw::packet
