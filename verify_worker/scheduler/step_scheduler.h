// The step scheduler: every engine step it decides how many drafted tokens of
// each running sequence the target verifies (0 allowed), from the drafts'
// confidences and the profiled cost table only, never from the target's
// verdict (that keeps verification lossless). Not thread-safe: one instance
// belongs to the verify worker's step thread; a policy pushed by the cluster
// reaches it through SetPolicy on that thread.
//
//   DSPARK_ASSIGN_OR_RETURN(auto scheduler,
//                           MakeStepScheduler({.kind = "confidence", .cost_table = table}));
//   std::vector<SequenceDraft> drafts = {{.confidence = block.confidence}};
//   StepPlan plan;
//   scheduler->Schedule({.seqs = drafts, .base_tokens = prefill_tokens}, &plan);
//   // verify block.tokens[0 .. plan.lengths[0]) plus the bonus token
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "verify_worker/scheduler/cost_table.h"

namespace dspark::scheduler {

// Limits the cluster scheduler sets for a worker; every kind honours them,
// except that "fixed" ignores min_confidence (it is the confidence-blind
// baseline).
struct SchedulerPolicy {
  // Drafted tokens verified per step, summed over all sequences (the 1 token
  // each sequence decodes anyway is not counted). 0 = unlimited. Default 0.
  int64_t max_verify_tokens = 0;
  // A drafted position whose cumulative acceptance probability
  // prod_{j<=i} c_j is below this is never verified. Default 0 (no cutoff).
  double min_confidence = 0;
  // Speculation at all; false verifies nothing (plain decoding). Default true.
  bool speculate = true;
  // Cap on each sequence's verify length. 0 = none. Default 0.
  int max_block = 0;
};

// One decoding sequence's drafted block.
struct SequenceDraft {
  // [n] c_i = P(position i accepted | positions before it accepted), as the
  // drafter's DraftBlock::confidence. Values outside [0, 1] are clamped and
  // NaN counts as 0. Empty: nothing drafted (the sequence decodes 1 token).
  absl::Span<const float> confidence;
  // This request's own cap on its verify length. 0 = none. Default 0.
  int max_block = 0;
  // False when the request turned speculation off. Default true.
  bool speculate = true;
};

struct StepInput {
  // The decoding sequences of this step; each adds 1 token to the batch (the
  // last sampled token, whose logits give the bonus / plain decode token)
  // plus its verify length.
  absl::Span<const SequenceDraft> seqs;
  // Other tokens already in this step's batch (prefill chunks). Default 0.
  int64_t base_tokens = 0;
};

struct StepPlan {
  std::vector<int> lengths;      // [seqs.size()] verify length l_r, 0..n_r
  int64_t verify_tokens = 0;     // sum_r l_r
  int64_t batch_tokens = 0;      // base_tokens + sum_r (1 + l_r)
  double expected_tokens = 0;    // sum_r (1 + E_r(l_r)), E(l) = sum_{i<=l} prod_{j<=i} c_j
  double step_seconds = 0;       // T(batch_tokens); 0 without a cost table
  double plain_seconds = 0;      // T(base_tokens + seqs.size()): the step verifying nothing
  double tokens_per_second = 0;  // expected_tokens / step_seconds; 0 without a cost table
};

class StepScheduler {
 public:
  virtual ~StepScheduler() = default;

  // "confidence", "fixed" or "off".
  virtual std::string_view kind() const = 0;

  // Replaces the policy from the next Schedule on.
  virtual void SetPolicy(const SchedulerPolicy& policy) = 0;
  virtual const SchedulerPolicy& policy() const = 0;

  // Fills `plan` for this step. Reuses plan's and its own buffers, so a
  // steady step loop does not allocate.
  virtual void Schedule(const StepInput& input, StepPlan* plan) = 0;
};

struct StepSchedulerOptions {
  // "confidence": maximise expected emitted tokens per second (greedy
  // marginal allocation over the cost table). "fixed": verify
  // min(fixed_length, n) of every block (benchmarks). "off": verify nothing.
  // Default "confidence".
  std::string kind = "confidence";
  // T(n) of the target; required by "confidence", optional for the others
  // (then StepPlan::step_seconds is 0). Default empty.
  CostTable cost_table;
  // Verify length of kind "fixed", >= 0. Default 7 (the DSpark block).
  int fixed_length = 7;
  // Policy until the first SetPolicy. Default: no limits.
  SchedulerPolicy policy;
};

// InvalidArgument for an unknown kind, a "confidence" scheduler without a
// cost table, or a negative fixed_length.
absl::StatusOr<std::unique_ptr<StepScheduler>> MakeStepScheduler(
    const StepSchedulerOptions& options);

}  // namespace dspark::scheduler
