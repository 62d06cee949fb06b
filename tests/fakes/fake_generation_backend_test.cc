#include "tests/fakes/fake_generation_backend.h"

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace dspark::testing {
namespace {

using router::Finish;
using router::GenerationChunk;
using router::GenerationRequest;

struct Result {
  std::vector<GenerationChunk> chunks;
  absl::Status status;
  absl::Notification done;
  std::string Text() const {
    std::string text;
    for (const GenerationChunk& chunk : chunks) text += chunk.text;
    return text;
  }
};

// Starts `request`; the result fills in as the fake generates.
std::unique_ptr<router::GenerationHandle> Start(FakeGenerationBackend& fake,
                                                GenerationRequest request, Result& result) {
  auto handle = fake.Start(
      std::move(request), [&result](GenerationChunk chunk) { result.chunks.push_back(chunk); },
      [&result](absl::Status status) {
        result.status = status;
        result.done.Notify();
      });
  EXPECT_TRUE(handle.ok()) << handle.status();
  return handle.ok() ? *std::move(handle) : nullptr;
}

TEST(FakeGenerationBackendTest, RepeatsThePromptOneTokenPerChunk) {
  FakeGenerationBackend fake;
  GenerationRequest request;
  request.input = std::string("abc");
  request.max_tokens = 5;
  Result result;
  auto handle = Start(fake, request, result);
  ASSERT_TRUE(result.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(result.status.ok());
  EXPECT_EQ(result.Text(), "abcab");
  ASSERT_EQ(result.chunks.size(), 5u);
  EXPECT_EQ(result.chunks.back().finish, Finish::kLength);
  EXPECT_EQ(result.chunks.back().completion_tokens, 5);
  EXPECT_EQ(result.chunks.back().prompt_tokens, 3);
  EXPECT_EQ(result.chunks.back().model, "fake-model");
}

TEST(FakeGenerationBackendTest, StopStringsNeverLeakIntoChunks) {
  FakeGenerationBackend fake;
  GenerationRequest request;
  request.input = std::string("hello");
  request.stop = {"llo"};
  Result result;
  auto handle = Start(fake, request, result);
  ASSERT_TRUE(result.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(result.Text(), "he");
  EXPECT_EQ(result.chunks.back().finish, Finish::kStop);
}

TEST(FakeGenerationBackendTest, ValidatesLikeABackend) {
  FakeGenerationBackend fake;
  auto start = [&fake](GenerationRequest request) {
    return fake
        .Start(
            std::move(request), [](GenerationChunk) {}, [](absl::Status) {})
        .status();
  };
  GenerationRequest request;
  request.input = std::string("x");
  GenerationRequest bad = request;
  bad.model = "other";
  EXPECT_EQ(start(bad).code(), absl::StatusCode::kNotFound);
  bad = request;
  bad.temperature = -1;
  EXPECT_EQ(start(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = request;
  bad.input = std::string();
  EXPECT_EQ(start(bad).code(), absl::StatusCode::kInvalidArgument);
  fake.FailNextStart(absl::ResourceExhaustedError("full"));
  EXPECT_EQ(start(request).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(fake.started(), 0);
}

TEST(FakeGenerationBackendTest, HoldsUntilCancelled) {
  FakeGenerationBackend fake;
  fake.SetHoldAfterChunks(1);
  GenerationRequest request;
  request.input = std::string("abc");
  Result result;
  auto handle = Start(fake, request, result);
  ASSERT_TRUE(fake.WaitForHeld(1, absl::Now() + absl::Seconds(10)));
  handle->Cancel();
  ASSERT_TRUE(result.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(result.Text(), "a");
  EXPECT_EQ(fake.cancelled(), 1);
  handle.reset();
  EXPECT_TRUE(fake.WaitForHandlesDestroyed(1, absl::Now() + absl::Seconds(10)));
}

}  // namespace
}  // namespace dspark::testing
