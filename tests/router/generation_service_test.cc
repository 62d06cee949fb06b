// dspark.v1.Generation through a real in-process gRPC server: a router
// (public service + Registry on one port) over fake verify workers.
// Generate, GenerateStream, errors with their codes, client cancellation
// and deadlines reaching the worker, Tokenize / Detokenize / ListModels.
#include "router/grpc/generation_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "common/rpc/channel.h"
#include "dspark/internal/v1/registry.grpc.pb.h"
#include "tests/router/router_test_util.h"

namespace dspark::router {
namespace {

namespace pb = dspark::v1;
using dspark::testing::FakeVerifyWorker;
using dspark::testing::FakeVerifyWorkerOptions;
using testing::TestCluster;

constexpr absl::Duration kWait = absl::Seconds(10);

std::vector<int32_t> Ids(const std::string& text) { return {text.begin(), text.end()}; }

pb::GenerateRequest Prompt(const std::string& prompt, int max_tokens) {
  pb::GenerateRequest r;
  r.set_prompt(prompt);
  r.mutable_stop()->set_max_tokens(max_tokens);
  return r;
}

TEST(GenerationServiceTest, GenerateReturnsTheWholeCompletion) {
  TestCluster cluster(1, 4);
  auto client = cluster.Client();
  grpc::ClientContext context;
  pb::GenerateResponse response;
  ASSERT_TRUE(client->Generate(&context, Prompt("hello", 7), &response).ok());
  const std::vector<int32_t> want = FakeVerifyWorker::Continuation(Ids("hello"), 7);
  EXPECT_EQ(std::vector<int32_t>(response.token_ids().begin(), response.token_ids().end()), want);
  EXPECT_EQ(response.text(), std::string(want.begin(), want.end()));
  EXPECT_EQ(response.finish_reason(), pb::FINISH_REASON_LENGTH);
  EXPECT_EQ(response.usage().prompt_tokens(), 5);
  EXPECT_EQ(response.usage().completion_tokens(), 7);
  EXPECT_EQ(response.usage().total_tokens(), 12);
  EXPECT_EQ(response.model(), testing::kModelId);
}

TEST(GenerationServiceTest, StreamDeltasConcatenateToTheCompletion) {
  TestCluster cluster(1, 4);
  auto client = cluster.Client();
  pb::GenerateRequest request;
  request.mutable_token_ids()->add_ids('h');
  request.mutable_token_ids()->add_ids('i');
  request.mutable_stop()->set_max_tokens(9);
  request.mutable_sampling()->set_seed(5);
  grpc::ClientContext context;
  auto reader = client->GenerateStream(&context, request);
  pb::GenerateStreamResponse message;
  std::string text;
  std::vector<int32_t> ids;
  int messages = 0;
  pb::GenerateStreamResponse last;
  while (reader->Read(&message)) {
    ++messages;
    text += message.text_delta();
    ids.insert(ids.end(), message.token_ids().begin(), message.token_ids().end());
    last = message;
  }
  ASSERT_TRUE(reader->Finish().ok());
  const std::vector<int32_t> want = FakeVerifyWorker::Continuation(Ids("hi"), 9);
  EXPECT_EQ(ids, want);
  EXPECT_EQ(text, std::string(want.begin(), want.end()));
  EXPECT_EQ(messages, 9) << "one message per worker event";
  EXPECT_EQ(last.finish_reason(), pb::FINISH_REASON_LENGTH);
  EXPECT_EQ(last.usage().completion_tokens(), 9);
  EXPECT_EQ(cluster.worker(0).requests()[0].sampling().seed(), 5u);
}

TEST(GenerationServiceTest, BadRequestsGetTheirCodesAndReasons) {
  TestCluster cluster(1, 4);
  auto client = cluster.Client();
  struct Case {
    pb::GenerateRequest request;
    grpc::StatusCode code;
    std::string reason;
  };
  std::vector<Case> cases;
  cases.push_back({pb::GenerateRequest(), grpc::StatusCode::INVALID_ARGUMENT, "no input"});
  cases.push_back({Prompt("", 3), grpc::StatusCode::INVALID_ARGUMENT, "prompt is empty"});
  cases.push_back({Prompt("x", -3), grpc::StatusCode::INVALID_ARGUMENT, "max_tokens"});
  auto bad_temp = Prompt("x", 3);
  bad_temp.mutable_sampling()->set_temperature(-1);
  cases.push_back({bad_temp, grpc::StatusCode::INVALID_ARGUMENT, "temperature"});
  auto bad_model = Prompt("x", 3);
  bad_model.set_model("nope");
  cases.push_back({bad_model, grpc::StatusCode::NOT_FOUND, "nope"});
  for (const Case& c : cases) {
    grpc::ClientContext unary_context;
    pb::GenerateResponse response;
    grpc::Status status = client->Generate(&unary_context, c.request, &response);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_NE(status.error_message().find(c.reason), std::string::npos) << status.error_message();

    grpc::ClientContext stream_context;
    auto reader = client->GenerateStream(&stream_context, c.request);
    pb::GenerateStreamResponse message;
    EXPECT_FALSE(reader->Read(&message));
    status = reader->Finish();
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
  }
  EXPECT_TRUE(cluster.worker(0).requests().empty());
}

TEST(GenerationServiceTest, FullQueueIsResourceExhausted) {
  RouterBackendOptions options;
  options.max_queue = 0;
  TestCluster cluster(1, 1, options, FakeVerifyWorkerOptions{.pause_after = 1});
  auto client = cluster.Client();
  grpc::ClientContext first_context;
  auto first = client->GenerateStream(&first_context, Prompt("a", 3));
  ASSERT_TRUE(cluster.worker(0).WaitForPaused(1, kWait));
  grpc::ClientContext context;
  pb::GenerateResponse response;
  EXPECT_EQ(client->Generate(&context, Prompt("b", 3), &response).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  cluster.worker(0).Resume();
  pb::GenerateStreamResponse message;
  while (first->Read(&message)) {
  }
  EXPECT_TRUE(first->Finish().ok());
}

TEST(GenerationServiceTest, ClientCancelMidStreamReachesTheWorker) {
  TestCluster cluster(1, 1, {}, FakeVerifyWorkerOptions{.pause_after = 2});
  auto client = cluster.Client();
  grpc::ClientContext context;
  auto reader = client->GenerateStream(&context, Prompt("a", 20));
  pb::GenerateStreamResponse message;
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_TRUE(reader->Read(&message));
  context.TryCancel();
  ASSERT_TRUE(cluster.worker(0).WaitForCancelled(1, kWait));
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(cluster.worker(0).WaitForIdle(kWait));
  ASSERT_TRUE(cluster.backend().WaitIdle(absl::Now() + kWait));
  EXPECT_EQ(cluster.registry().Snapshot()[0].assigned, 0);
}

TEST(GenerationServiceTest, ClientDeadlineReachesTheWorker) {
  TestCluster cluster(1, 1, {}, FakeVerifyWorkerOptions{.pause_after = 1});
  auto client = cluster.Client();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(300)));
  pb::GenerateResponse response;
  EXPECT_EQ(client->Generate(&context, Prompt("a", 5), &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(cluster.worker(0).WaitForCancelled(1, kWait));
  ASSERT_TRUE(cluster.backend().WaitIdle(absl::Now() + kWait));
}

TEST(GenerationServiceTest, TokenizeMatchesTheTokenizer) {
  TestCluster cluster(1, 1);
  auto model = testing::TestModel();
  auto client = cluster.Client();
  {
    grpc::ClientContext context;
    pb::TokenizeRequest request;
    request.set_text("hello <|im_end|>");
    pb::TokenizeResponse response;
    ASSERT_TRUE(client->Tokenize(&context, request, &response).ok());
    auto want = model->EncodeText("hello <|im_end|>");
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(std::vector<int32_t>(response.token_ids().begin(), response.token_ids().end()),
              *want);
    EXPECT_EQ(response.token_ids(response.token_ids_size() - 1), testing::kImEnd);
  }
  {
    grpc::ClientContext context;
    pb::TokenizeRequest request;
    auto* m = request.mutable_chat()->add_messages();
    m->set_role("user");
    m->set_content("hi");
    pb::TokenizeResponse response;
    ASSERT_TRUE(client->Tokenize(&context, request, &response).ok());
    auto want = model->EncodeChat({{"user", "hi"}});
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(std::vector<int32_t>(response.token_ids().begin(), response.token_ids().end()),
              *want);
  }
  {
    grpc::ClientContext context;
    pb::TokenizeRequest request;
    request.set_text("\xff");
    pb::TokenizeResponse response;
    // Protobuf itself refuses a proto3 string that is not UTF-8 (which
    // code depends on where it is caught); the backend's own check covers
    // the HTTP front end.
    EXPECT_FALSE(client->Tokenize(&context, request, &response).ok());
  }
  {
    grpc::ClientContext context;
    pb::DetokenizeRequest request;
    for (char ch : std::string("round trip")) request.add_token_ids(ch);
    request.add_token_ids(testing::kImEnd);  // special: skipped
    pb::DetokenizeResponse response;
    ASSERT_TRUE(client->Detokenize(&context, request, &response).ok());
    EXPECT_EQ(response.text(), "round trip");
  }
  {
    grpc::ClientContext context;
    pb::DetokenizeRequest request;
    request.add_token_ids(100000);
    pb::DetokenizeResponse response;
    EXPECT_EQ(client->Detokenize(&context, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext context;
    pb::ListModelsResponse response;
    ASSERT_TRUE(client->ListModels(&context, pb::ListModelsRequest(), &response).ok());
    ASSERT_EQ(response.models_size(), 1);
    EXPECT_EQ(response.models(0).id(), testing::kModelId);
    EXPECT_EQ(response.models(0).context_length(), testing::kContext);
  }
}

TEST(GenerationServiceTest, RegistryIsServedOnTheSamePort) {
  TestCluster cluster(0, 1);
  auto registry =
      dspark::internal::v1::Registry::NewStub(rpc::MakeChannel(cluster.router_address()));
  grpc::ClientContext context;
  dspark::internal::v1::RegisterRequest request;
  request.set_kind(dspark::internal::v1::WORKER_KIND_VERIFY);
  request.set_address("127.0.0.1:5");
  request.set_model(testing::kModelId);
  request.set_max_sessions(2);
  dspark::internal::v1::RegisterResponse response;
  ASSERT_TRUE(registry->Register(&context, request, &response).ok());
  EXPECT_FALSE(response.worker_id().empty());
  EXPECT_GT(response.heartbeat_interval_ms(), 0);
  EXPECT_TRUE(cluster.backend().Healthy());
}

}  // namespace
}  // namespace dspark::router
