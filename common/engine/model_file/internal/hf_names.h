// Hugging Face -> GGUF tensor names for the architectures dspark runs
// (llama, mistral, qwen2, qwen3, gemma2, gemma3). Pure functions: thread-safe.
//
//   HfToGgufTensorName("llama", "model.layers.3.mlp.up_proj.weight")
//       == "blk.3.ffn_up.weight"
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace dspark::engine::internal {

// `arch` is the general.architecture value (the mapping of
// post_attention_layernorm differs for the Gemma family). Names with no GGUF
// counterpart are returned unchanged. Multimodal prefixes
// ("language_model.model.", "model.language_model.") are accepted too.
std::string HfToGgufTensorName(absl::string_view arch, absl::string_view hf_name);

}  // namespace dspark::engine::internal
