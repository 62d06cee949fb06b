// Q8_0: blocks of 32 elements, 34 bytes: {f16 d; i8 qs[32]}; element j is
// qs[j] * d. Pure functions: thread-safe.
#include "common/engine/backend/cpu/quant/block32_int8.h"
#include "common/engine/backend/cpu/quant/exact_kernels.h"
#include "common/engine/backend/cpu/quant/quant_kernels.h"
#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::quant {
namespace {

constexpr int kQ8_0Bytes = 34;

void DequantizeBlock(const uint8_t* blk, float* out) {
  const float d = LoadF16(blk);
  const int8_t* qs = reinterpret_cast<const int8_t*>(blk + 2);
  for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(qs[j]) * d;
}

void Dequantize(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) DequantizeBlock(src + b * kQ8_0Bytes, dst + b * 32);
}

struct Q8_0 {
  static constexpr int kBlockSize = 32;
  static constexpr int kBlockBytes = kQ8_0Bytes;
  static constexpr bool kHasMin = false;
  // AVX2 has no u8 x s8 dot without int16 saturation for |w| up to 128 and
  // an offset of 128, so it uses |w| * (x with w's sign) instead.
  static constexpr bool kSignedAvx2 = true;
  // AVX-512 feeds w + 128 as the unsigned operand of vpdpbusd.
  static constexpr int kOffset = 128;

  // kExact: one block of f32 weights.
  static void DecodeF32Scalar(const uint8_t* row, int64_t c0, int64_t, float* out) {
    DequantizeBlock(row + c0 / 32 * kBlockBytes, out);
  }
  DSPARK_TARGET_AVX2 static void DecodeF32Avx2(const uint8_t* row, int64_t c0, int64_t,
                                               float* out) {
    const uint8_t* blk = row + c0 / 32 * kBlockBytes;
    const __m256 d = BroadcastF16Avx2(blk);
    StoreScaledI8Avx2(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)), d, out);
    StoreScaledI8Avx2(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18)), d, out + 16);
  }
  DSPARK_TARGET_AVX512 static void DecodeF32Avx512(const uint8_t* row, int64_t c0, int64_t,
                                                   float* out) {
    const uint8_t* blk = row + c0 / 32 * kBlockBytes;
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(LoadUnaligned<uint16_t>(blk)));
    StoreScaledI8Avx512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)), d, out);
    StoreScaledI8Avx512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18)), d, out + 16);
  }

  // kInt8.
  static void DecodeQScalar(const uint8_t* blk, int32_t* q, float* d, float*) {
    *d = LoadF16(blk);
    const int8_t* qs = reinterpret_cast<const int8_t*>(blk + 2);
    for (int j = 0; j < 32; ++j) q[j] = qs[j];
  }
  DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE static void DecodeGroupAvx2(const uint8_t* const* blk,
                                                                      Avx2Group* g) {
    LoadTransposed8(blk, 2, g->s);
    LoadTransposed8(blk, 18, g->s + 4);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) g->r[k] = _mm256_abs_epi8(g->s[k]);
    g->d = LoadF16Lanes8(blk, 0);
  }
  // Outputs: payload dwords (0-1), (2-3), (4-5), (6-7), then d.
  static constexpr BytePlan<5> kPlan = MakeBytePlan<5>(kBlockBytes, [](int o, int l) {
    if (o < 4) return PayloadByte(kBlockBytes, 2, 2 * o, l);
    return l < 16 ? kBlockBytes * (l / 2) + l % 2 : -1;
  });
  DSPARK_TARGET_AVX512 DSPARK_ALWAYS_INLINE static void DecodeGroupAvx512(const uint8_t* base,
                                                                          int64_t nbytes,
                                                                          Avx512Group* g) {
    __m512i v[5];
    GatherBytes(base, nbytes, kPlan, v);
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p)
      g->w[p] = _mm512_xor_si512(v[p], _mm512_set1_epi8(static_cast<char>(0x80)));
    g->d = _mm256_cvtph_ps(_mm512_castsi512_si128(v[4]));
  }
};

}  // namespace

const TypeKernels kQ8_0Kernels = {
    GgmlType::kQ8_0,
    32,
    &Dequantize,
    DSPARK_EXACT_KERNELS(Q8_0),
    DSPARK_INT8X32_KERNELS(Q8_0),
    ActFormat::kQ8x32,
    Q8_0::kOffset,
};

}  // namespace dspark::engine::cpu::quant
