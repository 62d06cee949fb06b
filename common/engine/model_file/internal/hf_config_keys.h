// Translates a Hugging Face config.json into the GGUF metadata vocabulary, so
// model code reads one set of keys whatever the file format. Pure functions:
// thread-safe.
//
// Keys produced (<arch> is general.architecture; absent/null config values
// produce no key unless a default is listed):
//   general.architecture                  model_type (gemma3_text -> gemma3)
//   <arch>.block_count                    num_hidden_layers
//   <arch>.context_length                 max_position_embeddings
//   <arch>.embedding_length               hidden_size
//   <arch>.feed_forward_length            intermediate_size
//   <arch>.vocab_size                     vocab_size
//   <arch>.attention.head_count           num_attention_heads
//   <arch>.attention.head_count_kv        num_key_value_heads (default head_count)
//   <arch>.attention.key_length           head_dim (default hidden_size / heads)
//   <arch>.attention.value_length         head_dim (same)
//   <arch>.attention.layer_norm_rms_epsilon  rms_norm_eps (float)
//   <arch>.attention.sliding_window       sliding_window (omitted when
//                                         use_sliding_window is false)
//   <arch>.attention.sliding_window_layers  layer_types as ints, 1 = sliding
//   <arch>.sliding_window_pattern         sliding_window_pattern
//   <arch>.rope.freq_base                 rope_theta (float)
//   <arch>.rope_local_base_freq           rope_local_base_freq (float)
//   <arch>.rope.scaling.type              rope_scaling.rope_type or .type
//   <arch>.rope.scaling.factor            rope_scaling.factor (float)
//   <arch>.rope.scaling.original_context_length
//                                         rope_scaling.original_max_position_embeddings
//   <arch>.rope.scaling.low_freq_factor   rope_scaling.low_freq_factor (llama3)
//   <arch>.rope.scaling.high_freq_factor  rope_scaling.high_freq_factor (llama3)
//   <arch>.rope.scaling.attn_factor       rope_scaling.attention_factor (yarn)
//   <arch>.rope.scaling.yarn_beta_fast    rope_scaling.beta_fast (yarn)
//   <arch>.rope.scaling.yarn_beta_slow    rope_scaling.beta_slow (yarn)
//   <arch>.final_logit_softcapping        final_logit_softcapping (float)
//   <arch>.attn_logit_softcapping         attn_logit_softcapping (float)
//   <arch>.query_pre_attn_scalar          query_pre_attn_scalar (float)
//   <arch>.tie_word_embeddings            tie_word_embeddings (bool)
//   tokenizer.ggml.bos_token_id           bos_token_id
//   tokenizer.ggml.eos_token_id           eos_token_id (first one if a list)
//   tokenizer.ggml.padding_token_id       pad_token_id
//   dspark.eos_token_ids                  eos_token_id as an int array
//   dspark.rope_neox                      true: HF q/k weights are not permuted
//                                         for interleaved RoPE as GGUF llama's are
//   dspark.rms_norm_weight_offset         1.0 for gemma2/gemma3: HF stores Gemma
//                                         norm weights as w with y = x*(1+w);
//                                         GGUF files have the 1 already added
//   dspark.hf_config                      the raw config.json text
// A config with a "text_config" object (multimodal wrappers) is read from
// text_config, falling back to the top level.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/engine/model_file/model_file.h"

namespace dspark::engine::internal {

// "gemma3_text" -> "gemma3"; other model types are returned unchanged.
std::string ArchitectureForModelType(absl::string_view model_type);

// `path` names config.json in error messages. InvalidArgument for malformed
// JSON, a missing model_type, or a value of the wrong JSON type.
absl::StatusOr<std::map<std::string, MetaValue>> HfConfigToMetadata(absl::string_view path,
                                                                    absl::string_view config_json);

}  // namespace dspark::engine::internal
