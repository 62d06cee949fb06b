// The Drafter interface: proposes blocks of tokens for the target to verify.
// A drafter keeps per-session state (its view of each sequence's committed
// context) and drafts for many sessions in one batched call. Implementations:
// the DSpark block drafter (target context features, one forward per block),
// a small autoregressive draft model, and n-gram / prompt lookup. Calls on one
// Drafter come from one thread (the verify step loop or the draft worker's
// batching thread); implementations are not thread-safe.
//
//   auto drafter = MakeDrafter(options, &target);       // drafter_factory.h
//   drafter->Open(7);
//   drafter->Extend(7, prompt_without_last, features);  // features of those tokens
//   std::vector<DraftBlock> blocks;
//   drafter->Draft({{.session = 7, .last_token = t, .max_tokens = 5}}, &blocks);
//   ... target verifies; accepted tokens (with their features) are Extended ...
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/engine/sampling/sampler.h"

namespace dspark::drafter {

using SessionId = int64_t;

// A sparse distribution over token ids: (token, probability), probabilities
// positive and summing to 1. One entry (probability 1) for greedy drafts.
using SparseDist = std::vector<std::pair<int32_t, float>>;

struct DraftRequest {
  SessionId session = -1;
  // The newest token of the sequence: sampled by the target, not yet part of
  // the context passed to Extend (its target features do not exist yet). The
  // block drafts the tokens that follow it.
  int32_t last_token = 0;
  // Tokens to draft, 1..max_block().
  int max_tokens = 1;
  // Temperature 0: greedy drafts. Otherwise the drafter samples position i
  // from its top-k-truncated distribution with the draw
  // UniformDraw(DraftSeed(sampling.seed), draw_counter + i).
  engine::SamplingParams sampling;
  // First counter of this block's draws. The caller never reuses a counter
  // within a session, so every block gets fresh randomness.
  uint64_t draw_counter = 0;
};

struct DraftBlock {
  std::vector<int32_t> tokens;    // [n] drafted ids, n <= max_tokens
  std::vector<SparseDist> q;      // [n] distribution tokens[i] was drawn from
  std::vector<float> confidence;  // [n] P(position i accepted | positions < i accepted)
};

// The random stream of a request's drafts: distinct from the target's own
// stream (SamplingParams::seed) so draft and acceptance draws never coincide.
inline uint64_t DraftSeed(uint64_t seed) { return seed ^ 0xD5A7C0DE5EEDull; }

class Drafter {
 public:
  virtual ~Drafter() = default;

  // "dspark", "draft-model", "ngram", ...
  virtual std::string name() const = 0;
  // Largest block Draft can return.
  virtual int max_block() const = 0;
  // Target layers whose output hidden states Extend needs for each context
  // token (ForwardBatch::capture_layers); empty when the drafter reads tokens only.
  virtual std::vector<int> context_layers() const { return {}; }

  virtual absl::Status Open(SessionId session) = 0;
  // Appends committed tokens to the session's context. `features` is
  // [tokens.size(), context_layers().size() * target dim] (ForwardOutput
  // layout), empty when context_layers() is empty. Drafts made since the
  // last Extend are forgotten (the drafter rolls its own state back).
  virtual absl::Status Extend(SessionId session, absl::Span<const int32_t> tokens,
                              absl::Span<const float> features) = 0;
  // One block per request, in request order. Bad input (unknown session,
  // max_tokens out of range) is an error and changes nothing.
  virtual absl::Status Draft(absl::Span<const DraftRequest> requests,
                             std::vector<DraftBlock>* blocks) = 0;
  // True for a drafter that drafts elsewhere (on a draft worker): it answers
  // StartDraft / FinishDraft, so the caller can run the target meanwhile.
  virtual bool drafts_elsewhere() const { return false; }
  // Draft in two halves: StartDraft checks and sends the requests and returns
  // at once with a ticket; FinishDraft waits for that ticket's blocks, as
  // Draft returns them. Until then the caller must not Extend or Fork the
  // pending sessions (Close is allowed: their blocks then mean nothing).
  // Drafters that draft in the calling thread answer Unimplemented.
  virtual absl::StatusOr<uint64_t> StartDraft(absl::Span<const DraftRequest> requests) {
    return absl::UnimplementedError(name() + " drafter drafts in the calling thread");
  }
  virtual absl::Status FinishDraft(uint64_t ticket, std::vector<DraftBlock>* blocks) {
    return absl::UnimplementedError(name() + " drafter drafts in the calling thread");
  }
  // Prefix sharing: makes `child` (a new id) a session whose context is the
  // first `prefix_len` context tokens of `parent`. Drafters that cannot share
  // state answer Unimplemented and the caller prefills the child instead.
  virtual absl::Status Fork(SessionId child, SessionId parent, int64_t prefix_len) {
    return absl::UnimplementedError(name() + " drafter cannot fork sessions");
  }
  // Forgets the session; unknown ids are ignored.
  virtual void Close(SessionId session) = 0;
};

}  // namespace dspark::drafter
