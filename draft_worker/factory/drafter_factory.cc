#include "draft_worker/factory/drafter_factory.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/engine/backend/cpu/thread_pool.h"
#include "draft_worker/draft_model/draft_model_drafter.h"
#include "draft_worker/dspark/dspark_drafter.h"
#include "draft_worker/hybrid/hybrid_drafter.h"
#include "draft_worker/ngram/ngram_drafter.h"

namespace dspark::drafter {

absl::StatusOr<std::unique_ptr<Drafter>> MakeDrafter(const DrafterOptions& options,
                                                     engine::Model* target) {
  if (options.kind == "none") return std::unique_ptr<Drafter>();
  if (absl::EndsWith(options.kind, "+ngram")) {
    DrafterOptions model_options = options;
    model_options.kind = options.kind.substr(0, options.kind.size() - 6);
    if (model_options.kind == "ngram" || model_options.kind == "none") {
      return absl::InvalidArgumentError(
          absl::StrCat("'", options.kind, "': only a model drafter takes n-gram drafts beside it"));
    }
    DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<Drafter> model, MakeDrafter(model_options, target));
    DSPARK_ASSIGN_OR_RETURN(auto ngram, NgramDrafter::Create({.max_block = model->max_block()}));
    return std::unique_ptr<Drafter>(
        std::make_unique<HybridDrafter>(std::move(model), std::move(ngram)));
  }
  if (options.kind == "ngram") {
    DSPARK_ASSIGN_OR_RETURN(auto d, NgramDrafter::Create({.max_block = options.max_block}));
    return std::unique_ptr<Drafter>(std::move(d));
  }
  if (options.kind == "dspark") {
    if (options.path.empty())
      return absl::InvalidArgumentError("the dspark drafter needs a checkpoint directory");
    DSPARK_ASSIGN_OR_RETURN(auto d, DsparkDrafter::Load(options.path, target));
    return std::unique_ptr<Drafter>(std::move(d));
  }
  if (options.kind == "draft-model") {
    // A trained draft model saved in bf16 runs the int8 kernels as Q8_0.
    engine::ModelOptions model_options{.mode = target->mode(),
                                       .threads = target->thread_pool()->num_threads(),
                                       .quantize_float_weights = true};
    std::string path = options.path;
    if (path.empty()) {
      if (options.draft_layers < 1) return absl::InvalidArgumentError("draft_layers must be >= 1");
      path = target->file().path();
      model_options.max_layers = options.draft_layers;
    }
    DSPARK_ASSIGN_OR_RETURN(auto model, engine::Model::Load(path, model_options));
    DSPARK_ASSIGN_OR_RETURN(auto d,
                            DraftModelDrafter::Create(std::move(model), target->config().vocab_size,
                                                      {.max_block = options.max_block}));
    return std::unique_ptr<Drafter>(std::move(d));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown drafter '", options.kind,
                   "' (dspark, draft-model, ngram, none, or dspark+ngram / draft-model+ngram)"));
}

}  // namespace dspark::drafter
