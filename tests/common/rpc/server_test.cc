// StartServer's answer to requests whose bytes are not the method's message:
// INVALID_ARGUMENT naming the message type, for unary and server-streaming
// methods, without the handler running; well-formed requests and the
// handler's own errors pass through untouched. Raw bytes go out through
// grpc::GenericStub to a test-local dspark.v1.Generation service.
#include "common/rpc/server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/rpc/channel.h"
#include "dspark/v1/generation.grpc.pb.h"
#include "tests/common/rpc/raw_call.h"

namespace dspark::rpc {
namespace {

namespace pb = dspark::v1;

constexpr absl::Duration kWait = absl::Seconds(10);
constexpr char kGenerate[] = "/dspark.v1.Generation/Generate";
constexpr char kGenerateStream[] = "/dspark.v1.Generation/GenerateStream";
// A prompt that makes the handlers below fail with INTERNAL themselves.
constexpr char kFailPrompt[] = "fail";

// Answers "ok" (one message when streaming), or INTERNAL for kFailPrompt;
// counts the calls its handlers saw.
class TestGeneration final : public pb::Generation::CallbackService {
 public:
  int handled() const { return handled_.load(); }

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const pb::GenerateRequest* request,
                                     pb::GenerateResponse* response) override {
    ++handled_;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (request->prompt() == kFailPrompt) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "the handler failed"));
    } else {
      response->set_text("ok");
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }

  grpc::ServerWriteReactor<pb::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* /*context*/, const pb::GenerateRequest* request) override {
    ++handled_;
    return new Writer(request->prompt() == kFailPrompt);
  }

 private:
  class Writer final : public grpc::ServerWriteReactor<pb::GenerateStreamResponse> {
   public:
    explicit Writer(bool fail) {
      if (fail) {
        Finish(grpc::Status(grpc::StatusCode::INTERNAL, "the handler failed"));
        return;
      }
      message_.set_text_delta("ok");
      StartWrite(&message_);
    }
    void OnWriteDone(bool /*ok*/) override { Finish(grpc::Status::OK); }
    void OnDone() override { delete this; }

   private:
    pb::GenerateStreamResponse message_;
  };

  std::atomic<int> handled_{0};
};

std::string Serialized(const std::string& prompt) {
  pb::GenerateRequest request;
  request.set_prompt(prompt);
  return request.SerializeAsString();
}

// Byte strings that are not a GenerateRequest, each for its own reason.
std::vector<std::pair<std::string, std::string>> MalformedRequests() {
  return {
      {"all ones", std::string("\xff\xff\xff\xff", 4)},
      {"truncated varint", std::string("\x28\x80", 2)},         // field 5, varint cut off
      {"wire type 7", std::string("\x0f", 1)},                  // field 1, no such wire type
      {"truncated length", std::string("\x0a\x05", 2) + "ab"},  // prompt: 5 bytes promised, 2 sent
      {"field number 0", std::string("\x00\x01", 2)},
  };
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = StartServer({}, {&service_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = std::make_unique<grpc::GenericStub>(
        MakeChannel("127.0.0.1:" + std::to_string(server_->port())));
  }

  // A unary call with `bytes` as its request.
  grpc::Status Unary(const std::string& method, const std::string& bytes) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::Status status;
    absl::Notification done;
    stub_->UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                     [&](grpc::Status s) {
                       status = std::move(s);
                       done.Notify();
                     });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(kWait + absl::Seconds(5)));
    return status;
  }

  // A server-streaming call with `bytes` as its request (none if nullopt);
  // the status, and in `messages` how many responses came.
  grpc::Status Stream(const std::string& method, const std::optional<std::string>& bytes,
                      int* messages) {
    return rpc::testing::RawCall(*stub_, method, bytes, kWait, messages);
  }

  TestGeneration service_;
  std::unique_ptr<RunningServer> server_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

TEST_F(ServerTest, MalformedUnaryRequestIsInvalidArgument) {
  for (const auto& [what, bytes] : MalformedRequests()) {
    grpc::Status status = Unary(kGenerate, bytes);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find("malformed request"), std::string::npos) << what;
    EXPECT_NE(status.error_message().find("dspark.v1.GenerateRequest"), std::string::npos)
        << what << ": " << status.error_message();
  }
  EXPECT_EQ(service_.handled(), 0);
}

TEST_F(ServerTest, MalformedStreamingRequestIsInvalidArgument) {
  for (const auto& [what, bytes] : MalformedRequests()) {
    int messages = -1;
    grpc::Status status = Stream(kGenerateStream, bytes, &messages);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find("dspark.v1.GenerateRequest"), std::string::npos)
        << what << ": " << status.error_message();
    EXPECT_EQ(messages, 0) << what;
  }
  EXPECT_EQ(service_.handled(), 0);
}

TEST_F(ServerTest, MissingRequestMessageIsInvalidArgument) {
  int messages = -1;
  EXPECT_EQ(Stream(kGenerateStream, std::nullopt, &messages).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Stream(kGenerate, std::nullopt, &messages).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(service_.handled(), 0);
}

TEST_F(ServerTest, WellFormedRequestsStillSucceed) {
  // Interleaved with malformed ones on the same server and channel.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Unary(kGenerate, MalformedRequests()[0].second).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    grpc::Status unary = Unary(kGenerate, Serialized("hello"));
    EXPECT_TRUE(unary.ok()) << unary.error_message();
    // The empty string is a valid proto3 message: every field at its default.
    EXPECT_TRUE(Unary(kGenerate, "").ok());
    int messages = 0;
    grpc::Status stream = Stream(kGenerateStream, Serialized("hello"), &messages);
    EXPECT_TRUE(stream.ok()) << stream.error_message();
    EXPECT_EQ(messages, 1);
  }
  EXPECT_EQ(service_.handled(), 6);
}

TEST_F(ServerTest, HandlerErrorsAreNotRewritten) {
  grpc::Status unary = Unary(kGenerate, Serialized(kFailPrompt));
  EXPECT_EQ(unary.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(unary.error_message(), "the handler failed");
  int messages = -1;
  grpc::Status stream = Stream(kGenerateStream, Serialized(kFailPrompt), &messages);
  EXPECT_EQ(stream.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(stream.error_message(), "the handler failed");
  EXPECT_EQ(service_.handled(), 2);
}

TEST_F(ServerTest, UnknownMethodIsStillUnimplemented) {
  EXPECT_EQ(Unary("/dspark.v1.Generation/NoSuchMethod", Serialized("hello")).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace dspark::rpc
