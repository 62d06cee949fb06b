// Tokenizer: text <-> token ids for the model families dspark serves.
// Byte-level BPE (GPT-2, SmolLM2, Qwen2/2.5/3, Llama 3, StarCoder, DeepSeek)
// and SentencePiece-style BPE with byte fallback (Llama 2, Mistral, Gemma 3),
// loaded from a Hugging Face tokenizer.json (+ tokenizer_config.json), from a
// GGUF file's tokenizer.ggml.* metadata, or from a SentencePiece
// tokenizer.model.
//
//   DSPARK_ASSIGN_OR_RETURN(auto tok, Tokenizer::FromHfDirectory(dir));
//   DSPARK_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
//                           tok->Encode("Hello", /*add_special=*/true,
//                                       /*parse_special=*/false));
//   DSPARK_ASSIGN_OR_RETURN(std::string text, tok->Decode(ids, true));
//
// Immutable after loading and thread-safe: Encode/Decode may run on many
// threads at once (the internal pre-token cache is synchronised).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/added_tokens.h"
#include "common/tokenizer/bpe.h"
#include "common/tokenizer/regex_splitter.h"
#include "common/tokenizer/tokenizer_spec.h"

namespace dspark::engine {
class ModelFile;
}  // namespace dspark::engine

namespace dspark::tokenizer {

class Tokenizer {
 public:
  // From a GGUF file's metadata: tokenizer.ggml.{model,pre,tokens,scores,
  // token_type,merges,bos_token_id,eos_token_id,eot_token_id,...,
  // add_bos_token,add_eos_token,add_space_prefix} and tokenizer.chat_template.
  // model "gpt2" (byte-level BPE, `pre` selects the split regexes) and
  // "llama" (SentencePiece BPE by scores) are supported.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGgufMetadata(const engine::ModelFile& file);
  // From the contents of tokenizer.json and tokenizer_config.json (the latter
  // may be empty). Model type BPE only (Unigram / WordPiece: Unimplemented).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfJson(
      const std::string& tokenizer_json, const std::string& tokenizer_config_json);
  // From a directory holding tokenizer.json (+ tokenizer_config.json), or
  // else a SentencePiece tokenizer.model.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfDirectory(const std::string& dir);
  // From the bytes of a SentencePiece tokenizer.model (BPE models only),
  // encoding like the `sentencepiece` library (dummy prefix, byte fallback;
  // <s> / </s> in text are plain text unless parse_special).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromSentencePieceModel(
      const std::string& model_proto);
  // From an already assembled spec (loaders, tests).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromSpec(TokenizerSpec spec);

  // Text -> ids. `add_special`: add BOS/EOS as the model's rules say.
  // `parse_special`: special-token text in `text` ("<|im_start|>") becomes
  // the token; otherwise it is tokenized as plain text (non-special added
  // tokens are always recognised). Invalid UTF-8 -> InvalidArgument.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special,
                                              bool parse_special) const;

  // Ids -> text. Out-of-range ids -> InvalidArgument. Byte tokens that do not
  // form valid UTF-8 become U+FFFD (each maximal invalid subpart).
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids, bool skip_special) const;

  // The raw bytes one token contributes to Decode's output (before the
  // leading-space rule and UTF-8 repair); empty for a skipped special token.
  absl::StatusOr<std::string_view> TokenBytes(int32_t id, bool skip_special) const;
  // Decode drops one leading space of its output (SentencePiece dummy prefix).
  bool strip_leading_space() const { return strip_leading_space_; }

  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const { return bos_id_; }  // -1 if none
  int32_t eos_id() const { return eos_id_; }  // -1 if none
  // Every id that ends generation: eos plus end-of-turn tokens
  // (<|im_end|>, <|eot_id|>, <end_of_turn>, ...).
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // Token text as in the model file ("Ġthe", "▁the", "<|im_end|>"); empty
  // for out-of-range ids.
  std::string TokenText(int32_t id) const;
  std::optional<int32_t> TokenId(std::string_view text) const;
  bool IsSpecial(int32_t id) const;  // control / unknown tokens
  // kUnused for out-of-range ids.
  TokenKind token_kind(int32_t id) const {
    return id >= 0 && id < vocab_size() ? kinds_[id] : TokenKind::kUnused;
  }
  const std::string& chat_template() const { return chat_template_; }
  std::string bos_token() const { return TokenText(bos_id_); }
  std::string eos_token() const { return TokenText(eos_id_); }
  ModelType model_type() const { return model_; }

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

 private:
  Tokenizer() = default;
  absl::Status Build(TokenizerSpec spec);
  absl::Status BuildMerges(const TokenizerSpec& spec);
  // Normalizes, pre-tokenizes and BPE-encodes one plain-text segment.
  absl::Status EncodeText(std::string_view text, bool at_input_start,
                          std::vector<int32_t>* ids) const;
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;
  // Char BPE: splits `word` before each "▁" where no vocabulary token can
  // span the boundary (exact, and lets the word cache work on long
  // segments), then EncodeWord on each part.
  void EncodeCharWord(std::string_view word, std::vector<int32_t>* ids) const;
  // Initial BPE symbols of a word.
  void ByteSymbols(std::string_view word, std::vector<int32_t>* syms) const;
  void CharSymbols(std::string_view word, std::vector<int32_t>* syms) const;

  ModelType model_ = ModelType::kByteLevelBpe;
  std::vector<std::string> tokens_;  // id -> text in the model file
  std::vector<TokenKind> kinds_;
  std::vector<std::string> pieces_;  // id -> decoded bytes
  absl::flat_hash_map<std::string, int32_t> text_to_id_;
  // BPE lookups: raw bytes (byte-level) or text (char BPE) -> id, over the
  // tokens BPE may produce.
  absl::flat_hash_map<std::string, int32_t> symbol_to_id_;
  int32_t byte_ids_[256];   // byte-level: single byte; char BPE: <0xXX>
  int32_t ascii_ids_[128];  // char BPE: single ASCII character
  // Char BPE: characters c such that some token contains c"▁" (c != "▁").
  absl::flat_hash_set<std::string> joins_before_space_;
  bool all_byte_tokens_ = false;
  BpeMerger merger_;
  AddedTokenMatcher added_;
  std::unique_ptr<RegexSplitter> splitter_;
  std::vector<TextOp> text_ops_;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool strip_leading_space_ = false;
  int32_t unk_id_ = -1;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  std::vector<int32_t> eos_ids_;
  bool add_bos_ = false;
  bool add_eos_ = false;
  std::string chat_template_;
  WordCache cache_;
};

}  // namespace dspark::tokenizer
