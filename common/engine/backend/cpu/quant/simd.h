// Shared low-level helpers of the CPU kernels: per-function ISA targets (the
// library itself is built for baseline x86-64 and picks an ISA at run time),
// exact half-precision conversions and fixed-order horizontal sums.
// Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <cstring>

// GCC 12 flags the deliberately undefined upper halves in its own AVX-512
// cast intrinsics (GCC PR105593, fixed in 13); silence that inside the header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#define DSPARK_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define DSPARK_TARGET_AVX512                                                \
  __attribute__((                                                           \
      target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni," \
             "avx512vbmi")))
#define DSPARK_ALWAYS_INLINE inline __attribute__((always_inline))

namespace dspark::engine::cpu::quant {

template <class T>
inline T LoadUnaligned(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// IEEE half -> float, exact (subnormals, inf and NaN included).
inline float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int e = 113;
    while ((mant & 0x400) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (static_cast<uint32_t>(e) << 23) | ((mant & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// float -> IEEE half, round to nearest even (overflow to inf, underflow
// through the subnormals to zero).
inline uint16_t F32ToF16(float f) {
  const uint32_t x = LoadUnaligned<uint32_t>(&f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = x & 0x7FFFFF;
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00);
  if (exp <= 0) {  // subnormal half (or zero)
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    const int shift = 14 - exp;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // may carry into exp: still right
  return static_cast<uint16_t>(sign | h);
}

inline float BF16ToF32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float LoadF16(const uint8_t* p) { return F16ToF32(LoadUnaligned<uint16_t>(p)); }

// Weights stream through a matmul once; hardware prefetch alone leaves the
// kernels waiting on DRAM, so each kernel asks for the bytes it will read
// kPrefetchBytes later (past a row's end is the next row; prefetches of
// addresses past the tensor never fault).
inline constexpr int64_t kPrefetchBytes = 2048;
template <int64_t kBytes>
DSPARK_ALWAYS_INLINE void PrefetchAhead(const uint8_t* p) {
#pragma GCC unroll 8
  for (int64_t c = 0; c < kBytes; c += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes + c), _MM_HINT_T0);
  }
}

// Horizontal sums in one fixed order (halves folded down to one lane).
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE float HSum(__m128 v) {
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE float HSum(__m256 v) {
  return HSum(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}
DSPARK_TARGET_AVX512 DSPARK_ALWAYS_INLINE float HSum(__m512 v) {
  return HSum(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

}  // namespace dspark::engine::cpu::quant

namespace dspark::engine::cpu::quant {

// De-quantization stores shared by the block types, with the exact operation
// order of gguf's dequantize: out = d * float(q), or (d * float(q)) + m.

// 16 signed bytes -> out[0, 16) = d * q.
DSPARK_TARGET_AVX512 DSPARK_ALWAYS_INLINE void StoreScaledI8Avx512(__m128i q, __m512 d,
                                                                   float* out) {
  _mm512_store_ps(out, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))));
}
// 16 unsigned bytes -> out[0, 16) = d * q + m.
DSPARK_TARGET_AVX512 DSPARK_ALWAYS_INLINE void StoreScaledU8Avx512(__m128i q, __m512 d, __m512 m,
                                                                   float* out) {
  _mm512_store_ps(out,
                  _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q))), m));
}
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE void StoreScaledI8Avx2(__m128i q, __m256 d, float* out) {
  _mm256_store_ps(out, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
  _mm256_store_ps(out + 8,
                  _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)))));
}
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE void StoreScaledU8Avx2(__m128i q, __m256 d, __m256 m,
                                                               float* out) {
  _mm256_store_ps(out,
                  _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q))), m));
  _mm256_store_ps(
      out + 8,
      _mm256_add_ps(
          _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(q, 8)))), m));
}

// 16 bytes of nibbles -> low nibbles (elements 0..15) and high (16..31).
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE void SplitNibbles(const uint8_t* qs, __m128i* lo,
                                                          __m128i* hi) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  *lo = _mm_and_si128(q, _mm_set1_epi8(0x0F));
  *hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0F));
}

}  // namespace dspark::engine::cpu::quant
