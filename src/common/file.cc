#include "common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

Expected<void> writeFileAtomically(const std::filesystem::path& path, std::string_view content,
                                   std::filesystem::perms mode) {
  const std::string tmp = path.string() + ".tmp";
  const auto bits = static_cast<mode_t>(mode & std::filesystem::perms::mask);
  // A leftover temporary file (a crash's) is removed, never reused or followed: ours is new,
  // with our mode set exactly (the umask does not narrow it) before a byte is written.
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, bits);
  if (fd < 0) return fail("cannot write " + tmp + ": " + std::strerror(errno));
  int err = ::fchmod(fd, bits) == 0 ? 0 : errno;
  for (std::size_t done = 0; err == 0 && done < content.size();) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n > 0) done += static_cast<std::size_t>(n);
    else if (n == 0) err = EIO;
    else if (errno != EINTR) err = errno;
  }
  // On disk before it replaces the old one: after a power loss, the old file or the new.
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return fail("cannot write " + tmp + ": " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return fail("cannot write " + path.string() + ": " + why);
  }
  return {};
}

}  // namespace cw
