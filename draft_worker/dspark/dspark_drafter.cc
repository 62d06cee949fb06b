#include "draft_worker/dspark/dspark_drafter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/engine/backend/cpu/matmul.h"
#include "common/engine/backend/cpu/thread_pool.h"
#include "common/engine/model/layers.h"
#include "common/engine/sampling/sampler.h"
#include "draft_worker/drafter/draft_requests.h"
#include "draft_worker/drafter/draft_sampling.h"

namespace dspark::drafter {

using engine::SeqId;

// One Draft call laid out as rows: request s owns rows [s * B, (s + 1) * B),
// row s * B + i sitting at position ctx_len[s] + i.
struct DsparkDrafter::BlockPlan {
  int64_t num_requests = 0;
  std::vector<SeqId> seq;        // [num_requests]
  std::vector<int64_t> ctx_len;  // [num_requests] L of each session
  std::vector<int32_t> ids;      // [num_requests * B] block input ids
};

DsparkDrafter::DsparkDrafter(std::unique_ptr<DsparkCheckpoint> ckpt, engine::Model* target,
                             const DsparkDrafterOptions& options)
    : ckpt_(std::move(ckpt)),
      target_(target),
      options_(options),
      kv_(engine::KvLayout{ckpt_->config().num_hidden_layers, ckpt_->config().num_key_value_heads,
                           ckpt_->config().head_dim},
          engine::KvCacheOptions{.block_size = options.kv_block_size,
                                 .max_tokens = options.max_context_tokens}),
      int8_(target->mode(), /*quantize_float=*/true, /*panels=*/true) {
  const DsparkWeights& w = ckpt_->weights();
  fc_ = int8_.Use(&w.fc);
  for (const DsparkLayerWeights& l : w.layers) {
    mats_.push_back({int8_.Use(&l.q_proj), int8_.Use(&l.k_proj), int8_.Use(&l.v_proj),
                     int8_.Use(&l.o_proj), int8_.Use(&l.gate_proj), int8_.Use(&l.up_proj),
                     int8_.Use(&l.down_proj)});
  }
}

DsparkDrafter::~DsparkDrafter() = default;

absl::StatusOr<std::unique_ptr<DsparkDrafter>> DsparkDrafter::Load(
    const std::string& dir, engine::Model* target, const DsparkDrafterOptions& options) {
  if (target == nullptr) return absl::InvalidArgumentError("DsparkDrafter needs a target model");
  if (options.max_context_tokens <= 0 || options.kv_block_size <= 0 ||
      options.max_pending_tokens <= 0) {
    return absl::InvalidArgumentError("DsparkDrafterOptions: sizes must be positive");
  }
  DSPARK_ASSIGN_OR_RETURN(auto ckpt, DsparkCheckpoint::Open(dir));
  DSPARK_RETURN_IF_ERROR(CheckTarget(*ckpt, *target));
  // The KV cache is allocated whole up front: refuse sizes that cannot be meant.
  const DsparkConfig& c = ckpt->config();
  const double kv_bytes = 2.0 * sizeof(float) * c.num_hidden_layers * c.num_key_value_heads *
                          c.head_dim * static_cast<double>(options.max_context_tokens);
  if (kv_bytes > kMaxKvBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": the drafter's KV cache for ", options.max_context_tokens,
                     " context tokens would take ", kv_bytes / (1 << 30), " GiB"));
  }
  std::unique_ptr<DsparkDrafter> drafter(new DsparkDrafter(std::move(ckpt), target, options));
  drafter->BuildHeads();
  return drafter;
}

absl::Status DsparkDrafter::CheckTarget(const DsparkCheckpoint& ckpt, const engine::Model& target) {
  const DsparkConfig& c = ckpt.config();
  const engine::ModelConfig& t = target.config();
  const std::string path = absl::StrCat(ckpt.dir(), "/", DsparkCheckpoint::kConfigFile);
  auto mismatch = [&](auto&&... parts) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": does not fit the target ", target.file().path(), ": ", parts...));
  };
  if (c.hidden_size != t.dim) {
    return mismatch("hidden_size ", c.hidden_size, " != target dim ", t.dim,
                    " (the drafter shares the target's embedding and head)");
  }
  if (c.target_hidden_size != t.dim) {
    return mismatch("target_hidden_size ", c.target_hidden_size, " != target dim ", t.dim);
  }
  if (c.vocab_size != t.vocab_size) {
    return mismatch("vocab_size ", c.vocab_size, " != target vocabulary ", t.vocab_size);
  }
  for (int l : c.target_layer_ids) {
    if (l >= t.num_layers) {
      return mismatch("target layer id ", l, " >= the target's ", t.num_layers, " layers");
    }
  }
  return absl::OkStatus();
}

void DsparkDrafter::BuildHeads() {
  const DsparkConfig& c = config();
  const engine::ModelConfig& t = target_->config();
  // Model::Load bound this tensor with shape {vocab, dim}.
  head_ = target_->file().FindTensor(t.tied_head ? "token_embd.weight" : "output.weight");
  const std::vector<int32_t>& d2t = ckpt_->weights().draft_to_target;
  if (!d2t.empty()) {
    const int64_t row_bytes = engine::RowBytes(head_->type, t.dim);
    draft_head_bytes_.resize(d2t.size() * row_bytes);
    for (size_t i = 0; i < d2t.size(); ++i) {
      std::memcpy(&draft_head_bytes_[i * row_bytes], head_->data + d2t[i] * row_bytes, row_bytes);
    }
    draft_head_ =
        engine::TensorView{.name = "dspark.draft_head",
                           .type = head_->type,
                           .shape = {static_cast<int64_t>(d2t.size()), t.dim},
                           .data = reinterpret_cast<const uint8_t*>(draft_head_bytes_.data()),
                           .nbytes = static_cast<int64_t>(draft_head_bytes_.size())};
    head_ = &draft_head_;
  }
  if (c.markov_rank == 0) return;
  // head_markov_ [V, r] = Head [V, dim] x markov.b [dim, r], in f32 whatever
  // the target's mode: the Markov correction of the logits, Head(m), is then
  // a rank-r product per drafted token instead of a pass over the head.
  const int64_t V = head_vocab(), r = c.markov_rank, dim = c.hidden_size;
  std::vector<float> b(dim * r), bt(r * dim);  // markov.b [dim, r] and its transpose
  for (int64_t d = 0; d < dim; ++d)
    engine::cpu::DequantizeRow(ckpt_->weights().markov_b, d, &b[d * r]);
  for (int64_t d = 0; d < dim; ++d) {
    for (int64_t k = 0; k < r; ++k) bt[k * dim + d] = b[d * r + k];
  }
  std::vector<float> hb(r * V);  // [r, V]
  engine::cpu::MatMul(*head_, bt.data(), r, hb.data(), engine::cpu::ActivationMode::kExact,
                      target_->thread_pool());
  head_markov_.resize(V * r);
  for (int64_t k = 0; k < r; ++k) {
    for (int64_t v = 0; v < V; ++v) head_markov_[v * r + k] = hb[k * V + v];
  }
  head_markov_view_ =
      engine::TensorView{.name = "dspark.head_markov",
                         .type = engine::GgmlType::kF32,
                         .shape = {V, r},
                         .data = reinterpret_cast<const uint8_t*>(head_markov_.data()),
                         .nbytes = static_cast<int64_t>(head_markov_.size() * sizeof(float))};
}

int64_t DsparkDrafter::head_vocab() const {
  return config().draft_vocab_size > 0 ? config().draft_vocab_size : config().vocab_size;
}

int64_t DsparkDrafter::ContextLength(SessionId session) const {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return -1;
  return kv_.Length(it->second.seq) +
         static_cast<int64_t>(it->second.pending.size()) / feature_dim();
}

int64_t DsparkDrafter::feature_dim() const {
  return static_cast<int64_t>(config().target_layer_ids.size()) * config().target_hidden_size;
}

absl::Status DsparkDrafter::Open(SessionId session) {
  if (sessions_.contains(session)) {
    return absl::AlreadyExistsError(absl::StrCat("session ", session, " is already open"));
  }
  sessions_[session] = Session{.seq = kv_.CreateSequence()};
  return absl::OkStatus();
}

absl::Status DsparkDrafter::Fork(SessionId child, SessionId parent, int64_t prefix_len) {
  auto it = sessions_.find(parent);
  if (it == sessions_.end())
    return absl::InvalidArgumentError(absl::StrCat("unknown session ", parent));
  if (sessions_.contains(child)) {
    return absl::AlreadyExistsError(absl::StrCat("session ", child, " is already open"));
  }
  if (prefix_len < 0 || prefix_len > ContextLength(parent)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix ", prefix_len, " beyond session ", parent));
  }
  Session* p = &it->second;
  Flush(absl::MakeConstSpan(&p, 1));
  // The context keys/values of the prefix are shared copy-on-write.
  DSPARK_ASSIGN_OR_RETURN(engine::SeqId seq, kv_.ForkSequence(p->seq, prefix_len));
  sessions_[child] = Session{.seq = seq};
  return absl::OkStatus();
}

void DsparkDrafter::Close(SessionId session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  kv_.FreeSequence(it->second.seq);
  sessions_.erase(it);
}

absl::Status DsparkDrafter::Extend(SessionId session, absl::Span<const int32_t> tokens,
                                   absl::Span<const float> features) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown session ", session));
  }
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (static_cast<int64_t>(features.size()) != n * feature_dim()) {
    return absl::InvalidArgumentError(absl::StrCat("Extend: ", features.size(),
                                                   " feature values for ", n, " tokens, want ", n,
                                                   " x ", feature_dim()));
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= config().vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("Extend: token ", t, " outside the vocabulary"));
    }
  }
  if (n == 0) return absl::OkStatus();
  Session* s = &it->second;
  // Room for the pending rows is taken now, so that Flush cannot fail.
  DSPARK_RETURN_IF_ERROR(kv_.Reserve(s->seq, ContextLength(session) + n));
  s->pending.insert(s->pending.end(), features.begin(), features.end());
  if (static_cast<int64_t>(s->pending.size()) >= options_.max_pending_tokens * feature_dim()) {
    Flush(absl::MakeConstSpan(&s, 1));
  }
  return absl::OkStatus();
}

void DsparkDrafter::Flush(absl::Span<Session* const> sessions) {
  const DsparkConfig& c = config();
  const int64_t fdim = feature_dim();
  // The rows of every session with pending context, session after session.
  struct Segment {
    Session* s;
    int64_t row0, rows, pos0;
  };
  std::vector<Segment> segments;
  int64_t n = 0;
  for (Session* s : sessions) {
    const int64_t rows = static_cast<int64_t>(s->pending.size()) / fdim;
    if (rows == 0) continue;
    segments.push_back({s, n, rows, kv_.Length(s->seq)});
    n += rows;
  }
  if (n == 0) return;
  std::vector<float> gathered;  // the features of several sessions side by side
  const float* features = segments[0].s->pending.data();
  if (segments.size() > 1) {
    gathered.reserve(n * fdim);
    for (const Segment& g : segments) {
      gathered.insert(gathered.end(), g.s->pending.begin(), g.s->pending.end());
    }
    features = gathered.data();
  }
  const engine::cpu::ActivationMode mode = target_->mode();
  engine::cpu::ThreadPool* pool = target_->thread_pool();
  // ctx [n, hidden] = RMSNorm(fc(F)) * hidden_norm.
  std::vector<float> ctx(n * c.hidden_size);
  engine::cpu::MatMul(*fc_, features, n, ctx.data(), mode, pool);
  for (int64_t r = 0; r < n; ++r) {
    float* row = &ctx[r * c.hidden_size];
    engine::RmsNorm(row, ckpt_->weights().hidden_norm.data(), 0.0f, c.hidden_size, c.rms_norm_eps,
                    row);
  }
  // Each layer's context K = RoPE(k_norm(k_proj(ctx))), V = v_proj(ctx).
  const int64_t hd = c.head_dim, kv_dim = c.num_key_value_heads * hd;
  const engine::RopeParams rope{.neox = true, .base = c.rope_theta};
  std::vector<float> k(n * kv_dim), v(n * kv_dim);  // [n, kv_heads * head_dim]
  for (int li = 0; li < c.num_hidden_layers; ++li) {
    const DsparkLayerWeights& l = ckpt_->weights().layers[li];
    engine::cpu::MatMul(*mats_[li].k, ctx.data(), n, k.data(), mode, pool);
    engine::cpu::MatMul(*mats_[li].v, ctx.data(), n, v.data(), mode, pool);
    for (const Segment& g : segments) {
      for (int64_t r = 0; r < g.rows; ++r) {
        float* kr = &k[(g.row0 + r) * kv_dim];
        for (int h = 0; h < c.num_key_value_heads; ++h) {
          engine::RmsNorm(kr + h * hd, l.k_norm.data(), 0.0f, hd, c.rms_norm_eps, kr + h * hd);
        }
        engine::ApplyRope(kr, c.num_key_value_heads, c.head_dim, g.pos0 + r, rope);
        std::memcpy(kv_.Key(li, g.s->seq, g.pos0 + r), kr, kv_dim * sizeof(float));
        std::memcpy(kv_.Value(li, g.s->seq, g.pos0 + r), &v[(g.row0 + r) * kv_dim],
                    kv_dim * sizeof(float));
      }
    }
  }
  for (const Segment& g : segments) {
    kv_.SetLength(g.s->seq, g.pos0 + g.rows);
    // A long prompt's rows are not kept allocated for the session's life.
    if (g.rows > options_.max_pending_tokens) {
      std::vector<float>().swap(g.s->pending);
    } else {
      g.s->pending.clear();
    }
  }
}

absl::Status DsparkDrafter::ValidateRequests(absl::Span<const DraftRequest> requests) const {
  return CheckDraftRequests(requests, max_block(), config().vocab_size,
                            [this](SessionId id) { return sessions_.contains(id); });
}

void DsparkDrafter::RunBlock(const BlockPlan& plan, std::vector<float>* hidden) {
  const DsparkConfig& c = config();
  const int64_t B = c.block_size;
  const int64_t T = plan.num_requests * B;
  const int64_t dim = c.hidden_size, hd = c.head_dim, ffn = c.intermediate_size;
  const int64_t q_dim = c.num_attention_heads * hd, kv_dim = c.num_key_value_heads * hd;
  const int group = c.num_attention_heads / c.num_key_value_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const engine::cpu::ActivationMode mode = target_->mode();
  engine::cpu::ThreadPool* pool = target_->thread_pool();
  const engine::RopeParams rope{.neox = true, .base = c.rope_theta};

  std::vector<float>& x = *hidden;  // [T, dim]
  x.resize(T * dim);
  target_->Embed(plan.ids, x.data());
  std::vector<float> h(T * dim), q(T * q_dim), k(T * kv_dim), v(T * kv_dim);
  std::vector<float> attn(T * q_dim), g(T * ffn), u(T * ffn);
  for (int li = 0; li < c.num_hidden_layers; ++li) {
    const DsparkLayerWeights& l = ckpt_->weights().layers[li];
    const LayerMatrices& m = mats_[li];
    for (int64_t t = 0; t < T; ++t) {
      engine::RmsNorm(&x[t * dim], l.input_layernorm.data(), 0.0f, dim, c.rms_norm_eps,
                      &h[t * dim]);
    }
    engine::cpu::MatMul(*m.q, h.data(), T, q.data(), mode, pool);  // [T, q_dim]
    engine::cpu::MatMul(*m.k, h.data(), T, k.data(), mode, pool);  // [T, kv_dim]
    engine::cpu::MatMul(*m.v, h.data(), T, v.data(), mode, pool);  // [T, kv_dim]
    for (int64_t t = 0; t < T; ++t) {
      const int64_t pos = plan.ctx_len[t / B] + t % B;
      float* qt = &q[t * q_dim];
      float* kt = &k[t * kv_dim];
      for (int hh = 0; hh < c.num_attention_heads; ++hh) {
        engine::RmsNorm(qt + hh * hd, l.q_norm.data(), 0.0f, hd, c.rms_norm_eps, qt + hh * hd);
      }
      for (int hh = 0; hh < c.num_key_value_heads; ++hh) {
        engine::RmsNorm(kt + hh * hd, l.k_norm.data(), 0.0f, hd, c.rms_norm_eps, kt + hh * hd);
      }
      engine::ApplyRope(qt, c.num_attention_heads, c.head_dim, pos, rope);
      engine::ApplyRope(kt, c.num_key_value_heads, c.head_dim, pos, rope);
    }
    // Each (row, head) output is reduced by one thread in one order: context
    // keys 0..L-1, then the block's B keys.
    pool->ParallelFor(T * c.num_attention_heads, [&](int64_t begin, int64_t end) {
      std::vector<float> scores;
      for (int64_t i = begin; i < end; ++i) {
        const int64_t t = i / c.num_attention_heads;
        const int hh = static_cast<int>(i % c.num_attention_heads);
        const int64_t s = t / B;
        const int64_t L = plan.ctx_len[s];
        const int64_t kv_off = static_cast<int64_t>(hh / group) * hd;
        const float* qh = &q[t * q_dim + hh * hd];
        const float* block_k = &k[s * B * kv_dim + kv_off];  // row j at + j * kv_dim
        const float* block_v = &v[s * B * kv_dim + kv_off];
        scores.resize(L + B);
        float max_score = -INFINITY;
        for (int64_t j = 0; j < L + B; ++j) {
          const float* kj =
              j < L ? kv_.Key(li, plan.seq[s], j) + kv_off : block_k + (j - L) * kv_dim;
          scores[j] = engine::DotF32(qh, kj, hd) * scale;
          max_score = std::max(max_score, scores[j]);
        }
        float sum = 0;
        for (int64_t j = 0; j < L + B; ++j) {
          scores[j] = std::exp(scores[j] - max_score);
          sum += scores[j];
        }
        const float inv = 1.0f / sum;
        float* o = &attn[t * q_dim + hh * hd];
        std::fill(o, o + hd, 0.0f);
        for (int64_t j = 0; j < L + B; ++j) {
          const float* vj =
              j < L ? kv_.Value(li, plan.seq[s], j) + kv_off : block_v + (j - L) * kv_dim;
          const float p = scores[j] * inv;
          for (int64_t d = 0; d < hd; ++d) o[d] += p * vj[d];
        }
      }
    });
    engine::cpu::MatMul(*m.o, attn.data(), T, h.data(), mode, pool);  // [T, dim]
    for (int64_t t = 0; t < T; ++t) {
      float* xt = &x[t * dim];
      for (int64_t i = 0; i < dim; ++i) xt[i] += h[t * dim + i];
      engine::RmsNorm(xt, l.post_attention_layernorm.data(), 0.0f, dim, c.rms_norm_eps,
                      &h[t * dim]);
    }
    engine::cpu::MatMul(*m.gate, h.data(), T, g.data(), mode, pool);  // [T, ffn]
    engine::cpu::MatMul(*m.up, h.data(), T, u.data(), mode, pool);    // [T, ffn]
    engine::SiluMul(g.data(), u.data(), T * ffn);
    engine::cpu::MatMul(*m.down, g.data(), T, h.data(), mode, pool);  // [T, dim]
    for (int64_t i = 0; i < T * dim; ++i) x[i] += h[i];
  }
  for (int64_t t = 0; t < T; ++t) {
    engine::RmsNorm(&x[t * dim], ckpt_->weights().norm.data(), 0.0f, dim, c.rms_norm_eps,
                    &x[t * dim]);
  }
}

absl::Status DsparkDrafter::Draft(absl::Span<const DraftRequest> requests,
                                  std::vector<DraftBlock>* blocks) {
  return DraftWithLogits(requests, blocks, nullptr);
}

absl::Status DsparkDrafter::DraftWithLogits(absl::Span<const DraftRequest> requests,
                                            std::vector<DraftBlock>* blocks,
                                            std::vector<float>* logits_out) {
  DSPARK_RETURN_IF_ERROR(ValidateRequests(requests));
  const DsparkConfig& c = config();
  const DsparkWeights& w = ckpt_->weights();
  const int64_t N = static_cast<int64_t>(requests.size());
  const int64_t B = c.block_size, dim = c.hidden_size, V = head_vocab();
  blocks->assign(N, DraftBlock{});
  if (logits_out != nullptr) logits_out->assign(N * B * V, 0.0f);
  if (N == 0) return absl::OkStatus();

  // The drafted sessions' held-back context first, in one batch.
  std::vector<Session*> drafted;
  for (const DraftRequest& r : requests) drafted.push_back(&sessions_.at(r.session));
  Flush(drafted);
  // The full B-slot block for every request, whatever its max_tokens: the
  // block's attention is bidirectional, so a shorter block would change the
  // draft.
  BlockPlan plan;
  plan.num_requests = N;
  for (int64_t i = 0; i < N; ++i) {
    const SeqId seq = drafted[i]->seq;
    plan.seq.push_back(seq);
    plan.ctx_len.push_back(kv_.Length(seq));
    plan.ids.push_back(requests[i].last_token);
    plan.ids.insert(plan.ids.end(), B - 1, c.mask_token_id);
  }
  std::vector<float> hfinal;  // [N * B, dim]
  RunBlock(plan, &hfinal);

  // Head(hfinal) for every wanted position in one pass over the head
  // weights: base [rows, V], row base_row[s * B + i] for i < max_tokens.
  const engine::cpu::ActivationMode mode = target_->mode();
  engine::cpu::ThreadPool* pool = target_->thread_pool();
  std::vector<int64_t> base_row(N * B, -1);
  std::vector<float> wanted;  // [rows, dim]
  int64_t rows = 0;
  for (int64_t s = 0; s < N; ++s) {
    for (int64_t i = 0; i < requests[s].max_tokens; ++i) {
      base_row[s * B + i] = rows++;
      const float* h = &hfinal[(s * B + i) * dim];
      wanted.insert(wanted.end(), h, h + dim);
    }
  }
  std::vector<float> base(rows * V);  // [rows, V]
  engine::cpu::MatMul(*head_, wanted.data(), rows, base.data(), mode, pool);

  // Then position by position over the requests still wanting it: the
  // Markov correction from the previous token, sampling, confidence.
  const float softcap = target_->config().final_softcap;
  const int64_t r = c.markov_rank;
  const std::vector<int32_t>& d2t = w.draft_to_target;
  std::vector<int32_t> prev(N);  // [N] target id before position i
  for (int64_t s = 0; s < N; ++s) prev[s] = requests[s].last_token;
  std::vector<int64_t> active;       // request indices, in order
  std::vector<int32_t> active_prev;  // [na]
  std::vector<float> e, a, m, correction;
  for (int64_t i = 0; i < B; ++i) {
    active.clear();
    active_prev.clear();
    for (int64_t s = 0; s < N; ++s) {
      if (requests[s].max_tokens > i) {
        active.push_back(s);
        active_prev.push_back(prev[s]);
      }
    }
    const int64_t na = static_cast<int64_t>(active.size());
    if (na == 0) break;
    m.assign(na * dim, 0.0f);  // [na, dim] markov.b(markov.a(Embed(prev)))
    if (r > 0) {
      e.resize(na * dim);
      a.resize(na * r);
      correction.resize(na * V);
      target_->Embed(active_prev, e.data());                                // [na, dim]
      engine::cpu::MatMul(w.markov_a, e.data(), na, a.data(), mode, pool);  // [na, r]
      engine::cpu::MatMul(w.markov_b, a.data(), na, m.data(), mode, pool);  // [na, dim]
      engine::cpu::MatMul(head_markov_view_, a.data(), na, correction.data(), mode,
                          pool);  // [na, V]
    }
    for (int64_t j = 0; j < na; ++j) {
      const int64_t s = active[j];
      const DraftRequest& req = requests[s];
      // logits = Head(hfinal + m) = Head(hfinal) + (Head markov.b) a, soft-capped.
      float* row = &base[base_row[s * B + i] * V];
      if (r > 0) {
        const float* corr = &correction[j * V];
        for (int64_t v = 0; v < V; ++v) row[v] += corr[v];
      }
      if (softcap > 0) {
        for (int64_t v = 0; v < V; ++v) row[v] = std::tanh(row[v] / softcap) * softcap;
      }
      const double u = req.sampling.temperature > 0
                           ? engine::UniformDraw(DraftSeed(req.sampling.seed), req.draw_counter + i)
                           : 0.0;
      SparseDist q;
      int32_t token = SampleDraft(row, V, req.sampling, kDraftTopK, u, &q);
      if (!d2t.empty()) {
        token = d2t[token];
        for (auto& [id, p] : q) id = d2t[id];
      }
      // confidence = sigmoid(w . z + bias), z = hfinal + m.
      float* z = &m[j * dim];
      const float* hf = &hfinal[(s * B + i) * dim];
      for (int64_t d = 0; d < dim; ++d) z[d] += hf[d];
      const float score = engine::DotF32(w.confidence_weight.data(), z, dim) + w.confidence_bias;
      DraftBlock& block = (*blocks)[s];
      block.tokens.push_back(token);
      block.q.push_back(std::move(q));
      block.confidence.push_back(1.0f / (1.0f + std::exp(-score)));
      prev[s] = token;
      if (logits_out != nullptr) {
        std::memcpy(&(*logits_out)[(s * B + i) * V], row, V * sizeof(float));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace dspark::drafter
