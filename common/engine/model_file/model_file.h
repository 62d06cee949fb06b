// A model file opened for reading: key/value metadata and named weight
// tensors, from a GGUF file or a Hugging Face directory (config.json plus one
// or more *.safetensors). Memory-mapped; immutable after Open*, so safe to
// share between threads. Every error names the file and the problem.
//
//   DSPARK_ASSIGN_OR_RETURN(auto file, OpenModelFile("/models/x.gguf"));
//   const TensorView* wq = file->FindTensor("blk.0.attn_q.weight");
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine/tensor/tensor.h"

namespace dspark::engine {

// One metadata value. Arrays hold elements of one kind in the matching vector.
struct MetaValue {
  enum class Kind { kInt, kFloat, kBool, kString, kArray };
  Kind kind = Kind::kInt;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  Kind elem_kind = Kind::kInt;       // for kArray
  std::vector<int64_t> ints;         // kArray of kInt / kBool
  std::vector<double> floats;        // kArray of kFloat
  std::vector<std::string> strings;  // kArray of kString
};

class ModelFile {
 public:
  virtual ~ModelFile() = default;

  // "gguf" or "hf".
  virtual std::string format() const = 0;
  // The file or directory it was opened from.
  virtual const std::string& path() const = 0;

  // GGUF keys as in the file ("general.architecture", "llama.block_count",
  // "tokenizer.ggml.tokens", ...). A Hugging Face directory exposes its
  // config.json under the same GGUF key names (see hf_config_keys in the
  // implementation), so model code reads one vocabulary of keys.
  virtual const std::map<std::string, MetaValue>& metadata() const = 0;

  // Tensors under GGUF names ("token_embd.weight", "blk.3.ffn_up.weight").
  virtual const std::vector<TensorView>& tensors() const = 0;

  const MetaValue* FindMeta(const std::string& key) const;
  const TensorView* FindTensor(const std::string& name) const;

  // Typed getters: NotFound / InvalidArgument naming the file and key.
  absl::StatusOr<int64_t> GetInt(const std::string& key) const;
  absl::StatusOr<double> GetFloat(const std::string& key) const;  // ints convert
  absl::StatusOr<std::string> GetString(const std::string& key) const;
  int64_t GetIntOr(const std::string& key, int64_t def) const;
  double GetFloatOr(const std::string& key, double def) const;
  bool GetBoolOr(const std::string& key, bool def) const;
};

// Opens a GGUF v2/v3 file.
absl::StatusOr<std::unique_ptr<ModelFile>> OpenGguf(const std::string& path);
// Opens a Hugging Face directory: config.json and model.safetensors or the
// shards named by model.safetensors.index.json. Tensors are renamed to GGUF
// names; f32/f16/bf16 only.
absl::StatusOr<std::unique_ptr<ModelFile>> OpenHfDirectory(const std::string& dir);
// Dispatches on whether `path` is a directory.
absl::StatusOr<std::unique_ptr<ModelFile>> OpenModelFile(const std::string& path);

}  // namespace dspark::engine
