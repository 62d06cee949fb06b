// Panels of 16 rows (panel16.h): packing and the AVX2 kernel.
#include "common/engine/backend/cpu/quant/panel16.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "common/base/logging.h"
#include "common/engine/backend/cpu/quant/activations.h"
#include "common/engine/backend/cpu/quant/simd.h"

namespace dspark::engine::cpu::quant {
namespace {

// A block type's stored layout and its record in a panel.
struct PanelQ4_0 {
  static constexpr int kBlockBytes = 18;  // {f16 d; u8 qs[16]}
  static constexpr int kQsOffset = 2;
  static constexpr bool kNibbles = true;
  static constexpr int kQh = -1;  // record offset of the fifth-bit image (Q5_0)
  static constexpr bool kHasMin = false;
  static constexpr int kScales = 256;  // record offset of the 16 f16 d
  static constexpr int kMins = -1;
  static constexpr int kRecordBytes = 288;
};
struct PanelQ4_1 {
  static constexpr int kBlockBytes = 20;  // {f16 d; f16 m; u8 qs[16]}
  static constexpr int kQsOffset = 4;
  static constexpr bool kNibbles = true;
  static constexpr int kQh = -1;
  static constexpr bool kHasMin = true;
  static constexpr int kScales = 256;
  static constexpr int kMins = 288;
  static constexpr int kRecordBytes = 320;
};
struct PanelQ8_0 {
  static constexpr int kBlockBytes = 34;  // {f16 d; i8 qs[32]}, stored here as qs + 128
  static constexpr int kQsOffset = 2;
  static constexpr bool kNibbles = false;
  static constexpr int kQh = -1;
  static constexpr bool kHasMin = false;
  static constexpr int kScales = 512;
  static constexpr int kMins = -1;
  static constexpr int kRecordBytes = 544;
};

// Q5_0's fifth bits go to a 64-byte image beside the nibbles: byte 4r + i
// holds, at bit k, the fifth bit of row r's element 4k + i (the element
// whose low bits are byte i of nibble image dword r, k < 4 low nibbles,
// k >= 4 high), so each image's bits are one shift and mask away.
struct PanelQ5_0 {
  static constexpr int kBlockBytes = 22;  // {f16 d; u32 qh; u8 qs[16]}
  static constexpr int kQsOffset = 6;
  static constexpr bool kNibbles = true;
  static constexpr int kQh = 256;
  static constexpr bool kHasMin = false;
  static constexpr int kScales = 320;
  static constexpr int kMins = -1;
  static constexpr int kRecordBytes = 352;
};

template <class P>
void Pack(const uint8_t* w, int64_t rows, int64_t cols, uint8_t* out) {
  static_assert(P::kRecordBytes == kPanelRows * P::kBlockBytes);
  const int64_t nb = cols / 32;
  const int64_t row_bytes = nb * P::kBlockBytes;
  for (int64_t p = 0; p < rows / kPanelRows; ++p) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* rec = out + (p * nb + b) * P::kRecordBytes;
      for (int64_t r = 0; r < kPanelRows; ++r) {
        const uint8_t* src = w + (p * kPanelRows + r) * row_bytes + b * P::kBlockBytes;
        const uint8_t* qs = src + P::kQsOffset;
        if constexpr (P::kNibbles) {
          for (int j = 0; j < 4; ++j) std::memcpy(rec + 64 * j + 4 * r, qs + 4 * j, 4);
        } else {
          for (int k = 0; k < 8; ++k) {
            for (int i = 0; i < 4; ++i) rec[64 * k + 4 * r + i] = qs[4 * k + i] ^ 0x80;
          }
        }
        if constexpr (P::kQh >= 0) {
          uint32_t qh;
          std::memcpy(&qh, src + 2, 4);
          for (int i = 0; i < 4; ++i) {
            uint8_t bits = 0;
            for (int k = 0; k < 8; ++k) bits |= ((qh >> (4 * k + i)) & 1u) << k;
            rec[P::kQh + 4 * r + i] = bits;
          }
        }
        std::memcpy(rec + P::kScales + 2 * r, src, 2);
        if constexpr (P::kHasMin) std::memcpy(rec + P::kMins + 2 * r, src + 2, 2);
      }
    }
  }
}

// One block of one 8-row half of a panel, decoded: w[k] dword r holds
// elements 4k..4k+3 of row 8 * half + r.
struct HalfBlock {
  __m256i w[8];  // unsigned (4-bit types) or signed (Q8_0) bytes
  __m256 d;
  __m256 m;
};

template <class P>
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE void DecodeHalf(const uint8_t* rec, int half,
                                                        HalfBlock* blk) {
  const uint8_t* img = rec + 32 * half;
  if constexpr (P::kNibbles) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(img + 64 * j));
      blk->w[j] = _mm256_and_si256(v, m4);
      blk->w[j + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    if constexpr (P::kQh >= 0) {
      // Bit k of each byte to bit 4 (16-bit shifts: bit 4 of either byte
      // of a lane comes from the same byte, since k <= 7).
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(img + P::kQh));
      const __m256i b4 = _mm256_set1_epi8(0x10);
      blk->w[0] = _mm256_or_si256(blk->w[0], _mm256_and_si256(_mm256_slli_epi16(qh, 4), b4));
      blk->w[1] = _mm256_or_si256(blk->w[1], _mm256_and_si256(_mm256_slli_epi16(qh, 3), b4));
      blk->w[2] = _mm256_or_si256(blk->w[2], _mm256_and_si256(_mm256_slli_epi16(qh, 2), b4));
      blk->w[3] = _mm256_or_si256(blk->w[3], _mm256_and_si256(_mm256_slli_epi16(qh, 1), b4));
      blk->w[4] = _mm256_or_si256(blk->w[4], _mm256_and_si256(qh, b4));
      blk->w[5] = _mm256_or_si256(blk->w[5], _mm256_and_si256(_mm256_srli_epi16(qh, 1), b4));
      blk->w[6] = _mm256_or_si256(blk->w[6], _mm256_and_si256(_mm256_srli_epi16(qh, 2), b4));
      blk->w[7] = _mm256_or_si256(blk->w[7], _mm256_and_si256(_mm256_srli_epi16(qh, 3), b4));
    }
  } else {
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      blk->w[k] = _mm256_xor_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(img + 64 * k)), flip);
    }
  }
  blk->d = _mm256_cvtph_ps(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + P::kScales + 16 * half)));
  if constexpr (P::kHasMin) {
    blk->m = _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + P::kMins + 16 * half)));
  }
}

// Activation dword k of block `lane` (elements 4k..4k+3) in every lane.
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE __m256i BroadcastDword(const ActGroup32& x, int lane,
                                                               int k) {
  return _mm256_set1_epi32(LoadUnaligned<int32_t>(&x.qs[k][4 * lane]));
}

// Exact int32 sums of one token's block against the 8 rows of `blk`.
template <class P>
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE __m256i BlockSums(const HalfBlock& blk,
                                                          const ActGroup32& x, int lane) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (P::kNibbles) {
    // q <= 15 and |xq| <= 127: a pair is at most 3810 in magnitude, so
    // eight of them sum to at most 30480 in int16; Q5_0's q <= 31 allows
    // four (31496).
    constexpr int kPerSum = P::kQh >= 0 ? 4 : 8;
    __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int k0 = 0; k0 < 8; k0 += kPerSum) {
      __m256i p = _mm256_maddubs_epi16(blk.w[k0], BroadcastDword(x, lane, k0));
#pragma GCC unroll 7
      for (int k = k0 + 1; k < k0 + kPerSum; ++k) {
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(blk.w[k], BroadcastDword(x, lane, k)));
      }
      s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
    }
    if constexpr (P::kHasMin) return s;
    return _mm256_add_epi32(s, _mm256_set1_epi32(x.neg_offset_sum[lane]));
  } else {
    // Signed weights: |w| * (x with w's sign), at most 128 * 127 * 2 a pair.
    __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(blk.w[k], blk.w[k]),
                                             _mm256_sign_epi8(BroadcastDword(x, lane, k), blk.w[k]));
      s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
    }
    return s;
  }
}

template <class P>
struct PanelAvx2 {
  static constexpr int kMaxTile = 4;

  // Panels [p0, p1) for tokens t0 .. t0 + NT - 1, each panel as two 8-row
  // halves.
  template <int NT>
  DSPARK_TARGET_AVX2 static void Tile(const RowsArgs& a, int64_t p0, int64_t p1, int64_t t0) {
    const int64_t nb = a.cols / 32;
    const ActGroup32* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i) {
      xs[i] = reinterpret_cast<const ActGroup32*>(a.x + (t0 + i) * a.x_stride);
    }
    for (int64_t p = p0; p < p1; ++p) {
      for (int half = 0; half < 2; ++half) {
        const uint8_t* rec = a.w + p * nb * P::kRecordBytes;
        __m256 acc[NT];
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) acc[i] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; ++b, rec += P::kRecordBytes) {
          if (half == 0) PrefetchAhead<(P::kRecordBytes + 63) / 64 * 64>(rec);
          HalfBlock blk;
          DecodeHalf<P>(rec, half, &blk);
          const int64_t g = b / 8;
          const int lane = static_cast<int>(b % 8);
#pragma GCC unroll 16
          for (int i = 0; i < NT; ++i) {
            const ActGroup32& x = xs[i][g];
            const __m256 sum = _mm256_cvtepi32_ps(BlockSums<P>(blk, x, lane));
            const __m256 xd = _mm256_set1_ps(x.d[lane]);
            if constexpr (P::kHasMin) {
              const __m256 t =
                  _mm256_fmadd_ps(blk.m, _mm256_set1_ps(x.sum[lane]), _mm256_mul_ps(blk.d, sum));
              acc[i] = _mm256_fmadd_ps(t, xd, acc[i]);
            } else {
              acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(blk.d, xd), sum, acc[i]);
            }
          }
        }
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) {
          _mm256_storeu_ps(a.y + (t0 + i) * a.ldy + p * kPanelRows + 8 * half, acc[i]);
        }
      }
    }
  }
};

using TileFn = void (*)(const RowsArgs& args, int64_t p0, int64_t p1, int64_t t0);

template <class K, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> MakeTiles(std::index_sequence<I...>) {
  return {&K::template Tile<static_cast<int>(I) + 1>...};
}

// Weight bytes of one panel chunk for batches of more than one tile: they
// stay in L1 while every tile of tokens passes over them.
constexpr int64_t kPanelChunkBytes = 16 * 1024;

template <class P>
void RunPanels(const RowsArgs& a) {
  using K = PanelAvx2<P>;
  static constexpr auto kTiles = MakeTiles<K>(std::make_index_sequence<K::kMaxTile>{});
  DSPARK_CHECK(a.row_begin % kPanelRows == 0 && a.row_end % kPanelRows == 0)
      << "panel rows " << a.row_begin << ".." << a.row_end;
  const int64_t begin = a.row_begin / kPanelRows, end = a.row_end / kPanelRows;
  const int64_t panel_bytes = kPanelRows * a.row_bytes;
  const int64_t chunk = a.n <= K::kMaxTile
                            ? end - begin
                            : std::max<int64_t>(1, kPanelChunkBytes / panel_bytes);
  for (int64_t p0 = begin; p0 < end; p0 += chunk) {
    const int64_t p1 = std::min(end, p0 + chunk);
    for (int64_t t0 = 0; t0 < a.n; t0 += K::kMaxTile) {
      kTiles[std::min<int64_t>(K::kMaxTile, a.n - t0) - 1](a, p0, p1, t0);
    }
  }
}

}  // namespace

bool HasPanelKernels(GgmlType type) { return PanelKernel(type) != nullptr; }

void PackPanels(GgmlType type, const uint8_t* w, int64_t rows, int64_t cols, uint8_t* out) {
  DSPARK_CHECK(rows % kPanelRows == 0 && cols % 32 == 0) << rows << "x" << cols;
  switch (type) {
    case GgmlType::kQ4_0:
      return Pack<PanelQ4_0>(w, rows, cols, out);
    case GgmlType::kQ4_1:
      return Pack<PanelQ4_1>(w, rows, cols, out);
    case GgmlType::kQ5_0:
      return Pack<PanelQ5_0>(w, rows, cols, out);
    case GgmlType::kQ8_0:
      return Pack<PanelQ8_0>(w, rows, cols, out);
    default:
      DSPARK_CHECK(false) << "no panel layout for type " << static_cast<uint32_t>(type);
  }
}

RowsKernel PanelKernel(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0:
      return &RunPanels<PanelQ4_0>;
    case GgmlType::kQ4_1:
      return &RunPanels<PanelQ4_1>;
    case GgmlType::kQ5_0:
      return &RunPanels<PanelQ5_0>;
    case GgmlType::kQ8_0:
      return &RunPanels<PanelQ8_0>;
    default:
      return nullptr;
  }
}

}  // namespace dspark::engine::cpu::quant
