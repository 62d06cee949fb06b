// Chat templates: renders a model's own Jinja chat template (the
// "chat_template" of tokenizer_config.json or the GGUF key
// tokenizer.chat_template) the way Hugging Face transformers does — Jinja2
// with trim_blocks and lstrip_blocks, `tojson` without HTML escaping,
// raise_exception() and strftime_now() — byte for byte on the templates of
// Qwen2.5/Qwen3, Llama 3, Gemma 3, Mistral and SmolLM2.
//
// A ChatTemplate is immutable after Parse; Render is const and thread-safe.
// Rendering is bounded (RenderLimits): a hostile template fails with
// ResourceExhausted instead of running away.
//
//   DSPARK_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Parse(source));
//   DSPARK_ASSIGN_OR_RETURN(std::string prompt, t.Render({
//       {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
//       {"add_generation_prompt", true}, {"bos_token", "<s>"}}));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace dspark::tokenizer {

namespace jinja {
struct Stmt;
}

struct RenderLimits {
  // Largest output, and largest string or container built on the way.
  // Default 1 MiB.
  size_t max_output_bytes = size_t{1} << 20;
  // Work allowance: expressions evaluated + loop iterations + elements
  // created, with strings charged by length. Default 1,000,000.
  int64_t max_steps = 1'000'000;
  // Deepest macro call nesting. Default 64.
  int max_recursion_depth = 64;
  // The time strftime_now() formats (in the local time zone); InfinitePast
  // means the time of the call. Default InfinitePast.
  absl::Time now = absl::InfinitePast();
};

class ChatTemplate {
 public:
  // Syntax errors, unknown tags, filters and tests: InvalidArgument
  // "chat template: line L:C: <what>".
  static absl::StatusOr<ChatTemplate> Parse(std::string_view source);

  // Renders with the keys of `context` (a JSON object; objects keep their
  // key order, as Python dicts do) as template variables, typically messages,
  // add_generation_prompt, bos_token, eos_token and tools. Template errors
  // (undefined variables used, type errors, raise_exception) are
  // InvalidArgument with the template line; exceeded limits are
  // ResourceExhausted.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context,
                                     const RenderLimits& limits = {}) const;

  const std::string& source() const { return source_; }

 private:
  ChatTemplate() = default;

  std::string source_;
  // Parsed template body; shared and read-only.
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body_;
};

// Parses `tmpl` and renders it as transformers' apply_chat_template does:
// variables messages, add_generation_prompt, bos_token, eos_token, tools
// (None when null) and documents (None).
absl::StatusOr<std::string> ApplyChatTemplate(std::string_view tmpl,
                                              const nlohmann::ordered_json& messages,
                                              bool add_generation_prompt,
                                              const std::string& bos_token,
                                              const std::string& eos_token,
                                              const nlohmann::ordered_json& tools = nullptr);

}  // namespace dspark::tokenizer
