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

}  // namespace
}  // namespace dspark::engine::cpu
