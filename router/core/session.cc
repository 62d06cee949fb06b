#include "router/core/session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/rpc/status.h"

namespace dspark::router {

namespace v1 = dspark::internal::v1;

namespace {

router::Finish ToFinish(v1::SessionFinish finish) {
  switch (finish) {
    case v1::SESSION_FINISH_LENGTH:
      return Finish::kLength;
    case v1::SESSION_FINISH_STOP:
      return Finish::kStop;
    case v1::SESSION_FINISH_CANCELLED:
      return Finish::kCancelled;
    default:
      return Finish::kNone;
  }
}

// Failures a replay on another worker can fix: the worker (or the path to
// it) went away, or it refused for lack of room.
bool Replayable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:  // stream ended without a final event
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:  // the worker shut down (we did not cancel)
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

}  // namespace

Session::Session(uint64_t id, SessionHost* host, ValidatedRequest request, uint64_t prefix_key,
                 GenerationBackend::ChunkFn on_chunk, GenerationBackend::DoneFn on_done)
    : id_(id),
      host_(host),
      request_(std::move(request)),
      prefix_key_(prefix_key),
      on_chunk_(std::move(on_chunk)),
      on_done_(std::move(on_done)) {}

v1::SessionRequest Session::AttemptRequest() const {
  v1::SessionRequest r = request_.session;
  r.set_draft_worker(placement_.draft_address);
  if (!emitted_.empty()) {
    r.mutable_prompt()->Add(emitted_.begin(), emitted_.end());
    r.set_max_tokens(request_.session.max_tokens() - static_cast<int>(emitted_.size()));
  }
  return r;
}

void Session::Launch(Placement placement) {
  std::shared_ptr<VerifyCall> call;
  const std::string address = placement.verify_address;
  {
    absl::MutexLock lock(&mutex_);
    if (!launched_ && host_->request_metrics() != nullptr) {
      host_->request_metrics()->request_queue_time->Observe(
          absl::ToDoubleSeconds(absl::Now() - created_));
    }
    launched_ = true;
    placement_ = std::move(placement);
    if (!cancelled_) {
      call = std::make_shared<VerifyCall>(shared_from_this(), AttemptRequest(), request_.deadline);
      call_ = call;
    }
  }
  if (call == nullptr) {
    Placement unused;
    {
      absl::MutexLock lock(&mutex_);
      unused = placement_;
    }
    host_->registry().Release(unused);
    Finish(absl::CancelledError("cancelled by the client"));
    return;
  }
  call->Start(host_->VerifyStub(address), call);
}

void Session::FailUnlaunched(absl::Status status) { Finish(std::move(status)); }

std::optional<Placement> Session::running_placement() {
  absl::MutexLock lock(&mutex_);
  if (call_ == nullptr || done_) return std::nullopt;
  return placement_;
}

bool Session::MoveDraft(const std::string& from_address, const std::string& to_id,
                        const std::string& to_address) {
  absl::MutexLock lock(&mutex_);
  if (from_address.empty() || call_ == nullptr || done_ ||
      placement_.draft_address != from_address) {
    return false;
  }
  placement_.draft_id = to_id;
  placement_.draft_address = to_address;
  return true;
}

void Session::Cancel() {
  std::shared_ptr<VerifyCall> call;
  bool queued = false;
  {
    absl::MutexLock lock(&mutex_);
    if (done_ || cancelled_) return;
    cancelled_ = true;
    call = call_;
    queued = !launched_;
  }
  // Running: the call's end completes the session with Cancelled. Between
  // two calls of a replay, or launching right now: Launch sees `cancelled_`.
  if (call != nullptr) call->TryCancel();
  // Queued: ends now; a Launch racing with this sees `cancelled_` too.
  if (queued) Finish(absl::CancelledError("cancelled by the client"));
}

std::string Session::ReplayText(const google::protobuf::RepeatedField<int32_t>& ids, bool final) {
  for (int32_t id : ids) {
    // Ids come from a worker of the same model; a bad one is dropped from
    // the text only (the ids still reach the client).
    if (!detok_->Append(id).ok()) continue;
    if (detok_->stopped()) break;
  }
  if (final || detok_->stopped()) detok_->Finish();
  const std::string& text = detok_->text();
  if (text.size() <= text_sent_) return "";
  std::string delta = text.substr(text_sent_);
  text_sent_ = text.size();
  return delta;
}

void Session::OnEvent(VerifyCall* call, const v1::SessionEvent& event) {
  GenerationChunk chunk;
  std::shared_ptr<VerifyCall> stop_call;
  {
    absl::MutexLock lock(&mutex_);
    if (call != call_.get() || finished_ || done_) return;
    chunk.token_ids.assign(event.token_ids().begin(), event.token_ids().end());
    emitted_.insert(emitted_.end(), event.token_ids().begin(), event.token_ids().end());
    router::Finish finish = ToFinish(event.finish());
    if (detok_ == nullptr) {
      chunk.text = event.text();
      text_sent_ += event.text().size();
    } else {
      chunk.text = ReplayText(event.token_ids(), finish != Finish::kNone);
      if (detok_->stopped() && finish == Finish::kNone) {
        // A stop string spanning the replay boundary: the worker could not
        // see it, so the router ends the stream here.
        finish = Finish::kStop;
        stop_call = call_;
      }
    }
    if (finish != Finish::kNone) {
      finished_ = true;
      chunk.finish = finish;
      chunk.model = host_->model().id();
      chunk.prompt_tokens = request_.session.prompt_size();
      chunk.completion_tokens = static_cast<int>(emitted_.size());
      chunk.drafted_tokens = event.drafted_tokens();
      chunk.verified_tokens = event.verified_tokens();
      chunk.accepted_tokens = event.accepted_tokens();
      chunk.target_steps = event.target_steps();
    } else if (chunk.token_ids.empty() && chunk.text.empty()) {
      return;
    }
    RecordChunk(chunk);
  }
  if (stop_call != nullptr) stop_call->TryCancel();
  on_chunk_(std::move(chunk));
}

bool Session::PlanReplay(const grpc::Status& status, absl::Status* error, Placement* next) {
  *error = status.ok() ? absl::UnavailableError("verify worker ended the stream early")
                       : rpc::FromGrpcStatus(status);
  if (!Replayable(status.error_code())) return false;
  const std::string failed = placement_.verify_id;
  if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) {
    host_->registry().MarkSuspect(failed);
  }
  if (replays_ >= host_->max_replays()) return false;
  if (request_.deadline - absl::Now() < host_->min_replay_time()) return false;
  absl::StatusOr<Placement> placed =
      host_->registry().Place(host_->model().id(), prefix_key_, failed);
  if (!placed.ok()) {
    *error = absl::UnavailableError(
        absl::StrCat("verify worker failed (", error->message(),
                     ") and no other can take the session: ", placed.status().message()));
    return false;
  }
  DSPARK_LOG(WARNING) << "session " << id_ << ": verify worker " << placement_.verify_address
                      << " failed after " << emitted_.size() << " tokens (" << error->message()
                      << "); replaying on " << placed->verify_address;
  *next = *std::move(placed);
  return true;
}

void Session::OnCallDone(VerifyCall* call, const grpc::Status& status) {
  Placement old;
  absl::Status result;
  bool replay = false;
  Placement next;
  std::optional<GenerationChunk> last_chunk;
  {
    absl::MutexLock lock(&mutex_);
    call_ = nullptr;
    old = placement_;
    if (finished_) {
      result = absl::OkStatus();
    } else if (cancelled_) {
      result = absl::CancelledError("cancelled by the client");
    } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
               absl::Now() >= request_.deadline) {
      result = absl::DeadlineExceededError("deadline exceeded");
    } else if (!emitted_.empty() &&
               static_cast<int>(emitted_.size()) >= request_.session.max_tokens()) {
      // Every token arrived; only the final event was lost.
      finished_ = true;
      GenerationChunk chunk;
      chunk.finish = Finish::kLength;
      chunk.model = host_->model().id();
      chunk.prompt_tokens = request_.session.prompt_size();
      chunk.completion_tokens = static_cast<int>(emitted_.size());
      RecordChunk(chunk);
      last_chunk = std::move(chunk);
    } else {
      replay = PlanReplay(status, &result, &next);
      if (replay) {
        ++replays_;
        if (detok_ == nullptr) {
          detok_ = std::make_unique<tokenizer::IncrementalDetokenizer>(host_->model().tokenizer());
          detok_->SetStopStrings(
              {request_.session.stop_strings().begin(), request_.session.stop_strings().end()});
          for (int32_t id : emitted_) (void)detok_->Append(id);
        }
      }
    }
  }
  host_->registry().Release(old);
  if (last_chunk.has_value()) on_chunk_(*std::move(last_chunk));
  if (replay) {
    Launch(std::move(next));
    return;
  }
  Finish(std::move(result));
}

void Session::RecordChunk(const GenerationChunk& chunk) {
  if (chunk.finish != router::Finish::kNone) final_finish_ = chunk.finish;
  metrics::RequestMetrics* m = host_->request_metrics();
  if (m == nullptr || chunk.token_ids.empty()) return;
  const absl::Time now = absl::Now();
  if (last_tokens_at_ == absl::InfinitePast()) {
    m->time_to_first_token->Observe(absl::ToDoubleSeconds(now - created_));
  } else {
    // Tokens of one chunk arrive together (a verified block): the gap is
    // spread over them, as a client reading token by token sees it.
    const double gap = absl::ToDoubleSeconds(now - last_tokens_at_) / chunk.token_ids.size();
    for (size_t i = 0; i < chunk.token_ids.size(); ++i) m->inter_token_latency->Observe(gap);
  }
  last_tokens_at_ = now;
  m->generation_tokens->Increment(static_cast<double>(chunk.token_ids.size()));
}

void Session::Finish(absl::Status status) {
  router::Finish finish;
  {
    absl::MutexLock lock(&mutex_);
    if (done_) return;
    done_ = true;
    finish = final_finish_;
  }
  if (metrics::RequestMetrics* m = host_->request_metrics()) {
    m->e2e_request_latency->Observe(absl::ToDoubleSeconds(absl::Now() - created_));
    m->prompt_tokens->Increment(request_.session.prompt_size());
    if (status.ok() || status.code() == absl::StatusCode::kCancelled) {
      // vLLM's finished_reason values.
      const char* reason = !status.ok() || finish == router::Finish::kCancelled ? "abort"
                           : finish == router::Finish::kLength                  ? "length"
                                                                                : "stop";
      m->request_success->Add({{"finished_reason", reason}}).Increment();
    } else {
      m->request_errors->Add({{"code", absl::StatusCodeToString(status.code())}}).Increment();
    }
  }
  on_done_(std::move(status));
  host_->SessionEnded(id_);
}

VerifyCall::VerifyCall(std::shared_ptr<Session> session, v1::SessionRequest request,
                       absl::Time deadline)
    : session_(std::move(session)), request_(std::move(request)) {
  if (deadline != absl::InfiniteFuture()) context_.set_deadline(absl::ToChronoTime(deadline));
}

void VerifyCall::Start(v1::VerifyWorker::Stub* stub, std::shared_ptr<VerifyCall> self) {
  self_ = std::move(self);
  stub->async()->Generate(&context_, &request_, this);
  StartRead(&event_);
  StartCall();
}

void VerifyCall::OnReadDone(bool ok) {
  if (!ok) return;  // the stream ended; OnDone follows
  session_->OnEvent(this, event_);
  StartRead(&event_);
}

void VerifyCall::OnDone(const grpc::Status& status) {
  session_->OnCallDone(this, status);
  // Last: may destroy this call (unless a Cancel still holds it).
  std::shared_ptr<VerifyCall> self = std::move(self_);
}

}  // namespace dspark::router
