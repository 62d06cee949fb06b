// int8 activation records read by the kInt8 kernels, and the quantizer that
// writes them. One token's row is quantized on its own (never with the rest
// of the batch), so its records, and every product with them, are the same
// in any batch. Pure functions: thread-safe.
//
// Per 32-element block: d = max|x| / 127, q = round_half_even(x / d) (as
// x * (1 / d)), |q| <= 127. Per 256-element block the same with one d.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/engine/backend/cpu/quant/quant_kernels.h"

namespace dspark::engine::cpu::quant {

// kQ8x32: 8 consecutive 32-blocks (256 elements) in one 320-byte record,
// stored transposed: lane b (4 bytes) of row k holds elements 4k..4k+3 of
// block b, so one vpdpbusd over row k advances all 8 blocks at once and the
// int32 lanes end up as per-block sums. A short last group is padded with
// all-zero blocks.
struct alignas(64) ActGroup32 {
  int8_t qs[8][32];  // [k][4 * b + j] = element 4 k + j of block b
  float d[8];        // block scales
  // offset != 0: int32 -offset * (sum of the block's 32 q).
  // offset == 0: float (sum of the block's 32 q).
  union {
    int32_t neg_offset_sum[8];
    float sum[8];
  };
};
static_assert(sizeof(ActGroup32) == 320);

// Element e of block b (b < 8) of a group.
inline int8_t GroupElement(const ActGroup32& g, int b, int e) { return g.qs[e / 4][4 * b + e % 4]; }

// kQ8x256: one 256-block (Q8_K-like).
struct alignas(64) ActBlock256 {
  int8_t qs[256];
  int16_t bsums[16];  // sum of each 16 consecutive q
  float d;
  uint8_t pad[28];
};
static_assert(sizeof(ActBlock256) == 320);

// Bytes of one token's records for a row of `cols` elements (a multiple of 32
// or 256); a multiple of 64.
int64_t ActBytesPerToken(ActFormat format, int64_t cols);

// Writes one token's records (ActBytesPerToken bytes, 64-byte aligned `out`).
// `offset` as TypeKernels::int8_offset (kQ8x32 only). Every ISA writes the
// same bytes.
void QuantizeActivations(ActFormat format, int offset, const float* x, int64_t cols, uint8_t* out,
                         Isa isa);

}  // namespace dspark::engine::cpu::quant
