// Weight rows regrouped in panels of 16 for the AVX2 int8 kernels (32-element
// block types Q4_0, Q4_1, Q5_0, Q8_0).
//
// In a panel, block b of its 16 rows is one record: for each k in 0..7 a
// 64-byte register image whose dword r holds elements 4k..4k+3 of row r
// (nibble-packed for the 4-bit types: the low nibbles are k = 0..3, the
// high ones k = 4..7, exactly as a Q4 block stores them; Q5_0's fifth bits
// in one more image), then the 16 rows' f16 scales (and mins). A record is as large as the 16
// blocks it replaces, so a panel is 16 * row_bytes and the weights take no extra memory traffic.
//
// The AVX2 kernel takes a panel as two halves of 8 rows (the low and high
// 32 bytes of each image): one vpmaddubsw advances 8 rows by 4 elements
// against a broadcast activation dword, the int32 lanes are the rows' block
// sums and the float accumulator's lanes are the rows' outputs: no
// transposes, no horizontal sums, no lanes wasted on a row's short last
// group of blocks, which the row-major kernels (block32_int8.h) pay for.
// Each image is decoded once for a tile of up to 4 tokens, and each
// broadcast dword serves both halves.
// (An AVX-512 VNNI kernel would take a whole panel per vpdpbusd.)
//
// Per output element (fixed for every tile size and thread split; int sums
// are exact): for each block b in order,
//   I = sum_e (q - offset) * xq,
//   acc += (d_w * d_x) * float(I), or with a min:
//   acc += (d_w * float(I) + m * float(xsum)) * d_x.
// Pure functions: thread-safe.
#pragma once

#include <cstdint>

#include "common/engine/backend/cpu/quant/quant_kernels.h"

namespace dspark::engine::cpu::quant {

inline constexpr int64_t kPanelRows = 16;

// True when weights of `type` have panel kernels.
bool HasPanelKernels(GgmlType type);

// Writes rows [0, rows) of `w` (row-major, RowBytes(type, cols) each; rows a
// multiple of kPanelRows) into `out` (the same number of bytes) as panels.
void PackPanels(GgmlType type, const uint8_t* w, int64_t rows, int64_t cols, uint8_t* out);

// The AVX2 kInt8 kernel over packed panels: RowsArgs as for the
// row-major kernels, with w the packed panels and row_bytes the row-major
// row size; row_begin and row_end must be multiples of kPanelRows. The
// activations are the same ActGroup32 records (int8_format / int8_offset of
// the type's TypeKernels).
RowsKernel PanelKernel(GgmlType type);

}  // namespace dspark::engine::cpu::quant
