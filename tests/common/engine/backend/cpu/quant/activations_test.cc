#include "common/engine/backend/cpu/quant/activations.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace dspark::engine::cpu::quant {
namespace {

std::vector<float> Random(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

struct Buffer {
  explicit Buffer(int64_t bytes)
      : data(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64))) {}
  ~Buffer() { std::free(data); }
  uint8_t* data;
};

TEST(ActivationsTest, Q8x32RecordsAndShortTail) {
  const int64_t cols = 19 * 32;  // two full groups of 8 blocks, then 3 of 8
  const std::vector<float> x = Random(cols, 1);
  ASSERT_EQ(ActBytesPerToken(ActFormat::kQ8x32, cols), 3 * 320);
  for (int offset : {0, 8}) {
    Buffer buf(ActBytesPerToken(ActFormat::kQ8x32, cols));
    QuantizeActivations(ActFormat::kQ8x32, offset, x.data(), cols, buf.data, Isa::kScalar);
    const ActGroup32* g = reinterpret_cast<const ActGroup32*>(buf.data);
    for (int64_t b = 0; b < 19; ++b) {
      const ActGroup32& r = g[b / 8];
      const int lane = static_cast<int>(b % 8);
      float amax = 0.0f;
      for (int e = 0; e < 32; ++e) amax = std::max(amax, std::fabs(x[32 * b + e]));
      EXPECT_EQ(r.d[lane], amax / 127.0f);
      int sum = 0;
      for (int e = 0; e < 32; ++e) {
        const int8_t q = GroupElement(r, lane, e);
        EXPECT_EQ(q, r.qs[e / 4][4 * lane + e % 4]);
        EXPECT_NEAR(q * r.d[lane], x[32 * b + e], r.d[lane] * 0.5001f);
        sum += q;
      }
      if (offset) {
        EXPECT_EQ(r.neg_offset_sum[lane], -offset * sum);
      } else {
        EXPECT_EQ(r.sum[lane], static_cast<float>(sum));
      }
    }
    for (int lane = 3; lane < 8; ++lane) {  // padding blocks are all zero
      EXPECT_EQ(g[2].d[lane], 0.0f);
      EXPECT_EQ(g[2].neg_offset_sum[lane], 0);
      for (int e = 0; e < 32; ++e) EXPECT_EQ(GroupElement(g[2], lane, e), 0);
    }
  }
}

TEST(ActivationsTest, Q8x256BlockSums) {
  const int64_t cols = 512;
  const std::vector<float> x = Random(cols, 2);
  Buffer buf(ActBytesPerToken(ActFormat::kQ8x256, cols));
  QuantizeActivations(ActFormat::kQ8x256, 0, x.data(), cols, buf.data, Isa::kScalar);
  const ActBlock256* a = reinterpret_cast<const ActBlock256*>(buf.data);
  for (int b = 0; b < 2; ++b) {
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int k = 0; k < 16; ++k) sum += a[b].qs[16 * g + k];
      EXPECT_EQ(a[b].bsums[g], sum);
    }
    for (int k = 0; k < 256; ++k) {
      EXPECT_NEAR(a[b].qs[k] * a[b].d, x[256 * b + k], a[b].d * 0.5001f);
    }
  }
}

TEST(ActivationsTest, EveryIsaWritesTheSameBytes) {
  const int64_t cols = 768;
  std::vector<float> x = Random(cols, 3);
  x[5] = 0.0f;
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f);  // an all-zero block
  // A block with scale exactly 1 and ties, which round half to even.
  for (int i = 96; i < 128; ++i) x[i] = 0.01f * static_cast<float>(i);
  x[96] = 127.0f;
  for (int i = 0; i < 8; ++i) x[97 + i] = static_cast<float>(i) - 3.5f;
  for (ActFormat f : {ActFormat::kQ8x32, ActFormat::kQ8x256}) {
    const int64_t bytes = ActBytesPerToken(f, cols);
    Buffer ref(bytes);
    QuantizeActivations(f, 8, x.data(), cols, ref.data, Isa::kScalar);
    for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
      if (!IsaSupported(isa)) continue;
      Buffer got(bytes);
      QuantizeActivations(f, 8, x.data(), cols, got.data, isa);
      EXPECT_EQ(std::memcmp(ref.data, got.data, bytes), 0) << IsaName(isa);
    }
  }
}

}  // namespace
}  // namespace dspark::engine::cpu::quant
