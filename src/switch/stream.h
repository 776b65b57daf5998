// The byte stream under one switch connection: a plain socket (TCP or UNIX) or TLS over TCP.
// Private to src/switch. All calls happen on the connection's event loop.
#pragma once

#include <functional>
#include <memory>

#include <asio.hpp>
#include <asio/ssl.hpp>

namespace cw::sw {

class ByteStream {
 public:
  using Handler = std::function<void(const asio::error_code&, std::size_t)>;
  virtual ~ByteStream() = default;
  virtual void readSome(asio::mutable_buffer buf, Handler h) = 0;
  // Writes the whole buffer.
  virtual void write(asio::const_buffer buf, Handler h) = 0;
  virtual void close() = 0;
  virtual asio::any_io_executor executor() = 0;
};

class PlainStream final : public ByteStream {
 public:
  explicit PlainStream(asio::generic::stream_protocol::socket s) : s_(std::move(s)) {}
  void readSome(asio::mutable_buffer buf, Handler h) override { s_.async_read_some(buf, std::move(h)); }
  void write(asio::const_buffer buf, Handler h) override { asio::async_write(s_, buf, std::move(h)); }
  void close() override {
    asio::error_code ignored;
    s_.shutdown(asio::socket_base::shutdown_both, ignored);
    s_.close(ignored);
  }
  asio::any_io_executor executor() override { return s_.get_executor(); }

 private:
  asio::generic::stream_protocol::socket s_;
};

// A TLS stream whose handshake has completed (the server does it before the connection
// starts, so a peer that fails it never becomes a switch).
class TlsStream final : public ByteStream {
 public:
  using Stream = asio::ssl::stream<asio::ip::tcp::socket>;
  explicit TlsStream(std::shared_ptr<Stream> s) : s_(std::move(s)) {}
  void readSome(asio::mutable_buffer buf, Handler h) override { s_->async_read_some(buf, std::move(h)); }
  void write(asio::const_buffer buf, Handler h) override { asio::async_write(*s_, buf, std::move(h)); }
  void close() override {
    asio::error_code ignored;
    // No TLS close_notify exchange: the connection is being dropped either way.
    s_->lowest_layer().shutdown(asio::socket_base::shutdown_both, ignored);
    s_->lowest_layer().close(ignored);
  }
  asio::any_io_executor executor() override { return s_->get_executor(); }

 private:
  std::shared_ptr<Stream> s_;
};

}  // namespace cw::sw
