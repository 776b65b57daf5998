#include "env/slirp_api.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace cw {

namespace {

using Json = nlohmann::json;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string errnoText() { return std::strerror(errno); }

// The reply's "return" object, or slirp's own description of the error.
Expected<Json> parseReply(const std::string& what, const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return fail("slirp4netns " + what + ": unreadable reply: " + text.substr(0, 200));
  if (auto e = j.find("error"); e != j.end()) {
    std::string desc = e->is_object() && e->contains("desc") && (*e)["desc"].is_string()
                           ? (*e)["desc"].get<std::string>()
                           : e->dump();
    return fail("slirp4netns " + what + ": " + desc);
  }
  auto r = j.find("return");
  if (r == j.end()) return fail("slirp4netns " + what + ": reply without a result: " + text.substr(0, 200));
  return *r;
}

}  // namespace

Expected<std::string> SlirpApi::call(const std::string& request) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return fail("socket: " + errnoText());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = socket_.string();
  if (path.size() >= sizeof addr.sun_path) return fail("slirp4netns API socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return fail("cannot reach slirp4netns at " + path + ": " + errnoText());

  for (std::size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("writing to slirp4netns: " + errnoText());
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(fd.get(), SHUT_WR);

  // slirp4netns answers and closes: read to the end, within the timeout.
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return fail("slirp4netns did not answer within " + std::to_string(timeout_.count()) + " ms");
    pollfd p{fd.get(), POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) return fail("poll: " + errnoText());
    if (pr == 0) continue;
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("reading from slirp4netns: " + errnoText());
    if (n == 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
    if (reply.size() > 65536) return fail("slirp4netns reply too long");
  }
  return reply;
}

Expected<int> SlirpApi::addHostFwd(bool udp, const std::string& host_addr, std::uint16_t host_port,
                                   std::uint16_t guest_port) {
  Json req = {{"execute", "add_hostfwd"},
              {"arguments",
               {{"proto", udp ? "udp" : "tcp"},
                {"host_addr", host_addr},
                {"host_port", host_port},
                {"guest_port", guest_port}}}};
  const std::string what = "add_hostfwd " + host_addr + ":" + std::to_string(host_port);
  auto text = call(req.dump());
  if (!text) return Unexpected(text.error());
  auto r = parseReply(what, *text);
  if (!r) return Unexpected(r.error());
  if (!r->is_object() || !r->contains("id") || !(*r)["id"].is_number_integer())
    return fail("slirp4netns " + what + ": no id in the reply: " + *text);
  return (*r)["id"].get<int>();
}

Expected<void> SlirpApi::removeHostFwd(int id) {
  Json req = {{"execute", "remove_hostfwd"}, {"arguments", {{"id", id}}}};
  auto text = call(req.dump());
  if (!text) return Unexpected(text.error());
  auto r = parseReply("remove_hostfwd " + std::to_string(id), *text);
  if (!r) return Unexpected(r.error());
  return {};
}

}  // namespace cw
