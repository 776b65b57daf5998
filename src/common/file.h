// Reading and writing whole files, with the file named in the error.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace cw {

Expected<std::string> readTextFile(const std::filesystem::path& path);

// Writes `content` to a new "<path>.tmp" (never through a link) with permissions `mode` (set
// before a byte is written, so a secret is never readable by others), syncs it and renames it
// over `path`: a reader, or a restart after a crash, sees the whole old file or the whole new
// one, never a part.
Expected<void> writeFileAtomically(const std::filesystem::path& path, std::string_view content,
                                   std::filesystem::perms mode = std::filesystem::perms::owner_read |
                                                                 std::filesystem::perms::owner_write |
                                                                 std::filesystem::perms::group_read |
                                                                 std::filesystem::perms::others_read);

}  // namespace cw
