// Panels of 16 rows (panel16.h): packing and the AVX2 kernel.
#include "common/engine/backend/cpu/quant/panel16.h"

#include <algorithm>
#include <array>
#include <cstddef>
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

// kFifthBits[v]: byte i holds, at bits 0 and 1, bits i and 4 + i of v: a
// byte of Q5_0's qh (the fifth bits of 8 consecutive elements) spread over
// the four bytes of a row's fifth-bit dword as PanelQ5_0 lays them out.
constexpr std::array<uint32_t, 256> kFifthBits = [] {
  std::array<uint32_t, 256> t{};
  for (uint32_t v = 0; v < 256; ++v) {
    for (int i = 0; i < 4; ++i) t[v] |= (((v >> i) & 1u) | (((v >> (4 + i)) & 1u) << 1)) << (8 * i);
  }
  return t;
}();

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
            const uint32_t q = LoadUnaligned<uint32_t>(qs + 4 * k) ^ 0x80808080u;
            std::memcpy(rec + 64 * k + 4 * r, &q, 4);
          }
        }
        if constexpr (P::kQh >= 0) {
          // Byte j of qh holds the fifth bits of elements 8j..8j+7, which
          // are bits 2j and 2j + 1 of the four image bytes (kFifthBits).
          uint32_t bits = 0;
          for (int j = 0; j < 4; ++j) bits |= kFifthBits[src[2 + j]] << (2 * j);
          std::memcpy(rec + P::kQh + 4 * r, &bits, 4);
        }
        std::memcpy(rec + P::kScales + 2 * r, src, 2);
        if constexpr (P::kHasMin) std::memcpy(rec + P::kMins + 2 * r, src + 2, 2);
      }
    }
  }
}

// A token's activations for block b of a row: every field of the block is
// a 4-byte lane of its ActGroup32 record, so one byte offset,
// ActOffset(b), addresses them all in every token's records.
int64_t ActOffset(int64_t b) { return (b / 8) * int64_t{sizeof(ActGroup32)} + 4 * (b % 8); }

// Activation dword k (elements 4k..4k+3) of the block at `x` in every lane.
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE __m256i BroadcastDword(const uint8_t* x, int k) {
  return _mm256_set1_epi32(LoadUnaligned<int32_t>(x + offsetof(ActGroup32, qs) + 32 * k));
}
template <class T>
DSPARK_ALWAYS_INLINE T ActField(const uint8_t* x, size_t field_offset) {
  return LoadUnaligned<T>(x + field_offset);
}

// Makes the compiler compute `v` here, in a register. Without it GCC
// reassociates a block's integer sums into one tree over all its products,
// computes every product first and spills most of them to the stack.
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE void PinInRegister(__m256i& v) { asm("" : "+x"(v)); }

// Exact int32 sums of NT tokens' block against a panel's block record:
// s[h][i] lane r = sum over the block of row 8h + r's weights times token
// i's activations (the offset and min not yet applied). Each weight image is
// decoded once and applied to every token; token i's int sums, and so its
// outputs, are the same in any tile.
template <class P, int NT>
DSPARK_TARGET_AVX2 DSPARK_ALWAYS_INLINE void PanelBlockSums(const uint8_t* rec,
                                                            const uint8_t* const x[NT],
                                                            __m256i s[2][NT]) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (P::kNibbles) {
    // Image j holds elements k = j (low nibbles) and k = j + 4 (high). With
    // q <= 15 and |xq| <= 127 a pair is at most 3810, so the 8 pairs of a
    // block sum to at most 30480 in int16; Q5_0's q <= 31 (7874 a pair)
    // widens to int32 after each image's 2 pairs.
    constexpr bool kFifthBit = P::kQh >= 0;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m256i lo[2], hi[2];
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const __m256i v =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 64 * j + 32 * h));
        lo[h] = _mm256_and_si256(v, m4);
        hi[h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if constexpr (kFifthBit) {
          // Bit k of each byte to bit 4 (16-bit shifts: bit 4 of either byte
          // of a lane comes from the same byte, since k <= 7).
          const __m256i qh =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + P::kQh + 32 * h));
          const __m256i b4 = _mm256_set1_epi8(0x10);
          lo[h] = _mm256_or_si256(lo[h], _mm256_and_si256(_mm256_slli_epi16(qh, 4 - j), b4));
          hi[h] = _mm256_or_si256(hi[h], _mm256_and_si256(_mm256_srli_epi16(qh, j), b4));
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) {
        const __m256i bx = BroadcastDword(x[i], j);
        const __m256i by = BroadcastDword(x[i], j + 4);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          __m256i t =
              _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], bx), _mm256_maddubs_epi16(hi[h], by));
          if constexpr (kFifthBit) t = _mm256_madd_epi16(t, ones);
          if (j == 0) {
            s[h][i] = t;
          } else {
            s[h][i] = kFifthBit ? _mm256_add_epi32(s[h][i], t) : _mm256_add_epi16(s[h][i], t);
          }
          PinInRegister(s[h][i]);
        }
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i) {
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        if constexpr (!kFifthBit) s[h][i] = _mm256_madd_epi16(s[h][i], ones);
        if constexpr (!P::kHasMin) {
          s[h][i] = _mm256_add_epi32(s[h][i], _mm256_set1_epi32(ActField<int32_t>(
                                                  x[i], offsetof(ActGroup32, neg_offset_sum))));
        }
      }
    }
  } else {
    // Signed weights: |w| * (x with w's sign), at most 128 * 127 * 2 a pair.
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      __m256i w[2], aw[2];
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        w[h] = _mm256_xor_si256(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 64 * k + 32 * h)), flip);
        aw[h] = _mm256_sign_epi8(w[h], w[h]);
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) {
        const __m256i bx = BroadcastDword(x[i], k);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256i t =
              _mm256_madd_epi16(_mm256_maddubs_epi16(aw[h], _mm256_sign_epi8(bx, w[h])), ones);
          s[h][i] = k == 0 ? t : _mm256_add_epi32(s[h][i], t);
          PinInRegister(s[h][i]);
        }
      }
    }
  }
}

template <class P>
struct PanelAvx2 {
  static constexpr int kMaxTile = 4;

  // Panels [p0, p1) for tokens t0 .. t0 + NT - 1.
  template <int NT>
  DSPARK_TARGET_AVX2 static void Tile(const RowsArgs& a, int64_t p0, int64_t p1, int64_t t0) {
    const int64_t nb = a.cols / 32;
    const uint8_t* xs[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i) xs[i] = a.x + (t0 + i) * a.x_stride;
    for (int64_t p = p0; p < p1; ++p) {
      const uint8_t* rec = a.w + p * nb * P::kRecordBytes;
      // The accumulators live in L1, not registers: the int sums need them.
      alignas(32) float acc[2][NT][8] = {};
      for (int64_t b = 0; b < nb; ++b, rec += P::kRecordBytes) {
        PrefetchAhead<(P::kRecordBytes + 63) / 64 * 64>(rec);
        const int64_t off = ActOffset(b);
        const uint8_t* x[NT];
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) x[i] = xs[i] + off;
        __m256i s[2][NT];
        PanelBlockSums<P, NT>(rec, x, s);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256 d = _mm256_cvtph_ps(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + P::kScales + 16 * h)));
          __m256 m;
          if constexpr (P::kHasMin) {
            m = _mm256_cvtph_ps(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + P::kMins + 16 * h)));
          }
#pragma GCC unroll 16
          for (int i = 0; i < NT; ++i) {
            const __m256 sum = _mm256_cvtepi32_ps(s[h][i]);
            const __m256 xd = _mm256_set1_ps(ActField<float>(x[i], offsetof(ActGroup32, d)));
            const __m256 old = _mm256_load_ps(acc[h][i]);
            if constexpr (P::kHasMin) {
              const __m256 t = _mm256_fmadd_ps(
                  m, _mm256_set1_ps(ActField<float>(x[i], offsetof(ActGroup32, sum))),
                  _mm256_mul_ps(d, sum));
              _mm256_store_ps(acc[h][i], _mm256_fmadd_ps(t, xd, old));
            } else {
              _mm256_store_ps(acc[h][i], _mm256_fmadd_ps(_mm256_mul_ps(d, xd), sum, old));
            }
          }
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          std::memcpy(a.y + (t0 + i) * a.ldy + p * kPanelRows + 8 * h, acc[h][i], sizeof acc[h][i]);
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
