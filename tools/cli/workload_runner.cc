#include "tools/cli/workload_runner.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <numeric>

#include "common/base/status_macros.h"
#include "verify_worker/spec_engine/spec_engine.h"

namespace dspark::cli {
namespace {

// User + system CPU seconds of this process so far.
double ProcessCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

}  // namespace

double WorkloadRun::tau() const {
  const int64_t requests = static_cast<int64_t>(outputs.size());
  return static_cast<double>(counters.generated_tokens - requests) /
         std::max<int64_t>(1, counters.decode_steps);
}

absl::StatusOr<WorkloadRun> RunWorkload(const Workload& w, drafter::Drafter* drafter,
                                        scheduler::StepScheduler* scheduler, int max_draft) {
  const int n = static_cast<int>(w.prompts.size());
  // Room for the `concurrency` largest requests at once: per request what
  // SpecEngine::Add reserves, plus a block of rounding.
  std::vector<int64_t> need;
  for (const auto& p : w.prompts) {
    need.push_back(static_cast<int64_t>(p.size()) + w.max_tokens +
                   spec::SpecCounters::kMaxPositions + 1 + 16);
  }
  std::sort(need.begin(), need.end(), std::greater<>());
  need.resize(std::min(w.concurrency, n));
  auto cache =
      w.model->NewKvCache({.max_tokens = std::accumulate(need.begin(), need.end(), int64_t{0})});
  spec::SpecEngine engine(w.model, cache.get(), drafter, scheduler, /*tokenizer=*/nullptr,
                          {.max_running = w.concurrency,
                           .prefix_cache_entries = 0,
                           .max_draft_tokens = max_draft});
  WorkloadRun r;
  r.outputs.resize(n);
  std::map<spec::RequestId, int> index;
  int next = 0;
  auto add_next = [&]() -> absl::Status {
    spec::SpecRequest request;
    request.prompt = w.prompts[next];
    request.max_tokens = w.max_tokens;
    request.stop_ids = w.stop_ids;
    request.sampling = w.sampling;
    if (w.sampling.temperature > 0 && next < static_cast<int>(w.prompt_index.size())) {
      request.sampling.seed += w.prompt_index[next];
    }
    DSPARK_ASSIGN_OR_RETURN(spec::RequestId id, engine.Add(std::move(request)));
    index[id] = next++;
    return absl::OkStatus();
  };
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = ProcessCpuSeconds();
  while (next < std::min(w.concurrency, n)) DSPARK_RETURN_IF_ERROR(add_next());
  std::vector<spec::SpecEvent> events;
  while (engine.HasWork()) {
    events.clear();
    DSPARK_RETURN_IF_ERROR(engine.Step(&events));
    for (const spec::SpecEvent& e : events) {
      std::vector<int32_t>& out = r.outputs[index.at(e.id)];
      out.insert(out.end(), e.tokens.begin(), e.tokens.end());
      if (e.finish == spec::FinishReason::kError) return e.error;
      if (e.finish == spec::FinishReason::kNone) continue;
      r.counters.Add(e.counters);
      if (next < n) DSPARK_RETURN_IF_ERROR(add_next());
    }
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.cpu_s = ProcessCpuSeconds() - cpu0;
  return r;
}

}  // namespace dspark::cli
