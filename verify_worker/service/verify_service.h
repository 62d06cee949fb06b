// The verify worker's gRPC service (dspark.internal.v1.VerifyWorker): one
// server-streaming Generate per session, SetPolicy from the router's cluster
// scheduler, GetStatus for load, ReassignDrafts when a draft worker is gone. Reactors only
// translate and queue: the StepLoop's thread owns the engine and does all the work. Thread-safe.
//
//   VerifyService service(parts, {.model = "smollm2-135m-instruct"});
//   DSPARK_ASSIGN_OR_RETURN(auto server, rpc::StartServer({}, {&service}));
//   rpc::WaitForTerminationSignal();
//   service.StartDrain();                        // new sessions: UNAVAILABLE
//   service.WaitIdle(absl::Now() + grace);      // in-flight sessions finish
//   server->Drain(absl::Seconds(1));
//   service.Stop();
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dspark/internal/v1/verify.grpc.pb.h"
#include "verify_worker/service/step_loop.h"

namespace dspark::verify {

struct VerifyServiceOptions {
  // Model served, as GetStatus reports it. Default "".
  std::string model;
  // Policy until the first newer SetPolicy. Default: speculation on, no
  // caps, version 0.
  internal::v1::Policy policy = DefaultPolicy();
  // Load window, and the routing drafter's hooks (step_loop.h). Default none.
  StepLoopOptions loop;

  static internal::v1::Policy DefaultPolicy() {
    internal::v1::Policy p;
    p.set_speculation_enabled(true);
    return p;
  }
};

class VerifyService final : public internal::v1::VerifyWorker::CallbackService {
 public:
  // Starts the step loop on `parts` (not owned; they outlive the service).
  VerifyService(const EngineParts& parts, VerifyServiceOptions options);
  // Stop()s. The gRPC server must be shut down first.
  ~VerifyService() override;

  grpc::ServerWriteReactor<internal::v1::SessionEvent>* Generate(
      grpc::CallbackServerContext* context, const internal::v1::SessionRequest* request) override;
  grpc::ServerUnaryReactor* SetPolicy(grpc::CallbackServerContext* context,
                                      const internal::v1::SetPolicyRequest* request,
                                      internal::v1::SetPolicyResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const internal::v1::GetStatusRequest* request,
                                      internal::v1::GetStatusResponse* response) override;
  // Answered from the step loop (StepLoopOptions::reassign) once it has
  // moved the sessions; UNAVAILABLE after Stop.
  grpc::ServerUnaryReactor* ReassignDrafts(grpc::CallbackServerContext* context,
                                           const internal::v1::ReassignDraftsRequest* request,
                                           internal::v1::ReassignDraftsResponse* response) override;

  // Applies `policy` unless its version is older than the one in force;
  // returns the policy in force afterwards.
  internal::v1::Policy ApplyPolicy(const internal::v1::Policy& policy);
  internal::v1::WorkerLoad Load() const;

  // Sessions ended because their client cancelled, its deadline passed or
  // it went away; and a wait until there have been at least `n` (tests
  // synchronise on it). Thread-safe.
  int64_t client_cancels() const;
  bool WaitClientCancels(int64_t n, absl::Time deadline) const;

  // From now on Generate answers UNAVAILABLE "draining"; sessions already
  // admitted run on.
  void StartDrain();
  // Waits until no session is left or `deadline` passes; true when idle.
  bool WaitIdle(absl::Time deadline) const { return loop_.WaitIdle(deadline); }
  // Waits until at least `n` admitted sessions are unfinished (tests
  // synchronise on it); false at `deadline`.
  bool WaitSessions(int n, absl::Time deadline) const { return loop_.WaitLive(n, deadline); }
  // Ends the sessions still running (UNAVAILABLE) and stops the step loop.
  void Stop() { loop_.Stop(); }
  // Prometheus metrics from now on (StepLoop::SetMetrics).
  void SetMetrics(metrics::VerifyMetrics* metrics) { loop_.SetMetrics(metrics); }

 private:
  VerifyServiceOptions options_;
  StepLoop loop_;

  mutable absl::Mutex mu_;
  internal::v1::Policy policy_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int64_t client_cancels_ ABSL_GUARDED_BY(mu_) = 0;
};

// The SpecRequest a SessionRequest asks for (validated later, by the engine).
spec::SpecRequest ToSpecRequest(const internal::v1::SessionRequest& request);
// The limits of a Policy as the engine and its step scheduler apply them.
scheduler::SchedulerPolicy ToSchedulerPolicy(const internal::v1::Policy& policy);

}  // namespace dspark::verify
