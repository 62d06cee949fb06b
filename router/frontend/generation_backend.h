// The router's core as its front ends (the dspark.v1 gRPC service and the
// OpenAI-compatible HTTP server) see it: validated generation requests in,
// streamed chunks out. Plain data plus one interface; implementations must
// be thread-safe (front ends call from many threads).
//
//   auto handle = backend->Start(request,
//       [](GenerationChunk chunk) { ... },        // in order, never concurrently
//       [](absl::Status done) { ... });           // exactly once, last
//   handle->Cancel();                             // client went away
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dspark::router {

struct ChatTurn {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// A request as a front end hands it over, after parsing but before
// validation (the backend validates: one set of rules for every front end).
struct GenerationRequest {
  // Empty: the default model.
  std::string model;
  // Exactly one prompt form: raw text (tokenized with BOS when the model uses
  // one), token ids as given, or a chat rendered by the model's template.
  std::variant<std::string, std::vector<int32_t>, std::vector<ChatTurn>> input;
  // Sampling: temperature >= 0 (0 greedy), top_p in (0, 1], top_k >= 0,
  // min_p in [0, 1). No seed: the backend picks one.
  float temperature = 0.0f;
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  bool has_seed = false;
  uint64_t seed = 0;
  // Most tokens to generate; 0 = the default (128). Must be <= the limit.
  int max_tokens = 0;
  std::vector<std::string> stop;  // at most 16, each 1..256 bytes
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  // Speculation: off, or caps (0 = none). Output never depends on these.
  bool speculation_enabled = true;
  int max_block = 0;
  float min_confidence = 0.0f;
  // When the client stops waiting; InfiniteFuture for none.
  absl::Time deadline = absl::InfiniteFuture();
};

enum class Finish { kNone, kLength, kStop, kCancelled };

struct GenerationChunk {
  std::vector<int32_t> token_ids;  // emitted since the previous chunk
  std::string text;                // their text; concatenated = the completion
  // Set on the last chunk only, with the totals below.
  Finish finish = Finish::kNone;
  std::string model;  // the model that served it
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int64_t drafted_tokens = 0;
  int64_t verified_tokens = 0;
  int64_t accepted_tokens = 0;
  int64_t target_steps = 0;
};

class GenerationHandle {
 public:
  virtual ~GenerationHandle() = default;
  // Stops generation (KV freed on the workers); on_done then gets Cancelled
  // unless it already ran. Idempotent, any thread.
  virtual void Cancel() = 0;
};

struct ModelCard {
  std::string id;
  int context_length = 0;
  std::string drafter;  // "" when no draft worker serves it
};

class GenerationBackend {
 public:
  using ChunkFn = std::function<void(GenerationChunk)>;
  using DoneFn = std::function<void(absl::Status)>;
  virtual ~GenerationBackend() = default;

  // Validates and starts a generation. Bad input: InvalidArgument (unknown
  // model: NotFound); a full queue: ResourceExhausted; no worker: Unavailable.
  // Such errors come back from Start itself and nothing is started. Once
  // started, on_chunk gets the chunks in order (never two at once) and
  // on_done runs exactly once, after the last chunk: OK, or the error that
  // ended it (Cancelled, DeadlineExceeded, Unavailable, ...).
  virtual absl::StatusOr<std::unique_ptr<GenerationHandle>> Start(GenerationRequest request,
                                                                 ChunkFn on_chunk,
                                                                 DoneFn on_done) = 0;

  // Prompt forms as Start would tokenize them (chat: template + generation prompt).
  virtual absl::StatusOr<std::vector<int32_t>> Tokenize(
      const std::string& model,
      const std::variant<std::string, std::vector<ChatTurn>>& input) = 0;
  virtual absl::StatusOr<std::string> Detokenize(const std::string& model,
                                                 const std::vector<int32_t>& ids) = 0;
  virtual std::vector<ModelCard> ListModels() = 0;
  // false while draining or with no live verify worker.
  virtual bool Healthy() = 0;
};

}  // namespace dspark::router
