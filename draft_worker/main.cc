// dspark-draft-worker: serves the DraftWorker SpecStream for verify workers.
// Loads the target model (drafters share its embedding and head) and one
// drafter, batches drafting across every session of every verify worker on
// one thread, registers with the router when --router is given, and drains
// on SIGTERM / SIGINT. Every flag may also come from the environment:
// DSPARK_DRAFTER=ngram acts as --drafter=ngram.
//
//   dspark-draft-worker --model smollm2-135m-instruct --drafter auto
//       --listen 127.0.0.1:0 --ready_file /tmp/d0.json --router 127.0.0.1:7000
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/base/env_flags.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/metrics/metrics.h"
#include "common/rpc/endpoints.h"
#include "common/rpc/registry_client.h"
#include "common/rpc/server.h"
#include "draft_worker/service/draft_worker_service.h"
#include "tools/cli/args.h"
#include "tools/cli/model_loading.h"
#include "tools/cli/spec_setup.h"

ABSL_FLAG(std::string, model, "smollm2-135m-instruct",
          "Target model: catalogue name, GGUF file or Hugging Face directory");
ABSL_FLAG(std::string, drafter, "auto",
          "auto (the model's committed DSpark drafter with n-gram lookup, else ngram) | dspark | "
          "dspark+ngram | draft-model | ngram");
ABSL_FLAG(
    std::string, drafter_path, "",
    "dspark: checkpoint directory; draft-model: model file (empty: the target's first layers)");
ABSL_FLAG(int, draft_layers, 6, "draft-model without a path: layers of the target it keeps");
ABSL_FLAG(int, threads, 0, "CPU threads for the drafter's kernels (0 = all cores)");
ABSL_FLAG(bool, exact, false, "f32 activations instead of int8 (must match the verify workers)");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "gRPC address; port 0 picks a free one");
ABSL_FLAG(std::string, advertise, "",
          "Address verify workers dial (host:port); default: --listen's host (loopback for a "
          "wildcard) with the bound port");
ABSL_FLAG(std::string, worker_name, "", "The worker label of its metrics; default draft-<pid>");
ABSL_FLAG(std::string, metrics_listen, "",
          "Prometheus /metrics address (port 0 picks one); empty: no metrics endpoint");
ABSL_FLAG(std::string, router, "", "The router's Registry address; empty: do not register");
ABSL_FLAG(std::string, ready_file, "",
          "When serving, write {\"grpc\": \"host:port\"} here (atomically)");
ABSL_FLAG(int, drain_seconds, 30, "Grace period for open streams after SIGTERM");
ABSL_FLAG(int, max_sessions, 256, "Sessions the router may place here at once");

namespace dspark {
namespace {

absl::Status Run() {
  // The CLI's model and drafter resolution, so that "auto" and the catalogue
  // mean here exactly what they mean to `dspark generate`.
  std::vector<std::string> cli_args = {
      "--model",        absl::GetFlag(FLAGS_model),
      "--threads",      absl::StrCat(absl::GetFlag(FLAGS_threads)),
      "--draft-layers", absl::StrCat(absl::GetFlag(FLAGS_draft_layers))};
  if (!absl::GetFlag(FLAGS_drafter_path).empty()) {
    cli_args.insert(cli_args.end(), {"--drafter-path", absl::GetFlag(FLAGS_drafter_path)});
  }
  if (absl::GetFlag(FLAGS_exact)) cli_args.push_back("--exact");
  DSPARK_ASSIGN_OR_RETURN(
      cli::Args args,
      cli::Args::Parse(cli_args, {"model", "threads", "draft-layers", "drafter-path"}, {"exact"}));
  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> target, cli::LoadModelFromArgs(args));
  std::string kind;
  DSPARK_ASSIGN_OR_RETURN(
      std::unique_ptr<drafter::Drafter> drafter,
      cli::MakeDrafterFromArgs(args, absl::GetFlag(FLAGS_drafter), target.get(), &kind));
  if (drafter == nullptr) return absl::InvalidArgumentError("--drafter none serves nothing");
  DSPARK_LOG(INFO) << "drafter " << drafter->name() << " (block " << drafter->max_block()
                   << ") for " << target->file().path();

  auto metric_registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<metrics::DraftMetrics> draft_metrics;
  draft_service::DraftingLoopOptions loop = draft_service::LoopOptionsFor(*target);
  const std::string listen = absl::GetFlag(FLAGS_listen);
  const std::string metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (!metrics_listen.empty()) {
    std::string worker = absl::GetFlag(FLAGS_worker_name);
    if (worker.empty()) worker = absl::StrCat("draft-", getpid());
    draft_metrics = std::make_unique<metrics::DraftMetrics>(
        *metric_registry,
        metrics::MetricLabels{
            .worker = worker, .pool = "draft", .model = absl::GetFlag(FLAGS_model)});
    loop.metrics = draft_metrics.get();
  }
  draft_service::DraftWorkerService service(drafter.get(),
                                            {.model = absl::GetFlag(FLAGS_model), .loop = loop});
  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<rpc::RunningServer> server,
                          rpc::StartServer({.address = listen}, {&service}));
  std::string address = absl::GetFlag(FLAGS_advertise);
  if (address.empty()) address = rpc::DialAddress(listen, server->port());
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::string metrics_address;
  if (!metrics_listen.empty()) {
    DSPARK_ASSIGN_OR_RETURN(metrics_server,
                            metrics::MetricsServer::Start(metrics_listen, metric_registry));
    metrics_address = rpc::DialAddress(metrics_listen, metrics_server->port());
  }

  std::unique_ptr<rpc::RegistryClient> registry;
  if (!absl::GetFlag(FLAGS_router).empty()) {
    registry = rpc::RegistryClient::Start(
        {.router = absl::GetFlag(FLAGS_router),
         .kind = internal::v1::WORKER_KIND_DRAFT,
         .address = address,
         .model = absl::GetFlag(FLAGS_model),
         .max_sessions = absl::GetFlag(FLAGS_max_sessions)},
        [&service] { return service.Load(); },
        [](const internal::v1::Policy&) {});  // policies steer verify workers only
  }
  if (!absl::GetFlag(FLAGS_ready_file).empty()) {
    DSPARK_RETURN_IF_ERROR(
        rpc::WriteReadyFile(absl::GetFlag(FLAGS_ready_file),
                            {{"grpc", address}, {"metrics", metrics_address}}));
  }
  std::fprintf(stderr, "ready grpc=%s%s\n", address.c_str(),
               metrics_address.empty() ? "" : (" metrics=" + metrics_address).c_str());

  const int signal = rpc::WaitForTerminationSignal();
  DSPARK_LOG(INFO) << "signal " << signal << ": draining for up to "
                   << absl::GetFlag(FLAGS_drain_seconds) << " s";
  service.SetDraining(true);
  if (registry != nullptr) registry->HeartbeatNow();  // the router stops placing sessions here
  server->Drain(absl::Seconds(absl::GetFlag(FLAGS_drain_seconds)));
  registry.reset();
  server.reset();
  return absl::OkStatus();
}

}  // namespace
}  // namespace dspark

int main(int argc, char** argv) {
  dspark::rpc::BlockTerminationSignals();  // before any thread starts
  std::vector<char*> args = dspark::base::ArgsWithEnvFlags(argc, argv);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  absl::Status st = dspark::Run();
  if (!st.ok()) {
    std::fprintf(stderr, "dspark-draft-worker: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
