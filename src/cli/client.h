// A connection to cellwalld's control socket: one typed command, one reply, in order.
#pragma once

#include <filesystem>
#include <string>
#include <utility>

#include "api/commands.h"
#include "common/result.h"

namespace cw::cli {

class Client {
 public:
  ~Client();
  Client(Client&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) { o.fd_ = -1; }
  Client& operator=(Client&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(buf_, o.buf_);
    return *this;
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Fails with errno_ set to ENOENT/ECONNREFUSED when no daemon listens.
  static Expected<Client> connect(const std::filesystem::path& socket, int* err_no = nullptr);
  Expected<api::Reply> call(const api::Command& cmd);
  // call(), with a reply the daemon refused (ok = false) turned into its error.
  Expected<api::Reply> callOk(const api::Command& cmd);

 private:
  explicit Client(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::string buf_;
};

// Prints "cellwall: MSG" to stderr and returns `code`, for `return die(...)` in commands.
int die(const std::string& msg, int code = 1);

}  // namespace cw::cli
