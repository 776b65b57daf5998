#include "cli/prompt_cmd.h"

#include <cstdio>
#include <set>
#include <sstream>
#include <string>

#include "cli/process_text.h"

namespace cw::cli {

namespace {

// How long one wait for news lasts; the daemon answers sooner when a question opens or closes.
constexpr std::uint32_t kWaitMs = 30000;

std::string destination(const api::PromptInfo& p) {
  std::string d = p.proto;
  d.append(" ").append(p.remote_ip);
  if (p.remote_port != 0) d.append(":").append(std::to_string(p.remote_port));
  if (!p.names.empty()) d.append(" (").append(p.names).append(")");
  return d;
}

void printQuestion(const api::PromptInfo& p) { std::fputs(questionText(p).c_str(), stdout); }

}  // namespace

std::string questionText(const api::PromptInfo& p) {
  // Appended piecewise: g++ 12 at -O3 reports a false -Wrestrict on "#" + std::to_string(...).
  std::string out(1, '#');
  out.append(std::to_string(p.id))
      .append(" ")
      .append(p.app)
      .append(" (cell ")
      .append(std::to_string(p.cell))
      .append(") wants ")
      .append(destination(p))
      .append("; ")
      .append(std::to_string(p.connections))
      .append(" connection(s) held; in ")
      .append(std::to_string(p.timeout_in_ms / 1000))
      .append(" s: ")
      .append(p.timeout_action)
      .append("\n");
  const std::string process = processText(p.process, kPromptCommandMax);
  if (!process.empty()) out.append(p.process.pid != 0 ? "  asked by " : "  process: ").append(process).append("\n");
  return out;
}

bool parseAnswerLine(const std::string& line, std::uint64_t id, api::PromptAnswer& out, std::string& why) {
  std::istringstream in(line);
  std::string key, word;
  in >> key;
  out = api::PromptAnswer{};
  out.id = id;
  if (key == "a") {
    out.action = "allow";
  } else if (key == "A") {
    out.action = "allow";
    out.lifetime = "forever";
  } else if (key == "5") {
    out.action = "allow";
    out.lifetime = "5m";
  } else if (key == "h") {
    out.action = "allow";
    out.lifetime = "1h";
  } else if (key == "x") {
    out.action = "allow";
    out.lifetime = "exit";
  } else if (key == "d") {
    out.action = "deny";
  } else if (key == "D") {
    out.action = "deny";
    out.lifetime = "forever";
  } else if (key == "r") {
    out.action = "reject";
    out.lifetime = "forever";
  } else if (key == "s") {
    why = "skipped";
    return false;
  } else {
    why = std::string("not an answer: '").append(key).append("'");
    return false;
  }
  while (in >> word) {
    if (word == "host" || word == "domain" || word == "ip") {
      out.scope = word;
    } else if (word == "any") {
      out.any_port = true;
    } else {
      why = std::string("not an answer: '").append(word).append("' (host, domain, ip or any)");
      return false;
    }
  }
  return true;
}

int promptList(Client& c, bool json, bool follow) {
  std::uint64_t version = 0;
  std::set<std::uint64_t> shown;
  for (;;) {
    auto r = c.callOk(api::PromptList{version, follow && version != 0 ? kWaitMs : 0});
    if (!r) return die(r.error().message);
    version = r->version;
    for (const auto& p : r->prompts) {
      if (!shown.insert(p.id).second) continue;
      if (json)
        std::printf("%s\n", api::promptInfoJsonText(p).c_str());
      else
        printQuestion(p);
    }
    std::fflush(stdout);
    if (!follow) return 0;
  }
}

int promptInteractive(Client& c) {
  std::uint64_t version = 0;
  std::set<std::uint64_t> done;
  std::printf("cellwall: waiting for questions (end of input to quit)\n");
  std::fflush(stdout);
  for (;;) {
    auto r = c.callOk(api::PromptList{version, version != 0 ? kWaitMs : 0});
    if (!r) return die(r.error().message);
    version = r->version;
    for (const auto& p : r->prompts) {
      if (done.count(p.id) != 0) continue;
      printQuestion(p);
      std::printf(
          "  a allow once   A allow always   5 allow 5 min   h allow 1 hour   x allow until the app exits\n"
          "  d deny once    D deny always    r reject always s skip\n"
          "  then \"host\" or \"domain\" for the name instead of the address, \"any\" for any port\n"
          "answer #%llu> ",
          static_cast<unsigned long long>(p.id));
      std::fflush(stdout);
      char buf[256];
      if (std::fgets(buf, sizeof buf, stdin) == nullptr) return 0;
      std::string line(buf);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      api::PromptAnswer a;
      std::string why;
      done.insert(p.id);
      if (!parseAnswerLine(line, p.id, a, why)) {
        std::printf("#%llu: %s\n", static_cast<unsigned long long>(p.id), why.c_str());
        continue;
      }
      auto ar = c.callOk(a);
      if (!ar) {
        std::printf("#%llu: %s\n", static_cast<unsigned long long>(p.id), ar.error().message.c_str());
      } else if (!ar->rules.empty()) {
        std::printf("#%llu: rule %u added: %s\n", static_cast<unsigned long long>(p.id), ar->rules[0].id,
                    ar->rules[0].text.c_str());
      } else {
        std::printf("#%llu: %s once\n", static_cast<unsigned long long>(p.id), a.action.c_str());
      }
      std::fflush(stdout);
    }
  }
}

int answer(Client& c, const api::PromptAnswer& a, bool json) {
  auto r = c.callOk(a);
  if (!r) return die(r.error().message);
  if (json) {
    if (!r->rules.empty())
      std::printf("%s\n", api::ruleInfoJsonText(r->rules[0]).c_str());
    else
      std::printf("{\"id\":%llu,\"answered\":\"%s once\"}\n", static_cast<unsigned long long>(a.id),
                  a.action.c_str());
  } else if (!r->rules.empty()) {
    std::printf("rule %u added:\n%s", r->rules[0].id, r->rules[0].text.c_str());
  } else {
    std::printf("#%llu: %s once\n", static_cast<unsigned long long>(a.id), a.action.c_str());
  }
  return 0;
}

}  // namespace cw::cli
