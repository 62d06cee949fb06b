// Parses a safetensors image already in memory: the 8-byte little-endian
// header length, the JSON header, and each tensor's dtype, shape and byte
// range, validated against the buffer. Only F32, F16 and BF16 tensors are
// accepted. Tensors keep their Hugging Face names (renaming to GGUF names is
// OpenHfDirectory's job). Pure function of its input: thread-safe.
//
//   DSPARK_ASSIGN_OR_RETURN(SafetensorsContents st, ParseSafetensors(path, data, size));
//
// Note: safetensors does not align tensor data; a TensorView's data pointer
// may be only 2-byte aligned (in practice it is 8-byte aligned when the
// writer padded the header, as the reference writer does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/engine/tensor/tensor.h"

namespace dspark::engine::internal {

struct SafetensorsContents {
  // Sorted by name; shape outermost first (safetensors' own order); data
  // points into the parsed buffer.
  std::vector<TensorView> tensors;
  std::map<std::string, std::string> metadata;  // the "__metadata__" object
  uint64_t data_offset = 0;                     // 8 + header length
};

// Headers longer than this are rejected (the reference implementation's limit).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100 << 20;

// `path` only names the input in error messages. Errors: DataLoss when the
// input ends early, InvalidArgument for malformed headers or ranges; each
// message starts with `path` and names the tensor.
absl::StatusOr<SafetensorsContents> ParseSafetensors(absl::string_view path, const uint8_t* data,
                                                     size_t size);

}  // namespace dspark::engine::internal
