// The loop nest shared by every row kernel: rows in chunks whose weights stay
// in L1, and within a chunk tokens in tiles of up to K::kMaxTile, each tile
// handled by K::Tile<NT> with NT a compile-time constant (so a tile's
// accumulators live in registers). A weight block is therefore fetched from
// memory once per row for all tokens of a verify block.
//
// K::Tile<NT>(args, r0, r1, t0) computes y[t0 + i][r] for i < NT, r in
// [r0, r1), and must give token t0 + i the same arithmetic for every NT.
// Pure functions: thread-safe.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "common/engine/backend/cpu/quant/quant_kernels.h"

namespace dspark::engine::cpu::quant {

// Weight bytes of one row chunk: well inside L1 next to a tile's activations.
inline constexpr int64_t kRowChunkBytes = 16 * 1024;

using TileFn = void (*)(const RowsArgs& args, int64_t r0, int64_t r1, int64_t t0);

template <class K, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> MakeTileTable(std::index_sequence<I...>) {
  return {&K::template Tile<static_cast<int>(I) + 1>...};
}

template <class K>
void RunRows(const RowsArgs& a) {
  static constexpr auto kTiles = MakeTileTable<K>(std::make_index_sequence<K::kMaxTile>{});
  const int64_t chunk =
      a.n <= K::kMaxTile
          ? a.row_end - a.row_begin
          : std::clamp<int64_t>(kRowChunkBytes / std::max<int64_t>(1, a.row_bytes), 1, 64);
  for (int64_t r0 = a.row_begin; r0 < a.row_end; r0 += chunk) {
    const int64_t r1 = std::min(a.row_end, r0 + chunk);
    for (int64_t t0 = 0; t0 < a.n; t0 += K::kMaxTile) {
      const int64_t nt = std::min<int64_t>(K::kMaxTile, a.n - t0);
      kTiles[nt - 1](a, r0, r1, t0);
    }
  }
}

}  // namespace dspark::engine::cpu::quant
