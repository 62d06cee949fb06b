// Test and benchmark support: random weight tensors in any supported GGUF
// type, with well-formed scale fields (finite f16 d / m / dmin). Not for
// production code. Pure functions of their seed: thread-safe.
//
//   RandomWeights w = MakeRandomWeights(GgmlType::kQ4_K, 896, 4864, /*seed=*/1);
//   MatMul(w.view, x, n, y, ActivationMode::kInt8, &pool);
#pragma once

#include <cstdint>
#include <vector>

#include "common/engine/tensor/tensor.h"

namespace dspark::engine::cpu::testing {

struct RandomWeights {
  std::vector<uint8_t> bytes;  // [rows, RowBytes(type, cols)]
  TensorView view;             // {rows, cols} over `bytes`
};

RandomWeights MakeRandomWeights(GgmlType type, int64_t rows, int64_t cols, uint64_t seed);

// Fills `bytes` (a whole number of blocks of `type`) with random blocks.
void FillRandomBlocks(GgmlType type, uint8_t* bytes, int64_t nbytes, uint64_t seed);

}  // namespace dspark::engine::cpu::testing
