#include "tests/draft_worker/service/draft_worker_test_util.h"

#include "absl/strings/str_cat.h"

namespace dspark::draft_service::testing {

InProcessDraftWorker::InProcessDraftWorker(std::unique_ptr<drafter::Drafter> drafter,
                                           const DraftWorkerServiceOptions& options)
    : drafter_(std::move(drafter)),
      service_(std::make_unique<DraftWorkerService>(drafter_.get(), options)) {
  auto server = rpc::StartServer({.address = "127.0.0.1:0"}, {service_.get()});
  status_ = server.status();
  if (server.ok()) server_ = *std::move(server);
}

std::string InProcessDraftWorker::address() const {
  return server_ == nullptr ? "" : absl::StrCat("127.0.0.1:", server_->port());
}

void InProcessDraftWorker::Stop() {
  if (server_ == nullptr) return;
  server_->Drain(absl::ZeroDuration());
  server_.reset();
}

absl::Status GatedDrafter::Draft(absl::Span<const drafter::DraftRequest> requests,
                                 std::vector<drafter::DraftBlock>* blocks) {
  {
    absl::MutexLock lock(&mu_);
    batches_.push_back(static_cast<int>(requests.size()));
    ++held_;
    mu_.Await(absl::Condition(
        +[](bool* closed) { return !*closed; }, &closed_));
    --held_;
  }
  return inner_->Draft(requests, blocks);
}

void GatedDrafter::CloseGate() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

void GatedDrafter::OpenGate() {
  absl::MutexLock lock(&mu_);
  closed_ = false;
}

bool GatedDrafter::AwaitHeld(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto held = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_ > 0 && closed_; };
  return mu_.AwaitWithTimeout(absl::Condition(&held), timeout);
}

std::vector<int> GatedDrafter::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

}  // namespace dspark::draft_service::testing
