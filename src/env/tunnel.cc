#include "env/tunnel.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/file.h"
#include "env/ovpn_config.h"
#include "env/wg_config.h"

namespace cw {

namespace {

namespace fs = std::filesystem;

constexpr auto kMaxBackoff = std::chrono::seconds(30);
// A daemon that has run this long without dying is healthy again: the next restart is quick.
constexpr auto kStableAfter = std::chrono::seconds(60);
constexpr auto kStopGrace = std::chrono::seconds(3);
constexpr const char* kWgSocketDir = "/run/wireguard";

// The tunnel's server is looked up by cellwalld in the host's namespace, with the host's
// resolver, as any VPN client would: inside the gateway the kill switch lets only the
// tunnel's own packets out, and a name lookup is not one of them.
Expected<std::string> resolveHost(const std::string& host) {
  if (IpAddr::parse(host)) return host;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) return fail("cannot resolve the VPN server '" + host + "': " + ::gai_strerror(rc));
  char buf[NI_MAXHOST];
  rc = ::getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST);
  ::freeaddrinfo(res);
  if (rc != 0) return fail("cannot resolve the VPN server '" + host + "': " + ::gai_strerror(rc));
  return std::string(buf);
}

// "Endpoint = vpn.example.org:51820" -> "Endpoint = 198.51.100.7:51820".
Expected<std::string> resolveWgEndpoints(const std::string& setconf) {
  std::istringstream in(setconf);
  std::string out, line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    std::string key = line.substr(0, eq);
    key.erase(key.find_last_not_of(" \t") + 1);
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (eq != std::string::npos && key == "endpoint") {
      std::string value = line.substr(eq + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      value.erase(value.find_last_not_of(" \t\r") + 1);
      auto colon = value.rfind(':');
      if (colon != std::string::npos && value.front() != '[') {
        auto ip = resolveHost(value.substr(0, colon));
        if (!ip) return Unexpected(ip.error());
        line = "Endpoint = " + *ip + value.substr(colon);
      }
    }
    out.append(line).append("\n");
  }
  return out;
}

// The OpenVPN file with every `remote HOST ...` resolved (see resolveHost).
Expected<std::string> resolveOvpnRemotes(const std::string& text) {
  std::istringstream in(text);
  std::string out, line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string word, host;
    words >> word >> host;
    if ((word == "remote" || word == "--remote") && !host.empty()) {
      auto ip = resolveHost(host);
      if (!ip) return Unexpected(ip.error());
      std::string rest;
      std::getline(words, rest);
      line = "remote " + *ip + rest;
    }
    out.append(line).append("\n");
  }
  return out;
}

Expected<void> writePrivate(const fs::path& path, const std::string& text) {
  // Holds the private key: root only, before a byte of it is written.
  return writeFileAtomically(path, text, fs::perms::owner_read | fs::perms::owner_write);
}

}  // namespace

std::string Tunnel::ifnameFor(TunnelConfig::Kind kind, const std::string& env) {
  return (kind == TunnelConfig::Kind::kWireGuard ? "cw-w-" : "cw-o-") + env;
}

const char* Tunnel::daemonName(TunnelConfig::Kind kind) {
  return kind == TunnelConfig::Kind::kWireGuard ? "wireguard-go" : "openvpn";
}

const char* Tunnel::kindName(TunnelConfig::Kind kind) {
  return kind == TunnelConfig::Kind::kWireGuard ? "wireguard" : "openvpn";
}

void Tunnel::removeLeftovers(const std::string& env) {
  std::error_code ec;
  fs::remove(fs::path(kWgSocketDir) / (ifnameFor(TunnelConfig::Kind::kWireGuard, env) + ".sock"), ec);
}

Tunnel::Tunnel(TunnelConfig config, std::string env, std::string netns, fs::path dir, NetOps& net)
    : config_(std::move(config)),
      env_(std::move(env)),
      netns_(std::move(netns)),
      dir_(std::move(dir)),
      net_(net),
      ifname_(ifnameFor(config_.kind, env_)) {}

std::string Tunnel::logPath() const { return (dir_ / (std::string(kindName(config_.kind)) + ".log")).string(); }

Expected<std::unique_ptr<Tunnel>> Tunnel::load(const TunnelConfig& config, const std::string& env,
                                               const std::string& netns, fs::path dir, NetOps& net) {
  auto text = readTextFile(config.file);
  if (!text) return fail("environment " + env + ": " + text.error().message);
  std::unique_ptr<Tunnel> t(new Tunnel(config, env, netns, std::move(dir), net));
  if (config.kind == TunnelConfig::Kind::kWireGuard) {
    auto wg = env::parseWgConfig(*text, config.file.string());
    if (!wg) return Unexpected(wg.error());
    t->setconf_ = wg->setconf;
    t->addresses_ = wg->addresses;
    t->mtu_ = wg->mtu;
    t->dns_ = wg->dns;
    t->search_ = wg->search;
    return t;
  }
  if (config.up_helper.empty()) return fail("environment " + env + ": no helper program for OpenVPN's up script");
  auto ovpn = env::parseOpenVpnConfig(*text, config.file.string());
  if (!ovpn) return Unexpected(ovpn.error());
  return t;
}

Expected<void> Tunnel::start() {
  up_ = false;
  started_at_ = std::chrono::steady_clock::now();
  auto r = config_.kind == TunnelConfig::Kind::kWireGuard ? startWireGuard() : startOpenVpn();
  if (!r && pid_ != 0) {
    (void)net_.runner().terminate(pid_, kStopGrace);
    pid_ = 0;
  }
  return r;
}

Expected<void> Tunnel::adopt(pid_t pid) {
  const char* daemon = daemonName(config_.kind);
  if (pid == 0 || !net_.runner().alive(pid, daemon))
    return fail(std::string(daemon) + (pid != 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) +
                " is not running");
  if (config_.kind == TunnelConfig::Kind::kWireGuard) {
    auto links = net_.listLinks(netns_, ifname_);
    if (!links) return Unexpected(links.error());
    bool up = false;
    for (const auto& l : *links) up = up || (l.name == ifname_ && l.up);
    if (!up) return fail("its device " + ifname_ + " is gone or down");
    up_ = true;
  } else {
    // Up once openvpn's up helper wrote the record, as poll() sees it; the route through the
    // device is in place since then.
    std::error_code ec;
    auto t = fs::last_write_time(upRecord(), ec);
    if (!ec) {
      auto text = readTextFile(upRecord());
      auto pushed = env::parseOpenVpnUpRecord(text ? *text : "");
      dns_ = pushed.dns;
      search_ = pushed.domains;
      record_time_ = t;
      up_ = true;
    }
  }
  pid_ = pid;
  started_at_ = std::chrono::steady_clock::now();
  return {};
}

Expected<void> Tunnel::waitForProcess(const char* what) {
  // The child is "ip" until it execs the daemon, which exits at once on a bad option.
  bool seen = false;
  for (int i = 0; i < 200 && !seen; ++i) {
    seen = net_.runner().alive(pid_, daemonName(config_.kind));
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!seen) return fail(std::string(what) + " did not start; see " + logPath());
  return {};
}

Expected<void> Tunnel::startWireGuard() {
  removeLeftovers(env_);
  auto resolved = resolveWgEndpoints(setconf_);
  if (!resolved) return Unexpected(resolved.error());
  // The mark is part of the configuration, not set after it: wireguard-go sends its first
  // handshake as soon as it has a peer, and unmarked it would find no route (and wait 5 s to
  // try again). A FwMark of the file's is replaced: the carrier's routing depends on this one.
  std::string setconf;
  {
    std::istringstream in(*resolved);
    for (std::string line; std::getline(in, line);) {
      std::string key = line.substr(0, line.find('='));
      key.erase(key.find_last_not_of(" \t") + 1);
      std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (key == "fwmark") continue;
      setconf.append(line).append("\n");
      if (line == "[Interface]") setconf.append("FwMark = ").append(std::to_string(kCarrierMark)).append("\n");
    }
  }
  auto conf_path = dir_ / "wg-setconf.conf";
  if (auto r = writePrivate(conf_path, setconf); !r) return r;
  Command cmd;
  cmd.argv = {"ip", "netns", "exec", netns_, "wireguard-go", "-f", ifname_};
  auto pid = net_.runner().spawn(cmd, logPath());
  if (!pid) return fail("cannot start wireguard-go: " + pid.error().message);
  pid_ = *pid;
  if (auto r = waitForProcess("wireguard-go"); !r) return r;
  auto wg = [&](std::vector<std::string> args, const std::string& what) -> Expected<void> {
    Command c;
    c.argv = {"ip", "netns", "exec", netns_, "wg"};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    auto r = net_.runner().run(c);
    if (!r) return fail("cannot " + what + ": " + r.error().message);
    if (!r->ok()) return fail("cannot " + what + ": " + (r->err.empty() ? r->out : r->err));
    return {};
  };
  // Ready once `wg` reaches its control socket (made just after the device).
  bool ready = false;
  for (int i = 0; i < 200 && !ready; ++i) {
    ready = wg({"show", ifname_}, "").has_value();
    if (!ready && !net_.runner().alive(pid_, "wireguard-go")) break;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!ready) return fail("wireguard-go did not come up; see " + logPath());
  if (auto r = wg({"setconf", ifname_, conf_path.string()}, "configure " + ifname_ + " from " + config_.file.string());
      !r)
    return r;
  for (const auto& a : addresses_) {
    if (!a.addr.is_v4()) continue;  // environments are IPv4 (the pool, the gateway, the NAT)
    if (auto r = net_.addAddress(netns_, ifname_, a); !r) return r;
  }
  if (mtu_ != 0)
    if (auto r = net_.setMtu(netns_, ifname_, mtu_); !r) return r;
  if (auto r = net_.setLinkUp(netns_, ifname_); !r) return r;
  if (auto r = net_.addRoute(netns_, "default", std::nullopt, ifname_, false); !r) return r;
  up_ = true;
  return {};
}

Expected<void> Tunnel::startOpenVpn() {
  std::error_code ec;
  fs::remove(upRecord(), ec);
  record_time_ = {};
  auto text = readTextFile(config_.file);
  if (!text) return Unexpected(text.error());
  auto resolved = resolveOvpnRemotes(*text);
  if (!resolved) return Unexpected(resolved.error());
  // A copy with the servers' addresses; key files named in it stay relative to the
  // original's folder (--cd).
  auto conf_path = dir_ / "openvpn.conf";
  if (auto r = writePrivate(conf_path, *resolved); !r) return r;
  const auto helper = config_.up_helper.string();
  const auto record = upRecord().string();
  Command cmd;
  cmd.argv = {"ip", "netns", "exec", netns_, "openvpn",
              "--cd", fs::absolute(config_.file).parent_path().string(),
              // Defaults the file may change (it comes after): try again quickly when the
              // server is unreachable, so the environment is back soon after it is.
              "--connect-retry", "1", "5",
              "--config", conf_path.string(),
              "--dev", ifname_, "--dev-type", "tun",
              "--route-noexec", "--mark", std::to_string(kCarrierMark),
              "--script-security", "2",
              "--up", helper + " --openvpn-up " + record,
              "--down", helper + " --openvpn-down " + record,
              "--up-restart"};
  auto pid = net_.runner().spawn(cmd, logPath());
  if (!pid) return fail("cannot start openvpn: " + pid.error().message);
  pid_ = *pid;
  if (auto r = waitForProcess("openvpn"); !r) return r;
  // openvpn reads its whole configuration before anything else; a bad one ends it at once.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (!net_.runner().alive(pid_, "openvpn")) return fail("openvpn exited at start; see " + logPath());
  return {};
}

bool Tunnel::poll(std::chrono::steady_clock::time_point now) {
  const bool was_up = up_;
  const auto old_dns = dns_;
  if (pid_ != 0 && !net_.runner().alive(pid_, daemonName(config_.kind))) {
    pid_ = 0;
    up_ = false;
    // The device went with the process, and the default route with the device.
    if (now - started_at_ >= kStableAfter) backoff_ = std::chrono::seconds(0);
    next_start_ = now + backoff_;
    backoff_ = std::min(kMaxBackoff, backoff_ == std::chrono::seconds(0) ? std::chrono::seconds(1) : backoff_ * 2);
  }
  if (pid_ == 0 && now >= next_start_) {
    ++restarts_;
    if (auto r = start(); r) {
      last_error_.clear();
    } else {
      // After 1, 2, 4 ... 30 s.
      next_start_ = now + std::max(std::chrono::seconds(1), backoff_);
      backoff_ = std::min(kMaxBackoff, std::max(std::chrono::seconds(2), backoff_ * 2));
      last_error_ = r.error().message;
    }
  }
  if (pid_ != 0 && config_.kind == TunnelConfig::Kind::kOpenVpn) {
    std::error_code ec;
    auto t = fs::last_write_time(upRecord(), ec);
    if (ec) {
      up_ = false;  // never up yet, or down (the down helper removed the record)
      record_time_ = {};
    } else if (t != record_time_) {
      record_time_ = t;
      auto text = readTextFile(upRecord());
      auto pushed = env::parseOpenVpnUpRecord(text ? *text : "");
      dns_ = pushed.dns;
      search_ = pushed.domains;
      (void)net_.deleteRoute(netns_, "default");
      auto r = net_.addRoute(netns_, "default", std::nullopt, ifname_, false);
      up_ = r.has_value();
      if (!r) last_error_ = r.error().message;
    }
  }
  return up_ != was_up || dns_ != old_dns;
}

Expected<void> Tunnel::stop() {
  up_ = false;
  auto r = pid_ != 0 ? net_.runner().terminate(pid_, kStopGrace) : Expected<void>{};
  pid_ = 0;
  removeLeftovers(env_);
  return r;
}

}  // namespace cw
