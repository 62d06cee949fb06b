#include "common/engine/model_file/internal/safetensors.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "nlohmann/json.hpp"

namespace dspark::engine::internal {
namespace {

using nlohmann::json;

constexpr size_t kMaxDims = 8;
constexpr int kMaxJsonDepth = 8;  // a valid header needs 3
constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

struct Dtype {
  GgmlType type;
  int64_t bytes;
};

bool FindDtype(absl::string_view name, Dtype* out) {
  if (name == "F32") {
    *out = {GgmlType::kF32, 4};
  } else if (name == "F16") {
    *out = {GgmlType::kF16, 2};
  } else if (name == "BF16") {
    *out = {GgmlType::kBF16, 2};
  } else {
    return false;
  }
  return true;
}

// Reads a JSON number that must be a non-negative integer.
bool GetU64(const json& j, uint64_t* out) {
  if (!j.is_number_unsigned()) return false;
  *out = j.get<uint64_t>();
  return true;
}

absl::Status ParseTensor(absl::string_view prefix, const std::string& name, const json& entry,
                         const uint8_t* data_section, uint64_t data_bytes, TensorView& t) {
  auto invalid = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "tensor '", name, "': ", parts...));
  };
  if (!entry.is_object()) return invalid("entry is not a JSON object");
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) return invalid("missing string \"dtype\"");
  if (shape_it == entry.end() || !shape_it->is_array()) return invalid("missing array \"shape\"");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return invalid("\"data_offsets\" must be an array of two integers");
  }
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  Dtype dtype;
  if (!FindDtype(dtype_name, &dtype)) {
    return invalid("dtype ", dtype_name, " is not supported (F32, F16, BF16 only)");
  }
  if (shape_it->size() > kMaxDims) return invalid("has ", shape_it->size(), " dimensions");
  int64_t numel = 1;
  t.shape.clear();
  for (const json& d : *shape_it) {
    uint64_t dim = 0;
    if (!GetU64(d, &dim) || dim > kInt64Max) return invalid("bad dimension ", d.dump());
    if (__builtin_mul_overflow(numel, static_cast<int64_t>(dim), &numel)) {
      return invalid("element count overflows int64");
    }
    t.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t begin = 0, end = 0;
  if (!GetU64((*offsets_it)[0], &begin) || !GetU64((*offsets_it)[1], &end)) {
    return invalid("\"data_offsets\" must be non-negative integers");
  }
  if (begin > end) return invalid("data_offsets [", begin, ", ", end, ") are reversed");
  int64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, dtype.bytes, &nbytes)) return invalid("byte size overflows");
  if (end - begin != static_cast<uint64_t>(nbytes)) {
    return invalid("data_offsets [", begin, ", ", end, ") hold ", end - begin,
                   " bytes but shape and dtype need ", nbytes);
  }
  if (end > data_bytes) {
    return absl::DataLossError(absl::StrCat(prefix, "tensor '", name, "': data_offsets [", begin,
                                            ", ", end, ") run past the end of the data section (",
                                            data_bytes, " bytes)"));
  }
  t.name = name;
  t.type = dtype.type;
  t.data = data_section + begin;
  t.nbytes = nbytes;
  return absl::OkStatus();
}

absl::StatusOr<SafetensorsContents> Parse(absl::string_view path, const uint8_t* data,
                                          size_t size) {
  const std::string prefix = absl::StrCat(path, ": ");
  if (size < 8) {
    return absl::DataLossError(
        absl::StrCat(prefix, "truncated: ", size, " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);  // little-endian host (checked in gguf_parser.cc)
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "header length ", header_len,
                                                   " exceeds the limit of ",
                                                   kMaxSafetensorsHeaderBytes));
  }
  if (header_len > size - 8) {
    return absl::DataLossError(absl::StrCat(prefix, "truncated: header length ", header_len,
                                            " but only ", size - 8, " bytes follow"));
  }
  const char* header = reinterpret_cast<const char*>(data + 8);
  // nlohmann keeps the last of duplicate keys; count top-level keys to catch
  // them. Also bound the nesting, since copying or printing a value recurses.
  size_t top_level_keys = 0;
  int max_depth = 0;
  auto watch = [&](int depth, json::parse_event_t event, json&) {
    if (depth == 1 && event == json::parse_event_t::key) ++top_level_keys;
    max_depth = std::max(max_depth, depth);
    return true;
  };
  json root = json::parse(header, header + header_len, watch, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "header is not valid JSON"));
  }
  if (max_depth > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "header nests deeper than ", kMaxJsonDepth, " levels"));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "header is not a JSON object"));
  }
  if (top_level_keys != root.size()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "header has duplicate tensor names"));
  }
  SafetensorsContents out;
  out.data_offset = 8 + header_len;
  const uint8_t* data_section = data + out.data_offset;
  const uint64_t data_bytes = size - out.data_offset;
  out.tensors.reserve(root.size());
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(prefix, "__metadata__ is not an object"));
      }
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat(prefix, "__metadata__ value for '", k, "' is not a string"));
        }
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    TensorView t;
    DSPARK_RETURN_IF_ERROR(ParseTensor(prefix, name, entry, data_section, data_bytes, t));
    out.tensors.push_back(std::move(t));
  }
  return out;
}

}  // namespace

absl::StatusOr<SafetensorsContents> ParseSafetensors(absl::string_view path, const uint8_t* data,
                                                     size_t size) {
  // Every JSON access above is type-checked first; this only keeps a library
  // exception (e.g. bad_alloc) from escaping the module.
  try {
    return Parse(path, data, size);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(path, ": parsing the safetensors header: ", e.what()));
  }
}

}  // namespace dspark::engine::internal
