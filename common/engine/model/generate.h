// Plain (non-speculative) generation for one sequence: chunked prefill, then
// one token per step. The reference that speculative decoding must equal, and
// what `dspark generate --drafter none` runs. Not thread-safe (uses the
// model's step thread).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine/kv_cache/kv_cache.h"
#include "common/engine/model/model.h"
#include "common/engine/sampling/sampler.h"

namespace dspark::engine {

struct GenerateOptions {
  // Most tokens to generate. Default 128.
  int max_tokens = 128;
  SamplingParams sampling;
  // Generation stops after any of these (it is included in the output).
  std::vector<int32_t> stop_ids;
  // Prompt tokens per prefill forward. Default 256.
  int prefill_chunk = 256;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids
  double prefill_seconds = 0;
  double decode_seconds = 0;    // from the first generated token to the last
};

// `on_token` (may be empty) sees each id as it is generated; returning false
// stops generation. The sequence's KV is freed before returning.
absl::StatusOr<GenerateResult> Generate(Model& model, KvCache& cache,
                                        const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options,
                                        const std::function<bool(int32_t)>& on_token = {});

}  // namespace dspark::engine
