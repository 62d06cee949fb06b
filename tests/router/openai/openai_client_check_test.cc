// The official `openai` Python client (tools/clients/openai_client_check.py,
// from the project's .venv) against the HTTP server over the fake backend.
// Skips when the .venv has no `openai` package.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "router/openai/openai_server.h"
#include "tests/fakes/fake_generation_backend.h"

namespace dspark::router::openai {
namespace {

using json = nlohmann::json;
using testing::FakeGenerationBackend;

// Runs `command`, returning its stdout and exit status.
std::pair<std::string, int> RunCommand(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {"", -1};
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) out.append(buffer, n);
  const int status = pclose(pipe);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

TEST(OpenAiClientCheckTest, OfficialClientGetsTheSameTextsWholeAndStreamed) {
  const std::string python = absl::StrCat(DSPARK_SOURCE_DIR, "/.venv/bin/python");
  if (!std::filesystem::exists(python) ||
      RunCommand(absl::StrCat(python, " -c 'import openai' 2>/dev/null")).second != 0) {
    GTEST_SKIP() << "no `openai` package in " << python;
  }
  FakeGenerationBackend fake;
  absl::StatusOr<std::unique_ptr<OpenAiServer>> server = StartOpenAiServer(&fake, {});
  ASSERT_TRUE(server.ok()) << server.status();

  const std::string prompt = "The capital of France is";
  const std::string message = "Name three colours.";
  auto [out, code] = RunCommand(
      absl::StrCat(python, " ", DSPARK_SOURCE_DIR, "/tools/clients/openai_client_check.py",
                   " --base-url http://127.0.0.1:", (*server)->port(), "/v1 --model fake-model",
                   " --max-tokens 40 --prompt '", prompt, "' --message '", message, "'"));
  (*server)->Stop();
  ASSERT_EQ(code, 0) << out;
  const json result = json::parse(out);
  EXPECT_EQ(result["models"], json::array({"fake-model"}));
  const std::string completion = FakeGenerationBackend::ExpectedText(prompt, 40);
  EXPECT_EQ(result["completion"]["text"], completion);
  EXPECT_EQ(result["completion_stream"]["text"], completion);
  EXPECT_EQ(result["completion_stream"]["usage"], result["completion"]["usage"]);
  const std::string chat = FakeGenerationBackend::ExpectedText(
      FakeGenerationBackend::RenderChat({{"user", message}}), 40);
  EXPECT_EQ(result["chat"]["text"], chat);
  EXPECT_EQ(result["chat_stream"]["text"], chat);
  EXPECT_EQ(result["chat"]["finish_reason"], "length");
  EXPECT_EQ(result["chat_stream"]["finish_reason"], "length");
  EXPECT_EQ(result["stream_matches"], true);
  // The fake's request saw temperature 0, as the client asked.
  EXPECT_EQ(fake.last_request().temperature, 0.0f);
}

}  // namespace
}  // namespace dspark::router::openai
