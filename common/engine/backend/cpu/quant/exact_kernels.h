// Row kernels for ActivationMode::kExact (and all float weight types): each
// weight block is de-quantized to f32 (the same values DequantizeRow gives)
// and multiplied into f32 activations with FMA.
//
// Per output element the arithmetic is fixed: the row is walked in 32-element
// chunks; within a chunk, lane j of accumulator 0 takes elements j and of
// accumulator 1 elements 16 + j (AVX-512; AVX2 alternates two accumulators
// over four 8-lane quarters; scalar is one sequential sum). The result is
// the fixed-order horizontal sum of acc0 + acc1. Nothing depends on the tile.
//
// D supplies: kBlockSize (elements per Decode, a multiple of 32), kBlockBytes
// (bytes those elements take in a row) and
// DecodeF32{Scalar,Avx2,Avx512}(row, c0, cols, out) writing elements
// [c0, c0 + kBlockSize) of the row as f32, zeros past `cols`.
// Pure functions: thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/engine/backend/cpu/quant/quant_kernels.h"
#include "common/engine/backend/cpu/quant/row_driver.h"
#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::quant {

template <class D>
struct ExactScalar {
  static constexpr int kMaxTile = 16;
  template <int NT>
  static void Tile(const RowsArgs& a, int64_t r0, int64_t r1, int64_t t0) {
    alignas(64) float wbuf[D::kBlockSize];
    const float* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i)
      xs[i] = reinterpret_cast<const float*>(a.x + (t0 + i) * a.x_stride);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * a.row_bytes;
      float acc[NT] = {};
      for (int64_t c0 = 0; c0 < a.cols; c0 += D::kBlockSize) {
        D::DecodeF32Scalar(wr, c0, a.cols, wbuf);
        const int64_t count = std::min<int64_t>(D::kBlockSize, a.cols - c0);
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) {
          const float* x = xs[i] + c0;
          float s = acc[i];
          for (int64_t k = 0; k < count; ++k) s += wbuf[k] * x[k];
          acc[i] = s;
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) a.y[(t0 + i) * a.ldy + r] = acc[i];
    }
  }
};

template <class D>
struct ExactAvx2 {
  static constexpr int kMaxTile = 4;
  template <int NT>
  DSPARK_TARGET_AVX2 static void Tile(const RowsArgs& a, int64_t r0, int64_t r1, int64_t t0) {
    alignas(64) float wbuf[D::kBlockSize];
    const float* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i)
      xs[i] = reinterpret_cast<const float*>(a.x + (t0 + i) * a.x_stride);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * a.row_bytes;
      __m256 acc0[NT], acc1[NT];
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();
      for (int64_t c0 = 0; c0 < a.cols; c0 += D::kBlockSize) {
        D::DecodeF32Avx2(wr, c0, a.cols, wbuf);
        for (int k = 0; k < D::kBlockSize; k += 32) {
          const int64_t rem = a.cols - c0 - k;
          if (rem <= 0) break;
          const float* wk = wbuf + k;
          const __m256 w0 = _mm256_load_ps(wk), w1 = _mm256_load_ps(wk + 8);
          const __m256 w2 = _mm256_load_ps(wk + 16), w3 = _mm256_load_ps(wk + 24);
          if (rem >= 32) {
#pragma GCC unroll 16
            for (int i = 0; i < NT; ++i) {
              const float* x = xs[i] + c0 + k;
              acc0[i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc0[i]);
              acc1[i] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), acc1[i]);
              acc0[i] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x + 16), acc0[i]);
              acc1[i] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x + 24), acc1[i]);
            }
          } else {  // float types' ragged tail: masked loads, zeros beyond
            const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            __m256i m[4];
            for (int q = 0; q < 4; ++q) {
              m[q] = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem) - 8 * q), lane);
            }
#pragma GCC unroll 16
            for (int i = 0; i < NT; ++i) {
              const float* x = xs[i] + c0 + k;
              acc0[i] = _mm256_fmadd_ps(w0, _mm256_maskload_ps(x, m[0]), acc0[i]);
              acc1[i] = _mm256_fmadd_ps(w1, _mm256_maskload_ps(x + 8, m[1]), acc1[i]);
              acc0[i] = _mm256_fmadd_ps(w2, _mm256_maskload_ps(x + 16, m[2]), acc0[i]);
              acc1[i] = _mm256_fmadd_ps(w3, _mm256_maskload_ps(x + 24, m[3]), acc1[i]);
            }
          }
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) {
        a.y[(t0 + i) * a.ldy + r] = HSum(_mm256_add_ps(acc0[i], acc1[i]));
      }
    }
  }
};

template <class D>
struct ExactAvx512 {
  static constexpr int kMaxTile = 8;
  template <int NT>
  DSPARK_TARGET_AVX512 static void Tile(const RowsArgs& a, int64_t r0, int64_t r1, int64_t t0) {
    alignas(64) float wbuf[D::kBlockSize];
    const float* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i)
      xs[i] = reinterpret_cast<const float*>(a.x + (t0 + i) * a.x_stride);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * a.row_bytes;
      __m512 acc0[NT], acc1[NT];
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
      for (int64_t c0 = 0; c0 < a.cols; c0 += D::kBlockSize) {
        PrefetchAhead<D::kBlockBytes>(wr + c0 / D::kBlockSize * D::kBlockBytes);
        D::DecodeF32Avx512(wr, c0, a.cols, wbuf);
        for (int k = 0; k < D::kBlockSize; k += 32) {
          const int64_t rem = a.cols - c0 - k;
          if (rem <= 0) break;
          const __m512 w0 = _mm512_load_ps(wbuf + k), w1 = _mm512_load_ps(wbuf + k + 16);
          if (rem >= 32) {
#pragma GCC unroll 16
            for (int i = 0; i < NT; ++i) {
              const float* x = xs[i] + c0 + k;
              acc0[i] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), acc0[i]);
              acc1[i] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), acc1[i]);
            }
          } else {  // float types' ragged tail: masked loads, zeros beyond
            const __mmask32 m = (1u << rem) - 1;
            const __mmask16 m0 = static_cast<__mmask16>(m), m1 = static_cast<__mmask16>(m >> 16);
#pragma GCC unroll 16
            for (int i = 0; i < NT; ++i) {
              const float* x = xs[i] + c0 + k;
              acc0[i] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m0, x), acc0[i]);
              acc1[i] = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(m1, x + 16), acc1[i]);
            }
          }
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) {
        a.y[(t0 + i) * a.ldy + r] = HSum(_mm512_add_ps(acc0[i], acc1[i]));
      }
    }
  }
};

// Kernel table row for D: {scalar, avx2, avx512}.
#define DSPARK_EXACT_KERNELS(D)                                \
  {                                                            \
    &::dspark::engine::cpu::quant::RunRows<ExactScalar<D>>,    \
        &::dspark::engine::cpu::quant::RunRows<ExactAvx2<D>>,  \
        &::dspark::engine::cpu::quant::RunRows<ExactAvx512<D>> \
  }

}  // namespace dspark::engine::cpu::quant
