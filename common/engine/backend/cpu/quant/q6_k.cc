// Q6_K: super-blocks of 256 elements, 210 bytes: {u8 ql[128]; u8 qh[64];
// i8 scales[16]; f16 d}. Element e is (d * scales[e / 16]) * (q - 32) with
// the 6-bit q from a nibble of ql and two bits of qh; per 128-element half h
// and l < 32 (ql += 64 h, qh += 32 h):
//   e = l:      ql[l] low,       qh[l] bits 0-1
//   e = l + 32: ql[l + 32] low,  qh[l] bits 2-3
//   e = l + 64: ql[l] high,      qh[l] bits 4-5
//   e = l + 96: ql[l + 32] high, qh[l] bits 6-7
//
// kInt8 against ActBlock256 (exact integers per super-block):
//   isum = sum_g scales[g] * (sum_{e in g} q_e * xq_e - 32 * xsum_g)
//   acc += (d * xd) * isum
// Pure functions: thread-safe.
#include "common/engine/backend/cpu/quant/activations.h"
#include "common/engine/backend/cpu/quant/exact_kernels.h"
#include "common/engine/backend/cpu/quant/quant_kernels.h"
#include "common/engine/backend/cpu/quant/row_driver.h"
#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::quant {
namespace {

constexpr int kQ6_KBytes = 210;

// The 256 unsigned 6-bit values q (before the -32).
void DecodeQScalar(const uint8_t* blk, uint8_t* q) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = blk + 64 * h;
    const uint8_t* qh = blk + 128 + 32 * h;
    uint8_t* o = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      o[l] = (ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4);
      o[l + 32] = (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4);
      o[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
      o[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
    }
  }
}

// Same with AVX2: q[0, 256) as bytes.
DSPARK_TARGET_AVX2 void DecodeQAvx2(const uint8_t* blk, uint8_t* q) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
  for (int h = 0; h < 2; ++h) {
    const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h));
    const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
    // 16-bit shifts leak bits across bytes only outside the masked bits.
    const __m256i o[4] = {
        _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2)),
        _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                        _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2)),
    };
#pragma GCC unroll 16
    for (int k = 0; k < 4; ++k) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 128 * h + 32 * k), o[k]);
    }
  }
}

void DequantizeBlock(const uint8_t* blk, float* out) {
  const float d = LoadF16(blk + 208);
  const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
  uint8_t q[256];
  DecodeQScalar(blk, q);
  for (int g = 0; g < 16; ++g) {
    const float ds = d * static_cast<float>(sc[g]);
    for (int k = 0; k < 16; ++k) out[16 * g + k] = ds * static_cast<float>(q[16 * g + k] - 32);
  }
}

void Dequantize(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 256; ++b) DequantizeBlock(src + b * kQ6_KBytes, dst + b * 256);
}

// kExact decoders: one super-block of f32 weights.
struct Q6_KF32 {
  static constexpr int kBlockSize = 256;
  static constexpr int kBlockBytes = kQ6_KBytes;
  static void DecodeF32Scalar(const uint8_t* row, int64_t c0, int64_t, float* out) {
    DequantizeBlock(row + c0 / 256 * kQ6_KBytes, out);
  }
  DSPARK_TARGET_AVX2 static void DecodeF32Avx2(const uint8_t* row, int64_t c0, int64_t,
                                               float* out) {
    const uint8_t* blk = row + c0 / 256 * kQ6_KBytes;
    const float d = _cvtsh_ss(LoadUnaligned<uint16_t>(blk + 208));
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    alignas(32) uint8_t q[256];
    DecodeQAvx2(blk, q);
    for (int g = 0; g < 16; ++g) {
      const __m128i v = _mm_sub_epi8(_mm_load_si128(reinterpret_cast<const __m128i*>(q + 16 * g)),
                                     _mm_set1_epi8(32));
      StoreScaledI8Avx2(v, _mm256_set1_ps(d * static_cast<float>(sc[g])), out + 16 * g);
    }
  }
  DSPARK_TARGET_AVX512 static void DecodeF32Avx512(const uint8_t* row, int64_t c0, int64_t,
                                                   float* out) {
    const uint8_t* blk = row + c0 / 256 * kQ6_KBytes;
    const float d = _cvtsh_ss(LoadUnaligned<uint16_t>(blk + 208));
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    alignas(32) uint8_t q[256];
    DecodeQAvx2(blk, q);
    for (int g = 0; g < 16; ++g) {
      const __m128i v = _mm_sub_epi8(_mm_load_si128(reinterpret_cast<const __m128i*>(q + 16 * g)),
                                     _mm_set1_epi8(32));
      StoreScaledI8Avx512(v, _mm512_set1_ps(d * static_cast<float>(sc[g])), out + 16 * g);
    }
  }
};

struct Q6_KInt8Scalar {
  static constexpr int kMaxTile = 16;
  template <int NT>
  static void Tile(const RowsArgs& a, int64_t r0, int64_t r1, int64_t t0) {
    const int64_t nb = a.cols / 256;
    const ActBlock256* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i)
      xs[i] = reinterpret_cast<const ActBlock256*>(a.x + (t0 + i) * a.x_stride);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * a.row_bytes;
      float acc[NT] = {};
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = wr + b * kQ6_KBytes;
        const float d = LoadF16(blk + 208);
        const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
        uint8_t q[256];
        DecodeQScalar(blk, q);
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) {
          const ActBlock256& x = xs[i][b];
          int32_t isum = 0;
          for (int g = 0; g < 16; ++g) {
            int32_t s = 0;
            for (int k = 0; k < 16; ++k) s += q[16 * g + k] * x.qs[16 * g + k];
            isum += sc[g] * (s - 32 * x.bsums[g]);
          }
          acc[i] = acc[i] + (d * x.d) * static_cast<float>(isum);
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) a.y[(t0 + i) * a.ldy + r] = acc[i];
    }
  }
};

struct Q6_KInt8Avx2 {
  static constexpr int kMaxTile = 8;
  template <int NT>
  DSPARK_TARGET_AVX2 static void Tile(const RowsArgs& a, int64_t r0, int64_t r1, int64_t t0) {
    const int64_t nb = a.cols / 256;
    const ActBlock256* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i)
      xs[i] = reinterpret_cast<const ActBlock256*>(a.x + (t0 + i) * a.x_stride);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * a.row_bytes;
      __m256 acc[NT];
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) acc[i] = _mm256_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = wr + b * kQ6_KBytes;
        const float d = _cvtsh_ss(LoadUnaligned<uint16_t>(blk + 208));
        const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
        alignas(32) uint8_t q[256];
        DecodeQAvx2(blk, q);
        // 32-element chunk j: int16 lanes 0..7 scale 2j, 8..15 scale 2j+1.
        __m256i s[8];
#pragma GCC unroll 16
        for (int j = 0; j < 8; ++j) {
          s[j] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * j + 1]), _mm_set1_epi16(sc[2 * j]));
        }
        const __m256i sc16 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) {
          const ActBlock256& x = xs[i][b];
          __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 16
          for (int j = 0; j < 8; ++j) {
            const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * j));
            const __m256i qj = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 32 * j));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(qj, xq), s[j]));
          }
          const __m256i corr =
              _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(x.bsums)), sc16);
          isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(corr, 5));
          acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d), _mm256_cvtepi32_ps(isum), acc[i]);
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) a.y[(t0 + i) * a.ldy + r] = HSum(acc[i]);
    }
  }
};

struct Q6_KInt8Avx512 {
  static constexpr int kMaxTile = 16;
  template <int NT>
  DSPARK_TARGET_AVX512 static void Tile(const RowsArgs& a, int64_t r0, int64_t r1, int64_t t0) {
    const int64_t nb = a.cols / 256;
    const ActBlock256* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i)
      xs[i] = reinterpret_cast<const ActBlock256*>(a.x + (t0 + i) * a.x_stride);
    // int16 lane p of chunk k's scale vector covers elements 64k + 2p, +1.
    __m512i scale_idx[4];
#pragma GCC unroll 16
    for (int k = 0; k < 4; ++k) {
      alignas(64) int16_t idx[32];
      for (int p = 0; p < 32; ++p) idx[p] = static_cast<int16_t>(4 * k + p / 8);
      scale_idx[k] = _mm512_load_si512(idx);
    }
    constexpr long long k2 = 0x0002000200020002LL;
    const __m512i qh_shift = _mm512_set_epi64(k2, k2, k2, k2, 0, 0, 0, 0);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * a.row_bytes;
      __m512 acc[NT];
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) acc[i] = _mm512_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = wr + b * kQ6_KBytes;
        PrefetchAhead<kQ6_KBytes>(blk);
        const float d = _cvtsh_ss(LoadUnaligned<uint16_t>(blk + 208));
        const __m256i sc16 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
        const __m256i neg_sc16 = _mm256_sub_epi16(_mm256_setzero_si256(), sc16);
        __m512i q[4], s[4];
        for (int h = 0; h < 2; ++h) {
          const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
          // [qh, qh >> 2]: bits for elements l, l + 32 after << 4; l + 64, l + 96 as is.
          const __m512i hz = _mm512_srlv_epi16(
              _mm512_broadcast_i64x4(
                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h))),
              qh_shift);
          // (a & b) | c is ternary-logic 0xEA.
          q[2 * h] = _mm512_ternarylogic_epi32(
              ql, m4, _mm512_and_si512(_mm512_slli_epi16(hz, 4), m2), 0xEA);
          q[2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), m4,
                                                   _mm512_and_si512(hz, m2), 0xEA);
        }
#pragma GCC unroll 16
        for (int k = 0; k < 4; ++k) {
          s[k] = _mm512_permutexvar_epi16(scale_idx[k], _mm512_castsi256_si512(sc16));
        }
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) {
          const ActBlock256& x = xs[i][b];
          // Start from -32 * sum_g scale_g * xsum_g (in the low 8 lanes).
          __m512i isum = _mm512_zextsi256_si512(_mm256_slli_epi32(
              _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(x.bsums)),
                                neg_sc16),
              5));
#pragma GCC unroll 16
          for (int k = 0; k < 4; ++k) {
            const __m512i xq = _mm512_load_si512(x.qs + 64 * k);
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q[k], xq), s[k]);
          }
          acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(d * x.d), _mm512_cvtepi32_ps(isum), acc[i]);
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) a.y[(t0 + i) * a.ldy + r] = HSum(acc[i]);
    }
  }
};

}  // namespace

const TypeKernels kQ6_KKernels = {
    GgmlType::kQ6_K,
    256,
    &Dequantize,
    DSPARK_EXACT_KERNELS(Q6_KF32),
    {&RunRows<Q6_KInt8Scalar>, &RunRows<Q6_KInt8Avx2>, &RunRows<Q6_KInt8Avx512>},
    ActFormat::kQ8x256,
    0,
};

}  // namespace dspark::engine::cpu::quant
