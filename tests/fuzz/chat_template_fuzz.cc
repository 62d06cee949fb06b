// libFuzzer target for the chat template interpreter: any template source
// (and optionally a JSON context after a NUL byte) must parse or fail with a
// status, and rendering must stay within its limits — no crash, hang or
// unbounded memory.
//
//   bin/chat_template_fuzz -max_total_time=60 <build>/tests/fuzz/corpus/chat_template
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/tokenizer/chat_template.h"
#include "nlohmann/json.hpp"

namespace {

const nlohmann::ordered_json& DefaultContext() {
  static const auto* const kContext = new nlohmann::ordered_json(nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi <b>there</b> \u00e9"},
      {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHello",
       "tool_calls": [{"type": "function",
                       "function": {"name": "f", "arguments": {"x": 1, "y": [true, null]}}}]},
      {"role": "tool", "content": "42"}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"
  })"));
  return *kContext;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  nlohmann::ordered_json context = DefaultContext();
  if (const size_t nul = input.find('\0'); nul != std::string_view::npos) {
    nlohmann::ordered_json parsed =
        nlohmann::ordered_json::parse(input.substr(nul + 1), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) context = std::move(parsed);
    input = input.substr(0, nul);
  }
  auto tmpl = dspark::tokenizer::ChatTemplate::Parse(input);
  if (!tmpl.ok()) return 0;
  dspark::tokenizer::RenderLimits limits;
  limits.max_steps = 200'000;
  limits.max_output_bytes = 64 << 10;
  limits.now = absl::FromUnixSeconds(1718452800);
  (void)tmpl->Render(context, limits);
  return 0;
}
