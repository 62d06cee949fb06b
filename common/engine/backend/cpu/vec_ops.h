// Small f32 vector helpers for model code (attention scores, weighted sums),
// on the process's ActiveIsa(). Each result depends only on its own inputs,
// in a fixed order, so they keep batch invariance. Pure functions:
// thread-safe.
//
//   float s = DotF32(q, k, head_dim);
#pragma once

#include <cstdint>

#include "common/engine/backend/cpu/cpu_isa.h"

namespace dspark::engine::cpu {

// sum_i a[i] * b[i]. Bit-identical to MatMul(kExact) of an F32 row with b on
// the same ISA (same 32-element chunking and lane order).
float DotF32(const float* a, const float* b, int64_t n);
float DotF32(const float* a, const float* b, int64_t n, Isa isa);

// y[i] += alpha * x[i] (one fused multiply-add per element on SIMD ISAs).
void AxpyF32(float alpha, const float* x, float* y, int64_t n);

// gate[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i],
// each element on its own (a short last vector is masked, not scalar), so
// an element's result does not depend on n or its index.
void SiluMulF32(float* gate, const float* up, int64_t n);
void SiluMulF32(float* gate, const float* up, int64_t n, Isa isa);

}  // namespace dspark::engine::cpu
