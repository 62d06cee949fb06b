// dspark-router: the cluster's front door. Serves dspark.v1.Generation (and
// the workers' dspark.internal.v1.Registry) on --listen, the OpenAI-
// compatible HTTP API on --http_listen, and places each request on a verify
// worker and a draft worker — registered ones, and those given by
// --verify_workers / --draft_workers (host:port or dns:///name:port).
// Every flag can also come from the environment: DSPARK_MAX_QUEUE=8 acts
// as --max_queue=8.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/base/env_flags.h"
#include "common/base/logging.h"
#include "common/metrics/metrics.h"
#include "common/rpc/endpoints.h"
#include "common/rpc/server.h"
#include "nlohmann/json.hpp"
#include "router/core/registry_service.h"
#include "router/core/router_backend.h"
#include "router/core/served_model.h"
#include "router/core/static_workers.h"
#include "router/core/worker_registry.h"
#include "router/scheduler/cluster_scheduler.h"
#include "router/scheduler/heartbeat_source.h"
#include "router/scheduler/prometheus_source.h"
#include "router/grpc/generation_service.h"
#if DSPARK_ROUTER_OPENAI
#include "router/openai/openai_server.h"
#endif

ABSL_FLAG(std::string, model, "smollm2-135m-instruct",
          "Model served: a catalogue name (pulled), a GGUF file or a Hugging Face directory. "
          "The router reads only its tokenizer, chat template and context length.");
ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "gRPC address (dspark.v1.Generation and the workers' Registry); port 0 picks one");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:0", "OpenAI-compatible HTTP address");
ABSL_FLAG(std::string, verify_workers, "",
          "Static verify workers: comma-separated host:port or dns:///name:port");
ABSL_FLAG(std::string, draft_workers, "",
          "Static draft workers: comma-separated host:port or dns:///name:port");
ABSL_FLAG(int, static_max_sessions, 16, "Sessions assumed per static worker");
ABSL_FLAG(int, max_queue, 64, "Requests queued while every verify worker is full");
ABSL_FLAG(int, max_tokens_limit, 4096, "Largest max_tokens a request may ask for");
ABSL_FLAG(int, heartbeat_ms, 1000,
          "Worker heartbeat / probe period; 3 missed periods drop a worker");
ABSL_FLAG(std::string, ready_file, "",
          "Written (atomically) with {\"grpc\": ..., \"http\": ..., \"metrics\": ...} once a "
          "verify worker is live");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:0",
          "Prometheus /metrics address; port 0 picks one; empty: no metrics");
ABSL_FLAG(std::string, prometheus_url, "",
          "Cluster scheduler load source: a Prometheus server (http://host:port); empty: "
          "the workers' heartbeats");
ABSL_FLAG(int, scheduler_period_ms, 2000, "Cluster scheduler period; 0 turns it off");
ABSL_FLAG(int, drain_seconds, 30,
          "On SIGTERM/SIGINT: stop admitting, finish in-flight for this long");

namespace dspark::router {
namespace {

int Run() {
  auto model = ServedModel::Load(absl::GetFlag(FLAGS_model));
  if (!model.ok()) {
    DSPARK_LOG(ERROR) << "cannot load the model's tokenizer: " << model.status();
    return 1;
  }
  const std::string model_id = (*model)->id();

  WorkerRegistryOptions registry_options;
  registry_options.heartbeat_interval =
      absl::Milliseconds(std::max(10, absl::GetFlag(FLAGS_heartbeat_ms)));
  WorkerRegistry registry(registry_options);

  // Metrics first: the backend records into them from its first request.
  auto metrics_registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<metrics::RequestMetrics> request_metrics;
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::string metrics_address;
  if (const std::string listen = absl::GetFlag(FLAGS_metrics_listen); !listen.empty()) {
    request_metrics = std::make_unique<metrics::RequestMetrics>(
        *metrics_registry,
        metrics::MetricLabels{.worker = "router", .pool = "router", .model = model_id});
    auto started = metrics::MetricsServer::Start(listen, metrics_registry);
    if (!started.ok()) {
      DSPARK_LOG(ERROR) << "cannot serve metrics on " << listen << ": " << started.status();
      return 1;
    }
    metrics_server = *std::move(started);
    metrics_address = rpc::DialAddress(listen, metrics_server->port());
  }

  RouterBackendOptions backend_options;
  backend_options.metrics = request_metrics.get();
  backend_options.max_queue = std::max(0, absl::GetFlag(FLAGS_max_queue));
  backend_options.limits.max_tokens_limit = std::max(1, absl::GetFlag(FLAGS_max_tokens_limit));
  auto backend = std::make_unique<RouterBackend>(backend_options, *std::move(model), &registry);

  RegistryService registry_service(&registry);
  GenerationService generation_service(backend.get());
  auto server = rpc::StartServer({.address = absl::GetFlag(FLAGS_listen)},
                                 {&generation_service, &registry_service});
  if (!server.ok()) {
    DSPARK_LOG(ERROR) << server.status();
    return 1;
  }
  const std::string grpc_address = rpc::DialAddress(absl::GetFlag(FLAGS_listen), (*server)->port());

  std::string http_address;
#if DSPARK_ROUTER_OPENAI
  std::unique_ptr<openai::OpenAiServer> http;
  if (const std::string listen = absl::GetFlag(FLAGS_http_listen); !listen.empty()) {
    openai::OpenAiServerOptions http_options;
    const size_t colon = listen.rfind(':');
    int port = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port)) {
      DSPARK_LOG(ERROR) << "--http_listen=" << listen << ": want host:port";
      return 1;
    }
    http_options.address = listen.substr(0, colon);
    // [::] style hosts: httplib takes the bare IPv6 address.
    if (http_options.address.size() > 2 && http_options.address.front() == '[') {
      http_options.address = http_options.address.substr(1, http_options.address.size() - 2);
    }
    http_options.port = port;
    auto started = openai::StartOpenAiServer(backend.get(), http_options);
    if (!started.ok()) {
      DSPARK_LOG(ERROR) << "cannot serve HTTP on " << listen << ": " << started.status();
      return 1;
    }
    http = *std::move(started);
    http_address = rpc::DialAddress(listen, http->port());
  }
#endif

  // The cluster scheduler: each verify worker's speculation policy from its
  // load (Prometheus when given, else heartbeats), pushed through the registry.
  std::unique_ptr<LoadSource> load_source;
  if (const std::string url = absl::GetFlag(FLAGS_prometheus_url); !url.empty()) {
    load_source = std::make_unique<PrometheusSource>(PrometheusSourceOptions{.url = url});
  } else {
    load_source = std::make_unique<HeartbeatSource>(&registry);
  }
  std::unique_ptr<metrics::SchedulerMetrics> scheduler_metrics;
  if (request_metrics != nullptr) {
    scheduler_metrics = std::make_unique<metrics::SchedulerMetrics>(
        *metrics_registry,
        metrics::MetricLabels{.worker = "router", .pool = "router", .model = model_id});
  }
  std::unique_ptr<ClusterSchedulerLoop> cluster_scheduler;
  if (const int period = absl::GetFlag(FLAGS_scheduler_period_ms); period > 0) {
    cluster_scheduler = std::make_unique<ClusterSchedulerLoop>(
        ClusterSchedulerLoopOptions{.period = absl::Milliseconds(period)}, load_source.get(),
        [&registry] {
          std::vector<std::string> verify;
          for (const WorkerInfo& w : registry.Snapshot()) {
            if (w.kind == WorkerKind::kVerify) verify.push_back(w.address);
          }
          return verify;
        },
        [&registry](const Decision& d) {
          internal::v1::Policy policy;
          policy.set_speculation_enabled(d.policy.speculation);
          policy.set_max_verify_tokens_per_step(d.policy.max_verify_tokens);
          policy.set_min_confidence(d.policy.min_confidence);
          policy.set_version(d.policy.version);
          policy.set_reason(d.policy.reason);
          registry.SetPolicy(d.worker, policy, d.placement_weight);
        },
        scheduler_metrics.get());
    cluster_scheduler->Start();
  }

  StaticWorkersOptions static_options;
  static_options.verify_targets = SplitTargets(absl::GetFlag(FLAGS_verify_workers));
  static_options.draft_targets = SplitTargets(absl::GetFlag(FLAGS_draft_workers));
  static_options.max_sessions = std::max(1, absl::GetFlag(FLAGS_static_max_sessions));
  static_options.interval = registry_options.heartbeat_interval;
  auto static_workers = StaticWorkers::Start(static_options, &registry);

  // Ready once a verify worker is live, so that scripts can send requests
  // at once. Polling is fine here: it is a start-up wait, not a test.
  absl::Notification stop_ready;
  std::thread ready_thread([&] {
    while (!backend->Healthy()) {
      if (stop_ready.WaitForNotificationWithTimeout(absl::Milliseconds(20))) return;
    }
    if (const std::string path = absl::GetFlag(FLAGS_ready_file); !path.empty()) {
      absl::Status st = rpc::WriteReadyFile(
          path, {{"grpc", grpc_address}, {"http", http_address}, {"metrics", metrics_address}});
      if (!st.ok()) DSPARK_LOG(ERROR) << st;
    }
    DSPARK_LOG(INFO) << "ready grpc=" << grpc_address << " http=" << http_address
                     << " metrics=" << metrics_address << " model=" << model_id;
  });
  DSPARK_LOG(INFO) << "serving " << model_id << " on grpc=" << grpc_address
                   << "; waiting for a verify worker";

  const int signal = rpc::WaitForTerminationSignal();
  const absl::Duration grace = absl::Seconds(std::max(0, absl::GetFlag(FLAGS_drain_seconds)));
  DSPARK_LOG(INFO) << "signal " << signal << ": draining for up to " << grace;
  stop_ready.Notify();
  ready_thread.join();
  backend->BeginDrain();
  const absl::Time drain_deadline = absl::Now() + grace;
#if DSPARK_ROUTER_OPENAI
  // The HTTP side of the same drain: new generations get 503, in-flight
  // ones finish (the backend keeps running them).
  if (http != nullptr) http->Stop(grace);
#endif
  // In-flight calls get what is left of the grace period; the workers keep
  // being tracked meanwhile (the Registry is served until the server stops).
  (*server)->Drain(std::max(absl::ZeroDuration(), drain_deadline - absl::Now()));
  static_workers.reset();
  backend.reset();
  DSPARK_LOG(INFO) << "stopped";
  return 0;
}

}  // namespace
}  // namespace dspark::router

int main(int argc, char** argv) {
  dspark::rpc::BlockTerminationSignals();
  absl::SetProgramUsageMessage("dspark-router --model=NAME [--verify_workers=ADDR,...] ...");
  std::vector<char*> args = dspark::base::ArgsWithEnvFlags(argc, argv);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  return dspark::router::Run();
}
