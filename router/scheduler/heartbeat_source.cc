#include "router/scheduler/heartbeat_source.h"

#include <limits>

namespace dspark::router {

absl::StatusOr<std::vector<WorkerLoadSample>> HeartbeatSource::Read() {
  std::vector<WorkerLoadSample> out;
  for (const WorkerInfo& w : registry_->Snapshot()) {
    if (w.kind != WorkerKind::kVerify) continue;
    const auto& load = w.load;
    WorkerLoadSample s;
    s.worker = w.address;
    s.running = load.running_sessions();
    s.waiting = load.waiting_sessions();
    s.kv_usage = load.kv_blocks_total() > 0
                     ? static_cast<double>(load.kv_blocks_used()) / load.kv_blocks_total()
                     : std::numeric_limits<double>::quiet_NaN();
    s.step_seconds = load.step_time_seconds();
    // Heartbeats carry 0 both for "nothing verified" and "none accepted":
    // treat 0 as unknown so a worker that verified nothing is not switched off.
    s.acceptance = load.acceptance_rate() > 0 ? load.acceptance_rate()
                                              : std::numeric_limits<double>::quiet_NaN();
    // Heartbeats do not say how many tokens the rate rests on: never enough
    // to turn speculation off on their word alone.
    s.verified_per_second = std::numeric_limits<double>::quiet_NaN();
    s.observed = w.last_seen;
    out.push_back(s);
  }
  return out;
}

}  // namespace dspark::router
