// De-quantization checked bit for bit against the gguf package's reference
// (testdata/dequant_fixtures.bin, written by tools/make_quant_fixtures.py),
// through DequantizeRow and through every ISA's kExact matmul decoders; the
// int8 matmul checked against a double reference on the same blocks.
// DSPARK_DEQUANT_FIXTURES=<file> runs the same checks on another fixture file
// of the same format (e.g. rows cut from real GGUF models).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "common/engine/backend/cpu/cpu_isa.h"
#include "common/engine/backend/cpu/matmul.h"
#include "gtest/gtest.h"

namespace dspark::engine::cpu {
namespace {

struct Fixture {
  GgmlType type;
  std::vector<uint8_t> raw;
  std::vector<float> values;
};

std::vector<Fixture> LoadFixtures() {
  const char* env = std::getenv("DSPARK_DEQUANT_FIXTURES");
  const std::string path =
      env != nullptr ? std::string(env)
                     : std::string(DSPARK_SOURCE_DIR) +
                           "/tests/common/engine/backend/cpu/testdata/dequant_fixtures.bin";
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  std::vector<Fixture> out;
  size_t pos = 0;
  auto u32 = [&] {
    uint32_t v;
    std::memcpy(&v, bytes.data() + pos, 4);
    pos += 4;
    return v;
  };
  while (pos + 12 <= bytes.size()) {
    Fixture f;
    f.type = static_cast<GgmlType>(u32());
    const uint32_t count = u32(), nbytes = u32();
    f.raw.assign(bytes.begin() + pos, bytes.begin() + pos + nbytes);
    pos += nbytes;
    f.values.resize(count);
    std::memcpy(f.values.data(), bytes.data() + pos, count * 4);
    pos += count * 4;
    out.push_back(std::move(f));
  }
  EXPECT_EQ(pos, bytes.size());
  return out;
}

TensorView RowView(const Fixture& f) {
  TensorView v;
  v.name = std::string(TypeInfo(f.type).name);
  v.type = f.type;
  v.shape = {1, static_cast<int64_t>(f.values.size())};
  v.data = f.raw.data();
  v.nbytes = static_cast<int64_t>(f.raw.size());
  return v;
}

bool SameValue(float a, float b) { return std::memcmp(&a, &b, 4) == 0 || (a == 0.0f && b == 0.0f); }

TEST(DequantizeTest, FixturesCoverEveryQuantType) {
  if (std::getenv("DSPARK_DEQUANT_FIXTURES") != nullptr) GTEST_SKIP() << "custom fixtures";
  std::vector<GgmlType> seen;
  for (const Fixture& f : LoadFixtures()) seen.push_back(f.type);
  for (GgmlType t : {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ8_0,
                     GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kF16, GgmlType::kBF16}) {
    EXPECT_NE(std::find(seen.begin(), seen.end(), t), seen.end()) << TypeInfo(t).name;
  }
}

TEST(DequantizeTest, RowMatchesGgufBitForBit) {
  for (const Fixture& f : LoadFixtures()) {
    const TensorView v = RowView(f);
    std::vector<float> out(f.values.size());
    DequantizeRow(v, 0, out.data());
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_TRUE(SameValue(out[i], f.values[i]))
          << v.name << " element " << i << ": " << out[i] << " vs gguf " << f.values[i];
    }
  }
}

// MatMul(kExact) with one-hot activations returns the decoded weights
// themselves (every other product is zero): checks each ISA's SIMD decoders.
TEST(DequantizeTest, ExactMatMulDecodersMatchGguf) {
  for (const Fixture& f : LoadFixtures()) {
    const TensorView v = RowView(f);
    const int64_t cols = static_cast<int64_t>(f.values.size());
    std::vector<float> eye(cols * cols, 0.0f), y(cols);
    for (int64_t i = 0; i < cols; ++i) eye[i * cols + i] = 1.0f;
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (!IsaSupported(isa)) continue;
      MatMul(v, eye.data(), cols, y.data(), ActivationMode::kExact, nullptr, isa);
      for (int64_t i = 0; i < cols; ++i) {
        ASSERT_TRUE(SameValue(y[i], f.values[i]))
            << v.name << "/" << IsaName(isa) << " element " << i << ": " << y[i] << " vs gguf "
            << f.values[i];
      }
    }
  }
}

// kInt8 on the fixture rows (two tokens, so both tile paths run) against a
// double-precision dot product of the gguf values with the quantized x.
TEST(DequantizeTest, Int8MatMulOnFixturesIsClose) {
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  for (const Fixture& f : LoadFixtures()) {
    const TensorView v = RowView(f);
    const int64_t cols = static_cast<int64_t>(f.values.size());
    const int64_t block = v.type == GgmlType::kQ4_K || v.type == GgmlType::kQ6_K ? 256 : 32;
    std::vector<float> x(2 * cols);
    for (float& e : x) e = dist(rng);
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (!IsaSupported(isa)) continue;
      float y[2];
      MatMul(v, x.data(), 2, y, ActivationMode::kInt8, nullptr, isa);
      for (int t = 0; t < 2; ++t) {
        double ref = 0.0, mag = 0.0;
        for (int64_t b = 0; b < cols; b += block) {
          float amax = 0.0f;
          for (int64_t i = b; i < b + block && i < cols; ++i)
            amax = std::max(amax, std::fabs(x[t * cols + i]));
          const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
          double bmax = 0.0;
          for (int64_t i = b; i < b + block && i < cols; ++i)
            bmax = std::max(bmax, std::fabs(1.0 * f.values[i]));
          for (int64_t i = b; i < b + block && i < cols; ++i) {
            const bool quantized =
                v.type != GgmlType::kF32 && v.type != GgmlType::kF16 && v.type != GgmlType::kBF16;
            const double xv = quantized
                                  ? std::nearbyint(x[t * cols + i] * id) * static_cast<double>(d)
                                  : x[t * cols + i];
            ref += static_cast<double>(f.values[i]) * xv;
            mag += 2.0 * bmax * std::fabs(xv);
          }
        }
        EXPECT_NEAR(y[t], ref, 4e-5 * mag + 1e-30)
            << v.name << "/" << IsaName(isa) << " token " << t;
      }
    }
  }
}

}  // namespace
}  // namespace dspark::engine::cpu
