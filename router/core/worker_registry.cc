#include "router/core/worker_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/logging.h"

namespace dspark::router {
namespace {

const char* KindName(WorkerKind kind) { return kind == WorkerKind::kVerify ? "verify" : "draft"; }

// A model as workers name it: their --model, a catalogue name or a path.
// "/models/smollm2-135m-instruct.gguf" and "smollm2-135m-instruct" agree.
absl::string_view ModelStem(absl::string_view model) {
  const size_t slash = model.find_last_of('/');
  if (slash != absl::string_view::npos) model.remove_prefix(slash + 1);
  absl::ConsumeSuffix(&model, ".gguf");
  return model;
}

}  // namespace

WorkerRegistry::WorkerRegistry(WorkerRegistryOptions options) : options_(std::move(options)) {}

void WorkerRegistry::SetChangeListener(std::function<void()> listener) {
  absl::MutexLock lock(&mutex_);
  listener_ = std::move(listener);
  // The old listener's owner may go away once this returns.
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return listener_calls_ == 0; };
  mutex_.Await(absl::Condition(&idle));
}

void WorkerRegistry::NotifyChange() {
  std::function<void()> listener;
  {
    absl::MutexLock lock(&mutex_);
    if (!listener_) return;
    listener = listener_;
    ++listener_calls_;
  }
  listener();
  absl::MutexLock lock(&mutex_);
  --listener_calls_;
}

std::string WorkerRegistry::Register(WorkerKind kind, const std::string& address,
                                     const std::string& model, int max_sessions) {
  std::string id;
  {
    absl::MutexLock lock(&mutex_);
    int assigned = 0;
    dspark::internal::v1::Policy policy;
    double weight = 1.0;
    // A restarted worker: its old entry goes; the router's own session count
    // stays (those sessions release against the address), and so does the
    // scheduler's decision (the worker gets it again with its next heartbeat).
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->second.kind == kind && it->second.address == address) {
        assigned = it->second.assigned;
        policy = it->second.policy;
        weight = it->second.placement_weight;
        workers_.erase(it++);
      } else {
        ++it;
      }
    }
    id = absl::StrCat(KindName(kind), "-", next_id_++);
    WorkerInfo& w = workers_[id];
    w.id = id;
    w.kind = kind;
    w.address = address;
    w.model = model;
    w.max_sessions = std::max(1, max_sessions);
    w.last_seen = Now();
    w.assigned = assigned;
    w.policy = policy;
    w.placement_weight = weight;
  }
  DSPARK_LOG(INFO) << "registered " << KindName(kind) << " worker " << id << " at " << address
                   << " (model " << model << ", " << max_sessions << " sessions)";
  NotifyChange();
  return id;
}

bool WorkerRegistry::Heartbeat(const std::string& id, const dspark::internal::v1::WorkerLoad& load,
                               dspark::internal::v1::Policy* policy) {
  {
    absl::MutexLock lock(&mutex_);
    auto it = workers_.find(id);
    if (it == workers_.end()) return false;
    it->second.load = load;
    it->second.last_seen = Now();
    it->second.suspect = false;
    if (policy != nullptr && it->second.policy.version() > 0) *policy = it->second.policy;
  }
  NotifyChange();
  return true;
}

void WorkerRegistry::UpdateStatic(WorkerKind kind, const std::string& address,
                                  const std::string& model, int max_sessions,
                                  const dspark::internal::v1::WorkerLoad& load) {
  const std::string id = absl::StrCat("static-", KindName(kind), "-", address);
  bool added = false;
  {
    absl::MutexLock lock(&mutex_);
    // Listed and registered too: the registration (with its real
    // max_sessions and heartbeats) is the one entry.
    for (const auto& [other_id, w] : workers_) {
      if (!w.is_static && w.kind == kind && w.address == address) return;
    }
    auto [it, inserted] = workers_.try_emplace(id);
    WorkerInfo& w = it->second;
    added = inserted;
    w.id = id;
    w.kind = kind;
    w.address = address;
    w.model = model;
    w.max_sessions = std::max(1, max_sessions);
    w.is_static = true;
    w.load = load;
    w.last_seen = Now();
    w.suspect = false;
  }
  if (added) DSPARK_LOG(INFO) << "static " << KindName(kind) << " worker " << address << " is live";
  NotifyChange();
}

void WorkerRegistry::MarkSuspect(const std::string& id) {
  absl::MutexLock lock(&mutex_);
  auto it = workers_.find(id);
  if (it != workers_.end()) it->second.suspect = true;
}

void WorkerRegistry::SetPolicy(const std::string& address,
                               const dspark::internal::v1::Policy& policy,
                               double placement_weight) {
  absl::MutexLock lock(&mutex_);
  for (auto& [id, w] : workers_) {
    if (w.kind != WorkerKind::kVerify || w.address != address) continue;
    w.policy = policy;
    w.placement_weight = std::clamp(placement_weight, 0.01, 1.0);
  }
}

dspark::internal::v1::Policy WorkerRegistry::PolicyFor(const std::string& address) const {
  absl::MutexLock lock(&mutex_);
  for (const auto& [id, w] : workers_) {
    if (w.kind == WorkerKind::kVerify && w.address == address) return w.policy;
  }
  return {};
}

int WorkerRegistry::Sweep(std::vector<WorkerInfo>* dropped_workers) {
  const absl::Time cutoff = Now() - options_.heartbeat_interval * options_.missed_heartbeats;
  std::vector<std::string> dropped;
  {
    absl::MutexLock lock(&mutex_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->second.last_seen < cutoff) {
        dropped.push_back(absl::StrCat(it->first, " at ", it->second.address));
        if (dropped_workers != nullptr) dropped_workers->push_back(it->second);
        workers_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (const std::string& d : dropped)
    DSPARK_LOG(WARNING) << "worker " << d << " stopped answering; dropped";
  return static_cast<int>(dropped.size());
}

bool WorkerRegistry::Usable(const WorkerInfo& w, WorkerKind kind, const std::string& model) const {
  // A worker that does not say its model is taken to serve ours.
  return w.kind == kind && !w.suspect && !w.load.draining() &&
         (w.model.empty() || ModelStem(w.model) == ModelStem(model));
}

absl::StatusOr<Placement> WorkerRegistry::Place(const std::string& model, uint64_t prefix_key,
                                                const std::string& exclude_id) {
  absl::MutexLock lock(&mutex_);
  std::vector<WorkerInfo*> verify, draft;
  std::vector<PlacementCandidate> verify_c, draft_c;
  for (auto& [id, w] : workers_) {
    PlacementCandidate c;
    c.address = w.address;
    c.assigned = w.assigned;
    c.reported = w.load.running_sessions() + w.load.waiting_sessions();
    c.max_sessions = w.max_sessions;
    c.weight = w.placement_weight;
    if (w.kind == WorkerKind::kVerify) {
      c.usable = Usable(w, WorkerKind::kVerify, model) && id != exclude_id;
      verify.push_back(&w);
      verify_c.push_back(c);
    } else {
      c.usable = Usable(w, WorkerKind::kDraft, model);
      draft.push_back(&w);
      draft_c.push_back(c);
    }
  }
  absl::StatusOr<int> v = ChooseVerifyWorker(verify_c, prefix_key, options_.placement);
  if (!v.ok()) return v.status();
  Placement p;
  WorkerInfo* vw = verify[*v];
  ++vw->assigned;
  p.verify_id = vw->id;
  p.verify_address = vw->address;
  if (int d = ChooseDraftWorker(draft_c); d >= 0) {
    WorkerInfo* dw = draft[d];
    ++dw->assigned;
    p.draft_id = dw->id;
    p.draft_address = dw->address;
  }
  return p;
}

void WorkerRegistry::Release(const Placement& placement) {
  {
    absl::MutexLock lock(&mutex_);
    auto release = [&](const std::string& id, const std::string& address) {
      if (id.empty()) return;
      auto it = workers_.find(id);
      if (it == workers_.end()) {
        // Re-registered under a new id since: release against the address.
        it = std::find_if(workers_.begin(), workers_.end(),
                          [&](const auto& e) { return e.second.address == address; });
      }
      if (it != workers_.end() && it->second.assigned > 0) --it->second.assigned;
    };
    release(placement.verify_id, placement.verify_address);
    release(placement.draft_id, placement.draft_address);
  }
  NotifyChange();
}

Placement WorkerRegistry::PlaceDraft(const std::string& model, int sessions,
                                     const std::string& exclude_address) {
  absl::MutexLock lock(&mutex_);
  std::vector<WorkerInfo*> draft;
  std::vector<PlacementCandidate> candidates;
  for (auto& [id, w] : workers_) {
    if (w.kind != WorkerKind::kDraft) continue;
    draft.push_back(&w);
    candidates.push_back(
        {.address = w.address,
         .assigned = w.assigned,
         .reported = w.load.running_sessions() + w.load.waiting_sessions(),
         .max_sessions = w.max_sessions,
         .weight = w.placement_weight,
         .usable = Usable(w, WorkerKind::kDraft, model) && w.address != exclude_address});
  }
  Placement p;
  if (int d = ChooseDraftWorker(candidates); d >= 0) {
    draft[d]->assigned += std::max(0, sessions);
    p.draft_id = draft[d]->id;
    p.draft_address = draft[d]->address;
  }
  return p;
}

int WorkerRegistry::UsableVerifyWorkers(const std::string& model) const {
  absl::MutexLock lock(&mutex_);
  int n = 0;
  for (const auto& [id, w] : workers_) n += Usable(w, WorkerKind::kVerify, model);
  return n;
}

std::vector<WorkerInfo> WorkerRegistry::Snapshot() const {
  absl::MutexLock lock(&mutex_);
  std::vector<WorkerInfo> out;
  for (const auto& [id, w] : workers_) out.push_back(w);
  std::sort(out.begin(), out.end(),
            [](const WorkerInfo& a, const WorkerInfo& b) { return a.id < b.id; });
  return out;
}

}  // namespace dspark::router
