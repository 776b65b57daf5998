#include "daemon/cell_table.h"

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

namespace cw::daemon {

CellTable::CellTable(std::filesystem::path state_dir) : state_dir_(std::move(state_dir)) {}

std::uint32_t CellTable::nextId() {
  while (cells_.count(next_id_) != 0) ++next_id_;
  return next_id_++;
}

std::optional<Ip4> CellTable::allocateIp(const Cidr& pool) const {
  std::set<std::uint32_t> used;
  for (const auto& [id, c] : cells_) used.insert(c.ip.v);
  std::uint32_t base = pool.addr.v4().v;
  std::uint32_t size = pool.length >= 32 ? 1u : (1u << (32 - pool.length));
  // .0 is the network, .1 the gateway, the last the broadcast address.
  for (std::uint32_t i = 2; i + 1 < size; ++i) {
    if (used.count(base + i) == 0) return Ip4{base + i};
  }
  return std::nullopt;
}

MacAddr CellTable::macFor(Ip4 ip) {
  return MacAddr{{0x02, 0xc3, static_cast<std::uint8_t>(ip.v >> 24),
                  static_cast<std::uint8_t>(ip.v >> 16), static_cast<std::uint8_t>(ip.v >> 8),
                  static_cast<std::uint8_t>(ip.v)}};
}

void CellTable::add(CellRecord r) {
  std::uint32_t id = r.info.id;
  if (id >= next_id_) next_id_ = id + 1;
  cells_[id] = std::move(r);
}

void CellTable::remove(std::uint32_t id) { cells_.erase(id); }

CellRecord* CellTable::find(std::uint32_t id) {
  auto it = cells_.find(id);
  return it == cells_.end() ? nullptr : &it->second;
}

std::filesystem::path CellTable::cellDir(std::uint32_t id) const {
  return state_dir_ / "cells" / std::to_string(id);
}

Expected<void> CellTable::save() const {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& [id, c] : cells_) {
    api::Reply one;
    one.cells.push_back(c.info);
    arr.push_back(nlohmann::json::parse(api::encodeReply(one))["cells"][0]);
  }
  auto path = state_dir_ / "cells.json";
  auto tmp = state_dir_ / "cells.json.tmp";
  {
    std::ofstream out(tmp);
    out << arr.dump(2) << "\n";
    if (!out) return fail("cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return fail("cannot replace " + path.string() + ": " + ec.message());
  return {};
}

Expected<std::vector<api::CellInfo>> CellTable::load() const {
  auto path = state_dir_ / "cells.json";
  std::ifstream in(path);
  if (!in) return std::vector<api::CellInfo>{};
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return fail(path.string() + " is not a JSON array");
  nlohmann::json wrapped{{"ok", true}, {"cells", j}};
  auto reply = api::decodeReply(wrapped.dump());
  if (!reply) return Unexpected(reply.error());
  return reply->cells;
}

}  // namespace cw::daemon
