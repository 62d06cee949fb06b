// A DSpark block-drafter checkpoint on disk: config.json (hyper-parameters,
// DSpark release field names) and model.safetensors (f32 / f16 / bf16
// weights, optional int64 d2t), read and shape-checked. The format and the
// forward pass it parameterises are described in dspark_drafter.h and
// tools/dspark_drafter/README.md. Immutable after Open: thread-safe.
//
//   DSPARK_ASSIGN_OR_RETURN(auto ckpt, DsparkCheckpoint::Open("/models/smollm2-dspark"));
//   const TensorView& fc = ckpt->weights().fc;  // {hidden, n * target_hidden}
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/engine/tensor/tensor.h"

namespace dspark::drafter {

// config.json. Every field is required unless it says a default.
struct DsparkConfig {
  int hidden_size = 0;        // = the target's dim (shared embedding and head)
  int intermediate_size = 0;  // SwiGLU inner size
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;        // divides num_attention_heads
  int head_dim = 0;                   // even
  float rms_norm_eps = 1e-6f;         // default 1e-6
  float rope_theta = 10000.0f;        // default 10000
  int vocab_size = 0;                 // the target's vocabulary
  int block_size = 7;                 // B, 1..kMaxBlockSize; default 7
  int32_t mask_token_id = -1;         // a target token id
  std::vector<int> target_layer_ids;  // 0-based target layers (HF hidden_states[i + 1])
  int target_hidden_size = 0;         // the target's dim
  int markov_rank = 0;                // r >= 1
  int draft_vocab_size = 0;           // 0 = the whole target vocabulary (no d2t)
  std::string target_model;           // free-form; default ""
};

inline constexpr int kMaxBlockSize = 16;

// Parses and checks config.json's text; `path` names it in errors.
absl::StatusOr<DsparkConfig> ParseDsparkConfig(absl::string_view path, absl::string_view text);

struct DsparkLayerWeights {
  std::vector<float> input_layernorm;           // [hidden]
  engine::TensorView q_proj;                    // {heads * head_dim, hidden}
  engine::TensorView k_proj;                    // {kv_heads * head_dim, hidden}
  engine::TensorView v_proj;                    // {kv_heads * head_dim, hidden}
  engine::TensorView o_proj;                    // {hidden, heads * head_dim}
  std::vector<float> q_norm;                    // [head_dim]
  std::vector<float> k_norm;                    // [head_dim]
  std::vector<float> post_attention_layernorm;  // [hidden]
  engine::TensorView gate_proj;                 // {intermediate, hidden}
  engine::TensorView up_proj;                   // {intermediate, hidden}
  engine::TensorView down_proj;                 // {hidden, intermediate}
};

struct DsparkWeights {
  engine::TensorView fc;                   // {hidden, len(target_layer_ids) * target_hidden}
  std::vector<float> hidden_norm;          // [hidden]
  std::vector<DsparkLayerWeights> layers;  // [num_hidden_layers]
  std::vector<float> norm;                 // [hidden]
  engine::TensorView markov_a;             // {r, hidden}
  engine::TensorView markov_b;             // {hidden, r}
  std::vector<float> confidence_weight;    // [hidden]
  float confidence_bias = 0.0f;
  // [draft_vocab_size] target id of each draft id (d2t stores the offsets
  // target - draft, EAGLE-3's convention; already added here). Empty
  // without a draft vocabulary.
  std::vector<int32_t> draft_to_target;
};

class DsparkCheckpoint {
 public:
  static constexpr char kConfigFile[] = "config.json";
  static constexpr char kWeightsFile[] = "model.safetensors";

  // Reads dir/config.json and dir/model.safetensors. Errors (InvalidArgument
  // unless the file is unreadable or truncated) name the file and the problem.
  static absl::StatusOr<std::unique_ptr<DsparkCheckpoint>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const DsparkConfig& config() const { return config_; }
  const DsparkWeights& weights() const { return weights_; }

 private:
  DsparkCheckpoint() = default;

  std::string dir_;
  DsparkConfig config_;
  DsparkWeights weights_;  // large tensors point into bytes_
  std::string bytes_;      // model.safetensors, read whole
};

}  // namespace dspark::drafter
