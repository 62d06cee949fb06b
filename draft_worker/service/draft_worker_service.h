// The DraftWorker gRPC service (proto/dspark/internal/v1/spec.proto): one
// SpecStream bidi reactor per verify worker, all feeding one DraftingLoop
// (drafting_loop.h) that owns the drafter and batches drafting across every
// stream; GetStatus reports load and the drafter's name. Reactions never
// block: they queue work for the drafting thread. Thread-safe.
//
//   DraftWorkerService service(drafter.get(), {.model = "smollm2-135m-instruct",
//                                              .loop = LoopOptionsFor(*target)});
//   DSPARK_ASSIGN_OR_RETURN(auto server, rpc::StartServer({}, {&service}));
//   ...
//   service.SetDraining(true);
//   server->Drain(absl::Seconds(30));  // before the service is destroyed
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/engine/model/model.h"
#include "draft_worker/drafter/drafter.h"
#include "draft_worker/service/drafting_loop.h"
#include "dspark/internal/v1/spec.grpc.pb.h"

namespace dspark::draft_service {

struct DraftWorkerServiceOptions {
  // The catalogue name GetStatus reports. Default "".
  std::string model;
  // Checks made on every stream's messages. Default: none beyond the drafter's.
  DraftingLoopOptions loop;
};

// DraftingLoopOptions for a drafter serving `target`: its identity,
// vocabulary and hidden size.
DraftingLoopOptions LoopOptionsFor(const engine::Model& target);

class DraftWorkerService final : public dspark::internal::v1::DraftWorker::CallbackService {
 public:
  // `drafter` (not owned) outlives the service; only the drafting thread
  // calls it from now on. Destroy the service after its server has stopped.
  DraftWorkerService(drafter::Drafter* drafter, const DraftWorkerServiceOptions& options);
  ~DraftWorkerService() override;

  grpc::ServerBidiReactor<dspark::internal::v1::SpecRequest, dspark::internal::v1::SpecResponse>*
  SpecStream(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const dspark::internal::v1::GetStatusRequest* request,
                                      dspark::internal::v1::GetStatusResponse* response) override;

  // What GetStatus and heartbeats report: running_sessions = open
  // sessions, step_time_seconds = recent mean Draft call, and
  // batch_tokens_per_step = recent mean requests per Draft call (a draft
  // worker's step is one batched call).
  dspark::internal::v1::WorkerLoad Load() const;
  // Reported in the load (the router then places nothing new here).
  void SetDraining(bool draining) { draining_ = draining; }
  DraftingStats stats() const { return loop_.stats(); }
  bool AwaitStats(const std::function<bool(const DraftingStats&)>& done,
                  absl::Duration timeout) const {
    return loop_.AwaitStats(done, timeout);
  }

 private:
  class Reactor;

  const DraftWorkerServiceOptions options_;
  const std::string drafter_name_;
  std::atomic<bool> draining_{false};
  DraftingLoop loop_;
};

}  // namespace dspark::draft_service
