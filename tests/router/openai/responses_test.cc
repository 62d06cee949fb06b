#include "router/openai/responses.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dspark::router::openai {
namespace {

using json = nlohmann::ordered_json;  // fields in OpenAI's order
using ::testing::StartsWith;

// The data of each SSE event in `events`.
std::vector<json> Events(const std::string& events) {
  std::vector<json> out;
  for (absl::string_view event : absl::StrSplit(events, "\n\n", absl::SkipEmpty())) {
    EXPECT_TRUE(absl::ConsumePrefix(&event, "data: ")) << event;
    out.push_back(event == "[DONE]" ? json("[DONE]") : json::parse(event));
  }
  return out;
}

GenerationChunk Text(const std::string& text) {
  GenerationChunk chunk;
  chunk.text = text;
  chunk.token_ids = {1};
  return chunk;
}

GenerationChunk Last(const std::string& text, Finish finish) {
  GenerationChunk chunk = Text(text);
  chunk.finish = finish;
  chunk.prompt_tokens = 4;
  chunk.completion_tokens = 2;
  chunk.drafted_tokens = 6;
  chunk.verified_tokens = 5;
  chunk.accepted_tokens = 1;
  chunk.target_steps = 2;
  return chunk;
}

TEST(ResponsesTest, ChatStreamHasOpenAisShape) {
  StreamWriter writer(NewResponseMeta(Endpoint::kChatCompletions, "m"), /*include_usage=*/true);
  // In order: the writer keeps state between calls.
  std::string sse = writer.Chunk(Text("Hel"));
  sse += writer.Chunk(Last("lo", Finish::kStop));
  sse += writer.End(absl::OkStatus());
  std::vector<json> events = Events(sse);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0]["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_EQ(events[1]["choices"][0]["delta"], json({{"content", "Hel"}}));
  EXPECT_EQ(events[2]["choices"][0]["delta"], json({{"content", "lo"}}));
  EXPECT_TRUE(events[2]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(events[3]["choices"][0]["delta"], json::object());
  EXPECT_EQ(events[3]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(events[3]["dspark"]["drafted_tokens"], 6);
  EXPECT_EQ(events[4]["choices"], json::array());
  EXPECT_EQ(events[4]["usage"],
            json({{"prompt_tokens", 4}, {"completion_tokens", 2}, {"total_tokens", 6}}));
  EXPECT_EQ(events[5], "[DONE]");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(events[i]["object"], "chat.completion.chunk");
    EXPECT_EQ(events[i]["id"], events[0]["id"]);
    EXPECT_THAT(events[i]["id"].get<std::string>(), StartsWith("chatcmpl-"));
    EXPECT_EQ(events[i]["model"], "m");
    if (i < 4) {
      EXPECT_TRUE(events[i]["usage"].is_null());
    }
  }
}

TEST(ResponsesTest, CompletionStreamPutsTheLastTextWithItsReason) {
  StreamWriter writer(NewResponseMeta(Endpoint::kCompletions, "m"), /*include_usage=*/false);
  std::string sse = writer.Chunk(Text("a"));
  sse += writer.Chunk(Text(""));
  sse += writer.Chunk(Last("b", Finish::kLength));
  sse += writer.End(absl::OkStatus());
  std::vector<json> events = Events(sse);
  ASSERT_EQ(events.size(), 3u);  // the empty chunk sends nothing
  EXPECT_EQ(events[0]["choices"][0]["text"], "a");
  EXPECT_EQ(events[1]["choices"][0]["text"], "b");
  EXPECT_EQ(events[1]["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(events[1].contains("usage"));
  EXPECT_EQ(events[2], "[DONE]");
}

TEST(ResponsesTest, StreamErrorsEndWithAnErrorEventAndNoDone) {
  StreamWriter writer(NewResponseMeta(Endpoint::kCompletions, "m"), /*include_usage=*/true);
  std::vector<json> events = Events(writer.End(absl::DeadlineExceededError("slow")));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["error"]["message"], "slow");
  EXPECT_EQ(events[0]["error"]["code"], "timeout");
}

TEST(ResponsesTest, InvalidUtf8InGeneratedTextIsReplacedNotThrown) {
  StreamWriter writer(NewResponseMeta(Endpoint::kCompletions, "m"), false);
  std::vector<json> events = Events(writer.Chunk(Text("\xe2\x82")));  // half a euro sign
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["choices"][0]["text"], "\xef\xbf\xbd");  // U+FFFD
}

TEST(ResponsesTest, StatusesMapToHttpAndOpenAiTypes) {
  EXPECT_EQ(HttpStatusFor(absl::InvalidArgumentError("x")), 400);
  EXPECT_EQ(HttpStatusFor(absl::NotFoundError("x")), 404);
  EXPECT_EQ(HttpStatusFor(absl::ResourceExhaustedError("x")), 429);
  EXPECT_EQ(HttpStatusFor(absl::UnavailableError("x")), 503);
  EXPECT_EQ(HttpStatusFor(absl::DeadlineExceededError("x")), 504);
  EXPECT_EQ(HttpStatusFor(absl::InternalError("x")), 500);
  EXPECT_EQ(HttpStatusFor(absl::CancelledError("x")), 500);

  json error = ErrorJson(InvalidParam("top_p", "top_p must be in (0, 1]"));
  EXPECT_EQ(error, json({{"error",
                          {{"message", "top_p must be in (0, 1]"},
                           {"type", "invalid_request_error"},
                           {"param", "top_p"},
                           {"code", nullptr}}}}));
  EXPECT_EQ(ErrorJson(absl::NotFoundError("model 'x' not found"))["error"]["code"],
            "model_not_found");
  EXPECT_EQ(ErrorJson(absl::ResourceExhaustedError("full"))["error"]["type"], "rate_limit_error");
}

TEST(ResponsesTest, WholeCompletionAndModels) {
  const ResponseMeta meta = NewResponseMeta(Endpoint::kCompletions, "m");
  json body = CompletionJson(meta, "hi", Last("", Finish::kLength));
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"][0]["text"], "hi");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["total_tokens"], 6);
  EXPECT_EQ(body["dspark"], json({{"drafted_tokens", 6},
                                  {"verified_tokens", 5},
                                  {"accepted_tokens", 1},
                                  {"target_steps", 2}}));

  json models = ModelListJson({{"a", 2048, "d"}, {"b", 4096, ""}});
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][1]["id"], "b");
  EXPECT_EQ(models["data"][1]["context_length"], 4096);
  EXPECT_EQ(models["data"][0]["dspark"]["drafter"], "d");
}

}  // namespace
}  // namespace dspark::router::openai
