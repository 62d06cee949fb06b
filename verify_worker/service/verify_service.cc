#include "verify_worker/service/verify_service.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include "common/base/logging.h"
#include "common/rpc/status.h"

namespace dspark::verify {
namespace {

using internal::v1::SessionEvent;

internal::v1::SessionFinish ToProtoFinish(spec::FinishReason reason) {
  switch (reason) {
    case spec::FinishReason::kLength:
      return internal::v1::SESSION_FINISH_LENGTH;
    case spec::FinishReason::kStop:
      return internal::v1::SESSION_FINISH_STOP;
    case spec::FinishReason::kCancelled:
      return internal::v1::SESSION_FINISH_CANCELLED;
    default:
      return internal::v1::SESSION_FINISH_NONE;
  }
}

// A session's stream. The step loop's sink queues events; one write is in
// flight at a time and the next starts from OnWriteDone. gRPC calls
// (StartWrite, Finish) are made outside mu_, decided under it. The reactor
// is deleted by whichever of OnDone and the loop's final event comes last,
// so the loop never calls into a deleted reactor.
class SessionStream final : public grpc::ServerWriteReactor<SessionEvent> {
 public:
  // `on_cancel` runs once if the client cancels or goes away.
  SessionStream(StepLoop* loop, spec::SpecRequest request, std::string draft_worker,
                std::function<void()> on_cancel)
      : loop_(loop), on_cancel_(std::move(on_cancel)) {
    // Submit may call the sink at once (a stopped loop): mu_ is not held here.
    const StepLoop::Ticket ticket =
        loop_->Submit(std::move(request), std::move(draft_worker),
                      [this](spec::SpecEvent e) { OnEngineEvent(std::move(e)); });
    absl::MutexLock lock(&mu_);
    ticket_ = ticket;
  }

  void OnWriteDone(bool ok) override {
    bool cancel = false;
    Action action;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      queue_.pop_front();
      if (!ok && !cancelled_) {  // the client is gone: end the session
        cancelled_ = true;
        cancel = !released_;
        SetFinalLocked(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      }
      action = NextLocked();
    }
    if (cancel) CancelSession();
    Act(action);
  }

  void OnCancel() override {
    bool cancel = false;
    Action action;
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        cancelled_ = true;
        cancel = !released_;
        SetFinalLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
      }
      action = NextLocked();
    }
    if (cancel) CancelSession();
    Act(action);
  }

  void OnDone() override {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      last = released_;
    }
    if (last) delete this;
  }

 private:
  // What to do after leaving mu_.
  struct Action {
    const SessionEvent* write = nullptr;
    bool finish = false;
    grpc::Status status;
  };

  // On the step loop's thread.
  void OnEngineEvent(spec::SpecEvent e) {
    const bool final_event = e.finish != spec::FinishReason::kNone;
    Action action;
    bool last = false;
    {
      absl::MutexLock lock(&mu_);
      if (final_event) released_ = true;
      if (!cancelled_) {
        Queue(e);
        action = NextLocked();
      }
      last = released_ && done_;
    }
    if (last) {
      delete this;
      return;
    }
    Act(action);
  }

  void Queue(const spec::SpecEvent& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    switch (e.finish) {
      case spec::FinishReason::kError:
        // Rejected by Add (InvalidArgument) or hit by a broken forward.
        SetFinalLocked(e.error.ok() ? grpc::Status(grpc::StatusCode::INTERNAL, "engine error")
                                    : rpc::ToGrpcStatus(e.error));
        return;
      case spec::FinishReason::kCancelled:
        // Not by this client (OnCancel sets cancelled_): the worker is stopping.
        SetFinalLocked(e.error.ok()
                           ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "session cancelled")
                           : rpc::ToGrpcStatus(e.error));
        return;
      default:
        break;
    }
    SessionEvent& out = queue_.emplace_back();
    out.mutable_token_ids()->Assign(e.tokens.begin(), e.tokens.end());
    out.set_text(std::move(e.text));
    if (e.finish == spec::FinishReason::kNone) return;
    const spec::SpecCounters& c = e.counters;
    out.set_finish(ToProtoFinish(e.finish));
    out.set_prompt_tokens(static_cast<int32_t>(c.prompt_tokens));
    out.set_completion_tokens(static_cast<int32_t>(c.generated_tokens));
    out.set_drafted_tokens(c.drafted_tokens);
    out.set_verified_tokens(c.verified_tokens);
    out.set_accepted_tokens(c.accepted_tokens);
    // The step that emitted the first token, then one per decode step.
    out.set_target_steps(c.decode_steps + (c.generated_tokens > 0 ? 1 : 0));
    SetFinalLocked(grpc::Status::OK);
  }

  void SetFinalLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (final_.has_value()) return;
    final_ = std::move(status);
  }

  Action NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Action a;
    if (writing_ || finished_) return a;
    if (!cancelled_ && !queue_.empty()) {
      writing_ = true;
      a.write = &queue_.front();  // deque: stays put while others are pushed
      return a;
    }
    if (final_.has_value()) {
      finished_ = true;
      a.finish = true;
      a.status = *final_;
    }
    return a;
  }

  void Act(const Action& a) {
    if (a.write != nullptr) StartWrite(a.write);
    if (a.finish) Finish(a.status);
  }

  void CancelSession() {
    StepLoop::Ticket ticket;
    {
      absl::MutexLock lock(&mu_);
      ticket = ticket_;
    }
    loop_->Cancel(ticket);
    on_cancel_();
  }

  StepLoop* const loop_;
  const std::function<void()> on_cancel_;
  absl::Mutex mu_;
  StepLoop::Ticket ticket_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<SessionEvent> queue_ ABSL_GUARDED_BY(mu_);  // front: being written when writing_
  std::optional<grpc::Status> final_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;   // Finish called
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;  // by the client, or a failed write
  bool released_ ABSL_GUARDED_BY(mu_) = false;   // the loop sent the final event
  bool done_ ABSL_GUARDED_BY(mu_) = false;       // OnDone ran
};

// A stream refused before it starts (draining).
class RefusedStream final : public grpc::ServerWriteReactor<SessionEvent> {
 public:
  explicit RefusedStream(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

spec::SpecRequest ToSpecRequest(const internal::v1::SessionRequest& r) {
  spec::SpecRequest s;
  s.prompt.assign(r.prompt().begin(), r.prompt().end());
  s.max_tokens = r.max_tokens();
  s.sampling = {.temperature = r.sampling().temperature(),
                .top_k = r.sampling().top_k(),
                .top_p = r.sampling().top_p(),
                .min_p = r.sampling().min_p(),
                .seed = r.sampling().seed()};
  s.stop_ids.assign(r.stop_token_ids().begin(), r.stop_token_ids().end());
  s.stop_strings.assign(r.stop_strings().begin(), r.stop_strings().end());
  s.speculation = {.enabled = r.speculation_enabled(),
                   .max_block = r.max_block(),
                   .min_confidence = r.min_confidence()};
  return s;
}

scheduler::SchedulerPolicy ToSchedulerPolicy(const internal::v1::Policy& p) {
  return {.max_verify_tokens = std::max(0, p.max_verify_tokens_per_step()),
          .min_confidence = std::clamp(static_cast<double>(p.min_confidence()), 0.0, 1.0),
          .speculate = p.speculation_enabled(),
          .max_block = std::max(0, p.max_block())};
}

VerifyService::VerifyService(const EngineParts& parts, VerifyServiceOptions options)
    : options_(std::move(options)), loop_(parts, options_.loop) {
  absl::MutexLock lock(&mu_);
  policy_ = options_.policy;
  loop_.SetPolicy(ToSchedulerPolicy(policy_));
}

VerifyService::~VerifyService() { Stop(); }

grpc::ServerWriteReactor<SessionEvent>* VerifyService::Generate(
    grpc::CallbackServerContext* context, const internal::v1::SessionRequest* request) {
  {
    absl::MutexLock lock(&mu_);
    if (draining_) {
      return new RefusedStream(grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
    }
  }
  spec::SpecRequest spec_request = ToSpecRequest(*request);
  // Bad input is refused here, at once; the engine checks again on Add.
  const absl::Status valid = loop_.Validate(spec_request);
  if (!valid.ok()) return new RefusedStream(rpc::ToGrpcStatus(valid));
  return new SessionStream(&loop_, std::move(spec_request), request->draft_worker(), [this] {
    absl::MutexLock lock(&mu_);
    ++client_cancels_;
  });
}

int64_t VerifyService::client_cancels() const {
  absl::MutexLock lock(&mu_);
  return client_cancels_;
}

bool VerifyService::WaitClientCancels(int64_t n, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return client_cancels_ >= n; };
  return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
}

grpc::ServerUnaryReactor* VerifyService::SetPolicy(grpc::CallbackServerContext* context,
                                                   const internal::v1::SetPolicyRequest* request,
                                                   internal::v1::SetPolicyResponse* response) {
  *response->mutable_policy() = ApplyPolicy(request->policy());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* VerifyService::GetStatus(grpc::CallbackServerContext* context,
                                                   const internal::v1::GetStatusRequest* request,
                                                   internal::v1::GetStatusResponse* response) {
  *response->mutable_load() = Load();
  response->set_model(options_.model);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* VerifyService::ReassignDrafts(
    grpc::CallbackServerContext* context, const internal::v1::ReassignDraftsRequest* request,
    internal::v1::ReassignDraftsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The reactor (with request and response) lives until Finish, which the
  // loop thread calls; the move itself may block the loop (connecting).
  loop_.Reassign(request->from_address(), request->to_address(),
                 [reactor, response](absl::StatusOr<DraftMoves> moves) {
                   if (!moves.ok()) {
                     reactor->Finish(rpc::ToGrpcStatus(moves.status()));
                     return;
                   }
                   response->set_reattached_sessions(moves->reattached);
                   response->set_detached_sessions(moves->detached);
                   reactor->Finish(grpc::Status::OK);
                 });
  return reactor;
}

internal::v1::Policy VerifyService::ApplyPolicy(const internal::v1::Policy& policy) {
  absl::MutexLock lock(&mu_);
  if (policy.version() < policy_.version()) return policy_;
  policy_ = policy;
  loop_.SetPolicy(ToSchedulerPolicy(policy_));
  DSPARK_LOG(INFO) << "policy v" << policy.version() << ": speculation "
                   << (policy.speculation_enabled() ? "on" : "off") << ", max verify tokens "
                   << policy.max_verify_tokens_per_step() << ", min confidence "
                   << policy.min_confidence() << ", max block " << policy.max_block()
                   << (policy.reason().empty() ? "" : " (" + policy.reason() + ")");
  return policy_;
}

internal::v1::WorkerLoad VerifyService::Load() const {
  const LoopLoad l = loop_.Load();
  internal::v1::WorkerLoad load;
  load.set_running_sessions(l.running);
  load.set_waiting_sessions(l.waiting);
  load.set_kv_blocks_used(l.kv_blocks_used);
  load.set_kv_blocks_total(l.kv_blocks_total);
  load.set_step_time_seconds(l.step_seconds);
  load.set_batch_tokens_per_step(l.batch_tokens_per_step);
  load.set_acceptance_rate(l.acceptance_rate);
  absl::MutexLock lock(&mu_);
  *load.mutable_policy() = policy_;
  load.set_draining(draining_);
  return load;
}

void VerifyService::StartDrain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

}  // namespace dspark::verify
