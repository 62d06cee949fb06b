#include "common/engine/backend/cpu/quant/activations.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::quant {
namespace {

// Scale of a block with largest magnitude `amax`, and its inverse. The SIMD
// paths below use exactly these operations, so all ISAs agree bit for bit.
inline void BlockScale(float amax, float* d, float* id) {
  *d = amax / 127.0f;
  *id = *d != 0.0f ? 1.0f / *d : 0.0f;
}

// q[0, count) from x with scale inverse id (round half to even).
void QuantizeScalar(const float* x, int count, float id, int8_t* q) {
  for (int i = 0; i < count; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
}

float AbsMaxScalar(const float* x, int count) {
  float m = 0.0f;
  for (int i = 0; i < count; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

DSPARK_TARGET_AVX512 float AbsMaxAvx512(const float* x, int count) {
  __m512 m = _mm512_setzero_ps();
  for (int i = 0; i < count; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  return _mm512_reduce_max_ps(m);  // max is exact in any order
}

DSPARK_TARGET_AVX512 void QuantizeAvx512(const float* x, int count, float id, int8_t* q) {
  const __m512 vid = _mm512_set1_ps(id);
  for (int i = 0; i < count; i += 16) {
    // cvtps rounds with the current (default: nearest-even) mode, as nearbyint.
    const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vid));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(v));
  }
}

DSPARK_TARGET_AVX2 float AbsMaxAvx2(const float* x, int count) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  // max(v, m) returns m where v is NaN, as the scalar std::max(m, |x|) does.
  for (int i = 0; i < count; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m);
  __m128 v = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  v = _mm_max_ps(v, _mm_movehl_ps(v, v));
  v = _mm_max_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);  // max is exact in any order
}

DSPARK_TARGET_AVX2 void QuantizeAvx2(const float* x, int count, float id, int8_t* q) {
  const __m256 vid = _mm256_set1_ps(id);
  // packs interleaves 128-bit lanes; this puts the dwords back in order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int i = 0; i < count; i += 32) {
    __m256i v[4];
    for (int j = 0; j < 4; ++j) {
      // cvtps rounds with the current (default: nearest-even) mode, as nearbyint.
      v[j] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), vid));
    }
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]),
                                              _mm256_packs_epi32(v[2], v[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i),
                        _mm256_permutevar8x32_epi32(packed, order));
  }
}

// Quantizes one block of `count` (32 or 256) elements; returns its scale.
float QuantizeBlock(const float* x, int count, int8_t* q, Isa isa) {
  float d, id;
  if (isa == Isa::kAvx512) {
    BlockScale(AbsMaxAvx512(x, count), &d, &id);
    QuantizeAvx512(x, count, id, q);
  } else if (isa == Isa::kAvx2) {
    BlockScale(AbsMaxAvx2(x, count), &d, &id);
    QuantizeAvx2(x, count, id, q);
  } else {
    BlockScale(AbsMaxScalar(x, count), &d, &id);
    QuantizeScalar(x, count, id, q);
  }
  return d;
}

void QuantizeQ8x32(int offset, const float* x, int64_t cols, ActGroup32* out, Isa isa) {
  const int64_t blocks = cols / 32;
  for (int64_t g = 0; g * 8 < blocks; ++g) {
    ActGroup32& r = out[g];
    std::memset(&r, 0, sizeof(r));
    for (int b = 0; b < 8 && g * 8 + b < blocks; ++b) {
      int8_t q[32];
      r.d[b] = QuantizeBlock(x + (g * 8 + b) * 32, 32, q, isa);
      int32_t sum = 0;
      for (int e = 0; e < 32; ++e) sum += q[e];
      // Dword k of the block (elements 4k..4k+3) goes to row k, lane b.
      for (int k = 0; k < 8; ++k) std::memcpy(&r.qs[k][4 * b], q + 4 * k, 4);
      if (offset != 0) {
        r.neg_offset_sum[b] = -offset * sum;
      } else {
        r.sum[b] = static_cast<float>(sum);
      }
    }
  }
}

void QuantizeQ8x256(const float* x, int64_t cols, ActBlock256* out, Isa isa) {
  for (int64_t b = 0; b < cols / 256; ++b) {
    ActBlock256& a = out[b];
    std::memset(&a, 0, sizeof(a));
    a.d = QuantizeBlock(x + b * 256, 256, a.qs, isa);
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += a.qs[16 * g + i];
      a.bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

}  // namespace

int64_t ActBytesPerToken(ActFormat format, int64_t cols) {
  switch (format) {
    case ActFormat::kF32:
      return (cols * 4 + 63) / 64 * 64;
    case ActFormat::kQ8x32:
      return (cols / 32 + 7) / 8 * static_cast<int64_t>(sizeof(ActGroup32));
    case ActFormat::kQ8x256:
      return cols / 256 * static_cast<int64_t>(sizeof(ActBlock256));
  }
  return 0;
}

void QuantizeActivations(ActFormat format, int offset, const float* x, int64_t cols, uint8_t* out,
                         Isa isa) {
  switch (format) {
    case ActFormat::kF32:
      std::memcpy(out, x, cols * sizeof(float));
      return;
    case ActFormat::kQ8x32:
      QuantizeQ8x32(offset, x, cols, reinterpret_cast<ActGroup32*>(out), isa);
      return;
    case ActFormat::kQ8x256:
      QuantizeQ8x256(x, cols, reinterpret_cast<ActBlock256*>(out), isa);
      return;
  }
}

}  // namespace dspark::engine::cpu::quant
