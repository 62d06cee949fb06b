// Softmax attention of one query head over one KV head's cached keys and
// values, on the process's ActiveIsa(). The caller hands in one pointer per
// key position (a paged KV cache's entries are not contiguous). The result
// depends only on q and the n keys and values, in a fixed order (scores in
// key order, one softmax over them, values summed in key order), never on
// other queries, so a token's attention is the same alone or in a verify
// block (batch invariance). Thread-safe (per-thread scratch).
//
//   AttendHead({.keys = k, .values = v, .n = pos + 1, .offset = kvh * hd,
//               .head_dim = hd, .scale = 0.125f}, q, out);
#pragma once

#include <cstdint>

#include "common/engine/backend/cpu/cpu_isa.h"

namespace dspark::engine::cpu {

struct AttentionArgs {
  const float* const* keys = nullptr;    // [n] -> an entry; its head at + offset
  const float* const* values = nullptr;  // [n] -> an entry; its head at + offset
  int64_t n = 0;                         // key positions (>= 1)
  int64_t offset = 0;                    // floats from an entry to this KV head
  int head_dim = 0;
  float scale = 1.0f;
  float softcap = 0.0f;  // 0 = off, else scores -> tanh(s / cap) * cap
};

// out[head_dim] = sum_j softmax_j(scale * q . k_j) v_j.
void AttendHead(const AttentionArgs& args, const float* q, float* out);
void AttendHead(const AttentionArgs& args, const float* q, float* out, Isa isa);

}  // namespace dspark::engine::cpu
