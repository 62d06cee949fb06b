// Helpers for the VerifyService tests: a running service on 127.0.0.1:0 with
// a client stub, a blocking session call that collects every event, and a
// drafter wrapper that can hold the step loop still (so "mid-stream" is a
// state the test reaches by a condition, never by timing). Test-only;
// ServiceHarness and GatedDrafter are thread-safe where they say so.
//
//   GatedDrafter gate(inner.get());  // gate.Hold() pauses the loop at its next Draft
//   ServiceHarness h({.model = m, .cache = cache.get(), .drafter = &gate}, {});
//   SessionResult r = h.Run(Request(prompt, 16));   // any thread
//   EXPECT_TRUE(r.status.ok()); EXPECT_EQ(r.tokens, reference);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/rpc/server.h"
#include "draft_worker/drafter/drafter.h"
#include "dspark/internal/v1/verify.grpc.pb.h"
#include "verify_worker/service/verify_service.h"

namespace dspark::verify::testing {

// Everything one Generate call streamed.
struct SessionResult {
  grpc::Status status;
  std::vector<int32_t> tokens;
  std::string text;
  int events = 0;
  internal::v1::SessionEvent last;  // the final event (finish set) when status is OK
};

// A greedy request: top_p 1 (resolved, as the router sends it), speculation on.
internal::v1::SessionRequest Request(const std::vector<int32_t>& prompt, int max_tokens);

// A Drafter that forwards to `inner` but, while held, holds every Draft call
// (and so the step loop) until Release. Released by default. Hold, Release
// and WaitHeld are thread-safe; the Drafter methods run on the step loop.
class GatedDrafter final : public drafter::Drafter {
 public:
  explicit GatedDrafter(drafter::Drafter* inner) : inner_(inner) {}

  // Hold: later Draft calls wait; Release: they (and any waiting) go on.
  void Hold();
  void Release();
  // True once a Draft call is being held, false at `deadline`.
  bool WaitHeld(absl::Time deadline);
  // Draft calls so far.
  int drafts();

  std::string name() const override { return inner_->name(); }
  int max_block() const override { return inner_->max_block(); }
  std::vector<int> context_layers() const override { return inner_->context_layers(); }
  absl::Status Open(drafter::SessionId session) override { return inner_->Open(session); }
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override {
    return inner_->Extend(session, tokens, features);
  }
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override;
  absl::Status Fork(drafter::SessionId child, drafter::SessionId parent,
                    int64_t prefix_len) override {
    return inner_->Fork(child, parent, prefix_len);
  }
  void Close(drafter::SessionId session) override { inner_->Close(session); }

 private:
  drafter::Drafter* inner_;
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int drafts_ ABSL_GUARDED_BY(mu_) = 0;
};

// A VerifyService behind a real gRPC server on 127.0.0.1:0, and a stub to it.
// Stops everything (server drained, loop stopped) on destruction.
class ServiceHarness {
 public:
  ServiceHarness(const EngineParts& parts, VerifyServiceOptions options);
  ~ServiceHarness();

  VerifyService& service() { return *service_; }
  internal::v1::VerifyWorker::Stub& stub() { return *stub_; }
  rpc::RunningServer& server() { return *server_; }

  // One Generate call to the end. Thread-safe.
  SessionResult Run(const internal::v1::SessionRequest& request,
                    absl::Duration timeout = absl::Seconds(120));
  // GetStatus's load (a failed call fails the test). Thread-safe.
  internal::v1::WorkerLoad Load();

 private:
  std::unique_ptr<VerifyService> service_;
  std::unique_ptr<rpc::RunningServer> server_;
  std::unique_ptr<internal::v1::VerifyWorker::Stub> stub_;
};

}  // namespace dspark::verify::testing
