#include "common/engine/backend/cpu/vec_ops.h"

#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu {
namespace {

using quant::HSum;

float DotScalar(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

DSPARK_TARGET_AVX2 float DotAvx2(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t c = 0; c < n; c += 32) {
    const int64_t rem = n - c;
    __m256 va[4], vb[4];
    for (int q = 0; q < 4; ++q) {
      if (rem >= 32) {
        va[q] = _mm256_loadu_ps(a + c + 8 * q);
        vb[q] = _mm256_loadu_ps(b + c + 8 * q);
      } else {
        const __m256i m =
            _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem) - 8 * q), lane);
        va[q] = _mm256_maskload_ps(a + c + 8 * q, m);
        vb[q] = _mm256_maskload_ps(b + c + 8 * q, m);
      }
    }
    acc0 = _mm256_fmadd_ps(va[0], vb[0], acc0);
    acc1 = _mm256_fmadd_ps(va[1], vb[1], acc1);
    acc0 = _mm256_fmadd_ps(va[2], vb[2], acc0);
    acc1 = _mm256_fmadd_ps(va[3], vb[3], acc1);
  }
  return HSum(_mm256_add_ps(acc0, acc1));
}

DSPARK_TARGET_AVX512 float DotAvx512(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 32 <= n; c += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + c), _mm512_loadu_ps(b + c), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + c + 16), _mm512_loadu_ps(b + c + 16), acc1);
  }
  if (c < n) {
    const __mmask32 m = (1u << (n - c)) - 1;
    const __mmask16 m0 = static_cast<__mmask16>(m), m1 = static_cast<__mmask16>(m >> 16);
    acc0 =
        _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, a + c), _mm512_maskz_loadu_ps(m0, b + c), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, a + c + 16),
                           _mm512_maskz_loadu_ps(m1, b + c + 16), acc1);
  }
  return HSum(_mm512_add_ps(acc0, acc1));
}

DSPARK_TARGET_AVX2 void AxpyAvx2(float alpha, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i)
    y[i] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(alpha), _mm_set_ss(x[i]), _mm_set_ss(y[i])));
}

}  // namespace

float DotF32(const float* a, const float* b, int64_t n, Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return DotAvx512(a, b, n);
    case Isa::kAvx2:
      return DotAvx2(a, b, n);
    case Isa::kScalar:
      break;
  }
  return DotScalar(a, b, n);
}

float DotF32(const float* a, const float* b, int64_t n) { return DotF32(a, b, n, ActiveIsa()); }

void AxpyF32(float alpha, const float* x, float* y, int64_t n) {
  if (ActiveIsa() != Isa::kScalar) {
    AxpyAvx2(alpha, x, y, n);
    return;
  }
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace dspark::engine::cpu
