// Parses a GGUF v2/v3 (little-endian) image already in memory: header,
// metadata, tensor infos and data placement, validating every count, length,
// shape and range against the buffer so that no input reads out of bounds.
// OpenGguf maps the file and calls this; the fuzz target calls it directly.
// Pure function of its input: thread-safe.
//
//   DSPARK_ASSIGN_OR_RETURN(GgufContents gguf, ParseGguf(path, data, size));
//   // gguf.tensors[i].data points into [data, data + size).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/engine/model_file/model_file.h"
#include "common/engine/tensor/tensor.h"

namespace dspark::engine::internal {

// GGUF metadata value type ids (gguf_type in the format).
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read little-endian
inline constexpr uint64_t kGgufDefaultAlignment = 32;

struct GgufContents {
  uint32_t version = 0;
  std::map<std::string, MetaValue> metadata;
  // In file order; shape outermost first; data points into the parsed buffer.
  std::vector<TensorView> tensors;
  uint64_t alignment = kGgufDefaultAlignment;  // general.alignment or 32
  uint64_t data_offset = 0;                    // start of the tensor data section, in bytes
};

// `path` only names the input in error messages. Errors: DataLoss when the
// input ends early (or a count/length needs more bytes than remain),
// InvalidArgument for anything malformed; each message starts with `path`.
absl::StatusOr<GgufContents> ParseGguf(absl::string_view path, const uint8_t* data, size_t size);

}  // namespace dspark::engine::internal
