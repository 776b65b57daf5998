// cw-ofload: OpenFlow 1.3 flow-setup load generator (see bench/README.md).
#include <cstdio>
#include <string>
#include <vector>

#include "load_loop.h"
#include "options.h"
#include "report.h"

namespace {
constexpr int kExitRunFailed = 1;
constexpr int kExitNoController = 2;
constexpr int kExitUsage = 64;
}  // namespace

int main(int argc, char** argv) {
  using namespace cw::ofload;
  std::vector<std::string> args(argv + 1, argv + argc);
  bool help = false;
  auto opts = parseOptions(args, help);
  if (!opts) {
    std::fprintf(stderr, "cw-ofload: %s\n", opts.error().message.c_str());
    return kExitUsage;
  }
  if (help) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  auto result = runLoad(*opts);
  if (!result) {
    std::fprintf(stderr, "cw-ofload: %s\n", result.error().message.c_str());
    return result.error().kind == RunFailure::kConnect ? kExitNoController : kExitRunFailed;
  }
  std::string human = formatHuman(*opts, *result);
  if (opts->json) {
    std::fputs(human.c_str(), stderr);
    std::printf("%s\n", formatJson(*opts, *result).c_str());
  } else {
    std::fputs(human.c_str(), stdout);
  }
  return 0;
}
