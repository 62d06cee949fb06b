#include "common/engine/model_file/internal/gguf_parser.h"

#include <bit>
#include <cstring>
#include <limits>
#include <set>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace dspark::engine::internal {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader copies little-endian fields straight into host integers");

constexpr uint32_t kMaxDims = 4;
// Smallest possible encodings, used to reject counts the input cannot hold
// before anything is allocated for them.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;  // key length, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes =
    8 + 4 + 8 + 4 + 8;  // name len, n_dims, 1 dim, type, offset
constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// GgmlTypeInfo names are std::string_view; Debian's Abseil has its own.
absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status Invalid(absl::string_view msg) { return absl::InvalidArgumentError(msg); }
absl::Status Loss(absl::string_view msg) { return absl::DataLossError(msg); }

// Keeps the code of `s` and puts `prefix` in front of its message.
absl::Status Prefixed(const absl::Status& s, absl::string_view prefix) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

// Bounds-checked little-endian reads. Errors carry no path: ParseGguf adds it.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  template <typename T>
  absl::Status Read(T* out, absl::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return Truncated(what);
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, absl::string_view what) {
    uint64_t len = 0;
    DSPARK_RETURN_IF_ERROR(Read(&len, what));
    if (len > remaining()) {
      return Loss(absl::StrCat(what, ": string length ", len, " at byte ", pos_ - 8,
                               " runs past the end of the file (", remaining(), " bytes left)"));
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return absl::OkStatus();
  }

  absl::Status Truncated(absl::string_view what) const {
    return Loss(absl::StrCat("truncated at byte ", pos_, " of ", size_, " while reading ", what));
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Encoded size of one scalar of `type`; 0 for string, array and unknown ids.
uint64_t ScalarBytes(uint32_t type) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

// What MetaValue kind a scalar of `type` becomes.
MetaValue::Kind KindOf(uint32_t type) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64:
      return MetaValue::Kind::kFloat;
    case GgufValueType::kBool:
      return MetaValue::Kind::kBool;
    case GgufValueType::kString:
      return MetaValue::Kind::kString;
    default:
      return MetaValue::Kind::kInt;
  }
}

template <typename T>
absl::Status ReadInt(Cursor& c, MetaValue& out) {
  T v{};
  DSPARK_RETURN_IF_ERROR(c.Read(&v, "integer value"));
  out.kind = MetaValue::Kind::kInt;
  out.i = static_cast<int64_t>(v);
  return absl::OkStatus();
}

// Reads one value of a non-array `type` into out.kind and out.i/f/b/s.
absl::Status ReadScalar(Cursor& c, uint32_t type, MetaValue& out) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::kUint8:
      return ReadInt<uint8_t>(c, out);
    case GgufValueType::kInt8:
      return ReadInt<int8_t>(c, out);
    case GgufValueType::kUint16:
      return ReadInt<uint16_t>(c, out);
    case GgufValueType::kInt16:
      return ReadInt<int16_t>(c, out);
    case GgufValueType::kUint32:
      return ReadInt<uint32_t>(c, out);
    case GgufValueType::kInt32:
      return ReadInt<int32_t>(c, out);
    case GgufValueType::kInt64:
      return ReadInt<int64_t>(c, out);
    case GgufValueType::kUint64: {
      uint64_t v = 0;
      DSPARK_RETURN_IF_ERROR(c.Read(&v, "uint64 value"));
      if (v > kInt64Max) return Invalid(absl::StrCat("uint64 value ", v, " does not fit in int64"));
      out.kind = MetaValue::Kind::kInt;
      out.i = static_cast<int64_t>(v);
      return absl::OkStatus();
    }
    case GgufValueType::kFloat32: {
      float v = 0;
      DSPARK_RETURN_IF_ERROR(c.Read(&v, "float32 value"));
      out.kind = MetaValue::Kind::kFloat;
      out.f = v;
      return absl::OkStatus();
    }
    case GgufValueType::kFloat64: {
      double v = 0;
      DSPARK_RETURN_IF_ERROR(c.Read(&v, "float64 value"));
      out.kind = MetaValue::Kind::kFloat;
      out.f = v;
      return absl::OkStatus();
    }
    case GgufValueType::kBool: {
      uint8_t v = 0;
      DSPARK_RETURN_IF_ERROR(c.Read(&v, "bool value"));
      if (v > 1) return Invalid(absl::StrCat("bool value byte is ", int{v}, ", not 0 or 1"));
      out.kind = MetaValue::Kind::kBool;
      out.b = v != 0;
      return absl::OkStatus();
    }
    case GgufValueType::kString:
      out.kind = MetaValue::Kind::kString;
      return c.ReadString(&out.s, "string value");
    case GgufValueType::kArray:
      break;
  }
  return Invalid(absl::StrCat("unknown value type id ", type));
}

absl::Status ReadArray(Cursor& c, MetaValue& out) {
  uint32_t elem_type = 0;
  uint64_t n = 0;
  DSPARK_RETURN_IF_ERROR(c.Read(&elem_type, "array element type"));
  DSPARK_RETURN_IF_ERROR(c.Read(&n, "array length"));
  if (elem_type == static_cast<uint32_t>(GgufValueType::kArray)) {
    return Invalid("nested arrays are not supported");
  }
  const bool is_string = elem_type == static_cast<uint32_t>(GgufValueType::kString);
  const uint64_t min_bytes = is_string ? 8 : ScalarBytes(elem_type);
  if (min_bytes == 0) return Invalid(absl::StrCat("unknown array element type id ", elem_type));
  if (n > c.remaining() / min_bytes) {
    return Loss(absl::StrCat("array of ", n, " elements needs at least ", min_bytes,
                             " bytes each but only ", c.remaining(), " bytes remain"));
  }
  out.kind = MetaValue::Kind::kArray;
  out.elem_kind = KindOf(elem_type);
  const size_t count = static_cast<size_t>(n);  // bounded by the input size above
  switch (out.elem_kind) {
    case MetaValue::Kind::kString:
      out.strings.reserve(count);
      break;
    case MetaValue::Kind::kFloat:
      out.floats.reserve(count);
      break;
    default:
      out.ints.reserve(count);
      break;
  }
  MetaValue elem;
  for (size_t i = 0; i < count; ++i) {
    absl::Status s = ReadScalar(c, elem_type, elem);
    if (!s.ok()) return Prefixed(s, absl::StrCat("array element ", i, ": "));
    switch (out.elem_kind) {
      case MetaValue::Kind::kString:
        out.strings.push_back(std::move(elem.s));
        break;
      case MetaValue::Kind::kFloat:
        out.floats.push_back(elem.f);
        break;
      case MetaValue::Kind::kBool:
        out.ints.push_back(elem.b ? 1 : 0);
        break;
      default:
        out.ints.push_back(elem.i);
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status ReadValue(Cursor& c, uint32_t type, MetaValue& out) {
  if (type == static_cast<uint32_t>(GgufValueType::kArray)) return ReadArray(c, out);
  return ReadScalar(c, type, out);
}

absl::Status ReadMetadata(Cursor& c, uint64_t n_kv, GgufContents& g) {
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    DSPARK_RETURN_IF_ERROR(
        Prefixed(c.ReadString(&key, "metadata key"), absl::StrCat("metadata entry #", i, ": ")));
    const std::string where = absl::StrCat("metadata key '", key, "': ");
    if (key.empty()) return Invalid(absl::StrCat("metadata entry #", i, " has an empty key"));
    uint32_t type = 0;
    DSPARK_RETURN_IF_ERROR(Prefixed(c.Read(&type, "value type"), where));
    MetaValue value;
    DSPARK_RETURN_IF_ERROR(Prefixed(ReadValue(c, type, value), where));
    if (key == "general.alignment") {
      if (value.kind != MetaValue::Kind::kInt) {
        return Invalid(absl::StrCat(where, "must be an unsigned integer, got type id ", type));
      }
      if (value.i <= 0 || !std::has_single_bit(static_cast<uint64_t>(value.i))) {
        return Invalid(absl::StrCat(where, "alignment ", value.i, " is not a power of two"));
      }
      g.alignment = static_cast<uint64_t>(value.i);
    }
    if (!g.metadata.emplace(std::move(key), std::move(value)).second) {
      return Invalid(absl::StrCat(where, "appears more than once"));
    }
  }
  return absl::OkStatus();
}

struct RawTensorInfo {
  uint64_t offset = 0;  // relative to the data section
};

// Reads one tensor info and checks everything that does not depend on where
// the data section starts.
absl::Status ReadTensorInfo(Cursor& c, uint64_t index, TensorView& t, RawTensorInfo& raw) {
  DSPARK_RETURN_IF_ERROR(
      Prefixed(c.ReadString(&t.name, "tensor name"), absl::StrCat("tensor info #", index, ": ")));
  if (t.name.empty()) return Invalid(absl::StrCat("tensor info #", index, " has an empty name"));
  const std::string where = absl::StrCat("tensor '", t.name, "': ");
  uint32_t n_dims = 0;
  DSPARK_RETURN_IF_ERROR(Prefixed(c.Read(&n_dims, "n_dims"), where));
  if (n_dims == 0 || n_dims > kMaxDims) {
    return Invalid(absl::StrCat(where, "n_dims is ", n_dims, ", expected 1..", kMaxDims));
  }
  uint64_t ne[kMaxDims] = {};
  for (uint32_t d = 0; d < n_dims; ++d) {
    DSPARK_RETURN_IF_ERROR(Prefixed(c.Read(&ne[d], "dimension"), where));
  }
  uint32_t type_id = 0;
  DSPARK_RETURN_IF_ERROR(Prefixed(c.Read(&type_id, "type id"), where));
  DSPARK_RETURN_IF_ERROR(Prefixed(c.Read(&raw.offset, "data offset"), where));

  const GgmlTypeInfo* info = FindGgmlType(type_id);
  if (info == nullptr) return Invalid(absl::StrCat(where, "unknown type id ", type_id));
  if (!info->supported) {
    return Invalid(absl::StrCat(where, "type ", AbslView(info->name), " (id ", type_id,
                                ") is not supported by dspark"));
  }
  t.type = static_cast<GgmlType>(type_id);
  int64_t numel = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    if (ne[d] == 0 || ne[d] > kInt64Max) {
      return Invalid(absl::StrCat(where, "dimension ", d, " is ", ne[d]));
    }
    if (__builtin_mul_overflow(numel, static_cast<int64_t>(ne[d]), &numel)) {
      return Invalid(absl::StrCat(where, "element count overflows int64"));
    }
  }
  if (static_cast<int64_t>(ne[0]) % info->block_size != 0) {
    return Invalid(absl::StrCat(where, "row length ", ne[0], " is not a multiple of the ",
                                AbslView(info->name), " block size ", info->block_size));
  }
  if (__builtin_mul_overflow(numel / info->block_size, info->block_bytes, &t.nbytes)) {
    return Invalid(absl::StrCat(where, "byte size overflows int64"));
  }
  t.shape.assign(n_dims, 0);
  for (uint32_t d = 0; d < n_dims; ++d) t.shape[n_dims - 1 - d] = static_cast<int64_t>(ne[d]);
  return absl::OkStatus();
}

absl::StatusOr<GgufContents> Parse(const uint8_t* data, size_t size) {
  Cursor c(data, size);
  GgufContents g;
  uint32_t magic = 0;
  DSPARK_RETURN_IF_ERROR(c.Read(&magic, "magic"));
  if (magic != kGgufMagic) {
    return Invalid(absl::StrCat("not a GGUF file (magic bytes 0x",
                                absl::Hex(magic, absl::kZeroPad8), ", expected \"GGUF\")"));
  }
  DSPARK_RETURN_IF_ERROR(c.Read(&g.version, "version"));
  if (g.version != 2 && g.version != 3) {
    const uint32_t swapped = __builtin_bswap32(g.version);
    if (swapped == 2 || swapped == 3) return Invalid("big-endian GGUF files are not supported");
    return Invalid(absl::StrCat("unsupported GGUF version ", g.version, " (expected 2 or 3)"));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  DSPARK_RETURN_IF_ERROR(c.Read(&n_tensors, "tensor count"));
  DSPARK_RETURN_IF_ERROR(c.Read(&n_kv, "metadata count"));
  if (n_kv > c.remaining() / kMinKvBytes) {
    return Loss(absl::StrCat("metadata count ", n_kv, " cannot fit in the ", c.remaining(),
                             " bytes after the header (truncated or corrupt)"));
  }
  if (n_tensors > c.remaining() / kMinTensorInfoBytes) {
    return Loss(absl::StrCat("tensor count ", n_tensors, " cannot fit in the ", c.remaining(),
                             " bytes after the header (truncated or corrupt)"));
  }
  DSPARK_RETURN_IF_ERROR(ReadMetadata(c, n_kv, g));

  if (n_tensors > c.remaining() / kMinTensorInfoBytes) {
    return Loss(absl::StrCat("tensor count ", n_tensors, " cannot fit in the ", c.remaining(),
                             " bytes after the metadata (truncated or corrupt)"));
  }
  g.tensors.resize(static_cast<size_t>(n_tensors));
  std::vector<RawTensorInfo> raw(static_cast<size_t>(n_tensors));
  std::set<std::string_view> names;
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    DSPARK_RETURN_IF_ERROR(ReadTensorInfo(c, i, g.tensors[i], raw[i]));
    if (!names.insert(g.tensors[i].name).second) {
      return Invalid(absl::StrCat("tensor '", g.tensors[i].name, "' appears more than once"));
    }
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t mask = g.alignment - 1;
  const uint64_t end_of_infos = c.pos();
  if (end_of_infos > std::numeric_limits<uint64_t>::max() - mask) {
    return Invalid("data section offset overflows");
  }
  g.data_offset = (end_of_infos + mask) & ~mask;
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    TensorView& t = g.tensors[i];
    const uint64_t off = raw[i].offset;
    if ((off & mask) != 0) {
      return Invalid(absl::StrCat("tensor '", t.name, "': data offset ", off,
                                  " is not a multiple of the alignment ", g.alignment));
    }
    uint64_t begin = 0, end = 0;
    if (__builtin_add_overflow(g.data_offset, off, &begin) ||
        __builtin_add_overflow(begin, static_cast<uint64_t>(t.nbytes), &end)) {
      return Invalid(absl::StrCat("tensor '", t.name, "': data offset ", off, " overflows"));
    }
    if (end > size) {
      return Loss(absl::StrCat("tensor '", t.name, "': data [", begin, ", ", end,
                               ") runs past the end of the file (", size, " bytes)"));
    }
    t.data = data + begin;
  }
  return g;
}

}  // namespace

absl::StatusOr<GgufContents> ParseGguf(absl::string_view path, const uint8_t* data, size_t size) {
  absl::StatusOr<GgufContents> g = Parse(data, size);
  if (!g.ok()) return Prefixed(g.status(), absl::StrCat(path, ": "));
  return g;
}

}  // namespace dspark::engine::internal
