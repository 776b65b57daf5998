// Replays fuzz/corpus/packet_parse (seeds and any kept crashers) through the parser, so a
// fixed crash stays fixed without a fuzzing build.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "packet/frame.h"

namespace cw::packet {
namespace {

TEST(FuzzCorpus, ReplaysWithoutCrashing) {
  const std::filesystem::path dir = CW_PACKET_CORPUS;
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<std::uint8_t> frame((std::istreambuf_iterator<char>(in)),
                                          std::istreambuf_iterator<char>());
    auto r = parseFrame(frame);
    if (r) {
      EXPECT_FALSE(describe(*r).empty()) << entry.path();
    }
    ++count;
  }
  EXPECT_GT(count, 0u);
}

}  // namespace
}  // namespace cw::packet
