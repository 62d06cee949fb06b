// A read-only view of a weight tensor inside a mapped model file (or an
// owned buffer). Views are plain values; the memory they point at must outlive
// them (ModelFile owns it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/engine/tensor/ggml_type.h"

namespace dspark::engine {

struct TensorView {
  std::string name;
  GgmlType type = GgmlType::kF32;
  // Outermost dimension first: a linear layer's weight is {out, in}, rows of
  // `in` contiguous elements (GGUF lists the same dims innermost first).
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  int64_t nbytes = 0;
  // Optional: the same rows regrouped in panels of 16 (cpu::PanelWeights),
  // which the AVX-512 int8 matmul reads instead of `data`. Owned elsewhere.
  const uint8_t* panels = nullptr;

  int64_t rows() const;  // product of all dims but the last
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t numel() const;
};

}  // namespace dspark::engine
