#include "tests/common/rpc/raw_call.h"

#include <memory>

#include "gtest/gtest.h"

namespace dspark::rpc::testing {

grpc::Status RawCall(grpc::GenericStub& stub, const std::string& method,
                     const std::optional<std::string>& bytes, absl::Duration deadline,
                     int* messages) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  grpc::CompletionQueue cq;
  void* tag = nullptr;
  bool ok = false;
  auto next = [&] { EXPECT_TRUE(cq.Next(&tag, &ok)); };
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&context, method, &cq);
  call->StartCall(nullptr);
  next();
  if (bytes.has_value()) {
    grpc::Slice slice(*bytes);
    grpc::ByteBuffer request(&slice, 1);
    call->Write(request, nullptr);
    next();
  }
  call->WritesDone(nullptr);
  next();
  *messages = 0;
  grpc::ByteBuffer response;
  for (;;) {
    call->Read(&response, nullptr);
    next();
    if (!ok) break;
    ++*messages;
  }
  grpc::Status status;
  call->Finish(&status, nullptr);
  next();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

}  // namespace dspark::rpc::testing
