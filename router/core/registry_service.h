// dspark.internal.v1.Registry on the router: workers register and heartbeat
// into a WorkerRegistry. Callback API; each handler only takes the
// registry's lock briefly, so none blocks. Thread-safe.
#pragma once

#include "dspark/internal/v1/registry.grpc.pb.h"
#include "router/core/worker_registry.h"

namespace dspark::router {

class RegistryService final : public dspark::internal::v1::Registry::CallbackService {
 public:
  // `registry` must outlive the service.
  explicit RegistryService(WorkerRegistry* registry) : registry_(registry) {}

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const dspark::internal::v1::RegisterRequest* request,
                                     dspark::internal::v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const dspark::internal::v1::HeartbeatRequest* request,
                                      dspark::internal::v1::HeartbeatResponse* response) override;

 private:
  WorkerRegistry* registry_;
};

}  // namespace dspark::router
