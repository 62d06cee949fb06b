#include "verify_worker/remote_drafter/routing_drafter.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/file_util.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/metrics/metrics.h"
#include "draft_worker/drafter/draft_requests.h"

namespace dspark::remote_drafter {

absl::StatusOr<drafter::DsparkConfig> ReadDsparkConfig(const std::string& dir) {
  const std::string path = dir + "/" + drafter::DsparkCheckpoint::kConfigFile;
  DSPARK_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return drafter::ParseDsparkConfig(path, text);
}

RoutingDrafter::RoutingDrafter(const RoutingDrafterOptions& options) : options_(options) {}

RoutingDrafter::~RoutingDrafter() = default;

void RoutingDrafter::Assign(drafter::SessionId session, const std::string& address) {
  assigned_[session] = address;
}

std::shared_ptr<RoutingDrafter::Worker> RoutingDrafter::WorkerFor(const std::string& address) {
  std::shared_ptr<Worker>& slot = workers_[address];
  if (slot != nullptr && slot->remote != nullptr && Alive(*slot)) return slot;
  const absl::Time now = absl::Now();
  if (slot != nullptr && now - slot->failed_at < options_.reconnect_interval) return nullptr;
  // A new Worker: sessions of the old one stay detached (their state was
  // on the lost stream).
  auto worker = std::make_shared<Worker>();
  worker->address = address;
  slot = worker;
  absl::StatusOr<std::unique_ptr<RemoteDrafter>> remote = RemoteDrafter::Connect(
      {.address = address, .target_model = options_.target_model, .timeout = options_.timeout});
  if (!remote.ok()) {
    DSPARK_LOG(WARNING) << "no drafting on " << address
                        << " (sessions go on without): " << remote.status();
    worker->failed_at = now;
    return nullptr;
  }
  const std::vector<int> layers = (*remote)->context_layers();
  if (layers == options_.context_layers) {
    worker->send_features = !layers.empty();
  } else if (layers.empty()) {
    worker->send_features = false;  // a token-only drafter: features would be wasted
  } else {
    DSPARK_LOG(ERROR) << "draft worker " << address << " (" << (*remote)->name()
                      << ") needs target layers [" << absl::StrJoin(layers, ",")
                      << "], this verify worker captures ["
                      << absl::StrJoin(options_.context_layers, ",") << "]; not drafting there";
    worker->failed_at = now;
    return nullptr;
  }
  worker->remote = *std::move(remote);
  DSPARK_LOG(INFO) << "drafting on " << address << " (" << worker->remote->name() << ", block "
                   << worker->remote->max_block() << ")";
  return worker;
}

bool RoutingDrafter::Alive(Worker& worker) {
  if (worker.remote == nullptr) return false;
  absl::Status health = worker.remote->health();
  if (health.ok()) return true;
  if (!worker.failure_logged) {
    worker.failure_logged = true;
    worker.failed_at = absl::Now();
    DSPARK_LOG(WARNING) << "draft worker " << worker.address
                        << " lost; its sessions go on without speculation: " << health;
  }
  return false;
}

RoutingDrafter::Worker* RoutingDrafter::Attached(drafter::SessionId session, Route& route) {
  if (route.worker == nullptr) return nullptr;
  Worker& worker = *route.worker;
  if (!Alive(worker)) {
    route.worker = nullptr;
    return nullptr;
  }
  absl::Status st = worker.remote->SessionStatus(session);
  if (!st.ok()) {
    DSPARK_LOG(WARNING) << "draft worker " << worker.address << " refused session " << session
                        << "; it goes on without speculation: " << st;
    worker.remote->Close(session);
    route.worker = nullptr;
    return nullptr;
  }
  return &worker;
}

void RoutingDrafter::Remember(Tail& tail, absl::Span<const int32_t> tokens,
                              absl::Span<const float> features) {
  tail.length += static_cast<int64_t>(tokens.size());
  const size_t limit = static_cast<size_t>(std::max(0, options_.replay_tokens));
  if (limit == 0 || tokens.empty()) return;
  const size_t row = features.size() / tokens.size();
  if (row * tokens.size() != features.size() || (row != tail.row && !tail.tokens.empty())) {
    // Features of another shape than before (not expected from the engine):
    // a tail mixing shapes could not be replayed, so it restarts here.
    tail.tokens.clear();
    tail.features.clear();
    if (row * tokens.size() != features.size()) return;
  }
  tail.row = row;
  const size_t skip = tokens.size() > limit ? tokens.size() - limit : 0;
  tail.tokens.insert(tail.tokens.end(), tokens.begin() + skip, tokens.end());
  tail.features.insert(tail.features.end(), features.begin() + skip * row, features.end());
  if (tail.tokens.size() > limit) {
    const size_t drop = tail.tokens.size() - limit;
    tail.tokens.erase(tail.tokens.begin(), tail.tokens.begin() + drop);
    tail.features.erase(tail.features.begin(), tail.features.begin() + drop * row);
  }
}

bool RoutingDrafter::Replay(drafter::SessionId session, Route& route) {
  if (route.address.empty() || route.tail.tokens.empty()) return false;
  std::shared_ptr<Worker> worker = WorkerFor(route.address);
  if (worker == nullptr) return false;
  // A worker that needs features gets none if none were kept: refused.
  if (worker->send_features && route.tail.row == 0) return false;
  const std::vector<int32_t> tokens(route.tail.tokens.begin(), route.tail.tokens.end());
  std::vector<float> features;
  if (worker->send_features) {
    features.assign(route.tail.features.begin(), route.tail.features.end());
  }
  if (!worker->remote->Open(session).ok() ||
      !worker->remote->Extend(session, tokens, features).ok()) {
    return false;  // a broken stream (Alive logs it at the next use)
  }
  metrics::VerifyMetrics* m = metrics_.load();
  if (m != nullptr) {
    m->draft_reattached->Increment();
    if (!features.empty()) {
      m->feature_bytes_sent->Increment(static_cast<double>(features.size() * sizeof(float)));
    }
  }
  route.worker = std::move(worker);
  return true;
}

ReassignResult RoutingDrafter::Reassign(const std::string& from, const std::string& to) {
  ReassignResult result;
  // Not opened yet: they open on `to` (or nowhere) when the engine gets to them.
  for (auto& [session, address] : assigned_) {
    if (address != from) continue;
    address = to;
    ++(to.empty() ? result.detached : result.reattached);
  }
  int failed = 0;
  for (auto& [session, route] : routes_) {
    if (route.address != from) continue;
    if (from == to && Attached(session, route) != nullptr) {
      ++result.reattached;  // already there and well
      continue;
    }
    if (route.worker != nullptr) {
      if (Alive(*route.worker)) route.worker->remote->Close(session);
      route.worker = nullptr;
    }
    route.address = to;
    if (Replay(session, route)) {
      ++result.reattached;
    } else {
      ++result.detached;
      if (!to.empty()) ++failed;
    }
  }
  if (result.reattached + result.detached > 0) {
    DSPARK_LOG(INFO) << "draft sessions of " << from << " moved to " << (to.empty() ? "none" : to)
                     << ": " << result.reattached << " reattached, " << result.detached
                     << " without speculation"
                     << (failed > 0 ? " (could not rebuild them there)" : "");
  }
  return result;
}

absl::Status RoutingDrafter::Open(drafter::SessionId session) {
  if (routes_.contains(session)) {
    return absl::InvalidArgumentError(absl::StrCat("session ", session, " is already open"));
  }
  Route route;
  auto assigned = assigned_.find(session);
  if (assigned != assigned_.end()) {
    route.address = assigned->second;
    std::shared_ptr<Worker> worker = route.address.empty() ? nullptr : WorkerFor(route.address);
    if (worker != nullptr && worker->remote->Open(session).ok()) route.worker = std::move(worker);
    assigned_.erase(assigned);
  }
  routes_[session] = std::move(route);
  return absl::OkStatus();
}

absl::Status RoutingDrafter::Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                                    absl::Span<const float> features) {
  auto it = routes_.find(session);
  if (it == routes_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown session ", session));
  }
  Remember(it->second.tail, tokens, features);
  Worker* worker = Attached(session, it->second);
  if (worker == nullptr) return absl::OkStatus();
  const absl::Span<const float> sent = worker->send_features ? features : absl::Span<const float>();
  absl::Status st = worker->remote->Extend(session, tokens, sent);
  if (metrics::VerifyMetrics* m = metrics_.load(); m != nullptr && st.ok() && !sent.empty()) {
    m->feature_bytes_sent->Increment(static_cast<double>(sent.size() * sizeof(float)));
  }
  if (!st.ok()) it->second.worker = nullptr;  // broken stream: Alive logs it at the next use
  return absl::OkStatus();
}

absl::Status RoutingDrafter::Draft(absl::Span<const drafter::DraftRequest> requests,
                                   std::vector<drafter::DraftBlock>* blocks) {
  DSPARK_ASSIGN_OR_RETURN(uint64_t ticket, StartDraft(requests));
  return FinishDraft(ticket, blocks);
}

absl::StatusOr<uint64_t> RoutingDrafter::StartDraft(
    absl::Span<const drafter::DraftRequest> requests) {
  DSPARK_RETURN_IF_ERROR(
      drafter::CheckDraftRequests(requests, options_.max_block, /*vocab=*/0,
                                  [this](drafter::SessionId s) { return routes_.contains(s); }));
  Pending pending{.requests = requests.size(), .sent = absl::Now()};
  absl::flat_hash_map<Worker*, size_t> batch_of;
  for (size_t i = 0; i < requests.size(); ++i) {
    Route& route = routes_[requests[i].session];
    Worker* worker = Attached(requests[i].session, route);
    if (worker == nullptr) continue;
    auto [it, added] = batch_of.try_emplace(worker, pending.batches.size());
    if (added) pending.batches.push_back({.worker = route.worker});
    Batch& batch = pending.batches[it->second];
    drafter::DraftRequest r = requests[i];
    r.max_tokens = std::min(r.max_tokens, worker->remote->max_block());
    batch.requests.push_back(r);
    batch.index.push_back(i);
  }
  // Every worker drafts at once.
  for (Batch& batch : pending.batches) {
    batch.ticket = batch.worker->remote->SendDraft(batch.requests);
  }
  const uint64_t ticket = next_ticket_++;
  pending_.emplace(ticket, std::move(pending));
  return ticket;
}

absl::Status RoutingDrafter::FinishDraft(uint64_t ticket,
                                         std::vector<drafter::DraftBlock>* blocks) {
  auto node = pending_.extract(ticket);
  if (node.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown draft ticket ", ticket));
  }
  Pending& pending = node.mapped();
  blocks->assign(pending.requests, {});
  // The replies are collected in turn, each within the timeout counted from its send.
  metrics::VerifyMetrics* m = metrics_.load();
  for (Batch& batch : pending.batches) {
    absl::Status st = batch.ticket.status();
    std::vector<drafter::DraftBlock> drafted;
    if (st.ok()) st = batch.worker->remote->AwaitDraft(*batch.ticket, &drafted);
    if (st.ok() && m != nullptr) {
      m->specstream_rtt->Observe(absl::ToDoubleSeconds(absl::Now() - pending.sent));
    }
    if (!st.ok()) {
      // A broken worker detaches its sessions at their next use (Alive logs
      // it); a refused batch only costs these drafts.
      if (Alive(*batch.worker)) {
        DSPARK_LOG(WARNING) << "draft worker " << batch.worker->address
                            << " refused a batch; this step goes on without: " << st;
      }
      continue;
    }
    for (size_t k = 0; k < drafted.size(); ++k) (*blocks)[batch.index[k]] = std::move(drafted[k]);
  }
  return absl::OkStatus();
}

absl::Status RoutingDrafter::Fork(drafter::SessionId child, drafter::SessionId parent,
                                  int64_t prefix_len) {
  if (routes_.contains(child)) {
    return absl::InvalidArgumentError(absl::StrCat("session ", child, " is already open"));
  }
  auto parent_route = routes_.find(parent);
  if (parent_route == routes_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown parent session ", parent));
  }
  Worker* worker = Attached(parent, parent_route->second);
  auto assigned = assigned_.find(child);
  const std::string child_address = assigned == assigned_.end() ? "" : assigned->second;
  // A child named no draft worker does not draft: it forks detached, like
  // its parent may be, and the engine still shares the prefix's KV (refusing
  // made every request of a cluster without draft workers prefill its whole
  // prompt). A child that is to draft needs its parent's state on its worker.
  if (worker == nullptr && !child_address.empty()) {
    return absl::UnimplementedError(
        absl::StrCat("parent session ", parent, " has no draft worker to fork on"));
  }
  if (worker != nullptr && child_address != worker->address) {
    return absl::UnimplementedError(absl::StrCat("cannot fork session ", parent, " on ",
                                                 worker->address, " into a session on '",
                                                 child_address, "'"));
  }
  std::shared_ptr<Worker> shared;
  if (worker != nullptr) {
    shared = parent_route->second.worker;
    DSPARK_RETURN_IF_ERROR(worker->remote->Fork(child, parent, prefix_len));
  }
  // The child's tail: what the parent kept of its first prefix_len tokens.
  const Tail& from = parent_route->second.tail;
  Tail tail;
  tail.row = from.row;
  tail.length = std::clamp<int64_t>(prefix_len, 0, from.length);
  const int64_t start = from.length - static_cast<int64_t>(from.tokens.size());
  const int64_t keep_from =
      std::max(start, tail.length - static_cast<int64_t>(std::max(0, options_.replay_tokens)));
  if (tail.length > keep_from) {
    const size_t a = static_cast<size_t>(keep_from - start);
    const size_t b = static_cast<size_t>(tail.length - start);
    tail.tokens.assign(from.tokens.begin() + a, from.tokens.begin() + b);
    tail.features.assign(from.features.begin() + a * from.row,
                         from.features.begin() + b * from.row);
  }
  routes_[child] = {
      .address = child_address, .worker = std::move(shared), .tail = std::move(tail)};
  assigned_.erase(child);
  return absl::OkStatus();
}

void RoutingDrafter::Close(drafter::SessionId session) {
  assigned_.erase(session);
  auto it = routes_.find(session);
  if (it == routes_.end()) return;
  if (it->second.worker != nullptr && it->second.worker->remote != nullptr) {
    it->second.worker->remote->Close(session);  // a no-op on a broken stream
  }
  routes_.erase(it);
}

int RoutingDrafter::attached_sessions() const {
  int n = 0;
  for (const auto& [session, route] : routes_) {
    if (route.worker != nullptr && route.worker->remote != nullptr &&
        route.worker->remote->health().ok()) {
      ++n;
    }
  }
  return n;
}

int RoutingDrafter::detached_sessions() const {
  return static_cast<int>(routes_.size()) - attached_sessions();
}

}  // namespace dspark::remote_drafter
