#include "common/engine/model/model_config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace dspark::engine {
namespace {

bool Known(const std::string& arch) {
  return arch == "llama" || arch == "mistral" || arch == "qwen2" || arch == "qwen3" ||
         arch == "gemma2" || arch == "gemma3";
}

// Llama 3 "rope_scaling": frequencies below the low-frequency wavelength are
// divided by `factor`, high ones kept, the band between interpolated. Returns
// per-frequency divisors, as GGUF's rope_freqs tensor stores them.
std::vector<float> Llama3FreqFactors(int head_dim, double base, double factor, double low,
                                     double high, double original_ctx) {
  std::vector<float> out(head_dim / 2);
  const double low_wavelen = original_ctx / low;
  const double high_wavelen = original_ctx / high;
  for (int i = 0; i < head_dim / 2; ++i) {
    const double freq = 1.0 / std::pow(base, 2.0 * i / head_dim);
    const double wavelen = 2 * M_PI / freq;
    double div;
    if (wavelen < high_wavelen) {
      div = 1.0;
    } else if (wavelen > low_wavelen) {
      div = factor;
    } else {
      const double smooth = (original_ctx / wavelen - low) / (high - low);
      div = 1.0 / ((1 - smooth) / factor + smooth);
    }
    out[i] = static_cast<float>(div);
  }
  return out;
}

}  // namespace

absl::StatusOr<ModelConfig> ReadModelConfig(const ModelFile& file) {
  ModelConfig c;
  DSPARK_ASSIGN_OR_RETURN(c.architecture, file.GetString("general.architecture"));
  if (!Known(c.architecture)) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": unknown architecture '", c.architecture, "'"));
  }
  const std::string a = c.architecture + ".";
  DSPARK_ASSIGN_OR_RETURN(int64_t layers, file.GetInt(a + "block_count"));
  DSPARK_ASSIGN_OR_RETURN(int64_t dim, file.GetInt(a + "embedding_length"));
  DSPARK_ASSIGN_OR_RETURN(int64_t ffn, file.GetInt(a + "feed_forward_length"));
  DSPARK_ASSIGN_OR_RETURN(int64_t heads, file.GetInt(a + "attention.head_count"));
  c.num_layers = static_cast<int>(layers);
  c.dim = static_cast<int>(dim);
  c.ffn_dim = static_cast<int>(ffn);
  c.num_heads = static_cast<int>(heads);
  c.num_kv_heads = static_cast<int>(file.GetIntOr(a + "attention.head_count_kv", heads));
  if (c.num_layers <= 0 || c.num_layers > 1024 || c.dim <= 0 || c.ffn_dim <= 0 ||
      c.num_heads <= 0 || c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.path(), ": inconsistent shape metadata (layers ", c.num_layers, ", dim ", c.dim,
        ", heads ", c.num_heads, ", kv heads ", c.num_kv_heads, ")"));
  }
  c.head_dim = static_cast<int>(file.GetIntOr(a + "attention.key_length", c.dim / c.num_heads));
  if (c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim > 1024 ||
      file.GetIntOr(a + "attention.value_length", c.head_dim) != c.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": unsupported head_dim"));
  }
  c.context_length = static_cast<int>(file.GetIntOr(a + "context_length", 4096));
  c.rms_eps = static_cast<float>(file.GetFloatOr(a + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_base = static_cast<float>(file.GetFloatOr(a + "rope.freq_base", 10000.0));
  c.rope_base_local = c.rope_base;
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  c.layer_is_sliding.assign(c.num_layers, false);

  c.rope_neox = file.GetBoolOr("dspark.rope_neox", c.architecture != "llama" &&
                                                       c.architecture != "mistral");
  const std::string scaling = [&] {
    auto s = file.GetString(a + "rope.scaling.type");
    return s.ok() ? *s : std::string();
  }();
  if (scaling == "linear") {
    c.rope_linear_factor = static_cast<float>(file.GetFloatOr(a + "rope.scaling.factor", 1.0));
  } else if (scaling == "llama3") {
    c.rope_freq_factors = Llama3FreqFactors(
        c.head_dim, c.rope_base, file.GetFloatOr(a + "rope.scaling.factor", 8.0),
        file.GetFloatOr(a + "rope.scaling.low_freq_factor", 1.0),
        file.GetFloatOr(a + "rope.scaling.high_freq_factor", 4.0),
        file.GetFloatOr(a + "rope.scaling.original_context_length", 8192));
  }
  if (const TensorView* f = file.FindTensor("rope_freqs.weight"); f != nullptr) {
    if (f->type != GgmlType::kF32 || f->numel() != c.head_dim / 2) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": bad rope_freqs.weight"));
    }
    const float* v = reinterpret_cast<const float*>(f->data);
    c.rope_freq_factors.assign(v, v + c.head_dim / 2);
  }

  c.qkv_bias = file.FindTensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = file.FindTensor("blk.0.attn_q_norm.weight") != nullptr;
  c.tied_head = file.FindTensor("output.weight") == nullptr;

  if (c.architecture == "gemma2" || c.architecture == "gemma3") {
    c.activation = Activation::kGeluTanh;
    c.sandwich_norms = true;
    c.embed_scale = std::sqrt(static_cast<float>(c.dim));
    c.norm_weight_offset = static_cast<float>(file.GetFloatOr("dspark.rms_norm_weight_offset", 0.0));
    c.attn_softcap = static_cast<float>(file.GetFloatOr(a + "attn_logit_softcapping", 0.0));
    c.final_softcap = static_cast<float>(file.GetFloatOr(a + "final_logit_softcapping", 0.0));
    const double qscalar = file.GetFloatOr(a + "query_pre_attn_scalar", c.head_dim);
    c.attn_scale = static_cast<float>(1.0 / std::sqrt(qscalar));
    c.sliding_window = static_cast<int>(file.GetIntOr(a + "attention.sliding_window", 0));
    if (c.architecture == "gemma2") {
      for (int i = 0; i < c.num_layers; ++i) c.layer_is_sliding[i] = (i % 2 == 0);
    } else {
      c.rope_base_local = static_cast<float>(file.GetFloatOr(a + "rope_local_base_freq", 10000.0));
      const int64_t pattern = file.GetIntOr(a + "sliding_window_pattern", 6);
      for (int i = 0; i < c.num_layers; ++i) {
        c.layer_is_sliding[i] = pattern > 0 && (i + 1) % pattern != 0;
      }
      if (const MetaValue* layers_meta = file.FindMeta(a + "attention.sliding_window_layers");
          layers_meta != nullptr && layers_meta->ints.size() == static_cast<size_t>(c.num_layers)) {
        for (int i = 0; i < c.num_layers; ++i) c.layer_is_sliding[i] = layers_meta->ints[i] != 0;
      }
    }
    if (c.sliding_window <= 0) c.layer_is_sliding.assign(c.num_layers, false);
  } else if (c.architecture == "mistral" || c.architecture == "qwen2" || c.architecture == "llama") {
    c.sliding_window = static_cast<int>(file.GetIntOr(a + "attention.sliding_window", 0));
    if (c.sliding_window > 0) c.layer_is_sliding.assign(c.num_layers, true);
  }
  const TensorView* embd = file.FindTensor("token_embd.weight");
  if (embd == nullptr || embd->shape.size() != 2 || embd->shape[1] != c.dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": token_embd.weight missing or not {vocab, ", c.dim, "}"));
  }
  c.vocab_size = static_cast<int>(embd->shape[0]);
  return c;
}

}  // namespace dspark::engine
