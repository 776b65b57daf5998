// Bounds-checked big-endian reading and writing of wire bytes.
//
// ByteReader never reads past its span: every read checks the remaining size first and, on
// shortage, sets a sticky failure flag and returns zero. Decoders read a whole structure and
// check ok() once, which keeps them short and makes overruns impossible by construction.
// ByteWriter appends to a caller-owned std::vector, so encoders can batch many messages into
// one buffer without allocation per message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace cw {

using Bytes = std::span<const std::uint8_t>;

class ByteReader {
 public:
  explicit ByteReader(Bytes data) : data_(data) {}

  bool ok() const { return ok_; }
  std::size_t remaining() const { return data_.size() - pos_; }
  std::size_t position() const { return pos_; }
  bool empty() const { return remaining() == 0; }

  std::uint8_t u8() {
    if (!need(1)) return 0;
    return data_[pos_++];
  }
  std::uint16_t u16() {
    if (!need(2)) return 0;
    auto v = static_cast<std::uint16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  std::uint32_t u32() {
    if (!need(4)) return 0;
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | data_[pos_++];
    return v;
  }
  std::uint64_t u64() {
    if (!need(8)) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | data_[pos_++];
    return v;
  }
  // A sub-span of n bytes; empty (and failed) if fewer remain.
  Bytes bytes(std::size_t n) {
    if (!need(n)) return {};
    Bytes out = data_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  // Copies n bytes into dst (which must hold n); zero-fills on failure.
  void copy(std::uint8_t* dst, std::size_t n) {
    if (!need(n)) {
      std::memset(dst, 0, n);
      return;
    }
    std::memcpy(dst, data_.data() + pos_, n);
    pos_ += n;
  }
  void skip(std::size_t n) {
    if (need(n)) pos_ += n;
  }
  // The rest of the input, consumed.
  Bytes rest() { return bytes(remaining()); }
  // Marks the reader failed (a decoder found a semantic problem mid-way).
  void fail() { ok_ = false; }

 private:
  bool need(std::size_t n) {
    if (!ok_ || remaining() < n) {
      ok_ = false;
      pos_ = data_.size();
      return false;
    }
    return true;
  }

  Bytes data_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

class ByteWriter {
 public:
  explicit ByteWriter(std::vector<std::uint8_t>& out) : out_(out), start_(out.size()) {}

  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) {
    out_.push_back(static_cast<std::uint8_t>(v >> 8));
    out_.push_back(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out_.push_back(static_cast<std::uint8_t>(v >> s));
  }
  void u64(std::uint64_t v) {
    for (int s = 56; s >= 0; s -= 8) out_.push_back(static_cast<std::uint8_t>(v >> s));
  }
  void bytes(Bytes b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void zeros(std::size_t n) { out_.insert(out_.end(), n, 0); }
  // Pads with zeros up to a multiple of `align` bytes counted from this writer's start.
  void pad_to(std::size_t align) {
    std::size_t n = size() % align;
    if (n != 0) zeros(align - n);
  }
  // Bytes written through this writer so far.
  std::size_t size() const { return out_.size() - start_; }
  // Absolute offset into the underlying buffer (for patching lengths later).
  std::size_t offset() const { return out_.size(); }
  void patch_u16(std::size_t at, std::uint16_t v) {
    out_[at] = static_cast<std::uint8_t>(v >> 8);
    out_[at + 1] = static_cast<std::uint8_t>(v);
  }
  void patch_u32(std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out_[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
  }
  std::vector<std::uint8_t>& buffer() { return out_; }

 private:
  std::vector<std::uint8_t>& out_;
  std::size_t start_;
};

}  // namespace cw
