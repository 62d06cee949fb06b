// Where the cluster scheduler reads verify workers' load from: a Prometheus
// server (PromQL over its HTTP API) or, with no Prometheus, the workers'
// heartbeats. Implementations are thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dspark::router {

// One verify worker's recent load. A field is NaN when the source had no
// value for it.
struct WorkerLoadSample {
  std::string worker;          // the worker's address (its "worker" label)
  double running = 0;          // sequences in the step loop
  double waiting = 0;          // admitted, waiting for KV or a slot
  double kv_usage = 0;         // 0..1
  double step_seconds = 0;     // mean step time
  double acceptance = 0;       // accepted / verified drafted tokens, recent window
  // Drafted tokens verified per second over that window: how much evidence
  // the acceptance rate rests on (NaN: unknown).
  double verified_per_second = 0;
  absl::Time observed;         // when the newest input was sampled
};

class LoadSource {
 public:
  virtual ~LoadSource() = default;
  // "prometheus" or "heartbeats".
  virtual std::string name() const = 0;
  // Every worker's load now. An error (unreachable, bad answer) means the
  // scheduler has no data this round.
  virtual absl::StatusOr<std::vector<WorkerLoadSample>> Read() = 0;
};

}  // namespace dspark::router
