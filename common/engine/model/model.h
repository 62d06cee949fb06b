// A transformer target model on the CPU: weights mapped from a ModelFile and
// one ragged batch forward per step that mixes prefill chunks, single decode
// tokens and multi-token verify blocks of different sequences, over a paged
// KvCache. Forward is called by one thread at a time (the step thread); it
// spreads its work over the model's thread pool.
//
//   DSPARK_ASSIGN_OR_RETURN(auto model, Model::Load("/m/smollm2.gguf", {}));
//   auto cache = model->NewKvCache({});
//   SeqId s = cache->CreateSequence();
//   ForwardBatch batch;
//   batch.seqs.push_back({.seq = s, .tokens = {1, 2, 3}, .logit_rows = {2}});
//   ForwardOutput out;
//   DSPARK_RETURN_IF_ERROR(model->Forward(batch, cache.get(), &out));
//   // out.logits: [1, vocab]
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/engine/backend/cpu/matmul.h"
#include "common/engine/kv_cache/kv_cache.h"
#include "common/engine/model/model_config.h"
#include "common/engine/model_file/model_file.h"

namespace dspark::engine {

namespace cpu {
class ThreadPool;
}

struct ModelOptions {
  // kInt8 (fast, as llama.cpp) or kExact (f32 activations). Default kInt8.
  cpu::ActivationMode mode = cpu::ActivationMode::kInt8;
  // Threads including the caller; 0 = all cores. Default 0.
  int threads = 0;
  // Use only the first max_layers layers (then the final norm and head): a
  // cheap self-draft model of the same vocabulary. 0 = all. Default 0.
  int max_layers = 0;
  // kInt8 on an AVX2 (not AVX-512) CPU: repack the Q4_0 / Q4_1 / Q5_0 /
  // Q8_0 weights into panels of 16 rows at load (cpu::PanelWeights: a copy
  // of those weights in memory, the mapped file's pages then go unread).
  // Default true.
  bool panel_weights = true;
  // kInt8: the matmul weights stored as BF16 / F16 / F32 (the head too, not
  // the embedding lookup) become Q8_0 copies at load (cpu::QuantizeToQ8_0),
  // so that a draft model trained and saved in bf16 runs the int8 kernels.
  // Its outputs then move by Q8_0 rounding: for a drafter, whose drafts the
  // target verifies, that costs acceptance at most, never losslessness.
  // Default false.
  bool quantize_float_weights = false;
};

// New tokens of one sequence, at positions cache.Length(seq) onwards.
struct SequenceInput {
  SeqId seq = -1;
  std::vector<int32_t> tokens;        // [n]
  std::vector<int32_t> logit_rows;    // indices into tokens whose logits are wanted
  std::vector<int32_t> feature_rows;  // indices into tokens whose hidden states are captured
};

struct ForwardBatch {
  std::vector<SequenceInput> seqs;
  // Layers whose output hidden states are captured at feature_rows (the
  // DSpark drafter's context features); layer i's output is what Hugging Face
  // calls hidden_states[i + 1].
  std::vector<int> capture_layers;
};

struct ForwardOutput {
  std::vector<float> logits;    // [sum of logit_rows, vocab], sequences in batch order
  std::vector<float> features;  // [sum of feature_rows, capture_layers.size() * dim]
};

class Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& path,
                                                     const ModelOptions& options);
  static absl::StatusOr<std::unique_ptr<Model>> FromFile(std::unique_ptr<ModelFile> file,
                                                         const ModelOptions& options);
  ~Model();

  const ModelConfig& config() const { return config_; }
  const ModelFile& file() const { return *file_; }
  std::unique_ptr<KvCache> NewKvCache(const KvCacheOptions& options) const;

  // Runs the batch, appending its tokens to each sequence's KV. Bad input
  // (unknown sequence, token outside the vocabulary, row index out of range,
  // context overflow, KV out of blocks) is an error and changes nothing.
  absl::Status Forward(const ForwardBatch& batch, KvCache* cache, ForwardOutput* out);

  // Bytes of weights one decode step reads (for roofline figures).
  int64_t WeightBytesPerToken() const;

  // Pieces a drafter shares with its target (the DSpark drafter's frozen
  // embedding and LM head), run on the target's thread pool from the step
  // thread. Embed: ids [n] -> out [n, dim], embedding scale applied; ids
  // must be in the vocabulary. LmHead: hidden [rows, dim] (already normed) ->
  // logits [rows, vocab], final soft-capping applied.
  void Embed(absl::Span<const int32_t> ids, float* out) const;
  void LmHead(const float* hidden, int64_t rows, float* logits) const;
  cpu::ActivationMode mode() const { return options_.mode; }
  cpu::ThreadPool* thread_pool() const { return pool_.get(); }

 private:
  struct LayerWeights;
  Model(std::unique_ptr<ModelFile> file, ModelConfig config, const ModelOptions& options);
  absl::Status BindWeights();
  // Points the head's and the layers' projection slots at their int8 copies.
  void PrepareInt8Weights();
  absl::Status Validate(const ForwardBatch& batch, const KvCache& cache) const;

  std::unique_ptr<ModelFile> file_;
  ModelConfig config_;
  ModelOptions options_;
  std::unique_ptr<cpu::ThreadPool> pool_;
  std::vector<LayerWeights> layers_;
  const TensorView* token_embd_ = nullptr;  // {vocab, dim}
  std::vector<float> final_norm_;           // [dim]
  const TensorView* output_ = nullptr;      // {vocab, dim}; token_embd_ when tied
  // Q8_0 copies of float weights and panel-packed weights (ModelOptions).
  cpu::Int8Weights int8_weights_;
};

}  // namespace dspark::engine
