#include "tests/fakes/fake_verify_worker.h"

#include <algorithm>
#include <utility>

namespace dspark::testing {

namespace v1 = dspark::internal::v1;

// One Generate call. Its state is guarded by the worker's mutex (one lock
// for everything keeps the fake obviously correct); gRPC calls are made
// outside it.
class FakeVerifyWorker::SessionReactor final : public grpc::ServerWriteReactor<v1::SessionEvent> {
 public:
  SessionReactor(FakeVerifyWorker* worker, const v1::SessionRequest& request)
      : worker_(worker), request_(request) {
    last_ = request.prompt_size() > 0 ? request.prompt(request.prompt_size() - 1) : 0;
    Step();
  }

  // Emits the next token, pauses, or ends the call.
  void Step() {
    enum { kNone, kWrite, kCancel, kFail } action = kNone;
    {
      absl::MutexLock lock(&worker_->mutex_);
      if (finished_) return;
      if (cancelled_) {
        action = kCancel;
      } else if (worker_->fail_after_ >= 0 && emitted_ >= worker_->fail_after_) {
        action = kFail;
      } else if (!worker_->resumed_ && worker_->pause_after_ >= 0 &&
                 emitted_ >= worker_->pause_after_) {
        paused_ = true;
        worker_->paused_.push_back(this);
        return;
      } else {
        action = kWrite;
        const int32_t token = NextToken(last_);
        last_ = token;
        ++emitted_;
        event_.Clear();
        event_.add_token_ids(token);
        event_.set_text(std::string(1, static_cast<char>(token)));
        const bool stop =
            std::find(request_.stop_token_ids().begin(), request_.stop_token_ids().end(), token) !=
            request_.stop_token_ids().end();
        if (stop || emitted_ >= request_.max_tokens()) {
          final_ = true;
          event_.set_finish(stop ? v1::SESSION_FINISH_STOP : v1::SESSION_FINISH_LENGTH);
          event_.set_prompt_tokens(request_.prompt_size());
          event_.set_completion_tokens(emitted_);
          event_.set_target_steps(emitted_);
        }
      }
      if (action != kWrite) finished_ = true;
    }
    if (action == kWrite) StartWrite(&event_);
    if (action == kCancel) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    if (action == kFail) Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake worker failure"));
  }

  void Wake() { Step(); }

  void OnWriteDone(bool ok) override {
    bool done = false;
    {
      absl::MutexLock lock(&worker_->mutex_);
      if (!ok || final_) {
        done = !finished_;
        finished_ = true;
      }
    }
    if (done) {
      Finish(ok ? grpc::Status::OK : grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
    } else if (ok) {
      Step();
    }
  }

  void OnCancel() override {
    bool finish = false;
    {
      absl::MutexLock lock(&worker_->mutex_);
      if (finished_ && !paused_) return;
      cancelled_ = true;
      ++worker_->cancelled_;
      if (paused_) {
        paused_ = false;
        auto& list = worker_->paused_;
        list.erase(std::remove(list.begin(), list.end(), this), list.end());
        finished_ = true;
        finish = true;
      }
    }
    if (finish) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&worker_->mutex_);
      --worker_->active_;
      auto& list = worker_->paused_;
      list.erase(std::remove(list.begin(), list.end(), this), list.end());
    }
    delete this;
  }

  // Resume() clears this under the worker's lock before waking the reactor.
  bool paused_ = false;

 private:
  FakeVerifyWorker* worker_;
  const v1::SessionRequest request_;
  int32_t last_ = 0;
  int emitted_ = 0;
  bool final_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
  v1::SessionEvent event_;
};

FakeVerifyWorker::FakeVerifyWorker(FakeVerifyWorkerOptions options)
    : pause_after_(options.pause_after), fail_after_(options.fail_after), model_(options.model) {}

FakeVerifyWorker::~FakeVerifyWorker() = default;

int32_t FakeVerifyWorker::NextToken(int32_t last) {
  return 'a' + static_cast<int32_t>((static_cast<int64_t>(last) * 7 + 3) % 26 + 26) % 26;
}

std::vector<int32_t> FakeVerifyWorker::Continuation(const std::vector<int32_t>& prompt, int n) {
  std::vector<int32_t> out;
  int32_t last = prompt.empty() ? 0 : prompt.back();
  for (int i = 0; i < n; ++i) out.push_back(last = NextToken(last));
  return out;
}

grpc::ServerWriteReactor<v1::SessionEvent>* FakeVerifyWorker::Generate(
    grpc::CallbackServerContext* context, const v1::SessionRequest* request) {
  {
    absl::MutexLock lock(&mutex_);
    requests_.push_back(*request);
    ++active_;
  }
  return new SessionReactor(this, *request);
}

grpc::ServerUnaryReactor* FakeVerifyWorker::SetPolicy(grpc::CallbackServerContext* context,
                                                      const v1::SetPolicyRequest* request,
                                                      v1::SetPolicyResponse* response) {
  {
    absl::MutexLock lock(&mutex_);
    // Like a real worker: an older policy is ignored.
    if (request->policy().version() >= policy_.version()) policy_ = request->policy();
    *response->mutable_policy() = policy_;
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* FakeVerifyWorker::GetStatus(grpc::CallbackServerContext* context,
                                                      const v1::GetStatusRequest* request,
                                                      v1::GetStatusResponse* response) {
  {
    absl::MutexLock lock(&mutex_);
    response->mutable_load()->set_running_sessions(active_);
    response->mutable_load()->set_draining(draining_);
    *response->mutable_load()->mutable_policy() = policy_;
  }
  response->set_model(model_);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* FakeVerifyWorker::ReassignDrafts(grpc::CallbackServerContext* context,
                                                           const v1::ReassignDraftsRequest* request,
                                                           v1::ReassignDraftsResponse* response) {
  {
    absl::MutexLock lock(&mutex_);
    reassigns_.push_back(*request);
    const int moved = reassign_reattached_ >= 0 ? std::min(reassign_reattached_, active_) : active_;
    response->set_reattached_sessions(moved);
    response->set_detached_sessions(active_ - moved);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

void FakeVerifyWorker::SetReassignReattached(int n) {
  absl::MutexLock lock(&mutex_);
  reassign_reattached_ = n;
}

std::vector<v1::ReassignDraftsRequest> FakeVerifyWorker::reassigns() const {
  absl::MutexLock lock(&mutex_);
  return reassigns_;
}

bool FakeVerifyWorker::WaitForReassigns(int n, absl::Duration timeout) const {
  return WaitUntil(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return static_cast<int>(reassigns_.size()) >= n; },
      timeout);
}

void FakeVerifyWorker::Resume() {
  std::vector<SessionReactor*> woken;
  {
    absl::MutexLock lock(&mutex_);
    resumed_ = true;
    woken.swap(paused_);
    for (SessionReactor* r : woken) r->paused_ = false;
  }
  // Not finished, so not deleted: safe to wake outside the lock.
  for (SessionReactor* r : woken) r->Wake();
}

void FakeVerifyWorker::SetFailAfter(int tokens) {
  absl::MutexLock lock(&mutex_);
  fail_after_ = tokens;
}

void FakeVerifyWorker::SetDraining(bool draining) {
  absl::MutexLock lock(&mutex_);
  draining_ = draining;
}

std::vector<v1::SessionRequest> FakeVerifyWorker::requests() const {
  absl::MutexLock lock(&mutex_);
  return requests_;
}

int FakeVerifyWorker::active() const {
  absl::MutexLock lock(&mutex_);
  return active_;
}

int FakeVerifyWorker::cancelled() const {
  absl::MutexLock lock(&mutex_);
  return cancelled_;
}

int FakeVerifyWorker::paused() const {
  absl::MutexLock lock(&mutex_);
  return static_cast<int>(paused_.size());
}

v1::Policy FakeVerifyWorker::policy() const {
  absl::MutexLock lock(&mutex_);
  return policy_;
}

bool FakeVerifyWorker::WaitForPolicyVersion(uint64_t version, absl::Duration timeout) const {
  return WaitUntil([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return policy_.version() >= version; },
                   timeout);
}

bool FakeVerifyWorker::WaitUntil(absl::FunctionRef<bool()> done, absl::Duration timeout) const {
  absl::MutexLock lock(&mutex_);
  auto cond = [&done]() { return done(); };
  return mutex_.AwaitWithTimeout(absl::Condition(&cond), timeout);
}

bool FakeVerifyWorker::WaitForActive(int n, absl::Duration timeout) const {
  return WaitUntil([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return active_ >= n; }, timeout);
}
bool FakeVerifyWorker::WaitForPaused(int n, absl::Duration timeout) const {
  return WaitUntil(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return static_cast<int>(paused_.size()) >= n; },
      timeout);
}
bool FakeVerifyWorker::WaitForCancelled(int n, absl::Duration timeout) const {
  return WaitUntil([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return cancelled_ >= n; }, timeout);
}
bool FakeVerifyWorker::WaitForRequests(int n, absl::Duration timeout) const {
  return WaitUntil(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return static_cast<int>(requests_.size()) >= n; },
      timeout);
}
bool FakeVerifyWorker::WaitForIdle(absl::Duration timeout) const {
  return WaitUntil([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return active_ == 0; }, timeout);
}

}  // namespace dspark::testing
