// F32, F16 and BF16 weights: rows of plain floats. They always run the exact
// (f32 activation) kernels, 32 elements at a time with a zero-padded tail, so
// any row length works. Pure functions: thread-safe.
#include <algorithm>
#include <cstring>

#include "common/engine/backend/cpu/quant/exact_kernels.h"
#include "common/engine/backend/cpu/quant/quant_kernels.h"
#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::quant {
namespace {

// Elements of the 32-element chunk at c0 that lie inside the row.
inline int ChunkCount(int64_t c0, int64_t cols) {
  return static_cast<int>(std::min<int64_t>(32, cols - c0));
}

DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE __m256i TailMaskAvx2(int count, int first) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count - first),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

struct F32 {
  static constexpr int kBlockSize = 32;
  static constexpr int kBlockBytes = 128;
  static void DecodeF32Scalar(const uint8_t* row, int64_t c0, int64_t cols, float* out) {
    const int count = ChunkCount(c0, cols);
    std::memcpy(out, row + c0 * 4, count * 4);
    std::fill(out + count, out + 32, 0.0f);
  }
  DSPARK_TARGET_AVX2 static void DecodeF32Avx2(const uint8_t* row, int64_t c0, int64_t cols,
                                               float* out) {
    const int count = ChunkCount(c0, cols);
    const float* src = reinterpret_cast<const float*>(row) + c0;
    for (int k = 0; k < 32; k += 8) {
      _mm256_store_ps(out + k, _mm256_maskload_ps(src + k, TailMaskAvx2(count, k)));
    }
  }
  DSPARK_TARGET_AVX512 static void DecodeF32Avx512(const uint8_t* row, int64_t c0, int64_t cols,
                                                   float* out) {
    const int count = ChunkCount(c0, cols);
    const float* src = reinterpret_cast<const float*>(row) + c0;
    const __mmask32 m = count >= 32 ? ~0u : (1u << count) - 1;
    _mm512_store_ps(out, _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), src));
    _mm512_store_ps(out + 16, _mm512_maskz_loadu_ps(static_cast<__mmask16>(m >> 16), src + 16));
  }
};

struct F16 {
  static constexpr int kBlockSize = 32;
  static constexpr int kBlockBytes = 64;
  static void DecodeF32Scalar(const uint8_t* row, int64_t c0, int64_t cols, float* out) {
    const int count = ChunkCount(c0, cols);
    for (int k = 0; k < count; ++k) out[k] = LoadF16(row + (c0 + k) * 2);
    std::fill(out + count, out + 32, 0.0f);
  }
  DSPARK_TARGET_AVX2 static void DecodeF32Avx2(const uint8_t* row, int64_t c0, int64_t cols,
                                               float* out) {
    const int count = ChunkCount(c0, cols);
    const uint8_t* src = row + c0 * 2;
    if (count == 32) {
      for (int k = 0; k < 32; k += 8) {
        _mm256_store_ps(
            out + k,
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * k))));
      }
    } else {
      DecodeF32Scalar(row, c0, cols, out);
    }
  }
  DSPARK_TARGET_AVX512 static void DecodeF32Avx512(const uint8_t* row, int64_t c0, int64_t cols,
                                                   float* out) {
    const int count = ChunkCount(c0, cols);
    const __mmask32 m = count >= 32 ? ~0u : (1u << count) - 1;
    const __m512i h = _mm512_maskz_loadu_epi16(m, row + c0 * 2);
    _mm512_store_ps(out, _mm512_cvtph_ps(_mm512_castsi512_si256(h)));
    _mm512_store_ps(out + 16, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)));
  }
};

struct BF16 {
  static constexpr int kBlockSize = 32;
  static constexpr int kBlockBytes = 64;
  static void DecodeF32Scalar(const uint8_t* row, int64_t c0, int64_t cols, float* out) {
    const int count = ChunkCount(c0, cols);
    for (int k = 0; k < count; ++k) out[k] = BF16ToF32(LoadUnaligned<uint16_t>(row + (c0 + k) * 2));
    std::fill(out + count, out + 32, 0.0f);
  }
  DSPARK_TARGET_AVX2 static void DecodeF32Avx2(const uint8_t* row, int64_t c0, int64_t cols,
                                               float* out) {
    const int count = ChunkCount(c0, cols);
    const uint8_t* src = row + c0 * 2;
    if (count == 32) {
      for (int k = 0; k < 32; k += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * k));
        _mm256_store_ps(out + k,
                        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
      }
    } else {
      DecodeF32Scalar(row, c0, cols, out);
    }
  }
  DSPARK_TARGET_AVX512 static void DecodeF32Avx512(const uint8_t* row, int64_t c0, int64_t cols,
                                                   float* out) {
    const int count = ChunkCount(c0, cols);
    const __mmask32 m = count >= 32 ? ~0u : (1u << count) - 1;
    const __m512i h = _mm512_maskz_loadu_epi16(m, row + c0 * 2);
    _mm512_store_ps(out, _mm512_castsi512_ps(_mm512_slli_epi32(
                             _mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16)));
    _mm512_store_ps(out + 16, _mm512_castsi512_ps(_mm512_slli_epi32(
                                  _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16)));
  }
};

void DequantizeF32(const uint8_t* src, float* dst, int64_t n) { std::memcpy(dst, src, n * 4); }
void DequantizeF16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = LoadF16(src + 2 * i);
}
void DequantizeBF16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(LoadUnaligned<uint16_t>(src + 2 * i));
}

}  // namespace

const TypeKernels kF32Kernels = {
    GgmlType::kF32, 1, &DequantizeF32, DSPARK_EXACT_KERNELS(F32), {}, ActFormat::kF32, 0,
};
const TypeKernels kF16Kernels = {
    GgmlType::kF16, 1, &DequantizeF16, DSPARK_EXACT_KERNELS(F16), {}, ActFormat::kF32, 0,
};
const TypeKernels kBF16Kernels = {
    GgmlType::kBF16, 1, &DequantizeBF16, DSPARK_EXACT_KERNELS(BF16), {}, ActFormat::kF32, 0,
};

}  // namespace dspark::engine::cpu::quant
