// dspark-verify-worker: serves dspark.internal.v1.VerifyWorker for one target
// model. Each session runs in the continuous-batching step loop on this
// worker's paged KV cache; with --drafter=remote (the default) it drafts on
// the draft worker the router names per session (no draft worker, or a dead
// one: plain decoding), otherwise on a local drafter (a standalone worker).
// Registers with --router when given; drains on SIGTERM/SIGINT. Every flag
// can also come from the environment: DSPARK_MAX_RUNNING=8 acts as
// --max_running=8.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/base/env_flags.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/metrics/metrics.h"
#include "common/rpc/endpoints.h"
#include "common/rpc/registry_client.h"
#include "common/rpc/server.h"
#include "draft_worker/service/spec_codec.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/model_loading.h"
#include "tools/cli/spec_setup.h"
#include "verify_worker/remote_drafter/routing_drafter.h"
#include "verify_worker/service/verify_service.h"

ABSL_FLAG(std::string, model, "smollm2-135m-instruct",
          "Target model: a catalogue name (pulled), a GGUF file or a Hugging Face directory");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "gRPC address; port 0 picks one");
ABSL_FLAG(std::string, advertise, "",
          "Address the router dials (host:port); default: --listen's host (loopback for a "
          "wildcard) with the bound port");
ABSL_FLAG(std::string, router, "", "Router's Registry to register with (host:port); optional");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:0",
          "Prometheus /metrics address; port 0 picks one; empty: no metrics");
ABSL_FLAG(std::string, ready_file, "", "Written atomically with {\"grpc\": ADDRESS} once serving");
ABSL_FLAG(int, drain_seconds, 30,
          "On SIGTERM/SIGINT: refuse new sessions, let in-flight ones finish for this long");
ABSL_FLAG(int, threads, 0, "Model threads including the step loop; 0 = all cores");
ABSL_FLAG(bool, exact, false, "f32 activations instead of int8 (slower)");
ABSL_FLAG(int, max_running, 64, "Most sessions decoding at once; the rest wait");
ABSL_FLAG(int, max_batch_tokens, 512, "Most tokens in one target forward");
ABSL_FLAG(int, prefill_chunk, 256, "Most prompt tokens of one session per forward");
ABSL_FLAG(int, prefix_cache_entries, 8, "Finished sequences kept for prefix reuse; 0 = off");
ABSL_FLAG(int64_t, kv_tokens, 16384, "KV cache capacity in tokens (all sessions together)");
ABSL_FLAG(int64_t, kv_memory_mb, 0, "KV cache size in MiB; when > 0 it overrides --kv_tokens");
ABSL_FLAG(std::string, drafter, "remote",
          "remote: the draft worker the router names per session; or a local drafter: "
          "auto | dspark | draft-model | ngram | none");
ABSL_FLAG(std::string, drafter_path, "",
          "dspark checkpoint dir / draft model file (local drafters); for remote, the "
          "DSpark config whose context layers are sent (default: the model's committed one)");
ABSL_FLAG(int, replay_tokens, 256,
          "remote drafter: newest context tokens (and features) kept per session to rebuild it "
          "on another draft worker when the router reassigns it; 0 = keep none");
ABSL_FLAG(int, draft_layers, 0, "Self-draft layers for draft-model without a path; 0 = default");
ABSL_FLAG(std::string, scheduler, "confidence", "Step scheduler: confidence | fixed | off");
ABSL_FLAG(int, verify_len, 7, "Verify length of --scheduler=fixed");
ABSL_FLAG(bool, two_batch_overlap, false,
          "remote drafter: decoding sessions alternate in two halves, one drafting on the draft "
          "worker while the other is verified (pays when drafting is a large share of a step "
          "and the draft worker has its own cores)");
ABSL_FLAG(std::string, cost_table, "",
          "Cost table cache (default ~/.cache/dspark/cost/<model>-<hash>.json); profiled at "
          "start-up when missing or stale");

namespace dspark::verify {
namespace {

// The CLI's Args for the model / drafter / cost-table helpers shared with
// `dspark generate` (tools/cli), so that the worker loads, drafts and caches
// its cost table exactly as the CLI does.
absl::StatusOr<cli::Args> CliArgs() {
  std::vector<std::string> argv = {"--model=" + absl::GetFlag(FLAGS_model),
                                   absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads))};
  if (absl::GetFlag(FLAGS_exact)) argv.push_back("--exact");
  if (const std::string p = absl::GetFlag(FLAGS_drafter_path); !p.empty()) {
    argv.push_back("--drafter-path=" + p);
  }
  if (const int layers = absl::GetFlag(FLAGS_draft_layers); layers > 0) {
    argv.push_back(absl::StrCat("--draft-layers=", layers));
  }
  if (const std::string c = absl::GetFlag(FLAGS_cost_table); !c.empty()) {
    argv.push_back("--cost-table=" + c);
  }
  std::set<std::string> value_flags = {"model", "threads"};
  value_flags.insert(cli::kSpecValueFlags.begin(), cli::kSpecValueFlags.end());
  return cli::Args::Parse(argv, value_flags, {"exact"});
}

int64_t KvTokens(const engine::ModelConfig& c) {
  const int64_t mb = absl::GetFlag(FLAGS_kv_memory_mb);
  if (mb <= 0) return std::max<int64_t>(1, absl::GetFlag(FLAGS_kv_tokens));
  // K and V, f32, every layer (kv_cache.h's page layout).
  const int64_t bytes_per_token = 2 * int64_t{c.num_layers} * c.num_kv_heads * c.head_dim * 4;
  return std::max<int64_t>(1, (mb << 20) / std::max<int64_t>(1, bytes_per_token));
}

// The remote drafter's options: the target's identity, and the context
// layers of the DSpark drafter the draft workers run (none when the model
// has no committed one: token-only drafters).
remote_drafter::RoutingDrafterOptions RemoteOptions(const engine::Model& model) {
  remote_drafter::RoutingDrafterOptions options{
      .target_model = draft_service::TargetIdentity(model),
      .replay_tokens = std::max(0, absl::GetFlag(FLAGS_replay_tokens))};
  std::string dir = absl::GetFlag(FLAGS_drafter_path);
  if (dir.empty()) dir = cli::CommittedDrafterDir(absl::GetFlag(FLAGS_model));
  if (!dir.empty()) {
    auto config = remote_drafter::ReadDsparkConfig(dir);
    if (config.ok()) {
      options.context_layers = config->target_layer_ids;
    } else {
      DSPARK_LOG(WARNING) << "no DSpark context layers (" << config.status()
                          << "): remote drafting sends tokens only";
    }
  }
  return options;
}

absl::Status Run() {
  DSPARK_ASSIGN_OR_RETURN(cli::Args args, CliArgs());
  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> model, cli::LoadModelFromArgs(args));
  // The router tokenizes; here the tokenizer only gives events their text
  // and checks stop strings, so a model without one (test checkpoints) still
  // serves token ids.
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  if (auto t = cli::LoadModelTokenizer(*model); t.ok()) {
    tokenizer = std::move(*t);
  } else {
    DSPARK_LOG(WARNING) << "no tokenizer (" << t.status()
                        << "): sessions carry no text and stop strings are refused";
  }

  const std::string drafter_flag = absl::GetFlag(FLAGS_drafter);
  std::unique_ptr<drafter::Drafter> local;
  std::unique_ptr<remote_drafter::RoutingDrafter> routing;
  drafter::Drafter* drafter = nullptr;
  std::string drafter_kind = drafter_flag;
  if (drafter_flag == "remote") {
    routing = std::make_unique<remote_drafter::RoutingDrafter>(RemoteOptions(*model));
    drafter = routing.get();
  } else {
    DSPARK_ASSIGN_OR_RETURN(
        local, cli::MakeDrafterFromArgs(args, drafter_flag, model.get(), &drafter_kind));
    drafter = local.get();
  }

  const std::string scheduler_kind = drafter ? absl::GetFlag(FLAGS_scheduler) : "off";
  scheduler::CostTable table;
  if (scheduler_kind == "confidence") {
    DSPARK_ASSIGN_OR_RETURN(table, cli::CostTableFromArgs(args, model.get()));
  }
  const int verify_len = absl::GetFlag(FLAGS_verify_len);
  DSPARK_ASSIGN_OR_RETURN(auto scheduler,
                          cli::MakeSchedulerFromArgs(scheduler_kind, verify_len, table));

  auto cache = model->NewKvCache({.max_tokens = KvTokens(model->config())});
  EngineParts parts{
      .model = model.get(),
      .cache = cache.get(),
      .drafter = drafter,
      .scheduler = scheduler.get(),
      .tokenizer = tokenizer.get(),
      .engine = {.max_batch_tokens = absl::GetFlag(FLAGS_max_batch_tokens),
                 .prefill_chunk = absl::GetFlag(FLAGS_prefill_chunk),
                 .max_running = absl::GetFlag(FLAGS_max_running),
                 .prefix_cache_entries = std::max(0, absl::GetFlag(FLAGS_prefix_cache_entries)),
                 .max_draft_tokens = scheduler_kind == "fixed" ? verify_len : 0,
                 .two_batch_overlap = absl::GetFlag(FLAGS_two_batch_overlap)}};
  VerifyServiceOptions options{.model = absl::GetFlag(FLAGS_model)};
  if (routing != nullptr) {
    // On the step loop, right after Add: the session drafts where the router said.
    options.loop.assign = [r = routing.get()](spec::RequestId id, const std::string& address) {
      r->Assign(id, address);
    };
    // Closing an id the engine already closed is a no-op; a cancelled
    // session kept for prefix reuse only loses its draft-side state.
    options.loop.cancelled = [r = routing.get()](spec::RequestId id) { r->Close(id); };
    // The router's ReassignDrafts, on the step loop.
    options.loop.reassign = [r = routing.get()](const std::string& from, const std::string& to) {
      const remote_drafter::ReassignResult moved = r->Reassign(from, to);
      return DraftMoves{.reattached = moved.reattached, .detached = moved.detached};
    };
  }
  auto service = std::make_unique<VerifyService>(parts, std::move(options));

  const std::string listen = absl::GetFlag(FLAGS_listen);
  DSPARK_ASSIGN_OR_RETURN(auto server, rpc::StartServer({.address = listen}, {service.get()}));
  std::string address = absl::GetFlag(FLAGS_advertise);
  if (address.empty()) address = rpc::DialAddress(listen, server->port());

  std::unique_ptr<rpc::RegistryClient> registry;
  if (const std::string router = absl::GetFlag(FLAGS_router); !router.empty()) {
    registry = rpc::RegistryClient::Start(
        {.router = router,
         .kind = internal::v1::WORKER_KIND_VERIFY,
         .address = address,
         .model = absl::GetFlag(FLAGS_model),
         .max_sessions = parts.engine.max_running},
        [s = service.get()] { return s->Load(); },
        [s = service.get()](const internal::v1::Policy& p) { s->ApplyPolicy(p); });
  }
  // Metrics are labelled with the address the router knows this worker by,
  // so the cluster scheduler can join Prometheus series to workers.
  auto registry_metrics = std::make_shared<prometheus::Registry>();
  std::unique_ptr<metrics::VerifyMetrics> verify_metrics;
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::string metrics_address;
  if (const std::string m = absl::GetFlag(FLAGS_metrics_listen); !m.empty()) {
    verify_metrics = std::make_unique<metrics::VerifyMetrics>(
        *registry_metrics, metrics::MetricLabels{.worker = address,
                                                 .pool = "verify",
                                                 .model = absl::GetFlag(FLAGS_model)});
    for (const scheduler::CostPoint& p : table.points()) {
      verify_metrics->cost_table->Add({{"batch_tokens", std::to_string(p.tokens)}}).Set(p.seconds);
    }
    DSPARK_ASSIGN_OR_RETURN(metrics_server, metrics::MetricsServer::Start(m, registry_metrics));
    metrics_address = rpc::DialAddress(m, metrics_server->port());
    service->SetMetrics(verify_metrics.get());
    if (routing != nullptr) routing->SetMetrics(verify_metrics.get());
  }
  if (const std::string path = absl::GetFlag(FLAGS_ready_file); !path.empty()) {
    DSPARK_RETURN_IF_ERROR(
        rpc::WriteReadyFile(path, {{"grpc", address}, {"metrics", metrics_address}}));
  }
  DSPARK_LOG(INFO) << "ready grpc=" << address << " model=" << absl::GetFlag(FLAGS_model)
                   << " drafter=" << (drafter ? drafter_kind : "none")
                   << " scheduler=" << scheduler_kind << " kv_blocks=" << cache->num_blocks();

  const int signal = rpc::WaitForTerminationSignal();
  const absl::Duration grace = absl::Seconds(std::max(0, absl::GetFlag(FLAGS_drain_seconds)));
  const absl::Time deadline = absl::Now() + grace;
  DSPARK_LOG(INFO) << "signal " << signal << ": draining for up to " << grace;
  service->StartDrain();
  if (registry != nullptr) registry->HeartbeatNow();  // the router stops placing sessions here
  if (!service->WaitIdle(deadline)) {
    DSPARK_LOG(WARNING) << "grace period over with sessions still running: cancelling them";
  }
  // Streams whose last events are still being written get what is left.
  server->Drain(std::max(absl::ZeroDuration(), deadline - absl::Now()));
  registry.reset();
  service->Stop();
  server.reset();
  service.reset();
  DSPARK_LOG(INFO) << "stopped";
  return absl::OkStatus();
}

}  // namespace
}  // namespace dspark::verify

int main(int argc, char** argv) {
  dspark::rpc::BlockTerminationSignals();
  absl::SetProgramUsageMessage(
      "dspark-verify-worker --model=NAME [--listen=HOST:PORT] [--router=ADDR] ...");
  std::vector<char*> args = dspark::base::ArgsWithEnvFlags(argc, argv);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  const absl::Status st = dspark::verify::Run();
  if (!st.ok()) {
    DSPARK_LOG(ERROR) << "dspark-verify-worker: " << st;
    return 1;
  }
  return 0;
}
