// Replays fuzz/corpus/dns_parse (seeds and any kept crashers) through the parser and the TCP
// framer the way the fuzzer does, so a fixed crash stays fixed without a fuzzing build.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "dns/dns.h"

namespace cw::dns {
namespace {

TEST(DnsCorpus, ReplaysWithoutCrashing) {
  const std::filesystem::path dir = CW_DNS_CORPUS;
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  std::size_t count = 0, parsed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)),
                                         std::istreambuf_iterator<char>());
    if (parseResponse(data)) ++parsed;
    if (auto q = parseQuery(data)) {
      (void)refusedAnswer(data, &*q);
      (void)withoutEdnsOptions(data, *q);
    }
    TcpFramer framer(0);
    for (const auto& m : framer.feed(0, data)) {
      if (parseResponse(m)) ++parsed;
    }
    ++count;
  }
  EXPECT_GT(count, 0u);
  EXPECT_GT(parsed, 0u);  // the seeds are good answers
}

}  // namespace
}  // namespace cw::dns
