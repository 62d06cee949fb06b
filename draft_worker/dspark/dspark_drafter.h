// The DSpark block drafter on the CPU: one forward pass drafts a block of B
// tokens for every session in the batch from the target's context features,
// a low-rank Markov head makes each position depend on the token drafted
// before it, and a confidence head scores each position. Not thread-safe
// (the Drafter contract: one calling thread); it runs its kernels on the
// target model's thread pool.
//
//   DSPARK_ASSIGN_OR_RETURN(auto drafter, DsparkDrafter::Load("/m/smollm2-dspark", target));
//   drafter->Open(7);
//   drafter->Extend(7, tokens, features);  // features: [n, layers * target dim]
//   drafter->Draft({{.session = 7, .last_token = t, .max_tokens = 7}}, &blocks);
//
// The architecture (checkpoint format: dspark_checkpoint.h; the PyTorch
// reference with the same math: tools/dspark_drafter/model.py):
//   Context. Token p < L of a session (L = its context length) has target
//   features F_p = concat of the target's hidden states after the layers
//   target_layer_ids, [len(ids) * target_hidden]. ctx_p = RMSNorm(fc(F_p)) *
//   hidden_norm. Each drafter layer turns ctx_p into a context key/value:
//   K = RoPE(k_norm(k_proj(ctx_p)), p), V = v_proj(ctx_p), computed once in
//   Extend and kept in a KvCache.
//   Block. Input ids [t, mask x (B-1)] at positions L..L+B-1 (t = the last
//   token), x = target.Embed(ids). Each layer (Qwen3-style, pre-norm):
//   h = RMSNorm(x) * input_layernorm; Q = RoPE(q_norm(q_proj(h))), the
//   block's own K/V as for the context but from h; every block query
//   attends to all context keys and all B block keys (bidirectional in the
//   block; GQA; scale 1/sqrt(head_dim); f32 softmax); x += o_proj(attn);
//   x += down(silu(gate(h2)) * up(h2)), h2 = RMSNorm(x) * post_attention_layernorm.
//   hfinal_i = RMSNorm(x_i) * norm: slot i drafts the token at L + 1 + i.
//   Head (sequential over i, batched over sessions). prev_0 = t, prev_i =
//   drafted token i - 1; m_i = markov.b(markov.a(target.Embed(prev_i)));
//   z_i = hfinal_i + m_i; logits_i = target.LmHead(z_i) (over the d2t rows
//   only when the checkpoint has a draft vocabulary); token_i =
//   SampleDraft(logits_i); confidence_i = sigmoid(confidence . z_i + bias).
//   By linearity Head(z_i) = Head(hfinal_i) + (Head markov.b) a_i with
//   a_i = markov.a(Embed(prev_i)): Draft computes Head(hfinal) for all
//   positions in one pass over the head weights and the correction through
//   Head x markov.b [vocab, r], precomputed at Load (soft-capping, if the
//   target has it, applies to the sum). The PyTorch reference computes
//   Head(z) directly; the two agree to rounding.
//
// Numerics: every matmul is cpu::MatMul in the target's activation mode (in
// int8 mode over Q8_0 copies of the checkpoint's float matrices) and
// every reduction runs in one fixed order per output, so a session's draft
// does not depend on the other sessions in the call, on max_tokens, or on
// how its context was split across Extend calls.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/engine/kv_cache/kv_cache.h"
#include "common/engine/model/model.h"
#include "draft_worker/drafter/drafter.h"
#include "draft_worker/dspark/dspark_checkpoint.h"

namespace dspark::drafter {

// Load refuses a KV cache larger than this (allocated whole up front).
inline constexpr double kMaxKvBytes = 16.0 * (1ull << 30);

struct DsparkDrafterOptions {
  // Context tokens the drafter's KV cache holds across all sessions; Extend
  // past it is ResourceExhausted. Default 32768.
  int64_t max_context_tokens = 32768;
  // KV cache page size in tokens. Default 16.
  int kv_block_size = 16;
  // Context tokens a session may hold back: Extend keeps the features and
  // turns them into keys/values at the session's next Draft or Fork, in one
  // pass with the other drafted sessions' (a session whose drafts are paused
  // costs no compute), or once this many are waiting. >= 1. Default 64.
  int64_t max_pending_tokens = 64;
};

class DsparkDrafter : public Drafter {
 public:
  // Loads dir/config.json + dir/model.safetensors for `target` (not owned;
  // must outlive the drafter). InvalidArgument naming the file when the
  // checkpoint is malformed or does not fit the target (dim, vocabulary,
  // layer ids, mask token).
  static absl::StatusOr<std::unique_ptr<DsparkDrafter>> Load(
      const std::string& dir, engine::Model* target, const DsparkDrafterOptions& options = {});
  ~DsparkDrafter() override;

  std::string name() const override { return "dspark"; }
  int max_block() const override { return config().block_size; }
  std::vector<int> context_layers() const override { return config().target_layer_ids; }

  absl::Status Open(SessionId session) override;
  absl::Status Extend(SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override;
  absl::Status Draft(absl::Span<const DraftRequest> requests,
                     std::vector<DraftBlock>* blocks) override;
  // Shares the parent's context keys/values for the prefix (copy-on-write).
  absl::Status Fork(SessionId child, SessionId parent, int64_t prefix_len) override;
  void Close(SessionId session) override;

  // Draft that also returns the head's logits (tests, references):
  // *logits is [requests.size(), max_block(), head_vocab()], request-major;
  // rows at positions >= a request's max_tokens are left zero.
  absl::Status DraftWithLogits(absl::Span<const DraftRequest> requests,
                               std::vector<DraftBlock>* blocks, std::vector<float>* logits);

  const DsparkConfig& config() const { return ckpt_->config(); }
  // Columns of the head's logits: draft_vocab_size with a d2t, else the
  // target vocabulary.
  int64_t head_vocab() const;
  // Context tokens a session holds (its L, pending ones included); -1 for an
  // unknown session.
  int64_t ContextLength(SessionId session) const;

 private:
  struct BlockPlan;
  struct Session {
    engine::SeqId seq = -1;
    // [pending rows, feature_dim()]: context features whose keys/values are
    // not written yet (room for them is reserved in kv_).
    std::vector<float> pending;
  };
  DsparkDrafter(std::unique_ptr<DsparkCheckpoint> ckpt, engine::Model* target,
                const DsparkDrafterOptions& options);
  static absl::Status CheckTarget(const DsparkCheckpoint& ckpt, const engine::Model& target);
  void BuildHeads();
  absl::Status ValidateRequests(absl::Span<const DraftRequest> requests) const;
  // The block forward: x [rows, hidden] -> hfinal [rows, hidden].
  void RunBlock(const BlockPlan& plan, std::vector<float>* hidden);
  int64_t feature_dim() const;
  // Writes the pending context of `sessions` into kv_: fc, norm and every
  // layer's keys/values as one batch of rows.
  void Flush(absl::Span<Session* const> sessions);

  std::unique_ptr<DsparkCheckpoint> ckpt_;
  engine::Model* target_;
  DsparkDrafterOptions options_;
  engine::KvCache kv_;  // one sequence per session
  absl::flat_hash_map<SessionId, Session> sessions_;
  // The matrices as the kernels read them: the checkpoint's in exact mode;
  // in int8 mode their Q8_0 copies (panel-packed on AVX2), owned by int8_,
  // as for a target stored in a float type (ModelOptions::quantize_float_weights).
  struct LayerMatrices {
    const engine::TensorView *q, *k, *v, *o, *gate, *up, *down;
  };
  engine::cpu::Int8Weights int8_;
  const engine::TensorView* fc_ = nullptr;
  std::vector<LayerMatrices> mats_;
  // The head: the target's {vocab, hidden} tensor, or with a draft
  // vocabulary draft_head_, its rows for d2t gathered into draft_head_bytes_.
  const engine::TensorView* head_ = nullptr;
  std::string draft_head_bytes_;
  engine::TensorView draft_head_;  // {draft_vocab, hidden}
  // Head x markov.b: [head_vocab, r] f32 (empty when r = 0), and its view.
  std::vector<float> head_markov_;
  engine::TensorView head_markov_view_;
};

}  // namespace dspark::drafter
