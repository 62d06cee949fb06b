#include "common/engine/backend/cpu/vec_ops.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/engine/backend/cpu/matmul.h"
#include "gtest/gtest.h"

namespace dspark::engine::cpu {
namespace {

std::vector<float> Random(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

TEST(VecOpsTest, DotMatchesReferenceAndMatMulBits) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!IsaSupported(isa)) continue;
    for (int64_t n : {0, 1, 7, 16, 31, 32, 33, 64, 100, 577}) {
      const std::vector<float> a = Random(n, n), b = Random(n, n + 1000);
      double ref = 0.0, mag = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        ref += static_cast<double>(a[i]) * b[i];
        mag += std::fabs(static_cast<double>(a[i]) * b[i]);
      }
      const float got = DotF32(a.data(), b.data(), n, isa);
      EXPECT_NEAR(got, ref, 1e-5 * mag + 1e-30) << IsaName(isa) << " n " << n;
      if (n == 0) continue;
      TensorView w;
      w.type = GgmlType::kF32;
      w.shape = {1, n};
      w.data = reinterpret_cast<const uint8_t*>(a.data());
      w.nbytes = n * 4;
      float y;
      MatMul(w, b.data(), 1, &y, ActivationMode::kExact, nullptr, isa);
      EXPECT_EQ(std::memcmp(&y, &got, 4), 0) << IsaName(isa) << " n " << n;
    }
  }
}

TEST(VecOpsTest, Axpy) {
  std::vector<float> x = Random(37, 1), y = Random(37, 2), want = y;
  for (int i = 0; i < 37; ++i) want[i] += 0.5f * x[i];
  AxpyF32(0.5f, x.data(), y.data(), 37);
  for (int i = 0; i < 37; ++i) EXPECT_FLOAT_EQ(y[i], want[i]);
}

TEST(VecOpsTest, SiluMulMatchesReferenceAndIgnoresItsNeighbours) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!IsaSupported(isa)) continue;
    const int64_t n = 45;  // a masked tail on every SIMD width
    std::vector<float> g = Random(n, 5), u = Random(n, 6);
    g[0] = -120.0f;  // exp(-g) overflows: silu -> -0
    g[1] = 95.0f;    // exp(-g) underflows: silu -> g
    for (int64_t i = 2; i < n; ++i) g[i] *= 8.0f;
    std::vector<float> all = g;
    SiluMulF32(all.data(), u.data(), n, isa);
    for (int64_t i = 0; i < n; ++i) {
      const double want = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
      EXPECT_NEAR(all[i], want, 2e-6 * std::fabs(want) + 1e-30) << IsaName(isa) << " " << i;
      // The same element alone (first lane of a short vector) or at the end
      // of a shorter call: the same bits.
      float alone = g[i];
      SiluMulF32(&alone, &u[i], 1, isa);
      EXPECT_EQ(std::memcmp(&alone, &all[i], 4), 0) << IsaName(isa) << " " << i;
      std::vector<float> prefix(g.begin(), g.begin() + i + 1);
      SiluMulF32(prefix.data(), u.data(), i + 1, isa);
      EXPECT_EQ(std::memcmp(&prefix[i], &all[i], 4), 0) << IsaName(isa) << " " << i;
    }
  }
}

}  // namespace
}  // namespace dspark::engine::cpu
