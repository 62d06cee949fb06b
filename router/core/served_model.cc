#include "router/core/served_model.h"

#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/engine/model_file/model_file.h"
#include "common/engine/model_store/model_store.h"
#include "nlohmann/json.hpp"

namespace dspark::router {

absl::StatusOr<std::unique_ptr<ServedModel>> ServedModel::Load(const std::string& model_arg) {
  DSPARK_ASSIGN_OR_RETURN(std::string path, dspark::ResolveModelPath(model_arg));
  // Opening maps the file and parses its header; no weight page is read.
  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<engine::ModelFile> file, engine::OpenModelFile(path));
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (file->format() == "hf") {
    DSPARK_ASSIGN_OR_RETURN(tok, tokenizer::Tokenizer::FromHfDirectory(file->path()));
  } else {
    DSPARK_ASSIGN_OR_RETURN(tok, tokenizer::Tokenizer::FromGgufMetadata(*file));
  }
  DSPARK_ASSIGN_OR_RETURN(std::string arch, file->GetString("general.architecture"));
  // The same default the engine's ModelConfig uses, so both agree.
  const int64_t context = file->GetIntOr(arch + ".context_length", 4096);
  std::string id = model_arg;
  if (id.empty() || absl::StrContains(id, '/')) {
    id = std::filesystem::path(path).filename().string();
    if (absl::EndsWith(id, ".gguf")) id.resize(id.size() - 5);
  }
  return FromTokenizer(std::move(id), std::move(tok), static_cast<int>(context));
}

absl::StatusOr<std::unique_ptr<ServedModel>> ServedModel::FromTokenizer(
    std::string id, std::unique_ptr<tokenizer::Tokenizer> tokenizer, int context_length) {
  if (context_length <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model ", id, ": context length ", context_length, " is not positive"));
  }
  auto model = std::unique_ptr<ServedModel>(new ServedModel());
  model->id_ = std::move(id);
  model->context_length_ = context_length;
  model->tokenizer_ = std::move(tokenizer);
  if (!model->tokenizer_->chat_template().empty()) {
    DSPARK_ASSIGN_OR_RETURN(tokenizer::ChatTemplate t,
                            tokenizer::ChatTemplate::Parse(model->tokenizer_->chat_template()));
    model->chat_template_.emplace(std::move(t));
  }
  return model;
}

absl::StatusOr<std::vector<int32_t>> ServedModel::EncodeText(const std::string& text) const {
  return tokenizer_->Encode(text, /*add_special=*/true, /*parse_special=*/true);
}

absl::StatusOr<std::vector<int32_t>> ServedModel::EncodeChat(
    const std::vector<ChatTurn>& chat) const {
  if (!chat_template_.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("model ", id_, " has no chat template; send a prompt instead"));
  }
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (const ChatTurn& turn : chat) {
    messages.push_back({{"role", turn.role}, {"content", turn.content}});
  }
  // As transformers' apply_chat_template (and `dspark generate --chat`).
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = std::move(messages);
  context["tools"] = nullptr;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = true;
  context["bos_token"] = tokenizer_->bos_id() >= 0 ? tokenizer_->bos_token() : "";
  context["eos_token"] = tokenizer_->eos_id() >= 0 ? tokenizer_->eos_token() : "";
  DSPARK_ASSIGN_OR_RETURN(std::string rendered, chat_template_->Render(context));
  // The template writes the special tokens itself (as Hugging Face does).
  return tokenizer_->Encode(rendered, /*add_special=*/false, /*parse_special=*/true);
}

absl::StatusOr<std::string> ServedModel::Decode(const std::vector<int32_t>& ids) const {
  return tokenizer_->Decode(ids, /*skip_special=*/true);
}

}  // namespace dspark::router
