// Test helpers for the DSpark drafter: a tiny random llama target written as
// GGUF, a safetensors writer, and random drafter checkpoints shaped for a
// target. Deterministic (seeded); not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace dspark::testing {

// A fresh empty directory under $TMPDIR (or /tmp).
std::string MakeTempDir(const std::string& prefix);

struct TinyTarget {
  int layers = 4;
  int dim = 64;
  int ffn = 128;
  int heads = 4;
  int kv_heads = 2;
  int vocab = 300;
  bool tied = true;
};

// A llama-architecture GGUF with N(0, 0.5) embeddings and N(0, 0.05) layers.
absl::Status WriteTinyTarget(const std::string& path, const TinyTarget& t, uint64_t seed);

struct StTensor {
  std::string name;
  std::string dtype;           // "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;  // outermost first
  std::string bytes;           // little-endian data
};

// A safetensors file (header padded to 8 bytes, as the reference writer does).
absl::Status WriteSafetensors(const std::string& path, const std::vector<StTensor>& tensors);

// config.json for a drafter over `t` (1 layer, B = 7, r = 8, target layers
// {1, 2}, mask token 5).
nlohmann::json TinyDrafterConfig(const TinyTarget& t);

// Random weights for `config` (all tensors model.safetensors needs; d2t too
// when config has draft_vocab_size, mapping draft id i to target id 3 * i).
std::vector<StTensor> RandomDrafterTensors(const nlohmann::json& config, uint64_t seed);

// Writes dir/config.json and dir/model.safetensors.
absl::Status WriteDrafter(const std::string& dir, const nlohmann::json& config,
                          const std::vector<StTensor>& tensors);

// Random f32 values N(0, stddev^2).
std::vector<float> RandomFloats(int64_t n, uint64_t seed, float stddev);

}  // namespace dspark::testing
