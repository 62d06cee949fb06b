// The verify worker's step loop: one thread that owns the SpecEngine and does
// every Add, Cancel, SetPolicy, draft Reassign and Step, fed through a
// mutex-guarded inbox.
// Callers (gRPC reactors) never wait on it: Submit and Cancel only queue and
// wake the thread, which blocks when there is nothing to do. Each session's
// events go to its sink on the loop thread, in order, ending with exactly one
// event whose finish is set. Thread-safe.
//
//   StepLoop loop(parts, {});
//   StepLoop::Ticket t = loop.Submit(std::move(request), "", [](spec::SpecEvent e) {
//     ... queue e for the client; e.finish != kNone ends the session ...
//   });
//   loop.Cancel(t);  // the client went away: the sink gets a kCancelled event
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/engine/kv_cache/kv_cache.h"
#include "common/engine/model/model.h"
#include "verify_worker/scheduler/step_scheduler.h"
#include "verify_worker/spec_engine/spec_engine.h"

namespace dspark::drafter {
class Drafter;
}
namespace dspark::tokenizer {
class Tokenizer;
}

namespace dspark::metrics {
struct VerifyMetrics;
}

namespace dspark::verify {

// What the engine runs on; none owned, all outlive the loop and are used only
// by the loop thread once it starts.
struct EngineParts {
  engine::Model* model = nullptr;    // required
  engine::KvCache* cache = nullptr;  // required
  // Null: no speculation.
  drafter::Drafter* drafter = nullptr;
  // Null: every offered drafted token is verified (within the policy).
  scheduler::StepScheduler* scheduler = nullptr;
  // Null: events carry no text and stop strings are rejected.
  const tokenizer::Tokenizer* tokenizer = nullptr;
  spec::SpecEngineOptions engine;
};

// What moving the sessions of one draft worker to another did (ReassignDrafts).
struct DraftMoves {
  int reattached = 0;  // drafting on the new worker now
  int detached = 0;    // left without speculation
};

// The loop's load over a recent window (GetStatus and heartbeats).
struct LoopLoad {
  int running = 0;  // sessions in the engine's running set
  int waiting = 0;  // queued: in the inbox or the engine's waiting list
  // KV blocks reserved by running sequences (their worst case, as admission
  // counts them); blocks kept only for prefix reuse are reclaimable and not
  // counted, so an idle worker reports 0.
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  double step_seconds = 0;           // mean over the window's steps
  double batch_tokens_per_step = 0;  // mean over the window's steps
  double acceptance_rate = 0;        // accepted / verified of sessions finished in the window
};

struct StepLoopOptions {
  // Window of the load averages. Default 5 s.
  absl::Duration load_window = absl::Seconds(5);
  // Called on the loop thread right after Add gives a session its id, with
  // the draft worker address the session came with (possibly empty): where a
  // routing drafter learns which draft worker serves it. Default none.
  std::function<void(spec::RequestId, const std::string& draft_worker)> assign;
  // Called on the loop thread after a cancelled session's final event. One
  // cancelled before admission never reached the drafter (no Open, so no
  // Close): a routing drafter drops its assignment here. Default none.
  std::function<void(spec::RequestId)> cancelled;
  // Called on the loop thread by Reassign: moves the sessions drafting on
  // draft worker `from` to `to` (a routing drafter's Reassign). Default
  // none: there is nothing to move.
  std::function<DraftMoves(const std::string& from, const std::string& to)> reassign;
  // Prometheus metrics updated by the loop thread; may be null (SetMetrics
  // can set them later). Outlives the loop.
  metrics::VerifyMetrics* metrics = nullptr;
};

class StepLoop {
 public:
  using Ticket = uint64_t;
  // Gets a session's events on the loop thread; must not block.
  using Sink = std::function<void(spec::SpecEvent)>;

  // Builds the engine and starts the thread.
  StepLoop(const EngineParts& parts, StepLoopOptions options);
  // Stop()s.
  ~StepLoop();

  // Queues a session. Bad requests are rejected on the loop thread: the sink
  // then gets a single event with finish kError and the engine's
  // InvalidArgument (nothing else is left behind). After Stop the sink gets
  // its kCancelled event at once, on the caller's thread.
  Ticket Submit(spec::SpecRequest request, std::string draft_worker, Sink sink);
  // The engine's checks of a request (SpecEngine::Validate), on the
  // caller's thread, so that bad input is refused without waiting for a step.
  absl::Status Validate(const spec::SpecRequest& request) const {
    return engine_->Validate(request);
  }
  // Ends the session at the next step (its KV freed); the sink gets the
  // kCancelled event. Unknown or finished tickets are ignored.
  void Cancel(Ticket ticket);
  // Applied before the next step.
  void SetPolicy(const scheduler::SchedulerPolicy& policy);
  // Runs the reassign hook on the loop thread before the next step and
  // gives `done` its result there (must not block). Without a hook: {0, 0}.
  // After Stop, `done` gets Unavailable at once, on the caller's thread.
  void Reassign(std::string from, std::string to,
                std::function<void(absl::StatusOr<DraftMoves>)> done);
  // Metrics from the next step on (their labels may name the server's
  // run-time address, known only after the loop exists). Outlive the loop.
  void SetMetrics(metrics::VerifyMetrics* metrics);

  // Sessions submitted whose final event has not been delivered yet.
  int live_sessions() const;
  // Waits until live_sessions() is 0 or `deadline` passes; true when idle.
  bool WaitIdle(absl::Time deadline) const;
  // Waits until live_sessions() is at least `n` or `deadline` passes.
  bool WaitLive(int n, absl::Time deadline) const;
  LoopLoad Load() const;

  // Cancels every live session (their sinks get a kCancelled event with an
  // Unavailable error: the worker is going away) and joins the thread. Later
  // Submits are answered the same way at once. Idempotent.
  void Stop();

 private:
  struct Submission {
    Ticket ticket;
    spec::SpecRequest request;
    std::string draft_worker;
    Sink sink;
  };
  struct Cancellation {
    Ticket ticket;
  };
  struct Reassignment {
    std::string from;
    std::string to;
    std::function<void(absl::StatusOr<DraftMoves>)> done;
  };
  using Item = std::variant<Submission, Cancellation, Reassignment, scheduler::SchedulerPolicy,
                            metrics::VerifyMetrics*>;
  struct Sample {
    absl::Time at;
    double a = 0;  // step seconds / accepted tokens
    double b = 0;  // batch tokens / verified tokens
  };

  void Run();
  bool HasInput() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !inbox_.empty(); }
  // Loop thread: takes one inbox item into the engine.
  void Take(Item item);
  void Deliver(std::vector<spec::SpecEvent>& events);
  void RecordStep(double seconds, int64_t batch_tokens);
  void CountFinished(const spec::SpecCounters& counters);
  void PublishLoad();
  static void Trim(std::deque<Sample>& samples, absl::Time now, absl::Duration window);

  engine::KvCache* cache_;
  StepLoopOptions options_;
  std::unique_ptr<spec::SpecEngine> engine_;  // loop thread only after the start

  // Loop-thread state.
  absl::flat_hash_map<Ticket, spec::RequestId> ids_;  // admitted sessions
  absl::flat_hash_map<spec::RequestId, Sink> sinks_;
  absl::flat_hash_map<spec::RequestId, Ticket> tickets_;
  std::deque<Sample> step_samples_;    // {seconds, batch tokens}
  std::deque<Sample> accept_samples_;  // {accepted, verified}
  int ended_ = 0;  // sessions given their final event since the last PublishLoad

  mutable absl::Mutex mu_;
  std::deque<Item> inbox_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Ticket next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  int live_ ABSL_GUARDED_BY(mu_) = 0;
  int queued_ ABSL_GUARDED_BY(mu_) = 0;  // submissions still in the inbox
  LoopLoad load_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;
};

}  // namespace dspark::verify
