#include "router/core/registry_service.h"

#include "absl/time/time.h"

namespace dspark::router {

namespace v1 = dspark::internal::v1;

grpc::ServerUnaryReactor* RegistryService::Register(grpc::CallbackServerContext* context,
                                                    const v1::RegisterRequest* request,
                                                    v1::RegisterResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  WorkerKind kind;
  switch (request->kind()) {
    case v1::WORKER_KIND_VERIFY:
      kind = WorkerKind::kVerify;
      break;
    case v1::WORKER_KIND_DRAFT:
      kind = WorkerKind::kDraft;
      break;
    default:
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "kind is unspecified"));
      return reactor;
  }
  if (request->address().empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "address is empty"));
    return reactor;
  }
  if (request->max_sessions() <= 0) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "max_sessions must be >= 1"));
    return reactor;
  }
  response->set_worker_id(
      registry_->Register(kind, request->address(), request->model(), request->max_sessions()));
  response->set_heartbeat_interval_ms(
      static_cast<int32_t>(absl::ToInt64Milliseconds(registry_->heartbeat_interval())));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::Heartbeat(grpc::CallbackServerContext* context,
                                                     const v1::HeartbeatRequest* request,
                                                     v1::HeartbeatResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The policy is set only when the cluster scheduler has decided one.
  dspark::internal::v1::Policy policy;
  response->set_known(registry_->Heartbeat(request->worker_id(), request->load(), &policy));
  if (policy.version() > 0) *response->mutable_policy() = policy;
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace dspark::router
