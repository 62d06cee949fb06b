#include "common/engine/model_file/internal/hf_names.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dspark::engine::internal {
namespace {

bool IsGemma(absl::string_view arch) { return arch == "gemma2" || arch == "gemma3"; }

// Module path inside a decoder layer -> GGUF module name; "" if unknown.
absl::string_view LayerModule(absl::string_view arch, absl::string_view module) {
  static constexpr std::pair<absl::string_view, absl::string_view> kCommon[] = {
      {"self_attn.q_proj", "attn_q"},
      {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"},
      {"self_attn.q_norm", "attn_q_norm"},
      {"self_attn.k_norm", "attn_k_norm"},
      {"input_layernorm", "attn_norm"},
      {"pre_feedforward_layernorm", "ffn_norm"},
      {"post_feedforward_layernorm", "post_ffw_norm"},
      {"mlp.gate_proj", "ffn_gate"},
      {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"},
  };
  if (module == "post_attention_layernorm") {
    // Gemma's sandwich norms: this one normalises the attention output; its
    // pre-FFN norm is pre_feedforward_layernorm.
    return IsGemma(arch) ? "post_attention_norm" : "ffn_norm";
  }
  for (const auto& [hf, gguf] : kCommon) {
    if (module == hf) return gguf;
  }
  return {};
}

// Strips the wrappers multimodal checkpoints put around the language model.
absl::string_view NormalizePrefix(absl::string_view name, std::string* storage) {
  if (absl::StartsWith(name, "language_model.model.")) {
    *storage = absl::StrCat("model.", name.substr(sizeof("language_model.model.") - 1));
    return *storage;
  }
  if (absl::StartsWith(name, "model.language_model.")) {
    *storage = absl::StrCat("model.", name.substr(sizeof("model.language_model.") - 1));
    return *storage;
  }
  if (name == "language_model.lm_head.weight") return "lm_head.weight";
  return name;
}

}  // namespace

std::string HfToGgufTensorName(absl::string_view arch, absl::string_view hf_name) {
  std::string storage;
  const absl::string_view name = NormalizePrefix(hf_name, &storage);
  if (name == "model.embed_tokens.weight") return "token_embd.weight";
  if (name == "model.norm.weight") return "output_norm.weight";
  if (name == "lm_head.weight") return "output.weight";

  constexpr absl::string_view kLayers = "model.layers.";
  if (!absl::StartsWith(name, kLayers)) return std::string(hf_name);
  absl::string_view rest = name.substr(kLayers.size());
  size_t digits = 0;
  while (digits < rest.size() && absl::ascii_isdigit(static_cast<unsigned char>(rest[digits]))) {
    ++digits;
  }
  if (digits == 0 || digits > 6 || digits == rest.size() || rest[digits] != '.') {
    return std::string(hf_name);
  }
  int layer = 0;  // printed back without leading zeros, as GGUF names are
  for (size_t i = 0; i < digits; ++i) layer = layer * 10 + (rest[i] - '0');
  rest = rest.substr(digits + 1);
  const size_t dot = rest.rfind('.');
  if (dot == absl::string_view::npos) return std::string(hf_name);
  const absl::string_view suffix = rest.substr(dot + 1);
  if (suffix != "weight" && suffix != "bias") return std::string(hf_name);
  const absl::string_view module = LayerModule(arch, rest.substr(0, dot));
  if (module.empty()) return std::string(hf_name);
  return absl::StrCat("blk.", layer, ".", module, ".", suffix);
}

}  // namespace dspark::engine::internal
