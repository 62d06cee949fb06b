// The draft-model drafter: a small autoregressive LM over the target's
// vocabulary drafts one token per forward, batched across sessions. Any
// engine Model serves; until a trained one exists, the target's first N
// layers plus its final norm and head (ModelOptions::max_layers) stand in.
// Not thread-safe (see Drafter); it calls the draft model's Forward, so it
// must be the only caller of that model at the time.
//
//   DSPARK_ASSIGN_OR_RETURN(auto draft, Model::Load(path, {.max_layers = 8}));
//   DSPARK_ASSIGN_OR_RETURN(auto drafter,
//       DraftModelDrafter::Create(std::move(draft), target.config().vocab_size, {}));
//
// Each session is one sequence of the drafter's own KV cache. Extend only
// queues committed tokens; the next Draft feeds them in its first forward,
// together with the request's last_token. Drafted tokens enter the KV too
// (each one is fed to draft the next); the next Extend keeps those the target
// accepted (their KV is bit-identical to a fresh feed: the engine's numerics
// are batch-invariant) and rolls the rest back. Confidence is the draft
// model's top-1 probability at each position.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/engine/kv_cache/kv_cache.h"
#include "common/engine/model/model.h"
#include "draft_worker/drafter/draft_sampling.h"
#include "draft_worker/drafter/drafter.h"

namespace dspark::drafter {

struct DraftModelDrafterOptions {
  // Largest block. Default 7.
  int max_block = 7;
  // Truncation of sampled drafts' distributions (SampleDraft). Default kDraftTopK.
  int top_k = kDraftTopK;
  // The drafter's own KV cache. Default: KvCacheOptions's defaults.
  engine::KvCacheOptions kv;
};

class DraftModelDrafter final : public Drafter {
 public:
  // InvalidArgument when the draft model's vocabulary is not `target_vocab`
  // (drafts would name other tokens) or the options are out of range.
  static absl::StatusOr<std::unique_ptr<DraftModelDrafter>> Create(
      std::unique_ptr<engine::Model> draft, int target_vocab,
      const DraftModelDrafterOptions& options);
  // The same over a model the caller owns and keeps alive (a model shared
  // with another user on the same thread, e.g. a test oracle drafting with
  // the target itself).
  static absl::StatusOr<std::unique_ptr<DraftModelDrafter>> CreateShared(
      engine::Model* draft, int target_vocab, const DraftModelDrafterOptions& options);

  ~DraftModelDrafter() override;

  std::string name() const override { return "draft-model"; }
  int max_block() const override { return options_.max_block; }

  absl::Status Open(SessionId session) override;
  // InvalidArgument for an unknown session, a token outside the vocabulary or
  // non-empty features.
  absl::Status Extend(SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override;
  // InvalidArgument for bad requests (unknown or repeated session, max_tokens
  // outside [1, max_block()], last_token outside the vocabulary, bad sampling
  // parameters); ResourceExhausted when the KV cache cannot hold the batch.
  // Either way nothing changes. A session at the model's context length gets
  // a shorter (possibly empty) block.
  absl::Status Draft(absl::Span<const DraftRequest> requests,
                     std::vector<DraftBlock>* blocks) override;
  // Shares the parent's KV for the committed prefix (copy-on-write blocks).
  absl::Status Fork(SessionId child, SessionId parent, int64_t prefix_len) override;
  void Close(SessionId session) override;

  const engine::KvCache& kv_cache() const { return *cache_; }

 private:
  struct Session {
    engine::SeqId seq = -1;
    int64_t kv_committed = 0;          // KV positions holding committed tokens
    std::vector<int32_t> pending;      // committed tokens not yet in the KV
    std::vector<int32_t> speculative;  // [KV length - kv_committed] fed by the last Draft
  };

  DraftModelDrafter(std::unique_ptr<engine::Model> owned, engine::Model* model,
                    const DraftModelDrafterOptions& options);
  // Forgets the drafts of the last Draft: truncates the KV to the committed part.
  void RollBack(Session& s);

  std::unique_ptr<engine::Model> owned_;  // null when the caller owns the model
  engine::Model* model_;
  DraftModelDrafterOptions options_;
  int vocab_;
  std::unique_ptr<engine::KvCache> cache_;
  absl::flat_hash_map<SessionId, Session> sessions_;
};

}  // namespace dspark::drafter
