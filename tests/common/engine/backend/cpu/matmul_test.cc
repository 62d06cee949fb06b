// Op-equivalence of MatMul for every weight type x ISA x activation mode
// against a double-precision reference, and bit-for-bit batch invariance.
#include "common/engine/backend/cpu/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/engine/backend/cpu/cpu_isa.h"
#include "common/engine/backend/cpu/testing/random_weights.h"
#include "common/engine/backend/cpu/thread_pool.h"
#include "gtest/gtest.h"

namespace dspark::engine::cpu {
namespace {

using testing::MakeRandomWeights;
using testing::RandomWeights;

constexpr GgmlType kAllTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16,
                                  GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                                  GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ6_K};
constexpr ActivationMode kModes[] = {ActivationMode::kExact, ActivationMode::kInt8};

bool IsFloat(GgmlType t) {
  return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16;
}
bool IsK(GgmlType t) { return t == GgmlType::kQ4_K || t == GgmlType::kQ6_K; }
// Block size the int8 activations use for weights of type t.
int64_t ActBlock(GgmlType t) { return IsK(t) ? 256 : 32; }

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (IsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

std::string Describe(GgmlType t, Isa isa, ActivationMode mode) {
  return std::string(TypeInfo(t).name) + "/" + std::string(IsaName(isa)) +
         (mode == ActivationMode::kExact ? "/exact" : "/int8");
}

std::vector<float> RandomActivations(int64_t n, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> x(n * cols);
  // Vary the magnitude per 32 elements, as real activations do.
  for (int64_t i = 0; i < n * cols; i += 32) {
    const float scale = std::exp(dist(rng));
    for (int64_t k = i; k < std::min(i + 32, n * cols); ++k) x[k] = scale * dist(rng);
  }
  return x;
}

std::vector<float> DequantizeAll(const TensorView& w) {
  const int64_t rows = w.rows(), cols = w.cols();
  std::vector<float> out(rows * cols);
  for (int64_t r = 0; r < rows; ++r) DequantizeRow(w, r, out.data() + r * cols);
  return out;
}

// The values the kInt8 kernels multiply by: per block d = max|x| / 127,
// q = round_half_even(x * (1 / d)), value q * d (activations.h).
std::vector<double> QuantizedActivations(const float* x, int64_t cols, int64_t block) {
  std::vector<double> out(cols);
  for (int64_t b = 0; b < cols; b += block) {
    float amax = 0.0f;
    for (int64_t i = b; i < b + block; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int64_t i = b; i < b + block; ++i) {
      out[i] = std::nearbyint(x[i] * id) * static_cast<double>(d);
    }
  }
  return out;
}

// `w` with its rows also packed in panels (empty `packed` when the type has
// no panel kernels or the rows are not a multiple of 16).
TensorView WithPanels(const TensorView& w, PanelWeights* packed) {
  *packed = PanelWeights::Pack(w);
  TensorView v = w;
  v.panels = packed->data();
  return v;
}

void ExpectMatchesReference(GgmlType type, Isa isa, ActivationMode mode, int64_t rows, int64_t cols,
                            int64_t n, ThreadPool* pool, bool panels = false) {
  SCOPED_TRACE(Describe(type, isa, mode) + (panels ? "/panels" : "") + " rows " +
               std::to_string(rows) + " cols " + std::to_string(cols) + " n " + std::to_string(n));
  const RandomWeights w = MakeRandomWeights(type, rows, cols, rows * 1000 + cols);
  PanelWeights packed;
  const TensorView view = panels ? WithPanels(w.view, &packed) : w.view;
  ASSERT_EQ(panels, !packed.empty());
  const std::vector<float> wf = DequantizeAll(w.view);
  const std::vector<float> x = RandomActivations(n, cols, n * 7 + cols);
  std::vector<float> y(n * rows, NAN);
  MatMul(view, x.data(), n, y.data(), mode, pool, isa);
  const bool int8 = mode == ActivationMode::kInt8 && !IsFloat(type);
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x.data() + t * cols;
    std::vector<double> xv(xt, xt + cols);
    if (int8) xv = QuantizedActivations(xt, cols, ActBlock(type));
    for (int64_t r = 0; r < rows; ++r) {
      const float* wr = wf.data() + r * cols;
      double ref = 0.0, mag = 0.0, bmax = 0.0;
      for (int64_t i = 0; i < cols; ++i) {
        ref += static_cast<double>(wr[i]) * xv[i];
        // Largest |w| of the block bounds the size of Q4_1 / Q4_K's separate
        // scale and min terms, which may cancel.
        if (i % 32 == 0) {
          bmax = 0.0;
          for (int64_t k = i; k < std::min(cols, i + 32); ++k)
            bmax = std::max(bmax, std::fabs(1.0 * wr[k]));
        }
        mag += (int8 ? 2.0 * bmax : std::fabs(1.0 * wr[i])) * std::fabs(xv[i]);
      }
      const double tol = (int8 ? 4e-5 : 2e-5) * mag + 1e-30;
      ASSERT_NEAR(y[t * rows + r], ref, tol) << "token " << t << " row " << r;
    }
  }
}

class MatMulTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatMulTest, MatchesDoubleReference) {
  const GgmlType type = GetParam();
  const int64_t block = IsFloat(type) ? 32 : TypeInfo(type).block_size;
  std::vector<int64_t> col_sizes = {block, 3 * block, 7 * block};
  if (IsFloat(type)) col_sizes.insert(col_sizes.end(), {1, 5, 33, 100});
  // 32-block types run in groups of 16 blocks: one full group, one and a tail.
  if (block == 32) col_sizes.insert(col_sizes.end(), {16 * block, 19 * block});
  ThreadPool pool(2);
  for (Isa isa : SupportedIsas()) {
    for (ActivationMode mode : kModes) {
      for (int64_t rows : {1, 3, 17, 67}) {
        for (int64_t cols : col_sizes) {
          for (int64_t n : {1, 2, 3, 5, 8, 13, 16, 17, 40}) {
            ExpectMatchesReference(type, isa, mode, rows, cols, n, n % 2 ? &pool : nullptr);
            if (HasFatalFailure()) return;
          }
        }
      }
      // Every n in 1..17 on one shape.
      for (int64_t n = 1; n <= 17; ++n) {
        ExpectMatchesReference(type, isa, mode, 17, 3 * block, n, &pool);
        if (HasFatalFailure()) return;
      }
    }
  }
}

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// A token's outputs are the same bits alone, at any position of a batch of
// any size 1..16 (and 40: several tiles), with 1 or 2 threads.
TEST_P(MatMulTest, BatchInvariant) {
  const GgmlType type = GetParam();
  const int64_t block = IsFloat(type) ? 32 : TypeInfo(type).block_size;
  const int64_t rows = 67, cols = IsFloat(type) ? 3 * block + 7
                                  : block == 32 ? 19 * block
                                                : 3 * block;
  const RandomWeights w = MakeRandomWeights(type, rows, cols, 99);
  constexpr int64_t kTokens = 16;
  const std::vector<float> x = RandomActivations(kTokens, cols, 5);
  ThreadPool one(1), two(2);
  for (Isa isa : SupportedIsas()) {
    for (ActivationMode mode : kModes) {
      SCOPED_TRACE(Describe(type, isa, mode));
      std::vector<float> alone(kTokens * rows);
      for (int64_t t = 0; t < kTokens; ++t) {
        MatMul(w.view, x.data() + t * cols, 1, alone.data() + t * rows, mode, nullptr, isa);
      }
      for (ThreadPool* pool : {&one, &two}) {
        for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 40}) {
          // Batch rows are tokens (k + m) % 16: each token lands at many positions.
          std::vector<int64_t> tok(m);
          std::vector<float> xb(m * cols), yb(m * rows);
          for (int64_t k = 0; k < m; ++k) {
            tok[k] = (k + m) % kTokens;
            std::memcpy(xb.data() + k * cols, x.data() + tok[k] * cols, cols * sizeof(float));
          }
          MatMul(w.view, xb.data(), m, yb.data(), mode, pool, isa);
          for (int64_t k = 0; k < m; ++k) {
            for (int64_t r = 0; r < rows; ++r) {
              ASSERT_TRUE(SameBits(yb[k * rows + r], alone[tok[k] * rows + r]))
                  << "threads " << pool->num_threads() << " batch " << m << " position " << k
                  << " row " << r << ": " << yb[k * rows + r] << " vs " << alone[tok[k] * rows + r];
            }
          }
        }
      }
    }
  }
}

// Large enough that rows really are split over threads: same bits for any
// thread count.
TEST_P(MatMulTest, ThreadSplitInvariant) {
  const GgmlType type = GetParam();
  const int64_t block = IsFloat(type) ? 32 : TypeInfo(type).block_size;
  const int64_t rows = 1000, cols = 7 * block;
  const RandomWeights w = MakeRandomWeights(type, rows, cols, 11);
  ThreadPool two(2), three(3);
  for (Isa isa : SupportedIsas()) {
    for (ActivationMode mode : kModes) {
      SCOPED_TRACE(Describe(type, isa, mode));
      for (int64_t n : {1, 3, 20}) {
        const std::vector<float> x = RandomActivations(n, cols, n);
        std::vector<float> y1(n * rows), y2(n * rows), y3(n * rows);
        MatMul(w.view, x.data(), n, y1.data(), mode, nullptr, isa);
        MatMul(w.view, x.data(), n, y2.data(), mode, &two, isa);
        MatMul(w.view, x.data(), n, y3.data(), mode, &three, isa);
        EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * 4), 0) << "n " << n;
        EXPECT_EQ(std::memcmp(y1.data(), y3.data(), y1.size() * 4), 0) << "n " << n;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatMulTest, ::testing::ValuesIn(kAllTypes),
                         [](const ::testing::TestParamInfo<GgmlType>& info) {
                           return std::string(TypeInfo(info.param).name);
                         });

TEST(MatMulIsaTest, ActiveIsaIsSupported) { EXPECT_TRUE(IsaSupported(ActiveIsa())); }

TEST(MatMulIsaTest, Int8ScalarAndSimdAgreeClosely) {
  // Different ISAs may round differently but compute the same integers.
  const RandomWeights w = MakeRandomWeights(GgmlType::kQ4_K, 8, 512, 3);
  const std::vector<float> x = RandomActivations(2, 512, 4);
  std::vector<float> ys(16), yv(16);
  MatMul(w.view, x.data(), 2, ys.data(), ActivationMode::kInt8, nullptr, Isa::kScalar);
  for (Isa isa : SupportedIsas()) {
    MatMul(w.view, x.data(), 2, yv.data(), ActivationMode::kInt8, nullptr, isa);
    for (int i = 0; i < 16; ++i) EXPECT_NEAR(yv[i], ys[i], 1e-4 * (1 + std::fabs(ys[i])));
  }
}

// Q/K/V-like targets sharing one input: two int8 layouts (Q5_0 and Q8_0
// offsets), a float type and a K-quant would not share columns, so the mix
// here is what a layer really has. Every output must equal its own MatMul.
TEST(MatMulSharedTest, EachOutputEqualsItsOwnMatMulBitForBit) {
  ThreadPool pool(2);
  const int64_t cols = 512;
  const RandomWeights a = MakeRandomWeights(GgmlType::kQ5_0, 200, cols, 1);
  const RandomWeights b = MakeRandomWeights(GgmlType::kQ8_0, 72, cols, 2);
  const RandomWeights c = MakeRandomWeights(GgmlType::kQ4_K, 40, cols, 3);
  const RandomWeights d = MakeRandomWeights(GgmlType::kF16, 24, cols, 4);
  const TensorView* ws[] = {&a.view, &b.view, &c.view, &d.view};
  for (Isa isa : SupportedIsas()) {
    for (ActivationMode mode : kModes) {
      for (int64_t n : {1, 3, 8, 16, 19}) {
        const std::vector<float> x = RandomActivations(n, cols, 10 + n);
        std::vector<std::vector<float>> shared(4), own(4);
        MatMulTarget targets[4];
        for (int i = 0; i < 4; ++i) {
          shared[i].assign(n * ws[i]->rows(), 0.0f);
          own[i].assign(n * ws[i]->rows(), 1.0f);
          targets[i] = {ws[i], shared[i].data()};
          MatMul(*ws[i], x.data(), n, own[i].data(), mode, nullptr, isa);
        }
        for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
          MatMulShared(targets, 4, x.data(), n, mode, p, isa);
          for (int i = 0; i < 4; ++i) {
            EXPECT_EQ(std::memcmp(shared[i].data(), own[i].data(), own[i].size() * 4), 0)
                << "target " << i << " " << IsaName(isa) << " n " << n << (p ? " pool" : " inline");
          }
        }
      }
    }
  }
}

// Rows packed in panels of 16 (AVX2 int8 only): the same contract as the
// row-major kernels, over the shapes the panels can take.
class PanelMatMulTest : public ::testing::TestWithParam<GgmlType> {
 protected:
  void SetUp() override {
    if (!IsaSupported(Isa::kAvx2)) GTEST_SKIP() << "panel kernels need AVX2";
  }
};

TEST_P(PanelMatMulTest, MatchesDoubleReference) {
  ThreadPool pool(2);
  for (int64_t rows : {16, 48, 1008}) {
    for (int64_t blocks : {1, 3, 8, 18, 19, 48}) {
      for (int64_t n : {1, 2, 3, 5, 8, 13, 16, 17, 40}) {
        if (rows == 1008 && n > 3) continue;  // thread splits; kept short
        ExpectMatchesReference(GetParam(), Isa::kAvx2, ActivationMode::kInt8, rows, 32 * blocks,
                               n, n % 2 ? &pool : nullptr, /*panels=*/true);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// A token's outputs are the same bits alone, at any position of a batch of
// 1..16 or 40 tokens, with 1, 2 or 3 threads (panels split between threads).
TEST_P(PanelMatMulTest, BatchAndThreadSplitInvariant) {
  const int64_t rows = 80, cols = 19 * 32;
  const RandomWeights w = MakeRandomWeights(GetParam(), rows, cols, 7);
  PanelWeights packed;
  const TensorView view = WithPanels(w.view, &packed);
  ASSERT_FALSE(packed.empty());
  constexpr int64_t kTokens = 16;
  const std::vector<float> x = RandomActivations(kTokens, cols, 5);
  std::vector<float> alone(kTokens * rows);
  for (int64_t t = 0; t < kTokens; ++t) {
    MatMul(view, x.data() + t * cols, 1, alone.data() + t * rows, ActivationMode::kInt8, nullptr,
           Isa::kAvx2);
  }
  ThreadPool one(1), two(2), three(3);
  for (ThreadPool* pool : {&one, &two, &three}) {
    for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 40}) {
      std::vector<int64_t> tok(m);
      std::vector<float> xb(m * cols), yb(m * rows);
      for (int64_t k = 0; k < m; ++k) {
        tok[k] = (k + m) % kTokens;
        std::memcpy(xb.data() + k * cols, x.data() + tok[k] * cols, cols * sizeof(float));
      }
      MatMul(view, xb.data(), m, yb.data(), ActivationMode::kInt8, pool, Isa::kAvx2);
      for (int64_t k = 0; k < m; ++k) {
        for (int64_t r = 0; r < rows; ++r) {
          ASSERT_TRUE(SameBits(yb[k * rows + r], alone[tok[k] * rows + r]))
              << "threads " << pool->num_threads() << " batch " << m << " position " << k
              << " row " << r;
        }
      }
    }
  }
}

// In a shared call a packed target after one whose rows are not a multiple
// of 16 still gives its own MatMul's bits.
TEST_P(PanelMatMulTest, SharedWithUnalignedNeighbourEqualsOwnMatMul) {
  const int64_t cols = 256;
  const RandomWeights odd = MakeRandomWeights(GgmlType::kQ8_0, 37, cols, 1);
  const RandomWeights w = MakeRandomWeights(GetParam(), 64, cols, 2);
  PanelWeights packed;
  const TensorView view = WithPanels(w.view, &packed);
  ThreadPool pool(2);
  for (int64_t n : {1, 4, 16}) {
    const std::vector<float> x = RandomActivations(n, cols, 3 + n);
    std::vector<float> y_odd(n * 37), y(n * 64), own(n * 64);
    const MatMulTarget targets[] = {{&odd.view, y_odd.data()}, {&view, y.data()}};
    MatMulShared(targets, 2, x.data(), n, ActivationMode::kInt8, &pool, Isa::kAvx2);
    MatMul(view, x.data(), n, own.data(), ActivationMode::kInt8, nullptr, Isa::kAvx2);
    EXPECT_EQ(std::memcmp(y.data(), own.data(), own.size() * 4), 0) << "n " << n;
  }
}

INSTANTIATE_TEST_SUITE_P(PanelTypes, PanelMatMulTest,
                         ::testing::Values(GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                                           GgmlType::kQ8_0),
                         [](const ::testing::TestParamInfo<GgmlType>& info) {
                           return std::string(TypeInfo(info.param).name);
                         });

TEST(PanelWeightsTest, OnlyForPanelTypesAndWholePanels) {
  EXPECT_TRUE(PanelWeights::Pack(MakeRandomWeights(GgmlType::kQ4_1, 32, 64, 1).view).data());
  EXPECT_TRUE(PanelWeights::Pack(MakeRandomWeights(GgmlType::kQ4_1, 33, 64, 1).view).empty());
  EXPECT_TRUE(PanelWeights::Pack(MakeRandomWeights(GgmlType::kQ4_K, 32, 256, 1).view).empty());
  EXPECT_TRUE(PanelWeights::Pack(MakeRandomWeights(GgmlType::kF16, 32, 64, 1).view).empty());
}

// Each element of the Q8_0 copy is its block's f16 scale times an integer
// within half a step of x / d, d = max|x| / 127: so |x - q d16| <= d / 2
// plus what rounding d to f16 moves the 127-step end (2^-11 relative).
TEST(QuantizeToQ8_0Test, RoundsEachBlockToItsRange) {
  for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16}) {
    SCOPED_TRACE(TypeInfo(type).name);
    RandomWeights w = MakeRandomWeights(type, 5, 96, 3);
    if (type == GgmlType::kF32) std::memset(w.bytes.data(), 0, 32 * 4);  // a zero block
    const std::vector<uint8_t> q8 = QuantizeToQ8_0(w.view);
    ASSERT_EQ(q8.size(), static_cast<size_t>(5 * RowBytes(GgmlType::kQ8_0, 96)));
    TensorView qv = w.view;
    qv.type = GgmlType::kQ8_0;
    qv.data = q8.data();
    qv.nbytes = static_cast<int64_t>(q8.size());
    std::vector<float> x(96), y(96);
    for (int64_t r = 0; r < 5; ++r) {
      DequantizeRow(w.view, r, x.data());
      DequantizeRow(qv, r, y.data());
      for (int b = 0; b < 96; b += 32) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b + i]));
        const float bound = amax / 127 / 2 + amax * 0x1p-10f;
        for (int i = 0; i < 32; ++i) {
          EXPECT_LE(std::fabs(x[b + i] - y[b + i]), bound) << "row " << r << " col " << b + i;
        }
      }
    }
    if (type == GgmlType::kF32) {
      for (int i = 0; i < 34; ++i) EXPECT_EQ(q8[i], 0) << "zero block byte " << i;
    }
  }
}

TEST(QuantizeToQ8_0Test, OnlyFloatTypesWithWholeBlocks) {
  EXPECT_TRUE(QuantizeToQ8_0(MakeRandomWeights(GgmlType::kQ4_0, 4, 64, 1).view).empty());
  EXPECT_TRUE(QuantizeToQ8_0(MakeRandomWeights(GgmlType::kQ8_0, 4, 64, 1).view).empty());
  RandomWeights odd = MakeRandomWeights(GgmlType::kF32, 4, 64, 1);
  odd.view.shape = {8, 32};  // rows of 32: quantizable
  EXPECT_FALSE(QuantizeToQ8_0(odd.view).empty());
  odd.view.shape = {16, 16};  // rows of 16: not
  EXPECT_TRUE(QuantizeToQ8_0(odd.view).empty());
}

TEST(DequantizeRowTest, PicksTheRow) {
  const RandomWeights w = MakeRandomWeights(GgmlType::kQ8_0, 5, 64, 1);
  std::vector<float> all(5 * 64), row(64);
  for (int64_t r = 0; r < 5; ++r) DequantizeRow(w.view, r, all.data() + r * 64);
  DequantizeRow(w.view, 3, row.data());
  EXPECT_EQ(std::memcmp(row.data(), all.data() + 3 * 64, 64 * 4), 0);
  EXPECT_NE(std::memcmp(row.data(), all.data() + 2 * 64, 64 * 4), 0);
}

}  // namespace
}  // namespace dspark::engine::cpu
