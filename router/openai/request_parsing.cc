#include "router/openai/request_parsing.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "nlohmann/json.hpp"

namespace dspark::router::openai {
namespace {

using json = nlohmann::json;

constexpr char kParamPayload[] = "type.dspark.dev/openai.param";

// Fields either endpoint takes. OpenAI itself rejects fields it does not
// know, so a typo ("max_token") gets an error instead of being ignored.
const absl::flat_hash_set<std::string>& CommonFields() {
  static const auto* fields = new absl::flat_hash_set<std::string>{
      "model", "stream", "stream_options", "max_tokens", "temperature", "top_p", "seed", "stop",
      "n", "logprobs", "presence_penalty", "frequency_penalty", "logit_bias", "user",
      // Extensions, with vLLM's names where vLLM has them.
      "top_k", "min_p", "ignore_eos", "stop_token_ids", "dspark"};
  return *fields;
}
const absl::flat_hash_set<std::string>& CompletionFields() {
  static const auto* fields =
      new absl::flat_hash_set<std::string>{"prompt", "echo", "best_of", "suffix"};
  return *fields;
}
const absl::flat_hash_set<std::string>& ChatFields() {
  static const auto* fields =
      new absl::flat_hash_set<std::string>{"messages",        "max_completion_tokens",
                                           "top_logprobs",    "tools",
                                           "tool_choice",     "parallel_tool_calls",
                                           "functions",       "function_call",
                                           "response_format", "store",
                                           "metadata",        "service_tier",
                                           "modalities"};
  return *fields;
}

// The value of `key`, or nullptr when absent or null (OpenAI treats an
// explicit null as "not given").
const json* Field(const json& object, const std::string& key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<double> Number(const json& value, absl::string_view param) {
  if (!value.is_number())
    return InvalidParam(param, absl::StrCat("'", param, "' must be a number"));
  return value.get<double>();
}

absl::StatusOr<int64_t> Integer(const json& value, absl::string_view param) {
  if (value.is_number_integer() && !value.is_number_unsigned()) return value.get<int64_t>();
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(v);
    }
  } else if (value.is_number_float()) {
    // 10.0 is an integer to Python clients; 10.5 is not.
    const double v = value.get<double>();
    if (std::trunc(v) == v && std::abs(v) < 9.2e18) return static_cast<int64_t>(v);
  }
  return InvalidParam(param, absl::StrCat("'", param, "' must be an integer"));
}

// Clamped into int: values beyond it are out of range for the backend anyway,
// which then rejects them with its own reason.
absl::StatusOr<int> ClampedInt(const json& value, absl::string_view param) {
  DSPARK_ASSIGN_OR_RETURN(int64_t v, Integer(value, param));
  return static_cast<int>(
      std::clamp<int64_t>(v, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
}

absl::StatusOr<bool> Bool(const json& value, absl::string_view param) {
  if (!value.is_boolean())
    return InvalidParam(param, absl::StrCat("'", param, "' must be a boolean"));
  return value.get<bool>();
}

absl::StatusOr<std::string> String(const json& value, absl::string_view param) {
  if (!value.is_string())
    return InvalidParam(param, absl::StrCat("'", param, "' must be a string"));
  return value.get<std::string>();
}

absl::StatusOr<int32_t> TokenId(const json& value, absl::string_view param) {
  DSPARK_ASSIGN_OR_RETURN(int64_t v, Integer(value, param));
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
    return InvalidParam(param, absl::StrCat("token id ", v, " in '", param, "' is out of range"));
  }
  return static_cast<int32_t>(v);
}

absl::Status Unsupported(absl::string_view param, absl::string_view what) {
  return InvalidParam(param, absl::StrCat(what, " not supported by this server"));
}

bool IsZeroNumber(const json& value) { return value.is_number() && value.get<double>() == 0.0; }
bool IsEmptyContainer(const json& value) {
  return (value.is_array() || value.is_object()) && value.empty();
}

absl::StatusOr<std::vector<int32_t>> TokenIds(const json& array, absl::string_view param) {
  std::vector<int32_t> ids;
  ids.reserve(array.size());
  for (const json& item : array) {
    DSPARK_ASSIGN_OR_RETURN(int32_t id, TokenId(item, param));
    ids.push_back(id);
  }
  return ids;
}

// prompt: a string, token ids, or a batch of one of either.
absl::Status ParsePrompt(const json& body, GenerationRequest& request) {
  const json* prompt = Field(body, "prompt");
  if (prompt == nullptr) return InvalidParam("prompt", "missing required parameter: 'prompt'");
  if (prompt->is_string()) {
    request.input = prompt->get<std::string>();
    return absl::OkStatus();
  }
  if (!prompt->is_array()) {
    return InvalidParam("prompt",
                        "'prompt' must be a string, an array of token ids, or an array "
                        "of one string");
  }
  if (prompt->empty() || prompt->front().is_number()) {
    DSPARK_ASSIGN_OR_RETURN(request.input, TokenIds(*prompt, "prompt"));
    return absl::OkStatus();
  }
  if (prompt->size() > 1) {
    return InvalidParam("prompt", "batched prompts are not supported: send one prompt per request");
  }
  const json& only = prompt->front();
  if (only.is_string()) {
    request.input = only.get<std::string>();
  } else if (only.is_array()) {
    DSPARK_ASSIGN_OR_RETURN(request.input, TokenIds(only, "prompt"));
  } else {
    return InvalidParam("prompt",
                        "'prompt' must be a string, an array of token ids, or an array "
                        "of one string");
  }
  return absl::OkStatus();
}

// content: a string, or text parts [{"type": "text", "text": "..."}] (joined
// with newlines, as vLLM does); null is an empty turn.
absl::StatusOr<std::string> ParseContent(const json& message, const std::string& param) {
  const json* content = Field(message, "content");
  if (content == nullptr) return std::string();
  if (content->is_string()) return content->get<std::string>();
  if (!content->is_array()) {
    return InvalidParam(param, absl::StrCat("'", param, "' must be a string or an array of parts"));
  }
  std::vector<std::string> texts;
  for (const json& part : *content) {
    if (!part.is_object()) return InvalidParam(param, "each content part must be an object");
    const json* type = Field(part, "type");
    if (type == nullptr || !type->is_string()) {
      return InvalidParam(param, "each content part needs a string 'type'");
    }
    if (*type != "text") {
      return Unsupported(
          param, absl::StrCat("content parts of type '", type->get<std::string>(), "' are"));
    }
    const json* text = Field(part, "text");
    if (text == nullptr || !text->is_string()) {
      return InvalidParam(param, "a text content part needs a string 'text'");
    }
    texts.push_back(text->get<std::string>());
  }
  return absl::StrJoin(texts, "\n");
}

absl::Status ParseMessages(const json& body, GenerationRequest& request) {
  const json* messages = Field(body, "messages");
  if (messages == nullptr)
    return InvalidParam("messages", "missing required parameter: 'messages'");
  if (!messages->is_array()) return InvalidParam("messages", "'messages' must be an array");
  if (messages->empty()) return InvalidParam("messages", "'messages' must not be empty");
  std::vector<ChatTurn> turns;
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& message = (*messages)[i];
    const std::string param = absl::StrCat("messages[", i, "]");
    if (!message.is_object())
      return InvalidParam(param, absl::StrCat("'", param, "' must be an object"));
    for (const auto& [key, value] : message.items()) {
      if (key == "role" || key == "content" || key == "name") continue;
      if (key == "tool_calls" || key == "tool_call_id" || key == "function_call") {
        if (value.is_null() || IsEmptyContainer(value)) continue;
        return Unsupported(absl::StrCat(param, ".", key), "tool calls are");
      }
      return InvalidParam(absl::StrCat(param, ".", key),
                          absl::StrCat("unrecognized field '", key, "' in '", param, "'"));
    }
    const json* role = Field(message, "role");
    if (role == nullptr || !role->is_string()) {
      return InvalidParam(param + ".role", absl::StrCat("'", param, ".role' must be a string"));
    }
    ChatTurn turn;
    turn.role = role->get<std::string>();
    // "developer" is OpenAI's newer name for the system turn.
    if (turn.role == "developer") turn.role = "system";
    if (turn.role == "tool" || turn.role == "function") {
      return Unsupported(param + ".role", "tool messages are");
    }
    if (turn.role != "system" && turn.role != "user" && turn.role != "assistant") {
      return InvalidParam(param + ".role",
                          absl::StrCat("invalid role '", turn.role,
                                       "': expected system, developer, user or assistant"));
    }
    if (const json* name = Field(message, "name"); name != nullptr && !name->is_string()) {
      return InvalidParam(param + ".name", absl::StrCat("'", param, ".name' must be a string"));
    }
    DSPARK_ASSIGN_OR_RETURN(turn.content, ParseContent(message, param + ".content"));
    turns.push_back(std::move(turn));
  }
  request.input = std::move(turns);
  return absl::OkStatus();
}

absl::Status ParseStop(const json& body, GenerationRequest& request) {
  const json* stop = Field(body, "stop");
  if (stop == nullptr) return absl::OkStatus();
  if (stop->is_string()) {
    request.stop.push_back(stop->get<std::string>());
    return absl::OkStatus();
  }
  if (!stop->is_array())
    return InvalidParam("stop", "'stop' must be a string or an array of strings");
  for (const json& item : *stop) {
    if (!item.is_string())
      return InvalidParam("stop", "'stop' must be a string or an array of strings");
    request.stop.push_back(item.get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status ParseDsparkExtension(const json& body, GenerationRequest& request) {
  const json* ext = Field(body, "dspark");
  if (ext == nullptr) return absl::OkStatus();
  if (!ext->is_object()) return InvalidParam("dspark", "'dspark' must be an object");
  for (const auto& [key, value] : ext->items()) {
    const std::string param = "dspark." + key;
    if (value.is_null()) continue;
    if (key == "speculation") {
      DSPARK_ASSIGN_OR_RETURN(std::string mode, String(value, param));
      if (mode != "auto" && mode != "off") {
        return InvalidParam(param, "'dspark.speculation' must be \"auto\" or \"off\"");
      }
      request.speculation_enabled = mode == "auto";
    } else if (key == "max_block") {
      DSPARK_ASSIGN_OR_RETURN(request.max_block, ClampedInt(value, param));
    } else if (key == "min_confidence") {
      DSPARK_ASSIGN_OR_RETURN(double v, Number(value, param));
      request.min_confidence = static_cast<float>(v);
    } else {
      return InvalidParam(param, absl::StrCat("unrecognized field '", key, "' in 'dspark'"));
    }
  }
  return absl::OkStatus();
}

// Fields whose OpenAI semantics this server cannot honour: an error, not a
// silently different answer. Each is fine at its "off" value.
absl::Status RejectUnsupported(Endpoint endpoint, const json& body) {
  if (const json* n = Field(body, "n")) {
    DSPARK_ASSIGN_OR_RETURN(int64_t v, Integer(*n, "n"));
    if (v != 1) return InvalidParam("n", "only n=1 is supported: send one request per choice");
  }
  if (const json* logprobs = Field(body, "logprobs")) {
    if (!(logprobs->is_boolean() && !logprobs->get<bool>()))
      return Unsupported("logprobs", "logprobs are");
  }
  if (const json* top = Field(body, "top_logprobs"); top != nullptr && !IsZeroNumber(*top)) {
    return Unsupported("top_logprobs", "logprobs are");
  }
  for (const char* penalty : {"presence_penalty", "frequency_penalty"}) {
    if (const json* value = Field(body, penalty)) {
      DSPARK_RETURN_IF_ERROR(Number(*value, penalty).status());
      if (!IsZeroNumber(*value))
        return Unsupported(penalty, absl::StrCat("non-zero ", penalty, " is"));
    }
  }
  if (const json* bias = Field(body, "logit_bias"); bias != nullptr && !IsEmptyContainer(*bias)) {
    return Unsupported("logit_bias", "logit_bias is");
  }
  if (const json* user = Field(body, "user"); user != nullptr && !user->is_string()) {
    return InvalidParam("user", "'user' must be a string");
  }
  if (endpoint == Endpoint::kCompletions) {
    if (const json* echo = Field(body, "echo")) {
      DSPARK_ASSIGN_OR_RETURN(bool v, Bool(*echo, "echo"));
      if (v) return Unsupported("echo", "echo is");
    }
    if (const json* best_of = Field(body, "best_of")) {
      DSPARK_ASSIGN_OR_RETURN(int64_t v, Integer(*best_of, "best_of"));
      if (v != 1) return Unsupported("best_of", "best_of other than 1 is");
    }
    if (const json* suffix = Field(body, "suffix")) {
      DSPARK_ASSIGN_OR_RETURN(std::string v, String(*suffix, "suffix"));
      if (!v.empty()) return Unsupported("suffix", "suffix is");
    }
    return absl::OkStatus();
  }
  for (const char* tools : {"tools", "functions"}) {
    if (const json* value = Field(body, tools); value != nullptr && !IsEmptyContainer(*value)) {
      return Unsupported(tools, "tool calling is");
    }
  }
  for (const char* choice : {"tool_choice", "function_call"}) {
    if (const json* value = Field(body, choice); value != nullptr && *value != "none") {
      return Unsupported(choice, "tool calling is");
    }
  }
  if (const json* format = Field(body, "response_format")) {
    if (!format->is_object() || format->value("type", json()) != "text") {
      return Unsupported("response_format", "response formats other than {\"type\": \"text\"} are");
    }
  }
  if (const json* store = Field(body, "store"); store != nullptr && *store != false) {
    return Unsupported("store", "store is");
  }
  if (const json* modalities = Field(body, "modalities");
      modalities != nullptr && *modalities != json::array({"text"})) {
    return Unsupported("modalities", "modalities other than [\"text\"] are");
  }
  return absl::OkStatus();
}

absl::Status ParseSampling(Endpoint endpoint, const json& body, ParsedRequest& parsed) {
  GenerationRequest& request = parsed.generation;
  if (const json* model = Field(body, "model")) {
    DSPARK_ASSIGN_OR_RETURN(request.model, String(*model, "model"));
  }
  // OpenAI's default temperature is 1 (sampling); the client asks for 0.
  request.temperature = 1.0f;
  if (const json* v = Field(body, "temperature")) {
    DSPARK_ASSIGN_OR_RETURN(double t, Number(*v, "temperature"));
    request.temperature = static_cast<float>(t);
  }
  if (const json* v = Field(body, "top_p")) {
    DSPARK_ASSIGN_OR_RETURN(double p, Number(*v, "top_p"));
    request.top_p = static_cast<float>(p);
  }
  if (const json* v = Field(body, "top_k")) {
    DSPARK_ASSIGN_OR_RETURN(request.top_k, ClampedInt(*v, "top_k"));
  }
  if (const json* v = Field(body, "min_p")) {
    DSPARK_ASSIGN_OR_RETURN(double p, Number(*v, "min_p"));
    request.min_p = static_cast<float>(p);
  }
  if (const json* v = Field(body, "seed")) {
    // OpenAI seeds are signed 64-bit; any 64-bit pattern seeds the sampler.
    if (v->is_number_unsigned()) {
      request.seed = v->get<uint64_t>();
    } else {
      DSPARK_ASSIGN_OR_RETURN(int64_t seed, Integer(*v, "seed"));
      request.seed = static_cast<uint64_t>(seed);
    }
    request.has_seed = true;
  }
  // max_completion_tokens replaces max_tokens in chat; it wins when both come.
  const char* max_name = "max_tokens";
  const json* max_tokens = Field(body, "max_tokens");
  if (endpoint == Endpoint::kChatCompletions) {
    if (const json* v = Field(body, "max_completion_tokens")) {
      max_name = "max_completion_tokens";
      max_tokens = v;
    }
  }
  if (max_tokens != nullptr) {
    DSPARK_ASSIGN_OR_RETURN(request.max_tokens, ClampedInt(*max_tokens, max_name));
    // 0 means "the default" to the backend, so it cannot pass through.
    if (request.max_tokens < 1) {
      return InvalidParam(max_name, absl::StrCat("'", max_name, "' must be at least 1"));
    }
  }
  DSPARK_RETURN_IF_ERROR(ParseStop(body, request));
  if (const json* v = Field(body, "stop_token_ids")) {
    if (!v->is_array()) return InvalidParam("stop_token_ids", "'stop_token_ids' must be an array");
    DSPARK_ASSIGN_OR_RETURN(request.stop_token_ids, TokenIds(*v, "stop_token_ids"));
  }
  if (const json* v = Field(body, "ignore_eos")) {
    DSPARK_ASSIGN_OR_RETURN(request.ignore_eos, Bool(*v, "ignore_eos"));
  }
  return ParseDsparkExtension(body, request);
}

absl::Status ParseStreaming(const json& body, ParsedRequest& parsed) {
  if (const json* stream = Field(body, "stream")) {
    DSPARK_ASSIGN_OR_RETURN(parsed.stream, Bool(*stream, "stream"));
  }
  const json* options = Field(body, "stream_options");
  if (options == nullptr) return absl::OkStatus();
  if (!parsed.stream) {
    return InvalidParam("stream_options", "'stream_options' is only allowed when 'stream' is true");
  }
  if (!options->is_object())
    return InvalidParam("stream_options", "'stream_options' must be an object");
  for (const auto& [key, value] : options->items()) {
    if (key != "include_usage") {
      return InvalidParam("stream_options." + key,
                          absl::StrCat("unrecognized field '", key, "' in 'stream_options'"));
    }
    if (value.is_null()) continue;
    DSPARK_ASSIGN_OR_RETURN(parsed.include_usage, Bool(value, "stream_options.include_usage"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status InvalidParam(absl::string_view param, absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kParamPayload, absl::Cord(param));
  return status;
}

std::string ErrorParam(const absl::Status& status) {
  absl::optional<absl::Cord> param = status.GetPayload(kParamPayload);
  return param.has_value() ? std::string(*param) : std::string();
}

absl::StatusOr<ParsedRequest> ParseRequest(Endpoint endpoint, absl::string_view body) {
  // Invalid UTF-8 (and lone surrogate escapes) fail the parse itself.
  const std::string_view text(body.data(), body.size());
  json root = json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    // Parse again for the reason only on this (rare) path.
    try {
      json reparsed = json::parse(text);
      (void)reparsed;
    } catch (const json::parse_error& e) {
      return absl::InvalidArgumentError(absl::StrCat("malformed JSON body: ", e.what()));
    }
    return absl::InvalidArgumentError("malformed JSON body");
  }
  if (!root.is_object())
    return absl::InvalidArgumentError("the request body must be a JSON object");
  const auto& own = endpoint == Endpoint::kCompletions ? CompletionFields() : ChatFields();
  for (const auto& [key, value] : root.items()) {
    if (!CommonFields().contains(key) && !own.contains(key)) {
      return InvalidParam(key, absl::StrCat("unrecognized request argument supplied: ", key));
    }
  }
  ParsedRequest parsed;
  DSPARK_RETURN_IF_ERROR(RejectUnsupported(endpoint, root));
  DSPARK_RETURN_IF_ERROR(ParseStreaming(root, parsed));
  DSPARK_RETURN_IF_ERROR(ParseSampling(endpoint, root, parsed));
  if (endpoint == Endpoint::kCompletions) {
    DSPARK_RETURN_IF_ERROR(ParsePrompt(root, parsed.generation));
  } else {
    DSPARK_RETURN_IF_ERROR(ParseMessages(root, parsed.generation));
  }
  return parsed;
}

}  // namespace dspark::router::openai
