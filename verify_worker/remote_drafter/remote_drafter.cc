#include "verify_worker/remote_drafter/remote_drafter.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/rpc/channel.h"
#include "common/rpc/status.h"
#include "draft_worker/service/spec_codec.h"

namespace dspark::remote_drafter {

namespace v1 = dspark::internal::v1;
using draft_service::FromProto;
using draft_service::ToProto;

// The gRPC side: forwards every reaction to the RemoteDrafter. A hold keeps
// the call alive between writes (they start outside reactions); the
// RemoteDrafter releases it once it will start no more writes.
class RemoteDrafter::Stream final
    : public grpc::ClientBidiReactor<v1::SpecRequest, v1::SpecResponse> {
 public:
  explicit Stream(RemoteDrafter* owner) : owner_(owner) {}

  void Begin(v1::DraftWorker::Stub* stub) {
    stub->async()->SpecStream(&context_, this);
    AddHold();
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      owner_->OnStreamEnd(absl::UnavailableError(
          absl::StrCat("the stream to draft worker ", owner_->address(), " ended")));
      return;
    }
    owner_->OnResponse(std::move(response_));
    response_.Clear();
    StartRead(&response_);
  }
  void OnWriteDone(bool ok) override { owner_->OnWriteDone(ok); }
  void OnDone(const grpc::Status& status) override { owner_->OnDone(rpc::FromGrpcStatus(status)); }

  grpc::ClientContext context_;

 private:
  RemoteDrafter* owner_;
  v1::SpecResponse response_;
};

RemoteDrafter::RemoteDrafter(const RemoteDrafterOptions& options)
    : options_(options),
      stub_(v1::DraftWorker::NewStub(rpc::MakeChannel(options.address))),
      stream_(std::make_unique<Stream>(this)) {}

std::unique_ptr<RemoteDrafter> RemoteDrafter::Start(const RemoteDrafterOptions& options) {
  std::unique_ptr<RemoteDrafter> drafter(new RemoteDrafter(options));
  drafter->stream_->Begin(drafter->stub_.get());
  v1::SpecRequest hello;
  hello.mutable_hello()->set_target_model(options.target_model);
  drafter->Send(std::move(hello)).IgnoreError();  // a failure shows in health()
  return drafter;
}

absl::StatusOr<std::unique_ptr<RemoteDrafter>> RemoteDrafter::Connect(
    const RemoteDrafterOptions& options) {
  std::unique_ptr<RemoteDrafter> drafter = Start(options);
  absl::Status st = drafter->WaitForHello();
  if (!st.ok()) return st;
  return drafter;
}

RemoteDrafter::~RemoteDrafter() { Shutdown(); }

void RemoteDrafter::Shutdown() {
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    release = FailLocked(absl::CancelledError("remote drafter closed"));
  }
  if (release) stream_->RemoveHold();
  stream_->context_.TryCancel();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&done_));
}

absl::Status RemoteDrafter::WaitForHello() {
  bool cancel = false;
  bool release = false;
  absl::Status result;
  {
    absl::MutexLock lock(&mu_);
    auto ready = [this]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return hello_done_ || !failure_.ok(); };
    mu_.AwaitWithTimeout(absl::Condition(&ready), options_.timeout);
    if (!hello_done_ && failure_.ok()) {
      release = FailLocked(absl::DeadlineExceededError(
          absl::StrCat("draft worker ", options_.address, " did not answer Hello within ",
                       absl::FormatDuration(options_.timeout))));
      cancel = true;
    }
    result = failure_;
  }
  if (release) stream_->RemoveHold();
  if (cancel) stream_->context_.TryCancel();
  return result;
}

std::string RemoteDrafter::name() const {
  absl::MutexLock lock(&mu_);
  return hello_.drafter();
}

int RemoteDrafter::max_block() const {
  absl::MutexLock lock(&mu_);
  return hello_.max_block();
}

std::vector<int> RemoteDrafter::context_layers() const {
  absl::MutexLock lock(&mu_);
  return {hello_.context_layers().begin(), hello_.context_layers().end()};
}

absl::Status RemoteDrafter::health() const {
  absl::MutexLock lock(&mu_);
  return failure_;
}

absl::Status RemoteDrafter::SessionStatus(drafter::SessionId session) const {
  absl::MutexLock lock(&mu_);
  auto it = failed_sessions_.find(session);
  return it == failed_sessions_.end() ? absl::OkStatus() : it->second;
}

absl::Status RemoteDrafter::Open(drafter::SessionId session) {
  v1::SpecRequest request;
  request.mutable_open()->set_session(session);
  return Send(std::move(request), session).status();
}

absl::Status RemoteDrafter::Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                                   absl::Span<const float> features) {
  DSPARK_RETURN_IF_ERROR(SessionStatus(session));
  v1::SpecRequest request;
  v1::ExtendSession* extend = request.mutable_extend();
  extend->set_session(session);
  extend->mutable_tokens()->Add(tokens.begin(), tokens.end());
  *extend->mutable_features() = draft_service::FeaturesToBytes(features);
  return Send(std::move(request), session).status();
}

absl::Status RemoteDrafter::Fork(drafter::SessionId child, drafter::SessionId parent,
                                 int64_t prefix_len) {
  DSPARK_RETURN_IF_ERROR(SessionStatus(parent));
  v1::SpecRequest request;
  v1::ForkSession* fork = request.mutable_fork();
  fork->set_child(child);
  fork->set_parent(parent);
  fork->set_prefix_len(prefix_len);
  DSPARK_RETURN_IF_ERROR(Send(std::move(request), child).status());
  // Unlike Open, a failed Fork has a fallback (the caller opens the child
  // and prefills it), so the caller needs the answer now: an empty Draft
  // after it is always answered, and replies come in order.
  std::vector<drafter::DraftBlock> none;
  DSPARK_RETURN_IF_ERROR(Draft({}, &none));
  absl::MutexLock lock(&mu_);
  auto failed = failed_sessions_.find(child);
  if (failed == failed_sessions_.end()) return absl::OkStatus();
  absl::Status st = failed->second;
  failed_sessions_.erase(failed);  // the child does not exist there
  return st;
}

void RemoteDrafter::Close(drafter::SessionId session) {
  {
    absl::MutexLock lock(&mu_);
    failed_sessions_.erase(session);
  }
  v1::SpecRequest request;
  request.mutable_close()->set_session(session);
  Send(std::move(request)).IgnoreError();  // a broken stream has closed it already
}

absl::Status RemoteDrafter::Draft(absl::Span<const drafter::DraftRequest> requests,
                                  std::vector<drafter::DraftBlock>* blocks) {
  DSPARK_ASSIGN_OR_RETURN(uint64_t ticket, SendDraft(requests));
  return AwaitDraft(ticket, blocks);
}

absl::StatusOr<uint64_t> RemoteDrafter::SendDraft(
    absl::Span<const drafter::DraftRequest> requests) {
  for (const drafter::DraftRequest& r : requests) {
    absl::Status st = SessionStatus(r.session);
    if (!st.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("session ", r.session, " failed on the draft worker: ", st.message()));
    }
  }
  v1::SpecRequest request;
  v1::DraftBatch* batch = request.mutable_draft();
  for (const drafter::DraftRequest& r : requests) ToProto(r, batch->add_requests());
  return Send(std::move(request));
}

absl::Status RemoteDrafter::AwaitDraft(uint64_t ticket, std::vector<drafter::DraftBlock>* blocks) {
  v1::SpecResponse response;
  size_t expected = 0;
  bool release = false;
  bool cancel = false;
  absl::Status broken;
  {
    absl::MutexLock lock(&mu_);
    auto it = drafts_.find(ticket);
    if (it == drafts_.end()) return absl::InvalidArgumentError("unknown draft ticket");
    PendingDraft* pending = &it->second;
    auto ready = [this, pending]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return pending->answered || !failure_.ok();
    };
    mu_.AwaitWithDeadline(absl::Condition(&ready), pending->deadline);
    expected = pending->requests;
    if (pending->answered) {
      response = std::move(pending->response);
    } else if (failure_.ok()) {
      // The worker is overloaded or wedged: a late reply would arrive after
      // the step moved on. Stop using the stream.
      release = FailLocked(absl::DeadlineExceededError(
          absl::StrCat("draft worker ", options_.address, " did not answer a draft within ",
                       absl::FormatDuration(options_.timeout))));
      cancel = true;
      broken = failure_;
    } else {
      broken = failure_;
    }
    drafts_.erase(ticket);
  }
  if (release) stream_->RemoveHold();
  if (cancel) stream_->context_.TryCancel();
  if (!broken.ok()) return broken;
  if (response.code() != 0) return rpc::StatusFromCode(response.code(), response.message());
  const v1::DraftBlocks& wire = response.blocks();
  if (static_cast<size_t>(wire.blocks_size()) != expected) {
    return absl::InternalError(absl::StrCat("draft worker ", options_.address, " answered ",
                                            wire.blocks_size(), " blocks for ", expected,
                                            " requests"));
  }
  blocks->clear();
  blocks->reserve(expected);
  for (const v1::DraftBlock& b : wire.blocks()) {
    DSPARK_ASSIGN_OR_RETURN(drafter::DraftBlock block, FromProto(b));
    blocks->push_back(std::move(block));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> RemoteDrafter::Send(v1::SpecRequest request, drafter::SessionId session) {
  const v1::SpecRequest* start = nullptr;
  uint64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) return failure_;
    seq = next_seq_++;
    request.set_seq(seq);
    // Registered before the message leaves, so that its reply finds them.
    if (request.has_hello()) hello_seq_ = seq;
    if (request.has_draft()) {
      drafts_[seq] = {.requests = static_cast<size_t>(request.draft().requests_size()),
                      .deadline = absl::Now() + options_.timeout};
    }
    if (session >= 0 && (request.has_open() || request.has_extend() || request.has_fork())) {
      unsettled_[seq] = session;
    }
    out_.push_back(std::move(request));
    if (!writing_) {
      writing_ = true;
      start = &out_.front();
    }
  }
  // Outside the lock, as a reaction could run inline; the front stays in
  // place (deque elements do not move) until OnWriteDone pops it.
  if (start != nullptr) stream_->StartWrite(start);
  return seq;
}

void RemoteDrafter::OnWriteDone(bool ok) {
  const v1::SpecRequest* next = nullptr;
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    out_.pop_front();
    writing_ = false;
    if (!ok) {
      release = FailLocked(
          absl::UnavailableError(absl::StrCat("cannot write to draft worker ", options_.address)));
    } else if (!failure_.ok()) {
      release = FailLocked(failure_);
    } else if (!out_.empty()) {
      writing_ = true;
      next = &out_.front();
    }
  }
  if (next != nullptr) stream_->StartWrite(next);
  if (release) stream_->RemoveHold();
}

void RemoteDrafter::OnResponse(v1::SpecResponse response) {
  bool release = false;
  bool cancel = false;
  {
    absl::MutexLock lock(&mu_);
    const uint64_t seq = response.seq();
    // Replies come in seq order: every message before this one that has
    // not been answered succeeded.
    unsettled_.erase(unsettled_.begin(), unsettled_.lower_bound(seq));
    if (seq == hello_seq_ && !hello_done_) {
      hello_done_ = true;
      if (response.code() != 0) {
        release = FailLocked(rpc::StatusFromCode(
            response.code(), absl::StrCat("draft worker ", options_.address,
                                          " refused the stream: ", response.message())));
        cancel = true;
      } else if (response.hello().max_block() < 1) {
        release = FailLocked(absl::InternalError(absl::StrCat(
            "draft worker ", options_.address, " has max_block ", response.hello().max_block())));
        cancel = true;
      } else {
        hello_ = response.hello();
      }
    } else if (auto draft = drafts_.find(seq); draft != drafts_.end()) {
      draft->second.answered = true;
      draft->second.response = std::move(response);
    } else if (auto op = unsettled_.find(seq); op != unsettled_.end()) {
      if (response.code() != 0) {
        failed_sessions_[op->second] = rpc::StatusFromCode(response.code(), response.message());
      }
      unsettled_.erase(op);
    } else if (response.code() != 0) {
      DSPARK_LOG(WARNING) << "draft worker " << options_.address << " refused message " << seq
                          << ": " << response.message();
    }
  }
  if (release) stream_->RemoveHold();
  if (cancel) stream_->context_.TryCancel();
}

void RemoteDrafter::OnStreamEnd(absl::Status status) {
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    ended_first_ = failure_.ok();
    release = FailLocked(std::move(status));
  }
  if (release) stream_->RemoveHold();
}

void RemoteDrafter::OnDone(absl::Status status) {
  absl::MutexLock lock(&mu_);
  // The call's own status says more than "ended" (connection refused, ...).
  if (!status.ok() && (failure_.ok() || ended_first_)) {
    failure_ = absl::Status(
        status.code(), absl::StrCat("draft worker ", options_.address, ": ", status.message()));
  }
  done_ = true;
}

bool RemoteDrafter::FailLocked(absl::Status status) {
  if (failure_.ok()) failure_ = std::move(status);
  // Keep only the message being written (gRPC holds a pointer to it).
  if (writing_) {
    out_.erase(out_.begin() + 1, out_.end());
    return false;  // OnWriteDone releases the hold
  }
  out_.clear();
  if (hold_released_) return false;
  hold_released_ = true;
  return true;
}

}  // namespace dspark::remote_drafter
