// Builds well-formed frames (correct lengths and checksums) for tests, benchmarks and the
// controller's own replies (TCP RST, ICMP unreachable, ARP replies).
#pragma once

#include <cstdint>
#include <vector>

#include "common/net.h"

namespace cw::packet {

struct EthSpec {
  MacAddr src, dst;
  std::uint16_t vlan_vid = 0;  // 0: untagged
};

std::vector<std::uint8_t> buildTcp4(const EthSpec& eth, Ip4 src, Ip4 dst, std::uint16_t sport,
                                    std::uint16_t dport, std::uint8_t flags,
                                    std::uint32_t seq = 0, std::uint32_t ack = 0,
                                    Bytes payload = {});
std::vector<std::uint8_t> buildUdp4(const EthSpec& eth, Ip4 src, Ip4 dst, std::uint16_t sport,
                                    std::uint16_t dport, Bytes payload = {});
std::vector<std::uint8_t> buildIcmp4(const EthSpec& eth, Ip4 src, Ip4 dst, std::uint8_t type,
                                     std::uint8_t code, Bytes payload = {});
std::vector<std::uint8_t> buildTcp6(const EthSpec& eth, const Ip6& src, const Ip6& dst,
                                    std::uint16_t sport, std::uint16_t dport, std::uint8_t flags);
std::vector<std::uint8_t> buildUdp6(const EthSpec& eth, const Ip6& src, const Ip6& dst,
                                    std::uint16_t sport, std::uint16_t dport, Bytes payload = {});
std::vector<std::uint8_t> buildArp(const EthSpec& eth, std::uint16_t op, MacAddr sha, Ip4 spa,
                                   MacAddr tha, Ip4 tpa);

// Internet checksum over `data` (RFC 1071), folded, not inverted.
std::uint32_t checksumPartial(Bytes data, std::uint32_t sum = 0);
std::uint16_t checksumFinish(std::uint32_t sum);

}  // namespace cw::packet
