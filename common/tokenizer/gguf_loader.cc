// Tokenizer::FromGgufMetadata: a GGUF file's tokenizer.ggml.* keys ->
// TokenizerSpec, following llama.cpp's reading of them (llama-vocab.cpp):
// "gpt2" = byte-level BPE split by the regexes of `tokenizer.ggml.pre`,
// "llama" = SentencePiece BPE by scores with byte fallback.
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/engine/model_file/model_file.h"
#include "common/tokenizer/tokenizer.h"

namespace dspark::tokenizer {
namespace {

using engine::MetaValue;

// Reads keys straight from metadata(): only the header of ModelFile is used,
// so this loader works with any ModelFile implementation (and test fakes).
class Meta {
 public:
  explicit Meta(const engine::ModelFile& file) : map_(file.metadata()) {}

  const MetaValue* Find(const std::string& key) const {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }
  absl::StatusOr<std::string> String(const std::string& key) const {
    const MetaValue* v = Find(key);
    if (v == nullptr) return absl::NotFoundError(absl::StrCat("GGUF: missing ", key));
    if (v->kind != MetaValue::Kind::kString) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF: ", key, " is not a string"));
    }
    return v->s;
  }
  std::string StringOr(const std::string& key, const std::string& def) const {
    const MetaValue* v = Find(key);
    return v != nullptr && v->kind == MetaValue::Kind::kString ? v->s : def;
  }
  int64_t IntOr(const std::string& key, int64_t def) const {
    const MetaValue* v = Find(key);
    if (v == nullptr) return def;
    if (v->kind == MetaValue::Kind::kInt) return v->i;
    if (v->kind == MetaValue::Kind::kBool) return v->b ? 1 : 0;
    return def;
  }
  bool BoolOr(const std::string& key, bool def) const {
    const MetaValue* v = Find(key);
    if (v == nullptr) return def;
    if (v->kind == MetaValue::Kind::kBool) return v->b;
    if (v->kind == MetaValue::Kind::kInt) return v->i != 0;
    return def;
  }
  // An array of `kind` elements, or null if absent; error if of another kind.
  absl::StatusOr<const MetaValue*> Array(const std::string& key, MetaValue::Kind kind) const {
    const MetaValue* v = Find(key);
    if (v == nullptr) return nullptr;
    if (v->kind != MetaValue::Kind::kArray || v->elem_kind != kind) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF: ", key, " has the wrong type"));
    }
    return v;
  }

 private:
  const std::map<std::string, MetaValue>& map_;
};

bool IsLlama3Family(const std::string& pre) {
  return pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3";
}

bool IsQwen2Family(const std::string& pre) { return pre == "qwen2" || pre == "deepseek-r1-qwen"; }

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGgufMetadata(
    const engine::ModelFile& file) {
  Meta meta(file);
  TokenizerSpec spec;
  DSPARK_ASSIGN_OR_RETURN(std::string model, meta.String("tokenizer.ggml.model"));
  DSPARK_ASSIGN_OR_RETURN(const MetaValue* tokens,
                          meta.Array("tokenizer.ggml.tokens", MetaValue::Kind::kString));
  if (tokens == nullptr) return absl::NotFoundError("GGUF: missing tokenizer.ggml.tokens");
  const size_t n = tokens->strings.size();
  if (n == 0 || n >= (size_t{1} << 30)) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF: bad vocabulary size ", n));
  }
  spec.tokens = tokens->strings;
  spec.kinds.assign(n, TokenKind::kNormal);
  DSPARK_ASSIGN_OR_RETURN(const MetaValue* types,
                          meta.Array("tokenizer.ggml.token_type", MetaValue::Kind::kInt));
  if (types != nullptr) {
    if (types->ints.size() != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: ", types->ints.size(), " token types for ", n, " tokens"));
    }
    for (size_t i = 0; i < n; ++i) {
      int64_t t = types->ints[i];
      spec.kinds[i] = t >= 1 && t <= 6 ? static_cast<TokenKind>(t) : TokenKind::kNormal;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const TokenKind k = spec.kinds[i];
    if (k != TokenKind::kControl && k != TokenKind::kUserDefined && k != TokenKind::kUnknown) {
      continue;
    }
    if (spec.tokens[i].empty()) continue;
    AddedToken a;
    a.id = static_cast<int32_t>(i);
    a.content = spec.tokens[i];
    a.special = k != TokenKind::kUserDefined;
    spec.added_tokens.push_back(std::move(a));
  }

  auto id_key = [&](const char* key) -> int32_t {
    int64_t v = meta.IntOr(key, -1);
    return v >= 0 && v < static_cast<int64_t>(n) ? static_cast<int32_t>(v) : -1;
  };
  spec.bos_id = id_key("tokenizer.ggml.bos_token_id");
  spec.eos_id = id_key("tokenizer.ggml.eos_token_id");
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    int32_t id = id_key(key);
    if (id >= 0) spec.eog_ids.push_back(id);
  }
  spec.unk_id = id_key("tokenizer.ggml.unknown_token_id");
  spec.chat_template = meta.StringOr("tokenizer.chat_template", "");
  spec.byte_decode_added_tokens = false;

  if (model == "gpt2") {
    spec.model = ModelType::kByteLevelBpe;
    DSPARK_ASSIGN_OR_RETURN(const MetaValue* merges,
                            meta.Array("tokenizer.ggml.merges", MetaValue::Kind::kString));
    if (merges == nullptr) return absl::NotFoundError("GGUF: missing tokenizer.ggml.merges");
    spec.merges.reserve(merges->strings.size());
    for (const std::string& m : merges->strings) {
      size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("GGUF: bad merge \"", m, "\""));
      }
      spec.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    const std::string pre = meta.StringOr("tokenizer.ggml.pre", "default");
    auto steps = GgufPreTokenizerSteps(pre);
    if (!steps.ok()) return absl::UnimplementedError(std::string(steps.status().message()));
    spec.split_steps = *std::move(steps);
    spec.ignore_merges = IsLlama3Family(pre);
    if (IsQwen2Family(pre)) {
      // Qwen's tokenizer.json normalizes to NFC first; llama.cpp skips it.
      // Following HF keeps ids identical to what the model was trained on.
      TextOp nfc;
      nfc.type = TextOp::Type::kNormalize;
      nfc.form = NormalizationForm::kNfc;
      spec.text_ops.push_back(nfc);
    }
    spec.add_bos = meta.BoolOr("tokenizer.ggml.add_bos_token", false);
    spec.add_eos = meta.BoolOr("tokenizer.ggml.add_eos_token", false);
  } else if (model == "llama") {
    spec.model = ModelType::kCharBpe;
    DSPARK_ASSIGN_OR_RETURN(const MetaValue* scores,
                            meta.Array("tokenizer.ggml.scores", MetaValue::Kind::kFloat));
    if (scores == nullptr) return absl::NotFoundError("GGUF: missing tokenizer.ggml.scores");
    if (scores->floats.size() != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: ", scores->floats.size(), " scores for ", n, " tokens"));
    }
    spec.scores.assign(scores->floats.begin(), scores->floats.end());
    spec.byte_fallback = true;
    if (spec.unk_id < 0) spec.unk_id = 0;
    // llama.cpp: a space before each text fragment that starts the input or
    // follows a special token, then spaces -> "▁".
    if (meta.BoolOr("tokenizer.ggml.add_space_prefix", true)) {
      TextOp prepend;
      prepend.type = TextOp::Type::kPrepend;
      prepend.a = " ";
      spec.text_ops.push_back(prepend);
      spec.strip_leading_space = true;
    }
    TextOp replace;
    replace.type = TextOp::Type::kReplace;
    replace.a = " ";
    replace.b = std::string(kSpmSpace);
    spec.text_ops.push_back(replace);
    spec.add_bos = meta.BoolOr("tokenizer.ggml.add_bos_token", true);
    spec.add_eos = meta.BoolOr("tokenizer.ggml.add_eos_token", false);
  } else {
    return absl::UnimplementedError(
        absl::StrCat("GGUF: tokenizer model \"", model, "\" is not supported"));
  }
  AddKnownEogIds(&spec);
  return FromSpec(std::move(spec));
}

}  // namespace dspark::tokenizer
