// Test helpers for the draft worker: a DraftWorker server on 127.0.0.1 port 0
// around any drafter, and GatedDrafter, a wrapper that records Draft batch
// sizes and can hold a Draft call until the test releases it (to make
// batching and timeouts deterministic without sleeps). Test-only.
//
//   InProcessDraftWorker worker(std::move(drafter), {.loop = {.vocab_size = 300}});
//   ASSERT_TRUE(worker.ok());
//   auto remote = RemoteDrafter::Connect({.address = worker.address()});
//   worker.Stop();  // like a killed process: every stream ends
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/rpc/server.h"
#include "draft_worker/drafter/drafter.h"
#include "draft_worker/service/draft_worker_service.h"

namespace dspark::draft_service::testing {

class InProcessDraftWorker {
 public:
  InProcessDraftWorker(std::unique_ptr<drafter::Drafter> drafter,
                       const DraftWorkerServiceOptions& options);
  ~InProcessDraftWorker() { Stop(); }

  // OK when the server is listening.
  const absl::Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }
  std::string address() const;
  DraftWorkerService& service() { return *service_; }
  drafter::Drafter* drafter() { return drafter_.get(); }
  // Shuts the server down at once (streams end, as if the process died).
  void Stop();

 private:
  std::unique_ptr<drafter::Drafter> drafter_;
  std::unique_ptr<DraftWorkerService> service_;
  std::unique_ptr<rpc::RunningServer> server_;
  absl::Status status_;
};

// Forwards to `inner`; optionally reports other context layers (the bytes
// check of the service then applies) and holds Draft calls while closed.
class GatedDrafter final : public drafter::Drafter {
 public:
  explicit GatedDrafter(std::unique_ptr<drafter::Drafter> inner,
                        std::vector<int> context_layers = {})
      : inner_(std::move(inner)), context_layers_(std::move(context_layers)) {}
  ~GatedDrafter() override { OpenGate(); }

  std::string name() const override { return inner_->name(); }
  int max_block() const override { return inner_->max_block(); }
  std::vector<int> context_layers() const override { return context_layers_; }
  absl::Status Open(drafter::SessionId session) override { return inner_->Open(session); }
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override {
    return inner_->Extend(session, tokens, {});  // inner drafters read tokens only
  }
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override;
  absl::Status Fork(drafter::SessionId child, drafter::SessionId parent,
                    int64_t prefix_len) override {
    return inner_->Fork(child, parent, prefix_len);
  }
  void Close(drafter::SessionId session) override { inner_->Close(session); }

  // Draft calls from now on wait until OpenGate() (or the destructor).
  void CloseGate();
  void OpenGate();
  // Waits until a Draft call is held at the gate; false on timeout.
  bool AwaitHeld(absl::Duration timeout);
  // Requests in each Draft call so far.
  std::vector<int> batches() const;

 private:
  std::unique_ptr<drafter::Drafter> inner_;
  std::vector<int> context_layers_;
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int> batches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dspark::draft_service::testing
