// Reading a whole text file, with the file named in the error.
#pragma once

#include <filesystem>
#include <string>

#include "common/result.h"

namespace cw {

Expected<std::string> readTextFile(const std::filesystem::path& path);

}  // namespace cw
