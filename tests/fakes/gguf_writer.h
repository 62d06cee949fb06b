// A small GGUF (v2/v3, little-endian) writer for tests: builds files with any
// metadata and tensors, and can also write deliberately malformed values
// (raw type ids, dims, offsets) so loaders can be tested against them.
// Not thread-safe; use one writer per thread.
//
//   GgufWriter w;
//   w.AddString("general.architecture", "llama");
//   w.AddTensor("token_embd.weight", GgmlType::kF32, {4, 8}, bytes);  // [vocab, dim]
//   ASSERT_TRUE(w.WriteToFile(dir + "/m.gguf").ok());
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/engine/tensor/ggml_type.h"

namespace dspark::testing {

class GgufWriter {
 public:
  // GGUF metadata value type ids.
  enum ValueType : uint32_t {
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

  // A tensor exactly as written: dims innermost first, as in the file.
  struct RawTensor {
    std::string name;
    std::vector<uint64_t> ne;        // GGUF order: ne[0] is the row length
    uint32_t type_id = 0;            // GgmlType value, or anything for error tests
    std::string data;                // bytes placed in the data section
    std::optional<uint64_t> offset;  // default: next aligned position
  };

  explicit GgufWriter(uint32_t version = 3) : version_(version) {}

  // Integer scalars of any integer type (the value is truncated to it).
  void AddInt(const std::string& key, ValueType type, int64_t value);
  void AddUint64(const std::string& key, uint64_t value);
  void AddFloat32(const std::string& key, float value);
  void AddFloat64(const std::string& key, double value);
  void AddBool(const std::string& key, bool value);
  void AddString(const std::string& key, const std::string& value);
  void AddIntArray(const std::string& key, ValueType elem_type, const std::vector<int64_t>& v);
  void AddFloat32Array(const std::string& key, const std::vector<float>& v);
  void AddFloat64Array(const std::string& key, const std::vector<double>& v);
  void AddBoolArray(const std::string& key, const std::vector<bool>& v);
  void AddStringArray(const std::string& key, const std::vector<std::string>& v);
  // Any value: `type` and the already-encoded `value_bytes` go in as given.
  void AddRawKv(const std::string& key, uint32_t type, const std::string& value_bytes);
  // Sets the data alignment used for layout and adds general.alignment (uint32).
  void SetAlignment(uint32_t alignment);

  // `shape` is outermost first (as TensorView has it); `data` must hold the
  // tensor's bytes (RowBytes per row) for a well-formed file.
  void AddTensor(const std::string& name, engine::GgmlType type, const std::vector<int64_t>& shape,
                 const std::string& data);
  void AddRawTensor(RawTensor t);

  // The whole file. No padding follows the last tensor's data, so every
  // strict prefix of a file with tensors is truncated.
  std::string Serialize() const;
  absl::Status WriteToFile(const std::string& path) const;

  // Where Serialize() puts the data section, and each tensor's offset in it.
  uint64_t DataOffset() const;
  std::vector<uint64_t> TensorOffsets() const;

  // Little-endian encoders, for building AddRawKv values.
  static std::string U32(uint32_t v);
  static std::string U64(uint64_t v);
  static std::string Str(const std::string& s);  // uint64 length + bytes

 private:
  std::string HeaderAndInfos() const;

  uint32_t version_;
  uint32_t alignment_ = 32;
  uint64_t n_kv_ = 0;
  std::string kv_bytes_;
  std::vector<RawTensor> tensors_;
};

}  // namespace dspark::testing
