// Linear layers and row lookups over weights of any supported GgmlType.
// Stateless apart from per-thread scratch; safe to call from any thread.
//
// Batch invariance (DESIGN.md "Engine"): every output element is reduced in a
// fixed order that depends only on its own row of x and of w — never on n, on
// the other rows of x, or on how threads split the outputs — so a token's
// result is bit-identical alone, in a verify block, or in a large batch.
#pragma once

#include <cstdint>
#include <memory>

#include "common/engine/backend/cpu/cpu_isa.h"
#include "common/engine/tensor/tensor.h"

namespace dspark::engine::cpu {

class ThreadPool;

enum class ActivationMode {
  // f32 activations against de-quantized weights: the exact mode, used to
  // compare with float references.
  kExact,
  // Activations quantized per row to int8 blocks (Q8_0 for 32-blocks, Q8_K
  // for 256-blocks) and integer dot products, as llama.cpp does: the fast mode.
  kInt8,
};

// y[n, out] = x[n, in] * w^T, where w is {out, in}. `pool` may be null
// (single-threaded). F32/F16/BF16 weights always use f32 activations.
void MatMul(const TensorView& w, const float* x, int64_t n, float* y, ActivationMode mode,
            ThreadPool* pool);

// The same with an explicit instruction set (tests and benchmarks; `isa`
// must be IsaSupported). Results are bit-identical for one ISA; different
// ISAs may round differently.
void MatMul(const TensorView& w, const float* x, int64_t n, float* y, ActivationMode mode,
            ThreadPool* pool, Isa isa);

// Several weights applied to one input, y_i[n, out_i] = x[n, in] * w_i^T
// (Q, K and V of a layer; gate and up): the activations are quantized once
// per distinct int8 format, and the rows of all outputs are split over the
// pool in one pass (one wake-up instead of one per matrix). Each y_i is
// bit-identical to MatMul(*w_i, ...). At most kMaxSharedTargets targets.
struct MatMulTarget {
  const TensorView* w = nullptr;  // {out_i, in}
  float* y = nullptr;             // [n, out_i]
};
inline constexpr int kMaxSharedTargets = 4;
void MatMulShared(const MatMulTarget* targets, int count, const float* x, int64_t n,
                  ActivationMode mode, ThreadPool* pool);
void MatMulShared(const MatMulTarget* targets, int count, const float* x, int64_t n,
                  ActivationMode mode, ThreadPool* pool, Isa isa);

// An owned, 64-byte-aligned copy of a weight's rows in panels of 16
// (quant/panel16.h). MatMul reads it instead of w.data when w.panels points
// at data(), the mode is kInt8 and the ISA AVX2: same results for every
// batch, fewer instructions per multiply-add than the row-major kernels. Pack returns an empty object when w's type has no panel kernels
// or its row count is not a multiple of 16.
class PanelWeights {
 public:
  static PanelWeights Pack(const TensorView& w);
  bool empty() const { return data_ == nullptr; }
  const uint8_t* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> data_;
};

// out[cols] = row `row` of w, de-quantized (embedding lookups).
void DequantizeRow(const TensorView& w, int64_t row, float* out);

}  // namespace dspark::engine::cpu
