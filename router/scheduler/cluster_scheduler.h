// The router's cluster-level confidence scheduler (DESIGN.md "Scheduling",
// level 2). Every few seconds it reads each verify worker's load and sets
// the worker's speculation policy: the cap on drafted tokens verified per
// step walks down a ladder (no cap, 64, 32, 16, 8, speculation off) while
// the worker is overloaded and back up when it is light, one rung per
// decision and never twice within `hold_rounds`, so steady load gives a
// steady policy. Workers whose drafts are almost never accepted stop
// speculating and are re-probed now and then. Missing, stale or NaN load
// data gives the safe default (no cap: each worker's own step scheduler
// decides), says so, and normal decisions resume when data returns.
//
// ClusterScheduler is the pure decision logic (not thread-safe; one caller).
// ClusterSchedulerLoop runs it on its own thread against a LoadSource and
// pushes changed policies through a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "router/scheduler/load_source.h"

namespace dspark::metrics {
struct SchedulerMetrics;
}

namespace dspark::router {

struct WorkerPolicy {
  bool speculation = true;
  // Cap on drafted tokens verified per step, all sequences; 0 = none.
  int max_verify_tokens = 0;
  float min_confidence = 0.0f;
  uint64_t version = 0;
  std::string reason;
};

struct ClusterSchedulerOptions {
  // Overloaded: any waiting sequence, KV above heavy_kv, or at least
  // heavy_running sequences. Light: nothing waiting, KV below light_kv and at
  // most light_running sequences. In between: hold. Defaults 1, 0.9, 32 and
  // 0.6, 8.
  double heavy_waiting = 1;
  double heavy_kv = 0.9;
  double heavy_running = 32;
  double light_kv = 0.6;
  double light_running = 8;
  // Speculation off below this acceptance rate (0..1), once the rate rests
  // on at least min_verified_per_second verified tokens per second (so one
  // short request cannot switch a worker off). Defaults 0.05 and 2.
  double min_acceptance = 0.05;
  double min_verified_per_second = 2;
  // Rounds a worker keeps a policy before it may change again. Default 3.
  int hold_rounds = 3;
  // Rounds before speculation turned off for low acceptance is retried. Default 20.
  int probe_rounds = 20;
  // A sample older than this is stale. Default 15 s.
  absl::Duration stale_after = absl::Seconds(15);
};

struct Decision {
  std::string worker;
  WorkerPolicy policy;
  bool changed = false;           // policy differs from the last round's
  double placement_weight = 1.0;  // relative share of new sessions, (0, 1]
};

class ClusterScheduler {
 public:
  explicit ClusterScheduler(ClusterSchedulerOptions options = {});

  // One round for `workers` (the verify workers the router knows), from
  // `samples` (an error: no data at all). Returns one decision per worker.
  std::vector<Decision> Decide(const absl::StatusOr<std::vector<WorkerLoadSample>>& samples,
                               const std::vector<std::string>& workers, absl::Time now);
  // false after a round that fell back for any worker.
  bool healthy() const { return healthy_; }

  // The ladder of caps; rung kOff means speculation off.
  static constexpr int kRungs[] = {0, 64, 32, 16, 8};
  static constexpr int kOff = 5;

 private:
  struct State {
    int rung = 0;
    int held = 1 << 20;  // rounds since the last change
    int off_for_acceptance = -1;  // rounds since speculation went off for acceptance; -1 none
    WorkerPolicy policy;
  };
  WorkerPolicy PolicyFor(const State& s, const std::string& reason);

  ClusterSchedulerOptions options_;
  std::map<std::string, State> state_;
  uint64_t version_ = 0;
  bool healthy_ = true;
};

struct ClusterSchedulerLoopOptions {
  // Time between rounds. Default 2 s.
  absl::Duration period = absl::Seconds(2);
  ClusterSchedulerOptions scheduler;
};

class ClusterSchedulerLoop {
 public:
  using WorkersFn = std::function<std::vector<std::string>()>;
  // Called for every worker's decision every round, on the loop's thread:
  // re-sending an unchanged (same version) policy is harmless and heals a
  // worker that restarted. Changes are also logged and exported.
  using PushFn = std::function<void(const Decision&)>;

  // `source` and `metrics` (may be null) outlive the loop.
  ClusterSchedulerLoop(ClusterSchedulerLoopOptions options, LoadSource* source, WorkersFn workers,
                       PushFn push, metrics::SchedulerMetrics* metrics);
  ~ClusterSchedulerLoop();  // stops the thread

  // Runs one round now, on the caller's thread (tests; the loop thread is
  // not started by then or is waiting).
  std::vector<Decision> RunOnce();
  // Starts rounds every period on a background thread.
  void Start();
  // The latest decision per worker.
  std::map<std::string, Decision> latest() const;

 private:
  ClusterSchedulerLoopOptions options_;
  LoadSource* source_;
  WorkersFn workers_;
  PushFn push_;
  metrics::SchedulerMetrics* metrics_;
  mutable absl::Mutex mu_;
  ClusterScheduler scheduler_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Decision> latest_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dspark::router
