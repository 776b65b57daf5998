#include "daemon/cell_table.h"

#include <cstdlib>
#include <set>

namespace cw::daemon {

CellTable::CellTable(std::filesystem::path state_dir) : state_dir_(std::move(state_dir)) {}

std::uint32_t CellTable::nextId() {
  // A cell's id is also its conntrack zone and its meter id (docs/pipeline.md): zones are 16
  // bits and 0 is everyone's default zone, so ids stay in 1..65535 and wrap, skipping ids in
  // use. Two live cells never share a zone.
  for (std::uint32_t tries = 0; tries < kMaxCellId; ++tries) {
    if (next_id_ == 0 || next_id_ > kMaxCellId) next_id_ = 1;
    if (cells_.count(next_id_) == 0) return next_id_++;
    ++next_id_;
  }
  return 0;  // 65,535 cells at once: the caller refuses another
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
  if (store_ == nullptr) return fail("cell table has no store");
  auto stored = store_->listCells();
  if (!stored) return Unexpected(stored.error());
  for (const auto& row : *stored) {
    std::uint32_t id = static_cast<std::uint32_t>(std::strtoul(row.id.c_str(), nullptr, 10));
    if (cells_.count(id) == 0)
      if (auto r = store_->removeCell(row.id); !r) return Unexpected(r.error());
  }
  for (const auto& [id, c] : cells_) {
    api::Reply one;
    one.cells.push_back(c.info);
    store::CellRow row{std::to_string(id), c.info.app, c.info.env, c.info.ip, c.info.launcher_pid,
                       c.info.created_unix * 1000, api::encodeReply(one)};
    if (auto r = store_->putCell(row); !r) return Unexpected(r.error());
  }
  return {};
}

Expected<std::vector<api::CellInfo>> CellTable::load() const {
  if (store_ == nullptr) return fail("cell table has no store");
  auto stored = store_->listCells();
  if (!stored) return Unexpected(stored.error());
  std::vector<api::CellInfo> out;
  for (const auto& row : *stored) {
    auto reply = api::decodeReply(row.details);
    if (!reply || reply->cells.size() != 1)
      return fail("stored cell " + row.id + " has unreadable details");
    out.push_back(reply->cells.front());
  }
  return out;
}

}  // namespace cw::daemon
