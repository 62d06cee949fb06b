// LoadSource from the router's own worker registry: the load verify workers
// report in heartbeats (registered workers) or in GetStatus probes (static
// workers). The embedded default when no Prometheus URL is given.
// Thread-safe (WorkerRegistry is).
#pragma once

#include "router/core/worker_registry.h"
#include "router/scheduler/load_source.h"

namespace dspark::router {

class HeartbeatSource : public LoadSource {
 public:
  explicit HeartbeatSource(const WorkerRegistry* registry) : registry_(registry) {}
  std::string name() const override { return "heartbeats"; }
  absl::StatusOr<std::vector<WorkerLoadSample>> Read() override;

 private:
  const WorkerRegistry* registry_;
};

}  // namespace dspark::router
