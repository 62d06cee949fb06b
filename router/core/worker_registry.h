// The router's table of workers: verify and draft workers that registered
// (and heartbeat), plus statically configured ones kept alive by probes.
// A worker not heard from for `missed_heartbeats` intervals is dropped by
// Sweep. Placement reads it and counts the sessions it placed on each worker.
// Thread-safe: one mutex; the change listener runs outside it.
//
//   WorkerRegistry registry(options);
//   std::string id = registry.Register(WorkerKind::kVerify, "10.0.0.5:7001", "smollm2", 16);
//   registry.Heartbeat(id, load);                 // every interval
//   auto placed = registry.Place("smollm2", prefix_key, /*exclude=*/"");
//   ...
//   registry.Release(*placed);                    // the session ended
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dspark/internal/v1/common.pb.h"
#include "router/core/placement.h"

namespace dspark::router {

enum class WorkerKind { kVerify, kDraft };

struct WorkerRegistryOptions {
  // Heartbeat period the router asks registered workers for, and the probe
  // period of static workers. Default 1 s.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Intervals without a heartbeat (or a successful probe) before a worker is
  // dropped. Default 3.
  int missed_heartbeats = 3;
  PlacementOptions placement;
  // The clock (tests inject one). Default absl::Now.
  std::function<absl::Time()> clock;
};

struct WorkerInfo {
  std::string id;
  WorkerKind kind = WorkerKind::kVerify;
  std::string address;
  std::string model;
  int max_sessions = 1;
  // From the flags rather than from Register.
  bool is_static = false;
  dspark::internal::v1::WorkerLoad load;
  absl::Time last_seen;
  // Sessions the router placed here that are still running.
  int assigned = 0;
  // The cluster scheduler's policy for it (version 0: none yet) and its
  // share of new sessions relative to the others, (0, 1].
  dspark::internal::v1::Policy policy;
  double placement_weight = 1.0;
  // A call to it failed: no new sessions until it is heard from again.
  bool suspect = false;
};

// Where a session runs. draft_* empty when no draft worker was free.
struct Placement {
  std::string verify_id;
  std::string verify_address;
  std::string draft_id;
  std::string draft_address;
};

class WorkerRegistry {
 public:
  explicit WorkerRegistry(WorkerRegistryOptions options = {});

  // Registers a worker and returns its id. A worker registering again from
  // the same address (it restarted) replaces its old entry.
  std::string Register(WorkerKind kind, const std::string& address, const std::string& model,
                       int max_sessions);
  // false: unknown id (dropped, or the router restarted): register again.
  // `policy`, when not null, gets the worker's policy from the cluster
  // scheduler (left untouched when there is none).
  bool Heartbeat(const std::string& id, const dspark::internal::v1::WorkerLoad& load,
                 dspark::internal::v1::Policy* policy = nullptr);
  // A static worker answered a probe: adds it or refreshes it.
  void UpdateStatic(WorkerKind kind, const std::string& address, const std::string& model,
                    int max_sessions, const dspark::internal::v1::WorkerLoad& load);
  // Its calls fail: place nothing there until it heartbeats or answers a probe.
  void MarkSuspect(const std::string& id);
  // The cluster scheduler's decision for the verify worker at `address`:
  // delivered in its next heartbeat response (registered workers) or by
  // VerifyWorker.SetPolicy after the next probe (static workers); the weight
  // scales its load in placement (0.5: looks twice as loaded). Unknown
  // address: ignored.
  void SetPolicy(const std::string& address, const dspark::internal::v1::Policy& policy,
                 double placement_weight = 1.0);
  // Drops workers not heard from in time; returns how many, and when
  // `dropped` is not null, appends what the registry knew of each.
  int Sweep(std::vector<WorkerInfo>* dropped = nullptr);
  // The policy set for the verify worker at `address` (version 0: none).
  dspark::internal::v1::Policy PolicyFor(const std::string& address) const;

  // Chooses a verify worker (and a draft worker, if one has room) for a
  // session of `model` and counts the session on both. Unavailable: no live
  // verify worker; ResourceExhausted: all full. `exclude_id` is skipped
  // (a replay avoids the worker that just failed).
  absl::StatusOr<Placement> Place(const std::string& model, uint64_t prefix_key,
                                  const std::string& exclude_id);
  // The session placed by `placement` ended.
  void Release(const Placement& placement);
  // A draft worker for `sessions` running sessions of `model` that lost
  // theirs: the least loaded usable one with room, as for new sessions,
  // skipping `exclude_address` (the lost one), with the sessions counted on
  // it. Only the draft fields are set; both empty when none has room. Each
  // session releases it as usual (or by Release of the returned value).
  Placement PlaceDraft(const std::string& model, int sessions, const std::string& exclude_address);

  // Live, not draining verify workers of `model` (any load).
  int UsableVerifyWorkers(const std::string& model) const;
  std::vector<WorkerInfo> Snapshot() const;
  absl::Duration heartbeat_interval() const { return options_.heartbeat_interval; }
  const PlacementOptions& placement_options() const { return options_.placement; }

  // Called (outside the lock, on the caller's thread) after anything that
  // may have freed room or added a worker: the admission queue then retries.
  // Returns once no call of the previous listener is running, so its owner
  // can go away; never call it from inside the listener.
  void SetChangeListener(std::function<void()> listener);

 private:
  absl::Time Now() const { return options_.clock ? options_.clock() : absl::Now(); }
  bool Usable(const WorkerInfo& w, WorkerKind kind, const std::string& model) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void NotifyChange();

  const WorkerRegistryOptions options_;
  mutable absl::Mutex mutex_;
  absl::flat_hash_map<std::string, WorkerInfo> workers_ ABSL_GUARDED_BY(mutex_);
  uint64_t next_id_ ABSL_GUARDED_BY(mutex_) = 1;
  std::function<void()> listener_ ABSL_GUARDED_BY(mutex_);
  int listener_calls_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace dspark::router
