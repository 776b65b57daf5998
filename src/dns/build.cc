#include "dns/build.h"

#include <algorithm>
#include <cassert>
#include <string_view>
#include <utility>

namespace cw::dns {

namespace {

std::vector<std::string_view> labels(std::string_view name) {
  std::vector<std::string_view> out;
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  while (!name.empty()) {
    const auto dot = name.find('.');
    out.push_back(name.substr(0, dot));
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
  }
  return out;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
}

// Writes names, remembering where each suffix went so later names can point at it.
class NameWriter {
 public:
  NameWriter(std::vector<std::uint8_t>& out, bool compress) : out_(out), compress_(compress) {}

  void write(std::string_view name, bool compressible = true) {
    const auto parts = labels(name);
    std::size_t wire = 1;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const std::string key = suffixKey(parts, i);
      if (compress_ && compressible) {
        for (const auto& [k, at] : suffixes_) {
          if (k == key) {
            ByteWriter(out_).u16(static_cast<std::uint16_t>(0xc000 | at));
            return;
          }
        }
      }
      if (compress_ && out_.size() < 0x3fff) suffixes_.emplace_back(key, out_.size());
      assert(!parts[i].empty() && parts[i].size() <= 63);
      wire += parts[i].size() + 1;
      assert(wire <= kMaxNameWireSize);
      out_.push_back(static_cast<std::uint8_t>(parts[i].size()));
      out_.insert(out_.end(), parts[i].begin(), parts[i].end());
    }
    out_.push_back(0);
    static_cast<void>(wire);  // only asserted on
  }

 private:
  static std::string suffixKey(const std::vector<std::string_view>& parts, std::size_t from) {
    std::string key;
    for (std::size_t i = from; i < parts.size(); ++i) {
      for (char c : parts[i]) key += lower(c);
      key += '.';
    }
    return key;
  }

  std::vector<std::uint8_t>& out_;
  bool compress_;
  std::vector<std::pair<std::string, std::size_t>> suffixes_;
};

void writeRecord(NameWriter& names, std::vector<std::uint8_t>& out, const RecordSpec& rec) {
  names.write(rec.name);
  ByteWriter w(out);
  w.u16(rec.type);
  w.u16(rec.klass);
  w.u32(rec.ttl);
  const std::size_t size_at = w.offset();
  w.u16(0);
  if (rec.type == kTypeCname) {
    names.write(rec.target);
  } else {
    w.bytes(rec.rdata);
  }
  const std::size_t size = out.size() - size_at - 2;
  assert(size <= 0xffff);
  w.patch_u16(size_at, static_cast<std::uint16_t>(size));
}

std::vector<std::uint8_t> header(std::uint16_t id, std::uint16_t flags, std::size_t an,
                                 std::size_t ns, std::size_t ar) {
  std::vector<std::uint8_t> out;
  ByteWriter w(out);
  w.u16(id);
  w.u16(flags);
  w.u16(1);
  w.u16(static_cast<std::uint16_t>(an));
  w.u16(static_cast<std::uint16_t>(ns));
  w.u16(static_cast<std::uint16_t>(ar));
  return out;
}

}  // namespace

RecordSpec aRecord(std::string name, Ip4 ip, std::uint32_t ttl) {
  RecordSpec r;
  r.name = std::move(name);
  r.type = kTypeA;
  r.ttl = ttl;
  ByteWriter(r.rdata).u32(ip.v);
  return r;
}

RecordSpec aaaaRecord(std::string name, const Ip6& ip, std::uint32_t ttl) {
  RecordSpec r;
  r.name = std::move(name);
  r.type = kTypeAaaa;
  r.ttl = ttl;
  r.rdata.assign(ip.b.begin(), ip.b.end());
  return r;
}

RecordSpec cnameRecord(std::string name, std::string target, std::uint32_t ttl) {
  RecordSpec r;
  r.name = std::move(name);
  r.type = kTypeCname;
  r.ttl = ttl;
  r.target = std::move(target);
  return r;
}

RecordSpec svcbRecord(std::string name, const SvcbSpec& svcb, std::uint16_t type,
                      std::uint32_t ttl) {
  RecordSpec r;
  r.name = std::move(name);
  r.type = type;
  r.ttl = ttl;
  r.rdata = svcbRdata(svcb);
  return r;
}

std::vector<std::uint8_t> svcbRdata(const SvcbSpec& svcb) {
  std::vector<std::uint8_t> out;
  ByteWriter w(out);
  w.u16(svcb.priority);
  NameWriter(out, false).write(svcb.target, false);
  if (!svcb.alpn.empty()) {
    std::size_t size = 0;
    for (const auto& id : svcb.alpn) size += 1 + id.size();
    w.u16(1);
    w.u16(static_cast<std::uint16_t>(size));
    for (const auto& id : svcb.alpn) {
      w.u8(static_cast<std::uint8_t>(id.size()));
      out.insert(out.end(), id.begin(), id.end());
    }
  }
  if (svcb.port != 0) {
    w.u16(3);
    w.u16(2);
    w.u16(svcb.port);
  }
  if (!svcb.ipv4hint.empty()) {
    w.u16(kSvcKeyIpv4Hint);
    w.u16(static_cast<std::uint16_t>(4 * svcb.ipv4hint.size()));
    for (const auto& a : svcb.ipv4hint) w.u32(a.v);
  }
  if (!svcb.ipv6hint.empty()) {
    w.u16(kSvcKeyIpv6Hint);
    w.u16(static_cast<std::uint16_t>(16 * svcb.ipv6hint.size()));
    for (const auto& a : svcb.ipv6hint) w.bytes(a.b);
  }
  return out;
}

std::vector<std::uint8_t> buildResponse(const ResponseSpec& spec) {
  std::uint16_t flags = 0x0100 | 0x0080;  // RD, RA
  if (spec.response) flags |= 0x8000;
  if (spec.truncated) flags |= 0x0200;
  flags = static_cast<std::uint16_t>(flags | (spec.opcode & 0xf) << 11 | (spec.rcode & 0xf));
  auto out =
      header(spec.id, flags, spec.answers.size(), spec.authority.size(), spec.additional.size());
  NameWriter names(out, spec.compress);
  names.write(spec.qname);
  ByteWriter w(out);
  w.u16(spec.qtype);
  w.u16(spec.qclass);
  for (const auto* section : {&spec.answers, &spec.authority, &spec.additional}) {
    for (const auto& rec : *section) writeRecord(names, out, rec);
  }
  return out;
}

std::vector<std::uint8_t> buildQuery(std::uint16_t id, const std::string& qname,
                                     std::uint16_t qtype) {
  auto out = header(id, 0x0100, 0, 0, 0);
  NameWriter(out, false).write(qname, false);
  ByteWriter w(out);
  w.u16(qtype);
  w.u16(kClassIn);
  return out;
}

std::vector<std::uint8_t> frameTcp(Bytes message) {
  assert(message.size() <= 0xffff);
  // Sized up front: appending to a 2-byte vector trips g++ 12's -Warray-bounds at -O3.
  std::vector<std::uint8_t> out(2 + message.size());
  out[0] = static_cast<std::uint8_t>(message.size() >> 8);
  out[1] = static_cast<std::uint8_t>(message.size());
  std::copy(message.begin(), message.end(), out.begin() + 2);
  return out;
}

}  // namespace cw::dns
