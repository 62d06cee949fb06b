#include "draft_worker/dspark/dspark_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "common/engine/backend/cpu/matmul.h"
#include "common/engine/model_file/internal/safetensors.h"
#include "nlohmann/json.hpp"

namespace dspark::drafter {
namespace {

using engine::TensorView;
using nlohmann::json;

// Bounds that keep every size product far from overflow; real drafters are
// orders of magnitude inside them.
constexpr int64_t kMaxDim = 1 << 17;
constexpr int64_t kMaxLayers = 256;
constexpr int64_t kMaxVocab = 1 << 24;

absl::Status Invalid(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// Parses JSON, discarded when invalid or nested deeper than `max_depth`
// (copying or printing a value recurses, as safetensors.cc notes).
json ParseBounded(const char* begin, const char* end, int max_depth) {
  int depth_seen = 0;
  auto watch = [&](int depth, json::parse_event_t, json&) {
    depth_seen = std::max(depth_seen, depth);
    return true;
  };
  json root = json::parse(begin, end, watch, /*allow_exceptions=*/false);
  if (depth_seen > max_depth) return json(json::value_t::discarded);
  return root;
}

// config.json field readers: `required` false leaves *out unchanged when absent.
absl::Status GetInt(absl::string_view path, const json& root, const char* key, bool required,
                    int64_t lo, int64_t hi, int64_t* out) {
  auto it = root.find(key);
  if (it == root.end() || it->is_null()) {
    return required ? Invalid(path, absl::StrCat("missing field \"", key, "\"")) : absl::OkStatus();
  }
  if (!it->is_number_integer())
    return Invalid(path, absl::StrCat("\"", key, "\" is not an integer"));
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) {
    return Invalid(path, absl::StrCat("\"", key, "\" = ", v, " is outside [", lo, ", ", hi, "]"));
  }
  *out = v;
  return absl::OkStatus();
}

template <typename T>
absl::Status GetIntAs(absl::string_view path, const json& root, const char* key, bool required,
                      int64_t lo, int64_t hi, T* out) {
  int64_t v = static_cast<int64_t>(*out);
  DSPARK_RETURN_IF_ERROR(GetInt(path, root, key, required, lo, hi, &v));
  *out = static_cast<T>(v);
  return absl::OkStatus();
}

absl::Status GetPositiveFloat(absl::string_view path, const json& root, const char* key,
                              float* out) {
  auto it = root.find(key);
  if (it == root.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return Invalid(path, absl::StrCat("\"", key, "\" is not a number"));
  const double v = it->get<double>();
  if (!(v > 0) || v > 1e30) return Invalid(path, absl::StrCat("\"", key, "\" must be positive"));
  *out = static_cast<float>(v);
  return absl::OkStatus();
}

absl::StatusOr<DsparkConfig> ParseConfigJson(absl::string_view path, absl::string_view text) {
  json root = ParseBounded(text.data(), text.data() + text.size(), 8);
  if (root.is_discarded() || !root.is_object()) return Invalid(path, "not a valid JSON object");
  DsparkConfig c;
  if (auto it = root.find("model_type"); it == root.end() || *it != "dspark") {
    return Invalid(path, "\"model_type\" must be \"dspark\"");
  }
  if (auto it = root.find("architectures"); it != root.end()) {
    if (!it->is_array() || it->size() != 1 || (*it)[0] != "DSparkDrafter") {
      return Invalid(path, "\"architectures\" must be [\"DSparkDrafter\"]");
    }
  }
  DSPARK_RETURN_IF_ERROR(GetIntAs(path, root, "hidden_size", true, 1, kMaxDim, &c.hidden_size));
  DSPARK_RETURN_IF_ERROR(
      GetIntAs(path, root, "intermediate_size", true, 1, kMaxDim, &c.intermediate_size));
  DSPARK_RETURN_IF_ERROR(
      GetIntAs(path, root, "num_hidden_layers", true, 1, kMaxLayers, &c.num_hidden_layers));
  DSPARK_RETURN_IF_ERROR(
      GetIntAs(path, root, "num_attention_heads", true, 1, 1024, &c.num_attention_heads));
  DSPARK_RETURN_IF_ERROR(
      GetIntAs(path, root, "num_key_value_heads", true, 1, 1024, &c.num_key_value_heads));
  c.head_dim = c.hidden_size / c.num_attention_heads;
  // ApplyRope keeps head_dim / 2 frequencies on the stack (at most 512).
  DSPARK_RETURN_IF_ERROR(GetIntAs(path, root, "head_dim", false, 2, 1024, &c.head_dim));
  DSPARK_RETURN_IF_ERROR(GetPositiveFloat(path, root, "rms_norm_eps", &c.rms_norm_eps));
  DSPARK_RETURN_IF_ERROR(GetPositiveFloat(path, root, "rope_theta", &c.rope_theta));
  DSPARK_RETURN_IF_ERROR(GetIntAs(path, root, "vocab_size", true, 1, kMaxVocab, &c.vocab_size));
  DSPARK_RETURN_IF_ERROR(
      GetIntAs(path, root, "block_size", false, 1, kMaxBlockSize, &c.block_size));
  DSPARK_RETURN_IF_ERROR(
      GetIntAs(path, root, "mask_token_id", true, 0, c.vocab_size - 1, &c.mask_token_id));
  DSPARK_RETURN_IF_ERROR(
      GetIntAs(path, root, "target_hidden_size", true, 1, kMaxDim, &c.target_hidden_size));
  DSPARK_RETURN_IF_ERROR(GetIntAs(path, root, "markov_rank", true, 0, kMaxDim, &c.markov_rank));
  DSPARK_RETURN_IF_ERROR(
      GetIntAs(path, root, "draft_vocab_size", false, 1, c.vocab_size, &c.draft_vocab_size));
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return Invalid(
        path, absl::StrCat("num_attention_heads ", c.num_attention_heads,
                           " is not a multiple of num_key_value_heads ", c.num_key_value_heads));
  }
  if (c.head_dim % 2 != 0) return Invalid(path, absl::StrCat("head_dim ", c.head_dim, " is odd"));

  auto layers = root.find("target_layer_ids");
  if (layers == root.end() || !layers->is_array() || layers->empty() || layers->size() > 64) {
    return Invalid(path, "\"target_layer_ids\" must be a list of 1..64 layer indices");
  }
  for (const json& l : *layers) {
    if (!l.is_number_integer() || l.get<int64_t>() < 0 || l.get<int64_t>() >= kMaxLayers * 4) {
      return Invalid(path, absl::StrCat("bad target layer id ", l.dump()));
    }
    c.target_layer_ids.push_back(l.get<int>());
  }
  if (auto it = root.find("confidence_head"); it != root.end() && !it->is_null()) {
    if (!it->is_object() || it->value("type", "") != "linear" ||
        it->value("input", "") != "hidden+markov") {
      return Invalid(path,
                     "only \"confidence_head\": {\"type\": \"linear\", \"input\": "
                     "\"hidden+markov\"} is supported");
    }
  }
  if (auto it = root.find("target_model"); it != root.end() && it->is_string()) {
    c.target_model = it->get<std::string>();
  }
  return c;
}

// d2t is int64 (EAGLE-3 writes it so), which the engine's safetensors parser
// does not take: read it here, then blank its entry out of the header (the
// header is re-serialised without it and padded with spaces to its old
// length, so every other tensor's offsets stay valid) before handing the
// image to ParseSafetensors.
absl::Status ExtractD2t(const std::string& path, int64_t target_vocab, std::string* bytes,
                        std::vector<int32_t>* draft_to_target) {
  if (bytes->size() < 8) return absl::OkStatus();  // ParseSafetensors reports it
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes->data(), 8);
  if (header_len > engine::internal::kMaxSafetensorsHeaderBytes || header_len > bytes->size() - 8) {
    return absl::OkStatus();
  }
  char* header = bytes->data() + 8;
  json root = ParseBounded(header, header + header_len, 8);
  if (root.is_discarded() || !root.is_object()) return absl::OkStatus();
  auto it = root.find("d2t");
  if (it == root.end()) return absl::OkStatus();
  const json& e = *it;
  if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
      !e.contains("data_offsets")) {
    return Invalid(path, "tensor 'd2t' has a malformed header entry");
  }
  const json& dtype = e["dtype"];
  const json& shape = e["shape"];
  const json& offsets = e["data_offsets"];
  const int64_t elem = dtype == "I64" ? 8 : dtype == "I32" ? 4 : 0;
  if (elem == 0) return Invalid(path, "tensor 'd2t' must be I64 or I32");
  if (!shape.is_array() || shape.size() != 1 || !shape[0].is_number_unsigned() ||
      !offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return Invalid(path, "tensor 'd2t' needs a 1-D shape and two data offsets");
  }
  const uint64_t n = shape[0].get<uint64_t>();
  const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
  const uint64_t data_bytes = bytes->size() - 8 - header_len;
  if (n > static_cast<uint64_t>(target_vocab) || begin > end || end > data_bytes ||
      end - begin != n * elem) {
    return Invalid(path, "tensor 'd2t' has a bad shape or data range");
  }
  const char* data = header + header_len + begin;
  draft_to_target->resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    int64_t offset = 0;
    if (elem == 8) {
      std::memcpy(&offset, data + i * 8, 8);
    } else {
      int32_t v32;
      std::memcpy(&v32, data + i * 4, 4);
      offset = v32;
    }
    const int64_t target = static_cast<int64_t>(i) + offset;
    if (offset < -target_vocab || offset > target_vocab || target < 0 || target >= target_vocab) {
      return Invalid(path, absl::StrCat("d2t maps draft id ", i, " outside the target vocabulary"));
    }
    (*draft_to_target)[i] = static_cast<int32_t>(target);
  }
  root.erase("d2t");
  const std::string rewritten = root.dump();
  if (rewritten.size() > header_len) return Invalid(path, "cannot rewrite the header without d2t");
  std::memcpy(header, rewritten.data(), rewritten.size());
  std::memset(header + rewritten.size(), ' ', header_len - rewritten.size());
  return absl::OkStatus();
}

// Looks tensors up by name with the shape the config implies.
class TensorBinder {
 public:
  TensorBinder(std::string path, const std::vector<TensorView>& tensors) : path_(std::move(path)) {
    for (const TensorView& t : tensors) by_name_[t.name] = &t;
  }

  absl::StatusOr<TensorView> Matrix(const std::string& name, std::vector<int64_t> shape) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return Invalid(path_, absl::StrCat("missing tensor ", name));
    const TensorView& t = *it->second;
    if (t.shape != shape) {
      return Invalid(path_,
                     absl::StrCat("tensor ", name, " has shape [", absl::StrJoin(t.shape, ", "),
                                  "], the config implies [", absl::StrJoin(shape, ", "), "]"));
    }
    used_[name] = true;
    return t;
  }

  // A vector (norm weight, bias) de-quantized to f32.
  absl::StatusOr<std::vector<float>> Vector(const std::string& name, std::vector<int64_t> shape) {
    DSPARK_ASSIGN_OR_RETURN(TensorView t, Matrix(name, shape));
    std::vector<float> out(t.numel());
    TensorView row = t;
    row.shape = {t.numel()};  // DequantizeRow reads one row: flatten [1, n] / [n]
    engine::cpu::DequantizeRow(row, 0, out.data());
    return out;
  }

  // Every tensor in the file must be one the config asks for: a stray one
  // means the file and config.json disagree (e.g. a second layer).
  absl::Status CheckAllUsed() const {
    for (const auto& [name, t] : by_name_) {
      if (!used_.count(name)) return Invalid(path_, absl::StrCat("unexpected tensor ", name));
    }
    return absl::OkStatus();
  }

 private:
  std::string path_;
  std::map<std::string, const TensorView*> by_name_;
  std::map<std::string, bool> used_;
};

absl::StatusOr<DsparkWeights> BindWeights(const std::string& path, const DsparkConfig& c,
                                          const std::vector<TensorView>& tensors) {
  TensorBinder b(path, tensors);
  DsparkWeights w;
  const int64_t hidden = c.hidden_size, hd = c.head_dim, ffn = c.intermediate_size;
  const int64_t q_dim = c.num_attention_heads * hd, kv_dim = c.num_key_value_heads * hd;
  const int64_t in = static_cast<int64_t>(c.target_layer_ids.size()) * c.target_hidden_size;
  DSPARK_ASSIGN_OR_RETURN(w.fc, b.Matrix("fc.weight", {hidden, in}));
  DSPARK_ASSIGN_OR_RETURN(w.hidden_norm, b.Vector("hidden_norm.weight", {hidden}));
  w.layers.resize(c.num_hidden_layers);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("layers.", i, ".");
    DsparkLayerWeights& l = w.layers[i];
    DSPARK_ASSIGN_OR_RETURN(l.input_layernorm, b.Vector(p + "input_layernorm.weight", {hidden}));
    DSPARK_ASSIGN_OR_RETURN(l.q_proj, b.Matrix(p + "self_attn.q_proj.weight", {q_dim, hidden}));
    DSPARK_ASSIGN_OR_RETURN(l.k_proj, b.Matrix(p + "self_attn.k_proj.weight", {kv_dim, hidden}));
    DSPARK_ASSIGN_OR_RETURN(l.v_proj, b.Matrix(p + "self_attn.v_proj.weight", {kv_dim, hidden}));
    DSPARK_ASSIGN_OR_RETURN(l.o_proj, b.Matrix(p + "self_attn.o_proj.weight", {hidden, q_dim}));
    DSPARK_ASSIGN_OR_RETURN(l.q_norm, b.Vector(p + "self_attn.q_norm.weight", {hd}));
    DSPARK_ASSIGN_OR_RETURN(l.k_norm, b.Vector(p + "self_attn.k_norm.weight", {hd}));
    DSPARK_ASSIGN_OR_RETURN(l.post_attention_layernorm,
                            b.Vector(p + "post_attention_layernorm.weight", {hidden}));
    DSPARK_ASSIGN_OR_RETURN(l.gate_proj, b.Matrix(p + "mlp.gate_proj.weight", {ffn, hidden}));
    DSPARK_ASSIGN_OR_RETURN(l.up_proj, b.Matrix(p + "mlp.up_proj.weight", {ffn, hidden}));
    DSPARK_ASSIGN_OR_RETURN(l.down_proj, b.Matrix(p + "mlp.down_proj.weight", {hidden, ffn}));
  }
  DSPARK_ASSIGN_OR_RETURN(w.norm, b.Vector("norm.weight", {hidden}));
  if (c.markov_rank > 0) {
    DSPARK_ASSIGN_OR_RETURN(w.markov_a, b.Matrix("markov.a.weight", {c.markov_rank, hidden}));
    DSPARK_ASSIGN_OR_RETURN(w.markov_b, b.Matrix("markov.b.weight", {hidden, c.markov_rank}));
  }
  DSPARK_ASSIGN_OR_RETURN(w.confidence_weight, b.Vector("confidence.weight", {1, hidden}));
  DSPARK_ASSIGN_OR_RETURN(std::vector<float> bias, b.Vector("confidence.bias", {1}));
  w.confidence_bias = bias[0];
  DSPARK_RETURN_IF_ERROR(b.CheckAllUsed());
  return w;
}

}  // namespace

absl::StatusOr<DsparkConfig> ParseDsparkConfig(absl::string_view path, absl::string_view text) {
  // Every JSON access is type-checked first; this only keeps a library
  // exception (e.g. bad_alloc) from escaping the module.
  try {
    return ParseConfigJson(path, text);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<DsparkCheckpoint>> DsparkCheckpoint::Open(const std::string& dir) {
  std::unique_ptr<DsparkCheckpoint> ckpt(new DsparkCheckpoint());
  ckpt->dir_ = dir;
  const std::string config_path = absl::StrCat(dir, "/", kConfigFile);
  DSPARK_ASSIGN_OR_RETURN(std::string text, ReadFileToString(config_path));
  DSPARK_ASSIGN_OR_RETURN(ckpt->config_, ParseDsparkConfig(config_path, text));
  const DsparkConfig& c = ckpt->config_;

  const std::string path = absl::StrCat(dir, "/", kWeightsFile);
  DSPARK_ASSIGN_OR_RETURN(ckpt->bytes_, ReadFileToString(path));
  std::string& bytes = ckpt->bytes_;
  std::vector<int32_t> d2t;
  try {
    DSPARK_RETURN_IF_ERROR(ExtractD2t(path, c.vocab_size, &bytes, &d2t));
  } catch (const std::exception& e) {
    return Invalid(path, absl::StrCat("reading d2t: ", e.what()));
  }
  if (c.draft_vocab_size > 0 && d2t.size() != static_cast<size_t>(c.draft_vocab_size)) {
    return Invalid(path, absl::StrCat("config.json has draft_vocab_size ", c.draft_vocab_size,
                                      " but d2t has ", d2t.size(), " entries"));
  }
  if (c.draft_vocab_size == 0 && !d2t.empty()) {
    return Invalid(path, "has d2t but config.json has no draft_vocab_size");
  }
  if (!d2t.empty()) {
    std::vector<bool> seen(c.vocab_size, false);
    for (int32_t t : d2t) {
      if (seen[t]) return Invalid(path, absl::StrCat("d2t maps two draft ids to target id ", t));
      seen[t] = true;
    }
  }
  DSPARK_ASSIGN_OR_RETURN(engine::internal::SafetensorsContents st,
                          engine::internal::ParseSafetensors(
                              path, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  DSPARK_ASSIGN_OR_RETURN(ckpt->weights_, BindWeights(path, c, st.tensors));
  ckpt->weights_.draft_to_target = std::move(d2t);
  return ckpt;
}

}  // namespace dspark::drafter
