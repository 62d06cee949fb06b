// absl::Status <-> grpc::Status. The only place the two meet (STYLE.md):
// everything else in dspark speaks absl::Status. Stateless, thread-safe.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace dspark::rpc {

// Same code, same message.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// A google.rpc.Code number (as SpecResponse.code carries it) and a message.
absl::Status StatusFromCode(int code, const std::string& message);

}  // namespace dspark::rpc
