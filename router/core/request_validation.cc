#include "router/core/request_validation.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/unicode.h"

namespace dspark::router {
namespace {

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

absl::Status CheckUtf8(const std::string& text, const std::string& field) {
  size_t at = 0;
  if (!tokenizer::IsValidUtf8(text, &at)) {
    return Invalid(absl::StrCat(field, " is not valid UTF-8 (byte ", at, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckIds(const std::vector<int32_t>& ids, int32_t vocab, const std::string& field) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      return Invalid(absl::StrCat(field, "[", i, "] = ", ids[i], " is outside the vocabulary [0, ",
                                  vocab, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSampling(const GenerationRequest& r) {
  if (!(r.temperature >= 0.0f) || !std::isfinite(r.temperature)) {
    return Invalid(absl::StrCat("temperature must be >= 0 (got ", r.temperature, ")"));
  }
  if (!(r.top_p > 0.0f && r.top_p <= 1.0f)) {
    return Invalid(absl::StrCat("top_p must be in (0, 1] (got ", r.top_p, ")"));
  }
  if (r.top_k < 0) return Invalid(absl::StrCat("top_k must be >= 0 (got ", r.top_k, ")"));
  if (!(r.min_p >= 0.0f && r.min_p < 1.0f)) {
    return Invalid(absl::StrCat("min_p must be in [0, 1) (got ", r.min_p, ")"));
  }
  if (r.max_block < 0)
    return Invalid(absl::StrCat("max_block must be >= 0 (got ", r.max_block, ")"));
  if (!(r.min_confidence >= 0.0f && r.min_confidence <= 1.0f)) {
    return Invalid(absl::StrCat("min_confidence must be in [0, 1] (got ", r.min_confidence, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckStops(const GenerationRequest& r, const ServedModel& model,
                        const ValidationLimits& limits) {
  if (static_cast<int>(r.stop.size()) > limits.max_stop_strings) {
    return Invalid(absl::StrCat("too many stop strings: ", r.stop.size(), " (at most ",
                                limits.max_stop_strings, ")"));
  }
  for (size_t i = 0; i < r.stop.size(); ++i) {
    const std::string field = absl::StrCat("stop[", i, "]");
    if (r.stop[i].empty()) return Invalid(field + " is empty");
    if (static_cast<int>(r.stop[i].size()) > limits.max_stop_bytes) {
      return Invalid(absl::StrCat(field, " is ", r.stop[i].size(), " bytes (at most ",
                                  limits.max_stop_bytes, ")"));
    }
    DSPARK_RETURN_IF_ERROR(CheckUtf8(r.stop[i], field));
  }
  if (static_cast<int>(r.stop_token_ids.size()) > limits.max_stop_token_ids) {
    return Invalid(absl::StrCat("too many stop_token_ids: ", r.stop_token_ids.size(), " (at most ",
                                limits.max_stop_token_ids, ")"));
  }
  return CheckIds(r.stop_token_ids, model.vocab_size(), "stop_token_ids");
}

}  // namespace

absl::Status CheckModelId(const std::string& model_id, const ServedModel& model) {
  if (model_id.empty() || model_id == model.id()) return absl::OkStatus();
  return absl::NotFoundError(
      absl::StrCat("model '", model_id, "' is not served here (served: ", model.id(), ")"));
}

absl::StatusOr<std::vector<int32_t>> TokenizeInput(
    const std::variant<std::string, std::vector<int32_t>, std::vector<ChatTurn>>& input,
    const ServedModel& model) {
  if (const auto* text = std::get_if<std::string>(&input)) {
    if (text->empty()) return Invalid("prompt is empty");
    DSPARK_RETURN_IF_ERROR(CheckUtf8(*text, "prompt"));
    return model.EncodeText(*text);
  }
  if (const auto* ids = std::get_if<std::vector<int32_t>>(&input)) {
    if (ids->empty()) return Invalid("token_ids is empty");
    DSPARK_RETURN_IF_ERROR(CheckIds(*ids, model.vocab_size(), "token_ids"));
    return *ids;
  }
  const auto& chat = std::get<std::vector<ChatTurn>>(input);
  if (chat.empty()) return Invalid("chat has no messages");
  for (size_t i = 0; i < chat.size(); ++i) {
    const std::string field = absl::StrCat("messages[", i, "]");
    const std::string& role = chat[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      return Invalid(
          absl::StrCat(field, ".role '", role, "' is not one of system, user, assistant"));
    }
    DSPARK_RETURN_IF_ERROR(CheckUtf8(chat[i].content, field + ".content"));
  }
  absl::StatusOr<std::vector<int32_t>> ids = model.EncodeChat(chat);
  // A template that rejects the conversation (raise_exception) is the
  // client's input, not a server fault.
  if (!ids.ok() && ids.status().code() != absl::StatusCode::kInvalidArgument) {
    return Invalid(std::string(ids.status().message()));
  }
  return ids;
}

absl::StatusOr<ValidatedRequest> ValidateRequest(const GenerationRequest& r,
                                                 const ServedModel& model,
                                                 const ValidationLimits& limits,
                                                 uint64_t random_seed) {
  DSPARK_RETURN_IF_ERROR(CheckModelId(r.model, model));
  DSPARK_RETURN_IF_ERROR(CheckSampling(r));
  if (r.max_tokens < 0)
    return Invalid(absl::StrCat("max_tokens must be >= 1 (got ", r.max_tokens, ")"));
  if (r.max_tokens > limits.max_tokens_limit) {
    return Invalid(
        absl::StrCat("max_tokens ", r.max_tokens, " is above the limit ", limits.max_tokens_limit));
  }
  DSPARK_RETURN_IF_ERROR(CheckStops(r, model, limits));
  if (r.deadline <= absl::Now()) return absl::DeadlineExceededError("deadline already passed");
  DSPARK_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, TokenizeInput(r.input, model));
  if (prompt.empty()) return Invalid("prompt tokenizes to no tokens");
  const int context = model.context_length();
  if (static_cast<int>(prompt.size()) >= context) {
    return Invalid(absl::StrCat("prompt is ", prompt.size(), " tokens; the model's context is ",
                                context, " (prompt + at least one generated token)"));
  }
  int max_tokens = r.max_tokens > 0 ? r.max_tokens
                                    : std::min(limits.default_max_tokens, limits.max_tokens_limit);
  // The context bounds the completion: it ends with finish reason length.
  max_tokens = std::min(max_tokens, context - static_cast<int>(prompt.size()));

  ValidatedRequest v;
  v.deadline = r.deadline;
  auto& s = v.session;
  s.mutable_prompt()->Assign(prompt.begin(), prompt.end());
  s.set_max_tokens(max_tokens);
  auto* sampling = s.mutable_sampling();
  sampling->set_temperature(r.temperature);
  sampling->set_top_k(r.top_k);
  sampling->set_top_p(r.top_p);
  sampling->set_min_p(r.min_p);
  sampling->set_seed(r.has_seed ? r.seed : random_seed);
  s.mutable_stop_token_ids()->Assign(r.stop_token_ids.begin(), r.stop_token_ids.end());
  if (!r.ignore_eos) {
    for (int32_t id : model.tokenizer().eos_ids()) {
      bool present = false;
      for (int32_t have : s.stop_token_ids()) present |= have == id;
      if (!present) s.add_stop_token_ids(id);
    }
  }
  for (const std::string& stop : r.stop) s.add_stop_strings(stop);
  s.set_speculation_enabled(r.speculation_enabled);
  s.set_max_block(r.max_block);
  s.set_min_confidence(r.min_confidence);
  return v;
}

}  // namespace dspark::router
