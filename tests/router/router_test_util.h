// Shared pieces of the router tests: a small served model (a byte-level
// tokenizer whose id b is the byte b, <|im_start|>/<|im_end|> specials, a
// ChatML template, a 64-token context), and an in-process "cluster" — a
// router (backend + public gRPC service + Registry on one server) and fake
// verify workers, all on 127.0.0.1 port 0.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/rpc/server.h"
#include "dspark/v1/generation.grpc.pb.h"
#include "router/core/registry_service.h"
#include "router/core/router_backend.h"
#include "router/core/served_model.h"
#include "router/core/worker_registry.h"
#include "router/grpc/generation_service.h"
#include "tests/fakes/fake_verify_worker.h"

namespace dspark::router::testing {

inline constexpr char kModelId[] = "fake-model";
inline constexpr int kContext = 64;
inline constexpr int32_t kImStart = 256;
inline constexpr int32_t kImEnd = 257;  // the EOS

std::unique_ptr<ServedModel> TestModel();

// A fake verify worker on its own server.
struct WorkerServer {
  explicit WorkerServer(dspark::testing::FakeVerifyWorkerOptions options = {});
  std::string address() const;
  dspark::testing::FakeVerifyWorker worker;
  std::unique_ptr<rpc::RunningServer> server;
};

// A router with `workers` fake verify workers registered (max_sessions each).
class TestCluster {
 public:
  TestCluster(int workers, int max_sessions, RouterBackendOptions options = {},
              dspark::testing::FakeVerifyWorkerOptions worker_options = {});
  ~TestCluster();

  RouterBackend& backend() { return *backend_; }
  WorkerRegistry& registry() { return registry_; }
  dspark::testing::FakeVerifyWorker& worker(int i) { return workers_[i]->worker; }
  const std::string& worker_id(int i) const { return worker_ids_[i]; }
  std::string worker_address(int i) const { return workers_[i]->address(); }
  // A client of the router's public service.
  std::unique_ptr<dspark::v1::Generation::Stub> Client() const;
  std::string router_address() const;

 private:
  std::vector<std::unique_ptr<WorkerServer>> workers_;
  std::vector<std::string> worker_ids_;
  // Workers registered here never heartbeat: a long interval keeps them.
  WorkerRegistry registry_{WorkerRegistryOptions{.heartbeat_interval = absl::Hours(1)}};
  std::unique_ptr<RouterBackend> backend_;
  std::unique_ptr<GenerationService> service_;
  std::unique_ptr<RegistryService> registry_service_;
  std::unique_ptr<rpc::RunningServer> server_;
};

// A text-prompt request with `max_tokens`.
GenerationRequest TextRequest(const std::string& prompt, int max_tokens);

// Records what a backend streams to one request; waits with deadlines.
class Collector {
 public:
  GenerationBackend::ChunkFn OnChunk();
  GenerationBackend::DoneFn OnDone();
  // false at the timeout.
  bool WaitDone(absl::Duration timeout = absl::Seconds(10));
  absl::Status status();
  std::vector<GenerationChunk> chunks();
  std::vector<int32_t> tokens();
  std::string text();
  // Chunks received so far.
  int chunk_count();

 private:
  absl::Mutex mutex_;
  std::vector<GenerationChunk> chunks_ ABSL_GUARDED_BY(mutex_);
  std::optional<absl::Status> done_ ABSL_GUARDED_BY(mutex_);
  int done_calls_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace dspark::router::testing
