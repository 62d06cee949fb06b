// Helpers shared by the tokenizer tests: locating shared test data, reading
// reference files, and a ModelFile fake over a metadata map (with a small
// reader for the metadata of GGUF files, independent of the engine's parser).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine/model_file/model_file.h"

namespace dspark::tokenizer::testing {

// DSPARK_DATA_DIR + "/tokenizers/" + rel, or "" if that path does not exist.
std::string TokenizerDataPath(const std::string& rel);

struct ReferenceCase {
  std::string text;
  std::vector<int32_t> ids;
};
// reference.jsonl: one {"text": ..., "ids": [...]} per line.
absl::StatusOr<std::vector<ReferenceCase>> ReadReferenceJsonl(const std::string& path);
// llama.cpp's .inp/.out pair.
absl::StatusOr<std::vector<ReferenceCase>> ReadLlamaCppVectors(const std::string& inp_path,
                                                               const std::string& out_path);

// A ModelFile holding only metadata.
class FakeModelFile : public engine::ModelFile {
 public:
  explicit FakeModelFile(std::map<std::string, engine::MetaValue> meta, std::string path = "fake")
      : meta_(std::move(meta)), path_(std::move(path)) {}
  std::string format() const override { return "gguf"; }
  const std::string& path() const override { return path_; }
  const std::map<std::string, engine::MetaValue>& metadata() const override { return meta_; }
  const std::vector<engine::TensorView>& tensors() const override { return tensors_; }

 private:
  std::map<std::string, engine::MetaValue> meta_;
  std::string path_;
  std::vector<engine::TensorView> tensors_;
};

// Reads the key/value metadata of a GGUF v2/v3 file (tensor infos ignored).
absl::StatusOr<std::unique_ptr<FakeModelFile>> ReadGgufMetadata(const std::string& path);

// Converts a Hugging Face tokenizer.json into the tokenizer.ggml.* metadata
// that llama.cpp's convert_hf_to_gguf.py would write for a "gpt2" model.
absl::StatusOr<std::unique_ptr<FakeModelFile>> GgufMetadataFromHfJson(const std::string& json_path,
                                                                      const std::string& pre);

engine::MetaValue MetaString(std::string s);
engine::MetaValue MetaInt(int64_t v);
engine::MetaValue MetaBool(bool v);
engine::MetaValue MetaStrings(std::vector<std::string> v);
engine::MetaValue MetaInts(std::vector<int64_t> v);
engine::MetaValue MetaFloats(std::vector<double> v);

}  // namespace dspark::tokenizer::testing
