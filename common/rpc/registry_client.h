// A worker's link to the router's Registry: registers, then heartbeats its
// load every interval on a background thread, re-registering when the router
// forgets it (restart) and retrying while it is unreachable. Policies the
// router returns go to a callback. Thread-safe; the destructor stops the
// thread (no further callbacks after it returns).
//
//   auto client = RegistryClient::Start(options,
//       [&] { return worker.Load(); },                   // on the heartbeat thread
//       [&](const internal::v1::Policy& p) { worker.SetPolicy(p); });
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "dspark/internal/v1/registry.grpc.pb.h"

namespace dspark::rpc {

struct RegistryClientOptions {
  // The router's Registry address (host:port or dns:///name:port). Required.
  std::string router;
  dspark::internal::v1::WorkerKind kind = dspark::internal::v1::WORKER_KIND_UNSPECIFIED;
  // Where the router reaches this worker. Required.
  std::string address;
  std::string model;
  int max_sessions = 64;
  // Heartbeat period until the router says otherwise. Default 1 s.
  absl::Duration interval = absl::Seconds(1);
};

class RegistryClient {
 public:
  using LoadFn = std::function<dspark::internal::v1::WorkerLoad()>;
  using PolicyFn = std::function<void(const dspark::internal::v1::Policy&)>;

  static std::unique_ptr<RegistryClient> Start(const RegistryClientOptions& options, LoadFn load,
                                               PolicyFn on_policy);
  ~RegistryClient();

  // Sends one heartbeat now (with draining set by the load function) and
  // waits for it; used on SIGTERM so the router stops placing sessions here.
  void HeartbeatNow();
  // true once a Register call succeeded.
  bool registered() const;

 private:
  struct State;
  explicit RegistryClient(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace dspark::rpc
