#include "tests/fakes/gguf_writer.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dspark::testing {
namespace {

template <typename T>
std::string Le(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));  // hosts are little-endian (checked by the parser)
  return s;
}

std::string IntBytes(GgufWriter::ValueType type, int64_t v) {
  switch (type) {
    case GgufWriter::kUint8:
      return Le(static_cast<uint8_t>(v));
    case GgufWriter::kInt8:
      return Le(static_cast<int8_t>(v));
    case GgufWriter::kUint16:
      return Le(static_cast<uint16_t>(v));
    case GgufWriter::kInt16:
      return Le(static_cast<int16_t>(v));
    case GgufWriter::kUint32:
      return Le(static_cast<uint32_t>(v));
    case GgufWriter::kInt32:
      return Le(static_cast<int32_t>(v));
    case GgufWriter::kUint64:
      return Le(static_cast<uint64_t>(v));
    case GgufWriter::kBool:
      return Le(static_cast<uint8_t>(v != 0));
    default:
      return Le(static_cast<int64_t>(v));
  }
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

std::string GgufWriter::U32(uint32_t v) { return Le(v); }
std::string GgufWriter::U64(uint64_t v) { return Le(v); }
std::string GgufWriter::Str(const std::string& s) { return Le(uint64_t{s.size()}) + s; }

void GgufWriter::AddRawKv(const std::string& key, uint32_t type, const std::string& value_bytes) {
  absl::StrAppend(&kv_bytes_, Str(key), U32(type), value_bytes);
  ++n_kv_;
}

void GgufWriter::AddInt(const std::string& key, ValueType type, int64_t value) {
  AddRawKv(key, type, IntBytes(type, value));
}
void GgufWriter::AddUint64(const std::string& key, uint64_t value) {
  AddRawKv(key, kUint64, Le(value));
}
void GgufWriter::AddFloat32(const std::string& key, float value) {
  AddRawKv(key, kFloat32, Le(value));
}
void GgufWriter::AddFloat64(const std::string& key, double value) {
  AddRawKv(key, kFloat64, Le(value));
}
void GgufWriter::AddBool(const std::string& key, bool value) {
  AddRawKv(key, kBool, Le(static_cast<uint8_t>(value)));
}
void GgufWriter::AddString(const std::string& key, const std::string& value) {
  AddRawKv(key, kString, Str(value));
}

void GgufWriter::AddIntArray(const std::string& key, ValueType elem_type,
                             const std::vector<int64_t>& v) {
  std::string bytes = U32(elem_type) + U64(v.size());
  for (int64_t x : v) bytes += IntBytes(elem_type, x);
  AddRawKv(key, kArray, bytes);
}
void GgufWriter::AddFloat32Array(const std::string& key, const std::vector<float>& v) {
  std::string bytes = U32(kFloat32) + U64(v.size());
  for (float x : v) bytes += Le(x);
  AddRawKv(key, kArray, bytes);
}
void GgufWriter::AddFloat64Array(const std::string& key, const std::vector<double>& v) {
  std::string bytes = U32(kFloat64) + U64(v.size());
  for (double x : v) bytes += Le(x);
  AddRawKv(key, kArray, bytes);
}
void GgufWriter::AddBoolArray(const std::string& key, const std::vector<bool>& v) {
  std::string bytes = U32(kBool) + U64(v.size());
  for (bool x : v) bytes += Le(static_cast<uint8_t>(x));
  AddRawKv(key, kArray, bytes);
}
void GgufWriter::AddStringArray(const std::string& key, const std::vector<std::string>& v) {
  std::string bytes = U32(kString) + U64(v.size());
  for (const std::string& s : v) bytes += Str(s);
  AddRawKv(key, kArray, bytes);
}

void GgufWriter::SetAlignment(uint32_t alignment) {
  alignment_ = alignment;
  AddInt("general.alignment", kUint32, alignment);
}

void GgufWriter::AddTensor(const std::string& name, engine::GgmlType type,
                           const std::vector<int64_t>& shape, const std::string& data) {
  RawTensor t;
  t.name = name;
  t.type_id = static_cast<uint32_t>(type);
  for (auto it = shape.rbegin(); it != shape.rend(); ++it)
    t.ne.push_back(static_cast<uint64_t>(*it));
  t.data = data;
  tensors_.push_back(std::move(t));
}

void GgufWriter::AddRawTensor(RawTensor t) { tensors_.push_back(std::move(t)); }

std::vector<uint64_t> GgufWriter::TensorOffsets() const {
  // An alignment of 0 (for error tests) lays tensors out unpadded.
  const uint64_t align = alignment_ == 0 ? 1 : alignment_;
  std::vector<uint64_t> offsets;
  uint64_t next = 0;
  for (const RawTensor& t : tensors_) {
    offsets.push_back(t.offset.value_or(next));
    next = AlignUp(next + t.data.size(), align);
  }
  return offsets;
}

std::string GgufWriter::HeaderAndInfos() const {
  std::string out = "GGUF" + U32(version_) + U64(tensors_.size()) + U64(n_kv_) + kv_bytes_;
  const std::vector<uint64_t> offsets = TensorOffsets();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const RawTensor& t = tensors_[i];
    out += Str(t.name) + U32(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) out += U64(d);
    out += U32(t.type_id) + U64(offsets[i]);
  }
  return out;
}

uint64_t GgufWriter::DataOffset() const {
  return AlignUp(HeaderAndInfos().size(), alignment_ == 0 ? 1 : alignment_);
}

std::string GgufWriter::Serialize() const {
  std::string out = HeaderAndInfos();
  const uint64_t data_offset = DataOffset();
  const std::vector<uint64_t> offsets = TensorOffsets();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    // Writes where the info says, as far as that is sane for a test file.
    if (offsets[i] > (uint64_t{1} << 30)) continue;
    const uint64_t at = data_offset + offsets[i];
    if (out.size() < at) out.resize(at, '\0');
    out.replace(at, std::min<size_t>(tensors_[i].data.size(), out.size() - at), tensors_[i].data);
  }
  if (tensors_.empty()) out.resize(data_offset, '\0');
  return out;
}

absl::Status GgufWriter::WriteToFile(const std::string& path) const {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return absl::InternalError(absl::StrCat(path, ": cannot create"));
  const std::string bytes = Serialize();
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace dspark::testing
