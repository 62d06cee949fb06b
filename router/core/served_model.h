// The model a router serves, as far as the router needs it: its tokenizer,
// chat template and context length — read from the model file's metadata
// (GGUF tokenizer.ggml.* keys, or a Hugging Face directory's tokenizer.json
// and config.json); the weights are memory-mapped by the file reader but
// never touched. Immutable after Load; every method is const and
// thread-safe.
//
//   DSPARK_ASSIGN_OR_RETURN(auto model, ServedModel::Load("smollm2-135m-instruct"));
//   DSPARK_ASSIGN_OR_RETURN(std::vector<int32_t> ids, model->EncodeText("Hello"));
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "router/frontend/generation_backend.h"

namespace dspark::router {

class ServedModel {
 public:
  // `model_arg` as the servers' --model takes it: a catalogue name (pulled),
  // a GGUF file or a Hugging Face directory. The model's id is the catalogue
  // name, or the file name without .gguf for a path.
  static absl::StatusOr<std::unique_ptr<ServedModel>> Load(const std::string& model_arg);
  // From parts (tests): `context_length` > 0.
  static absl::StatusOr<std::unique_ptr<ServedModel>> FromTokenizer(
      std::string id, std::unique_ptr<tokenizer::Tokenizer> tokenizer, int context_length);

  const std::string& id() const { return id_; }
  int context_length() const { return context_length_; }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  int32_t vocab_size() const { return tokenizer_->vocab_size(); }

  // Raw text as `dspark generate --prompt` tokenizes it: the model's BOS
  // rules, special-token text parsed. Invalid UTF-8: InvalidArgument.
  absl::StatusOr<std::vector<int32_t>> EncodeText(const std::string& text) const;
  // A chat rendered with the model's template and a generation prompt, as
  // `dspark generate --chat` does. No template: FailedPrecondition.
  absl::StatusOr<std::vector<int32_t>> EncodeChat(const std::vector<ChatTurn>& chat) const;
  // Ids -> text (special tokens skipped). Out of vocabulary: InvalidArgument.
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const;

 private:
  ServedModel() = default;

  std::string id_;
  int context_length_ = 0;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  // Parsed once; nullopt when the model has none.
  std::optional<tokenizer::ChatTemplate> chat_template_;
};

}  // namespace dspark::router
