// `cellwall prompt` and `cellwall answer`: the terminal side of held connections
// (docs/prompts.md). Both talk to cellwalld over its control socket like the other commands.
#pragma once

#include <cstddef>
#include <string>

#include "api/commands.h"
#include "cli/client.h"

namespace cw::cli {

// The open questions: once, or (follow) as they come. JSON: one PromptInfo per line.
int promptList(Client& c, bool json, bool follow);
// Asks about each question in turn on the terminal and sends the answers, until end of input.
int promptInteractive(Client& c);
int answer(Client& c, const api::PromptAnswer& a, bool json);

// A question as the terminal shows it: one line, and when the connection was attributed a
// second, indented one saying which process asks (cli/process_text.h; the command line cut
// at kPromptCommandMax bytes).
constexpr std::size_t kPromptCommandMax = 400;
std::string questionText(const api::PromptInfo& p);

// One line typed at the interactive prompt ("A host", "5 any", "d") as an answer to `id`;
// false for "s" (skip) or a line that is not an answer (`why` says which).
bool parseAnswerLine(const std::string& line, std::uint64_t id, api::PromptAnswer& out, std::string& why);

}  // namespace cw::cli
