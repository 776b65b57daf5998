// Replays fuzz/corpus/ids_rules (seeds and any kept crashers) through the parser and the
// compiler, so a fixed crash stays fixed without a fuzzing build.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "ids/engine.h"
#include "packet/builder.h"

namespace cw::ids {
namespace {

TEST(IdsFuzzCorpus, ReplaysWithoutCrashing) {
  const std::filesystem::path dir = CW_IDS_CORPUS;
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LoadReport report;
    auto rules = compileRules(text, defaultVariables(), report);
    ASSERT_TRUE(rules.has_value()) << entry.path();
    Engine engine(*rules);
    std::vector<Alert> alerts;
    const Bytes payload(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    engine.onFrame(packet::buildUdp4({}, Ip4{1}, Ip4{2}, 5353, 53,
                                     payload.first(std::min<std::size_t>(1400, payload.size()))),
                   1, alerts);
    ++count;
  }
  EXPECT_GT(count, 0u);
}

}  // namespace
}  // namespace cw::ids
