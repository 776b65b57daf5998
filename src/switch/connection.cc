#include "switch/connection.h"

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "packet/checksum.h"

namespace cw::sw {

namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// A switch that stops reading while we keep writing is dropped rather than allowed to grow
// our memory without bound.
constexpr std::size_t kMaxPendingWrite = 64 * 1024 * 1024;
// A write buffer bigger than this is given back after its write instead of kept for reuse.
constexpr std::size_t kKeepWriteCapacity = 1024 * 1024;
constexpr std::uint8_t kHelloType = 0;  // the same in every version
constexpr std::uint16_t kErrHelloFailed = 0;
constexpr std::uint16_t kErrHelloIncompatible = 0;

std::uint32_t ourBitmap(bool offer_of10) {
  std::uint32_t b = 1u << static_cast<unsigned>(ofp::Version::kOf13);
  if (offer_of10) b |= 1u << static_cast<unsigned>(ofp::Version::kOf10);
  return b;
}

}  // namespace

const char* authName(Auth a) {
  switch (a) {
    case Auth::kNone: return "none";
    case Auth::kTls: return "tls";
    case Auth::kUnixPeerCred: return "unix-peercred";
  }
  return "?";
}

Connection::Connection(std::unique_ptr<ByteStream> stream, std::string peer, Auth auth,
                       const ServerOptions& options, SwitchHandler& handler, ConnectionOwner& owner)
    : stream_(std::move(stream)),
      peer_(std::move(peer)),
      auth_(auth),
      options_(options),
      handler_(handler),
      owner_(owner),
      timer_(stream_->executor()) {
  rbuf_.resize(kReadChunk + ofp::kMaxMessageSize);
  wbuf_.reserve(kReadChunk);
}

void Connection::start() {
  started_ = last_rx_ = std::chrono::steady_clock::now();
  ofp::Hello hello{ourBitmap(options_.offer_of10)};
  send(hello);
  tick();
  readMore();
}

void Connection::tick() {
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
    if (ec || self->state_ == State::kClosed) return;
    auto now = std::chrono::steady_clock::now();
    auto since_rx = now - self->last_rx_;
    if (self->state_ != State::kUp &&
        now - self->started_ > std::chrono::seconds(self->options_.handshake_timeout_sec)) {
      self->close("handshake timed out");
      return;
    }
    if (since_rx > std::chrono::seconds(self->options_.echo_timeout_sec)) {
      self->close("no answer to echo requests");
      return;
    }
    if (self->state_ == State::kUp && !self->echo_outstanding_ &&
        since_rx > std::chrono::seconds(self->options_.echo_interval_sec)) {
      self->echo_outstanding_ = true;
      self->send(ofp::Echo{false, {}});
    }
    self->tick();
  });
}

void Connection::readMore() {
  if (state_ == State::kClosed) return;
  stream_->readSome(
      asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
      [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
        if (ec) {
          self->close(ec == asio::error::eof ? "switch closed the connection" : ec.message());
          return;
        }
        self->onRead(n);
      });
}

void Connection::onRead(std::size_t n) {
  rlen_ += n;
  last_rx_ = std::chrono::steady_clock::now();
  echo_outstanding_ = false;
  in_batch_ = true;
  std::size_t pos = 0;
  bool framing_ok = true;
  while (state_ != State::kClosed) {
    Bytes avail(rbuf_.data() + pos, rlen_ - pos);
    auto len = ofp::frameLength(avail);
    if (!len) break;
    if (*len < ofp::kHeaderSize) {
      framing_ok = false;
      break;
    }
    if (*len > avail.size()) break;
    if (!handleMessage(avail.first(*len))) {
      framing_ok = false;
      break;
    }
    pos += *len;
  }
  in_batch_ = false;
  if (!framing_ok) {
    ++counters_.decode_errors;
    close("framing lost (message length below 8)");
    return;
  }
  if (pos > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + pos, rlen_ - pos);
    rlen_ -= pos;
  }
  flush();
  // The next read is queued behind other ready handlers on this thread, so one busy switch
  // shares its event loop fairly.
  readMore();
}

bool Connection::handleMessage(Bytes message) {
  ++counters_.rx;
  ofp::Header h{message[0], message[1],
                static_cast<std::uint16_t>((message[2] << 8) | message[3]), 0};
  h.xid = (std::uint32_t{message[4]} << 24) | (std::uint32_t{message[5]} << 16) |
          (std::uint32_t{message[6]} << 8) | message[7];
  if (state_ == State::kHello) {
    if (h.type == kHelloType) {
      handleHello(h, message);
      return true;
    }
    // Anything before HELLO is a protocol violation; OVS never does it.
    close("message before HELLO");
    return true;
  }
  auto decoded = ofp::decode(message);
  if (!decoded) {
    replyError(decoded.error(), h, message);
    return true;
  }
  dispatch(*decoded);
  return true;
}

void Connection::handleHello(const ofp::Header& h, Bytes message) {
  std::uint32_t theirs = 0;
  auto decoded = ofp::decode(message);
  if (decoded) {
    if (auto* hello = std::get_if<ofp::Hello>(&decoded->msg)) theirs = hello->version_bitmap;
  }
  std::uint32_t ours = ourBitmap(options_.offer_of10);
  unsigned chosen = 0;
  if (theirs != 0) {
    std::uint32_t common = theirs & ours;
    for (unsigned v = 31; v > 0; --v)
      if ((common & (1u << v)) != 0) {
        chosen = v;
        break;
      }
  } else {
    // No bitmap: the lower of the two header versions (OpenFlow 1.3 §6.3.1), if we speak it.
    unsigned v = std::min<unsigned>(h.version, static_cast<unsigned>(ofp::Version::kOf13));
    if ((ours & (1u << v)) != 0) chosen = v;
  }
  if (chosen == 0) {
    ofp::ErrorMsg err{kErrHelloFailed, kErrHelloIncompatible, {}};
    std::string text = "no common OpenFlow version (we speak 1.0 and 1.3)";
    err.data.assign(text.begin(), text.end());
    send(err);
    flush();
    close("no common OpenFlow version with " + peer_);
    return;
  }
  version_ = static_cast<ofp::Version>(chosen);
  state_ = State::kFeatures;
  send(ofp::FeaturesRequest{});
}

void Connection::dispatch(const ofp::Decoded& d) {
  std::visit(
      [&](const auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, ofp::PacketIn>) {
          ++counters_.packet_ins;
          if (state_ == State::kUp) handler_.onPacketIn(*this, m);
        } else if constexpr (std::is_same_v<M, ofp::Echo>) {
          if (!m.reply) {
            ofp::encode(version_, d.header.xid, ofp::Echo{true, m.data}, wbuf_);
            ++counters_.tx;
            afterSend();
          }
        } else if constexpr (std::is_same_v<M, ofp::FeaturesReply>) {
          if (state_ != State::kFeatures) return;
          dpid_ = m.datapath_id;
          // Full packets to the controller: the decision needs the whole first packet, and
          // OVS does not buffer for us.
          send(ofp::SwitchConfig{true, 0, ofp::kControllerMaxLenNoBuffer});
          if (version_ == ofp::Version::kOf10) {
            ports_ = m.ports;
            becomeUp();
          } else {
            state_ = State::kPorts;
            port_desc_xid_ = send(ofp::MultipartRequest{0, ofp::PortDescRequest{}});
          }
        } else if constexpr (std::is_same_v<M, ofp::MultipartReply>) {
          if (d.header.xid == port_desc_xid_ && state_ == State::kPorts) {
            if (auto* ports = std::get_if<std::vector<ofp::PortDesc>>(&m.body))
              ports_.insert(ports_.end(), ports->begin(), ports->end());
            if ((m.flags & ofp::kMultipartMore) == 0) becomeUp();
            return;
          }
          auto it = flow_dumps_.find(d.header.xid);
          if (it == flow_dumps_.end()) return;
          if (auto* flows = std::get_if<std::vector<ofp::FlowStats>>(&m.body))
            it->second.flows.insert(it->second.flows.end(), flows->begin(), flows->end());
          if ((m.flags & ofp::kMultipartMore) == 0) {
            auto dump = std::move(it->second);
            flow_dumps_.erase(it);
            dump.done(true, std::move(dump.flows));
          }
        } else if constexpr (std::is_same_v<M, ofp::BarrierReply>) {
          // Replies come in order; anything older than this xid is answered too.
          while (!barriers_.empty() && barriers_.front().first <= d.header.xid) {
            auto fn = std::move(barriers_.front().second);
            barriers_.pop_front();
            fn(true);
          }
        } else if constexpr (std::is_same_v<M, ofp::PortStatus>) {
          auto it = std::find_if(ports_.begin(), ports_.end(),
                                 [&](const auto& p) { return p.port_no == m.desc.port_no; });
          if (m.reason == ofp::PortReason::kDelete) {
            if (it != ports_.end()) ports_.erase(it);
          } else if (it != ports_.end()) {
            *it = m.desc;
          } else {
            ports_.push_back(m.desc);
          }
          if (state_ == State::kUp) handler_.onPortStatus(*this, m);
        } else if constexpr (std::is_same_v<M, ofp::FlowRemoved>) {
          if (state_ == State::kUp) handler_.onFlowRemoved(*this, m);
        } else if constexpr (std::is_same_v<M, ofp::ErrorMsg>) {
          ++counters_.errors;
          log_.warn("switch {} sent OpenFlow error type={} code={} for xid {}", peer_, m.type,
                    m.code, d.header.xid);
          auto it = flow_dumps_.find(d.header.xid);
          if (it != flow_dumps_.end()) {
            auto dump = std::move(it->second);
            flow_dumps_.erase(it);
            dump.done(false, {});
          }
          handler_.onError(*this, d.header.xid, m);
        } else if constexpr (std::is_same_v<M, ofp::Hello>) {
          // A second HELLO is harmless.
        } else {
          // Replies we did not ask for (GET_CONFIG_REPLY, ROLE_REPLY...) are ignored.
        }
      },
      d.msg);
}

void Connection::becomeUp() {
  // Registered before it is up: a refused connection never reaches the handler, so nothing it
  // sent (a forged Packet-In) is ever looked at.
  if (!owner_.registerSwitch(shared_from_this())) {
    refused_ = true;
    close("datapath id refused");
    return;
  }
  state_ = State::kUp;
  spdlog::info("switch {:016x} connected from {} (OpenFlow {}, {} ports, authenticated: {})", dpid_, peer_,
               version_ == ofp::Version::kOf13 ? "1.3" : "1.0", ports_.size(), authName(auth_));
  handler_.onSwitchUp(*this);
}

void Connection::replyError(ofp::DecodeError e, const ofp::Header& h, Bytes message) {
  ++counters_.decode_errors;
  owner_.countDecodeError(e);
  log_.warn("malformed OpenFlow message from {} (type {}, xid {}): {}", peer_, h.type, h.xid,
            ofp::decodeErrorName(e));
  auto code = ofp::errorFor(e);
  ofp::ErrorMsg err{code.type, code.code, {}};
  auto n = std::min<std::size_t>(message.size(), 64);
  err.data.assign(message.begin(), message.begin() + static_cast<std::ptrdiff_t>(n));
  ofp::encode(version_, h.xid, err, wbuf_);
  ++counters_.tx;
  afterSend();
}

std::uint32_t Connection::send(const ofp::Message& msg) {
  std::uint32_t xid = nextXid();
  ofp::encode(version_, xid, msg, wbuf_);
  ++counters_.tx;
  afterSend();
  return xid;
}

void Connection::sendFlowMod(const ofp::FlowMod& fm) {
  ofp::encodeFlowMod(version_, nextXid(), fm, wbuf_);
  ++counters_.tx;
  ++counters_.flow_mods;
  afterSend();
}

void Connection::sendPacketOut(const ofp::PacketOut& po) {
  const std::size_t before = wbuf_.size();
  ofp::encodePacketOut(version_, nextXid(), po, wbuf_);
  // Every frame cellwalld sends out of a switch leaves here. Most came in as a Packet-In, and a
  // sender with TX offload on left their TCP/UDP checksum for the switch to finish: the switch
  // knew that while the packet was inside it, but a Packet-In carries only the bytes, so the
  // frame would come back out with a wrong checksum (packet/checksum.h). The frame is the
  // message's tail, in OpenFlow 1.0 and 1.3 alike; finished there, without a copy.
  if (wbuf_.size() >= before + po.data.size())
    packet::finishChecksums(std::span<std::uint8_t>(wbuf_).last(po.data.size()));
  ++counters_.tx;
  ++counters_.packet_outs;
  afterSend();
}

void Connection::afterSend() {
  if (wbuf_.size() > kMaxPendingWrite) {
    close("switch is not reading (write queue over 64 MiB)");
    return;
  }
  // Inside a read batch the flush happens once at its end.
  if (!in_batch_) flush();
}

void Connection::barrier(std::function<void(bool ok)> done) {
  if (state_ == State::kClosed) {
    done(false);
    return;
  }
  std::uint32_t xid = send(ofp::BarrierRequest{});
  barriers_.emplace_back(xid, std::move(done));
}

void Connection::dumpFlows(const ofp::FlowStatsRequest& req,
                           std::function<void(bool, std::vector<ofp::FlowStats>)> done) {
  if (state_ == State::kClosed) {
    done(false, {});
    return;
  }
  std::uint32_t xid = send(ofp::MultipartRequest{0, req});
  flow_dumps_[xid] = FlowDump{{}, std::move(done)};
}

void Connection::post(std::function<void()> fn) {
  asio::post(stream_->executor(), std::move(fn));
}

SwitchCounters Connection::counters() const {
  auto r = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {r(counters_.rx),         r(counters_.tx),     r(counters_.packet_ins),
          r(counters_.flow_mods),  r(counters_.packet_outs), r(counters_.errors),
          r(counters_.decode_errors)};
}

void Connection::flush() {
  if (writing_ || wbuf_.empty() || state_ == State::kClosed) return;
  writing_ = true;
  std::swap(wbuf_, wbuf_inflight_);
  stream_->write(asio::buffer(wbuf_inflight_),
                    [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
                      self->writing_ = false;
                      self->wbuf_inflight_.clear();
                      // A burst (thousands of flow deletes) grows the buffer to many MiB; keeping
                      // that capacity for the connection's life would pin it in this thread's
                      // malloc arena. The usual batch stays well below the limit.
                      if (self->wbuf_inflight_.capacity() > kKeepWriteCapacity)
                        std::vector<std::uint8_t>().swap(self->wbuf_inflight_);
                      if (ec) {
                        self->close("write failed: " + ec.message());
                        return;
                      }
                      self->flush();
                    });
}

void Connection::close(const std::string& why) {
  if (state_ == State::kClosed) return;
  bool was_up = state_ == State::kUp;
  state_ = State::kClosed;
  connected_.store(false, std::memory_order_relaxed);
  timer_.cancel();
  stream_->close();
  if (was_up) {
    spdlog::info("switch {:016x} disconnected: {}", dpid_, why);
    owner_.unregisterSwitch(this);
    handler_.onSwitchDown(*this);
  } else if (!refused_) {  // refusals are logged by the owner, rate-limited
    spdlog::info("switch connection from {} closed: {}", peer_, why);
  }
  for (auto& b : barriers_) b.second(false);
  barriers_.clear();
  for (auto& [xid, dump] : flow_dumps_) dump.done(false, {});
  flow_dumps_.clear();
}

}  // namespace cw::sw
