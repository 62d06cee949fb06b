// Test helper: a gRPC call with arbitrary request bytes, whatever the
// method's message types (to send what no generated stub would: malformed
// protobuf, or no request at all). Not for production code.
#pragma once

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"

namespace dspark::rpc::testing {

// Calls `method` ("/package.Service/Method") through `stub` with `bytes` as
// the request (none when nullopt), as a streaming call that reads every
// response, so unary and server-streaming methods alike; returns the status
// and sets `messages` to the number of responses. Fails the running test if
// the completion queue breaks.
grpc::Status RawCall(grpc::GenericStub& stub, const std::string& method,
                     const std::optional<std::string>& bytes, absl::Duration deadline,
                     int* messages);

}  // namespace dspark::rpc::testing
