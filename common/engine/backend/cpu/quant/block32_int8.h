// kInt8 row kernels shared by the 32-element block types (Q4_0, Q4_1, Q5_0,
// Q8_0) against ActGroup32 activations. The SIMD paths walk a row in groups
// of 8 blocks and transpose each group's weights so that 32-bit lane b holds
// block b (as the activations are stored); every per-token operation then
// advances 8 blocks at once, and decoding a group costs about as much as one
// token's arithmetic on it, so a verify block of n tokens costs far less than
// n single-token passes. Groups of 8 waste at most 7 lanes on a row's last
// group (rows of 576 = 18 blocks). AVX-512 gathers a group's bytes straight
// from memory with byte permutes (vpermt2b) into registers that pair rows k
// and k + 1, so one vpdpbusd zmm covers two rows.
//
// Each type supplies a decoder D:
//   kBlockBytes; kHasMin (weights d*q + m rather than d*(q - offset));
//   kOffset (TypeKernels::int8_offset); kSignedAvx2 (Q8_0: see below);
//   DecodeQScalar(blk, int32_t q[32], float* d, float* m)  q = stored q - offset
//   DecodeGroupAvx2(blk[8], Avx2Group*)            r[k] lane b = row k of block b
//   DecodeGroupAvx512(base, nbytes, Avx512Group*)  w[p] = rows 2p, 2p + 1
// The decoders are DSPARK_ALWAYS_INLINE: GCC left the larger ones out of
// line, and a call hands the group back through memory on every group.
// Row k of a block is its elements 4k..4k+3 as unsigned bytes q (the
// activation record's offset term removes kOffset). blk[] point at the 8
// blocks (a row's short last group repeats its last block; the activations
// there are zero); [base, base + nbytes) is the group's memory (nbytes is
// 8 * kBlockBytes but for a short last group). AVX2 has no u8 x s8 dot
// without int16 saturation at |w| = 128 with offset 128, so for kSignedAvx2
// r[k] is |w| and s[k] is w (x takes w's sign).
//
// Per output element (fixed for every tile size; int sums are exact):
//   SIMD, per group of 8: I[b] = sum_e (q - offset) * xq (exact int32 lanes),
//     acc += (d_w * d_x) * float(I)          (lane b = block b)
//     kHasMin: acc += (d_w * float(I) + m * float(xsum)) * d_x
//   Scalar, per block: acc += (d_w * d_x) * isum (+ (m * d_x) * xsum).
//   Result: HSum(acc) (scalar: acc).
// Pure functions: thread-safe.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "common/engine/backend/cpu/quant/activations.h"
#include "common/engine/backend/cpu/quant/quant_kernels.h"
#include "common/engine/backend/cpu/quant/row_driver.h"
#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::quant {

struct Avx2Group {
  __m256i r[8];  // unsigned bytes (|w| for signed weights)
  __m256i s[8];  // signed weights only: w
  __m256 d;      // lane b: d of block b
  __m256 m;      // lane b: min of block b (kHasMin)
};

struct Avx512Group {
  __m512i w[4];  // [row 2p | row 2p + 1] of the group, unsigned bytes
  __m256 d;
  __m256 m;
};

// Pointers to the kLanes (or `count`) blocks of a group starting at block
// `first` of a row, the missing ones repeating the last real block.
template <int kBlockBytes, int kLanes>
DSPARK_ALWAYS_INLINE void GroupBlocks(const uint8_t* row, int64_t first, int count,
                                      const uint8_t** blk) {
  for (int b = 0; b < kLanes; ++b) blk[b] = row + (first + std::min(b, count - 1)) * kBlockBytes;
}

template <class D>
struct Int8x32Scalar {
  static constexpr int kMaxTile = 16;
  template <int NT>
  static void Tile(const RowsArgs& a, int64_t r0, int64_t r1, int64_t t0) {
    const int64_t nb = a.cols / 32;
    const ActGroup32* xs[NT];
    for (int i = 0; i < NT; ++i) {
      xs[i] = reinterpret_cast<const ActGroup32*>(a.x + (t0 + i) * a.x_stride);
    }
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * a.row_bytes;
      float acc[NT] = {};
      for (int64_t b = 0; b < nb; ++b) {
        int32_t q[32];
        float d, m = 0.0f;
        D::DecodeQScalar(wr + b * D::kBlockBytes, q, &d, &m);
        const int lane = static_cast<int>(b % 8);
        for (int i = 0; i < NT; ++i) {
          const ActGroup32& x = xs[i][b / 8];
          const float xd = x.d[lane];
          int32_t isum = 0, xsum = 0;
          for (int e = 0; e < 32; ++e) {
            const int32_t xq = GroupElement(x, lane, e);
            isum += q[e] * xq;
            xsum += xq;
          }
          float s = acc[i] + (d * xd) * static_cast<float>(isum);
          if constexpr (D::kHasMin) s = s + (m * xd) * static_cast<float>(xsum);
          acc[i] = s;
        }
      }
      for (int i = 0; i < NT; ++i) a.y[(t0 + i) * a.ldy + r] = acc[i];
    }
  }
};

template <class D>
struct Int8x32Avx2 {
  static constexpr int kMaxTile = 4;
  template <int NT>
  DSPARK_TARGET_AVX2 static void Tile(const RowsArgs& a, int64_t r0, int64_t r1, int64_t t0) {
    const int64_t nb = a.cols / 32;
    const ActGroup32* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i) {
      xs[i] = reinterpret_cast<const ActGroup32*>(a.x + (t0 + i) * a.x_stride);
    }
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * a.row_bytes;
      __m256 acc[NT];
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) acc[i] = _mm256_setzero_ps();
      for (int64_t b0 = 0; b0 < nb; b0 += 8) {
        const uint8_t* blk[8];
        GroupBlocks<D::kBlockBytes, 8>(wr, b0, static_cast<int>(std::min<int64_t>(8, nb - b0)),
                                       blk);
        Avx2Group w;
        D::DecodeGroupAvx2(blk, &w);
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) {
          const ActGroup32& x = xs[i][b0 / 8];
          __m256i isum;
          if constexpr (D::kHasMin || D::kSignedAvx2) {
            isum = _mm256_setzero_si256();
          } else {
            isum = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.neg_offset_sum));
          }
#pragma GCC unroll 8
          for (int k = 0; k < 8; ++k) {
            const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.qs[k]));
            __m256i p;
            if constexpr (D::kSignedAvx2) {
              p = _mm256_maddubs_epi16(w.r[k], _mm256_sign_epi8(xq, w.s[k]));
            } else {
              p = _mm256_maddubs_epi16(w.r[k], xq);
            }
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, ones));
          }
          const __m256 xd = _mm256_load_ps(x.d);
          if constexpr (D::kHasMin) {
            const __m256 t = _mm256_fmadd_ps(w.m, _mm256_load_ps(x.sum),
                                             _mm256_mul_ps(w.d, _mm256_cvtepi32_ps(isum)));
            acc[i] = _mm256_fmadd_ps(t, xd, acc[i]);
          } else {
            acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(w.d, xd), _mm256_cvtepi32_ps(isum), acc[i]);
          }
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) a.y[(t0 + i) * a.ldy + r] = HSum(acc[i]);
    }
  }
};

template <class D>
struct Int8x32Avx512 {
  static constexpr int kMaxTile = 16;

  template <int NT>
  DSPARK_TARGET_AVX512 DSPARK_ALWAYS_INLINE static void Accumulate(const Avx512Group& w,
                                                                   const ActGroup32* const* xs,
                                                                   int64_t g, __m256* acc) {
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i) {
      const ActGroup32& x = xs[i][g];
      // Two dependency chains (integers: the split is exact); lanes 0..7 sum
      // rows 0, 2, 4, 6 and lanes 8..15 rows 1, 3, 5, 7 of each block.
      __m512i s0 = D::kHasMin ? _mm512_setzero_si512()
                              : _mm512_zextsi256_si512(_mm256_load_si256(
                                    reinterpret_cast<const __m256i*>(x.neg_offset_sum)));
      __m512i s1 = _mm512_setzero_si512();
      s0 = _mm512_dpbusd_epi32(s0, w.w[0], _mm512_load_si512(x.qs[0]));
      s1 = _mm512_dpbusd_epi32(s1, w.w[1], _mm512_load_si512(x.qs[2]));
      s0 = _mm512_dpbusd_epi32(s0, w.w[2], _mm512_load_si512(x.qs[4]));
      s1 = _mm512_dpbusd_epi32(s1, w.w[3], _mm512_load_si512(x.qs[6]));
      const __m512i s = _mm512_add_epi32(s0, s1);
      const __m256 sum = _mm256_cvtepi32_ps(
          _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1)));
      const __m256 xd = _mm256_load_ps(x.d);
      if constexpr (D::kHasMin) {
        const __m256 t = _mm256_fmadd_ps(w.m, _mm256_load_ps(x.sum), _mm256_mul_ps(w.d, sum));
        acc[i] = _mm256_fmadd_ps(t, xd, acc[i]);
      } else {
        acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(w.d, xd), sum, acc[i]);
      }
    }
  }

  template <int NT>
  DSPARK_TARGET_AVX512 static void Tile(const RowsArgs& a, int64_t r0, int64_t r1, int64_t t0) {
    constexpr int64_t kGroupBytes = 8 * D::kBlockBytes;
    const int64_t nb = a.cols / 32;
    const int64_t full = nb / 8;
    const ActGroup32* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i) {
      xs[i] = reinterpret_cast<const ActGroup32*>(a.x + (t0 + i) * a.x_stride);
    }
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * a.row_bytes;
      __m256 acc[NT];
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) acc[i] = _mm256_setzero_ps();
      for (int64_t g = 0; g < full; ++g) {
        PrefetchAhead<kGroupBytes>(wr + g * kGroupBytes);
        Avx512Group w;
        D::DecodeGroupAvx512(wr + g * kGroupBytes, kGroupBytes, &w);
        Accumulate<NT>(w, xs, g, acc);
      }
      if (nb % 8 != 0) {  // zero activations stand in for the missing blocks
        Avx512Group w;
        D::DecodeGroupAvx512(wr + full * kGroupBytes, (nb % 8) * D::kBlockBytes, &w);
        Accumulate<NT>(w, xs, full, acc);
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) a.y[(t0 + i) * a.ldy + r] = HSum(acc[i]);
    }
  }
};

// Kernel table row for D: {scalar, avx2, avx512}.
#define DSPARK_INT8X32_KERNELS(D)                                \
  {                                                              \
    &::dspark::engine::cpu::quant::RunRows<Int8x32Scalar<D>>,    \
        &::dspark::engine::cpu::quant::RunRows<Int8x32Avx2<D>>,  \
        &::dspark::engine::cpu::quant::RunRows<Int8x32Avx512<D>> \
  }

// ---- Helpers for decoders ----

// T[w] lane b = dword w of the 16 bytes at blk[b] + off, for 8 blocks (a 4x4
// dword transpose inside each 128-bit lane of four loads: lane c of z[j] is
// block 4c + j).
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE void LoadTransposed8(const uint8_t* const* blk, int off,
                                                             __m256i* t) {
  __m256i z[4];
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    z[j] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(blk[4 + j] + off),
                               reinterpret_cast<const __m128i*>(blk[j] + off));
  }
  const __m256i a = _mm256_unpacklo_epi32(z[0], z[1]), b = _mm256_unpackhi_epi32(z[0], z[1]);
  const __m256i c = _mm256_unpacklo_epi32(z[2], z[3]), d = _mm256_unpackhi_epi32(z[2], z[3]);
  t[0] = _mm256_unpacklo_epi64(a, c);
  t[1] = _mm256_unpackhi_epi64(a, c);
  t[2] = _mm256_unpacklo_epi64(b, d);
  t[3] = _mm256_unpackhi_epi64(b, d);
}

// Transposed nibble bytes -> group registers: dword w of a 16-byte Q4 payload
// holds elements 4w..4w+3 (low nibbles) and 16+4w.. (high nibbles).
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE void SplitNibbles8(const __m256i* t, __m256i* r) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
  for (int w = 0; w < 4; ++w) {
    r[w] = _mm256_and_si256(t[w], m4);
    r[w + 4] = _mm256_and_si256(_mm256_srli_epi16(t[w], 4), m4);
  }
}

// A plan to collect bytes of an 8-block group into kOuts registers with
// vpermt2b over the group's memory, read in 128-byte windows.
template <int kOuts>
struct BytePlan {
  int windows = 0;
  std::array<std::array<std::array<uint8_t, 64>, 3>, kOuts> idx{};  // [out][window]
  std::array<std::array<uint64_t, 3>, kOuts> lanes{};               // output bytes a window fills
};

// src(o, l) = byte offset within the group for byte l of output o, or -1.
template <int kOuts, class F>
constexpr BytePlan<kOuts> MakeBytePlan(int block_bytes, F src) {
  BytePlan<kOuts> p;
  p.windows = (8 * block_bytes + 127) / 128;
  for (int o = 0; o < kOuts; ++o) {
    for (int l = 0; l < 64; ++l) {
      const int s = src(o, l);
      if (s < 0) continue;
      p.idx[o][s / 128][l] = static_cast<uint8_t>(s % 128);
      p.lanes[o][s / 128] |= uint64_t{1} << l;
    }
  }
  return p;
}

// Source byte for the transposed payload: byte l of an output covering
// payload dwords w0 (low 256 bits) and w0 + 1 (high), for 8 blocks of
// `block_bytes` with the payload at `offset`.
constexpr int PayloadByte(int block_bytes, int offset, int w0, int l) {
  const int w = w0 + l / 32, b = (l % 32) / 4, j = l % 4;
  return block_bytes * b + offset + 4 * w + j;
}

// Runs a plan over the group's bytes [base, base + nbytes).
template <int kOuts>
DSPARK_TARGET_AVX512 DSPARK_ALWAYS_INLINE void GatherBytes(const uint8_t* base, int64_t nbytes,
                                                           const BytePlan<kOuts>& plan,
                                                           __m512i* out) {
  __m512i chunk[6];
#pragma GCC unroll 6
  for (int c = 0; c < 2 * plan.windows; ++c) {
    const int64_t n = std::clamp<int64_t>(nbytes - 64 * c, 0, 64);
    const __mmask64 m = n == 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
    chunk[c] = _mm512_maskz_loadu_epi8(m, base + 64 * c);
  }
#pragma GCC unroll 8
  for (int o = 0; o < kOuts; ++o) {
    bool first = true;
#pragma GCC unroll 3
    for (int w = 0; w < plan.windows; ++w) {
      if (plan.lanes[o][w] == 0) continue;
      const __m512i v = _mm512_permutex2var_epi8(
          chunk[2 * w], _mm512_loadu_si512(plan.idx[o][w].data()), chunk[2 * w + 1]);
      out[o] = first ? v : _mm512_mask_mov_epi8(out[o], plan.lanes[o][w], v);
      first = false;
    }
  }
}

// AVX2: one f16 at blk[b] + off per lane, as floats.
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE __m256 LoadF16Lanes8(const uint8_t* const* blk, int off) {
  return _mm256_cvtph_ps(
      _mm_setr_epi16(LoadUnaligned<int16_t>(blk[0] + off), LoadUnaligned<int16_t>(blk[1] + off),
                     LoadUnaligned<int16_t>(blk[2] + off), LoadUnaligned<int16_t>(blk[3] + off),
                     LoadUnaligned<int16_t>(blk[4] + off), LoadUnaligned<int16_t>(blk[5] + off),
                     LoadUnaligned<int16_t>(blk[6] + off), LoadUnaligned<int16_t>(blk[7] + off)));
}

DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE __m256 BroadcastF16Avx2(const uint8_t* p) {
  return _mm256_set1_ps(_cvtsh_ss(LoadUnaligned<uint16_t>(p)));
}

}  // namespace dspark::engine::cpu::quant
