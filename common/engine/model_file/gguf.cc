// OpenGguf: maps a GGUF file and hands it to the in-memory parser.

#include <memory>
#include <utility>
#include <vector>

#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "common/engine/model_file/internal/gguf_parser.h"
#include "common/engine/model_file/internal/loaded_model_file.h"
#include "common/engine/model_file/model_file.h"

namespace dspark::engine {

absl::StatusOr<std::unique_ptr<ModelFile>> OpenGguf(const std::string& path) {
  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::Open(path));
  DSPARK_ASSIGN_OR_RETURN(internal::GgufContents gguf,
                          internal::ParseGguf(path, mapped->data(), mapped->size()));
  std::vector<std::unique_ptr<MappedFile>> mappings;
  mappings.push_back(std::move(mapped));
  return std::unique_ptr<ModelFile>(std::make_unique<internal::LoadedModelFile>(
      "gguf", path, std::move(mappings), std::move(gguf.metadata), std::move(gguf.tensors)));
}

}  // namespace dspark::engine
