// Shared flag handling for subcommands that speculate (generate, bench spec):
// building the drafter and the step scheduler from
//   --drafter auto|dspark|dspark+ngram|draft-model|ngram|none   (auto: the
//        model's committed DSpark drafter with n-gram lookup beside it,
//        dspark+ngram, when there is one, else ngram)
//   --drafter-path P   dspark checkpoint dir / draft model file
//   --draft-layers N   self-draft layers for draft-model without a path
//   --scheduler confidence|fixed|off   --verify-len K (fixed)
//   --cost-table FILE  (default: ~/.cache/dspark/cost/<model>-<hash>.json)
#pragma once

#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "common/engine/model/model.h"
#include "draft_worker/drafter/drafter.h"
#include "tools/cli/args.h"
#include "verify_worker/scheduler/step_scheduler.h"

namespace dspark::cli {

inline const std::set<std::string> kSpecValueFlags = {"drafter",   "drafter-path", "draft-layers",
                                                      "scheduler", "verify-len",   "cost-table"};

// The committed DSpark drafter of a model argument (catalogue name or file
// whose stem is one): $DSPARK_DRAFTERS/<name> or <repo>/models/drafters/<name>,
// or "" when there is none.
std::string CommittedDrafterDir(const std::string& model_arg);

// The drafter `kind` (auto|dspark|dspark+ngram|draft-model|ngram|none: null
// for "none")
// for `target`, from `path` ("" = the default: for dspark the committed
// drafter of `model_arg`, for draft-model the target's first `draft_layers`
// layers, 0 = the factory's default). "auto" resolves as above; *resolved
// (may be null) gets the kind used.
absl::StatusOr<std::unique_ptr<drafter::Drafter>> MakeDrafterOfKind(
    const std::string& model_arg, const std::string& kind, const std::string& path,
    int draft_layers, engine::Model* target, std::string* resolved);

// MakeDrafterOfKind from --model, --drafter-path and --draft-layers.
absl::StatusOr<std::unique_ptr<drafter::Drafter>> MakeDrafterFromArgs(const Args& args,
                                                                      const std::string& kind,
                                                                      engine::Model* target,
                                                                      std::string* resolved);

// The target's cost table, profiled on first use and cached by model identity.
absl::StatusOr<scheduler::CostTable> CostTableFromArgs(const Args& args, engine::Model* target);

// A step scheduler of `kind` ("confidence" needs the cost table).
absl::StatusOr<std::unique_ptr<scheduler::StepScheduler>> MakeSchedulerFromArgs(
    const std::string& kind, int verify_len, const scheduler::CostTable& table);

}  // namespace dspark::cli
