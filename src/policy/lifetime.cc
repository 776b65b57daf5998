// Lifetimes: durations ("1h30m"), RFC 3339 timestamps and resolveLifetime. Calendar math is
// proleptic Gregorian in UTC (days_from_civil / civil_from_days, H. Hinnant), no time zone
// database and no clock: callers pass "now".

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>

#include "policy/policy.h"

namespace cw::policy {

namespace {

constexpr std::int64_t kSecondMs = 1000;
constexpr std::int64_t kMinuteMs = 60 * kSecondMs;
constexpr std::int64_t kHourMs = 60 * kMinuteMs;
constexpr std::int64_t kDayMs = 24 * kHourMs;

using Unexp = Unexpected<std::string>;

std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month, day;
};

Civil civilFromDays(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return Civil{static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

unsigned daysInMonth(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// Reads exactly n decimal digits at text[pos...]; advances pos.
bool digits(std::string_view text, std::size_t& pos, std::size_t n, unsigned& out) {
  if (pos + n > text.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<unsigned>(c - '0');
  }
  pos += n;
  return true;
}

// "text" for messages, cut to a readable length. Built by appending: g++ 12 reports a bogus
// -Wrestrict for "\"" + std::string(...).
std::string quoted(std::string_view text) {
  std::string q(1, '"');
  q.append(text.substr(0, 40));
  if (text.size() > 40) q += "...";
  q += '"';
  return q;
}

bool expect(std::string_view text, std::size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

}  // namespace

Result<std::int64_t, std::string> parseDuration(std::string_view text) {
  const std::string how =
      "; write an integer and a unit, units d, h, m and s largest first (\"15m\", "
      "\"1h30m\", \"2d\")";
  const std::string shape = " is not a duration" + how;
  auto q = [&] { return quoted(text); };
  if (text.empty()) return Unexp("\"\"" + shape);
  std::int64_t total = 0;
  int last_rank = 4;  // d = 3, h = 2, m = 1, s = 0; each unit must rank below the previous
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start) return Unexp(q() + shape);
    if (pos - start > 12) return Unexp(q() + " is too long; the longest is 3650d");
    std::int64_t n = 0;
    std::from_chars(text.data() + start, text.data() + pos, n);
    if (pos == text.size()) return Unexp(q() + " ends without a unit" + how);
    int rank = -1;
    std::int64_t unit = 0;
    switch (text[pos]) {
      case 'd': rank = 3; unit = kDayMs; break;
      case 'h': rank = 2; unit = kHourMs; break;
      case 'm': rank = 1; unit = kMinuteMs; break;
      case 's': rank = 0; unit = kSecondMs; break;
      default: return Unexp(q() + shape);
    }
    if (rank >= last_rank) return Unexp(q() + " repeats a unit or has them out of order" + how);
    last_rank = rank;
    ++pos;
    total += n * unit;  // n < 10^12 and unit <= 8.64e7: no overflow per term
    if (total > kMaxForMs) return Unexp(q() + " is too long; the longest is 3650d");
  }
  if (total <= 0) return Unexp(q() + " is zero; a lifetime must be positive");
  return total;
}

std::string formatDuration(std::int64_t ms) {
  if (ms <= 0) return "0s";
  std::int64_t s = ms / kSecondMs + (ms % kSecondMs != 0 ? 1 : 0);
  std::string out;
  auto part = [&](std::int64_t unit_s, char unit) {
    if (s >= unit_s) {
      out += std::to_string(s / unit_s);
      out += unit;
      s %= unit_s;
    }
  };
  part(86400, 'd');
  part(3600, 'h');
  part(60, 'm');
  part(1, 's');
  return out;
}

Result<std::int64_t, std::string> parseTimestamp(std::string_view text) {
  auto bad = [&] {
    return Unexp(quoted(text) +
                 " is not an RFC 3339 date and time; write e.g. \"2026-12-01T10:00:00Z\" or "
                 "\"2026-12-01T12:00:00+02:00\"");
  };
  std::size_t pos = 0;
  unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(text, pos, 4, year) || !expect(text, pos, '-') || !digits(text, pos, 2, month) ||
      !expect(text, pos, '-') || !digits(text, pos, 2, day))
    return bad();
  if (pos == text.size())
    return Unexp(quoted(text) + " has no time of day; write e.g. " +
                 quoted(std::string(text) + "T00:00:00Z"));
  if (text[pos] != 'T' && text[pos] != 't' && text[pos] != ' ') return bad();
  ++pos;
  if (!digits(text, pos, 2, hour) || !expect(text, pos, ':') || !digits(text, pos, 2, minute) ||
      !expect(text, pos, ':') || !digits(text, pos, 2, second))
    return bad();
  std::int64_t ms = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    std::int64_t scale = 100;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      ms += static_cast<std::int64_t>(text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return bad();
  }
  std::int64_t offset_min = 0;
  if (pos == text.size())
    return Unexp(quoted(text) +
                 " has no time zone; add Z for UTC or an offset such as +02:00");
  if (text[pos] == 'Z' || text[pos] == 'z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    bool neg = text[pos] == '-';
    ++pos;
    unsigned oh = 0, om = 0;
    if (!digits(text, pos, 2, oh) || !expect(text, pos, ':') || !digits(text, pos, 2, om))
      return bad();
    if (oh > 23 || om > 59) return bad();
    offset_min = (neg ? -1 : 1) * static_cast<std::int64_t>(oh * 60 + om);
  } else {
    return bad();
  }
  if (pos != text.size()) return bad();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 60)
    return bad();
  if (year < 1970)
    return Unexp(quoted(text) + " is before 1970; write a date from 1970 on");
  std::int64_t t = daysFromCivil(year, month, day) * kDayMs + hour * kHourMs +
                   minute * kMinuteMs + second * kSecondMs + ms - offset_min * kMinuteMs;
  if (t <= 0) return Unexp(quoted(text) + " is not after 1970-01-01T00:00:00Z");
  return t;
}

std::string formatTimestamp(std::int64_t unix_ms) {
  std::int64_t days = unix_ms >= 0 ? unix_ms / kDayMs : -((-unix_ms + kDayMs - 1) / kDayMs);
  std::int64_t rest = unix_ms - days * kDayMs;
  Civil c = civilFromDays(days);
  char buf[64];
  auto h = static_cast<int>(rest / kHourMs);
  auto m = static_cast<int>(rest / kMinuteMs % 60);
  auto s = static_cast<int>(rest / kSecondMs % 60);
  auto frac = static_cast<int>(rest % kSecondMs);
  if (frac == 0) {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02dZ",
                  static_cast<long long>(c.year), c.month, c.day, h, m, s);
  } else {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ",
                  static_cast<long long>(c.year), c.month, c.day, h, m, s, frac);
  }
  return buf;
}

std::optional<std::string> connectionsProblem(std::int64_t n) {
  if (n >= 1 && n <= kMaxConnections) return std::nullopt;
  std::string why = "connections = " + std::to_string(n) + " is out of range; write 1-" +
                    std::to_string(kMaxConnections);
  return why + (n == 0 ? " (a rule for 0 connections would decide none; leave the count out for no limit)"
                       : " (leave the count out for no limit)");
}

void resolveLifetime(Rule& rule, std::int64_t now_ms) {
  Lifetime& l = rule.lifetime;
  if (l.for_ms <= 0) {
    l.for_ms = 0;
    return;
  }
  std::int64_t end = now_ms > std::numeric_limits<std::int64_t>::max() - l.for_ms
                         ? std::numeric_limits<std::int64_t>::max()
                         : now_ms + l.for_ms;
  l.until_ms = l.until_ms == 0 ? end : std::min(l.until_ms, end);
  l.for_ms = 0;
}

void resolveLifetimes(std::vector<Rule>& rules, std::int64_t now_ms) {
  for (Rule& r : rules) resolveLifetime(r, now_ms);
}

}  // namespace cw::policy
