// `dspark up`: a local cluster (router + verify and draft workers on
// 127.0.0.1), an optional demo through its OpenAI endpoint, then serving
// until Ctrl-C.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "deploy/local_cluster/local_cluster.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"

namespace dspark::cli {
namespace {

constexpr char kUsage[] =
    "usage: dspark up [--model M] [--verify-workers N] [--draft-workers M] [--drafter KIND]\n"
    "                 [--ports-file F] [--demo] [--exit-after-demo] [--work-dir DIR]\n"
    "                 [--prometheus-url URL] [--router-args \"--flag=v ...\"]\n"
    "                 [--verify-args \"...\"] [--draft-args \"...\"]\n"
    "Starts a router, N verify workers and M draft workers on 127.0.0.1 (ports chosen\n"
    "at run time) and serves until Ctrl-C. --demo sends a few chat requests through\n"
    "the OpenAI endpoint, with speculation and without, and prints the speed-up.\n";

const char* const kDemoQuestions[] = {
    "What is the capital of France? Answer in one sentence.",
    "Write a short poem about the sea.",
    "Explain in two sentences why the sky is blue.",
};

struct Answer {
  std::string text;
  int tokens = 0;
  double seconds = 0;
  double accepted_per_step = 0;
};

absl::StatusOr<Answer> Ask(httplib::Client& client, const std::string& model,
                           const std::string& question, bool speculate) {
  nlohmann::json body = {{"model", model},
                         {"messages", {{{"role", "user"}, {"content", question}}}},
                         {"max_tokens", 96},
                         {"temperature", 0}};
  if (!speculate) body["dspark"] = {{"speculation", "off"}};
  const auto t0 = std::chrono::steady_clock::now();
  httplib::Result res = client.Post("/v1/chat/completions", body.dump(), "application/json");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!res) return absl::UnavailableError("no answer from the router");
  nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 200 || j.is_discarded()) {
    return absl::InternalError(absl::StrFormat("HTTP %d: %s", res->status, res->body));
  }
  Answer a;
  a.text = j["choices"][0]["message"]["content"].get<std::string>();
  a.tokens = j["usage"]["completion_tokens"].get<int>();
  a.seconds = seconds;
  if (j.contains("dspark")) {
    const double steps = j["dspark"].value("target_steps", 0.0);
    if (steps > 0) a.accepted_per_step = a.tokens / steps;
  }
  return a;
}

int RunDemo(const deploy::LocalCluster& cluster, const std::string& model) {
  const std::string http = cluster.router().http;
  const size_t colon = http.rfind(':');
  httplib::Client client(http.substr(0, colon), std::stoi(http.substr(colon + 1)));
  client.set_read_timeout(300, 0);
  double spec_tokens = 0, spec_seconds = 0, plain_tokens = 0, plain_seconds = 0;
  // One untimed request first: the first one pays for connections and the
  // workers' cold caches, which is not what the comparison is about.
  if (absl::StatusOr<Answer> warm = Ask(client, model, "Hello", /*speculate=*/true); !warm.ok()) {
    std::fprintf(stderr, "dspark up: demo request failed: %s\n",
                 std::string(warm.status().message()).c_str());
    return 1;
  }
  for (const char* question : kDemoQuestions) {
    absl::StatusOr<Answer> spec = Ask(client, model, question, /*speculate=*/true);
    absl::StatusOr<Answer> plain = Ask(client, model, question, /*speculate=*/false);
    if (!spec.ok() || !plain.ok()) {
      std::fprintf(stderr, "dspark up: demo request failed: %s\n",
                   std::string((spec.ok() ? plain.status() : spec.status()).message()).c_str());
      return 1;
    }
    std::printf("\n> %s\n%s\n", question, spec->text.c_str());
    std::printf("  [%d tokens: %.1f tok/s speculative (%.2f tokens per target step), "
                "%.1f tok/s target-only%s]\n",
                spec->tokens, spec->tokens / spec->seconds, spec->accepted_per_step,
                plain->tokens / plain->seconds,
                spec->text == plain->text ? ", same text" : ", TEXT DIFFERS");
    spec_tokens += spec->tokens;
    spec_seconds += spec->seconds;
    plain_tokens += plain->tokens;
    plain_seconds += plain->seconds;
  }
  std::printf("\nspeculative %.1f tok/s vs target-only %.1f tok/s: %.2fx\n",
              spec_tokens / spec_seconds, plain_tokens / plain_seconds,
              (spec_tokens / spec_seconds) / (plain_tokens / plain_seconds));
  std::fflush(stdout);
  return 0;
}

std::string BinDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

}  // namespace

int UpCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::Parse(
      argv,
      {"model", "verify-workers", "draft-workers", "drafter", "ports-file", "work-dir",
       "prometheus-url", "router-args", "verify-args", "draft-args"},
      {"demo", "exit-after-demo", "help"});
  if (!args.ok()) return ExitCode("up", args.status());
  if (args->Has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  // Ctrl-C and SIGTERM are taken by sigwait below, never by default handlers.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  deploy::LocalClusterOptions options;
  options.bin_dir = BinDir();
  options.model = args->Get("model", options.model);
  absl::StatusOr<int64_t> verify = args->GetInt("verify-workers", 1);
  absl::StatusOr<int64_t> draft = args->GetInt("draft-workers", 1);
  if (!verify.ok()) return ExitCode("up", verify.status());
  if (!draft.ok()) return ExitCode("up", draft.status());
  options.verify_workers = static_cast<int>(*verify);
  options.draft_workers = static_cast<int>(*draft);
  if (args->Has("drafter")) options.draft_flags.push_back("--drafter=" + args->Get("drafter"));
  if (args->Has("prometheus-url")) {
    options.router_flags.push_back("--prometheus_url=" + args->Get("prometheus-url"));
  }
  // Extra flags per process kind, space-separated.
  for (const auto& [flag, into] : {std::pair{"router-args", &options.router_flags},
                                   std::pair{"verify-args", &options.verify_flags},
                                   std::pair{"draft-args", &options.draft_flags}}) {
    for (absl::string_view a : absl::StrSplit(args->Get(flag), ' ', absl::SkipEmpty())) {
      into->emplace_back(a);
    }
  }
  options.work_dir = args->Get("work-dir");

  std::fprintf(stderr, "dspark up: starting %d verify and %d draft worker(s) for %s ...\n",
               options.verify_workers, options.draft_workers, options.model.c_str());
  absl::StatusOr<std::unique_ptr<deploy::LocalCluster>> cluster =
      deploy::LocalCluster::Start(options);
  if (!cluster.ok()) return ExitCode("up", cluster.status());
  const std::string endpoints = (*cluster)->EndpointsJson();
  if (args->Has("ports-file")) {
    const std::string path = args->Get("ports-file");
    std::ofstream(path + ".tmp") << endpoints << "\n";
    std::filesystem::rename(path + ".tmp", path);
  }
  std::printf("dspark up: serving %s\n  gRPC   %s (dspark.v1.Generation)\n"
              "  OpenAI http://%s/v1\n  endpoints %s\n",
              options.model.c_str(), (*cluster)->router().grpc.c_str(),
              (*cluster)->router().http.c_str(), endpoints.c_str());
  std::fflush(stdout);

  int rc = 0;
  if (args->Has("demo") || args->Has("exit-after-demo")) {
    rc = RunDemo(**cluster, options.model);
    if (args->Has("exit-after-demo") || rc != 0) {
      (*cluster)->Stop(absl::Seconds(30));
      return rc;
    }
  }
  std::printf("dspark up: Ctrl-C stops the cluster\n");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "dspark up: stopping (draining in-flight requests)\n");
  (*cluster)->Stop(absl::Seconds(30));
  return 0;
}

}  // namespace dspark::cli
