// A fixed set of prompts run to completion through a fresh SpecEngine (fresh
// KV cache, no prefix cache) with `concurrency` requests in flight: what
// `dspark bench spec` times and `dspark eval-drafter` measures acceptance on.
//
//   Workload w{.model = model.get(), .concurrency = 4, .max_tokens = 128};
//   w.prompts = {...}; w.prompt_index = {...}; w.stop_ids = tok.eos_ids();
//   DSPARK_ASSIGN_OR_RETURN(WorkloadRun run, RunWorkload(w, drafter, scheduler, 7));
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine/model/model.h"
#include "common/engine/sampling/sampler.h"
#include "draft_worker/drafter/drafter.h"
#include "verify_worker/scheduler/step_scheduler.h"
#include "verify_worker/spec_engine/request.h"

namespace dspark::cli {

struct Workload {
  engine::Model* model = nullptr;
  int concurrency = 1;
  int max_tokens = 128;
  std::vector<int32_t> stop_ids;
  std::vector<size_t> prompt_index;           // [P] index into the prompt set
  std::vector<std::vector<int32_t>> prompts;  // [P] chat-templated prompt ids
  // Every request's sampling; a temperature > 0 gets seed `sampling.seed +
  // prompt_index[p]`, so a prompt's draws do not depend on its neighbours.
  engine::SamplingParams sampling;
};

struct WorkloadRun {
  double wall_s = 0;  // first Add to last finish
  // CPU seconds of the whole process over the run: a measure of the work
  // that, unlike wall time, hardly moves when other processes share the cores.
  double cpu_s = 0;
  spec::SpecCounters counters;                // summed over the requests
  std::vector<std::vector<int32_t>> outputs;  // [P] generated ids
  // Tokens emitted per decode step per sequence, the bonus token included
  // ((generated - requests) / decode steps: a request's first token comes
  // from its prefill).
  double tau() const;
};

// `drafter` and `scheduler` may be null (target only); `max_draft` caps the
// tokens asked of the drafter per block (0: its block size).
absl::StatusOr<WorkloadRun> RunWorkload(const Workload& w, drafter::Drafter* drafter,
                                        scheduler::StepScheduler* scheduler, int max_draft);

}  // namespace dspark::cli
