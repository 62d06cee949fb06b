// OpenAI's response shapes: whole completions, streamed chunks (as
// Server-Sent Events), model lists and errors, built from the router's
// GenerationChunks. Stateless functions plus StreamWriter, which one thread
// owns per response.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "router/frontend/generation_backend.h"
#include "router/openai/request_parsing.h"

namespace dspark::router::openai {

// What identifies one response: every chunk of a stream repeats it.
struct ResponseMeta {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;       // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

ResponseMeta NewResponseMeta(Endpoint endpoint, std::string model);

// The whole (non-streamed) response; `last` carries the finish and totals.
nlohmann::ordered_json CompletionJson(const ResponseMeta& meta, const std::string& text,
                                      const GenerationChunk& last);

// Formats a generation as OpenAI streams it: "data: {chunk}\n\n" events, the
// chat stream opening with delta.role, the finish on the last choice chunk,
// an optional usage chunk with no choices, then "data: [DONE]\n\n".
class StreamWriter {
 public:
  StreamWriter(ResponseMeta meta, bool include_usage)
      : meta_(std::move(meta)), include_usage_(include_usage) {}

  // Events for one chunk from the backend (possibly none).
  std::string Chunk(const GenerationChunk& chunk);
  // Events that end a stream: [DONE] after success, an error event otherwise.
  std::string End(const absl::Status& status);

 private:
  nlohmann::ordered_json Base() const;
  nlohmann::ordered_json Choice(const std::string& text, const char* finish) const;

  const ResponseMeta meta_;
  const bool include_usage_;
  bool sent_role_ = false;
  GenerationChunk last_;  // the finishing chunk, for the usage chunk
};

// {"object": "list", "data": [{"id", "object": "model", ...}]}.
nlohmann::ordered_json ModelListJson(const std::vector<ModelCard>& models);
nlohmann::ordered_json ModelJson(const ModelCard& model);

// HTTP status for a status from parsing or the backend: InvalidArgument 400,
// NotFound 404, ResourceExhausted 429, Unavailable 503, DeadlineExceeded 504,
// else 500.
int HttpStatusFor(const absl::Status& status);
// {"error": {"message", "type", "param", "code"}} for a non-OK status.
nlohmann::ordered_json ErrorJson(const absl::Status& status);
// The same for an error found by HTTP status alone (404 route, 413 body).
nlohmann::ordered_json ErrorJson(int http_status, const std::string& message);

// Response JSON keeps its fields in the order OpenAI writes them.
// Dumps JSON, replacing invalid UTF-8 (a token cut inside a character) with
// U+FFFD instead of throwing.
std::string Dump(const nlohmann::ordered_json& value);

}  // namespace dspark::router::openai
