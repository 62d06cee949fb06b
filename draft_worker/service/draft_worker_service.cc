#include "draft_worker/service/draft_worker_service.h"

#include <deque>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "draft_worker/service/spec_codec.h"

namespace dspark::draft_service {

namespace v1 = dspark::internal::v1;

DraftingLoopOptions LoopOptionsFor(const engine::Model& target) {
  return {.target_model = TargetIdentity(target),
          .vocab_size = target.config().vocab_size,
          .target_dim = target.config().dim};
}

// One SpecStream. Reads go straight to the drafting loop; responses come
// back through a Link that queues them, since gRPC allows one write in
// flight. The reactor lives until OnDone, which gRPC calls only after
// Finish, and only the Link (on the drafting thread) calls Finish: so the
// Link may call into the reactor until it has finished.
class DraftWorkerService::Reactor final
    : public grpc::ServerBidiReactor<v1::SpecRequest, v1::SpecResponse> {
 public:
  explicit Reactor(DraftingLoop* loop) : loop_(loop), link_(std::make_shared<Link>(this)) {
    stream_ = loop_->AddStream(link_);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the verify worker closed its side, or the call is cancelled
      loop_->EndStream(stream_);
      return;
    }
    loop_->Submit(stream_, std::move(request_));
    request_.Clear();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override { link_->WriteDone(ok); }

  void OnDone() override {
    link_->Detach();
    delete this;
  }

 private:
  class Link final : public StreamLink {
   public:
    explicit Link(Reactor* reactor) : reactor_(reactor) {}

    void Send(v1::SpecResponse response) override {
      Reactor* start = nullptr;
      {
        absl::MutexLock lock(&mu_);
        if (reactor_ == nullptr || broken_ || finishing_) return;
        out_.push_back(std::move(response));
        if (writing_) return;
        writing_ = true;
        start = reactor_;
      }
      // Outside the lock: a reaction could run inline. The front stays put
      // (deque elements do not move) until its OnWriteDone pops it.
      start->StartWrite(&front());
    }

    void Finish() override {
      Reactor* finish = nullptr;
      {
        absl::MutexLock lock(&mu_);
        if (reactor_ == nullptr || finishing_) return;
        finishing_ = true;
        if (writing_) return;  // WriteDone finishes after the last write
        finish = reactor_;
      }
      finish->Finish(grpc::Status::OK);
    }

    void WriteDone(bool ok) {
      Reactor* start = nullptr;
      Reactor* finish = nullptr;
      {
        absl::MutexLock lock(&mu_);
        out_.pop_front();
        if (!ok) {  // the stream is broken; its read fails too and ends it
          broken_ = true;
          out_.clear();
        }
        if (!out_.empty()) {
          start = reactor_;
        } else {
          writing_ = false;
          if (finishing_) finish = reactor_;
        }
      }
      if (start != nullptr) start->StartWrite(&front());
      if (finish != nullptr) finish->Finish(grpc::Status::OK);
    }

    void Detach() {
      absl::MutexLock lock(&mu_);
      reactor_ = nullptr;
    }

   private:
    v1::SpecResponse& front() {
      absl::MutexLock lock(&mu_);
      return out_.front();
    }

    absl::Mutex mu_;
    Reactor* reactor_ ABSL_GUARDED_BY(mu_);
    std::deque<v1::SpecResponse> out_ ABSL_GUARDED_BY(mu_);  // front: being written
    bool writing_ ABSL_GUARDED_BY(mu_) = false;
    bool finishing_ ABSL_GUARDED_BY(mu_) = false;
    bool broken_ ABSL_GUARDED_BY(mu_) = false;
  };

  DraftingLoop* loop_;
  std::shared_ptr<Link> link_;
  int64_t stream_ = 0;
  v1::SpecRequest request_;
};

DraftWorkerService::DraftWorkerService(drafter::Drafter* drafter,
                                       const DraftWorkerServiceOptions& options)
    : options_(options), drafter_name_(drafter->name()), loop_(drafter, options.loop) {}

DraftWorkerService::~DraftWorkerService() = default;

grpc::ServerBidiReactor<v1::SpecRequest, v1::SpecResponse>* DraftWorkerService::SpecStream(
    grpc::CallbackServerContext* context) {
  return new Reactor(&loop_);
}

grpc::ServerUnaryReactor* DraftWorkerService::GetStatus(grpc::CallbackServerContext* context,
                                                        const v1::GetStatusRequest* request,
                                                        v1::GetStatusResponse* response) {
  *response->mutable_load() = Load();
  response->set_model(options_.model);
  response->set_drafter(drafter_name_);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

v1::WorkerLoad DraftWorkerService::Load() const {
  const DraftingStats stats = loop_.stats();
  v1::WorkerLoad load;
  load.set_running_sessions(stats.open_sessions);
  load.set_waiting_sessions(0);
  load.set_step_time_seconds(stats.draft_seconds);
  load.set_batch_tokens_per_step(stats.batch_requests);
  load.set_draining(draining_);
  return load;
}

}  // namespace dspark::draft_service
