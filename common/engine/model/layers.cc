#include "common/engine/model/layers.h"

#include <algorithm>
#include <cmath>

#include "common/engine/backend/cpu/attention.h"
#include "common/engine/backend/cpu/vec_ops.h"

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

void RopeAngles(int head_dim, int64_t pos, const RopeParams& p, float* cs, float* sn) {
  const int half = head_dim / 2;
  const double position = static_cast<double>(pos) / p.linear_factor;
  for (int i = 0; i < half; ++i) {
    double inv_freq = std::pow(static_cast<double>(p.base), -2.0 * i / head_dim);
    if (p.freq_factors != nullptr) inv_freq /= p.freq_factors[i];
    const double theta = position * inv_freq;
    cs[i] = static_cast<float>(std::cos(theta));
    sn[i] = static_cast<float>(std::sin(theta));
  }
}

void ApplyRopeAngles(float* x, int num_heads, int head_dim, bool neox, const float* cs,
                     const float* sn) {
  const int half = head_dim / 2;
  for (int h = 0; h < num_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const int i0 = neox ? i : 2 * i;
      const int i1 = neox ? i + half : 2 * i + 1;
      const float a = v[i0], b = v[i1];
      v[i0] = a * cs[i] - b * sn[i];
      v[i1] = a * sn[i] + b * cs[i];
    }
  }
}

void ApplyRope(float* x, int num_heads, int head_dim, int64_t pos, const RopeParams& p) {
  // cos/sin per frequency, shared by all heads.
  float cs[512], sn[512];
  RopeAngles(head_dim, pos, p, cs, sn);
  ApplyRopeAngles(x, num_heads, head_dim, p.neox, cs, sn);
}

void SiluMul(float* gate, const float* up, int64_t n) { cpu::SiluMulF32(gate, up, n); }

void GeluTanhMul(float* gate, const float* up, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float x = gate[i];
    gate[i] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x))) * up[i];
  }
}

void AttendOne(const float* q, const float* const* keys, const float* const* values, int64_t pos,
               const AttentionParams& p, int head, float* out) {
  const int64_t lo = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
  const int group = p.num_heads / p.num_kv_heads;
  const int h_begin = head >= 0 ? head : 0;
  const int h_end = head >= 0 ? head + 1 : p.num_heads;
  for (int h = h_begin; h < h_end; ++h) {
    const cpu::AttentionArgs args{.keys = keys + lo,
                                  .values = values + lo,
                                  .n = pos - lo + 1,
                                  .offset = static_cast<int64_t>(h / group) * p.head_dim,
                                  .head_dim = p.head_dim,
                                  .scale = p.scale,
                                  .softcap = p.softcap};
    const int64_t off = static_cast<int64_t>(h) * p.head_dim;
    cpu::AttendHead(args, q + off, out + off);
  }
}

}  // namespace dspark::engine
