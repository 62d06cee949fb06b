// LoadSource over a Prometheus server's HTTP API: a few instant PromQL
// queries (GET /api/v1/query) per round, joined by the "worker" label. Slow,
// failing or malformed answers are errors, never guesses. Thread-safe (one
// HTTP client per call).
#pragma once

#include <string>

#include "router/scheduler/load_source.h"

namespace dspark::router {

struct PrometheusSourceOptions {
  // Base URL, e.g. "http://127.0.0.1:9090". Required.
  std::string url;
  // Per-query timeout. Default 2 s.
  absl::Duration timeout = absl::Seconds(2);
  // Rate window used in the queries. Default "30s".
  std::string window = "30s";
};

class PrometheusSource : public LoadSource {
 public:
  explicit PrometheusSource(PrometheusSourceOptions options);
  std::string name() const override { return "prometheus"; }
  absl::StatusOr<std::vector<WorkerLoadSample>> Read() override;

 private:
  PrometheusSourceOptions options_;
};

}  // namespace dspark::router
