// dspark.v1.Generation (the public gRPC API) over a GenerationBackend:
// converts the protos to and from the backend's plain structs and streams
// chunks back. Callback API: no handler blocks — GenerateStream queues
// chunks and writes them one at a time from the reactor; a client's cancel
// or deadline reaches the backend as GenerationHandle::Cancel / the
// request's deadline. Thread-safe.
//
//   GenerationService service(&backend);
//   auto server = rpc::StartServer({.address = "127.0.0.1:0"}, {&service});
#pragma once

#include "dspark/v1/generation.grpc.pb.h"
#include "router/frontend/generation_backend.h"

namespace dspark::router {

class GenerationService final : public dspark::v1::Generation::CallbackService {
 public:
  // `backend` must outlive the service and its calls.
  explicit GenerationService(GenerationBackend* backend) : backend_(backend) {}

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const dspark::v1::GenerateRequest* request,
                                     dspark::v1::GenerateResponse* response) override;
  grpc::ServerWriteReactor<dspark::v1::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* context, const dspark::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const dspark::v1::TokenizeRequest* request,
                                     dspark::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const dspark::v1::DetokenizeRequest* request,
                                       dspark::v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const dspark::v1::ListModelsRequest* request,
                                       dspark::v1::ListModelsResponse* response) override;

 private:
  GenerationBackend* backend_;
};

// The backend's request for a proto request (no validation beyond the
// proto's own shape: a missing input is InvalidArgument).
absl::StatusOr<GenerationRequest> FromProto(const dspark::v1::GenerateRequest& request,
                                            absl::Time deadline);

}  // namespace dspark::router
