#include "router/openai/responses.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace dspark::router::openai {
namespace {

using json = nlohmann::ordered_json;  // fields in OpenAI's order

// 24 random alphanumerics, as OpenAI's ids carry after their prefix.
std::string RandomSuffix() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string suffix(24, ' ');
  for (char& c : suffix) c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return suffix;
}

const char* FinishReason(Finish finish) {
  // A cancelled generation has no client left to read its reason.
  return finish == Finish::kLength ? "length" : "stop";
}

json Usage(const GenerationChunk& last) {
  return {{"prompt_tokens", last.prompt_tokens},
          {"completion_tokens", last.completion_tokens},
          {"total_tokens", last.prompt_tokens + last.completion_tokens}};
}

json SpeculationStats(const GenerationChunk& last) {
  return {{"drafted_tokens", last.drafted_tokens},
          {"verified_tokens", last.verified_tokens},
          {"accepted_tokens", last.accepted_tokens},
          {"target_steps", last.target_steps}};
}

std::string Event(const json& data) { return absl::StrCat("data: ", Dump(data), "\n\n"); }

}  // namespace

ResponseMeta NewResponseMeta(Endpoint endpoint, std::string model) {
  ResponseMeta meta;
  meta.endpoint = endpoint;
  meta.id =
      absl::StrCat(endpoint == Endpoint::kCompletions ? "cmpl-" : "chatcmpl-", RandomSuffix());
  meta.created = absl::ToUnixSeconds(absl::Now());
  meta.model = std::move(model);
  return meta;
}

json CompletionJson(const ResponseMeta& meta, const std::string& text,
                    const GenerationChunk& last) {
  const bool chat = meta.endpoint == Endpoint::kChatCompletions;
  json choice = {{"index", 0}};
  if (chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = FinishReason(last.finish);
  return {{"id", meta.id},
          {"object", chat ? "chat.completion" : "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"system_fingerprint", nullptr},
          {"choices", json::array({std::move(choice)})},
          {"usage", Usage(last)},
          {"dspark", SpeculationStats(last)}};
}

json StreamWriter::Base() const {
  const bool chat = meta_.endpoint == Endpoint::kChatCompletions;
  json base = {{"id", meta_.id},
               {"object", chat ? "chat.completion.chunk" : "text_completion"},
               {"created", meta_.created},
               {"model", meta_.model},
               {"system_fingerprint", nullptr}};
  // With include_usage OpenAI puts "usage": null on every chunk but the last.
  if (include_usage_) base["usage"] = nullptr;
  return base;
}

json StreamWriter::Choice(const std::string& text, const char* finish) const {
  json choice = {{"index", 0}};
  if (meta_.endpoint == Endpoint::kChatCompletions) {
    choice["delta"] = json::object();
    // The finishing chunk of a chat stream has an empty delta.
    if (finish == nullptr || !text.empty()) choice["delta"]["content"] = text;
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish == nullptr ? json(nullptr) : json(finish);
  return choice;
}

std::string StreamWriter::Chunk(const GenerationChunk& chunk) {
  std::string events;
  if (meta_.endpoint == Endpoint::kChatCompletions && !sent_role_) {
    json first = Base();
    first["choices"] = json::array({Choice("", nullptr)});
    first["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
    events += Event(first);
    sent_role_ = true;
  }
  const bool last = chunk.finish != Finish::kNone;
  const char* finish = last ? FinishReason(chunk.finish) : nullptr;
  if (meta_.endpoint == Endpoint::kChatCompletions) {
    // Chat streams end with a chunk of their own: empty delta plus the reason.
    if (!chunk.text.empty()) {
      json data = Base();
      data["choices"] = json::array({Choice(chunk.text, nullptr)});
      events += Event(data);
    }
    if (last) {
      json data = Base();
      data["choices"] = json::array({Choice("", finish)});
      data["dspark"] = SpeculationStats(chunk);
      events += Event(data);
    }
  } else if (last || !chunk.text.empty()) {
    // Completion streams put the last text and the reason in one chunk.
    json data = Base();
    data["choices"] = json::array({Choice(chunk.text, finish)});
    if (last) data["dspark"] = SpeculationStats(chunk);
    events += Event(data);
  }
  if (last) last_ = chunk;
  return events;
}

std::string StreamWriter::End(const absl::Status& status) {
  if (!status.ok()) return Event(ErrorJson(status));
  std::string events;
  if (include_usage_) {
    json data = Base();
    data["choices"] = json::array();
    data["usage"] = Usage(last_);
    data["dspark"] = SpeculationStats(last_);
    events += Event(data);
  }
  return events + "data: [DONE]\n\n";
}

json ModelJson(const ModelCard& model) {
  json card = {{"id", model.id},
               {"object", "model"},
               {"created", 0},
               {"owned_by", "dspark"},
               {"context_length", model.context_length}};
  card["dspark"] = {{"drafter", model.drafter}};
  return card;
}

json ModelListJson(const std::vector<ModelCard>& models) {
  json data = json::array();
  for (const ModelCard& model : models) data.push_back(ModelJson(model));
  return {{"object", "list"}, {"data", std::move(data)}};
}

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

json ErrorJson(const absl::Status& status) {
  json error = ErrorJson(HttpStatusFor(status), std::string(status.message()));
  const std::string param = ErrorParam(status);
  if (!param.empty()) error["error"]["param"] = param;
  if (status.code() == absl::StatusCode::kNotFound &&
      status.message().find("model") != absl::string_view::npos) {
    error["error"]["code"] = "model_not_found";
  }
  return error;
}

json ErrorJson(int http_status, const std::string& message) {
  // OpenAI's types: invalid_request_error for 4xx the client can fix.
  const char* type = "server_error";
  json code = nullptr;
  if (http_status == 429) {
    type = "rate_limit_error";
    code = "rate_limit_exceeded";
  } else if (http_status == 404 || (http_status >= 400 && http_status < 500)) {
    type = "invalid_request_error";
  } else if (http_status == 503) {
    code = "service_unavailable";
  } else if (http_status == 504) {
    code = "timeout";
  }
  return {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", code}}}};
}

std::string Dump(const json& value) {
  return value.dump(/*indent=*/-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

}  // namespace dspark::router::openai
