// Turns the JSON body of an OpenAI /v1/completions or /v1/chat/completions
// request into a router::GenerationRequest. Checks shape and types only (the
// backend checks value ranges, one set of rules for every front end); stateless
// and thread-safe.
//
//   absl::StatusOr<ParsedRequest> parsed = ParseRequest(Endpoint::kChat, body);
//   if (!parsed.ok()) ...  // InvalidArgument, ErrorParam() names the field
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "router/frontend/generation_backend.h"

namespace dspark::router::openai {

enum class Endpoint { kCompletions, kChatCompletions };

struct ParsedRequest {
  GenerationRequest generation;
  bool stream = false;
  // stream_options.include_usage: a last chunk with usage and no choices.
  bool include_usage = false;
};

// InvalidArgument for malformed JSON (invalid UTF-8 included), wrong types,
// unknown or unsupported fields, and a missing prompt/messages.
absl::StatusOr<ParsedRequest> ParseRequest(Endpoint endpoint, absl::string_view body);

// InvalidArgument naming the request field at fault (OpenAI's "param").
absl::Status InvalidParam(absl::string_view param, absl::string_view message);
// The field an error names; "" when none.
std::string ErrorParam(const absl::Status& status);

}  // namespace dspark::router::openai
