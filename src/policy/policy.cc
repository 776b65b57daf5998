#include "policy/policy.h"

namespace cw::policy {

const char* actionName(Action a) {
  switch (a) {
    case Action::kAllow: return "allow";
    case Action::kDeny: return "deny";
    case Action::kReject: return "reject";
  }
  return "?";
}

const char* defaultActionName(DefaultAction a) {
  switch (a) {
    case DefaultAction::kAllow: return "allow";
    case DefaultAction::kDeny: return "deny";
    case DefaultAction::kReject: return "reject";
    case DefaultAction::kPrompt: return "prompt";
  }
  return "?";
}

const char* protocolName(Protocol p) {
  switch (p) {
    case Protocol::kAny: return "any";
    case Protocol::kTcp: return "tcp";
    case Protocol::kUdp: return "udp";
    case Protocol::kIcmp: return "icmp";
  }
  return "?";
}

const char* directionName(Direction d) {
  switch (d) {
    case Direction::kOutbound: return "outbound";
    case Direction::kInbound: return "inbound";
  }
  return "?";
}

std::string PolicyError::str() const {
  std::string s = file;
  if (line != 0) {
    s += ':' + std::to_string(line);
    if (column != 0) s += ':' + std::to_string(column);
  }
  s += ": ";
  s += reason;
  return s;
}

}  // namespace cw::policy
