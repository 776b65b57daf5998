#include "vm/channel.h"

#include <charconv>

namespace cw::vm {

namespace {

void putU32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::uint32_t getU32(std::string_view s) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[static_cast<std::size_t>(i)]);
  return v;
}

bool knownType(std::uint8_t t) {
  return (t >= 1 && t <= 4) || (t >= 16 && t <= 20);
}

// The spec is a list of (key, value) fields, each [key length: 1][key][value length: 4][value].
// A key may repeat ("arg", "env", "group"); unknown keys are skipped, so either side can be
// newer.
void field(std::string& out, std::string_view key, std::string_view value) {
  out.push_back(static_cast<char>(key.size()));
  out.append(key);
  putU32(out, static_cast<std::uint32_t>(value.size()));
  out.append(value);
}

template <class T>
bool number(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::string encodeFrame(FrameType type, std::string_view payload) {
  std::string out;
  out.reserve(kFrameHeader + payload.size());
  out.push_back(static_cast<char>(type));
  putU32(out, static_cast<std::uint32_t>(payload.size()));
  out.append(payload);
  return out;
}

void FrameDecoder::feed(std::string_view bytes) {
  if (failed()) return;
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  buf_.append(bytes);
}

std::optional<Frame> FrameDecoder::next() {
  if (failed() || buf_.size() - pos_ < kFrameHeader) return std::nullopt;
  std::string_view rest(buf_.data() + pos_, buf_.size() - pos_);
  auto type = static_cast<std::uint8_t>(rest[0]);
  std::uint32_t len = getU32(rest.substr(1, 4));
  if (!knownType(type)) {
    error_ = "unknown frame type " + std::to_string(type);
    return std::nullopt;
  }
  if (len > kMaxFrame) {
    error_ = "frame of " + std::to_string(len) + " bytes (at most " + std::to_string(kMaxFrame) + ")";
    return std::nullopt;
  }
  if (rest.size() < kFrameHeader + len) return std::nullopt;
  Frame f{static_cast<FrameType>(type), std::string(rest.substr(kFrameHeader, len))};
  pos_ += kFrameHeader + len;
  // Consumed bytes are dropped once they are most of the buffer, so a long stream stays small.
  if (pos_ > 65536 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return f;
}

std::string encodeSpec(const GuestSpec& s) {
  std::string out;
  for (const auto& a : s.argv) field(out, "arg", a);
  for (const auto& e : s.env) field(out, "env", e);
  field(out, "uid", std::to_string(s.uid));
  field(out, "gid", std::to_string(s.gid));
  for (auto g : s.groups) field(out, "group", std::to_string(g));
  field(out, "cwd", s.cwd);
  field(out, "ip", s.ip);
  field(out, "gateway", s.gateway);
  field(out, "mtu", std::to_string(s.mtu));
  field(out, "resolv_conf", s.resolv_conf);
  field(out, "hosts", s.hosts);
  field(out, "tty", s.tty ? "1" : "0");
  field(out, "rows", std::to_string(s.rows));
  field(out, "cols", std::to_string(s.cols));
  field(out, "time", std::to_string(s.unix_ns));
  return out;
}

std::optional<GuestSpec> decodeSpec(std::string_view p) {
  GuestSpec s;
  s.cwd.clear();
  while (!p.empty()) {
    std::size_t klen = static_cast<unsigned char>(p[0]);
    if (p.size() < 1 + klen + 4) return std::nullopt;
    std::string_view key = p.substr(1, klen);
    std::uint32_t vlen = getU32(p.substr(1 + klen, 4));
    p.remove_prefix(1 + klen + 4);
    if (p.size() < vlen) return std::nullopt;
    std::string_view v = p.substr(0, vlen);
    p.remove_prefix(vlen);
    bool ok = true;
    if (key == "arg") s.argv.emplace_back(v);
    else if (key == "env") s.env.emplace_back(v);
    else if (key == "uid") ok = number(v, s.uid);
    else if (key == "gid") ok = number(v, s.gid);
    else if (key == "group") ok = number(v, s.groups.emplace_back());
    else if (key == "cwd") s.cwd = v;
    else if (key == "ip") s.ip = v;
    else if (key == "gateway") s.gateway = v;
    else if (key == "mtu") ok = number(v, s.mtu);
    else if (key == "resolv_conf") s.resolv_conf = v;
    else if (key == "hosts") s.hosts = v;
    else if (key == "tty") s.tty = v == "1";
    else if (key == "rows") ok = number(v, s.rows);
    else if (key == "cols") ok = number(v, s.cols);
    else if (key == "time") ok = number(v, s.unix_ns);
    if (!ok) return std::nullopt;
  }
  if (s.argv.empty() || s.cwd.empty()) return std::nullopt;
  return s;
}

}  // namespace cw::vm
