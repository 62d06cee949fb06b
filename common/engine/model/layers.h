// Per-token transformer pieces used by Model::Forward: RMSNorm, RoPE,
// activations and causal attention over the paged KV cache. Each output is
// computed in a fixed order from its own token's inputs only, so results do
// not depend on batch composition (batch invariance). Stateless: thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "common/engine/kv_cache/kv_cache.h"

namespace dspark::engine {

// Sum of a[i] * b[i] in a fixed order (16 interleaved partial sums).
float DotF32(const float* a, const float* b, int64_t n);

// out[n] = x[n] / rms(x) * (w[n] + offset); out may alias x.
void RmsNorm(const float* x, const float* w, float offset, int64_t n, float eps, float* out);

struct RopeParams {
  bool neox = false;     // halves layout (NeoX) or adjacent pairs (GGUF llama)
  float base = 10000.0f;
  float linear_factor = 1.0f;
  const float* freq_factors = nullptr;  // [head_dim / 2] divisors or null
};

// Rotates x [num_heads, head_dim] for position `pos` in place.
void ApplyRope(float* x, int num_heads, int head_dim, int64_t pos, const RopeParams& params);

// ApplyRope in two steps, so that a forward computes a position's angles
// once for all layers and for both q and k (same results, bit for bit):
// cs, sn [head_dim / 2] = cos, sin of the rotation angles at `pos`.
void RopeAngles(int head_dim, int64_t pos, const RopeParams& params, float* cs, float* sn);
void ApplyRopeAngles(float* x, int num_heads, int head_dim, bool neox, const float* cs,
                     const float* sn);

void SiluMul(float* gate, const float* up, int64_t n);      // gate = silu(gate) * up
void GeluTanhMul(float* gate, const float* up, int64_t n);  // gate = gelu_tanh(gate) * up

struct AttentionParams {
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float scale = 1.0f;
  float softcap = 0.0f;  // 0 = off
  int window = 0;        // 0 = full causal; else keys in (pos - window, pos]
};

// out [num_heads, head_dim] = causal attention of q [num_heads, head_dim]
// (head `h` only when h >= 0, else all heads) at position `pos`, over keys
// and values at positions [0, pos]: keys[p], values[p] -> the cache entry
// [num_kv_heads, head_dim] of position p (cpu::AttendHead per head).
void AttendOne(const float* q, const float* const* keys, const float* const* values, int64_t pos,
               const AttentionParams& params, int head, float* out);

}  // namespace dspark::engine
