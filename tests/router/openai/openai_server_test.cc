// The OpenAI HTTP front end end to end over loopback, against the fake
// backend: every endpoint whole and streamed, bad input, status mapping,
// client disconnects and shutdown.
#include "router/openai/openai_server.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/fakes/fake_generation_backend.h"

namespace dspark::router::openai {
namespace {

using json = nlohmann::json;
using testing::FakeGenerationBackend;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kWait = absl::Seconds(20);

struct Reply {
  int status = 0;
  json body;
};

struct StreamReply {
  int status = 0;
  std::string content_type;
  std::vector<std::string> events;  // the data of each event, "[DONE]" included
  std::string raw;
};

class OpenAiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<OpenAiServer>> server = StartOpenAiServer(&fake_, {});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void TearDown() override {
    server_->Stop();
    // Every handle let go of, whatever way its request ended.
    EXPECT_TRUE(fake_.WaitForHandlesDestroyed(fake_.started(), absl::Now() + kWait));
  }

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(absl::ToChronoSeconds(kWait));
    return client;
  }

  Reply Send(const std::string& method, const std::string& path, const std::string& body = "") {
    httplib::Client client = Client();
    httplib::Result result = method == "GET" ? client.Get(path.c_str())
                                             : client.Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(result) << httplib::to_string(result.error());
    if (!result) return {};
    Reply reply;
    reply.status = result->status;
    reply.body = json::parse(result->body, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(reply.body.is_discarded()) << result->body;
    return reply;
  }
  Reply Post(const std::string& path, const json& body) { return Send("POST", path, body.dump()); }

  // Posts a streaming request; `keep_reading` sees the raw bytes so far and
  // returns false to hang up.
  StreamReply Stream(const std::string& path, const json& body,
                     std::function<bool(const std::string&)> keep_reading = nullptr) {
    httplib::Client client = Client();
    httplib::Request request;
    request.method = "POST";
    request.path = path;
    request.body = body.dump();
    request.set_header("Content-Type", "application/json");
    StreamReply reply;
    request.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
      reply.raw.append(data, size);
      return keep_reading == nullptr || keep_reading(reply.raw);
    };
    httplib::Result result = client.send(request);
    if (result) {
      reply.status = result->status;
      reply.content_type = result->get_header_value("Content-Type");
      if (reply.status != 200) reply.raw = result->body;
    }
    for (absl::string_view event : absl::StrSplit(reply.raw, "\n\n", absl::SkipEmpty())) {
      if (absl::ConsumePrefix(&event, "data: ")) reply.events.emplace_back(event);
    }
    return reply;
  }

  FakeGenerationBackend fake_;  // outlives the server
  std::unique_ptr<OpenAiServer> server_;
};

// The text of a streamed response, checking the stream's shape on the way:
// one id throughout, the finish reason on the last choice chunk only, and
// [DONE] last.
struct Streamed {
  std::string text;
  std::string finish;
  json usage;   // from the usage chunk, if any
  json dspark;  // speculation stats from the finishing chunk
  bool role_first = false;
};

Streamed Collect(const StreamReply& reply, bool chat) {
  Streamed out;
  EXPECT_EQ(reply.status, 200);
  EXPECT_THAT(reply.content_type, StartsWith("text/event-stream"));
  EXPECT_FALSE(reply.events.empty());
  if (reply.events.empty()) return out;
  EXPECT_EQ(reply.events.back(), "[DONE]");
  std::string id;
  for (size_t i = 0; i + 1 < reply.events.size(); ++i) {
    json chunk = json::parse(reply.events[i]);
    if (id.empty()) id = chunk["id"];
    EXPECT_EQ(chunk["id"], id);
    EXPECT_EQ(chunk["object"], chat ? "chat.completion.chunk" : "text_completion");
    EXPECT_EQ(chunk["model"], "fake-model");
    if (chunk["choices"].empty()) {
      out.usage = chunk["usage"];
      continue;
    }
    EXPECT_TRUE(out.finish.empty()) << "a chunk after the finish: " << reply.events[i];
    const json& choice = chunk["choices"][0];
    if (chat) {
      if (i == 0) out.role_first = choice["delta"].value("role", "") == "assistant";
      out.text += choice["delta"].value("content", "");
    } else {
      out.text += choice["text"].get<std::string>();
    }
    if (!choice["finish_reason"].is_null()) {
      out.finish = choice["finish_reason"];
      out.dspark = chunk["dspark"];
    }
  }
  EXPECT_THAT(id, StartsWith(chat ? "chatcmpl-" : "cmpl-"));
  return out;
}

void ExpectOpenAiError(const Reply& reply, int status, const std::string& type) {
  EXPECT_EQ(reply.status, status) << reply.body;
  ASSERT_TRUE(reply.body.contains("error")) << reply.body;
  const json& error = reply.body["error"];
  EXPECT_TRUE(error["message"].is_string() && !error["message"].get<std::string>().empty());
  EXPECT_EQ(error["type"], type);
  EXPECT_TRUE(error.contains("param"));
  EXPECT_TRUE(error.contains("code"));
}

TEST_F(OpenAiServerTest, CompletionWhole) {
  Reply reply =
      Post("/v1/completions",
           {{"model", "fake-model"}, {"prompt", "hello"}, {"max_tokens", 7}, {"temperature", 0}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json& body = reply.body;
  EXPECT_THAT(body["id"].get<std::string>(), StartsWith("cmpl-"));
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_GT(body["created"].get<int64_t>(), 0);
  EXPECT_EQ(body["model"], "fake-model");
  EXPECT_EQ(body["choices"][0]["index"], 0);
  EXPECT_EQ(body["choices"][0]["text"], FakeGenerationBackend::ExpectedText("hello", 7));
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"],
            json({{"prompt_tokens", 5}, {"completion_tokens", 7}, {"total_tokens", 12}}));
  EXPECT_EQ(body["dspark"], json({{"drafted_tokens", 7},
                                  {"verified_tokens", 7},
                                  {"accepted_tokens", 3},
                                  {"target_steps", 7}}));
}

TEST_F(OpenAiServerTest, CompletionStreamConcatenatesToTheWholeText) {
  const json request = {{"prompt", "hello"}, {"max_tokens", 9}};
  Reply whole = Post("/v1/completions", request);
  ASSERT_EQ(whole.status, 200);
  json streamed_request = request;
  streamed_request["stream"] = true;
  Streamed streamed = Collect(Stream("/v1/completions", streamed_request), /*chat=*/false);
  EXPECT_EQ(streamed.text, whole.body["choices"][0]["text"]);
  EXPECT_EQ(streamed.finish, "length");
  EXPECT_EQ(streamed.dspark["drafted_tokens"], 9);
  EXPECT_TRUE(streamed.usage.is_null());  // not asked for

  streamed_request["stream_options"] = {{"include_usage", true}};
  streamed = Collect(Stream("/v1/completions", streamed_request), /*chat=*/false);
  EXPECT_EQ(streamed.text, whole.body["choices"][0]["text"]);
  EXPECT_EQ(streamed.usage, whole.body["usage"]);
}

TEST_F(OpenAiServerTest, ChatWholeAndStreamed) {
  const json messages =
      json::array({{{"role", "system"}, {"content", "be brief"}},
                   {{"role", "user"},
                    {"content", json::array({{{"type", "text"}, {"text", "hi"}},
                                             {{"type", "text"}, {"text", "there"}}})}}});
  const std::string expected = FakeGenerationBackend::ExpectedText(
      FakeGenerationBackend::RenderChat({{"system", "be brief"}, {"user", "hi\nthere"}}), 30);
  Reply whole = Post("/v1/chat/completions",
                     {{"messages", messages}, {"max_completion_tokens", 30}, {"seed", 1}});
  ASSERT_EQ(whole.status, 200) << whole.body;
  EXPECT_THAT(whole.body["id"].get<std::string>(), StartsWith("chatcmpl-"));
  EXPECT_EQ(whole.body["object"], "chat.completion");
  EXPECT_EQ(whole.body["choices"][0]["message"],
            json({{"role", "assistant"}, {"content", expected}}));
  EXPECT_EQ(whole.body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(whole.body["usage"]["completion_tokens"], 30);

  Streamed streamed =
      Collect(Stream("/v1/chat/completions", {{"messages", messages},
                                              {"max_tokens", 30},
                                              {"stream", true},
                                              {"stream_options", {{"include_usage", true}}}}),
              /*chat=*/true);
  EXPECT_TRUE(streamed.role_first);
  EXPECT_EQ(streamed.text, expected);
  EXPECT_EQ(streamed.finish, "length");
  EXPECT_EQ(streamed.usage, whole.body["usage"]);
}

TEST_F(OpenAiServerTest, PromptFormsAndStops) {
  const std::string expected = FakeGenerationBackend::ExpectedText("hi", 5);
  for (const json& prompt : {json("hi"), json::array({104, 105}), json::array({"hi"}),
                             json::array({json::array({104, 105})})}) {
    Reply reply = Post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 5}});
    ASSERT_EQ(reply.status, 200) << prompt << reply.body;
    EXPECT_EQ(reply.body["choices"][0]["text"], expected) << prompt;
  }
  // A stop string ends the text before it, whole and streamed alike.
  Reply stopped =
      Post("/v1/completions", {{"prompt", "hello"}, {"max_tokens", 20}, {"stop", "lo"}});
  EXPECT_EQ(stopped.body["choices"][0]["text"], "hel");
  EXPECT_EQ(stopped.body["choices"][0]["finish_reason"], "stop");
  Streamed streamed = Collect(
      Stream("/v1/completions",
             {{"prompt", "hello"}, {"max_tokens", 20}, {"stop", {"x", "lo"}}, {"stream", true}}),
      /*chat=*/false);
  EXPECT_EQ(streamed.text, "hel");
  EXPECT_EQ(streamed.finish, "stop");
}

TEST_F(OpenAiServerTest, FieldsReachTheBackend) {
  Reply reply =
      Post("/v1/chat/completions",
           {{"model", "fake-model"},
            {"messages", {{{"role", "user"}, {"content", "x"}}}},
            {"max_tokens", 3},
            {"temperature", 0.25},
            {"top_p", 0.5},
            {"top_k", 7},
            {"min_p", 0.1},
            {"seed", 42},
            {"stop", {"a"}},
            {"user", "someone"},
            {"dspark", {{"speculation", "off"}, {"max_block", 3}, {"min_confidence", 0.5}}}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  const GenerationRequest request = fake_.last_request();
  EXPECT_EQ(request.model, "fake-model");
  EXPECT_EQ(request.max_tokens, 3);
  EXPECT_FLOAT_EQ(request.temperature, 0.25f);
  EXPECT_FLOAT_EQ(request.top_p, 0.5f);
  EXPECT_EQ(request.top_k, 7);
  EXPECT_FLOAT_EQ(request.min_p, 0.1f);
  EXPECT_TRUE(request.has_seed);
  EXPECT_EQ(request.seed, 42u);
  EXPECT_EQ(request.stop, std::vector<std::string>{"a"});
  EXPECT_FALSE(request.speculation_enabled);
  EXPECT_EQ(request.max_block, 3);
  EXPECT_FLOAT_EQ(request.min_confidence, 0.5f);
}

// Every bad request gets its 4xx in OpenAI's shape, starts nothing, and does
// not disturb a stream that is running meanwhile.
TEST_F(OpenAiServerTest, BadInputGetsErrorsWhileACanaryStreams) {
  fake_.SetHoldAfterChunks(2);
  StreamReply canary;
  std::thread canary_thread([&] {
    canary =
        Stream("/v1/completions", {{"prompt", "canary"}, {"max_tokens", 12}, {"stream", true}});
  });
  ASSERT_TRUE(fake_.WaitForHeld(1, absl::Now() + kWait));
  fake_.SetHoldAfterChunks(-1);

  const std::string long_stop(300, 's');
  const std::vector<std::string> stops(17, "x");
  struct Case {
    std::string path;
    std::string body;
    int status;
  };
  const std::string kC = "/v1/completions";
  const std::string kChat = "/v1/chat/completions";
  const std::vector<Case> cases = {
      {kC, "{", 400},
      {kC, "", 400},
      {kC, "null", 400},
      {kC, "{\"prompt\": \"\xc3\x28\"}", 400},  // invalid UTF-8
      {kC, R"({"max_tokens": 5})", 400},
      {kC, R"({"prompt": ""})", 400},  // empty: the backend says so
      {kC, R"({"prompt": []})", 400},
      {kC, R"({"prompt": "a", "max_tokens": 0})", 400},
      {kC, R"({"prompt": "a", "max_tokens": -5})", 400},
      {kC, R"({"prompt": "a", "max_tokens": 1000000})", 400},
      {kC, R"({"prompt": "a", "temperature": -1})", 400},
      {kC, R"({"prompt": "a", "top_p": 0})", 400},
      {kC, R"({"prompt": "a", "top_p": 1.5})", 400},
      {kC, json({{"prompt", "a"}, {"stop", stops}}).dump(), 400},
      {kC, json({{"prompt", "a"}, {"stop", long_stop}}).dump(), 400},
      {kC, R"({"prompt": "a", "n": 3})", 400},
      {kC, R"({"prompt": "a", "logprobs": 2})", 400},
      {kC, R"({"prompt": "a", "unknown_field": 1})", 400},
      {kC, R"({"prompt": "a", "model": "no-such-model"})", 404},
      {kC, json({{"prompt", std::string(FakeGenerationBackend::kContextLength + 1, 'p')}}).dump(),
       400},
      {kChat, R"({"messages": []})", 400},
      {kChat, R"({"messages": [{"role": "user"}], "stream": 1})", 400},
      {kChat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", 400},
      {kChat,
       R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", 400},
  };
  for (const Case& c : cases) {
    Reply reply = Send("POST", c.path, c.body);
    ExpectOpenAiError(reply, c.status, "invalid_request_error");
    if (c.status == 404) {
      EXPECT_EQ(reply.body["error"]["code"], "model_not_found");
    }
  }
  EXPECT_EQ(fake_.started(), 1);  // the canary only

  fake_.Release();
  canary_thread.join();
  Streamed streamed = Collect(canary, /*chat=*/false);
  EXPECT_EQ(streamed.text, FakeGenerationBackend::ExpectedText("canary", 12));
  EXPECT_TRUE(fake_.WaitForIdle(absl::Now() + kWait));
}

TEST_F(OpenAiServerTest, OversizedBodyGets413InOpenAiShape) {
  const std::string big = json({{"prompt", std::string(2 << 20, 'a')}}).dump();
  Reply reply = Send("POST", "/v1/completions", big);
  ExpectOpenAiError(reply, 413, "invalid_request_error");
  EXPECT_THAT(reply.body["error"]["message"].get<std::string>(), HasSubstr("larger than"));
  EXPECT_EQ(fake_.started(), 0);
}

TEST_F(OpenAiServerTest, BackendStatusesMapToHttp) {
  struct Case {
    absl::Status status;
    int http;
    std::string type;
  };
  const std::vector<Case> cases = {
      {absl::ResourceExhaustedError("queue full"), 429, "rate_limit_error"},
      {absl::UnavailableError("no verify worker"), 503, "server_error"},
      {absl::DeadlineExceededError("too slow"), 504, "server_error"},
      {absl::InternalError("bug"), 500, "server_error"},
      {absl::InvalidArgumentError("prompt too long"), 400, "invalid_request_error"},
  };
  for (const Case& c : cases) {
    for (bool stream : {false, true}) {
      fake_.FailNextStart(c.status);
      Reply reply = Post("/v1/completions", {{"prompt", "a"}, {"stream", stream}});
      ExpectOpenAiError(reply, c.http, c.type);
      EXPECT_EQ(reply.body["error"]["message"], std::string(c.status.message()));
    }
  }
}

TEST_F(OpenAiServerTest, ErrorAfterStartEndsTheStreamWithAnErrorEvent) {
  fake_.FailAfterChunks(2, absl::UnavailableError("verify worker lost"));
  StreamReply reply = Stream("/v1/completions", {{"prompt", "abc"}, {"stream", true}});
  ASSERT_EQ(reply.status, 200);
  ASSERT_EQ(reply.events.size(), 3u) << reply.raw;
  EXPECT_EQ(json::parse(reply.events[0])["choices"][0]["text"], "a");
  EXPECT_EQ(json::parse(reply.events[1])["choices"][0]["text"], "b");
  EXPECT_EQ(json::parse(reply.events[2])["error"]["message"], "verify worker lost");

  Reply whole = Post("/v1/completions", {{"prompt", "abc"}});
  ExpectOpenAiError(whole, 503, "server_error");
}

TEST_F(OpenAiServerTest, ClientDisconnectMidStreamCancelsTheGeneration) {
  fake_.SetHoldAfterChunks(1);
  for (bool chat : {false, true}) {
    const json body =
        chat ? json({{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"stream", true}})
             : json({{"prompt", "hello"}, {"stream", true}});
    // Hang up as soon as anything arrives: the server writes nothing before
    // the first token.
    StreamReply reply = Stream(chat ? "/v1/chat/completions" : "/v1/completions", body,
                               [](const std::string&) { return false; });
    EXPECT_FALSE(reply.raw.empty());
    EXPECT_TRUE(fake_.WaitForCancelled(chat ? 2 : 1, absl::Now() + kWait));
  }
  EXPECT_TRUE(fake_.WaitForIdle(absl::Now() + kWait));
  EXPECT_TRUE(fake_.WaitForHandlesDestroyed(2, absl::Now() + kWait));
}

TEST_F(OpenAiServerTest, ConcurrentStreamsEachGetTheirOwnText) {
  std::vector<std::thread> threads;
  std::vector<std::string> texts(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      texts[i] =
          Collect(
              Stream("/v1/completions",
                     {{"prompt", absl::StrCat("p", i, "-")}, {"max_tokens", 40}, {"stream", true}}),
              /*chat=*/false)
              .text;
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(texts[i], FakeGenerationBackend::ExpectedText(absl::StrCat("p", i, "-"), 40));
  }
}

TEST_F(OpenAiServerTest, HealthModelsAndUnknownRoutes) {
  EXPECT_EQ(Send("GET", "/health").status, 200);
  fake_.SetHealthy(false);
  EXPECT_EQ(Send("GET", "/health").status, 503);

  Reply models = Send("GET", "/v1/models");
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(models.body["object"], "list");
  ASSERT_EQ(models.body["data"].size(), 1u);
  EXPECT_EQ(models.body["data"][0]["id"], "fake-model");
  EXPECT_EQ(models.body["data"][0]["object"], "model");
  EXPECT_EQ(models.body["data"][0]["owned_by"], "dspark");
  EXPECT_EQ(Send("GET", "/v1/models/fake-model").body["id"], "fake-model");
  ExpectOpenAiError(Send("GET", "/v1/models/other"), 404, "invalid_request_error");

  ExpectOpenAiError(Send("GET", "/v1/nothing"), 404, "invalid_request_error");
  ExpectOpenAiError(Send("GET", "/v1/completions"), 404, "invalid_request_error");
}

TEST_F(OpenAiServerTest, StopCancelsWhatIsStillRunning) {
  fake_.SetHoldAfterChunks(1);
  StreamReply stream;
  Reply whole;
  std::thread streaming([&] {
    stream = Stream("/v1/completions", {{"prompt", "s"}, {"stream", true}});
  });
  std::thread waiting([&] { whole = Post("/v1/completions", {{"prompt", "w"}}); });
  ASSERT_TRUE(fake_.WaitForHeld(2, absl::Now() + kWait));
  server_->Stop();
  streaming.join();
  waiting.join();
  EXPECT_TRUE(fake_.WaitForCancelled(2, absl::Now() + kWait));
  EXPECT_TRUE(stream.events.empty() || stream.events.back() != "[DONE]");
  EXPECT_TRUE(whole.status == 0 || whole.status == 503) << whole.status;
}

TEST_F(OpenAiServerTest, StopWithGraceLetsInFlightStreamsFinish) {
  fake_.SetHoldAfterChunks(1);
  StreamReply stream;
  std::thread streaming([&] {
    stream = Stream("/v1/completions", {{"prompt", "grace"}, {"stream", true}, {"max_tokens", 10}});
  });
  ASSERT_TRUE(fake_.WaitForHeld(1, absl::Now() + kWait));
  std::thread stopping([&] { server_->Stop(kWait); });
  // Once draining, new generations are refused; then the held one may go on.
  const absl::Time deadline = absl::Now() + kWait;
  Reply refused;
  while (absl::Now() < deadline) {
    refused = Post("/v1/completions", {{"prompt", "late"}, {"max_tokens", 1}});
    if (refused.status != 200) break;
  }
  ExpectOpenAiError(refused, 503, "server_error");
  fake_.Release();
  stopping.join();
  streaming.join();
  EXPECT_EQ(Collect(stream, /*chat=*/false).text, FakeGenerationBackend::ExpectedText("grace", 10));
  EXPECT_EQ(fake_.cancelled(), 0);
}

}  // namespace
}  // namespace dspark::router::openai
