// A fake dspark.internal.v1.VerifyWorker for router tests: no model, just a
// deterministic token stream. Each next token depends only on the previous
// one (NextToken), so a session replayed elsewhere with its streamed tokens
// appended to the prompt continues exactly as the original would have —
// what the router's replay must preserve. Tokens are the bytes 'a'..'z', so
// any byte-level tokenizer decodes token t to the one character t.
//
// Knobs (all settable while serving): pause every session after N tokens
// until Resume(); fail every session with UNAVAILABLE after N tokens;
// report draining. SetPolicy stores the policy; GetStatus reports it.
// ReassignDrafts is recorded and answered with the sessions it reattached
// (by default every active one; SetReassignReattached). Counters with
// deadline-bounded waits let tests synchronise without sleeping. Thread-safe; callback API.
//
//   FakeVerifyWorker worker({.pause_after = 2});
//   auto server = rpc::StartServer({}, {&worker});
//   ...  // a request reaches it
//   ASSERT_TRUE(worker.WaitForActive(1, absl::Seconds(10)));
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dspark/internal/v1/verify.grpc.pb.h"

namespace dspark::testing {

struct FakeVerifyWorkerOptions {
  // Reported by GetStatus.
  std::string model = "fake-model";
  // Sessions pause after emitting this many tokens until Resume(); -1 never.
  int pause_after = -1;
  // Sessions end with UNAVAILABLE after emitting this many tokens; -1 never.
  int fail_after = -1;
};

class FakeVerifyWorker final : public dspark::internal::v1::VerifyWorker::CallbackService {
 public:
  explicit FakeVerifyWorker(FakeVerifyWorkerOptions options = {});
  ~FakeVerifyWorker() override;

  // 'a' + (last * 7 + 3) % 26: the token after `last`.
  static int32_t NextToken(int32_t last);
  // The first `n` tokens a session with `prompt` emits (ignoring stops).
  static std::vector<int32_t> Continuation(const std::vector<int32_t>& prompt, int n);

  grpc::ServerWriteReactor<dspark::internal::v1::SessionEvent>* Generate(
      grpc::CallbackServerContext* context,
      const dspark::internal::v1::SessionRequest* request) override;
  grpc::ServerUnaryReactor* SetPolicy(grpc::CallbackServerContext* context,
                                      const dspark::internal::v1::SetPolicyRequest* request,
                                      dspark::internal::v1::SetPolicyResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const dspark::internal::v1::GetStatusRequest* request,
                                      dspark::internal::v1::GetStatusResponse* response) override;
  grpc::ServerUnaryReactor* ReassignDrafts(
      grpc::CallbackServerContext* context,
      const dspark::internal::v1::ReassignDraftsRequest* request,
      dspark::internal::v1::ReassignDraftsResponse* response) override;

  // Paused sessions continue, and later ones no longer pause.
  void Resume();
  void SetFailAfter(int tokens);
  void SetDraining(bool draining);
  // ReassignDrafts answers `n` reattached sessions (the rest of the active
  // ones detached); -1 (the default): every active session reattached.
  void SetReassignReattached(int n);

  // Every SessionRequest received, in order.
  std::vector<dspark::internal::v1::SessionRequest> requests() const;
  int active() const;     // sessions whose call has not ended
  int cancelled() const;  // sessions the router cancelled
  int paused() const;     // sessions waiting for Resume()
  // The policy last set by SetPolicy (reported by GetStatus).
  dspark::internal::v1::Policy policy() const;
  bool WaitForPolicyVersion(uint64_t version, absl::Duration timeout) const;
  // Wait until the count reaches `n` (at least); false at the timeout.
  bool WaitForActive(int n, absl::Duration timeout) const;
  bool WaitForPaused(int n, absl::Duration timeout) const;
  bool WaitForCancelled(int n, absl::Duration timeout) const;
  bool WaitForRequests(int n, absl::Duration timeout) const;
  bool WaitForIdle(absl::Duration timeout) const;  // active() == 0
  // Every ReassignDraftsRequest received, in order, and a wait for `n`.
  std::vector<dspark::internal::v1::ReassignDraftsRequest> reassigns() const;
  bool WaitForReassigns(int n, absl::Duration timeout) const;

 private:
  class SessionReactor;
  friend class SessionReactor;
  bool WaitUntil(absl::FunctionRef<bool()> done, absl::Duration timeout) const;

  mutable absl::Mutex mutex_;
  int pause_after_ ABSL_GUARDED_BY(mutex_);
  int fail_after_ ABSL_GUARDED_BY(mutex_);
  bool resumed_ ABSL_GUARDED_BY(mutex_) = false;
  bool draining_ ABSL_GUARDED_BY(mutex_) = false;
  std::string model_;
  std::vector<dspark::internal::v1::SessionRequest> requests_ ABSL_GUARDED_BY(mutex_);
  std::vector<SessionReactor*> paused_ ABSL_GUARDED_BY(mutex_);
  int active_ ABSL_GUARDED_BY(mutex_) = 0;
  int cancelled_ ABSL_GUARDED_BY(mutex_) = 0;
  dspark::internal::v1::Policy policy_ ABSL_GUARDED_BY(mutex_);
  int reassign_reattached_ ABSL_GUARDED_BY(mutex_) = -1;
  std::vector<dspark::internal::v1::ReassignDraftsRequest> reassigns_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace dspark::testing
