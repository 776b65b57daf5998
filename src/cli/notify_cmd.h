// `cellwall notify`: a desktop notification for each question cellwalld asks (held
// connections, docs/prompts.md), through org.freedesktop.Notifications on the session bus;
// when the connection was attributed, it says which process asks (cli/process_text.h).
// It answers nothing itself: the notification says where to (the web UI, `cellwall prompt`),
// and is withdrawn when the question is answered or times out.
//
// No session bus, or no notification service on it, is not an error: it says so and exits 0.
// Run with sudo from a desktop session, it opens the control socket as root and then becomes
// the invoking user (SUDO_UID) for good before it touches that user's session bus.
#pragma once

#include <string>

#include "api/commands.h"
#include "cli/client.h"

namespace cw::cli {

int notify(Client& c);

struct NotificationText {
  std::string summary, body;  // body: the spec's markup subset, so names are escaped
};
NotificationText notificationText(const api::PromptInfo& p);

}  // namespace cw::cli
