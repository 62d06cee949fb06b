#include "tests/draft_worker/dspark/dspark_test_util.h"

#include <stdlib.h>

#include <cstring>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/engine/tensor/ggml_type.h"
#include "tests/fakes/gguf_writer.h"

namespace dspark::testing {
namespace {

std::string FloatBytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

absl::Status WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

std::string MakeTempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/", prefix, "XXXXXX");
  char* dir = ::mkdtemp(templ.data());
  return dir != nullptr ? std::string(dir) : std::string();
}

std::vector<float> RandomFloats(int64_t n, uint64_t seed, float stddev) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

absl::Status WriteTinyTarget(const std::string& path, const TinyTarget& t, uint64_t seed) {
  using engine::GgmlType;
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddString("general.name", "tiny");
  w.AddInt("llama.block_count", GgufWriter::kUint32, t.layers);
  w.AddInt("llama.embedding_length", GgufWriter::kUint32, t.dim);
  w.AddInt("llama.feed_forward_length", GgufWriter::kUint32, t.ffn);
  w.AddInt("llama.attention.head_count", GgufWriter::kUint32, t.heads);
  w.AddInt("llama.attention.head_count_kv", GgufWriter::kUint32, t.kv_heads);
  w.AddInt("llama.context_length", GgufWriter::kUint32, 512);
  w.AddFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.AddFloat32("llama.rope.freq_base", 10000.0f);
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  for (int i = 0; i < t.vocab; ++i) {
    tokens.push_back(absl::StrCat("t", i));
    types.push_back(i == 5 ? 5 : 1);  // token 5 UNUSED: the mask token make_random_drafter picks
  }
  w.AddStringArray("tokenizer.ggml.tokens", tokens);
  w.AddIntArray("tokenizer.ggml.token_type", GgufWriter::kInt32, types);
  const int64_t hd = t.dim / t.heads;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float stddev) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    w.AddTensor(name, GgmlType::kF32, shape, FloatBytes(RandomFloats(n, seed++, stddev)));
  };
  auto ones = [&](const std::string& name, int64_t n) {
    w.AddTensor(name, GgmlType::kF32, {n}, FloatBytes(std::vector<float>(n, 1.0f)));
  };
  add("token_embd.weight", {t.vocab, t.dim}, 0.5f);
  if (!t.tied) add("output.weight", {t.vocab, t.dim}, 0.5f);
  ones("output_norm.weight", t.dim);
  for (int i = 0; i < t.layers; ++i) {
    const std::string p = absl::StrCat("blk.", i, ".");
    ones(p + "attn_norm.weight", t.dim);
    ones(p + "ffn_norm.weight", t.dim);
    add(p + "attn_q.weight", {t.heads * hd, t.dim}, 0.05f);
    add(p + "attn_k.weight", {t.kv_heads * hd, t.dim}, 0.05f);
    add(p + "attn_v.weight", {t.kv_heads * hd, t.dim}, 0.05f);
    add(p + "attn_output.weight", {t.dim, t.heads * hd}, 0.05f);
    add(p + "ffn_gate.weight", {t.ffn, t.dim}, 0.05f);
    add(p + "ffn_up.weight", {t.ffn, t.dim}, 0.05f);
    add(p + "ffn_down.weight", {t.dim, t.ffn}, 0.05f);
  }
  return w.WriteToFile(path);
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<StTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const StTensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  const uint64_t len = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &len, 8);
  return WriteFile(path, out + h + data);
}

nlohmann::json TinyDrafterConfig(const TinyTarget& t) {
  return {{"architectures", {"DSparkDrafter"}},
          {"model_type", "dspark"},
          {"hidden_size", t.dim},
          {"intermediate_size", 96},
          {"num_hidden_layers", 1},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"head_dim", 16},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},
          {"vocab_size", t.vocab},
          {"block_size", 7},
          {"mask_token_id", 5},
          {"target_layer_ids", {1, 2}},
          {"target_hidden_size", t.dim},
          {"markov_rank", 8},
          {"confidence_head", {{"type", "linear"}, {"input", "hidden+markov"}}},
          {"target_model", "tiny"}};
}

std::vector<StTensor> RandomDrafterTensors(const nlohmann::json& c, uint64_t seed) {
  const int64_t hidden = c["hidden_size"], ffn = c["intermediate_size"], hd = c["head_dim"];
  const int64_t q_dim = c["num_attention_heads"].get<int64_t>() * hd;
  const int64_t kv_dim = c["num_key_value_heads"].get<int64_t>() * hd;
  const int64_t in =
      static_cast<int64_t>(c["target_layer_ids"].size()) * c["target_hidden_size"].get<int64_t>();
  const int64_t r = c["markov_rank"];
  std::vector<StTensor> out;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float stddev) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    out.push_back({name, "F32", shape, FloatBytes(RandomFloats(n, seed++, stddev))});
  };
  // Norm weights near 1 but not exactly, so a mixed-up norm shows.
  auto norm = [&](const std::string& name, int64_t n) {
    std::vector<float> v = RandomFloats(n, seed++, 0.1f);
    for (float& x : v) x += 1.0f;
    out.push_back({name, "F32", {n}, FloatBytes(v)});
  };
  add("fc.weight", {hidden, in}, 0.05f);
  norm("hidden_norm.weight", hidden);
  for (int i = 0; i < c["num_hidden_layers"].get<int>(); ++i) {
    const std::string p = absl::StrCat("layers.", i, ".");
    norm(p + "input_layernorm.weight", hidden);
    add(p + "self_attn.q_proj.weight", {q_dim, hidden}, 0.1f);
    add(p + "self_attn.k_proj.weight", {kv_dim, hidden}, 0.1f);
    add(p + "self_attn.v_proj.weight", {kv_dim, hidden}, 0.1f);
    add(p + "self_attn.o_proj.weight", {hidden, q_dim}, 0.1f);
    norm(p + "self_attn.q_norm.weight", hd);
    norm(p + "self_attn.k_norm.weight", hd);
    norm(p + "post_attention_layernorm.weight", hidden);
    add(p + "mlp.gate_proj.weight", {ffn, hidden}, 0.1f);
    add(p + "mlp.up_proj.weight", {ffn, hidden}, 0.1f);
    add(p + "mlp.down_proj.weight", {hidden, ffn}, 0.1f);
  }
  norm("norm.weight", hidden);
  if (r > 0) {
    add("markov.a.weight", {r, hidden}, 0.2f);
    add("markov.b.weight", {hidden, r}, 0.3f);
  }
  add("confidence.weight", {1, hidden}, 0.1f);
  add("confidence.bias", {1}, 0.1f);
  if (c.contains("draft_vocab_size")) {
    const int64_t n = c["draft_vocab_size"];
    std::string bytes(n * 8, '\0');
    for (int64_t i = 0; i < n; ++i) {
      const int64_t offset = 2 * i;  // target id 3 * i, stored EAGLE-3 style
      std::memcpy(&bytes[i * 8], &offset, 8);
    }
    out.push_back({"d2t", "I64", {n}, bytes});
  }
  return out;
}

absl::Status WriteDrafter(const std::string& dir, const nlohmann::json& config,
                          const std::vector<StTensor>& tensors) {
  if (absl::Status st = WriteFile(dir + "/config.json", config.dump(2)); !st.ok()) return st;
  return WriteSafetensors(dir + "/model.safetensors", tensors);
}

}  // namespace dspark::testing
