// dspark's Prometheus metrics: one place that names every metric (vLLM's
// names under a dspark_ prefix where vLLM has one), the per-process metric
// sets, and the /metrics endpoint. Metric objects are prometheus-cpp's and
// thread-safe; the sets are built once per process.
//
//   auto registry = std::make_shared<prometheus::Registry>();
//   MetricLabels labels{.worker = "verify-0", .pool = "verify", .model = "smollm2-135m-instruct"};
//   VerifyMetrics metrics(*registry, labels);
//   DSPARK_ASSIGN_OR_RETURN(auto server, MetricsServer::Start("127.0.0.1:0", registry));
//   metrics.step_duration->Observe(0.012);
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace dspark::metrics {

// Constant labels of every metric a process exports (bounded values only:
// never request ids).
struct MetricLabels {
  std::string worker;  // "router", "verify-0", "draft-1", or a pod name
  std::string pool;    // "router", "verify", "draft"
  std::string model;   // catalogue name
};

// Request-level latency and traffic, exported by the router (what clients see).
struct RequestMetrics {
  RequestMetrics(prometheus::Registry& registry, const MetricLabels& labels);
  prometheus::Histogram* time_to_first_token;   // dspark_time_to_first_token_seconds
  prometheus::Histogram* inter_token_latency;   // dspark_inter_token_latency_seconds
  prometheus::Histogram* e2e_request_latency;   // dspark_e2e_request_latency_seconds
  prometheus::Histogram* request_queue_time;    // dspark_request_queue_time_seconds
  prometheus::Counter* prompt_tokens;           // dspark_prompt_tokens_total
  prometheus::Counter* generation_tokens;       // dspark_generation_tokens_total
  prometheus::Family<prometheus::Counter>* request_success;  // dspark_request_success_total{finished_reason}
  prometheus::Family<prometheus::Counter>* request_errors;   // dspark_request_errors_total{code}
  prometheus::Gauge* requests_running;          // dspark_num_requests_running
  prometheus::Gauge* requests_waiting;          // dspark_num_requests_waiting
};

// The verify worker's step loop and speculative decoding.
struct VerifyMetrics {
  VerifyMetrics(prometheus::Registry& registry, const MetricLabels& labels);
  prometheus::Gauge* requests_running;   // dspark_num_requests_running
  prometheus::Gauge* requests_waiting;   // dspark_num_requests_waiting
  prometheus::Gauge* kv_cache_usage;     // dspark_kv_cache_usage_perc (0..1)
  prometheus::Counter* preemptions;      // dspark_num_preemptions_total
  prometheus::Counter* prompt_tokens;    // dspark_prompt_tokens_total
  prometheus::Counter* generation_tokens;  // dspark_generation_tokens_total
  // vLLM's speculative-decoding set.
  prometheus::Counter* num_drafts;           // dspark_spec_decode_num_drafts_total
  prometheus::Counter* num_draft_tokens;     // dspark_spec_decode_num_draft_tokens_total
  prometheus::Counter* num_accepted_tokens;  // dspark_spec_decode_num_accepted_tokens_total
  // dspark_spec_decode_num_accepted_tokens_per_pos_total{position="0".."15"}
  prometheus::Family<prometheus::Counter>* accepted_per_pos;
  // dspark_spec_decode_num_verified_tokens_per_pos_total{position}: the
  // denominator vLLM lacks (the step scheduler verifies fewer than drafted).
  prometheus::Family<prometheus::Counter>* verified_per_pos;
  // What dspark adds.
  prometheus::Histogram* step_duration;       // dspark_step_duration_seconds
  prometheus::Histogram* batch_tokens;        // dspark_step_batch_tokens
  prometheus::Histogram* verify_tokens;       // dspark_step_verify_tokens (drafted tokens verified per step)
  prometheus::Histogram* block_length;        // dspark_step_block_length (chosen per sequence)
  prometheus::Family<prometheus::Gauge>* cost_table;  // dspark_cost_table_seconds{batch_tokens}
  prometheus::Gauge* policy_speculation;      // dspark_policy_speculation_enabled
  prometheus::Gauge* policy_max_verify;       // dspark_policy_max_verify_tokens
  prometheus::Gauge* policy_min_confidence;   // dspark_policy_min_confidence
  prometheus::Gauge* policy_version;          // dspark_policy_version
  prometheus::Histogram* specstream_rtt;      // dspark_specstream_rtt_seconds (Draft round trip)
  prometheus::Counter* feature_bytes_sent;    // dspark_feature_bytes_sent_total
  prometheus::Histogram* draft_wait;          // dspark_step_draft_wait_seconds
  prometheus::Counter* overlapped_drafts;     // dspark_overlapped_drafts_total
  // Sessions rebuilt on another draft worker (ReassignDrafts).
  prometheus::Counter* draft_reattached;      // dspark_draft_reattached_sessions_total
};

// The draft worker.
struct DraftMetrics {
  DraftMetrics(prometheus::Registry& registry, const MetricLabels& labels);
  prometheus::Gauge* sessions;             // dspark_draft_sessions
  prometheus::Gauge* streams;              // dspark_draft_streams
  prometheus::Histogram* batch_size;       // dspark_draft_batch_size (sessions per Draft call)
  prometheus::Histogram* draft_latency;    // dspark_draft_latency_seconds
  prometheus::Counter* drafted_tokens;     // dspark_draft_tokens_total
  prometheus::Counter* feature_bytes;      // dspark_draft_feature_bytes_received_total
};

// The router's cluster scheduler.
struct SchedulerMetrics {
  SchedulerMetrics(prometheus::Registry& registry, const MetricLabels& labels);
  // dspark_scheduler_decisions_total{target_worker, reason}; worker names
  // are bounded by the cluster size.
  prometheus::Family<prometheus::Counter>* decisions;
  // dspark_scheduler_policy_max_verify_tokens{target_worker} etc.
  prometheus::Family<prometheus::Gauge>* policy_max_verify;
  prometheus::Family<prometheus::Gauge>* policy_speculation;
  prometheus::Gauge* metrics_source_healthy;  // dspark_scheduler_metrics_healthy (0: fallback)
  prometheus::Counter* fallbacks;             // dspark_scheduler_fallbacks_total
};

// Latency buckets (seconds) shared by the histograms above.
prometheus::Histogram::BucketBoundaries LatencyBuckets();

// Serves GET /metrics for `registry` on `address` (port 0: chosen now).
class MetricsServer {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry);
  int port() const { return port_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace dspark::metrics
