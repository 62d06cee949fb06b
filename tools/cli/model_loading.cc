#include "tools/cli/model_loading.h"

#include "common/base/status_macros.h"
#include "common/engine/model_store/model_store.h"

namespace dspark::cli {

absl::StatusOr<std::unique_ptr<engine::Model>> LoadModelFromArgs(const Args& args) {
  DSPARK_ASSIGN_OR_RETURN(std::string path, dspark::ResolveModelPath(args.Get("model", "")));
  DSPARK_ASSIGN_OR_RETURN(int64_t threads, args.GetInt("threads", 0));
  engine::ModelOptions options;
  options.threads = static_cast<int>(threads);
  options.mode =
      args.Has("exact") ? engine::cpu::ActivationMode::kExact : engine::cpu::ActivationMode::kInt8;
  return engine::Model::Load(path, options);
}

absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadModelTokenizer(
    const engine::Model& model) {
  if (model.file().format() == "hf")
    return tokenizer::Tokenizer::FromHfDirectory(model.file().path());
  return tokenizer::Tokenizer::FromGgufMetadata(model.file());
}

}  // namespace dspark::cli
