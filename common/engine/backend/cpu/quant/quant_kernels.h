// Internal kernel table of the CPU backend: one entry per weight type with its
// row de-quantizer and its matmul row kernels for each ISA and activation mode.
// Entries are constant data and the kernels are pure functions of their
// arguments: thread-safe.
//
// Batch-invariance contract for every RowsKernel: y[t][r] is computed by the
// same sequence of floating-point operations whatever args.n, t, the row range
// and the other tokens are (fixed order over blocks, fixed SIMD lane
// reduction). Kernels may tile rows and tokens freely as long as that holds.
#pragma once

#include <cstdint>

#include "common/engine/backend/cpu/cpu_isa.h"
#include "common/engine/tensor/ggml_type.h"

namespace dspark::engine::cpu::quant {

// How a kernel wants one token's activations laid out (see activations.h).
enum class ActFormat {
  kF32,     // the caller's f32 row as is
  kQ8x32,   // int8 per 32 elements, 16 blocks transposed per ActGroup32
  kQ8x256,  // int8 per 256 elements with 16-element sums, ActBlock256 records
};

// One call computes y[t * ldy + r] for t in [0, n) and r in [row_begin, row_end).
struct RowsArgs {
  const uint8_t* w = nullptr;  // [rows, row_bytes] the whole weight tensor
  int64_t row_bytes = 0;
  int64_t cols = 0;  // elements per weight row (`in`)
  int64_t row_begin = 0;
  int64_t row_end = 0;
  const uint8_t* x = nullptr;  // [n, x_stride] bytes, in the kernel's ActFormat
  int64_t x_stride = 0;        // bytes between consecutive tokens of x
  int64_t n = 0;               // tokens
  float* y = nullptr;          // [n, ldy]
  int64_t ldy = 0;
};
using RowsKernel = void (*)(const RowsArgs& args);

struct TypeKernels {
  GgmlType type;
  int64_t block_size;  // elements per block (1 for float types)
  // dst[0, n) = elements [0, n) of the row at src, bit-identical to gguf's
  // dequantize; n is a multiple of block_size.
  void (*dequantize)(const uint8_t* src, float* dst, int64_t n);
  // f32 activations, dequantized weights, f32 FMA (ActivationMode::kExact).
  RowsKernel exact[kNumIsas];
  // int8 activations and integer dot products (ActivationMode::kInt8); null
  // for float types, which always take the exact kernels.
  RowsKernel int8[kNumIsas];
  ActFormat int8_format;
  // kQ8x32 only: weights are stored as q - int8_offset with unsigned q (the
  // activation record then carries -offset * (sum of each 4 int8s)); 0 means
  // the record carries the plain sums as floats (Q4_1's min term).
  int int8_offset;
};

// Null for a type without CPU kernels.
const TypeKernels* FindTypeKernels(GgmlType type);

// One definition per file in this folder.
extern const TypeKernels kF32Kernels;
extern const TypeKernels kF16Kernels;
extern const TypeKernels kBF16Kernels;
extern const TypeKernels kQ4_0Kernels;
extern const TypeKernels kQ4_1Kernels;
extern const TypeKernels kQ5_0Kernels;
extern const TypeKernels kQ8_0Kernels;
extern const TypeKernels kQ4_KKernels;
extern const TypeKernels kQ6_KKernels;

}  // namespace dspark::engine::cpu::quant
