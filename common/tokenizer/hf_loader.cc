// Tokenizer::FromHfJson / FromHfDirectory: Hugging Face tokenizer.json (+
// tokenizer_config.json) -> TokenizerSpec. Supports model type BPE with the
// normalizers, pre-tokenizers, decoders and post-processors that BPE models
// in the wild use; anything else is reported as Unimplemented rather than
// silently tokenized differently. Known simplification: added tokens are
// matched in the raw text whatever their "normalized" flag (HF matches
// normalized=true ones after normalization); the models served here mark
// theirs normalized=false.
#include <sys/stat.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace dspark::tokenizer {
namespace {

using Json = nlohmann::json;

absl::Status Unsupported(std::string_view what, const Json& node) {
  return absl::UnimplementedError(
      absl::StrCat("tokenizer.json: unsupported ", AsAbsl(what), " ", node.dump().substr(0, 200)));
}

// obj[key] without copying, or null.
const Json& Field(const Json& obj, const char* key) {
  static const Json* const kNull = new Json();
  if (!obj.is_object()) return *kNull;
  auto it = obj.find(key);
  return it == obj.end() ? *kNull : *it;
}

std::string TypeOf(const Json& node) {
  return node.is_object() && node.contains("type") && node["type"].is_string()
             ? node["type"].get<std::string>()
             : "";
}

// Token strings in tokenizer_config.json are either "text" or {"content": "text"}.
std::string TokenString(const Json& node) {
  if (node.is_string()) return node.get<std::string>();
  if (node.is_object() && node.contains("content") && node["content"].is_string()) {
    return node["content"].get<std::string>();
  }
  return "";
}

absl::StatusOr<SplitBehavior> ParseBehavior(const Json& node) {
  std::string b = node.is_string() ? node.get<std::string>() : "Isolated";
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return Unsupported("split behavior", node);
}

// A {"String": s} or {"Regex": r} pattern as a PCRE2 pattern.
absl::StatusOr<std::string> ParsePattern(const Json& node) {
  if (node.is_object() && node.contains("Regex")) return node["Regex"].get<std::string>();
  if (node.is_object() && node.contains("String")) {
    return RegexEscape(node["String"].get<std::string>());
  }
  return Unsupported("pattern", node);
}

absl::Status ParseNormalizer(const Json& n, TokenizerSpec* spec) {
  if (n.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(n);
  if (type == "Sequence") {
    for (const Json& child : n.at("normalizers"))
      DSPARK_RETURN_IF_ERROR(ParseNormalizer(child, spec));
    return absl::OkStatus();
  }
  TextOp op;
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    op.type = TextOp::Type::kNormalize;
    op.form = type == "NFC"    ? NormalizationForm::kNfc
              : type == "NFD"  ? NormalizationForm::kNfd
              : type == "NFKC" ? NormalizationForm::kNfkc
                               : NormalizationForm::kNfkd;
  } else if (type == "Prepend") {
    op.type = TextOp::Type::kPrepend;
    op.a = n.at("prepend").get<std::string>();
  } else if (type == "Replace") {
    const Json& pattern = n.at("pattern");
    if (!pattern.is_object() || !pattern.contains("String")) {
      return Unsupported("regex Replace normalizer", n);
    }
    op.type = TextOp::Type::kReplace;
    op.a = pattern["String"].get<std::string>();
    op.b = n.at("content").get<std::string>();
  } else {
    return Unsupported("normalizer", n);
  }
  spec->text_ops.push_back(std::move(op));
  return absl::OkStatus();
}

struct PreTokenizerInfo {
  bool byte_level = false;
};

absl::Status ParsePreTokenizer(const Json& p, TokenizerSpec* spec, PreTokenizerInfo* info) {
  if (p.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(p);
  if (type == "Sequence") {
    for (const Json& child : p.at("pretokenizers")) {
      DSPARK_RETURN_IF_ERROR(ParsePreTokenizer(child, spec, info));
    }
    return absl::OkStatus();
  }
  if (type == "Split") {
    DSPARK_ASSIGN_OR_RETURN(std::string pattern, ParsePattern(p.at("pattern")));
    DSPARK_ASSIGN_OR_RETURN(SplitBehavior behavior,
                            ParseBehavior(p.contains("behavior") ? p["behavior"] : Json()));
    spec->split_steps.push_back({std::move(pattern), behavior, p.value("invert", false)});
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    info->byte_level = true;
    if (p.value("add_prefix_space", false)) {
      TextOp op;
      op.type = TextOp::Type::kPrepend;
      op.a = " ";
      op.only_if_missing = true;
      spec->text_ops.push_back(op);
    }
    if (p.value("use_regex", true)) spec->split_steps.push_back({kGpt2Pattern});
    return absl::OkStatus();
  }
  if (type == "Digits") {
    spec->split_steps.push_back({p.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+"});
    return absl::OkStatus();
  }
  if (type == "Metaspace") {
    std::string rep = p.value("replacement", std::string(kSpmSpace));
    std::string scheme = p.value("prepend_scheme", std::string(""));
    if (scheme.empty()) scheme = p.value("add_prefix_space", true) ? "always" : "never";
    TextOp replace;
    replace.type = TextOp::Type::kReplace;
    replace.a = " ";
    replace.b = rep;
    spec->text_ops.push_back(replace);
    if (scheme != "never") {
      TextOp prepend;
      prepend.type = TextOp::Type::kPrepend;
      prepend.a = rep;
      prepend.only_if_missing = true;
      prepend.first_only = scheme == "first";
      spec->text_ops.push_back(prepend);
    }
    if (p.value("split", true)) {
      spec->split_steps.push_back({RegexEscape(rep), SplitBehavior::kMergedWithNext});
    }
    return absl::OkStatus();
  }
  if (type == "Whitespace") {
    spec->split_steps.push_back({"\\w+|[^\\w\\s]+", SplitBehavior::kRemoved, /*invert=*/true});
    return absl::OkStatus();
  }
  if (type == "WhitespaceSplit") {
    spec->split_steps.push_back({"\\s+", SplitBehavior::kRemoved});
    return absl::OkStatus();
  }
  if (type == "Punctuation") {
    DSPARK_ASSIGN_OR_RETURN(SplitBehavior behavior,
                            ParseBehavior(p.contains("behavior") ? p["behavior"] : Json()));
    spec->split_steps.push_back({"[\\p{P}\\$\\+<=>\\^`\\|~]", behavior});
    return absl::OkStatus();
  }
  return Unsupported("pre_tokenizer", p);
}

// Decoders only matter for the leading-space rule (the piece mapping follows
// from the model type).
void ParseDecoder(const Json& d, TokenizerSpec* spec, bool* byte_level) {
  if (d.is_null()) return;
  const std::string type = TypeOf(d);
  if (type == "Sequence") {
    for (const Json& child : d.value("decoders", Json::array()))
      ParseDecoder(child, spec, byte_level);
  } else if (type == "ByteLevel") {
    *byte_level = true;
  } else if (type == "Strip") {
    if (d.value("content", std::string(" ")) == " " && d.value("start", 0) > 0) {
      spec->strip_leading_space = true;
    }
  } else if (type == "Metaspace") {
    std::string scheme = d.value("prepend_scheme", std::string(""));
    if (scheme.empty()) scheme = d.value("add_prefix_space", true) ? "always" : "never";
    if (scheme != "never") spec->strip_leading_space = true;
  }
}

// TemplateProcessing (possibly inside a Sequence) decides BOS/EOS.
void ParsePostProcessor(const Json& p, const std::function<int32_t(const std::string&)>& id_of,
                        int32_t* bos, int32_t* eos) {
  if (p.is_null()) return;
  const std::string type = TypeOf(p);
  if (type == "Sequence") {
    for (const Json& child : p.value("processors", Json::array())) {
      ParsePostProcessor(child, id_of, bos, eos);
    }
    return;
  }
  if (type != "TemplateProcessing" || !p.contains("single") || !p["single"].is_array()) return;
  const Json& single = p["single"];
  auto special_id = [&](const Json& item) -> int32_t {
    if (!item.is_object() || !item.contains("SpecialToken")) return -1;
    std::string name = item["SpecialToken"].value("id", std::string());
    const Json& specials = p.value("special_tokens", Json::object());
    if (specials.contains(name) && specials[name].contains("ids") &&
        !specials[name]["ids"].empty()) {
      return specials[name]["ids"][0].get<int32_t>();
    }
    return id_of(name);
  };
  if (!single.empty()) {
    *bos = special_id(single.front());
    if (single.size() > 1) *eos = special_id(single.back());
  }
}

absl::StatusOr<TokenizerSpec> SpecFromJson(const Json& tok, const Json& config) {
  TokenizerSpec spec;
  const Json& model = tok.at("model");
  const std::string model_type = TypeOf(model).empty() ? "BPE" : TypeOf(model);
  if (model_type != "BPE") return Unsupported("model type", Json(model_type));
  if (!model.value("continuing_subword_prefix", Json()).is_null() &&
      !model["continuing_subword_prefix"].get<std::string>().empty()) {
    return Unsupported("continuing_subword_prefix", model["continuing_subword_prefix"]);
  }
  if (!model.value("end_of_word_suffix", Json()).is_null() &&
      !model["end_of_word_suffix"].get<std::string>().empty()) {
    return Unsupported("end_of_word_suffix", model["end_of_word_suffix"]);
  }

  // Vocabulary: model.vocab plus added_tokens.
  const Json& vocab = model.at("vocab");
  if (!vocab.is_object())
    return absl::InvalidArgumentError("tokenizer.json: model.vocab is not an object");
  const Json& added = Field(tok, "added_tokens");
  if (!added.is_null() && !added.is_array()) {
    return absl::InvalidArgumentError("tokenizer.json: added_tokens is not an array");
  }
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    max_id = std::max(max_id, it->get<int64_t>());
  for (const Json& a : added) max_id = std::max(max_id, a.at("id").get<int64_t>());
  if (max_id < 0 || max_id >= (int64_t{1} << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: bad vocabulary size ", max_id + 1));
  }
  spec.tokens.resize(max_id + 1);
  spec.kinds.assign(max_id + 1, TokenKind::kUnused);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    int64_t id = it->get<int64_t>();
    if (id < 0) return absl::InvalidArgumentError("tokenizer.json: negative token id");
    spec.tokens[id] = it.key();
    spec.kinds[id] = TokenKind::kNormal;
  }
  for (const Json& a : added) {
    AddedToken t;
    t.id = a.at("id").get<int32_t>();
    t.content = a.at("content").get<std::string>();
    t.special = a.value("special", false);
    t.lstrip = a.value("lstrip", false);
    t.rstrip = a.value("rstrip", false);
    t.single_word = a.value("single_word", false);
    if (t.id < 0) return absl::InvalidArgumentError("tokenizer.json: negative added token id");
    if (spec.tokens[t.id].empty()) spec.tokens[t.id] = t.content;
    spec.kinds[t.id] = t.special ? TokenKind::kControl : TokenKind::kUserDefined;
    spec.added_tokens.push_back(std::move(t));
  }

  const Json& merges = Field(model, "merges");
  if (!merges.is_null() && !merges.is_array()) {
    return absl::InvalidArgumentError("tokenizer.json: model.merges is not an array");
  }
  if (merges.is_array()) spec.merges.reserve(merges.size());
  for (const Json& m : merges) {
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      size_t sp = s.find(' ', 1);
      if (sp == std::string::npos)
        return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: bad merge \"", s, "\""));
      spec.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2) {
      spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return Unsupported("merge", m);
    }
  }
  spec.byte_fallback = model.value("byte_fallback", false);
  spec.fuse_unk = model.value("fuse_unk", false);
  spec.ignore_merges = model.value("ignore_merges", false);

  auto id_of = [&](const std::string& text) -> int32_t {
    if (text.empty()) return -1;
    for (const AddedToken& a : spec.added_tokens) {
      if (a.content == text) return a.id;
    }
    auto it = vocab.find(text);
    return it == vocab.end() ? -1 : it->get<int32_t>();
  };
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    spec.unk_id = id_of(model["unk_token"].get<std::string>());
  }

  DSPARK_RETURN_IF_ERROR(ParseNormalizer(Field(tok, "normalizer"), &spec));
  PreTokenizerInfo info;
  DSPARK_RETURN_IF_ERROR(ParsePreTokenizer(Field(tok, "pre_tokenizer"), &spec, &info));
  bool byte_level_decoder = false;
  ParseDecoder(Field(tok, "decoder"), &spec, &byte_level_decoder);
  spec.model =
      info.byte_level || byte_level_decoder ? ModelType::kByteLevelBpe : ModelType::kCharBpe;
  if (spec.model == ModelType::kByteLevelBpe) spec.strip_leading_space = false;

  int32_t tmpl_bos = -1, tmpl_eos = -1;
  ParsePostProcessor(Field(tok, "post_processor"), id_of, &tmpl_bos, &tmpl_eos);
  spec.add_bos = tmpl_bos >= 0;
  spec.add_eos = tmpl_eos >= 0;
  spec.bos_id = tmpl_bos;
  spec.eos_id = tmpl_eos;
  if (config.is_object()) {
    if (config.contains("bos_token")) {
      int32_t id = id_of(TokenString(config["bos_token"]));
      if (id >= 0) spec.bos_id = id;
    }
    if (config.contains("eos_token")) {
      int32_t id = id_of(TokenString(config["eos_token"]));
      if (id >= 0) spec.eos_id = id;
    }
    if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean()) {
      spec.add_bos = config["add_bos_token"].get<bool>();
    }
    if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean()) {
      spec.add_eos = config["add_eos_token"].get<bool>();
    }
    const Json& ct = Field(config, "chat_template");
    if (ct.is_string()) {
      spec.chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {  // [{"name": ..., "template": ...}]
      for (const Json& t : ct) {
        if (t.value("name", std::string()) == "default" || spec.chat_template.empty()) {
          spec.chat_template = t.value("template", std::string());
        }
      }
    }
  }
  AddKnownEogIds(&spec);
  return spec;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfJson(
    const std::string& tokenizer_json, const std::string& tokenizer_config_json) {
  Json tok = Json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (tok.is_discarded() || !tok.is_object()) {
    return absl::InvalidArgumentError("tokenizer.json is not a JSON object");
  }
  Json config;
  if (!tokenizer_config_json.empty()) {
    config = Json::parse(tokenizer_config_json, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return absl::InvalidArgumentError("tokenizer_config.json is not a JSON object");
    }
  }
  absl::StatusOr<TokenizerSpec> spec;
  try {
    spec = SpecFromJson(tok, config);
  } catch (const Json::exception& e) {
    // nlohmann reports missing keys and wrong types by throwing.
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
  if (!spec.ok()) return spec.status();
  return FromSpec(*std::move(spec));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfDirectory(const std::string& dir) {
  struct stat st;
  const std::string json_path = dir + "/tokenizer.json";
  if (::stat(json_path.c_str(), &st) != 0) {
    const std::string spm_path = dir + "/tokenizer.model";
    if (::stat(spm_path.c_str(), &st) == 0) {
      DSPARK_ASSIGN_OR_RETURN(std::string proto, ReadFileToString(spm_path));
      return FromSentencePieceModel(proto);
    }
    return absl::NotFoundError(
        absl::StrCat(dir, ": neither tokenizer.json nor tokenizer.model found"));
  }
  DSPARK_ASSIGN_OR_RETURN(std::string json, ReadFileToString(json_path));
  std::string config;
  const std::string config_path = dir + "/tokenizer_config.json";
  if (::stat(config_path.c_str(), &st) == 0) {
    DSPARK_ASSIGN_OR_RETURN(config, ReadFileToString(config_path));
  }
  auto tok = FromHfJson(json, config);
  if (!tok.ok()) {
    return absl::Status(tok.status().code(), absl::StrCat(json_path, ": ", tok.status().message()));
  }
  return tok;
}

}  // namespace dspark::tokenizer
