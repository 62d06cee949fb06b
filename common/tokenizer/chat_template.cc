#include "common/tokenizer/chat_template.h"

#include <utility>

#include "common/base/status_macros.h"
#include "common/tokenizer/internal/jinja_ast.h"
#include "common/tokenizer/internal/jinja_eval.h"
#include "common/tokenizer/internal/jinja_parser.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer {
namespace {

absl::Status Prefixed(const absl::Status& s) {
  return absl::Status(s.code(), jinja::Cat("chat template: ", s.message()));
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view source) {
  absl::StatusOr<jinja::Body> body = jinja::ParseTemplate(source);
  if (!body.ok()) return Prefixed(body.status());
  ChatTemplate t;
  t.source_ = std::string(source);
  t.body_ = std::make_shared<const jinja::Body>(*std::move(body));
  return t;
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context,
                                                 const RenderLimits& limits) const {
  jinja::EvalLimits eval_limits;
  eval_limits.max_output_bytes = limits.max_output_bytes;
  eval_limits.max_steps = limits.max_steps;
  eval_limits.max_recursion_depth = limits.max_recursion_depth;
  const absl::Time now = limits.now == absl::InfinitePast() ? absl::Now() : limits.now;
  jinja::Evaluator evaluator(eval_limits, now);
  absl::StatusOr<std::string> out = evaluator.Render(*body_, context);
  if (!out.ok()) return Prefixed(out.status());
  return out;
}

absl::StatusOr<std::string> ApplyChatTemplate(std::string_view tmpl,
                                              const nlohmann::ordered_json& messages,
                                              bool add_generation_prompt,
                                              const std::string& bos_token,
                                              const std::string& eos_token,
                                              const nlohmann::ordered_json& tools) {
  DSPARK_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Parse(tmpl));
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = messages;
  context["tools"] = tools;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  context["bos_token"] = bos_token;
  context["eos_token"] = eos_token;
  return t.Render(context);
}

}  // namespace dspark::tokenizer
