// Q4_K: super-blocks of 256 elements, 144 bytes: {f16 d; f16 dmin;
// u8 scales[12]; u8 qs[128]}. The 8 sub-blocks of 32 have 6-bit scales sc_j
// and mins m_j packed in `scales`; element e of sub-block j is
// (d * sc_j) * q - dmin * m_j, with qs[32 i + k] holding sub-block 2i's
// element k in its low nibble and sub-block 2i+1's in its high nibble.
//
// kInt8 against ActBlock256 (per super-block, exact integers):
//   isum = sum_j sc_j * sum_{e in j} q_e * xq_e,  msum = sum_j m_j * xsum_j
//   acc += (d * xd) * isum, then acc -= (dmin * xd) * msum
// (SIMD paths keep isum / msum in int32 lanes and convert lanes to float;
// the order of those float operations is fixed per path, never per tile.)
// Pure functions: thread-safe.
#include <cstring>

#include "common/engine/backend/cpu/quant/activations.h"
#include "common/engine/backend/cpu/quant/exact_kernels.h"
#include "common/engine/backend/cpu/quant/quant_kernels.h"
#include "common/engine/backend/cpu/quant/row_driver.h"
#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::quant {
namespace {

constexpr int kQ4_KBytes = 144;

// The 6-bit scales and mins of the 8 sub-blocks, as 8 bytes each, in
// general-purpose registers (no byte stores for SIMD code to reload):
//   sc[j] = s[j] & 63,                            m[j] = s[j + 4] & 63      (j < 4)
//   sc[j] = s[j + 4] & 15 | (s[j - 4] >> 6) << 4, m[j] = s[j + 4] >> 4 | (s[j] >> 6) << 4
inline void UnpackScales64(const uint8_t* s, uint64_t* sc, uint64_t* m) {
  const uint32_t a = LoadUnaligned<uint32_t>(s), b = LoadUnaligned<uint32_t>(s + 4),
                 c = LoadUnaligned<uint32_t>(s + 8);
  const uint32_t sc_lo = a & 0x3F3F3F3Fu, m_lo = b & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u);
  const uint32_t m_hi = ((c >> 4) & 0x0F0F0F0Fu) | ((b >> 2) & 0x30303030u);
  *sc = sc_lo | (uint64_t{sc_hi} << 32);
  *m = m_lo | (uint64_t{m_hi} << 32);
}

inline void UnpackScales(const uint8_t* s, uint8_t* sc, uint8_t* m) {
  uint64_t sc64, m64;
  UnpackScales64(s, &sc64, &m64);
  std::memcpy(sc, &sc64, 8);
  std::memcpy(m, &m64, 8);
}

void DequantizeBlock(const uint8_t* blk, float* out) {
  const float d = LoadF16(blk);
  const float dmin = LoadF16(blk + 2);
  uint8_t sc[8], m[8];
  UnpackScales(blk + 4, sc, m);
  const uint8_t* qs = blk + 16;
#pragma GCC unroll 16
  for (int j = 0; j < 8; ++j) {
    const float ds = d * static_cast<float>(sc[j]);
    const float dm = dmin * static_cast<float>(m[j]);
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j & 1);
    for (int k = 0; k < 32; ++k)
      out[32 * j + k] = ds * static_cast<float>((q[k] >> shift) & 0x0F) - dm;
  }
}

void Dequantize(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 256; ++b) DequantizeBlock(src + b * kQ4_KBytes, dst + b * 256);
}

// kExact decoders: one super-block of f32 weights.
struct Q4_KF32 {
  static constexpr int kBlockSize = 256;
  static constexpr int kBlockBytes = kQ4_KBytes;
  static void DecodeF32Scalar(const uint8_t* row, int64_t c0, int64_t, float* out) {
    DequantizeBlock(row + c0 / 256 * kQ4_KBytes, out);
  }
  DSPARK_TARGET_AVX2 static void DecodeF32Avx2(const uint8_t* row, int64_t c0, int64_t,
                                               float* out) {
    const uint8_t* blk = row + c0 / 256 * kQ4_KBytes;
    const float d = LoadF16(blk), dmin = LoadF16(blk + 2);
    uint8_t sc[8], m[8];
    UnpackScales(blk + 4, sc, m);
    for (int i = 0; i < 4; ++i) {
      __m128i q[4];
      SplitNibbles(blk + 16 + 32 * i, &q[0], &q[2]);
      SplitNibbles(blk + 32 + 32 * i, &q[1], &q[3]);
      for (int h = 0; h < 2; ++h) {
        const int j = 2 * i + h;
        const __m256 ds = _mm256_set1_ps(d * static_cast<float>(sc[j]));
        const __m256 ndm = _mm256_set1_ps(-(dmin * static_cast<float>(m[j])));
        StoreScaledU8Avx2(q[2 * h], ds, ndm, out + 32 * j);  // ds*q + (-dm) == ds*q - dm
        StoreScaledU8Avx2(q[2 * h + 1], ds, ndm, out + 32 * j + 16);
      }
    }
  }
  DSPARK_TARGET_AVX512 static void DecodeF32Avx512(const uint8_t* row, int64_t c0, int64_t,
                                                   float* out) {
    const uint8_t* blk = row + c0 / 256 * kQ4_KBytes;
    const float d = LoadF16(blk), dmin = LoadF16(blk + 2);
    uint8_t sc[8], m[8];
    UnpackScales(blk + 4, sc, m);
    for (int i = 0; i < 4; ++i) {
      __m128i q[4];
      SplitNibbles(blk + 16 + 32 * i, &q[0], &q[2]);
      SplitNibbles(blk + 32 + 32 * i, &q[1], &q[3]);
      for (int h = 0; h < 2; ++h) {
        const int j = 2 * i + h;
        const __m512 ds = _mm512_set1_ps(d * static_cast<float>(sc[j]));
        const __m512 ndm = _mm512_set1_ps(-(dmin * static_cast<float>(m[j])));
        StoreScaledU8Avx512(q[2 * h], ds, ndm, out + 32 * j);
        StoreScaledU8Avx512(q[2 * h + 1], ds, ndm, out + 32 * j + 16);
      }
    }
  }
};

struct Q4_KInt8Scalar {
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
        const uint8_t* blk = wr + b * kQ4_KBytes;
        const float d = LoadF16(blk), dmin = LoadF16(blk + 2);
        uint8_t sc[8], m[8], q[256];
        UnpackScales(blk + 4, sc, m);
        for (int e = 0; e < 256; ++e)
          q[e] = (blk[16 + 32 * (e / 64) + e % 32] >> (4 * ((e / 32) & 1))) & 0x0F;
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) {
          const ActBlock256& x = xs[i][b];
          int32_t isum = 0, msum = 0;
#pragma GCC unroll 16
          for (int j = 0; j < 8; ++j) {
            int32_t s = 0;
            for (int k = 0; k < 32; ++k) s += q[32 * j + k] * x.qs[32 * j + k];
            isum += sc[j] * s;
            msum += m[j] * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
          }
          float v = acc[i] + (d * x.d) * static_cast<float>(isum);
          acc[i] = v - (dmin * x.d) * static_cast<float>(msum);
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) a.y[(t0 + i) * a.ldy + r] = acc[i];
    }
  }
};

struct Q4_KInt8Avx2 {
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
        const uint8_t* blk = wr + b * kQ4_KBytes;
        const float d = _cvtsh_ss(LoadUnaligned<uint16_t>(blk));
        const float dmin = _cvtsh_ss(LoadUnaligned<uint16_t>(blk + 2));
        uint64_t sc64, m64;
        UnpackScales64(blk + 4, &sc64, &m64);
        uint8_t sc[8];
        std::memcpy(sc, &sc64, 8);
        // int16 lane g (a 16-element sum) belongs to sub-block g / 2.
        const __m128i m8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(m64)));
        const __m256i vmins =
            _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
        __m256i q[8], s[8];
        for (int i = 0; i < 4; ++i) {
          const __m256i raw =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * i));
          q[2 * i] = _mm256_and_si256(raw, _mm256_set1_epi8(0x0F));
          q[2 * i + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), _mm256_set1_epi8(0x0F));
        }
#pragma GCC unroll 16
        for (int j = 0; j < 8; ++j) s[j] = _mm256_set1_epi16(sc[j]);
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) {
          const ActBlock256& x = xs[i][b];
          __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 16
          for (int j = 0; j < 8; ++j) {
            const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * j));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], xq), s[j]));
          }
          const __m256i msum = _mm256_madd_epi16(
              _mm256_load_si256(reinterpret_cast<const __m256i*>(x.bsums)), vmins);
          acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d), _mm256_cvtepi32_ps(isum), acc[i]);
          acc[i] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * x.d), _mm256_cvtepi32_ps(msum), acc[i]);
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) a.y[(t0 + i) * a.ldy + r] = HSum(acc[i]);
    }
  }
};

struct Q4_KInt8Avx512 {
  static constexpr int kMaxTile = 16;
  template <int NT>
  DSPARK_TARGET_AVX512 static void Tile(const RowsArgs& a, int64_t r0, int64_t r1, int64_t t0) {
    const int64_t nb = a.cols / 256;
    const ActBlock256* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i)
      xs[i] = reinterpret_cast<const ActBlock256*>(a.x + (t0 + i) * a.x_stride);
    // int16 lane p of chunk i's scale vector belongs to sub-block 2i + p / 16.
    __m512i scale_idx[4];
    for (int i = 0; i < 4; ++i) {
      scale_idx[i] =
          _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(static_cast<short>(2 * i)),
                                  _mm512_set1_epi16(static_cast<short>(2 * i + 1)));
    }
    // int16 lane g of the mins vector (16-element sums) belongs to sub-block g / 2.
    const __m256i min_idx = _mm256_setr_epi16(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    constexpr long long k4 = 0x0004000400040004LL;
    const __m512i nibble_shift = _mm512_set_epi64(k4, k4, k4, k4, 0, 0, 0, 0);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * a.row_bytes;
      __m512 acc[NT];
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) acc[i] = _mm512_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = wr + b * kQ4_KBytes;
        PrefetchAhead<kQ4_KBytes>(blk);
        const float d = _cvtsh_ss(LoadUnaligned<uint16_t>(blk));
        const float dmin = _cvtsh_ss(LoadUnaligned<uint16_t>(blk + 2));
        uint64_t sc64, m64;
        UnpackScales64(blk + 4, &sc64, &m64);
        const __m512i sc16 = _mm512_castsi128_si512(
            _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc64))));
        const __m256i mins16 = _mm256_permutexvar_epi16(
            min_idx, _mm256_castsi128_si256(
                         _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(m64)))));
        __m512i q[4], s[4];
        // Unrolled so that q[] and s[] stay in registers: as a loop GCC keeps
        // them on the stack and every token reloads them (2x slower at 8
        // tokens on Zen 4).
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
          // [low nibbles of qs[32i..32i+32) | high nibbles] = sub-blocks 2i, 2i+1.
          const __m512i raw = _mm512_broadcast_i64x4(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * i)));
          q[i] = _mm512_and_si512(_mm512_srlv_epi16(raw, nibble_shift), _mm512_set1_epi8(0x0F));
          s[i] = _mm512_permutexvar_epi16(scale_idx[i], sc16);
        }
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) {
          const ActBlock256& x = xs[i][b];
          __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 16
          for (int k = 0; k < 4; ++k) {
            const __m512i xq = _mm512_load_si512(x.qs + 64 * k);
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q[k], xq), s[k]);
          }
          const __m256i msum = _mm256_madd_epi16(
              _mm256_load_si256(reinterpret_cast<const __m256i*>(x.bsums)), mins16);
          acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(d * x.d), _mm512_cvtepi32_ps(isum), acc[i]);
          acc[i] = _mm512_fnmadd_ps(_mm512_set1_ps(dmin * x.d),
                                    _mm512_cvtepi32_ps(_mm512_zextsi256_si512(msum)), acc[i]);
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) a.y[(t0 + i) * a.ldy + r] = HSum(acc[i]);
    }
  }
};

}  // namespace

const TypeKernels kQ4_KKernels = {
    GgmlType::kQ4_K,
    256,
    &Dequantize,
    DSPARK_EXACT_KERNELS(Q4_KF32),
    {&RunRows<Q4_KInt8Scalar>, &RunRows<Q4_KInt8Avx2>, &RunRows<Q4_KInt8Avx512>},
    ActFormat::kQ8x256,
    0,
};

}  // namespace dspark::engine::cpu::quant
