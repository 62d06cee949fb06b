// Fake Drafters for testing verify workers and schedulers without a trained
// drafter. Each checks its input like a real one (unknown session,
// max_tokens outside [1, max_block()] -> InvalidArgument) and is, like every
// Drafter, not thread-safe.
//
//   RandomFakeDrafter random(/*vocab=*/49152, /*max_block=*/7, /*seed=*/1);
//   AlwaysWrongFakeDrafter wrong(/*token=*/0);   // the target never accepts it
//   OracleFakeDrafter oracle(&target);           // greedy drafts always accepted
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/engine/model/model.h"
#include "draft_worker/draft_model/draft_model_drafter.h"
#include "draft_worker/drafter/drafter.h"

namespace dspark::testing {

// Full blocks of random tokens: for sampled requests each position draws its
// token (with the request's draft stream, as real drafters do) from a random
// sparse q of 1..8 tokens with random probabilities; for greedy requests q is
// one-hot on a random token. Random confidences in (0, 1). Everything but the
// sampled draw depends only on (seed, session, draw_counter + position), so
// runs are reproducible whatever else shares the batch.
class RandomFakeDrafter final : public drafter::Drafter {
 public:
  RandomFakeDrafter(int vocab, int max_block, uint64_t seed);

  std::string name() const override { return "random-fake"; }
  int max_block() const override { return max_block_; }
  absl::Status Open(drafter::SessionId session) override;
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override;
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override;
  void Close(drafter::SessionId session) override { sessions_.erase(session); }

 private:
  int vocab_;
  int max_block_;
  uint64_t seed_;
  absl::flat_hash_set<drafter::SessionId> sessions_;
};

// Always proposes `token` at every position, q one-hot, confidence 0.9: with a
// token the target never produces (a control token), nothing is accepted.
class AlwaysWrongFakeDrafter final : public drafter::Drafter {
 public:
  explicit AlwaysWrongFakeDrafter(int32_t token, int max_block = 7);

  std::string name() const override { return "always-wrong-fake"; }
  int max_block() const override { return max_block_; }
  absl::Status Open(drafter::SessionId session) override;
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override;
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override;
  void Close(drafter::SessionId session) override { sessions_.erase(session); }

 private:
  int32_t token_;
  int max_block_;
  absl::flat_hash_set<drafter::SessionId> sessions_;
};

// Drafts with the target model itself (a DraftModelDrafter sharing it, with
// its own KV cache), so greedy drafts are exactly the target's own greedy
// tokens and are always accepted; their confidence is 1. Sampled requests get
// the target's top-k-truncated distribution. `target` must outlive the fake
// and be used from the same thread.
class OracleFakeDrafter final : public drafter::Drafter {
 public:
  // `kv_tokens`: capacity of the oracle's own KV cache.
  explicit OracleFakeDrafter(engine::Model* target, int max_block = 7, int64_t kv_tokens = 4096);

  std::string name() const override { return "oracle-fake"; }
  int max_block() const override { return inner_->max_block(); }
  absl::Status Open(drafter::SessionId session) override { return inner_->Open(session); }
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override {
    return inner_->Extend(session, tokens, features);
  }
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override;
  void Close(drafter::SessionId session) override { inner_->Close(session); }

 private:
  std::unique_ptr<drafter::DraftModelDrafter> inner_;
};

}  // namespace dspark::testing
