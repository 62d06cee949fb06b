#include "common/engine/model/generate.h"

#include <algorithm>
#include <chrono>

#include "common/base/status_macros.h"

namespace dspark::engine {
namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

absl::StatusOr<GenerateResult> Run(Model& model, KvCache& cache, SeqId seq,
                                   const std::vector<int32_t>& prompt,
                                   const GenerateOptions& options,
                                   const std::function<bool(int32_t)>& on_token) {
  GenerateResult result;
  const int vocab = model.config().vocab_size;
  ForwardOutput out;
  auto t0 = std::chrono::steady_clock::now();
  const size_t chunk = std::max(1, options.prefill_chunk);
  for (size_t begin = 0; begin < prompt.size(); begin += chunk) {
    const size_t end = std::min(prompt.size(), begin + chunk);
    SequenceInput in{.seq = seq, .tokens = {prompt.begin() + begin, prompt.begin() + end}};
    if (end == prompt.size()) in.logit_rows = {static_cast<int32_t>(end - begin - 1)};
    ForwardBatch batch;
    batch.seqs.push_back(std::move(in));
    DSPARK_RETURN_IF_ERROR(model.Forward(batch, &cache, &out));
  }
  auto t1 = std::chrono::steady_clock::now();
  result.prefill_seconds = Seconds(t0, t1);
  for (int i = 0; i < options.max_tokens; ++i) {
    const int32_t next = SampleToken(out.logits.data(), vocab, options.sampling, i);
    result.tokens.push_back(next);
    if (on_token && !on_token(next)) break;
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end()) break;
    if (i + 1 == options.max_tokens) break;
    ForwardBatch batch;
    batch.seqs.push_back({.seq = seq, .tokens = {next}, .logit_rows = {0}});
    DSPARK_RETURN_IF_ERROR(model.Forward(batch, &cache, &out));
  }
  result.decode_seconds = Seconds(t1, std::chrono::steady_clock::now());
  return result;
}

}  // namespace

absl::StatusOr<GenerateResult> Generate(Model& model, KvCache& cache,
                                        const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options,
                                        const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) return absl::InvalidArgumentError("empty prompt");
  DSPARK_RETURN_IF_ERROR(ValidateSamplingParams(options.sampling));
  if (options.max_tokens < 1) return absl::InvalidArgumentError("max_tokens must be >= 1");
  const SeqId seq = cache.CreateSequence();
  auto result = Run(model, cache, seq, prompt, options, on_token);
  cache.FreeSequence(seq);
  return result;
}

}  // namespace dspark::engine
