// OpenHfDirectory: config.json -> GGUF-named metadata, and the tensors of
// model.safetensors or of the shards listed in model.safetensors.index.json,
// renamed to GGUF names.

#include <sys/stat.h>

#include <exception>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "common/engine/model_file/internal/hf_config_keys.h"
#include "common/engine/model_file/internal/hf_names.h"
#include "common/engine/model_file/internal/loaded_model_file.h"
#include "common/engine/model_file/internal/safetensors.h"
#include "common/engine/model_file/model_file.h"
#include "nlohmann/json.hpp"

namespace dspark::engine {
namespace {

using nlohmann::json;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Reads model.safetensors.index.json: tensor name -> shard file name.
absl::StatusOr<std::map<std::string, std::string>> ReadIndex(const std::string& index_path) {
  DSPARK_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
  json index = json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": not a valid JSON object"));
  }
  auto map_it = index.find("weight_map");
  if (map_it == index.end() || !map_it->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": missing object 'weight_map'"));
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [tensor, shard] : map_it->items()) {
    if (!shard.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map entry for '", tensor, "' is not a string"));
    }
    const std::string& file = shard.get_ref<const std::string&>();
    // Shards live next to the index; refuse anything that could point elsewhere.
    if (file.empty() || absl::StrContains(file, '/') || file == "." || file == "..") {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map entry for '", tensor,
                                                     "' names bad shard '", file, "'"));
    }
    weight_map.emplace(tensor, file);
  }
  if (weight_map.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map is empty"));
  }
  return weight_map;
}

struct Loaded {
  std::vector<std::unique_ptr<MappedFile>> mappings;
  std::vector<TensorView> tensors;  // GGUF names
};

// Maps every shard, renames its tensors and checks names are unique and that
// the index (if any) agrees with the shards' contents.
absl::StatusOr<Loaded> LoadShards(const std::string& dir, const std::string& arch,
                                  const std::set<std::string>& shards,
                                  const std::map<std::string, std::string>* weight_map) {
  Loaded out;
  std::map<std::string, std::string> hf_name_to_shard;
  std::map<std::string, std::string> gguf_to_hf;
  for (const std::string& shard : shards) {
    const std::string shard_path = absl::StrCat(dir, "/", shard);
    if (!IsRegularFile(shard_path)) {
      return absl::NotFoundError(
          absl::StrCat(dir, ": shard '", shard, "' named by ", kIndexFile, " is missing"));
    }
    DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::Open(shard_path));
    DSPARK_ASSIGN_OR_RETURN(internal::SafetensorsContents st,
                            internal::ParseSafetensors(shard_path, mapped->data(), mapped->size()));
    for (TensorView& t : st.tensors) {
      auto [it, inserted] = hf_name_to_shard.emplace(t.name, shard);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(
            dir, ": tensor '", t.name, "' appears in both '", it->second, "' and '", shard, "'"));
      }
      std::string gguf_name = internal::HfToGgufTensorName(arch, t.name);
      auto [g, fresh] = gguf_to_hf.emplace(gguf_name, t.name);
      if (!fresh) {
        return absl::InvalidArgumentError(absl::StrCat(dir, ": tensors '", g->second, "' and '",
                                                       t.name, "' both map to '", gguf_name, "'"));
      }
      t.name = std::move(gguf_name);
      out.tensors.push_back(std::move(t));
    }
    out.mappings.push_back(std::move(mapped));
  }
  if (weight_map != nullptr) {
    for (const auto& [tensor, shard] : *weight_map) {
      auto it = hf_name_to_shard.find(tensor);
      if (it == hf_name_to_shard.end() || it->second != shard) {
        return absl::InvalidArgumentError(absl::StrCat(dir, ": ", kIndexFile, " puts '", tensor,
                                                       "' in '", shard,
                                                       "', which does not contain it"));
      }
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ModelFile>> Open(const std::string& dir) {
  const std::string config_path = absl::StrCat(dir, "/config.json");
  if (!IsRegularFile(config_path)) {
    return absl::NotFoundError(absl::StrCat(dir, ": no config.json"));
  }
  DSPARK_ASSIGN_OR_RETURN(std::string config, ReadFileToString(config_path));
  DSPARK_ASSIGN_OR_RETURN(auto metadata, internal::HfConfigToMetadata(config_path, config));
  const std::string arch = metadata.at("general.architecture").s;

  std::set<std::string> shards;
  std::map<std::string, std::string> weight_map;
  const bool single = IsRegularFile(absl::StrCat(dir, "/", kSingleFile));
  if (single) {
    shards.insert(kSingleFile);
  } else {
    const std::string index_path = absl::StrCat(dir, "/", kIndexFile);
    if (!IsRegularFile(index_path)) {
      return absl::NotFoundError(
          absl::StrCat(dir, ": neither ", kSingleFile, " nor ", kIndexFile, " is present"));
    }
    DSPARK_ASSIGN_OR_RETURN(weight_map, ReadIndex(index_path));
    for (const auto& [tensor, shard] : weight_map) shards.insert(shard);
  }
  DSPARK_ASSIGN_OR_RETURN(Loaded loaded,
                          LoadShards(dir, arch, shards, single ? nullptr : &weight_map));
  return std::unique_ptr<ModelFile>(std::make_unique<internal::LoadedModelFile>(
      "hf", dir, std::move(loaded.mappings), std::move(metadata), std::move(loaded.tensors)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelFile>> OpenHfDirectory(const std::string& dir) {
  try {
    return Open(dir);
  } catch (const std::exception& e) {  // keeps library exceptions inside the module
    return absl::InternalError(absl::StrCat(dir, ": ", e.what()));
  }
}

}  // namespace dspark::engine
