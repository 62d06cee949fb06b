// Token sampling: greedy, temperature, top-k, top-p, min-p, with a
// per-request seed. Randomness is counter-based: the draw for a sequence's
// i-th generated token depends only on (seed, i), so a request's output never
// depends on what else shares the batch. Stateless functions: thread-safe.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace dspark::engine {

struct SamplingParams {
  // 0 means greedy (argmax; ties go to the lowest id). Default 0.
  float temperature = 0.0f;
  // Keep only the k most likely tokens; 0 = off. Default 0.
  int top_k = 0;
  // Keep the smallest set whose probability reaches top_p; 1 = off. Default 1.
  float top_p = 1.0f;
  // Drop tokens below min_p * p(most likely); 0 = off. Default 0.
  float min_p = 0.0f;
  // Seed of the request's random stream. Default 0.
  uint64_t seed = 0;
};

// InvalidArgument naming the field when a parameter is out of range.
absl::Status ValidateSamplingParams(const SamplingParams& params);

// Index of the largest logit (lowest index among equals).
int32_t ArgMax(const float* logits, int64_t vocab);

// The distribution a request samples from after temperature and the
// filters: (token, probability) sorted by decreasing probability, summing to 1.
// For temperature 0 it is the single argmax token with probability 1.
std::vector<std::pair<int32_t, float>> FilteredDistribution(const float* logits, int64_t vocab,
                                                           const SamplingParams& params);

// Uniform double in [0, 1) for draw `counter` of the stream `seed`.
double UniformDraw(uint64_t seed, uint64_t counter);

// Samples one token; `counter` numbers the draw (the token's index in the
// generated sequence).
int32_t SampleToken(const float* logits, int64_t vocab, const SamplingParams& params,
                    uint64_t counter);

}  // namespace dspark::engine
