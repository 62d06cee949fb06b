// Q5_0: blocks of 32 elements, 22 bytes: {f16 d; u32 qh; u8 qs[16]}. Element
// j is (q - 16) * d with q = nibble (low of qs[j] for j < 16, high of
// qs[j - 16] otherwise) | bit j of qh << 4. Pure functions: thread-safe.
#include "common/engine/backend/cpu/quant/block32_int8.h"
#include "common/engine/backend/cpu/quant/exact_kernels.h"
#include "common/engine/backend/cpu/quant/quant_kernels.h"
#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::quant {
namespace {

constexpr int kQ5_0Bytes = 22;

// The 32 values q - 16 of a block.
void DecodeInts(const uint8_t* blk, int32_t* q) {
  const uint32_t qh = LoadUnaligned<uint32_t>(blk + 2);
  for (int j = 0; j < 16; ++j) {
    q[j] = ((blk[6 + j] & 0x0F) | (((qh >> j) & 1) << 4)) - 16;
    q[j + 16] = ((blk[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
  }
}

void DequantizeBlock(const uint8_t* blk, float* out) {
  const float d = LoadF16(blk);
  int32_t q[32];
  DecodeInts(blk, q);
  for (int j = 0; j < 32; ++j) out[j] = d * static_cast<float>(q[j]);
}

void Dequantize(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) DequantizeBlock(src + b * kQ5_0Bytes, dst + b * 32);
}

// AVX2: the block's 32 q values (0..31) as bytes.
DSPARK_TARGET_AVX2 __m256i UnpackQ5Avx2(const uint8_t* blk) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 6));
  const __m256i nib =
      _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
  // Byte i of the result holds bit i of qh: spread qh's byte i / 8 over
  // 8 bytes, then test one bit in each.
  const __m256i qh = _mm256_set1_epi32(static_cast<int>(LoadUnaligned<uint32_t>(blk + 2)));
  const __m256i spread = _mm256_shuffle_epi8(
      qh, _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_or_si256(nib, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
}

struct Q5_0 {
  static constexpr int kBlockSize = 32;
  static constexpr int kBlockBytes = kQ5_0Bytes;
  static constexpr bool kHasMin = false;
  static constexpr bool kSignedAvx2 = false;
  static constexpr int kOffset = 16;

  // kExact: one block of f32 weights.
  static void DecodeF32Scalar(const uint8_t* row, int64_t c0, int64_t, float* out) {
    DequantizeBlock(row + c0 / 32 * kBlockBytes, out);
  }
  DSPARK_TARGET_AVX2 static void DecodeF32Avx2(const uint8_t* row, int64_t c0, int64_t,
                                               float* out) {
    const uint8_t* blk = row + c0 / 32 * kBlockBytes;
    const __m256i q = _mm256_sub_epi8(UnpackQ5Avx2(blk), _mm256_set1_epi8(16));
    const __m256 d = BroadcastF16Avx2(blk);
    StoreScaledI8Avx2(_mm256_castsi256_si128(q), d, out);
    StoreScaledI8Avx2(_mm256_extracti128_si256(q, 1), d, out + 16);
  }
  DSPARK_TARGET_AVX512 static void DecodeF32Avx512(const uint8_t* row, int64_t c0, int64_t,
                                                   float* out) {
    const uint8_t* blk = row + c0 / 32 * kBlockBytes;
    const __m256i q = _mm256_sub_epi8(UnpackQ5Avx2(blk), _mm256_set1_epi8(16));
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(LoadUnaligned<uint16_t>(blk)));
    StoreScaledI8Avx512(_mm256_castsi256_si128(q), d, out);
    StoreScaledI8Avx512(_mm256_extracti128_si256(q, 1), d, out + 16);
  }

  // kInt8.
  static void DecodeQScalar(const uint8_t* blk, int32_t* q, float* d, float*) {
    *d = LoadF16(blk);
    DecodeInts(blk, q);
  }
  // Fifth bits: group register k takes bits 4k..4k+3 of each lane's qh,
  // i.e. nibble k % 2 of byte k / 2, one bit per byte.
  DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE static void DecodeGroupAvx2(const uint8_t* const* blk,
                                                                      Avx2Group* g) {
    __m256i t[4];
    LoadTransposed8(blk, 6, t);
    SplitNibbles8(t, g->r);
    g->d = LoadF16Lanes8(blk, 0);
    // Shuffle indices of byte 0 of each dword (plus k / 2 below).
    const __m256i spread_base = _mm256_setr_epi32(0, 0x04040404, 0x08080808, 0x0C0C0C0C, 0,
                                                  0x04040404, 0x08080808, 0x0C0C0C0C);
    const __m256i qh =
        _mm256_setr_epi32(LoadUnaligned<int32_t>(blk[0] + 2), LoadUnaligned<int32_t>(blk[1] + 2),
                          LoadUnaligned<int32_t>(blk[2] + 2), LoadUnaligned<int32_t>(blk[3] + 2),
                          LoadUnaligned<int32_t>(blk[4] + 2), LoadUnaligned<int32_t>(blk[5] + 2),
                          LoadUnaligned<int32_t>(blk[6] + 2), LoadUnaligned<int32_t>(blk[7] + 2));
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256i spread =
          _mm256_shuffle_epi8(qh, _mm256_add_epi8(spread_base, _mm256_set1_epi8(k / 2)));
      const __m256i bit = _mm256_set1_epi32(static_cast<int>(0x08040201u << (4 * (k % 2))));
      const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
      g->r[k] = _mm256_or_si256(g->r[k], _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    }
  }
  // Outputs: payload dwords 0-1, dwords 2-3, d, then for p = 0..3 byte p of
  // each block's qh in all four bytes of its lane (both halves): the fifth
  // bits of rows 2p (bits 0..3 of that byte) and 2p + 1 (bits 4..7).
  static constexpr BytePlan<7> kPlan = MakeBytePlan<7>(kBlockBytes, [](int o, int l) {
    if (o < 2) return PayloadByte(kBlockBytes, 6, 2 * o, l);
    if (o == 2) return l < 16 ? kBlockBytes * (l / 2) + l % 2 : -1;
    return kBlockBytes * ((l % 32) / 4) + 2 + (o - 3);
  });
  DSPARK_TARGET_AVX512 DSPARK_ALWAYS_INLINE static void DecodeGroupAvx512(const uint8_t* base,
                                                                          int64_t nbytes,
                                                                          Avx512Group* g) {
    __m512i v[7];
    GatherBytes(base, nbytes, kPlan, v);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    g->w[0] = _mm512_and_si512(v[0], m4);                        // rows 0, 1
    g->w[1] = _mm512_and_si512(v[1], m4);                        // rows 2, 3
    g->w[2] = _mm512_and_si512(_mm512_srli_epi16(v[0], 4), m4);  // rows 4, 5
    g->w[3] = _mm512_and_si512(_mm512_srli_epi16(v[1], 4), m4);  // rows 6, 7
    g->d = _mm256_cvtph_ps(_mm512_castsi512_si128(v[2]));
    // Row 2p's byte j tests bit j, row 2p + 1's bit 4 + j.
    const __m512i bits = _mm512_inserti64x4(_mm512_set1_epi32(0x08040201),
                                            _mm256_set1_epi32(static_cast<int>(0x80402010u)), 1);
    const __m512i sixteen = _mm512_set1_epi8(0x10);
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      const __mmask64 high = _mm512_test_epi8_mask(v[3 + p], bits);
      g->w[p] = _mm512_mask_add_epi8(g->w[p], high, g->w[p], sixteen);
    }
  }
};

}  // namespace

const TypeKernels kQ5_0Kernels = {
    GgmlType::kQ5_0,
    32,
    &Dequantize,
    DSPARK_EXACT_KERNELS(Q5_0),
    DSPARK_INT8X32_KERNELS(Q5_0),
    ActFormat::kQ8x32,
    Q5_0::kOffset,
};

}  // namespace dspark::engine::cpu::quant
