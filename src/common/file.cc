#include "common/file.h"

#include <fstream>
#include <sstream>

namespace cw {

Expected<std::string> readTextFile(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return fail("cannot read " + path.string());
  std::ostringstream s;
  s << f.rdbuf();
  if (f.bad()) return fail("cannot read " + path.string());
  return s.str();
}

}  // namespace cw
