// One generation as the router runs it: a validated request placed on a
// verify worker, its VerifyWorker.Generate stream read by a gRPC client
// reactor, events turned into GenerationChunks, cancellation and the
// deadline passed to the worker, and — when the worker fails mid-stream — a
// replay on another verify worker (prompt + tokens already streamed, the
// remaining max_tokens) so the client sees neither a duplicated nor a lost
// token. Internal to RouterBackend.
//
// Thread-safety: methods may be called from any thread (reactor callbacks,
// the admission pump, the client's Cancel); state is behind `mutex_`, and
// the client's callbacks run outside it, one at a time (the reactor delivers
// events in order, and a replay starts only after the failed call ended).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics/metrics.h"
#include "common/tokenizer/incremental_detokenizer.h"
#include "dspark/internal/v1/verify.grpc.pb.h"
#include "router/core/request_validation.h"
#include "router/core/served_model.h"
#include "router/core/worker_registry.h"
#include "router/frontend/generation_backend.h"

namespace dspark::router {

class VerifyCall;

// What a Session needs from the backend that runs it.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual const ServedModel& model() const = 0;
  virtual WorkerRegistry& registry() = 0;
  virtual dspark::internal::v1::VerifyWorker::Stub* VerifyStub(const std::string& address) = 0;
  // Replays allowed per session, and the least time before the deadline a
  // replay needs to be worth starting.
  virtual int max_replays() const = 0;
  virtual absl::Duration min_replay_time() const = 0;
  // Request metrics to record into; null for none.
  virtual metrics::RequestMetrics* request_metrics() const = 0;
  // The session finished (on_done has run); called once, outside its lock.
  virtual void SessionEnded(uint64_t session_id) = 0;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(uint64_t id, SessionHost* host, ValidatedRequest request, uint64_t prefix_key,
          GenerationBackend::ChunkFn on_chunk, GenerationBackend::DoneFn on_done);

  uint64_t id() const { return id_; }
  uint64_t prefix_key() const { return prefix_key_; }
  absl::Time deadline() const { return request_.deadline; }

  // Starts the worker call on `placement` (which the session now owns and
  // releases when the call ends).
  void Launch(Placement placement);
  // Ends a session that never launched (queue full later, deadline while
  // queued, cancelled while queued, drain): on_done(status).
  void FailUnlaunched(absl::Status status);
  // The client's cancel. Queued: on_done(Cancelled) now, on this thread.
  // Running: the worker call is cancelled and its end completes the
  // session with Cancelled. Done: nothing (the host may be gone by then).
  void Cancel();

  // Where the session's current worker call runs; nullopt when no call is
  // running (queued, between a failure and its replay, or ended).
  std::optional<Placement> running_placement();
  // When the running call's draft worker is `from_address` (not empty):
  // counts the session on the draft worker `to_id` at `to_address` instead
  // (both empty: none), so that its release and later reassignments see
  // where the verify worker moved it; true then. Bookkeeping only: the
  // verify worker is told by ReassignDrafts.
  bool MoveDraft(const std::string& from_address, const std::string& to_id,
                 const std::string& to_address);

  // From VerifyCall, on its reactor thread.
  void OnEvent(VerifyCall* call, const dspark::internal::v1::SessionEvent& event);
  void OnCallDone(VerifyCall* call, const grpc::Status& status);

 private:
  // The request for attempt `replays_`: the prompt with the tokens streamed
  // so far appended, and the tokens still to generate.
  dspark::internal::v1::SessionRequest AttemptRequest() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Text for `ids` in replay mode (the router detokenizes: the new worker
  // starts mid-stream, so its own text would restart the leading-space and
  // UTF-8 state). Also applies stop strings across the replay boundary.
  std::string ReplayText(const google::protobuf::RepeatedField<int32_t>& ids, bool final)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Decides how a call that ended without a final event goes on: a replay
  // (true, `next` set) or the error that ends the session.
  bool PlanReplay(const grpc::Status& status, absl::Status* error, Placement* next)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Finish(absl::Status status);
  // Latency and token metrics for `chunk`, about to go to the client.
  void RecordChunk(const GenerationChunk& chunk) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const uint64_t id_;
  SessionHost* const host_;
  const ValidatedRequest request_;
  const uint64_t prefix_key_;
  const GenerationBackend::ChunkFn on_chunk_;
  const GenerationBackend::DoneFn on_done_;

  absl::Mutex mutex_;
  // Shared so that Cancel can call TryCancel outside `mutex_`: gRPC may run
  // the call's OnDone inline inside TryCancel, and OnDone takes `mutex_`.
  std::shared_ptr<VerifyCall> call_ ABSL_GUARDED_BY(mutex_);
  Placement placement_ ABSL_GUARDED_BY(mutex_);
  bool launched_ ABSL_GUARDED_BY(mutex_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mutex_) = false;
  // The final event arrived (or the router's stop-string check ended it).
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  bool done_ ABSL_GUARDED_BY(mutex_) = false;
  int replays_ ABSL_GUARDED_BY(mutex_) = 0;
  std::vector<int32_t> emitted_ ABSL_GUARDED_BY(mutex_);
  size_t text_sent_ ABSL_GUARDED_BY(mutex_) = 0;
  // For the request metrics.
  const absl::Time created_ = absl::Now();
  absl::Time last_tokens_at_ ABSL_GUARDED_BY(mutex_) = absl::InfinitePast();
  router::Finish final_finish_ ABSL_GUARDED_BY(mutex_) = router::Finish::kNone;
  // Created at the first replay, fed every emitted token.
  std::unique_ptr<tokenizer::IncrementalDetokenizer> detok_ ABSL_GUARDED_BY(mutex_);
};

// The client side of one VerifyWorker.Generate stream. Keeps itself alive
// (and the session) until its OnDone; the session holds another reference
// while it is the current call.
class VerifyCall : public grpc::ClientReadReactor<dspark::internal::v1::SessionEvent> {
 public:
  VerifyCall(std::shared_ptr<Session> session, dspark::internal::v1::SessionRequest request,
             absl::Time deadline);
  // `self` is this call: owned by the call until OnDone.
  void Start(dspark::internal::v1::VerifyWorker::Stub* stub, std::shared_ptr<VerifyCall> self);
  // Any time, even before Start (gRPC applies it when the call starts).
  void TryCancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  std::shared_ptr<Session> session_;
  std::shared_ptr<VerifyCall> self_;
  grpc::ClientContext context_;
  dspark::internal::v1::SessionRequest request_;
  dspark::internal::v1::SessionEvent event_;
};

}  // namespace dspark::router
