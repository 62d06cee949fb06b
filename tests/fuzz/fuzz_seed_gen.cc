// Writes the fuzzers' seed corpus: small valid GGUF and safetensors files and
// config.json samples, generated at build time so no binaries are committed.
//   fuzz_seed_gen OUT_DIR  ->  OUT_DIR/gguf/*, OUT_DIR/safetensors/*

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/fakes/gguf_writer.h"

namespace {

using dspark::engine::GgmlType;
using dspark::testing::GgufWriter;

bool Write(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return f.good();
}

std::string Safetensors(const nlohmann::json& header, const std::string& data) {
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');
  const uint64_t len = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &len, 8);
  return out + h + data;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seed_gen OUT_DIR\n";
    return 2;
  }
  const std::filesystem::path out = argv[1];
  std::filesystem::create_directories(out / "gguf");
  std::filesystem::create_directories(out / "safetensors");
  bool ok = true;

  GgufWriter full;
  full.AddString("general.architecture", "llama");
  full.AddInt("llama.block_count", GgufWriter::kUint32, 1);
  full.AddInt("i8", GgufWriter::kInt8, -1);
  full.AddInt("u16", GgufWriter::kUint16, 7);
  full.AddInt("i64", GgufWriter::kInt64, -7);
  full.AddUint64("u64", 9);
  full.AddFloat32("llama.rope.freq_base", 10000.0f);
  full.AddFloat64("f64", 0.5);
  full.AddBool("b", true);
  full.AddStringArray("tokenizer.ggml.tokens", {"<s>", "a", "b"});
  full.AddFloat32Array("tokenizer.ggml.scores", {0, -1, -2});
  full.AddIntArray("tokenizer.ggml.token_type", GgufWriter::kInt32, {3, 1, 1});
  full.AddBoolArray("flags", {true, false});
  full.AddTensor("token_embd.weight", GgmlType::kF32, {3, 4}, std::string(48, '\1'));
  full.AddTensor("blk.0.attn_q.weight", GgmlType::kQ8_0, {1, 32}, std::string(34, '\2'));
  full.AddTensor("blk.0.ffn_up.weight", GgmlType::kQ4_K, {1, 256}, std::string(144, '\3'));
  ok &= Write(out / "gguf" / "full.gguf", full.Serialize());

  GgufWriter aligned(/*version=*/2);
  aligned.SetAlignment(8);
  aligned.AddTensor("output_norm.weight", GgmlType::kF16, {4}, std::string(8, '\4'));
  aligned.AddTensor("output.weight", GgmlType::kBF16, {2, 2}, std::string(8, '\5'));
  ok &= Write(out / "gguf" / "aligned_v2.gguf", aligned.Serialize());

  GgufWriter empty;
  empty.AddString("general.architecture", "qwen2");
  ok &= Write(out / "gguf" / "no_tensors.gguf", empty.Serialize());

  using nlohmann::json;
  json header = {{"__metadata__", {{"format", "pt"}}},
                 {"model.embed_tokens.weight",
                  {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 16}}}},
                 {"model.layers.0.self_attn.q_proj.weight",
                  {{"dtype", "BF16"}, {"shape", {2, 2}}, {"data_offsets", {16, 24}}}},
                 {"model.layers.0.post_attention_layernorm.weight",
                  {{"dtype", "F16"}, {"shape", {2}}, {"data_offsets", {24, 28}}}}};
  ok &=
      Write(out / "safetensors" / "model.safetensors", Safetensors(header, std::string(28, '\6')));
  ok &= Write(out / "safetensors" / "config_llama.json",
              R"({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 8,
                  "num_attention_heads": 2, "rope_scaling": {"rope_type": "llama3", "factor": 8.0},
                  "eos_token_id": [1, 2], "tie_word_embeddings": true})");
  ok &= Write(out / "safetensors" / "config_gemma3.json",
              R"({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text",
                  "sliding_window": 512, "layer_types": ["sliding_attention", "full_attention"],
                  "use_sliding_window": true, "final_logit_softcapping": null}})");
  if (!ok) {
    std::cerr << "fuzz_seed_gen: writing under " << out << " failed\n";
    return 1;
  }
  return 0;
}
