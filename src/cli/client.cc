#include "cli/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace cw::cli {

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

Expected<Client> Client::connect(const std::filesystem::path& socket, int* err_no) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::string("socket: ") + std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = socket.string();
  if (path.size() >= sizeof addr.sun_path) {
    ::close(fd);
    return fail("control socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {  // NOLINT: sockaddr API
    int e = errno;
    ::close(fd);
    if (err_no != nullptr) *err_no = e;
    if (e == EACCES)
      return fail("cannot reach cellwalld at " + path + ": permission denied (run as root)");
    return fail("cannot reach cellwalld at " + path + ": " + std::strerror(e) +
                " (is it running? start it with `cellwall daemon`)");
  }
  return Client(fd);
}

Expected<api::Reply> Client::call(const api::Command& cmd) {
  auto encoded = api::encodeCommand(cmd);
  if (!encoded) return fail("cannot send the command to cellwalld: " + encoded.error().message);
  std::string line = std::move(*encoded) + "\n";
  std::size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(std::string("lost the connection to cellwalld: ") + std::strerror(errno));
    }
    off += static_cast<std::size_t>(n);
  }
  while (true) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string reply = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return api::decodeReply(reply);
    }
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("cellwalld closed the connection (did it stop? see its log)");
    buf_.append(tmp, static_cast<std::size_t>(n));
  }
}

Expected<api::Reply> Client::callOk(const api::Command& cmd) {
  auto r = call(cmd);
  if (!r) return r;
  if (!r->ok) return fail(r->error);
  return r;
}

int die(const std::string& msg, int code) {
  std::fprintf(stderr, "cellwall: %s\n", msg.c_str());
  return code;
}

}  // namespace cw::cli
