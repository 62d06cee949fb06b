#include "router/scheduler/cluster_scheduler.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/logging.h"
#include "common/metrics/metrics.h"

namespace dspark::router {
namespace {

bool Finite(double v) { return std::isfinite(v); }

}  // namespace

// Versions start from the clock so that a restarted router's policies are
// never older than the ones its workers already hold.
ClusterScheduler::ClusterScheduler(ClusterSchedulerOptions options)
    : options_(options), version_(static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()))) {}

WorkerPolicy ClusterScheduler::PolicyFor(const State& s, const std::string& reason) {
  WorkerPolicy p;
  p.speculation = s.rung < kOff;
  p.max_verify_tokens = s.rung < kOff ? kRungs[s.rung] : 0;
  p.reason = reason;
  return p;
}

std::vector<Decision> ClusterScheduler::Decide(
    const absl::StatusOr<std::vector<WorkerLoadSample>>& samples,
    const std::vector<std::string>& workers, absl::Time now) {
  std::map<std::string, const WorkerLoadSample*> by_worker;
  if (samples.ok()) {
    for (const WorkerLoadSample& s : *samples) by_worker[s.worker] = &s;
  }
  healthy_ = true;
  std::vector<Decision> out;
  for (const std::string& worker : workers) {
    State& st = state_[worker];
    const State before = st;
    ++st.held;
    std::string reason;
    const WorkerLoadSample* sample = by_worker.count(worker) ? by_worker[worker] : nullptr;
    std::string missing;
    if (!samples.ok()) {
      missing = absl::StrCat("no load data (", samples.status().message(), ")");
    } else if (sample == nullptr) {
      missing = "no load data for the worker";
    } else if (!Finite(sample->running) || !Finite(sample->waiting) || !Finite(sample->kv_usage)) {
      missing = "load data has NaN or missing values";
    } else if (now - sample->observed > options_.stale_after) {
      missing = absl::StrCat("load data is stale (",
                             absl::FormatDuration(now - sample->observed), " old)");
    }
    if (!missing.empty()) {
      healthy_ = false;
      st.rung = 0;
      st.off_for_acceptance = -1;
      reason = "fallback to defaults: " + missing;
    } else {
      const WorkerLoadSample& s = *sample;
      const bool heavy = s.waiting >= options_.heavy_waiting || s.kv_usage >= options_.heavy_kv ||
                         s.running >= options_.heavy_running;
      const bool light = s.waiting < options_.heavy_waiting && s.kv_usage < options_.light_kv &&
                         s.running <= options_.light_running;
      const bool may_change = st.held >= options_.hold_rounds;
      if (st.off_for_acceptance >= 0) {
        ++st.off_for_acceptance;
        if (st.off_for_acceptance >= options_.probe_rounds) {
          st.off_for_acceptance = -1;
          st.rung = kOff - 1;  // re-probe with a small cap
          reason = "re-probing speculation after low acceptance";
        } else {
          reason = "speculation off: low acceptance";
        }
      } else if (st.rung < kOff && Finite(s.acceptance) && s.acceptance < options_.min_acceptance &&
                 Finite(s.verified_per_second) &&
                 s.verified_per_second >= options_.min_verified_per_second) {
        st.rung = kOff;
        st.off_for_acceptance = 0;
        reason = absl::StrFormat("speculation off: acceptance %.3f < %.3f", s.acceptance,
                                 options_.min_acceptance);
      } else if (heavy && may_change && st.rung < kOff - 1) {
        ++st.rung;
        reason = absl::StrFormat("overloaded (running %.0f, waiting %.0f, kv %.2f): cap lowered",
                                 s.running, s.waiting, s.kv_usage);
      } else if (light && may_change && st.rung > 0) {
        --st.rung;
        reason = absl::StrFormat("light load (running %.0f, kv %.2f): cap raised", s.running,
                                 s.kv_usage);
      } else {
        reason = before.policy.reason.empty() ? "steady" : before.policy.reason;
      }
    }
    Decision d{.worker = worker};
    const bool changed = st.rung != before.rung || before.policy.version == 0;
    if (changed) {
      st.policy = PolicyFor(st, reason);
      st.policy.version = ++version_;
      if (st.rung != before.rung) st.held = 0;
    } else {
      st.policy.reason = reason;
    }
    d.policy = st.policy;
    d.changed = changed;
    if (sample != nullptr && missing.empty()) {
      d.placement_weight = 1.0 / (1.0 + sample->waiting + 0.25 * sample->running +
                                  4.0 * std::max(0.0, sample->kv_usage - options_.light_kv));
    }
    out.push_back(std::move(d));
  }
  return out;
}

ClusterSchedulerLoop::ClusterSchedulerLoop(ClusterSchedulerLoopOptions options, LoadSource* source,
                                           WorkersFn workers, PushFn push,
                                           metrics::SchedulerMetrics* metrics)
    : options_(options),
      source_(source),
      workers_(std::move(workers)),
      push_(std::move(push)),
      metrics_(metrics),
      scheduler_(options.scheduler) {}

ClusterSchedulerLoop::~ClusterSchedulerLoop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

std::vector<Decision> ClusterSchedulerLoop::RunOnce() {
  absl::StatusOr<std::vector<WorkerLoadSample>> samples = source_->Read();
  const std::vector<std::string> workers = workers_();
  std::vector<Decision> decisions;
  bool healthy;
  {
    absl::MutexLock lock(&mu_);
    decisions = scheduler_.Decide(samples, workers, absl::Now());
    healthy = scheduler_.healthy();
    for (const Decision& d : decisions) latest_[d.worker] = d;
  }
  if (metrics_ != nullptr) {
    metrics_->metrics_source_healthy->Set(healthy ? 1 : 0);
    if (!healthy) metrics_->fallbacks->Increment();
  }
  for (const Decision& d : decisions) {
    if (d.changed) {
      DSPARK_LOG(INFO) << "cluster scheduler (" << source_->name() << "): " << d.worker
                       << " -> speculation " << (d.policy.speculation ? "on" : "off")
                       << ", max verify tokens " << d.policy.max_verify_tokens << " (v"
                       << d.policy.version << "): " << d.policy.reason;
      if (metrics_ != nullptr) {
        // Reasons are bounded: the text before the first ':' or '('.
        std::string kind = d.policy.reason.substr(0, d.policy.reason.find_first_of(":("));
        while (!kind.empty() && kind.back() == ' ') kind.pop_back();
        metrics_->decisions->Add({{"target_worker", d.worker}, {"reason", kind}}).Increment();
      }
    }
    if (metrics_ != nullptr) {
      metrics_->policy_max_verify->Add({{"target_worker", d.worker}})
          .Set(d.policy.max_verify_tokens);
      metrics_->policy_speculation->Add({{"target_worker", d.worker}})
          .Set(d.policy.speculation ? 1 : 0);
    }
    push_(d);
  }
  return decisions;
}

void ClusterSchedulerLoop::Start() {
  thread_ = std::thread([this] {
    while (true) {
      RunOnce();
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.period)) return;
    }
  });
}

std::map<std::string, Decision> ClusterSchedulerLoop::latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

}  // namespace dspark::router
