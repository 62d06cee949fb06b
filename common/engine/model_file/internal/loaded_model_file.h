// The ModelFile both loaders return: metadata and tensor views plus the
// mappings the views point into. Immutable after construction: thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/base/file_util.h"
#include "common/engine/model_file/model_file.h"

namespace dspark::engine::internal {

class LoadedModelFile final : public ModelFile {
 public:
  LoadedModelFile(std::string format, std::string path,
                  std::vector<std::unique_ptr<MappedFile>> mappings,
                  std::map<std::string, MetaValue> metadata, std::vector<TensorView> tensors)
      : format_(std::move(format)),
        path_(std::move(path)),
        mappings_(std::move(mappings)),
        metadata_(std::move(metadata)),
        tensors_(std::move(tensors)) {}

  std::string format() const override { return format_; }
  const std::string& path() const override { return path_; }
  const std::map<std::string, MetaValue>& metadata() const override { return metadata_; }
  const std::vector<TensorView>& tensors() const override { return tensors_; }

 private:
  std::string format_;
  std::string path_;
  std::vector<std::unique_ptr<MappedFile>> mappings_;  // owns what tensors_ point into
  std::map<std::string, MetaValue> metadata_;
  std::vector<TensorView> tensors_;
};

}  // namespace dspark::engine::internal
