// Workers given by address rather than registering: --verify_workers and
// --draft_workers list host:port entries or dns:///name:port names (a
// Kubernetes headless service: every address the name resolves to is a
// worker, re-resolved each round). Each round probes every address with
// VerifyWorker.GetStatus (draft workers serve the same GetStatus shape) and
// feeds the answers to the WorkerRegistry; addresses that stop answering
// are dropped by the registry's Sweep like silent registered workers. A
// verify worker whose policy is older than the one the cluster scheduler set
// in the registry gets it by VerifyWorker.SetPolicy (registered workers get
// theirs in heartbeat responses).
// Thread-safe; owns one thread (DNS lookups block, so they live there).
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dspark/internal/v1/verify.grpc.pb.h"
#include "router/core/worker_registry.h"

namespace dspark::router {

struct StaticWorkersOptions {
  std::vector<std::string> verify_targets;
  std::vector<std::string> draft_targets;
  // Sessions assumed per static worker (GetStatus does not say). Default 16.
  int max_sessions = 16;
  // Round period. Default 1 s.
  absl::Duration interval = absl::Seconds(1);
  // Per-probe deadline. Default 1 s.
  absl::Duration probe_timeout = absl::Seconds(1);
};

// "a,b, c" -> {"a", "b", "c"} (empty entries dropped).
std::vector<std::string> SplitTargets(const std::string& flag);

// host:port as is; dns:///name:port -> every resolved "ip:port" (IPv6 in
// brackets). Resolution failure: an empty list (logged).
std::vector<std::string> ResolveTarget(const std::string& target);

class StaticWorkers {
 public:
  // Starts probing at once (the first round runs before Start returns, so
  // workers already up are usable immediately). `registry` must outlive it.
  static std::unique_ptr<StaticWorkers> Start(StaticWorkersOptions options,
                                              WorkerRegistry* registry);
  ~StaticWorkers();  // Stops the thread and waits for outstanding probes.

 private:
  struct Prober;
  StaticWorkers(StaticWorkersOptions options, WorkerRegistry* registry);
  void Loop();
  // One round: resolve, probe all, wait for the answers (bounded by the probe timeout).
  void Round();
  // On a probe's callback thread: sends the registry's policy when newer.
  void PushPolicy(dspark::internal::v1::VerifyWorker::Stub* stub, const std::string& address,
                  uint64_t worker_version);
  void ProbeDone();

  const StaticWorkersOptions options_;
  WorkerRegistry* registry_;
  std::unique_ptr<Prober> prober_;
  absl::Mutex mutex_;
  bool stop_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace dspark::router
