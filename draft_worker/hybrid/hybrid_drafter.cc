#include "draft_worker/hybrid/hybrid_drafter.h"

#include <utility>

#include "common/base/logging.h"
#include "common/base/status_macros.h"

namespace dspark::drafter {

double ExpectedAccepted(const DraftBlock& block) {
  double all_so_far = 1, sum = 0;
  for (float c : block.confidence) {
    all_so_far *= c;
    sum += all_so_far;
  }
  return sum;
}

HybridDrafter::HybridDrafter(std::unique_ptr<Drafter> model, std::unique_ptr<NgramDrafter> ngram,
                             const HybridDrafterOptions& options)
    : model_(std::move(model)), ngram_(std::move(ngram)), options_(options) {
  DSPARK_CHECK(model_ != nullptr && ngram_ != nullptr);
  DSPARK_CHECK(!model_->drafts_elsewhere()) << model_->name() << " drafts on another worker";
  DSPARK_CHECK(model_->max_block() == ngram_->max_block())
      << model_->max_block() << " vs " << ngram_->max_block();
}

absl::Status HybridDrafter::Open(SessionId session) {
  DSPARK_RETURN_IF_ERROR(model_->Open(session));
  absl::Status st = ngram_->Open(session);
  if (!st.ok()) model_->Close(session);
  return st;
}

absl::Status HybridDrafter::Extend(SessionId session, absl::Span<const int32_t> tokens,
                                   absl::Span<const float> features) {
  // The model drafter checks the features; the n-gram index only grows, so
  // it goes second, after everything that can refuse.
  DSPARK_RETURN_IF_ERROR(model_->Extend(session, tokens, features));
  return ngram_->Extend(session, tokens, {});
}

absl::Status HybridDrafter::Draft(absl::Span<const DraftRequest> requests,
                                  std::vector<DraftBlock>* blocks) {
  // The n-gram drafter checks every request (same max_block) before it
  // changes anything.
  DSPARK_RETURN_IF_ERROR(ngram_->Draft(requests, blocks));
  std::vector<bool> from_ngram(requests.size());
  std::vector<DraftRequest> ask;
  std::vector<size_t> where;
  for (size_t i = 0; i < requests.size(); ++i) {
    from_ngram[i] = !(*blocks)[i].tokens.empty();
    if (ExpectedAccepted((*blocks)[i]) < options_.ngram_enough) {
      ask.push_back(requests[i]);
      where.push_back(i);
    }
  }
  if (!ask.empty()) {
    std::vector<DraftBlock> drafted;
    DSPARK_RETURN_IF_ERROR(model_->Draft(ask, &drafted));
    for (size_t j = 0; j < ask.size(); ++j) {
      DraftBlock& b = (*blocks)[where[j]];
      if (b.tokens.empty() || ExpectedAccepted(drafted[j]) > ExpectedAccepted(b)) {
        b = std::move(drafted[j]);
        from_ngram[where[j]] = false;
      }
    }
  }
  for (bool n : from_ngram) ++(n ? ngram_blocks_ : model_blocks_);
  return absl::OkStatus();
}

absl::Status HybridDrafter::Fork(SessionId child, SessionId parent, int64_t prefix_len) {
  DSPARK_RETURN_IF_ERROR(model_->Fork(child, parent, prefix_len));
  absl::Status st = ngram_->Fork(child, parent, prefix_len);
  if (!st.ok()) model_->Close(child);
  return st;
}

void HybridDrafter::Close(SessionId session) {
  model_->Close(session);
  ngram_->Close(session);
}

}  // namespace dspark::drafter
