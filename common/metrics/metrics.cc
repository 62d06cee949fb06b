#include "common/metrics/metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace dspark::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Labels;

Labels Constant(const MetricLabels& l) {
  return {{"worker", l.worker}, {"pool", l.pool}, {"model", l.model}};
}

// Small helpers: one unlabelled (beyond the constant labels) series each.
prometheus::Counter* Counter(prometheus::Registry& r, const MetricLabels& l, const char* name,
                             const char* help) {
  return &BuildCounter().Name(name).Help(help).Labels(Constant(l)).Register(r).Add({});
}
prometheus::Gauge* Gauge(prometheus::Registry& r, const MetricLabels& l, const char* name,
                         const char* help) {
  return &BuildGauge().Name(name).Help(help).Labels(Constant(l)).Register(r).Add({});
}
prometheus::Histogram* Histogram(prometheus::Registry& r, const MetricLabels& l, const char* name,
                                 const char* help,
                                 const prometheus::Histogram::BucketBoundaries& buckets) {
  return &BuildHistogram().Name(name).Help(help).Labels(Constant(l)).Register(r).Add({}, buckets);
}
prometheus::Histogram::BucketBoundaries CountBuckets() {
  return {0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
}

}  // namespace

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25,
          0.5,   0.75,   1.0,   2.5,  5.0,  7.5,  10,   20,   40,  80};
}

RequestMetrics::RequestMetrics(prometheus::Registry& r, const MetricLabels& l)
    : time_to_first_token(Histogram(r, l, "dspark_time_to_first_token_seconds",
                                    "Time to first token, as the client sees it.", LatencyBuckets())),
      inter_token_latency(Histogram(r, l, "dspark_inter_token_latency_seconds",
                                    "Time between streamed tokens (per token).", LatencyBuckets())),
      e2e_request_latency(Histogram(r, l, "dspark_e2e_request_latency_seconds",
                                    "Request latency from arrival to last token.", LatencyBuckets())),
      request_queue_time(Histogram(r, l, "dspark_request_queue_time_seconds",
                                   "Time a request waited for admission.", LatencyBuckets())),
      prompt_tokens(Counter(r, l, "dspark_prompt_tokens_total", "Prompt tokens processed.")),
      generation_tokens(Counter(r, l, "dspark_generation_tokens_total", "Tokens generated.")),
      request_success(&BuildCounter()
                           .Name("dspark_request_success_total")
                           .Help("Finished requests by finish reason.")
                           .Labels(Constant(l))
                           .Register(r)),
      request_errors(&BuildCounter()
                          .Name("dspark_request_errors_total")
                          .Help("Failed requests by gRPC status code name.")
                          .Labels(Constant(l))
                          .Register(r)),
      requests_running(Gauge(r, l, "dspark_num_requests_running", "Requests generating.")),
      requests_waiting(Gauge(r, l, "dspark_num_requests_waiting", "Requests queued.")) {}

VerifyMetrics::VerifyMetrics(prometheus::Registry& r, const MetricLabels& l)
    : requests_running(Gauge(r, l, "dspark_num_requests_running", "Sequences in the step loop.")),
      requests_waiting(Gauge(r, l, "dspark_num_requests_waiting", "Sequences waiting for KV.")),
      kv_cache_usage(Gauge(r, l, "dspark_kv_cache_usage_perc", "KV cache blocks in use, 0..1.")),
      preemptions(Counter(r, l, "dspark_num_preemptions_total", "Preempted sequences.")),
      prompt_tokens(Counter(r, l, "dspark_prompt_tokens_total", "Prompt tokens prefilled.")),
      generation_tokens(Counter(r, l, "dspark_generation_tokens_total", "Tokens generated.")),
      num_drafts(Counter(r, l, "dspark_spec_decode_num_drafts_total",
                         "Sequence-steps that verified at least one drafted token.")),
      num_draft_tokens(Counter(r, l, "dspark_spec_decode_num_draft_tokens_total",
                               "Drafted tokens sent to the target.")),
      num_accepted_tokens(Counter(r, l, "dspark_spec_decode_num_accepted_tokens_total",
                                  "Drafted tokens the target accepted.")),
      accepted_per_pos(&BuildCounter()
                            .Name("dspark_spec_decode_num_accepted_tokens_per_pos_total")
                            .Help("Accepted drafted tokens by block position.")
                            .Labels(Constant(l))
                            .Register(r)),
      verified_per_pos(&BuildCounter()
                            .Name("dspark_spec_decode_num_verified_tokens_per_pos_total")
                            .Help("Verified drafted tokens by block position.")
                            .Labels(Constant(l))
                            .Register(r)),
      step_duration(Histogram(r, l, "dspark_step_duration_seconds", "Engine step wall time.",
                              LatencyBuckets())),
      batch_tokens(Histogram(r, l, "dspark_step_batch_tokens", "Tokens in one target forward.",
                             CountBuckets())),
      verify_tokens(Histogram(r, l, "dspark_step_verify_tokens",
                              "Drafted tokens verified in one step (all sequences).",
                              CountBuckets())),
      block_length(Histogram(r, l, "dspark_step_block_length",
                             "Verify length the step scheduler chose per sequence.",
                             {0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16})),
      cost_table(&BuildGauge()
                      .Name("dspark_cost_table_seconds")
                      .Help("Profiled target forward time by batch tokens.")
                      .Labels(Constant(l))
                      .Register(r)),
      policy_speculation(Gauge(r, l, "dspark_policy_speculation_enabled", "1: speculation on.")),
      policy_max_verify(Gauge(r, l, "dspark_policy_max_verify_tokens",
                              "Cap on verified drafted tokens per step (0: none).")),
      policy_min_confidence(Gauge(r, l, "dspark_policy_min_confidence",
                                  "Minimum cumulative confidence to verify a position.")),
      policy_version(Gauge(r, l, "dspark_policy_version", "Version of the policy in force.")),
      specstream_rtt(Histogram(r, l, "dspark_specstream_rtt_seconds",
                               "Draft request round trip to the draft worker.", LatencyBuckets())),
      feature_bytes_sent(Counter(r, l, "dspark_feature_bytes_sent_total",
                                 "Context feature bytes sent to draft workers.")),
      draft_wait(Histogram(r, l, "dspark_step_draft_wait_seconds",
                           "Time a step waited for drafts (what overlap did not hide).",
                           LatencyBuckets())),
      overlapped_drafts(Counter(r, l, "dspark_overlapped_drafts_total",
                                "Draft blocks drafted while the other half verified.")),
      draft_reattached(Counter(r, l, "dspark_draft_reattached_sessions_total",
                               "Sessions moved to another draft worker by the router.")) {}

DraftMetrics::DraftMetrics(prometheus::Registry& r, const MetricLabels& l)
    : sessions(Gauge(r, l, "dspark_draft_sessions", "Open drafting sessions.")),
      streams(Gauge(r, l, "dspark_draft_streams", "Connected verify-worker streams.")),
      batch_size(Histogram(r, l, "dspark_draft_batch_size", "Sessions drafted per batch.",
                           CountBuckets())),
      draft_latency(Histogram(r, l, "dspark_draft_latency_seconds",
                              "Time of one batched draft call.", LatencyBuckets())),
      drafted_tokens(Counter(r, l, "dspark_draft_tokens_total", "Tokens drafted.")),
      feature_bytes(Counter(r, l, "dspark_draft_feature_bytes_received_total",
                            "Context feature bytes received.")) {}

SchedulerMetrics::SchedulerMetrics(prometheus::Registry& r, const MetricLabels& l)
    : decisions(&BuildCounter()
                     .Name("dspark_scheduler_decisions_total")
                     .Help("Cluster scheduler policy changes by worker and reason.")
                     .Labels(Constant(l))
                     .Register(r)),
      policy_max_verify(&BuildGauge()
                             .Name("dspark_scheduler_policy_max_verify_tokens")
                             .Help("Max verify tokens per step the scheduler set, by worker.")
                             .Labels(Constant(l))
                             .Register(r)),
      policy_speculation(&BuildGauge()
                              .Name("dspark_scheduler_policy_speculation_enabled")
                              .Help("Speculation on (1) or off (0) as set, by worker.")
                              .Labels(Constant(l))
                              .Register(r)),
      metrics_source_healthy(Gauge(r, l, "dspark_scheduler_metrics_healthy",
                                   "1 when load metrics are fresh, 0 in fallback.")),
      fallbacks(Counter(r, l, "dspark_scheduler_fallbacks_total",
                        "Times the scheduler fell back to safe defaults.")) {}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry) {
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  try {
    server->exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("metrics: cannot listen on ", address, ": ", e.what()));
  }
  server->exposer_->RegisterCollectable(registry);
  const std::vector<int> ports = server->exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError("metrics: no listening port");
  server->port_ = ports.front();
  return server;
}

}  // namespace dspark::metrics
