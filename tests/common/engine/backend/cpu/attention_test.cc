// AttendHead on every ISA against a double-precision softmax attention, over
// scattered (paged-like) key and value entries, and the batch-invariance
// property the engine relies on: a query's result depends on its own keys
// only (the same bits whatever memory surrounds them).
#include "common/engine/backend/cpu/attention.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace dspark::engine::cpu {
namespace {

struct Entries {
  std::vector<float> storage;
  std::vector<const float*> keys, values;
};

// n positions of [kv_heads, head_dim] entries, stored in reverse order with
// gaps so that nothing can assume contiguous keys.
Entries MakeEntries(int64_t n, int kv_heads, int head_dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist;
  const int64_t entry = static_cast<int64_t>(kv_heads) * head_dim, stride = entry + 16;
  Entries e;
  e.storage.resize(2 * n * stride);
  for (float& v : e.storage) v = dist(rng);
  for (int64_t p = 0; p < n; ++p) {
    e.keys.push_back(&e.storage[(n - 1 - p) * stride]);
    e.values.push_back(&e.storage[(2 * n - 1 - p) * stride]);
  }
  return e;
}

std::vector<double> Reference(const AttentionArgs& a, const float* q) {
  std::vector<double> s(a.n), out(a.head_dim, 0.0);
  double mx = -INFINITY, sum = 0.0;
  for (int64_t j = 0; j < a.n; ++j) {
    double d = 0.0;
    for (int i = 0; i < a.head_dim; ++i) d += static_cast<double>(q[i]) * a.keys[j][a.offset + i];
    d *= a.scale;
    if (a.softcap > 0) d = std::tanh(d / a.softcap) * a.softcap;
    s[j] = d;
    mx = std::max(mx, d);
  }
  for (double& v : s) sum += (v = std::exp(v - mx));
  for (int64_t j = 0; j < a.n; ++j) {
    for (int i = 0; i < a.head_dim; ++i) out[i] += s[j] / sum * a.values[j][a.offset + i];
  }
  return out;
}

TEST(AttendHeadTest, MatchesDoubleReferenceOnEveryIsa) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!IsaSupported(isa)) continue;
    for (int head_dim : {64, 128, 256, 40}) {  // 40: no register path, scalar
      for (int64_t n : {1, 2, 7, 16, 17, 33, 300}) {
        for (float softcap : {0.0f, 20.0f}) {
          const Entries e = MakeEntries(n, 2, head_dim, n * 7 + head_dim);
          std::vector<float> q(head_dim);
          std::mt19937_64 rng(head_dim + n);
          std::normal_distribution<float> dist;
          for (float& v : q) v = dist(rng);
          const AttentionArgs a{.keys = e.keys.data(),
                                .values = e.values.data(),
                                .n = n,
                                .offset = head_dim,  // the second KV head
                                .head_dim = head_dim,
                                .scale = 1.0f / std::sqrt(static_cast<float>(head_dim)),
                                .softcap = softcap};
          std::vector<float> out(head_dim);
          AttendHead(a, q.data(), out.data(), isa);
          const std::vector<double> want = Reference(a, q.data());
          for (int i = 0; i < head_dim; ++i) {
            EXPECT_NEAR(out[i], want[i], 2e-5 * (1 + std::fabs(want[i])))
                << IsaName(isa) << " head_dim " << head_dim << " n " << n << " i " << i;
          }
        }
      }
    }
  }
}

TEST(AttendHeadTest, ResultDependsOnlyOnItsOwnKeys) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!IsaSupported(isa)) continue;
    const int64_t n = 37;
    Entries e = MakeEntries(n, 1, 64, 3);
    std::vector<float> q(64, 0.25f);
    const AttentionArgs a{.keys = e.keys.data(),
                          .values = e.values.data(),
                          .n = n,
                          .offset = 0,
                          .head_dim = 64,
                          .scale = 0.125f};
    std::vector<float> first(64), again(64);
    AttendHead(a, q.data(), first.data(), isa);
    // Scribble over the scores scratch with a longer call, and over the
    // padding around the entries; the result must not move by a bit.
    Entries other = MakeEntries(500, 1, 64, 4);
    std::vector<float> junk(64);
    AttendHead({.keys = other.keys.data(),
                .values = other.values.data(),
                .n = 500,
                .offset = 0,
                .head_dim = 64,
                .scale = 0.125f},
               q.data(), junk.data(), isa);
    for (int64_t p = 0; p < n; ++p) {
      const_cast<float*>(e.keys[p])[64] = 1e30f;
      const_cast<float*>(e.values[p])[64] = -1e30f;
    }
    AttendHead(a, q.data(), again.data(), isa);
    EXPECT_EQ(std::memcmp(first.data(), again.data(), 64 * 4), 0) << IsaName(isa);
  }
}

}  // namespace
}  // namespace dspark::engine::cpu
