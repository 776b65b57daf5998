#include "cli/notify_cmd.h"

#include <grp.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include "cli/process_text.h"

namespace cw::cli {

namespace {

constexpr const char* kService = "org.freedesktop.Notifications";
constexpr const char* kPath = "/org/freedesktop/Notifications";
// A notification is a few lines on a small card: the command line is cut sooner than on a terminal.
constexpr std::size_t kNotifyCommandMax = 160;

std::string escapeMarkup(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '&') out += "&amp;";
    else if (ch == '<') out += "&lt;";
    else if (ch == '>') out += "&gt;";
    else out.push_back(ch);
  }
  return out;
}

struct BusDeleter {
  void operator()(sd_bus* b) const { sd_bus_flush_close_unref(b); }
};
using Bus = std::unique_ptr<sd_bus, BusDeleter>;

// sudo: the session bus is the invoking user's, and only that user may connect to it.
bool becomeSudoUser() {
  const char* uid_s = std::getenv("SUDO_UID");
  const char* gid_s = std::getenv("SUDO_GID");
  if (::geteuid() != 0 || uid_s == nullptr || gid_s == nullptr) return true;
  const auto uid = static_cast<uid_t>(std::strtoul(uid_s, nullptr, 10));
  const auto gid = static_cast<gid_t>(std::strtoul(gid_s, nullptr, 10));
  if (uid == 0) return true;
  if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0) {
    std::fprintf(stderr, "cellwall: cannot become user %u: %s\n", uid, std::strerror(errno));
    return false;
  }
  const std::string runtime = "/run/user/" + std::to_string(uid);
  if (std::getenv("DBUS_SESSION_BUS_ADDRESS") == nullptr && ::access(runtime.c_str(), X_OK) == 0)
    ::setenv("XDG_RUNTIME_DIR", runtime.c_str(), 1);
  return true;
}

// The notification's id, or 0 when the service refused.
std::uint32_t show(sd_bus* bus, const api::PromptInfo& p) {
  const NotificationText t = notificationText(p);
  sd_bus_message* m = nullptr;
  sd_bus_message* reply = nullptr;
  sd_bus_error err = SD_BUS_ERROR_NULL;
  std::uint32_t id = 0;
  const auto timeout = static_cast<std::int32_t>(std::min<std::int64_t>(p.timeout_in_ms, INT32_MAX));
  int r = sd_bus_message_new_method_call(bus, &m, kService, kPath, kService, "Notify");
  if (r >= 0) r = sd_bus_message_append(m, "susss", "cellwall", 0u, "dialog-question", t.summary.c_str(), t.body.c_str());
  if (r >= 0) r = sd_bus_message_append(m, "as", 0);
  // urgency 2 (critical): a connection waits for the user; "category" per the spec.
  if (r >= 0) r = sd_bus_message_append(m, "a{sv}", 2, "urgency", "y", std::uint8_t{2}, "category", "s", "network");
  if (r >= 0) r = sd_bus_message_append(m, "i", timeout);
  if (r >= 0) r = sd_bus_call(bus, m, 5'000'000, &err, &reply);
  if (r >= 0) r = sd_bus_message_read(reply, "u", &id);
  if (r < 0)
    std::fprintf(stderr, "cellwall: notification for question #%llu: %s\n", static_cast<unsigned long long>(p.id),
                 err.message != nullptr ? err.message : std::strerror(-r));
  sd_bus_error_free(&err);
  sd_bus_message_unref(reply);
  sd_bus_message_unref(m);
  return r < 0 ? 0 : id;
}

void withdraw(sd_bus* bus, std::uint32_t id) {
  sd_bus_error err = SD_BUS_ERROR_NULL;
  (void)sd_bus_call_method(bus, kService, kPath, kService, "CloseNotification", &err, nullptr, "u", id);
  sd_bus_error_free(&err);
}

}  // namespace

NotificationText notificationText(const api::PromptInfo& p) {
  NotificationText t;
  // The summary is plain text (no markup); a process's name is what the user recognises first.
  const std::string who = processName(p.process);
  t.summary = who.empty() ? p.app : std::string(who).append(" in ").append(p.app);
  t.summary.append(" wants to connect");
  std::string where = p.remote_ip;
  if (!p.names.empty()) where = std::string(p.names).append(" (").append(p.remote_ip).append(")");
  if (p.remote_port != 0) where.append(" port ").append(std::to_string(p.remote_port));
  t.body = escapeMarkup(std::string(p.proto).append(" ").append(where));
  if (const std::string process = processText(p.process, kNotifyCommandMax); !process.empty())
    t.body.append(p.process.pid != 0 ? "\n" : "\nprocess: ").append(escapeMarkup(process));
  if (p.connections > 1) t.body.append("\n").append(std::to_string(p.connections)).append(" connections wait");
  t.body.append("\nAnswer in the web UI (cellwall ui) or with cellwall prompt; unanswered: ")
      .append(escapeMarkup(p.timeout_action))
      .append(" in ")
      .append(std::to_string((p.timeout_in_ms + 999) / 1000))
      .append(" s");
  return t;
}

int notify(Client& c) {
  if (!becomeSudoUser()) return 1;
  sd_bus* raw = nullptr;
  if (int r = sd_bus_open_user(&raw); r < 0) {
    std::printf("no session bus (%s): desktop notifications are off; `cellwall prompt` asks in a terminal\n",
                std::strerror(-r));
    return 0;
  }
  Bus bus(raw);
  {
    sd_bus_error err = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    int has = 0;
    int r = sd_bus_call_method(bus.get(), "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", &err, &reply, "s", kService);
    if (r >= 0) r = sd_bus_message_read(reply, "b", &has);
    sd_bus_message_unref(reply);
    sd_bus_error_free(&err);
    if (r < 0 || has == 0) {
      std::printf("no notification service on the session bus: desktop notifications are off\n");
      return 0;
    }
  }
  std::printf("notifying of cellwall's questions (Ctrl-C to stop)\n");
  std::fflush(stdout);
  std::map<std::uint64_t, std::uint32_t> shown;  // question -> notification
  std::uint64_t version = 0;
  for (;;) {
    auto reply = c.callOk(api::PromptList{version, 30000});
    if (!reply) return die(reply.error().message);
    version = reply->version;
    std::map<std::uint64_t, std::uint32_t> now;
    for (const auto& p : reply->prompts) {
      auto it = shown.find(p.id);
      now[p.id] = it != shown.end() ? it->second : show(bus.get(), p);
    }
    for (const auto& [qid, nid] : shown)
      if (now.count(qid) == 0 && nid != 0) withdraw(bus.get(), nid);  // answered or timed out
    shown = std::move(now);
  }
}

}  // namespace cw::cli
