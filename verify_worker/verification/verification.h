// Lossless acceptance of a drafted block against the target's logits.
// Greedy requests: a drafted token is accepted iff it is the target's argmax.
// Sampled requests: speculative rejection sampling (Leviathan et al. 2023,
// Chen et al. 2023): accept x with probability min(1, p(x) / q(x)), else
// emit a draw from the residual max(p - q, 0) / Z and stop; after a fully
// accepted block the bonus token is drawn from p. p is the request's filtered
// distribution (temperature, top-k, top-p, min-p), q the drafter's exact
// sparse distribution. Stateless: thread-safe.
#pragma once

#include <cstdint>

#include "absl/types/span.h"
#include "common/engine/sampling/sampler.h"
#include "draft_worker/drafter/drafter.h"

namespace dspark::verify {

struct VerifyInput {
  // [draft.size() + 1, vocab]: the target's logits at the rows of
  // [last token, draft[0], ..., draft[n-1]].
  const float* logits = nullptr;
  int64_t vocab = 0;
  absl::Span<const int32_t> draft;          // [n]
  absl::Span<const drafter::SparseDist> q;  // [n], used when sampling
  engine::SamplingParams sampling;
  // Index of the first token this step emits among the request's generated
  // tokens. With an empty draft the token is drawn exactly as plain decoding
  // draws it (SampleToken with this counter), so speculation off reproduces
  // plain decoding for a seed.
  uint64_t generated_index = 0;
  // First counter of this step's acceptance draws; a block of n uses
  // counters [draw_counter, draw_counter + 2n + 2). The caller never reuses one.
  uint64_t draw_counter = 0;
};

struct VerifyResult {
  int accepted = 0;        // drafted tokens accepted, 0..n
  int32_t next_token = 0;  // the correction (on rejection) or bonus token
};

VerifyResult Verify(const VerifyInput& in);

// The acceptance stream of a request: distinct from its plain-sampling and
// draft streams.
inline uint64_t VerifySeed(uint64_t seed) { return seed ^ 0x5EC0DEACCE97ull; }

}  // namespace dspark::verify
