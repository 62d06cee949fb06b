// Every bad input of issue 7 item 8 that reaches the backend: Start
// returns InvalidArgument (NotFound for an unknown model) naming the
// problem, and nothing is started — no worker call, nothing queued. Also
// what validation resolves: seed, EOS stop ids, max_tokens defaults.
#include "router/core/request_validation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "tests/router/router_test_util.h"

namespace dspark::router {
namespace {

using testing::TestCluster;
using testing::TextRequest;

struct BadCase {
  std::string name;
  std::function<void(GenerationRequest*)> mutate;
  absl::StatusCode code;
  std::string reason;  // a substring of the message
};

std::vector<BadCase> BadCases() {
  using R = GenerationRequest;
  return {
      {"empty prompt", [](R* r) { r->input = std::string(); }, absl::StatusCode::kInvalidArgument,
       "prompt is empty"},
      {"prompt longer than the context",
       [](R* r) { r->input = std::string(testing::kContext, 'x'); },
       absl::StatusCode::kInvalidArgument, "context"},
      {"max_tokens negative", [](R* r) { r->max_tokens = -1; }, absl::StatusCode::kInvalidArgument,
       "max_tokens"},
      {"max_tokens above the limit", [](R* r) { r->max_tokens = 5000; },
       absl::StatusCode::kInvalidArgument, "above the limit"},
      {"unknown model", [](R* r) { r->model = "gpt-17"; }, absl::StatusCode::kNotFound, "gpt-17"},
      {"invalid UTF-8", [](R* r) { r->input = std::string("ab\xff\xfe"); },
       absl::StatusCode::kInvalidArgument, "UTF-8"},
      {"temperature < 0", [](R* r) { r->temperature = -0.5f; }, absl::StatusCode::kInvalidArgument,
       "temperature"},
      {"temperature NaN", [](R* r) { r->temperature = std::nanf(""); },
       absl::StatusCode::kInvalidArgument, "temperature"},
      {"top_p 0", [](R* r) { r->top_p = 0.0f; }, absl::StatusCode::kInvalidArgument, "top_p"},
      {"top_p above 1", [](R* r) { r->top_p = 1.5f; }, absl::StatusCode::kInvalidArgument, "top_p"},
      {"top_k < 0", [](R* r) { r->top_k = -1; }, absl::StatusCode::kInvalidArgument, "top_k"},
      {"min_p 1", [](R* r) { r->min_p = 1.0f; }, absl::StatusCode::kInvalidArgument, "min_p"},
      {"too many stop strings", [](R* r) { r->stop.assign(17, "x"); },
       absl::StatusCode::kInvalidArgument, "too many stop strings"},
      {"too long stop string", [](R* r) { r->stop = {std::string(257, 'x')}; },
       absl::StatusCode::kInvalidArgument, "257 bytes"},
      {"empty stop string", [](R* r) { r->stop = {""}; }, absl::StatusCode::kInvalidArgument,
       "stop[0] is empty"},
      {"stop string invalid UTF-8", [](R* r) { r->stop = {"\xc3"}; },
       absl::StatusCode::kInvalidArgument, "UTF-8"},
      {"stop token id out of vocabulary",
       [](R* r) {
         r->stop_token_ids = {5, 9999};
       },
       absl::StatusCode::kInvalidArgument, "stop_token_ids[1]"},
      {"empty token ids", [](R* r) { r->input = std::vector<int32_t>(); },
       absl::StatusCode::kInvalidArgument, "token_ids is empty"},
      {"token id out of vocabulary",
       [](R* r) {
         r->input = std::vector<int32_t>{1, 258};
       },
       absl::StatusCode::kInvalidArgument, "outside the vocabulary"},
      {"negative token id", [](R* r) { r->input = std::vector<int32_t>{-1}; },
       absl::StatusCode::kInvalidArgument, "outside the vocabulary"},
      {"empty chat", [](R* r) { r->input = std::vector<ChatTurn>(); },
       absl::StatusCode::kInvalidArgument, "no messages"},
      {"unknown chat role",
       [](R* r) {
         r->input = std::vector<ChatTurn>{{"wizard", "hi"}};
       },
       absl::StatusCode::kInvalidArgument, "role"},
      {"chat content invalid UTF-8",
       [](R* r) {
         r->input = std::vector<ChatTurn>{{"user", "\xff"}};
       },
       absl::StatusCode::kInvalidArgument, "UTF-8"},
      {"negative max_block", [](R* r) { r->max_block = -2; }, absl::StatusCode::kInvalidArgument,
       "max_block"},
      {"min_confidence above 1", [](R* r) { r->min_confidence = 2.0f; },
       absl::StatusCode::kInvalidArgument, "min_confidence"},
      {"deadline already passed", [](R* r) { r->deadline = absl::Now() - absl::Seconds(1); },
       absl::StatusCode::kDeadlineExceeded, "deadline"},
  };
}

TEST(RequestValidationTest, EachBadInputIsRefusedWithItsReasonAndStartsNothing) {
  TestCluster cluster(/*workers=*/1, /*max_sessions=*/4);
  for (const BadCase& c : BadCases()) {
    GenerationRequest r = TextRequest("hello", 4);
    c.mutate(&r);
    bool called = false;
    auto started = cluster.backend().Start(
        r, [&](GenerationChunk) { called = true; }, [&](absl::Status) { called = true; });
    ASSERT_FALSE(started.ok()) << c.name;
    EXPECT_EQ(started.status().code(), c.code) << c.name << ": " << started.status();
    EXPECT_NE(started.status().message().find(c.reason), std::string::npos)
        << c.name << ": " << started.status();
    EXPECT_FALSE(called) << c.name;
  }
  EXPECT_EQ(cluster.backend().running(), 0);
  EXPECT_EQ(cluster.backend().queued(), 0);
  EXPECT_TRUE(cluster.worker(0).requests().empty());
  // A good request still runs after all of them.
  testing::Collector done;
  ASSERT_TRUE(cluster.backend().Start(TextRequest("hello", 3), done.OnChunk(), done.OnDone()).ok());
  ASSERT_TRUE(done.WaitDone());
  EXPECT_TRUE(done.status().ok()) << done.status();
}

TEST(RequestValidationTest, ResolvesSeedEosAndMaxTokens) {
  auto model = testing::TestModel();
  ValidationLimits limits;
  GenerationRequest r = TextRequest("hi", 0);
  auto v = ValidateRequest(r, *model, limits, /*random_seed=*/42);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->session.sampling().seed(), 42u);
  EXPECT_FLOAT_EQ(v->session.sampling().top_p(), 1.0f);
  EXPECT_EQ(std::vector<int32_t>(v->session.prompt().begin(), v->session.prompt().end()),
            (std::vector<int32_t>{'h', 'i'}));
  // Default 128, but prompt + completion must fit the 64-token context.
  EXPECT_EQ(v->session.max_tokens(), testing::kContext - 2);
  EXPECT_EQ(
      std::vector<int32_t>(v->session.stop_token_ids().begin(), v->session.stop_token_ids().end()),
      std::vector<int32_t>{testing::kImEnd});

  r.has_seed = true;
  r.seed = 7;
  r.ignore_eos = true;
  r.max_tokens = 5;
  r.stop = {"zz"};
  r.stop_token_ids = {'q'};
  r.speculation_enabled = false;
  v = ValidateRequest(r, *model, limits, 42);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->session.sampling().seed(), 7u);
  EXPECT_EQ(v->session.max_tokens(), 5);
  EXPECT_EQ(
      std::vector<int32_t>(v->session.stop_token_ids().begin(), v->session.stop_token_ids().end()),
      std::vector<int32_t>{'q'});
  ASSERT_EQ(v->session.stop_strings_size(), 1);
  EXPECT_EQ(v->session.stop_strings(0), "zz");
  EXPECT_FALSE(v->session.speculation_enabled());

  limits.max_tokens_limit = 10;
  r.max_tokens = 11;
  EXPECT_EQ(ValidateRequest(r, *model, limits, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  r.max_tokens = 0;  // the default, capped by the limit
  EXPECT_EQ(ValidateRequest(r, *model, limits, 1)->session.max_tokens(), 10);
}

TEST(RequestValidationTest, ChatIsRenderedWithTheTemplate) {
  auto model = testing::TestModel();
  GenerationRequest r;
  r.input = std::vector<ChatTurn>{{"system", "s"}, {"user", "u"}};
  auto v = ValidateRequest(r, *model, ValidationLimits(), 1);
  ASSERT_TRUE(v.ok()) << v.status();
  std::vector<int32_t> want = {testing::kImStart};
  for (char ch : std::string("system\ns")) want.push_back(ch);
  want.push_back(testing::kImEnd);
  want.push_back('\n');
  want.push_back(testing::kImStart);
  for (char ch : std::string("user\nu")) want.push_back(ch);
  want.push_back(testing::kImEnd);
  want.push_back('\n');
  want.push_back(testing::kImStart);
  for (char ch : std::string("assistant\n")) want.push_back(ch);
  EXPECT_EQ(std::vector<int32_t>(v->session.prompt().begin(), v->session.prompt().end()), want);
}

}  // namespace
}  // namespace dspark::router
