#include "common/engine/backend/cpu/testing/random_weights.h"

#include <cstring>
#include <random>

#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::testing {
namespace {

void PutF16(uint8_t* p, float f) {
  const uint16_t h = quant::F32ToF16(f);
  std::memcpy(p, &h, 2);
}

}  // namespace

void FillRandomBlocks(GgmlType type, uint8_t* bytes, int64_t nbytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < nbytes; ++i) bytes[i] = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.002f, 0.05f), sym(-1.0f, 1.0f);
  auto signed_scale = [&] { return rng() & 1 ? scale(rng) : -scale(rng); };
  switch (type) {
    case GgmlType::kF32:
      for (int64_t i = 0; i < nbytes; i += 4) {
        const float v = sym(rng);
        std::memcpy(bytes + i, &v, 4);
      }
      break;
    case GgmlType::kF16:
      for (int64_t i = 0; i < nbytes; i += 2) PutF16(bytes + i, sym(rng));
      break;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < nbytes; i += 2) {
        const float v = sym(rng);
        uint32_t u;
        std::memcpy(&u, &v, 4);
        const uint16_t h = static_cast<uint16_t>(u >> 16);
        std::memcpy(bytes + i, &h, 2);
      }
      break;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < nbytes; b += 18) PutF16(bytes + b, signed_scale());
      break;
    case GgmlType::kQ4_1:
      for (int64_t b = 0; b < nbytes; b += 20) {
        PutF16(bytes + b, scale(rng));
        PutF16(bytes + b + 2, -8.0f * scale(rng));
      }
      break;
    case GgmlType::kQ5_0:
      for (int64_t b = 0; b < nbytes; b += 22) PutF16(bytes + b, signed_scale());
      break;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < nbytes; b += 34) PutF16(bytes + b, signed_scale() * 0.1f);
      break;
    case GgmlType::kQ4_K:
      for (int64_t b = 0; b < nbytes; b += 144) {
        PutF16(bytes + b, scale(rng) * 0.1f);
        PutF16(bytes + b + 2, scale(rng) * 0.1f);
      }
      break;
    case GgmlType::kQ6_K:
      for (int64_t b = 0; b < nbytes; b += 210) PutF16(bytes + b + 208, signed_scale() * 0.05f);
      break;
    default:
      break;
  }
}

RandomWeights MakeRandomWeights(GgmlType type, int64_t rows, int64_t cols, uint64_t seed) {
  RandomWeights w;
  const int64_t nbytes = rows * RowBytes(type, cols);
  w.bytes.resize(nbytes);
  FillRandomBlocks(type, w.bytes.data(), nbytes, seed);
  w.view.name = "random";
  w.view.type = type;
  w.view.shape = {rows, cols};
  w.view.data = w.bytes.data();
  w.view.nbytes = nbytes;
  return w;
}

}  // namespace dspark::engine::cpu::testing
