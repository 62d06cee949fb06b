#include "verify_worker/scheduler/step_scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dspark::scheduler {
namespace {

// NaN fails both comparisons and becomes 0: an unusable confidence is never
// worth verifying on its own account.
double Clamp01(float c) { return c > 0 ? (c < 1 ? static_cast<double>(c) : 1.0) : 0.0; }

// Longest verify length the switches and caps allow for `seq`.
int SequenceCap(const SequenceDraft& seq, const SchedulerPolicy& policy) {
  if (!policy.speculate || !seq.speculate) return 0;
  int cap = static_cast<int>(seq.confidence.size());
  if (seq.max_block > 0) cap = std::min(cap, seq.max_block);
  if (policy.max_block > 0) cap = std::min(cap, policy.max_block);
  return cap;
}

// Fills the plan's totals from plan->lengths.
void FinishPlan(const StepInput& input, const CostTable& table, StepPlan* plan) {
  plan->verify_tokens = 0;
  plan->expected_tokens = 0;
  for (size_t r = 0; r < input.seqs.size(); ++r) {
    const int len = plan->lengths[r];
    const absl::Span<const float> c = input.seqs[r].confidence;
    double p = 1;
    double e = 1;  // the token every decoding sequence emits anyway
    for (int i = 0; i < len; ++i) {
      p *= Clamp01(c[i]);
      e += p;
    }
    plan->verify_tokens += len;
    plan->expected_tokens += e;
  }
  plan->batch_tokens = std::max<int64_t>(input.base_tokens, 0) +
                       static_cast<int64_t>(input.seqs.size()) + plan->verify_tokens;
  plan->step_seconds = table.Seconds(plan->batch_tokens);
  plan->plain_seconds = table.Seconds(plan->batch_tokens - plan->verify_tokens);
  plan->tokens_per_second = plan->step_seconds > 0 ? plan->expected_tokens / plan->step_seconds : 0;
}

class SchedulerBase : public StepScheduler {
 public:
  SchedulerBase(CostTable table, SchedulerPolicy policy)
      : table_(std::move(table)), policy_(policy) {}
  void SetPolicy(const SchedulerPolicy& policy) override { policy_ = policy; }
  const SchedulerPolicy& policy() const override { return policy_; }

 protected:
  CostTable table_;
  SchedulerPolicy policy_;
};

// Greedy marginal allocation. Extending sequence r from l to l+1 adds
// prod_{j<=l+1} c_j expected tokens, and these gains never increase along a
// sequence. So for any total k of verify tokens, the k largest gains (ties
// broken by sequence, then position) form valid prefixes of every block and
// give the largest expected count any allocation of k tokens can; T depends
// on k alone, so the best rate over all allocations is the best over k of
// (R + top-k gains) / T(base + R + k). Every k is evaluated (no early stop:
// a profiled T need not be convex), which makes the result exact for any T.
class ConfidenceScheduler final : public SchedulerBase {
 public:
  using SchedulerBase::SchedulerBase;
  std::string_view kind() const override { return "confidence"; }

  void Schedule(const StepInput& input, StepPlan* plan) override {
    const size_t num_seqs = input.seqs.size();
    plan->lengths.assign(num_seqs, 0);
    candidates_.clear();
    for (size_t r = 0; r < num_seqs; ++r) {
      const SequenceDraft& seq = input.seqs[r];
      const int cap = SequenceCap(seq, policy_);
      double p = 1;
      for (int i = 0; i < cap; ++i) {
        p *= Clamp01(seq.confidence[i]);
        // p only falls along the block, so nothing past here qualifies; a
        // zero gain never raises the rate.
        if (p <= 0 || p < policy_.min_confidence) break;
        candidates_.push_back(
            {.gain = p, .seq = static_cast<int32_t>(r), .pos = static_cast<int32_t>(i)});
      }
    }
    std::sort(candidates_.begin(), candidates_.end(), [](const Candidate& a, const Candidate& b) {
      if (a.gain != b.gain) return a.gain > b.gain;
      if (a.seq != b.seq) return a.seq < b.seq;
      return a.pos < b.pos;
    });
    size_t limit = candidates_.size();
    if (policy_.max_verify_tokens > 0) {
      limit = std::min<size_t>(limit, static_cast<size_t>(policy_.max_verify_tokens));
    }
    const int64_t fixed_tokens =
        std::max<int64_t>(input.base_tokens, 0) + static_cast<int64_t>(num_seqs);
    double expected = static_cast<double>(num_seqs);
    double best_rate = expected / table_.Seconds(fixed_tokens);
    size_t best_k = 0;
    for (size_t k = 1; k <= limit; ++k) {
      expected += candidates_[k - 1].gain;
      const double rate = expected / table_.Seconds(fixed_tokens + static_cast<int64_t>(k));
      // Strictly better only: on a tie the shorter batch wins (less work,
      // less KV churn).
      if (rate > best_rate) {
        best_rate = rate;
        best_k = k;
      }
    }
    for (size_t k = 0; k < best_k; ++k) ++plan->lengths[candidates_[k].seq];
    FinishPlan(input, table_, plan);
  }

 private:
  struct Candidate {
    double gain;  // prod_{j<=pos} c_j
    int32_t seq;
    int32_t pos;
  };
  std::vector<Candidate> candidates_;  // scratch, kept to avoid per-step allocation
};

// min(fixed_length, n) per sequence. Under a max_verify_tokens budget the
// tokens go out level by level (every sequence's first drafted token, then
// every second one, ...) so no sequence is starved by its place in the batch.
class FixedScheduler final : public SchedulerBase {
 public:
  FixedScheduler(CostTable table, SchedulerPolicy policy, int fixed_length)
      : SchedulerBase(std::move(table), policy), fixed_length_(fixed_length) {}
  std::string_view kind() const override { return "fixed"; }

  void Schedule(const StepInput& input, StepPlan* plan) override {
    const size_t num_seqs = input.seqs.size();
    want_.resize(num_seqs);
    int64_t total = 0;
    int deepest = 0;
    for (size_t r = 0; r < num_seqs; ++r) {
      want_[r] = std::min(fixed_length_, SequenceCap(input.seqs[r], policy_));
      total += want_[r];
      deepest = std::max(deepest, want_[r]);
    }
    const int64_t budget = policy_.max_verify_tokens;
    if (budget <= 0 || total <= budget) {
      plan->lengths.assign(want_.begin(), want_.end());
    } else {
      plan->lengths.assign(num_seqs, 0);
      int64_t used = 0;
      for (int depth = 1; depth <= deepest && used < budget; ++depth) {
        for (size_t r = 0; r < num_seqs && used < budget; ++r) {
          if (want_[r] >= depth) {
            plan->lengths[r] = depth;
            ++used;
          }
        }
      }
    }
    FinishPlan(input, table_, plan);
  }

 private:
  int fixed_length_;
  std::vector<int> want_;  // scratch
};

class OffScheduler final : public SchedulerBase {
 public:
  using SchedulerBase::SchedulerBase;
  std::string_view kind() const override { return "off"; }

  void Schedule(const StepInput& input, StepPlan* plan) override {
    plan->lengths.assign(input.seqs.size(), 0);
    FinishPlan(input, table_, plan);
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<StepScheduler>> MakeStepScheduler(
    const StepSchedulerOptions& options) {
  if (options.kind == "confidence") {
    if (options.cost_table.empty()) {
      return absl::InvalidArgumentError("step scheduler \"confidence\" needs a cost table");
    }
    return std::make_unique<ConfidenceScheduler>(options.cost_table, options.policy);
  }
  if (options.kind == "fixed") {
    if (options.fixed_length < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("step scheduler \"fixed\": fixed_length ", options.fixed_length, " < 0"));
    }
    return std::make_unique<FixedScheduler>(options.cost_table, options.policy,
                                            options.fixed_length);
  }
  if (options.kind == "off") {
    return std::make_unique<OffScheduler>(options.cost_table, options.policy);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown step scheduler \"", options.kind,
                                                 "\" (want confidence, fixed or off)"));
}

}  // namespace dspark::scheduler
