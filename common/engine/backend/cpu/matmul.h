// Linear layers and row lookups over weights of any supported GgmlType.
// Stateless apart from per-thread scratch; safe to call from any thread.
//
// Batch invariance (DESIGN.md "Engine"): every output element is reduced in a
// fixed order that depends only on its own row of x and of w — never on n, on
// the other rows of x, or on how threads split the outputs — so a token's
// result is bit-identical alone, in a verify block, or in a large batch.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

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

// w (BF16, F16 or F32, rows of a multiple of 32 elements) as Q8_0 rows
// (GGUF's block layout, RowBytes(kQ8_0, cols) a row), for a model stored in
// a float type whose matmuls should take the int8 kernels (a draft model
// trained and saved in bf16). Each block of 32 rounds as llama.cpp's
// quantizer does: d = max|x| / 127 stored as f16, q = round(x / d). Empty
// when w's type or row length does not allow it.
std::vector<uint8_t> QuantizeToQ8_0(const TensorView& w);

// The copies of weights a model or drafter makes at load for the int8
// kernels, owned here: in kInt8 mode, float weights as Q8_0
// (QuantizeToQ8_0) when quantize_float, then weights of a panel type in
// panels (PanelWeights) when panels and the active ISA is AVX2. Use returns
// the view matmuls should read for w: a copy's, or w itself when nothing
// applies. The views live as long as this object. Not thread-safe while
// Use runs; the views are immutable.
class Int8Weights {
 public:
  Int8Weights(ActivationMode mode, bool quantize_float, bool panels);
  const TensorView* Use(const TensorView* w);

 private:
  bool quantize_float_;
  bool panels_;
  std::deque<TensorView> views_;
  std::vector<std::vector<uint8_t>> q8_;
  std::vector<PanelWeights> packed_;
};

// out[cols] = row `row` of w, de-quantized (embedding lookups).
void DequantizeRow(const TensorView& w, int64_t row, float* out);

}  // namespace dspark::engine::cpu
