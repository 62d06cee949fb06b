#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/engine/model_file/internal/hf_config_keys.h"
#include "common/engine/model_file/internal/hf_names.h"
#include "common/engine/model_file/internal/safetensors.h"
#include "common/engine/model_file/model_file.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace dspark::engine {
namespace {

using internal::HfToGgufTensorName;
using internal::ParseSafetensors;
using nlohmann::json;

class TempDir {
 public:
  TempDir() {
    const char* root = std::getenv("TEST_TMPDIR");
    std::string tmpl = absl::StrCat(root != nullptr ? root : "/tmp", "/dspark_hf_XXXXXX");
    path_ = mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;
  std::string data;
};

std::string Bytes(size_t n, uint8_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 5);
  return s;
}

size_t DtypeBytes(const std::string& dtype) { return dtype == "F32" ? 4 : 2; }

StTensor T(std::string name, std::string dtype, std::vector<int64_t> shape, uint8_t seed = 1) {
  size_t n = DtypeBytes(dtype);
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return {std::move(name), std::move(dtype), std::move(shape), Bytes(n, seed)};
}

// A safetensors image as the reference writer lays it out (header padded
// with spaces to a multiple of 8).
std::string Safetensors(const std::vector<StTensor>& tensors, json metadata = nullptr) {
  json header = json::object();
  std::string data;
  for (const StTensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.data.size()}}};
    data += t.data;
  }
  if (!metadata.is_null()) header["__metadata__"] = metadata;
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');
  const uint64_t len = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &len, 8);
  return out + h + data;
}

// A raw header (any JSON text) followed by `data`.
std::string RawSafetensors(const std::string& header, const std::string& data = "") {
  const uint64_t len = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &len, 8);
  return out + header + data;
}

absl::Status ParseSt(const std::string& bytes, size_t len = std::string::npos) {
  return ParseSafetensors("mem.safetensors", reinterpret_cast<const uint8_t*>(bytes.data()),
                          std::min(len, bytes.size()))
      .status();
}

void ExpectError(const absl::Status& s, absl::StatusCode code, const std::string& path,
                 const std::string& needle) {
  ASSERT_FALSE(s.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), path + ": ")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), needle)) << s;
}

std::vector<StTensor> LlamaLayer0() {
  return {T("model.layers.0.self_attn.q_proj.weight", "BF16", {8, 8}, 2),
          T("model.layers.0.self_attn.q_proj.bias", "BF16", {8}, 3),
          T("model.layers.0.self_attn.k_proj.weight", "BF16", {4, 8}, 4),
          T("model.layers.0.self_attn.v_proj.weight", "BF16", {4, 8}, 5),
          T("model.layers.0.self_attn.o_proj.weight", "BF16", {8, 8}, 6),
          T("model.layers.0.input_layernorm.weight", "F32", {8}, 7),
          T("model.layers.0.post_attention_layernorm.weight", "F32", {8}, 8),
          T("model.layers.0.mlp.gate_proj.weight", "F16", {16, 8}, 9),
          T("model.layers.0.mlp.up_proj.weight", "F16", {16, 8}, 10),
          T("model.layers.0.mlp.down_proj.weight", "F16", {8, 16}, 11)};
}

const char kLlamaConfig[] = R"({
  "model_type": "llama", "num_hidden_layers": 1, "max_position_embeddings": 2048,
  "hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2,
  "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "rope_theta": 500000,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
  "vocab_size": 4, "tie_word_embeddings": false, "bos_token_id": 1,
  "eos_token_id": [2, 3], "sliding_window": null})";

TEST(HfDirectoryTest, SingleFileLlama) {
  TempDir dir;
  WriteFile(dir.path() + "/config.json", kLlamaConfig);
  std::vector<StTensor> tensors = LlamaLayer0();
  tensors.push_back(T("model.embed_tokens.weight", "F32", {4, 8}, 20));  // [vocab, hidden]
  tensors.push_back(T("model.norm.weight", "F32", {8}, 21));
  tensors.push_back(T("lm_head.weight", "BF16", {4, 8}, 22));
  tensors.push_back(T("model.rotary_emb.extra", "F32", {2}, 23));
  WriteFile(dir.path() + "/model.safetensors", Safetensors(tensors, {{"format", "pt"}}));

  auto file = OpenModelFile(dir.path());
  ASSERT_TRUE(file.ok()) << file.status();
  const ModelFile& f = **file;
  EXPECT_EQ(f.format(), "hf");
  EXPECT_EQ(f.path(), dir.path());
  EXPECT_EQ(f.tensors().size(), tensors.size());
  const std::map<std::string, std::string> expect_names = {
      {"model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight"},
      {"model.layers.0.self_attn.q_proj.bias", "blk.0.attn_q.bias"},
      {"model.layers.0.self_attn.k_proj.weight", "blk.0.attn_k.weight"},
      {"model.layers.0.self_attn.v_proj.weight", "blk.0.attn_v.weight"},
      {"model.layers.0.self_attn.o_proj.weight", "blk.0.attn_output.weight"},
      {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
      {"model.layers.0.post_attention_layernorm.weight", "blk.0.ffn_norm.weight"},
      {"model.layers.0.mlp.gate_proj.weight", "blk.0.ffn_gate.weight"},
      {"model.layers.0.mlp.up_proj.weight", "blk.0.ffn_up.weight"},
      {"model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight"},
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
      {"model.rotary_emb.extra", "model.rotary_emb.extra"}};
  for (const StTensor& st : tensors) {
    SCOPED_TRACE(st.name);
    const TensorView* t = f.FindTensor(expect_names.at(st.name));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->shape, st.shape);
    EXPECT_EQ(t->type, st.dtype == "F32"   ? GgmlType::kF32
                       : st.dtype == "F16" ? GgmlType::kF16
                                           : GgmlType::kBF16);
    EXPECT_EQ(t->nbytes, static_cast<int64_t>(st.data.size()));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(t->data), st.data.size()), st.data);
  }

  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetInt("llama.block_count"), 1);
  EXPECT_EQ(*f.GetInt("llama.context_length"), 2048);
  EXPECT_EQ(*f.GetInt("llama.embedding_length"), 8);
  EXPECT_EQ(*f.GetInt("llama.feed_forward_length"), 16);
  EXPECT_EQ(*f.GetInt("llama.attention.head_count"), 2);
  EXPECT_EQ(*f.GetInt("llama.attention.head_count_kv"), 1);
  EXPECT_EQ(*f.GetInt("llama.attention.key_length"), 4);  // hidden / heads
  EXPECT_EQ(*f.GetInt("llama.attention.value_length"), 4);
  EXPECT_DOUBLE_EQ(*f.GetFloat("llama.attention.layer_norm_rms_epsilon"), 1e-5);
  EXPECT_EQ(f.FindMeta("llama.rope.freq_base")->kind, MetaValue::Kind::kFloat);
  EXPECT_DOUBLE_EQ(*f.GetFloat("llama.rope.freq_base"), 500000);
  EXPECT_EQ(*f.GetString("llama.rope.scaling.type"), "llama3");
  EXPECT_DOUBLE_EQ(*f.GetFloat("llama.rope.scaling.factor"), 8.0);
  EXPECT_DOUBLE_EQ(*f.GetFloat("llama.rope.scaling.low_freq_factor"), 1.0);
  EXPECT_DOUBLE_EQ(*f.GetFloat("llama.rope.scaling.high_freq_factor"), 4.0);
  EXPECT_EQ(*f.GetInt("llama.rope.scaling.original_context_length"), 8192);
  EXPECT_EQ(*f.GetInt("llama.vocab_size"), 4);
  EXPECT_FALSE(f.GetBoolOr("llama.tie_word_embeddings", true));
  EXPECT_EQ(f.FindMeta("llama.attention.sliding_window"), nullptr);
  EXPECT_EQ(*f.GetInt("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(*f.GetInt("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(f.FindMeta("dspark.eos_token_ids")->ints, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(f.GetBoolOr("dspark.rope_neox", false));
  EXPECT_EQ(f.FindMeta("dspark.rms_norm_weight_offset"), nullptr);
  EXPECT_EQ(*f.GetString("dspark.hf_config"), kLlamaConfig);
}

TEST(HfDirectoryTest, Qwen3TiedHeadAndQkNorm) {
  TempDir dir;
  WriteFile(dir.path() + "/config.json", R"({"model_type": "qwen3", "hidden_size": 8,
      "num_attention_heads": 2, "head_dim": 16, "tie_word_embeddings": true,
      "sliding_window": 4096, "use_sliding_window": false, "eos_token_id": 7,
      "layer_types": ["full_attention"]})");
  WriteFile(dir.path() + "/model.safetensors",
            Safetensors({T("model.embed_tokens.weight", "BF16", {4, 8}),
                         T("model.layers.0.self_attn.q_norm.weight", "BF16", {16}),
                         T("model.layers.0.self_attn.k_norm.weight", "BF16", {16})}));
  auto file = OpenHfDirectory(dir.path());
  ASSERT_TRUE(file.ok()) << file.status();
  const ModelFile& f = **file;
  EXPECT_NE(f.FindTensor("blk.0.attn_q_norm.weight"), nullptr);
  EXPECT_NE(f.FindTensor("blk.0.attn_k_norm.weight"), nullptr);
  EXPECT_EQ(f.FindTensor("output.weight"), nullptr);  // the model code ties it
  EXPECT_TRUE(f.GetBoolOr("qwen3.tie_word_embeddings", false));
  EXPECT_EQ(*f.GetInt("qwen3.attention.key_length"), 16);
  EXPECT_EQ(*f.GetInt("qwen3.attention.head_count_kv"), 2);          // defaults to head_count
  EXPECT_EQ(f.FindMeta("qwen3.attention.sliding_window"), nullptr);  // use_sliding_window off
  EXPECT_EQ(f.FindMeta("qwen3.attention.sliding_window_layers")->ints, (std::vector<int64_t>{0}));
  EXPECT_EQ(*f.GetInt("tokenizer.ggml.eos_token_id"), 7);
}

TEST(HfDirectoryTest, GemmaNormsAndConfig) {
  TempDir dir;
  WriteFile(dir.path() + "/config.json", R"({"model_type": "gemma3_text", "hidden_size": 8,
      "num_attention_heads": 1, "head_dim": 8, "sliding_window": 512,
      "sliding_window_pattern": 6, "rope_local_base_freq": 10000.0, "rope_theta": 1000000.0,
      "query_pre_attn_scalar": 256, "final_logit_softcapping": null,
      "attn_logit_softcapping": null, "rope_scaling": null,
      "layer_types": ["sliding_attention", "full_attention"]})");
  WriteFile(dir.path() + "/model.safetensors",
            Safetensors({T("model.layers.1.post_attention_layernorm.weight", "F32", {8}),
                         T("model.layers.1.pre_feedforward_layernorm.weight", "F32", {8}),
                         T("model.layers.1.post_feedforward_layernorm.weight", "F32", {8}),
                         T("model.layers.1.input_layernorm.weight", "F32", {8})}));
  auto file = OpenHfDirectory(dir.path());
  ASSERT_TRUE(file.ok()) << file.status();
  const ModelFile& f = **file;
  EXPECT_EQ(*f.GetString("general.architecture"), "gemma3");
  EXPECT_NE(f.FindTensor("blk.1.post_attention_norm.weight"), nullptr);
  EXPECT_NE(f.FindTensor("blk.1.ffn_norm.weight"), nullptr);
  EXPECT_NE(f.FindTensor("blk.1.post_ffw_norm.weight"), nullptr);
  EXPECT_NE(f.FindTensor("blk.1.attn_norm.weight"), nullptr);
  EXPECT_EQ(*f.GetInt("gemma3.attention.sliding_window"), 512);
  EXPECT_EQ(*f.GetInt("gemma3.sliding_window_pattern"), 6);
  EXPECT_EQ(f.FindMeta("gemma3.attention.sliding_window_layers")->ints,
            (std::vector<int64_t>{1, 0}));
  EXPECT_DOUBLE_EQ(*f.GetFloat("gemma3.rope_local_base_freq"), 10000.0);
  EXPECT_DOUBLE_EQ(*f.GetFloat("gemma3.query_pre_attn_scalar"), 256.0);
  EXPECT_EQ(f.FindMeta("gemma3.final_logit_softcapping"), nullptr);
  EXPECT_EQ(f.FindMeta("gemma3.rope.scaling.type"), nullptr);
  EXPECT_DOUBLE_EQ(*f.GetFloat("dspark.rms_norm_weight_offset"), 1.0);
}

TEST(HfConfigKeysTest, Gemma2SoftcapsAndMultimodalTextConfig) {
  auto m = internal::HfConfigToMetadata("c.json", R"({"model_type": "gemma2",
      "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0, "sliding_window": 4096})");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->at("general.architecture").s, "gemma2");
  EXPECT_DOUBLE_EQ(m->at("gemma2.final_logit_softcapping").f, 30.0);
  EXPECT_DOUBLE_EQ(m->at("gemma2.attn_logit_softcapping").f, 50.0);
  EXPECT_EQ(m->at("gemma2.attention.sliding_window").i, 4096);

  auto mm = internal::HfConfigToMetadata("c.json", R"({"model_type": "gemma3",
      "text_config": {"model_type": "gemma3_text", "num_hidden_layers": 34,
                      "rope_scaling": {"type": "linear", "factor": 8.0}}})");
  ASSERT_TRUE(mm.ok()) << mm.status();
  EXPECT_EQ(mm->at("general.architecture").s, "gemma3");
  EXPECT_EQ(mm->at("gemma3.block_count").i, 34);
  EXPECT_EQ(mm->at("gemma3.rope.scaling.type").s, "linear");
}

TEST(HfConfigKeysTest, Errors) {
  ExpectError(internal::HfConfigToMetadata("c.json", "{not json").status(),
              absl::StatusCode::kInvalidArgument, "c.json", "not valid JSON");
  ExpectError(internal::HfConfigToMetadata("c.json", "[1]").status(),
              absl::StatusCode::kInvalidArgument, "c.json", "not a JSON object");
  ExpectError(internal::HfConfigToMetadata("c.json", "{}").status(),
              absl::StatusCode::kInvalidArgument, "c.json", "model_type");
  ExpectError(internal::HfConfigToMetadata(
                  "c.json", R"({"model_type": "llama", "num_hidden_layers": "thirty"})")
                  .status(),
              absl::StatusCode::kInvalidArgument, "c.json", "'num_hidden_layers'");
  ExpectError(
      internal::HfConfigToMetadata("c.json", R"({"model_type": "llama", "hidden_size": 1.5})")
          .status(),
      absl::StatusCode::kInvalidArgument, "c.json", "'hidden_size' should be an integer");
  ExpectError(internal::HfConfigToMetadata("c.json",
                                           R"({"model_type": "qwen3", "layer_types": ["chunked"]})")
                  .status(),
              absl::StatusCode::kInvalidArgument, "c.json", "'layer_types'");
  const std::string deep = R"({"model_type": "llama", "x": )" + std::string(100000, '[') +
                           std::string(100000, ']') + "}";
  ExpectError(internal::HfConfigToMetadata("c.json", deep).status(),
              absl::StatusCode::kInvalidArgument, "c.json", "nests deeper than 64 levels");
}

TEST(HfNamesTest, MapsKnownNamesAndKeepsOthers) {
  EXPECT_EQ(HfToGgufTensorName("llama", "model.layers.12.mlp.down_proj.weight"),
            "blk.12.ffn_down.weight");
  EXPECT_EQ(HfToGgufTensorName("qwen2", "model.layers.0.self_attn.v_proj.bias"),
            "blk.0.attn_v.bias");
  EXPECT_EQ(HfToGgufTensorName("gemma2", "model.layers.3.post_attention_layernorm.weight"),
            "blk.3.post_attention_norm.weight");
  EXPECT_EQ(HfToGgufTensorName("mistral", "model.layers.3.post_attention_layernorm.weight"),
            "blk.3.ffn_norm.weight");
  EXPECT_EQ(HfToGgufTensorName("gemma3", "language_model.model.layers.2.mlp.up_proj.weight"),
            "blk.2.ffn_up.weight");
  EXPECT_EQ(HfToGgufTensorName("gemma3", "model.language_model.embed_tokens.weight"),
            "token_embd.weight");
  EXPECT_EQ(HfToGgufTensorName("llama", "model.layers.007.mlp.up_proj.weight"),
            "blk.7.ffn_up.weight");
  for (const char* keep : {"model.layers.x.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.scales",
                           "model.layers.1.mlp.experts.0.weight", "model.layers.1", "model.layers.",
                           "vision.w", "model.layers.1.mlp.up_proj", ""}) {
    EXPECT_EQ(HfToGgufTensorName("llama", keep), keep);
  }
}

// Writes a two-shard model and returns its directory's weight_map.
json WriteShards(const std::string& dir) {
  WriteFile(dir + "/config.json", R"({"model_type": "mistral"})");
  WriteFile(dir + "/model-00001-of-00002.safetensors",
            Safetensors({T("model.embed_tokens.weight", "F32", {4, 8}),
                         T("model.layers.0.input_layernorm.weight", "F32", {8})}));
  WriteFile(dir + "/model-00002-of-00002.safetensors",
            Safetensors({T("model.norm.weight", "F32", {8}), T("lm_head.weight", "F16", {4, 8})}));
  return {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
          {"model.layers.0.input_layernorm.weight", "model-00001-of-00002.safetensors"},
          {"model.norm.weight", "model-00002-of-00002.safetensors"},
          {"lm_head.weight", "model-00002-of-00002.safetensors"}};
}

void WriteIndex(const std::string& dir, const json& weight_map) {
  WriteFile(dir + "/model.safetensors.index.json",
            json{{"metadata", {{"total_size", 1}}}, {"weight_map", weight_map}}.dump());
}

TEST(HfDirectoryTest, Sharded) {
  TempDir dir;
  WriteIndex(dir.path(), WriteShards(dir.path()));
  auto file = OpenHfDirectory(dir.path());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().size(), 4u);
  EXPECT_EQ(*(*file)->GetString("general.architecture"), "mistral");
  for (const char* name :
       {"token_embd.weight", "blk.0.attn_norm.weight", "output_norm.weight", "output.weight"}) {
    EXPECT_NE((*file)->FindTensor(name), nullptr) << name;
  }
}

TEST(HfDirectoryTest, ShardErrors) {
  {
    TempDir dir;
    json map = WriteShards(dir.path());
    map["model.norm.weight"] = "model-00003-of-00003.safetensors";
    WriteIndex(dir.path(), map);
    ExpectError(OpenHfDirectory(dir.path()).status(), absl::StatusCode::kNotFound, dir.path(),
                "shard 'model-00003-of-00003.safetensors' named by");
  }
  {
    TempDir dir;
    json map = WriteShards(dir.path());
    WriteFile(dir.path() + "/model-00002-of-00002.safetensors",
              Safetensors({T("model.norm.weight", "F32", {8}), T("lm_head.weight", "F16", {4, 8}),
                           T("model.embed_tokens.weight", "F32", {4, 8})}));
    WriteIndex(dir.path(), map);
    ExpectError(OpenHfDirectory(dir.path()).status(), absl::StatusCode::kInvalidArgument,
                dir.path(), "'model.embed_tokens.weight' appears in both");
  }
  {
    TempDir dir;
    json map = WriteShards(dir.path());
    map["lm_head.weight"] = "model-00001-of-00002.safetensors";
    WriteIndex(dir.path(), map);
    ExpectError(OpenHfDirectory(dir.path()).status(), absl::StatusCode::kInvalidArgument,
                dir.path(), "puts 'lm_head.weight' in 'model-00001-of-00002.safetensors'");
  }
  {
    TempDir dir;
    json map = WriteShards(dir.path());
    map["x"] = "../model-00001-of-00002.safetensors";
    WriteIndex(dir.path(), map);
    ExpectError(OpenHfDirectory(dir.path()).status(), absl::StatusCode::kInvalidArgument,
                dir.path() + "/model.safetensors.index.json", "bad shard");
  }
  {
    TempDir dir;
    WriteShards(dir.path());
    WriteFile(dir.path() + "/model.safetensors.index.json", "{\"weight_map\": {");
    ExpectError(OpenHfDirectory(dir.path()).status(), absl::StatusCode::kInvalidArgument,
                dir.path() + "/model.safetensors.index.json", "not a valid JSON object");
  }
}

TEST(HfDirectoryTest, DirectoryErrors) {
  TempDir dir;
  ExpectError(OpenHfDirectory(dir.path()).status(), absl::StatusCode::kNotFound, dir.path(),
              "no config.json");
  WriteFile(dir.path() + "/config.json", "{\"model_type\": ");
  ExpectError(OpenHfDirectory(dir.path()).status(), absl::StatusCode::kInvalidArgument,
              dir.path() + "/config.json", "not valid JSON");
  WriteFile(dir.path() + "/config.json", R"({"model_type": "llama"})");
  ExpectError(OpenHfDirectory(dir.path()).status(), absl::StatusCode::kNotFound, dir.path(),
              "neither model.safetensors nor");
  WriteFile(dir.path() + "/model.safetensors",
            Safetensors({T("model.embed_tokens.weight", "F32", {4, 8}),
                         T("token_embd.weight", "F32", {4, 8})}));
  ExpectError(OpenHfDirectory(dir.path()).status(), absl::StatusCode::kInvalidArgument, dir.path(),
              "both map to 'token_embd.weight'");
  WriteFile(dir.path() + "/model.safetensors", RawSafetensors("{"));
  ExpectError(OpenHfDirectory(dir.path()).status(), absl::StatusCode::kInvalidArgument,
              dir.path() + "/model.safetensors", "not valid JSON");
}

TEST(SafetensorsTest, ParsesAllDtypesAndMetadata) {
  const std::string bytes = Safetensors(
      {T("a", "F32", {2, 3}, 1), T("b", "F16", {5}, 2), T("c", "BF16", {}, 3)}, {{"format", "pt"}});
  auto st = ParseSafetensors("mem.safetensors", reinterpret_cast<const uint8_t*>(bytes.data()),
                             bytes.size());
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_EQ(st->tensors.size(), 3u);
  EXPECT_EQ(st->metadata.at("format"), "pt");
  EXPECT_EQ(st->data_offset % 8, 0u);
  EXPECT_EQ(st->tensors[0].name, "a");
  EXPECT_EQ(st->tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(st->tensors[0].nbytes, 24);
  EXPECT_EQ(st->tensors[0].data, reinterpret_cast<const uint8_t*>(bytes.data()) + st->data_offset);
  EXPECT_EQ(st->tensors[1].type, GgmlType::kF16);
  EXPECT_EQ(st->tensors[2].type, GgmlType::kBF16);
  EXPECT_TRUE(st->tensors[2].shape.empty());  // a scalar
  EXPECT_EQ(st->tensors[2].nbytes, 2);
}

TEST(SafetensorsTest, TruncatedAtEveryByteFailsCleanly) {
  const std::string bytes = Safetensors({T("a", "F32", {2, 3}), T("b", "BF16", {4})});
  ASSERT_TRUE(ParseSt(bytes).ok());
  for (size_t len = 0; len < bytes.size(); ++len) {
    const absl::Status s = ParseSt(bytes, len);
    ASSERT_FALSE(s.ok()) << len;
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << len << ": " << s;
    EXPECT_TRUE(absl::StartsWith(s.message(), "mem.safetensors: ")) << s;
  }
}

TEST(SafetensorsTest, MalformedHeaders) {
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  const std::string p = "mem.safetensors";
  std::string huge(8, '\0');
  const uint64_t len = uint64_t{1} << 40;
  std::memcpy(huge.data(), &len, 8);
  ExpectError(ParseSt(huge), kInvalid, p, "exceeds the limit");
  ExpectError(ParseSt(RawSafetensors("[]")), kInvalid, p, "not a JSON object");
  ExpectError(ParseSt(RawSafetensors("{\"a\": 1}")), kInvalid, p, "tensor 'a': entry is not");
  const std::string d24(24, 'x');
  ExpectError(ParseSt(RawSafetensors(
                  R"({"a": {"dtype": "I64", "shape": [3], "data_offsets": [0, 24]}})", d24)),
              kInvalid, p, "tensor 'a': dtype I64 is not supported");
  ExpectError(ParseSt(RawSafetensors(
                  R"({"a": {"dtype": "F32", "shape": [5], "data_offsets": [0, 24]}})", d24)),
              kInvalid, p, "hold 24 bytes but shape and dtype need 20");
  ExpectError(ParseSt(RawSafetensors(
                  R"({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}})", d24)),
              absl::StatusCode::kDataLoss, p, "tensor 'a': data_offsets [0, 32) run past");
  ExpectError(ParseSt(RawSafetensors(
                  R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", d24)),
              kInvalid, p, "reversed");
  ExpectError(ParseSt(RawSafetensors(
                  R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", d24)),
              kInvalid, p, "bad dimension -1");
  ExpectError(
      ParseSt(RawSafetensors(
          R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}})",
          d24)),
      kInvalid, p, "element count overflows");
  ExpectError(ParseSt(RawSafetensors(R"({"a": {"dtype": "F32", "shape": [1]}})", d24)), kInvalid, p,
              "data_offsets");
  ExpectError(ParseSt(RawSafetensors(
                  R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                      "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                  d24)),
              kInvalid, p, "duplicate");
  ExpectError(ParseSt(RawSafetensors(R"({"__metadata__": {"k": 1}})")), kInvalid, p,
              "__metadata__ value for 'k'");
  const std::string deep = "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  ExpectError(ParseSt(RawSafetensors(deep)), kInvalid, p, "nests deeper than 8 levels");
}

}  // namespace
}  // namespace dspark::engine
