#include "common/engine/model_file/internal/hf_config_keys.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/status_macros.h"
#include "nlohmann/json.hpp"

namespace dspark::engine::internal {
namespace {

using nlohmann::json;

constexpr int kMaxJsonDepth = 64;

MetaValue IntValue(int64_t v) {
  MetaValue m;
  m.kind = MetaValue::Kind::kInt;
  m.i = v;
  return m;
}

MetaValue FloatValue(double v) {
  MetaValue m;
  m.kind = MetaValue::Kind::kFloat;
  m.f = v;
  return m;
}

MetaValue BoolValue(bool v) {
  MetaValue m;
  m.kind = MetaValue::Kind::kBool;
  m.b = v;
  return m;
}

MetaValue StringValue(std::string v) {
  MetaValue m;
  m.kind = MetaValue::Kind::kString;
  m.s = std::move(v);
  return m;
}

MetaValue IntArray(std::vector<int64_t> v) {
  MetaValue m;
  m.kind = MetaValue::Kind::kArray;
  m.elem_kind = MetaValue::Kind::kInt;
  m.ints = std::move(v);
  return m;
}

bool AsInt(const json& j, int64_t* out) {
  if (j.is_number_unsigned()) {
    if (j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return false;
    }
    *out = static_cast<int64_t>(j.get<uint64_t>());
    return true;
  }
  if (j.is_number_integer()) {
    *out = j.get<int64_t>();
    return true;
  }
  if (j.is_number_float()) {  // e.g. 4096.0
    const double d = j.get<double>();
    if (d != std::trunc(d) || !(std::fabs(d) < 9.0e18)) return false;
    *out = static_cast<int64_t>(d);
    return true;
  }
  return false;
}

// Reads config values (null or absent = not there) and writes metadata.
class Translator {
 public:
  Translator(absl::string_view path, const json& cfg, std::map<std::string, MetaValue>& out)
      : path_(path), cfg_(cfg), out_(out) {}

  void set_arch(std::string arch) { arch_ = std::move(arch); }
  std::string ArchKey(absl::string_view suffix) const { return absl::StrCat(arch_, ".", suffix); }

  absl::Status WrongType(absl::string_view key, absl::string_view expected, const json& v) const {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": key '", key, "' should be ", expected, ", got ", v.dump()));
  }

  // Returns the value of `key` in `obj`, or nullptr if absent or null.
  static const json* Find(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }

  absl::Status Int(const json& obj, const char* key, const std::string& meta_key,
                   int64_t* value = nullptr) {
    const json* v = Find(obj, key);
    if (v == nullptr) return absl::OkStatus();
    int64_t i = 0;
    if (!AsInt(*v, &i)) return WrongType(key, "an integer", *v);
    out_[meta_key] = IntValue(i);
    if (value != nullptr) *value = i;
    return absl::OkStatus();
  }

  absl::Status Float(const json& obj, const char* key, const std::string& meta_key) {
    const json* v = Find(obj, key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number()) return WrongType(key, "a number", *v);
    out_[meta_key] = FloatValue(v->get<double>());
    return absl::OkStatus();
  }

  absl::Status Bool(const json& obj, const char* key, const std::string& meta_key) {
    const json* v = Find(obj, key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean()) return WrongType(key, "true or false", *v);
    out_[meta_key] = BoolValue(v->get<bool>());
    return absl::OkStatus();
  }

  absl::Status TokenIds() {
    DSPARK_RETURN_IF_ERROR(Int(cfg_, "bos_token_id", "tokenizer.ggml.bos_token_id"));
    DSPARK_RETURN_IF_ERROR(Int(cfg_, "pad_token_id", "tokenizer.ggml.padding_token_id"));
    const json* eos = Find(cfg_, "eos_token_id");
    if (eos == nullptr) return absl::OkStatus();
    std::vector<int64_t> ids;
    if (eos->is_array()) {
      for (const json& e : *eos) {
        int64_t id = 0;
        if (!AsInt(e, &id))
          return WrongType("eos_token_id", "an integer or list of integers", *eos);
        ids.push_back(id);
      }
    } else {
      int64_t id = 0;
      if (!AsInt(*eos, &id))
        return WrongType("eos_token_id", "an integer or list of integers", *eos);
      ids.push_back(id);
    }
    if (!ids.empty()) out_["tokenizer.ggml.eos_token_id"] = IntValue(ids[0]);
    out_["dspark.eos_token_ids"] = IntArray(std::move(ids));
    return absl::OkStatus();
  }

  absl::Status RopeScaling() {
    const json* rs = Find(cfg_, "rope_scaling");
    if (rs == nullptr) return absl::OkStatus();
    if (!rs->is_object()) return WrongType("rope_scaling", "an object", *rs);
    return RopeScalingFrom(*rs);
  }

  // transformers >= 5 writes "rope_parameters" instead of rope_theta /
  // rope_scaling / rope_local_base_freq: one object {rope_type, rope_theta,
  // factor, ...}, or one per layer type (Gemma 3: "full_attention" for the
  // global layers, "sliding_attention" for the local ones).
  absl::Status RopeParameters() {
    const json* rp = Find(cfg_, "rope_parameters");
    if (rp == nullptr) return absl::OkStatus();
    if (!rp->is_object()) return WrongType("rope_parameters", "an object", *rp);
    const json* full = Find(*rp, "full_attention");
    const json* local = Find(*rp, "sliding_attention");
    if (full != nullptr && !full->is_object()) {
      return WrongType("rope_parameters.full_attention", "an object", *full);
    }
    if (local != nullptr && !local->is_object()) {
      return WrongType("rope_parameters.sliding_attention", "an object", *local);
    }
    const json& global = full != nullptr ? *full : *rp;
    DSPARK_RETURN_IF_ERROR(Float(global, "rope_theta", ArchKey("rope.freq_base")));
    if (local != nullptr) {
      DSPARK_RETURN_IF_ERROR(Float(*local, "rope_theta", ArchKey("rope_local_base_freq")));
    }
    return RopeScalingFrom(global);
  }

  absl::Status RopeScalingFrom(const json& rs) {
    const json* type = Find(rs, "rope_type");
    if (type == nullptr) type = Find(rs, "type");
    if (type != nullptr) {
      if (!type->is_string()) return WrongType("rope_scaling.rope_type", "a string", *type);
      out_[ArchKey("rope.scaling.type")] = StringValue(type->get<std::string>());
    }
    DSPARK_RETURN_IF_ERROR(Float(rs, "factor", ArchKey("rope.scaling.factor")));
    DSPARK_RETURN_IF_ERROR(Int(rs, "original_max_position_embeddings",
                               ArchKey("rope.scaling.original_context_length")));
    DSPARK_RETURN_IF_ERROR(Float(rs, "low_freq_factor", ArchKey("rope.scaling.low_freq_factor")));
    DSPARK_RETURN_IF_ERROR(
        Float(rs, "high_freq_factor", ArchKey("rope.scaling.high_freq_factor")));
    DSPARK_RETURN_IF_ERROR(Float(rs, "attention_factor", ArchKey("rope.scaling.attn_factor")));
    DSPARK_RETURN_IF_ERROR(Float(rs, "beta_fast", ArchKey("rope.scaling.yarn_beta_fast")));
    DSPARK_RETURN_IF_ERROR(Float(rs, "beta_slow", ArchKey("rope.scaling.yarn_beta_slow")));
    return absl::OkStatus();
  }

  absl::Status SlidingWindow() {
    const json* use = Find(cfg_, "use_sliding_window");
    if (use != nullptr && !use->is_boolean()) {
      return WrongType("use_sliding_window", "true or false", *use);
    }
    if (use == nullptr || use->get<bool>()) {
      DSPARK_RETURN_IF_ERROR(Int(cfg_, "sliding_window", ArchKey("attention.sliding_window")));
    }
    DSPARK_RETURN_IF_ERROR(Int(cfg_, "sliding_window_pattern", ArchKey("sliding_window_pattern")));
    const json* types = Find(cfg_, "layer_types");
    if (types == nullptr) return absl::OkStatus();
    if (!types->is_array()) return WrongType("layer_types", "a list", *types);
    std::vector<int64_t> sliding;
    for (const json& t : *types) {
      if (t == "sliding_attention") {
        sliding.push_back(1);
      } else if (t == "full_attention") {
        sliding.push_back(0);
      } else {
        return WrongType("layer_types", "sliding_attention/full_attention entries", t);
      }
    }
    out_[ArchKey("attention.sliding_window_layers")] = IntArray(std::move(sliding));
    return absl::OkStatus();
  }

  absl::Status Run() {
    DSPARK_RETURN_IF_ERROR(Int(cfg_, "num_hidden_layers", ArchKey("block_count")));
    DSPARK_RETURN_IF_ERROR(Int(cfg_, "max_position_embeddings", ArchKey("context_length")));
    int64_t hidden = 0, heads = 0, head_dim = 0;
    DSPARK_RETURN_IF_ERROR(Int(cfg_, "hidden_size", ArchKey("embedding_length"), &hidden));
    DSPARK_RETURN_IF_ERROR(Int(cfg_, "intermediate_size", ArchKey("feed_forward_length")));
    DSPARK_RETURN_IF_ERROR(Int(cfg_, "vocab_size", ArchKey("vocab_size")));
    DSPARK_RETURN_IF_ERROR(
        Int(cfg_, "num_attention_heads", ArchKey("attention.head_count"), &heads));
    const std::string kv_key = ArchKey("attention.head_count_kv");
    DSPARK_RETURN_IF_ERROR(Int(cfg_, "num_key_value_heads", kv_key));
    if (heads > 0 && !out_.contains(kv_key)) out_[kv_key] = IntValue(heads);
    DSPARK_RETURN_IF_ERROR(Int(cfg_, "head_dim", ArchKey("attention.key_length"), &head_dim));
    if (head_dim == 0 && heads > 0 && hidden > 0) head_dim = hidden / heads;
    if (head_dim > 0) {
      out_[ArchKey("attention.key_length")] = IntValue(head_dim);
      out_[ArchKey("attention.value_length")] = IntValue(head_dim);
    }
    DSPARK_RETURN_IF_ERROR(
        Float(cfg_, "rms_norm_eps", ArchKey("attention.layer_norm_rms_epsilon")));
    DSPARK_RETURN_IF_ERROR(Float(cfg_, "rope_theta", ArchKey("rope.freq_base")));
    DSPARK_RETURN_IF_ERROR(Float(cfg_, "rope_local_base_freq", ArchKey("rope_local_base_freq")));
    DSPARK_RETURN_IF_ERROR(RopeScaling());
    DSPARK_RETURN_IF_ERROR(RopeParameters());
    DSPARK_RETURN_IF_ERROR(SlidingWindow());
    DSPARK_RETURN_IF_ERROR(
        Float(cfg_, "final_logit_softcapping", ArchKey("final_logit_softcapping")));
    DSPARK_RETURN_IF_ERROR(
        Float(cfg_, "attn_logit_softcapping", ArchKey("attn_logit_softcapping")));
    DSPARK_RETURN_IF_ERROR(Float(cfg_, "query_pre_attn_scalar", ArchKey("query_pre_attn_scalar")));
    DSPARK_RETURN_IF_ERROR(Bool(cfg_, "tie_word_embeddings", ArchKey("tie_word_embeddings")));
    DSPARK_RETURN_IF_ERROR(TokenIds());
    out_["dspark.rope_neox"] = BoolValue(true);
    if (arch_ == "gemma2" || arch_ == "gemma3") {
      out_["dspark.rms_norm_weight_offset"] = FloatValue(1.0);
    }
    return absl::OkStatus();
  }

 private:
  absl::string_view path_;
  const json& cfg_;
  std::map<std::string, MetaValue>& out_;
  std::string arch_;
};

absl::StatusOr<std::map<std::string, MetaValue>> Translate(absl::string_view path,
                                                           absl::string_view config_json) {
  // Copying or printing a value recurses, so bound the nesting first.
  int max_depth = 0;
  auto watch = [&max_depth](int depth, json::parse_event_t, json&) {
    max_depth = std::max(max_depth, depth);
    return true;
  };
  json cfg = json::parse(config_json.begin(), config_json.end(), watch,
                         /*allow_exceptions=*/false);
  if (cfg.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  }
  if (max_depth > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": nests deeper than ", kMaxJsonDepth, " levels"));
  }
  if (!cfg.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  if (const json* text = Translator::Find(cfg, "text_config"); text != nullptr) {
    if (!text->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": text_config is not an object"));
    }
    json merged = cfg;
    merged.erase("text_config");
    for (const auto& [k, v] : text->items()) merged[k] = v;
    cfg = std::move(merged);
  }
  const json* model_type = Translator::Find(cfg, "model_type");
  if (model_type == nullptr || !model_type->is_string() ||
      model_type->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": missing string key 'model_type'"));
  }
  std::map<std::string, MetaValue> out;
  const std::string arch = ArchitectureForModelType(model_type->get_ref<const std::string&>());
  out["general.architecture"] = StringValue(arch);
  out["dspark.hf_config"] = StringValue(std::string(config_json));
  Translator t(path, cfg, out);
  t.set_arch(arch);
  DSPARK_RETURN_IF_ERROR(t.Run());
  return out;
}

}  // namespace

std::string ArchitectureForModelType(absl::string_view model_type) {
  if (model_type == "gemma3_text") return "gemma3";
  return std::string(model_type);
}

absl::StatusOr<std::map<std::string, MetaValue>> HfConfigToMetadata(absl::string_view path,
                                                                    absl::string_view config_json) {
  try {
    return Translate(path, config_json);
  } catch (const std::exception& e) {  // keeps library exceptions inside the module
    return absl::InternalError(absl::StrCat(path, ": reading config: ", e.what()));
  }
}

}  // namespace dspark::engine::internal
