// Replays fuzz/corpus/policy_parse (seeds and kept crashers) through the parser, the exporter
// and the matcher, so a fixed crash stays fixed without a fuzzing build.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "policy/policy.h"

namespace cw::policy {
namespace {

TEST(PolicyCorpus, ReplaysWithoutCrashing) {
  const std::filesystem::path dir = CW_POLICY_CORPUS;
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto r = parsePolicy(text, entry.path().filename().string());
    if (r) {
      std::string once = exportPolicy(*r);
      auto again = parsePolicy(once, "export.toml");
      ASSERT_TRUE(again) << entry.path() << ": " << again.error().str();
      EXPECT_EQ(exportPolicy(*again), once) << entry.path();
      Matcher m(std::move(r).value());
      const ConnKey k(Protocol::kTcp, Direction::kOutbound, *IpAddr::parse("10.0.0.1"), 80);
      EXPECT_EQ(m.decide(k).rule, m.explain(k).verdict.rule);
    } else {
      EXPECT_FALSE(r.error().reason.empty()) << entry.path();
    }
    ++count;
  }
  EXPECT_GT(count, 0u);
}

}  // namespace
}  // namespace cw::policy
