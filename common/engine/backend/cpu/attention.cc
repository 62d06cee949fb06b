// AttendHead: scores, softmax and the weighted sum of values in three passes
// over the key positions. The SIMD paths keep each dot product and each
// value row in registers (head_dim / 16 or / 8 vectors) and use the
// vectorised exp; the scalar path is the plain loop.
#include "common/engine/backend/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/base/logging.h"
#include "common/engine/backend/cpu/exp_simd.h"
#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu {
namespace {

using quant::HSum;

// Grow-only scores buffer per thread: no allocation per call once warm.
float* Scores(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(std::max<int64_t>(n, 1024));
  return buf.data();
}

float Softcap(float s, float cap) { return cap > 0 ? std::tanh(s / cap) * cap : s; }

void AttendScalar(const AttentionArgs& a, const float* q, float* out) {
  float* scores = Scores(a.n);
  float max_score = -INFINITY;
  for (int64_t j = 0; j < a.n; ++j) {
    const float* k = a.keys[j] + a.offset;
    float s = 0.0f;
    for (int d = 0; d < a.head_dim; ++d) s += q[d] * k[d];
    s = Softcap(s * a.scale, a.softcap);
    scores[j] = s;
    max_score = std::max(max_score, s);
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < a.n; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  const float inv = 1.0f / sum;
  std::fill(out, out + a.head_dim, 0.0f);
  for (int64_t j = 0; j < a.n; ++j) {
    const float* v = a.values[j] + a.offset;
    const float w = scores[j] * inv;
    for (int d = 0; d < a.head_dim; ++d) out[d] += w * v[d];
  }
}

// NV = head_dim / lanes vectors per head row, a constant so that q and the
// output accumulators live in registers.
template <int NV>
DSPARK_TARGET_AVX512 void AttendAvx512(const AttentionArgs& a, const float* q, float* out) {
  constexpr int nv = NV;
  float* scores = Scores(a.n + 16);
  __m512 qv[NV];
#pragma GCC unroll 16
  for (int c = 0; c < nv; ++c) qv[c] = _mm512_loadu_ps(q + 16 * c);
  // Pass 1: scores. Two accumulators (even and odd vectors), then one
  // fixed horizontal sum.
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < a.n; ++j) {
    const float* k = a.keys[j] + a.offset;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int c = 0;
#pragma GCC unroll 16
    for (; c + 2 <= nv; c += 2) {
      acc0 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k + 16 * c), acc0);
      acc1 = _mm512_fmadd_ps(qv[c + 1], _mm512_loadu_ps(k + 16 * c + 16), acc1);
    }
    if (c < nv) acc0 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k + 16 * c), acc0);
    const float s = Softcap(HSum(_mm512_add_ps(acc0, acc1)) * a.scale, a.softcap);
    scores[j] = s;
    vmax = _mm512_max_ps(vmax, _mm512_set1_ps(s));
  }
  // Pass 2: exponentials and their sum, 16 at a time (a masked tail).
  const __m512 max_score = vmax;
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t j = 0; j < a.n; j += 16) {
    const __mmask16 m = a.n - j >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (a.n - j)) - 1);
    const __m512 e = ExpAvx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scores + j), max_score));
    vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
    _mm512_mask_storeu_ps(scores + j, m, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / HSum(vsum));
  // Pass 3: out = sum_j w_j v_j, even and odd positions in separate
  // accumulators (two FMA chains), added at the end.
  __m512 acc0[NV], acc1[NV];
#pragma GCC unroll 32
  for (int c = 0; c < nv; ++c) acc0[c] = acc1[c] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 2 <= a.n; j += 2) {
    const float* v0 = a.values[j] + a.offset;
    const float* v1 = a.values[j + 1] + a.offset;
    const __m512 w0 = _mm512_mul_ps(_mm512_set1_ps(scores[j]), inv);
    const __m512 w1 = _mm512_mul_ps(_mm512_set1_ps(scores[j + 1]), inv);
#pragma GCC unroll 32
    for (int c = 0; c < nv; ++c) {
      acc0[c] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(v0 + 16 * c), acc0[c]);
      acc1[c] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(v1 + 16 * c), acc1[c]);
    }
  }
  if (j < a.n) {
    const float* v0 = a.values[j] + a.offset;
    const __m512 w0 = _mm512_mul_ps(_mm512_set1_ps(scores[j]), inv);
#pragma GCC unroll 32
    for (int c = 0; c < nv; ++c)
      acc0[c] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(v0 + 16 * c), acc0[c]);
  }
#pragma GCC unroll 32
  for (int c = 0; c < nv; ++c) _mm512_storeu_ps(out + 16 * c, _mm512_add_ps(acc0[c], acc1[c]));
}

template <int NV>
DSPARK_TARGET_AVX2 void AttendAvx2(const AttentionArgs& a, const float* q, float* out) {
  constexpr int nv = NV;
  float* scores = Scores(a.n + 8);
  __m256 qv[NV];
#pragma GCC unroll 32
  for (int c = 0; c < nv; ++c) qv[c] = _mm256_loadu_ps(q + 8 * c);
  float max_score = -INFINITY;
  for (int64_t j = 0; j < a.n; ++j) {
    const float* k = a.keys[j] + a.offset;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int c = 0;
#pragma GCC unroll 16
    for (; c + 2 <= nv; c += 2) {
      acc0 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k + 8 * c), acc0);
      acc1 = _mm256_fmadd_ps(qv[c + 1], _mm256_loadu_ps(k + 8 * c + 8), acc1);
    }
    if (c < nv) acc0 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k + 8 * c), acc0);
    const float s = Softcap(HSum(_mm256_add_ps(acc0, acc1)) * a.scale, a.softcap);
    scores[j] = s;
    max_score = std::max(max_score, s);
  }
  // A short last vector reads past the n scores (the buffer has room); its
  // extra lanes are zeroed before they are added or stored.
  const __m256 vmax = _mm256_set1_ps(max_score);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256 vsum = _mm256_setzero_ps();
  for (int64_t j = 0; j < a.n; j += 8) {
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
        _mm256_set1_epi32(static_cast<int>(std::min<int64_t>(8, a.n - j))), lane));
    const __m256 e = _mm256_and_ps(keep, ExpAvx2(_mm256_sub_ps(_mm256_loadu_ps(scores + j), vmax)));
    vsum = _mm256_add_ps(vsum, e);
    _mm256_storeu_ps(scores + j, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / HSum(vsum));
  __m256 acc0[NV], acc1[NV];
#pragma GCC unroll 32
  for (int c = 0; c < nv; ++c) acc0[c] = acc1[c] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 2 <= a.n; j += 2) {
    const float* v0 = a.values[j] + a.offset;
    const float* v1 = a.values[j + 1] + a.offset;
    const __m256 w0 = _mm256_mul_ps(_mm256_set1_ps(scores[j]), inv);
    const __m256 w1 = _mm256_mul_ps(_mm256_set1_ps(scores[j + 1]), inv);
#pragma GCC unroll 32
    for (int c = 0; c < nv; ++c) {
      acc0[c] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(v0 + 8 * c), acc0[c]);
      acc1[c] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(v1 + 8 * c), acc1[c]);
    }
  }
  if (j < a.n) {
    const float* v0 = a.values[j] + a.offset;
    const __m256 w0 = _mm256_mul_ps(_mm256_set1_ps(scores[j]), inv);
#pragma GCC unroll 32
    for (int c = 0; c < nv; ++c)
      acc0[c] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(v0 + 8 * c), acc0[c]);
  }
#pragma GCC unroll 32
  for (int c = 0; c < nv; ++c) _mm256_storeu_ps(out + 8 * c, _mm256_add_ps(acc0[c], acc1[c]));
}

}  // namespace

void AttendHead(const AttentionArgs& args, const float* q, float* out, Isa isa) {
  DSPARK_CHECK(args.n >= 1) << "attention over no keys";
  // Head sizes without a register path take the scalar loop (the choice
  // depends on the model only, never on the batch).
  if (isa == Isa::kAvx512) {
    switch (args.head_dim) {
      case 64:
        return AttendAvx512<4>(args, q, out);
      case 128:
        return AttendAvx512<8>(args, q, out);
      case 256:
        return AttendAvx512<16>(args, q, out);
    }
  } else if (isa == Isa::kAvx2) {
    switch (args.head_dim) {
      case 64:
        return AttendAvx2<8>(args, q, out);
      case 128:
        return AttendAvx2<16>(args, q, out);
      case 256:
        return AttendAvx2<32>(args, q, out);
    }
  }
  AttendScalar(args, q, out);
}

void AttendHead(const AttentionArgs& args, const float* q, float* out) {
  AttendHead(args, q, out, ActiveIsa());
}

}  // namespace dspark::engine::cpu
