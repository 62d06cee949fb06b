// dspark logits --model M --prompt-ids 1,2,3 --top K [--exact]
// Prints one JSON line per position: [[id, logit], ...], the K highest,
// teacher-forced over the given ids (no BOS added).
#include <algorithm>
#include <cstdio>
#include <numeric>

#include "common/base/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/model_loading.h"

namespace dspark::cli {
namespace {

absl::Status Run(const std::vector<std::string>& argv) {
  DSPARK_ASSIGN_OR_RETURN(Args args,
                          Args::Parse(argv, {"model", "threads", "prompt-ids", "top"}, {"exact"}));
  if (!args.Has("prompt-ids")) return absl::InvalidArgumentError("--prompt-ids is required");
  DSPARK_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseIdList(args.Get("prompt-ids")));
  DSPARK_ASSIGN_OR_RETURN(int64_t top, args.GetInt("top", 10));
  if (top < 1) return absl::InvalidArgumentError("--top must be >= 1");
  DSPARK_ASSIGN_OR_RETURN(auto model, LoadModelFromArgs(args));
  const int vocab = model->config().vocab_size;
  top = std::min<int64_t>(top, vocab);
  auto cache = model->NewKvCache({.max_tokens = static_cast<int64_t>(ids.size()) + 16});
  engine::SeqId seq = cache->CreateSequence();
  engine::SequenceInput in{.seq = seq, .tokens = ids};
  in.logit_rows.resize(ids.size());
  std::iota(in.logit_rows.begin(), in.logit_rows.end(), 0);
  engine::ForwardBatch batch;
  batch.seqs.push_back(std::move(in));
  engine::ForwardOutput out;
  DSPARK_RETURN_IF_ERROR(model->Forward(batch, cache.get(), &out));
  std::vector<int32_t> order(vocab);
  for (size_t r = 0; r < ids.size(); ++r) {
    const float* z = &out.logits[r * vocab];
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top, order.end(), [&](int32_t a, int32_t b) {
      return z[a] > z[b] || (z[a] == z[b] && a < b);
    });
    nlohmann::json line = nlohmann::json::array();
    for (int64_t i = 0; i < top; ++i) line.push_back({order[i], z[order[i]]});
    std::printf("%s\n", line.dump().c_str());
  }
  return absl::OkStatus();
}

}  // namespace

int LogitsCommand(const std::vector<std::string>& args) {
  return ExitCode("logits", Run(args));
}

}  // namespace dspark::cli
