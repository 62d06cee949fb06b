// Builds a Drafter by kind: the DSpark block drafter from a checkpoint
// directory, a small autoregressive draft model (a model file, or the
// target's own first layers when none is given), or n-gram prompt lookup.
// Thread-safe (no shared state); the drafter it returns is not.
//
//   DSPARK_ASSIGN_OR_RETURN(auto drafter,
//       MakeDrafter({.kind = "dspark", .path = "models/drafters/smollm2-135m-instruct"}, &target));
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/engine/model/model.h"
#include "draft_worker/drafter/drafter.h"

namespace dspark::drafter {

struct DrafterOptions {
  // "dspark", "draft-model", "ngram" or "none" (MakeDrafter returns null),
  // or "dspark+ngram" / "draft-model+ngram": that model drafter with prompt
  // lookup beside it (HybridDrafter). Default "ngram".
  std::string kind = "ngram";
  // dspark: the checkpoint directory (config.json, model.safetensors).
  // draft-model: a GGUF file or Hugging Face directory of the target's
  // vocabulary; empty = the target's own first `draft_layers` layers.
  std::string path;
  // Layers of the self-draft model (draft-model without a path). Default 6.
  int draft_layers = 6;
  // Block size of the n-gram and draft-model drafters. Default 7.
  int max_block = 7;
};

// InvalidArgument for an unknown kind or a checkpoint that does not fit the
// target; the error names the file.
absl::StatusOr<std::unique_ptr<Drafter>> MakeDrafter(const DrafterOptions& options,
                                                     engine::Model* target);

}  // namespace dspark::drafter
