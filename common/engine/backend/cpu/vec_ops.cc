#include "common/engine/backend/cpu/vec_ops.h"

#include <algorithm>
#include <cmath>

#include "common/engine/backend/cpu/exp_simd.h"
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

DSPARK_TARGET_AVX512 void SiluMulAvx512(float* gate, const float* up, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = ExpAvx512(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

DSPARK_TARGET_AVX2 void SiluMulAvx2(float* gate, const float* up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(8, n - i))), lane);
    const __m256 g = _mm256_maskload_ps(gate + i, m);
    const __m256 e = ExpAvx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
    const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_maskstore_ps(gate + i, m, _mm256_mul_ps(s, _mm256_maskload_ps(up + i, m)));
  }
}

}  // namespace

void SiluMulF32(float* gate, const float* up, int64_t n, Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return SiluMulAvx512(gate, up, n);
    case Isa::kAvx2:
      return SiluMulAvx2(gate, up, n);
    case Isa::kScalar:
      break;
  }
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void SiluMulF32(float* gate, const float* up, int64_t n) { SiluMulF32(gate, up, n, ActiveIsa()); }

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
