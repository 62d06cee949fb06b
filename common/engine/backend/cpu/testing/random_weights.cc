#include "common/engine/backend/cpu/testing/random_weights.h"

#include <cstring>
#include <random>

namespace dspark::engine::cpu::testing {
namespace {

void PutF16(uint8_t* p, float f) {
  const uint16_t h = F32ToF16(f);
  std::memcpy(p, &h, 2);
}

}  // namespace

uint16_t F32ToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = x & 0x7FFFFF;
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00);
  if (exp <= 0) {  // subnormal half (or zero)
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    const int shift = 14 - exp;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // may carry into exp: still right
  return static_cast<uint16_t>(sign | h);
}

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
