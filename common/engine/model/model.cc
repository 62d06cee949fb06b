#include "common/engine/model/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/engine/backend/cpu/thread_pool.h"
#include "common/engine/model/layers.h"

namespace dspark::engine {

struct Model::LayerWeights {
  std::vector<float> attn_norm;       // [dim]
  const TensorView* wq = nullptr;     // {heads * head_dim, dim}
  const TensorView* wk = nullptr;     // {kv_heads * head_dim, dim}
  const TensorView* wv = nullptr;     // {kv_heads * head_dim, dim}
  const TensorView* wo = nullptr;     // {dim, heads * head_dim}
  std::vector<float> bq, bk, bv;      // biases (Qwen2) or empty
  std::vector<float> q_norm, k_norm;  // [head_dim] (Qwen3, Gemma 3) or empty
  std::vector<float> post_attn_norm;  // [dim] (Gemma) or empty
  std::vector<float> ffn_norm;        // [dim]
  const TensorView* gate = nullptr;   // {ffn_dim, dim}
  const TensorView* up = nullptr;     // {ffn_dim, dim}
  const TensorView* down = nullptr;   // {dim, ffn_dim}
  std::vector<float> post_ffn_norm;   // [dim] (Gemma) or empty
};

namespace {

absl::StatusOr<const TensorView*> Find(const ModelFile& file, const std::string& name,
                                       std::vector<int64_t> shape) {
  const TensorView* t = file.FindTensor(name);
  if (t == nullptr)
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": missing tensor ", name));
  if (t->shape != shape) {
    std::string want, got;
    for (int64_t d : shape) absl::StrAppend(&want, want.empty() ? "" : ",", d);
    for (int64_t d : t->shape) absl::StrAppend(&got, got.empty() ? "" : ",", d);
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor ", name, " has shape {",
                                                   got, "}, the metadata says {", want, "}"));
  }
  return t;
}

// A small vector tensor (norm weight, bias) as f32; empty if absent and optional.
absl::StatusOr<std::vector<float>> Vec(const ModelFile& file, const std::string& name, int64_t n,
                                       bool optional) {
  const TensorView* t = file.FindTensor(name);
  if (t == nullptr && optional) return std::vector<float>();
  DSPARK_ASSIGN_OR_RETURN(t, Find(file, name, {n}));
  std::vector<float> out(n);
  cpu::DequantizeRow(*t, 0, out.data());
  return out;
}

}  // namespace

Model::Model(std::unique_ptr<ModelFile> file, ModelConfig config, const ModelOptions& options)
    : file_(std::move(file)),
      config_(std::move(config)),
      options_(options),
      int8_weights_(options.mode, options.quantize_float_weights, options.panel_weights) {
  pool_ = std::make_unique<cpu::ThreadPool>(options_.threads);
}

Model::~Model() = default;

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& path,
                                                   const ModelOptions& options) {
  DSPARK_ASSIGN_OR_RETURN(auto file, OpenModelFile(path));
  return FromFile(std::move(file), options);
}

absl::StatusOr<std::unique_ptr<Model>> Model::FromFile(std::unique_ptr<ModelFile> file,
                                                       const ModelOptions& options) {
  DSPARK_ASSIGN_OR_RETURN(ModelConfig config, ReadModelConfig(*file));
  if (options.max_layers < 0) return absl::InvalidArgumentError("max_layers must be >= 0");
  if (options.max_layers > 0 && options.max_layers < config.num_layers) {
    config.num_layers = options.max_layers;
    config.layer_is_sliding.resize(config.num_layers);
  }
  std::unique_ptr<Model> model(new Model(std::move(file), std::move(config), options));
  DSPARK_RETURN_IF_ERROR(model->BindWeights());
  return model;
}

absl::Status Model::BindWeights() {
  const ModelFile& f = *file_;
  const ModelConfig& c = config_;
  const int64_t q_dim = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  DSPARK_ASSIGN_OR_RETURN(token_embd_, Find(f, "token_embd.weight", {c.vocab_size, c.dim}));
  DSPARK_ASSIGN_OR_RETURN(final_norm_, Vec(f, "output_norm.weight", c.dim, false));
  if (c.tied_head) {
    output_ = token_embd_;
  } else {
    DSPARK_ASSIGN_OR_RETURN(output_, Find(f, "output.weight", {c.vocab_size, c.dim}));
  }
  layers_.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat("blk.", i, ".");
    LayerWeights& l = layers_[i];
    DSPARK_ASSIGN_OR_RETURN(l.attn_norm, Vec(f, p + "attn_norm.weight", c.dim, false));
    DSPARK_ASSIGN_OR_RETURN(l.wq, Find(f, p + "attn_q.weight", {q_dim, c.dim}));
    DSPARK_ASSIGN_OR_RETURN(l.wk, Find(f, p + "attn_k.weight", {kv_dim, c.dim}));
    DSPARK_ASSIGN_OR_RETURN(l.wv, Find(f, p + "attn_v.weight", {kv_dim, c.dim}));
    DSPARK_ASSIGN_OR_RETURN(l.wo, Find(f, p + "attn_output.weight", {c.dim, q_dim}));
    DSPARK_ASSIGN_OR_RETURN(l.bq, Vec(f, p + "attn_q.bias", q_dim, true));
    DSPARK_ASSIGN_OR_RETURN(l.bk, Vec(f, p + "attn_k.bias", kv_dim, true));
    DSPARK_ASSIGN_OR_RETURN(l.bv, Vec(f, p + "attn_v.bias", kv_dim, true));
    DSPARK_ASSIGN_OR_RETURN(l.q_norm, Vec(f, p + "attn_q_norm.weight", c.head_dim, !c.qk_norm));
    DSPARK_ASSIGN_OR_RETURN(l.k_norm, Vec(f, p + "attn_k_norm.weight", c.head_dim, !c.qk_norm));
    DSPARK_ASSIGN_OR_RETURN(l.ffn_norm, Vec(f, p + "ffn_norm.weight", c.dim, false));
    DSPARK_ASSIGN_OR_RETURN(l.gate, Find(f, p + "ffn_gate.weight", {c.ffn_dim, c.dim}));
    DSPARK_ASSIGN_OR_RETURN(l.up, Find(f, p + "ffn_up.weight", {c.ffn_dim, c.dim}));
    DSPARK_ASSIGN_OR_RETURN(l.down, Find(f, p + "ffn_down.weight", {c.dim, c.ffn_dim}));
    if (c.sandwich_norms) {
      DSPARK_ASSIGN_OR_RETURN(l.post_attn_norm,
                              Vec(f, p + "post_attention_norm.weight", c.dim, false));
      DSPARK_ASSIGN_OR_RETURN(l.post_ffn_norm, Vec(f, p + "post_ffw_norm.weight", c.dim, false));
    }
  }
  PrepareInt8Weights();
  return absl::OkStatus();
}

void Model::PrepareInt8Weights() {
  output_ = int8_weights_.Use(output_);
  for (LayerWeights& l : layers_) {
    for (const TensorView** t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) {
      *t = int8_weights_.Use(*t);
    }
  }
}

std::unique_ptr<KvCache> Model::NewKvCache(const KvCacheOptions& options) const {
  return std::make_unique<KvCache>(
      KvLayout{config_.num_layers, config_.num_kv_heads, config_.head_dim}, options);
}

int64_t Model::WeightBytesPerToken() const {
  int64_t bytes = output_->nbytes;
  for (const LayerWeights& l : layers_) {
    for (const TensorView* t : {l.wq, l.wk, l.wv, l.wo, l.gate, l.up, l.down}) bytes += t->nbytes;
  }
  return bytes;
}

void Model::Embed(absl::Span<const int32_t> ids, float* out) const {
  const int64_t dim = config_.dim;
  for (size_t t = 0; t < ids.size(); ++t) {
    cpu::DequantizeRow(*token_embd_, ids[t], &out[t * dim]);
    if (config_.embed_scale != 1.0f) {
      for (int64_t i = 0; i < dim; ++i) out[t * dim + i] *= config_.embed_scale;
    }
  }
}

void Model::LmHead(const float* hidden, int64_t rows, float* logits) const {
  if (rows == 0) return;
  cpu::MatMul(*output_, hidden, rows, logits, options_.mode, pool_.get());
  if (config_.final_softcap > 0) {
    const float cap = config_.final_softcap;
    for (int64_t i = 0; i < rows * config_.vocab_size; ++i) {
      logits[i] = std::tanh(logits[i] / cap) * cap;
    }
  }
}

absl::Status Model::Validate(const ForwardBatch& batch, const KvCache& cache) const {
  if (batch.seqs.empty()) return absl::InvalidArgumentError("empty batch");
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (batch.seqs[i].seq == batch.seqs[j].seq) {
        return absl::InvalidArgumentError(
            absl::StrCat("sequence ", batch.seqs[i].seq, " appears twice in the batch"));
      }
    }
  }
  for (const SequenceInput& s : batch.seqs) {
    if (!cache.HasSequence(s.seq))
      return absl::InvalidArgumentError(absl::StrCat("unknown sequence ", s.seq));
    if (s.tokens.empty())
      return absl::InvalidArgumentError("a sequence in the batch has no tokens");
    for (int32_t t : s.tokens) {
      if (t < 0 || t >= config_.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", t, " outside the vocabulary [0, ", config_.vocab_size, ")"));
      }
    }
    const int64_t n = static_cast<int64_t>(s.tokens.size());
    for (const auto* rows : {&s.logit_rows, &s.feature_rows}) {
      for (int32_t r : *rows) {
        if (r < 0 || r >= n)
          return absl::InvalidArgumentError(absl::StrCat("row ", r, " outside the ", n, " tokens"));
      }
    }
    if (cache.Length(s.seq) + n > config_.context_length) {
      return absl::InvalidArgumentError(absl::StrCat("sequence of ", cache.Length(s.seq) + n,
                                                     " tokens exceeds the context length ",
                                                     config_.context_length));
    }
  }
  for (int layer : batch.capture_layers) {
    if (layer < 0 || layer >= config_.num_layers) {
      return absl::InvalidArgumentError(absl::StrCat("capture layer ", layer, " out of range"));
    }
  }
  return absl::OkStatus();
}

absl::Status Model::Forward(const ForwardBatch& batch, KvCache* cache, ForwardOutput* out) {
  DSPARK_RETURN_IF_ERROR(Validate(batch, *cache));
  const ModelConfig& c = config_;
  // Flatten the ragged batch: token t belongs to seq_of[t] at position pos_of[t].
  std::vector<int32_t> ids;
  std::vector<SeqId> seq_of;
  std::vector<int64_t> pos_of, logit_tokens, feature_tokens;
  std::vector<int64_t> old_len;
  for (const SequenceInput& s : batch.seqs) {
    const int64_t base = static_cast<int64_t>(ids.size());
    const int64_t len = cache->Length(s.seq);
    old_len.push_back(len);
    for (size_t i = 0; i < s.tokens.size(); ++i) {
      ids.push_back(s.tokens[i]);
      seq_of.push_back(s.seq);
      pos_of.push_back(len + static_cast<int64_t>(i));
    }
    for (int32_t r : s.logit_rows) logit_tokens.push_back(base + r);
    for (int32_t r : s.feature_rows) feature_tokens.push_back(base + r);
  }
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceInput& s = batch.seqs[i];
    absl::Status st = cache->Reserve(s.seq, cache->Length(s.seq) + s.tokens.size());
    if (!st.ok()) {
      for (size_t j = 0; j <= i; ++j) cache->Truncate(batch.seqs[j].seq, old_len[j]);
      return st;
    }
  }

  const int64_t T = static_cast<int64_t>(ids.size());
  const int64_t dim = c.dim, hd = c.head_dim;
  const int64_t q_dim = c.num_heads * hd, kv_dim = c.num_kv_heads * hd;
  const cpu::ActivationMode mode = options_.mode;
  std::vector<float> x(T * dim), h(T * dim), q(T * q_dim), k(T * kv_dim), v(T * kv_dim);
  std::vector<float> attn(T * q_dim), g(T * c.ffn_dim), u(T * c.ffn_dim);
  Embed(ids, x.data());  // [T, dim]
  // RoPE angles of every token, [2][T][cos half | sin half] for global
  // ([0]) and sliding-window ([1]) layers: computed once, not per layer.
  const int64_t half = hd / 2;
  std::vector<float> rope_angles[2];
  for (int local = 0; local < 2; ++local) {
    if (local == 1 && std::find(c.layer_is_sliding.begin(), c.layer_is_sliding.end(), true) ==
                          c.layer_is_sliding.end()) {
      break;
    }
    const RopeParams rope{
        .neox = c.rope_neox,
        .base = local ? c.rope_base_local : c.rope_base,
        .linear_factor = local ? 1.0f : c.rope_linear_factor,
        .freq_factors = c.rope_freq_factors.empty() ? nullptr : c.rope_freq_factors.data()};
    rope_angles[local].resize(2 * T * half);
    for (int64_t t = 0; t < T; ++t) {
      float* cs = &rope_angles[local][2 * t * half];
      RopeAngles(static_cast<int>(hd), pos_of[t], rope, cs, cs + half);
    }
  }
  // Per layer, pointers to each sequence's cache entries [0, final length):
  // token t's keys start at key_ptrs[ptr_base_of[t]].
  std::vector<int64_t> seq_ptr_base(batch.seqs.size()), ptr_base_of(T);
  int64_t num_ptrs = 0;
  for (size_t si = 0, t = 0; si < batch.seqs.size(); ++si) {
    seq_ptr_base[si] = num_ptrs;
    for (size_t i = 0; i < batch.seqs[si].tokens.size(); ++i) ptr_base_of[t++] = num_ptrs;
    num_ptrs += old_len[si] + static_cast<int64_t>(batch.seqs[si].tokens.size());
  }
  std::vector<const float*> key_ptrs(num_ptrs), value_ptrs(num_ptrs);
  const int ncap = static_cast<int>(batch.capture_layers.size());
  out->features.assign(feature_tokens.size() * ncap * dim, 0.0f);

  for (int li = 0; li < c.num_layers; ++li) {
    const LayerWeights& l = layers_[li];
    const bool sliding = c.layer_is_sliding[li];
    for (int64_t t = 0; t < T; ++t) {
      RmsNorm(&x[t * dim], l.attn_norm.data(), c.norm_weight_offset, dim, c.rms_eps, &h[t * dim]);
    }
    const cpu::MatMulTarget qkv[] = {{l.wq, q.data()}, {l.wk, k.data()}, {l.wv, v.data()}};
    cpu::MatMulShared(qkv, 3, h.data(), T, mode, pool_.get());
    for (int64_t t = 0; t < T; ++t) {
      float* qt = &q[t * q_dim];
      float* kt = &k[t * kv_dim];
      float* vt = &v[t * kv_dim];
      if (!l.bq.empty()) {
        for (int64_t i = 0; i < q_dim; ++i) qt[i] += l.bq[i];
        for (int64_t i = 0; i < kv_dim; ++i) kt[i] += l.bk[i];
        for (int64_t i = 0; i < kv_dim; ++i) vt[i] += l.bv[i];
      }
      if (!l.q_norm.empty()) {
        for (int hh = 0; hh < c.num_heads; ++hh) {
          RmsNorm(qt + hh * hd, l.q_norm.data(), c.norm_weight_offset, hd, c.rms_eps, qt + hh * hd);
        }
        for (int hh = 0; hh < c.num_kv_heads; ++hh) {
          RmsNorm(kt + hh * hd, l.k_norm.data(), c.norm_weight_offset, hd, c.rms_eps, kt + hh * hd);
        }
      }
      const float* cs = &rope_angles[sliding][2 * t * half];
      ApplyRopeAngles(qt, c.num_heads, hd, c.rope_neox, cs, cs + half);
      ApplyRopeAngles(kt, c.num_kv_heads, hd, c.rope_neox, cs, cs + half);
      std::memcpy(cache->Key(li, seq_of[t], pos_of[t]), kt, kv_dim * sizeof(float));
      std::memcpy(cache->Value(li, seq_of[t], pos_of[t]), vt, kv_dim * sizeof(float));
    }
    const AttentionParams ap{.num_heads = c.num_heads,
                             .num_kv_heads = c.num_kv_heads,
                             .head_dim = c.head_dim,
                             .scale = c.attn_scale,
                             .softcap = c.attn_softcap,
                             .window = sliding ? c.sliding_window : 0};
    for (size_t si = 0; si < batch.seqs.size(); ++si) {
      const SeqId seq = batch.seqs[si].seq;
      const int64_t len = old_len[si] + static_cast<int64_t>(batch.seqs[si].tokens.size());
      for (int64_t p = 0; p < len; ++p) {
        key_ptrs[seq_ptr_base[si] + p] = cache->Key(li, seq, p);
        value_ptrs[seq_ptr_base[si] + p] = cache->Value(li, seq, p);
      }
    }
    // Threads split (token, head) outputs; each is reduced by one thread.
    pool_->ParallelFor(T * c.num_heads, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t t = i / c.num_heads;
        const int head = static_cast<int>(i % c.num_heads);
        AttendOne(&q[t * q_dim], &key_ptrs[ptr_base_of[t]], &value_ptrs[ptr_base_of[t]], pos_of[t],
                  ap, head, &attn[t * q_dim]);
      }
    });
    cpu::MatMul(*l.wo, attn.data(), T, h.data(), mode, pool_.get());
    for (int64_t t = 0; t < T; ++t) {
      float* ht = &h[t * dim];
      if (!l.post_attn_norm.empty()) {
        RmsNorm(ht, l.post_attn_norm.data(), c.norm_weight_offset, dim, c.rms_eps, ht);
      }
      float* xt = &x[t * dim];
      for (int64_t i = 0; i < dim; ++i) xt[i] += ht[i];
      RmsNorm(xt, l.ffn_norm.data(), c.norm_weight_offset, dim, c.rms_eps, ht);
    }
    const cpu::MatMulTarget gate_up[] = {{l.gate, g.data()}, {l.up, u.data()}};
    cpu::MatMulShared(gate_up, 2, h.data(), T, mode, pool_.get());
    if (c.activation == Activation::kSilu) {
      SiluMul(g.data(), u.data(), T * c.ffn_dim);
    } else {
      GeluTanhMul(g.data(), u.data(), T * c.ffn_dim);
    }
    cpu::MatMul(*l.down, g.data(), T, h.data(), mode, pool_.get());
    for (int64_t t = 0; t < T; ++t) {
      float* ht = &h[t * dim];
      if (!l.post_ffn_norm.empty()) {
        RmsNorm(ht, l.post_ffn_norm.data(), c.norm_weight_offset, dim, c.rms_eps, ht);
      }
      float* xt = &x[t * dim];
      for (int64_t i = 0; i < dim; ++i) xt[i] += ht[i];
    }
    for (int ci = 0; ci < ncap; ++ci) {
      if (batch.capture_layers[ci] != li) continue;
      for (size_t r = 0; r < feature_tokens.size(); ++r) {
        std::memcpy(&out->features[(r * ncap + ci) * dim], &x[feature_tokens[r] * dim],
                    dim * sizeof(float));
      }
    }
  }

  // Final norm and LM head for the requested rows only: [rows, dim] -> [rows, vocab].
  const int64_t rows = static_cast<int64_t>(logit_tokens.size());
  std::vector<float> final_h(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    RmsNorm(&x[logit_tokens[r] * dim], final_norm_.data(), c.norm_weight_offset, dim, c.rms_eps,
            &final_h[r * dim]);
  }
  out->logits.assign(rows * c.vocab_size, 0.0f);
  LmHead(final_h.data(), rows, out->logits.data());
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    cache->SetLength(batch.seqs[i].seq, old_len[i] + batch.seqs[i].tokens.size());
  }
  return absl::OkStatus();
}

}  // namespace dspark::engine
