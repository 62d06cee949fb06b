// A model drafter with prompt lookup beside it: each block comes from the
// n-gram drafter when the sequence repeats its context (code, quoting,
// extraction) and from the model drafter (DSpark, draft model) otherwise.
// The two see the same sessions and the same committed tokens; only the
// model drafter reads context features. Not thread-safe (see Drafter).
//
//   HybridDrafter hybrid(std::move(dspark), std::move(ngram));
//   hybrid.Open(7);
//   hybrid.Extend(7, prompt_without_last, features);   // features for dspark
//   hybrid.Draft({{.session = 7, .last_token = t, .max_tokens = 5}}, &blocks);
//
// Choice, per request: the n-gram block's expected accepted length (the sum
// over positions of the product of confidences up to there) is compared with
// `ngram_enough`. At or above it the n-gram block is taken and the model
// drafter is not asked (its drafting costs a forward; a lookup costs
// nothing). Below it the model drafter drafts too and the block with the
// larger expected length is taken. The choice reads only the drafts and
// their confidences, never the target's verdict, and each drafter's q is
// exact for its own tokens, so verification stays lossless.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "draft_worker/drafter/drafter.h"
#include "draft_worker/ngram/ngram_drafter.h"

namespace dspark::drafter {

struct HybridDrafterOptions {
  // Expected accepted n-gram tokens at which the model drafter is skipped.
  // Default 1.0.
  double ngram_enough = 1.0;
};

class HybridDrafter final : public Drafter {
 public:
  // `model` drafts locally (not drafts_elsewhere()); both non-null, with the
  // same max_block().
  HybridDrafter(std::unique_ptr<Drafter> model, std::unique_ptr<NgramDrafter> ngram,
                const HybridDrafterOptions& options = {});

  std::string name() const override { return model_->name() + "+ngram"; }
  int max_block() const override { return model_->max_block(); }
  std::vector<int> context_layers() const override { return model_->context_layers(); }

  absl::Status Open(SessionId session) override;
  absl::Status Extend(SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override;
  absl::Status Draft(absl::Span<const DraftRequest> requests,
                     std::vector<DraftBlock>* blocks) override;
  absl::Status Fork(SessionId child, SessionId parent, int64_t prefix_len) override;
  void Close(SessionId session) override;

  // Blocks taken from each drafter so far (for tests and logs).
  int64_t ngram_blocks() const { return ngram_blocks_; }
  int64_t model_blocks() const { return model_blocks_; }

 private:
  std::unique_ptr<Drafter> model_;
  std::unique_ptr<NgramDrafter> ngram_;
  HybridDrafterOptions options_;
  int64_t ngram_blocks_ = 0;
  int64_t model_blocks_ = 0;
};

// Expected accepted tokens of a block: sum_i prod_{j <= i} confidence[j].
double ExpectedAccepted(const DraftBlock& block);

}  // namespace dspark::drafter
