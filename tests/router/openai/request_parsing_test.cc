#include "router/openai/request_parsing.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dspark::router::openai {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ParsedRequest Parse(Endpoint endpoint, const std::string& body) {
  absl::StatusOr<ParsedRequest> parsed = ParseRequest(endpoint, body);
  EXPECT_TRUE(parsed.ok()) << parsed.status() << " for " << body;
  return parsed.ok() ? *std::move(parsed) : ParsedRequest{};
}

absl::Status Error(Endpoint endpoint, const std::string& body) {
  absl::StatusOr<ParsedRequest> parsed = ParseRequest(endpoint, body);
  EXPECT_FALSE(parsed.ok()) << body;
  return parsed.status();
}

TEST(RequestParsingTest, MapsEveryCompletionField) {
  ParsedRequest parsed = Parse(Endpoint::kCompletions, R"({
      "model": "m", "prompt": "hi", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
      "seed": -3, "stop": ["a", "b"], "n": 1, "logprobs": null, "presence_penalty": 0,
      "frequency_penalty": 0.0, "user": "u", "top_k": 40, "min_p": 0.05, "ignore_eos": true,
      "stop_token_ids": [2, 3], "echo": false, "best_of": 1, "suffix": "",
      "stream": true, "stream_options": {"include_usage": true},
      "dspark": {"speculation": "off", "max_block": 4, "min_confidence": 0.25}})");
  const GenerationRequest& request = parsed.generation;
  EXPECT_EQ(request.model, "m");
  EXPECT_EQ(std::get<std::string>(request.input), "hi");
  EXPECT_EQ(request.max_tokens, 7);
  EXPECT_FLOAT_EQ(request.temperature, 0.5f);
  EXPECT_FLOAT_EQ(request.top_p, 0.9f);
  EXPECT_TRUE(request.has_seed);
  EXPECT_EQ(request.seed, static_cast<uint64_t>(int64_t{-3}));
  EXPECT_THAT(request.stop, ElementsAre("a", "b"));
  EXPECT_EQ(request.top_k, 40);
  EXPECT_FLOAT_EQ(request.min_p, 0.05f);
  EXPECT_TRUE(request.ignore_eos);
  EXPECT_THAT(request.stop_token_ids, ElementsAre(2, 3));
  EXPECT_FALSE(request.speculation_enabled);
  EXPECT_EQ(request.max_block, 4);
  EXPECT_FLOAT_EQ(request.min_confidence, 0.25f);
  EXPECT_TRUE(parsed.stream);
  EXPECT_TRUE(parsed.include_usage);
}

TEST(RequestParsingTest, DefaultsFollowOpenAi) {
  ParsedRequest parsed = Parse(Endpoint::kCompletions, R"({"prompt": "hi"})");
  EXPECT_EQ(parsed.generation.model, "");
  EXPECT_FLOAT_EQ(parsed.generation.temperature, 1.0f);  // OpenAI samples by default
  EXPECT_EQ(parsed.generation.max_tokens, 0);            // the backend's default
  EXPECT_FALSE(parsed.generation.has_seed);
  EXPECT_TRUE(parsed.generation.speculation_enabled);
  EXPECT_FALSE(parsed.stream);
}

TEST(RequestParsingTest, PromptForms) {
  EXPECT_EQ(
      std::get<std::string>(Parse(Endpoint::kCompletions, R"({"prompt": ["x"]})").generation.input),
      "x");
  EXPECT_THAT(std::get<std::vector<int32_t>>(
                  Parse(Endpoint::kCompletions, R"({"prompt": [1, 2]})").generation.input),
              ElementsAre(1, 2));
  EXPECT_THAT(std::get<std::vector<int32_t>>(
                  Parse(Endpoint::kCompletions, R"({"prompt": [[5]]})").generation.input),
              ElementsAre(5));
  EXPECT_THAT(
      std::get<std::string>(
          Parse(Endpoint::kCompletions, R"({"prompt": "a", "stop": "x"})").generation.input),
      "a");
}

TEST(RequestParsingTest, ChatMessages) {
  ParsedRequest parsed = Parse(Endpoint::kChatCompletions, R"({
      "messages": [{"role": "developer", "content": "be brief"},
                   {"role": "user", "name": "bob",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                   {"role": "assistant", "content": null}],
      "max_tokens": 5, "max_completion_tokens": 9, "logprobs": false, "tools": [],
      "tool_choice": "none", "response_format": {"type": "text"}})");
  const auto& turns = std::get<std::vector<ChatTurn>>(parsed.generation.input);
  ASSERT_EQ(turns.size(), 3u);
  EXPECT_EQ(turns[0].role, "system");
  EXPECT_EQ(turns[0].content, "be brief");
  EXPECT_EQ(turns[1].role, "user");
  EXPECT_EQ(turns[1].content, "a\nb");
  EXPECT_EQ(turns[2].role, "assistant");
  EXPECT_EQ(turns[2].content, "");
  EXPECT_EQ(parsed.generation.max_tokens, 9);  // max_completion_tokens wins
}

TEST(RequestParsingTest, ErrorsNameTheirField) {
  struct Case {
    Endpoint endpoint;
    std::string body;
    std::string param;  // "" when the error names none
    std::string message;
  };
  const Endpoint kC = Endpoint::kCompletions;
  const Endpoint kChat = Endpoint::kChatCompletions;
  const std::vector<Case> cases = {
      {kC, "{", "", "malformed JSON"},
      {kC, "[1]", "", "JSON object"},
      {kC, "{\"prompt\": \"\xff\"}", "", "malformed JSON"},
      {kC, R"({"prompt": "\ud800"})", "", "malformed JSON"},
      {kC, R"({})", "prompt", "missing"},
      {kC, R"({"prompt": 5})", "prompt", "must be"},
      {kC, R"({"prompt": ["a", "b"]})", "prompt", "batched"},
      {kC, R"({"prompt": [1, "a"]})", "prompt", "integer"},
      {kC, R"({"prompt": [10000000000]})", "prompt", "out of range"},
      {kC, R"({"prompt": "a", "max_tokens": 0})", "max_tokens", "at least 1"},
      {kC, R"({"prompt": "a", "max_tokens": 1.5})", "max_tokens", "integer"},
      {kC, R"({"prompt": "a", "max_tokens": "9"})", "max_tokens", "integer"},
      {kC, R"({"prompt": "a", "temperature": "hot"})", "temperature", "number"},
      {kC, R"({"prompt": "a", "n": 2})", "n", "n=1"},
      {kC, R"({"prompt": "a", "logprobs": 1})", "logprobs", "not supported"},
      {kC, R"({"prompt": "a", "echo": true})", "echo", "not supported"},
      {kC, R"({"prompt": "a", "best_of": 3})", "best_of", "not supported"},
      {kC, R"({"prompt": "a", "presence_penalty": 0.5})", "presence_penalty", "not supported"},
      {kC, R"({"prompt": "a", "frequency_penalty": -1})", "frequency_penalty", "not supported"},
      {kC, R"({"prompt": "a", "logit_bias": {"1": 5}})", "logit_bias", "not supported"},
      {kC, R"({"prompt": "a", "stop": 5})", "stop", "string"},
      {kC, R"({"prompt": "a", "stop": ["x", 1]})", "stop", "string"},
      {kC, R"({"prompt": "a", "stream": "yes"})", "stream", "boolean"},
      {kC, R"({"prompt": "a", "stream_options": {"include_usage": true}})", "stream_options",
       "only allowed"},
      {kC, R"({"prompt": "a", "stream": true, "stream_options": {"x": 1}})", "stream_options.x",
       "unrecognized"},
      {kC, R"({"prompt": "a", "max_token": 5})", "max_token", "unrecognized"},
      {kC, R"({"prompt": "a", "messages": []})", "messages", "unrecognized"},
      {kC, R"({"prompt": "a", "dspark": {"speculation": "maybe"}})", "dspark.speculation", "auto"},
      {kC, R"({"prompt": "a", "dspark": {"bogus": 1}})", "dspark.bogus", "unrecognized"},
      {kC, R"({"prompt": "a", "dspark": []})", "dspark", "object"},
      {kC, R"({"prompt": "a", "model": 3})", "model", "string"},
      {kChat, R"({})", "messages", "missing"},
      {kChat, R"({"messages": []})", "messages", "empty"},
      {kChat, R"({"messages": "hi"})", "messages", "array"},
      {kChat, R"({"messages": [5]})", "messages[0]", "object"},
      {kChat, R"({"messages": [{"content": "x"}]})", "messages[0].role", "string"},
      {kChat, R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role",
       "invalid role"},
      {kChat, R"({"messages": [{"role": "tool", "content": "x"}]})", "messages[0].role",
       "not supported"},
      {kChat, R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content", "string"},
      {kChat,
       R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
       "messages[0].content", "image_url"},
      {kChat, R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})",
       "messages[0].content", "text"},
      {kChat, R"({"messages": [{"role": "user", "content": "x", "extra": 1}]})",
       "messages[0].extra", "unrecognized"},
      {kChat, R"({"messages": [{"role": "user", "content": "x"}], "tools": [{}]})", "tools",
       "not supported"},
      {kChat, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true})", "logprobs",
       "not supported"},
      {kChat, R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -4})",
       "max_completion_tokens", "at least 1"},
      {kChat, R"({"messages": [{"role": "user", "content": "x"}], "prompt": "x"})", "prompt",
       "unrecognized"},
  };
  for (const Case& c : cases) {
    absl::Status status = Error(c.endpoint, c.body);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(ErrorParam(status), c.param) << c.body;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message)) << c.body;
  }
}

TEST(RequestParsingTest, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  EXPECT_EQ(Error(Endpoint::kCompletions, R"({"prompt": )" + deep + "}").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RequestParsingTest, HugeMaxTokensReachesTheBackendClamped) {
  // Out of int range: the backend rejects it as over its limit, with its reason.
  EXPECT_EQ(Parse(Endpoint::kCompletions, R"({"prompt": "a", "max_tokens": 99999999999})")
                .generation.max_tokens,
            2147483647);
}

}  // namespace
}  // namespace dspark::router::openai
