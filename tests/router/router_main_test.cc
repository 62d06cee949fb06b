// dspark-router as a process: started with a static verify worker (an
// in-process fake) and the real default model's tokenizer (skipped when it
// is not pulled), it writes its ready file, serves Generate (and, when the
// OpenAI front end is built in, /health and /v1/models), and exits 0 on
// SIGTERM after draining.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/engine/model_store/model_store.h"
#include "common/rpc/channel.h"
#include "dspark/v1/generation.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/router/router_test_util.h"
#if DSPARK_ROUTER_OPENAI
#include "httplib.h"
#endif

extern char** environ;

namespace dspark::router {
namespace {

constexpr char kModel[] = "smollm2-135m-instruct";

std::optional<nlohmann::json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

TEST(RouterMainTest, ServesDrainsAndExits) {
  if (auto path = dspark::ResolveModelPath(kModel); !path.ok()) GTEST_SKIP() << path.status();
  testing::WorkerServer worker(dspark::testing::FakeVerifyWorkerOptions{.model = kModel});
  const std::string dir = ::testing::TempDir() + "/router_main_test";
  std::filesystem::create_directories(dir);
  const std::string ready = dir + "/ready.json";
  std::filesystem::remove(ready);

  std::vector<std::string> args = {DSPARK_ROUTER_BINARY,
                                   std::string("--model=") + kModel,
                                   "--listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0",
                                   "--verify_workers=" + worker.address(),
                                   "--ready_file=" + ready,
                                   "--drain_seconds=5"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);

  // The ready file is the process's only signal: poll it, bounded.
  std::optional<nlohmann::json> contents;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!(contents = ReadJson(ready)) && absl::Now() < deadline) {
    int status = 0;
    ASSERT_NE(waitpid(pid, &status, WNOHANG), pid) << "dspark-router exited early";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(contents.has_value()) << "no ready file";
  const std::string grpc_address = contents->value("grpc", "");
  ASSERT_FALSE(grpc_address.empty());
  EXPECT_TRUE(contents->contains("http"));

  auto client = dspark::v1::Generation::NewStub(rpc::MakeChannel(grpc_address));
  dspark::v1::GenerateRequest request;
  request.set_prompt("Hello");
  request.mutable_stop()->set_max_tokens(4);
  request.mutable_stop()->set_ignore_eos(true);
  grpc::ClientContext context;
  dspark::v1::GenerateResponse response;
  grpc::Status status = client->Generate(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.token_ids_size(), 4);
  EXPECT_EQ(response.model(), kModel);
  EXPECT_EQ(worker.worker.requests().size(), 1u);

#if DSPARK_ROUTER_OPENAI
  {
    const std::string http = contents->value("http", "");
    const size_t colon = http.rfind(':');
    ASSERT_NE(colon, std::string::npos) << http;
    httplib::Client http_client(http.substr(0, colon), std::stoi(http.substr(colon + 1)));
    auto health = http_client.Get("/health");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    auto models = http_client.Get("/v1/models");
    ASSERT_TRUE(models);
    EXPECT_EQ(models->status, 200);
    EXPECT_NE(models->body.find(kModel), std::string::npos) << models->body;
  }
  {
    // Prometheus metrics of the request above.
    const std::string address = contents->value("metrics", "");
    const size_t colon = address.rfind(':');
    ASSERT_NE(colon, std::string::npos) << address;
    httplib::Client metrics_client(address.substr(0, colon), std::stoi(address.substr(colon + 1)));
    auto scraped = metrics_client.Get("/metrics");
    ASSERT_TRUE(scraped);
    EXPECT_NE(scraped->body.find("dspark_time_to_first_token_seconds"), std::string::npos);
    EXPECT_NE(scraped->body.find("dspark_request_success_total"), std::string::npos);
  }
#endif

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int exit_status = 0;
  ASSERT_EQ(waitpid(pid, &exit_status, 0), pid);
  EXPECT_TRUE(WIFEXITED(exit_status));
  EXPECT_EQ(WEXITSTATUS(exit_status), 0);
}

}  // namespace
}  // namespace dspark::router
