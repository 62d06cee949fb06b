// Profiles a target Model's forward time into a CostTable: batches shaped
// like verification (blocks of up to 8 tokens over several sequences, each
// with a context, logits for every token), on a scratch KV cache. Runs on the
// calling thread, which must be the only one using the model meanwhile (as
// for Model::Forward); takes seconds on a CPU, so it is cached by identity.
//
//   const std::string id = ModelIdentity(model_path, model_options);
//   DSPARK_ASSIGN_OR_RETURN(CostTable t, LoadOrProfile(cache_path, id, *model, {}));
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/engine/model/model.h"
#include "verify_worker/scheduler/cost_table.h"

namespace dspark::scheduler {

struct ProfileOptions {
  // Batch sizes, repetitions and warm-up. Default CostProfileOptions{}.
  CostProfileOptions cost;
  // Tokens of context every sequence has before the timed tokens: attention
  // work grows with it. The sequences share this prefix's KV blocks, so the
  // scratch cache stays small. Default 256.
  int context_tokens = 256;
  // Largest block one sequence contributes to a timed batch: n tokens are
  // spread evenly over ceil(n / block_tokens) sequences, as a verify step of
  // 1 + 7 drafted tokens per sequence would. Default 8.
  int block_tokens = 8;
};

// One CostTable for `model`. InvalidArgument when context_tokens +
// block_tokens exceeds the model's context or the options are out of range.
absl::StatusOr<CostTable> ProfileModel(engine::Model& model, const ProfileOptions& options);

// The cached table at `path` when it was made for `identity` and these same
// options (they are appended to the identity), else ProfileModel and save.
// See LoadOrProfile in cost_table.h for the cache rules.
absl::StatusOr<CostTable> LoadOrProfile(const std::string& path, const std::string& identity,
                                        engine::Model& model, const ProfileOptions& options);

// An identity for the cost cache of a model loaded from `model_path` with
// `options`: the absolute path, the size and modification time of the file
// (of each file directly inside, for a directory), the activation mode, the
// thread count and max_layers, the CPU's model name and the size and
// modification time of the running executable, so a table is never reused
// for another model, setting, machine or build of the kernels.
std::string ModelIdentity(const std::string& model_path, const engine::ModelOptions& options);

}  // namespace dspark::scheduler
