// What a caller hands the speculative engine and what it gets back: the
// request, per-request speculation settings, streamed events and statistics.
// Plain data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/engine/sampling/sampler.h"

namespace dspark::spec {

using RequestId = int64_t;

// Per-request speculation settings (the public API's "auto / off / max block").
struct SpeculationSettings {
  // false: plain decoding, one token per step. Default true.
  bool enabled = true;
  // Most drafted tokens verified per step; 0 = the drafter's block size.
  int max_block = 0;
  // Verify a drafted position only while the product of confidences up to it
  // is at least this. Default 0 (the step scheduler alone decides).
  float min_confidence = 0.0f;
};

struct SpecRequest {
  std::vector<int32_t> prompt;  // [n] token ids, n >= 1
  // Most tokens to generate. Default 128.
  int max_tokens = 128;
  engine::SamplingParams sampling;
  // Generation finishes after emitting any of these (included in the output);
  // the caller adds the model's EOS ids here.
  std::vector<int32_t> stop_ids;
  // Generation finishes when the text contains one (the text is cut before
  // it). Needs the engine to have a tokenizer.
  std::vector<std::string> stop_strings;
  SpeculationSettings speculation;
};

enum class FinishReason { kNone, kLength, kStop, kCancelled, kError };
const char* FinishReasonName(FinishReason reason);

// Counters of one request (or of the whole engine, summed).
struct SpecCounters {
  static constexpr int kMaxPositions = 16;
  int64_t prompt_tokens = 0;
  int64_t prefix_tokens_shared = 0;  // prompt tokens taken from the prefix cache
  int64_t generated_tokens = 0;
  int64_t decode_steps = 0;     // steps that emitted tokens after the prefill
  int64_t verify_steps = 0;     // decode steps that verified at least one drafted token
  int64_t drafted_tokens = 0;   // proposed by the drafter
  int64_t verified_tokens = 0;  // sent to the target (chosen by the step scheduler)
  int64_t accepted_tokens = 0;
  int64_t verified_at[kMaxPositions] = {};  // by block position
  int64_t accepted_at[kMaxPositions] = {};

  void Add(const SpecCounters& other);
};

// Output of one step for one request.
struct SpecEvent {
  RequestId id = -1;
  std::vector<int32_t> tokens;  // tokens emitted this step, in order
  std::string text;             // their final text (engine has a tokenizer)
  FinishReason finish = FinishReason::kNone;
  absl::Status error;     // when finish == kError
  SpecCounters counters;  // the request's totals, set when it finishes
};

}  // namespace dspark::spec
