#include "common/engine/model/layers.h"

#include <algorithm>
#include <cmath>

namespace dspark::engine {

float DotF32(const float* a, const float* b, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int l = 0; l < 16; ++l) acc[l] += a[i + l] * b[i + l];
  }
  for (int l = 0; i < n; ++i, ++l) acc[l] += a[i] * b[i];
  for (int w = 8; w >= 1; w /= 2) {
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  }
  return acc[0];
}

void RmsNorm(const float* x, const float* w, float offset, int64_t n, float eps, float* out) {
  const float ss = DotF32(x, x, n);
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * (w[i] + offset);
}

void ApplyRope(float* x, int num_heads, int head_dim, int64_t pos, const RopeParams& p) {
  const int half = head_dim / 2;
  const double position = static_cast<double>(pos) / p.linear_factor;
  // cos/sin per frequency, shared by all heads.
  float cs[512], sn[512];
  for (int i = 0; i < half; ++i) {
    double inv_freq = std::pow(static_cast<double>(p.base), -2.0 * i / head_dim);
    if (p.freq_factors != nullptr) inv_freq /= p.freq_factors[i];
    const double theta = position * inv_freq;
    cs[i] = static_cast<float>(std::cos(theta));
    sn[i] = static_cast<float>(std::sin(theta));
  }
  for (int h = 0; h < num_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const int i0 = p.neox ? i : 2 * i;
      const int i1 = p.neox ? i + half : 2 * i + 1;
      const float a = v[i0], b = v[i1];
      v[i0] = a * cs[i] - b * sn[i];
      v[i1] = a * sn[i] + b * cs[i];
    }
  }
}

void SiluMul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void GeluTanhMul(float* gate, const float* up, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float x = gate[i];
    gate[i] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x))) * up[i];
  }
}

void AttendOne(const float* q, const KvCache& cache, int layer, SeqId seq, int64_t pos,
               const AttentionParams& p, int head, float* out, std::vector<float>* scratch) {
  const int64_t lo = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
  const int64_t n = pos - lo + 1;
  scratch->resize(n);
  float* scores = scratch->data();
  const int group = p.num_heads / p.num_kv_heads;
  const int h_begin = head >= 0 ? head : 0;
  const int h_end = head >= 0 ? head + 1 : p.num_heads;
  for (int h = h_begin; h < h_end; ++h) {
    const int kvh = h / group;
    const float* qh = q + static_cast<int64_t>(h) * p.head_dim;
    float max_score = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      const float* k = cache.Key(layer, seq, lo + j) + static_cast<int64_t>(kvh) * p.head_dim;
      float s = DotF32(qh, k, p.head_dim) * p.scale;
      if (p.softcap > 0) s = std::tanh(s / p.softcap) * p.softcap;
      scores[j] = s;
      max_score = std::max(max_score, s);
    }
    float sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      scores[j] = std::exp(scores[j] - max_score);
      sum += scores[j];
    }
    const float inv = 1.0f / sum;
    float* o = out + static_cast<int64_t>(h) * p.head_dim;
    std::fill(o, o + p.head_dim, 0.0f);
    for (int64_t j = 0; j < n; ++j) {
      const float* v = cache.Value(layer, seq, lo + j) + static_cast<int64_t>(kvh) * p.head_dim;
      const float w = scores[j] * inv;
      for (int d = 0; d < p.head_dim; ++d) o[d] += w * v[d];
    }
  }
}

}  // namespace dspark::engine
