// TokenizerSpec: everything a Tokenizer is built from, independent of the
// file format. The loaders (tokenizer.json, GGUF metadata, SentencePiece
// model) fill one; Tokenizer::FromSpec validates it and builds the runtime
// tables. A plain value type, no thread-safety concerns.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/tokenizer/added_tokens.h"
#include "common/tokenizer/regex_splitter.h"
#include "common/tokenizer/unicode.h"

namespace dspark::tokenizer {

// Token types, numbered as GGUF's tokenizer.ggml.token_type.
enum class TokenKind : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // special: BOS/EOS/chat markers; skipped by Decode(skip_special)
  kUserDefined = 4,  // added token that is not special
  kUnused = 5,
  kByte = 6,  // <0xXX> byte-fallback token
};

enum class ModelType {
  // GPT-2 style: vocabulary strings are byte-level encoded ("Ġthe"); the
  // initial symbols of a pre-token are its bytes.
  kByteLevelBpe,
  // SentencePiece style: vocabulary strings are text with "▁" for spaces;
  // the initial symbols are characters, unknown characters fall back to
  // <0xXX> byte tokens (or unk).
  kCharBpe,
};

// One text rewrite applied to every plain-text segment, in order.
struct TextOp {
  enum class Type {
    kNormalize,  // Unicode normalization `form`
    kPrepend,    // prepend `a` (if the segment is non-empty)
    kReplace,    // replace every occurrence of `a` by `b`
  };
  Type type = Type::kNormalize;
  NormalizationForm form = NormalizationForm::kNone;
  std::string a, b;
  bool only_if_missing = false;  // kPrepend: skip when the text starts with `a`
  bool first_only = false;       // kPrepend: only the segment at the input's start
};

struct TokenizerSpec {
  ModelType model = ModelType::kByteLevelBpe;

  // Vocabulary, indexed by id. `tokens[i]` is the text as in the model file.
  // Gaps (ids no token uses) are empty strings of kind kUnused.
  std::vector<std::string> tokens;
  std::vector<TokenKind> kinds;  // same size as tokens

  // BPE rules, highest priority first, as pairs of token texts. If empty
  // and `scores` is set (SentencePiece BPE), rules are derived from the
  // vocabulary: "a b -> ab" ranked by the score of "ab", highest first.
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<float> scores;

  bool ignore_merges = false;  // a pre-token that is itself in the vocab wins
  bool byte_fallback = false;  // kCharBpe: unknown characters -> <0xXX>
  bool fuse_unk = false;       // consecutive unknown characters -> one unk
  int32_t unk_id = -1;

  // Normalizer and the text part of the pre-tokenizer.
  std::vector<TextOp> text_ops;
  // Pre-tokenizer splits (empty: each segment is one pre-token).
  std::vector<SplitStep> split_steps;

  // Added / special tokens, matched in raw text before anything else.
  std::vector<AddedToken> added_tokens;

  // Decoding.
  bool strip_leading_space = false;      // drop one leading ' ' of the output
  bool byte_decode_added_tokens = true;  // kByteLevelBpe: added tokens pass
                                         // through the byte-level decoder (HF);
                                         // false: raw text (llama.cpp)

  // Special ids (-1: none) and the BOS/EOS policy of Encode(add_special).
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  std::vector<int32_t> eog_ids;  // end-of-generation ids besides eos_id
  bool add_bos = false;
  bool add_eos = false;

  std::string chat_template;  // Jinja source; may be empty
};

// Appends to spec->eog_ids every control token whose text is a well-known
// end-of-turn marker (<|im_end|>, <|eot_id|>, <end_of_turn>, <|end|>, ...).
void AddKnownEogIds(TokenizerSpec* spec);

}  // namespace dspark::tokenizer
