// Element types of model tensors, numbered as in the GGUF format, with their
// block geometry. Pure data: thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dspark::engine {

// Values are the GGUF on-disk type ids.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

struct GgmlTypeInfo {
  std::string_view name;
  int64_t block_size;   // elements per block (1 for float types)
  int64_t block_bytes;  // bytes per block
  bool supported;       // dspark can compute with it
};

// Returns nullptr for an id dspark does not know.
const GgmlTypeInfo* FindGgmlType(uint32_t id);
inline const GgmlTypeInfo& TypeInfo(GgmlType t) { return *FindGgmlType(static_cast<uint32_t>(t)); }

// Bytes of a row of `n` elements; n must be a multiple of the block size.
inline int64_t RowBytes(GgmlType t, int64_t n) {
  const GgmlTypeInfo& info = TypeInfo(t);
  return n / info.block_size * info.block_bytes;
}

}  // namespace dspark::engine
