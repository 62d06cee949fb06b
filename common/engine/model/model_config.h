// The shape and numerics of a transformer, read from a ModelFile's metadata
// (GGUF keys; Hugging Face directories expose config.json under the same
// keys). Plain data: thread-safe once built.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine/model_file/model_file.h"

namespace dspark::engine {

enum class Activation { kSilu, kGeluTanh };

struct ModelConfig {
  std::string architecture;  // llama, mistral, qwen2, qwen3, gemma2, gemma3
  int num_layers = 0;
  int dim = 0;           // hidden size
  int ffn_dim = 0;       // feed-forward inner size
  int num_heads = 0;
  int num_kv_heads = 0;  // GQA: num_heads is a multiple of it
  int head_dim = 0;
  int vocab_size = 0;
  int context_length = 0;
  float rms_eps = 1e-5f;
  // Added to every RMSNorm weight (Hugging Face Gemma stores w - 1; GGUF
  // conversion already added the 1).
  float norm_weight_offset = 0.0f;
  Activation activation = Activation::kSilu;
  // RoPE: GPT-NeoX halves layout if true, else adjacent pairs (GGUF llama).
  bool rope_neox = false;
  float rope_base = 10000.0f;
  float rope_base_local = 10000.0f;  // sliding-window layers (Gemma 3)
  float rope_linear_factor = 1.0f;   // positions divided by this (global layers)
  // llama3 scaling: per-frequency factors, [head_dim / 2]; empty = none.
  std::vector<float> rope_freq_factors;
  float attn_scale = 0.0f;       // softmax scale of q.k
  float attn_softcap = 0.0f;     // 0 = off (Gemma 2)
  float final_softcap = 0.0f;    // 0 = off (Gemma 2)
  float embed_scale = 1.0f;      // sqrt(dim) for Gemma
  int sliding_window = 0;        // 0 = none
  std::vector<bool> layer_is_sliding;  // [num_layers]
  bool qkv_bias = false;          // Qwen2
  bool qk_norm = false;           // Qwen3, Gemma 3
  bool sandwich_norms = false;    // Gemma 2/3 post-attention / post-ffn norms
  bool tied_head = false;         // LM head = token embedding
};

absl::StatusOr<ModelConfig> ReadModelConfig(const ModelFile& file);

}  // namespace dspark::engine
