// Q4_1: blocks of 32 elements, 20 bytes: {f16 d; f16 m; u8 qs[16]}. Element j
// is d * q + m with q the low nibble of qs[j] (j < 16) or the high nibble of
// qs[j - 16]. Pure functions: thread-safe.
#include "common/engine/backend/cpu/quant/block32_int8.h"
#include "common/engine/backend/cpu/quant/exact_kernels.h"
#include "common/engine/backend/cpu/quant/quant_kernels.h"
#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::quant {
namespace {

constexpr int kQ4_1Bytes = 20;

void DequantizeBlock(const uint8_t* blk, float* out) {
  const float d = LoadF16(blk);
  const float m = LoadF16(blk + 2);
  for (int j = 0; j < 16; ++j) {
    out[j] = d * static_cast<float>(blk[4 + j] & 0x0F) + m;
    out[j + 16] = d * static_cast<float>(blk[4 + j] >> 4) + m;
  }
}

void Dequantize(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) DequantizeBlock(src + b * kQ4_1Bytes, dst + b * 32);
}

struct Q4_1 {
  static constexpr int kBlockSize = 32;
  static constexpr int kBlockBytes = kQ4_1Bytes;
  static constexpr bool kHasMin = true;
  static constexpr bool kSignedAvx2 = false;
  static constexpr int kOffset = 0;

  // kExact: one block of f32 weights.
  static void DecodeF32Scalar(const uint8_t* row, int64_t c0, int64_t, float* out) {
    DequantizeBlock(row + c0 / 32 * kBlockBytes, out);
  }
  DSPARK_TARGET_AVX2 static void DecodeF32Avx2(const uint8_t* row, int64_t c0, int64_t,
                                               float* out) {
    const uint8_t* blk = row + c0 / 32 * kBlockBytes;
    const __m256 d = BroadcastF16Avx2(blk);
    const __m256 m = BroadcastF16Avx2(blk + 2);
    __m128i lo, hi;
    SplitNibbles(blk + 4, &lo, &hi);
    StoreScaledU8Avx2(lo, d, m, out);
    StoreScaledU8Avx2(hi, d, m, out + 16);
  }
  DSPARK_TARGET_AVX512 static void DecodeF32Avx512(const uint8_t* row, int64_t c0, int64_t,
                                                   float* out) {
    const uint8_t* blk = row + c0 / 32 * kBlockBytes;
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(LoadUnaligned<uint16_t>(blk)));
    const __m512 m = _mm512_set1_ps(_cvtsh_ss(LoadUnaligned<uint16_t>(blk + 2)));
    __m128i lo, hi;
    SplitNibbles(blk + 4, &lo, &hi);
    StoreScaledU8Avx512(lo, d, m, out);
    StoreScaledU8Avx512(hi, d, m, out + 16);
  }

  // kInt8.
  static void DecodeQScalar(const uint8_t* blk, int32_t* q, float* d, float* m) {
    *d = LoadF16(blk);
    *m = LoadF16(blk + 2);
    for (int j = 0; j < 16; ++j) {
      q[j] = blk[4 + j] & 0x0F;
      q[j + 16] = blk[4 + j] >> 4;
    }
  }
  DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE static void DecodeGroupAvx2(const uint8_t* const* blk,
                                                                      Avx2Group* g) {
    __m256i t[4];
    LoadTransposed8(blk, 4, t);
    SplitNibbles8(t, g->r);
    g->d = LoadF16Lanes8(blk, 0);
    g->m = LoadF16Lanes8(blk, 2);
  }
  // Outputs: payload dwords 0-1, dwords 2-3, then d (bytes 0..15) and m (16..31).
  static constexpr BytePlan<3> kPlan = MakeBytePlan<3>(kBlockBytes, [](int o, int l) {
    if (o < 2) return PayloadByte(kBlockBytes, 4, 2 * o, l);
    if (l < 16) return kBlockBytes * (l / 2) + l % 2;
    return l < 32 ? kBlockBytes * ((l - 16) / 2) + 2 + l % 2 : -1;
  });
  DSPARK_TARGET_AVX512 DSPARK_ALWAYS_INLINE static void DecodeGroupAvx512(const uint8_t* base,
                                                                          int64_t nbytes,
                                                                          Avx512Group* g) {
    __m512i v[3];
    GatherBytes(base, nbytes, kPlan, v);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    g->w[0] = _mm512_and_si512(v[0], m4);                        // rows 0, 1
    g->w[1] = _mm512_and_si512(v[1], m4);                        // rows 2, 3
    g->w[2] = _mm512_and_si512(_mm512_srli_epi16(v[0], 4), m4);  // rows 4, 5
    g->w[3] = _mm512_and_si512(_mm512_srli_epi16(v[1], 4), m4);  // rows 6, 7
    g->d = _mm256_cvtph_ps(_mm512_castsi512_si128(v[2]));
    g->m = _mm256_cvtph_ps(_mm512_extracti32x4_epi32(v[2], 1));
  }
};

}  // namespace

const TypeKernels kQ4_1Kernels = {
    GgmlType::kQ4_1,
    32,
    &Dequantize,
    DSPARK_EXACT_KERNELS(Q4_1),
    DSPARK_INT8X32_KERNELS(Q4_1),
    ActFormat::kQ8x32,
    Q4_1::kOffset,
};

}  // namespace dspark::engine::cpu::quant
