// The router's GenerationBackend: validates requests against the served
// model, admits them (at once when a verify worker has room, else into a
// bounded FIFO queue; beyond it ResourceExhausted), places each on a verify
// worker and a draft worker, and streams the worker's events back as
// chunks (see Session). A housekeeping thread drops silent workers, expires
// queued requests and retries the queue. When it drops a draft worker, the
// sessions drafting there move to the least loaded draft worker left:
// every live verify worker gets ReassignDrafts (asynchronously, with a
// deadline) and the router's own counts follow.
//
// Thread-safe. Callbacks run on gRPC threads (or on the thread that called
// Cancel, for a queued request) and may run before Start has returned; they
// must not block.
//
//   WorkerRegistry registry;
//   RouterBackend backend(options, std::move(model), &registry);
//   auto handle = backend.Start(request, on_chunk, on_done);
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "router/core/request_validation.h"
#include "router/core/served_model.h"
#include "router/core/session.h"
#include "router/core/worker_registry.h"
#include "router/frontend/generation_backend.h"

namespace dspark::router {

struct RouterBackendOptions {
  ValidationLimits limits;
  // Requests waiting for a verify worker with room; beyond: ResourceExhausted.
  // Default 64 (--max_queue); 0: no queue.
  int max_queue = 64;
  // Longest a request waits in the queue when it has no earlier deadline:
  // then Unavailable. Default 60 s.
  absl::Duration max_queue_wait = absl::Seconds(60);
  // Replays on another verify worker after one fails mid-stream. Default 2.
  int max_replays = 2;
  // A replay starts only with at least this long left before the deadline;
  // otherwise the request ends Unavailable. Default 200 ms.
  absl::Duration min_replay_time = absl::Milliseconds(200);
  // Housekeeping period (registry sweep, queue expiry). Default 100 ms.
  absl::Duration housekeeping_interval = absl::Milliseconds(100);
  // Deadline of a ReassignDrafts call. The verify worker answers after
  // rebuilding the sessions, which may take a draft-worker connect (2 s at
  // most by default). Default 5 s.
  absl::Duration reassign_timeout = absl::Seconds(5);
  // ListModels' drafter name. Default "" (none known).
  std::string drafter;
  // Seed of the generator that picks seeds for requests without one.
  // Default 0: from std::random_device.
  uint64_t seed_source = 0;
  // Request metrics (latencies, tokens, outcomes, running / waiting); not
  // owned, must outlive the backend. Default null: none.
  metrics::RequestMetrics* metrics = nullptr;
};

class RouterBackend final : public GenerationBackend, private SessionHost {
 public:
  // `registry` must outlive the backend.
  RouterBackend(RouterBackendOptions options, std::unique_ptr<ServedModel> model,
                WorkerRegistry* registry);
  // Cancels every request (queued: on_done Cancelled; running: the worker
  // call is cancelled) and waits for them to end.
  ~RouterBackend() override;

  absl::StatusOr<std::unique_ptr<GenerationHandle>> Start(GenerationRequest request,
                                                          ChunkFn on_chunk,
                                                          DoneFn on_done) override;
  absl::StatusOr<std::vector<int32_t>> Tokenize(
      const std::string& model,
      const std::variant<std::string, std::vector<ChatTurn>>& input) override;
  absl::StatusOr<std::string> Detokenize(const std::string& model,
                                         const std::vector<int32_t>& ids) override;
  std::vector<ModelCard> ListModels() override;
  bool Healthy() override;

  // Stop admitting (Start: Unavailable); queued and running requests go on.
  void BeginDrain();
  // Waits until no request is queued or running; false at `deadline`.
  bool WaitIdle(absl::Time deadline);
  int queued() const;
  int running() const;

 private:
  class Handle;

  // SessionHost.
  const ServedModel& model() const override { return *model_; }
  WorkerRegistry& registry() override { return *registry_; }
  dspark::internal::v1::VerifyWorker::Stub* VerifyStub(const std::string& address) override;
  int max_replays() const override { return options_.max_replays; }
  absl::Duration min_replay_time() const override { return options_.min_replay_time; }
  metrics::RequestMetrics* request_metrics() const override { return options_.metrics; }
  void SessionEnded(uint64_t session_id) override;

  // Launches queued sessions while verify workers have room.
  void Pump();
  // Fails queued sessions whose time ran out.
  void ExpireQueued();
  void Cancel(uint64_t session_id);
  void Housekeeping();
  // The sessions of the draft workers in `dropped` (other kinds ignored)
  // move to live draft workers: ReassignDrafts to each verify worker.
  void ReassignDrafts(const std::vector<WorkerInfo>& dropped);
  // One ReassignDrafts call; `moved` are the router's sessions on
  // `verify_address` already counted on `to` (undone for those the verify
  // worker could not move).
  void SendReassign(const std::string& verify_address, const std::string& from, const Placement& to,
                    std::vector<std::shared_ptr<Session>> moved);
  // Running / waiting gauges from the current counts.
  void UpdateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const RouterBackendOptions options_;
  const std::unique_ptr<ServedModel> model_;
  WorkerRegistry* const registry_;

  mutable absl::Mutex mutex_;
  bool draining_ ABSL_GUARDED_BY(mutex_) = false;
  bool stop_ ABSL_GUARDED_BY(mutex_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mutex_) = 1;
  std::mt19937_64 seeds_ ABSL_GUARDED_BY(mutex_);
  // Every session not yet ended, queued or running.
  absl::flat_hash_map<uint64_t, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mutex_);
  struct Queued {
    std::shared_ptr<Session> session;
    absl::Time expires;
  };
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mutex_);
  // ReassignDrafts calls not yet answered (the destructor waits for them).
  int reassign_calls_ ABSL_GUARDED_BY(mutex_) = 0;

  absl::Mutex stubs_mutex_;
  absl::flat_hash_map<std::string, std::unique_ptr<dspark::internal::v1::VerifyWorker::Stub>> stubs_
      ABSL_GUARDED_BY(stubs_mutex_);

  std::thread housekeeping_;
};

}  // namespace dspark::router
