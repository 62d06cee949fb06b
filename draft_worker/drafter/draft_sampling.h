// How every drafter turns its logits into a drafted token and the exact
// sparse distribution q it came from: argmax for greedy requests, otherwise a
// draw from softmax(logits / temperature) truncated to the top_k most likely
// tokens and renormalised. Stateless: thread-safe.
#pragma once

#include <cstdint>

#include "common/engine/sampling/sampler.h"
#include "draft_worker/drafter/drafter.h"

namespace dspark::drafter {

// Default truncation of drafted distributions.
inline constexpr int kDraftTopK = 16;

// Draws a token from `logits` [vocab] for a request with `sampling`, using the
// uniform `u` in [0, 1) (ignored when greedy); writes the distribution used to
// *q and returns the token. Top-1 probability of the untruncated softmax at
// temperature 1 goes to *top1_prob when non-null (a confidence for drafters
// without a confidence head).
int32_t SampleDraft(const float* logits, int64_t vocab, const engine::SamplingParams& sampling,
                    int top_k, double u, SparseDist* q, float* top1_prob = nullptr);

}  // namespace dspark::drafter
