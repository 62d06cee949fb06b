#include "router/core/router_backend.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/rpc/channel.h"

namespace dspark::router {

namespace v1 = dspark::internal::v1;

class RouterBackend::Handle final : public GenerationHandle {
 public:
  explicit Handle(std::shared_ptr<Session> session) : session_(std::move(session)) {}
  void Cancel() override { session_->Cancel(); }

 private:
  std::shared_ptr<Session> session_;
};

RouterBackend::RouterBackend(RouterBackendOptions options, std::unique_ptr<ServedModel> model,
                             WorkerRegistry* registry)
    : options_(std::move(options)), model_(std::move(model)), registry_(registry) {
  seeds_.seed(options_.seed_source != 0 ? options_.seed_source : std::random_device{}());
  // New or freed room: start what is waiting.
  registry_->SetChangeListener([this] { Pump(); });
  housekeeping_ = std::thread([this] { Housekeeping(); });
}

RouterBackend::~RouterBackend() {
  registry_->SetChangeListener(nullptr);
  std::vector<std::shared_ptr<Session>> all;
  {
    absl::MutexLock lock(&mutex_);
    stop_ = true;
    draining_ = true;
    for (auto& [id, session] : sessions_) all.push_back(session);
  }
  housekeeping_.join();
  for (auto& session : all) session->Cancel();
  absl::MutexLock lock(&mutex_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return sessions_.empty() && reassign_calls_ == 0;
  };
  mutex_.Await(absl::Condition(&idle));
}

absl::StatusOr<std::unique_ptr<GenerationHandle>> RouterBackend::Start(GenerationRequest request,
                                                                       ChunkFn on_chunk,
                                                                       DoneFn on_done) {
  uint64_t seed;
  {
    absl::MutexLock lock(&mutex_);
    if (draining_) return absl::UnavailableError("the router is draining");
    seed = seeds_();
  }
  DSPARK_ASSIGN_OR_RETURN(ValidatedRequest validated,
                          ValidateRequest(request, *model_, options_.limits, seed));
  const uint64_t prefix_key = PrefixKey(
      absl::MakeConstSpan(validated.session.prompt().data(), validated.session.prompt_size()),
      registry_->placement_options());
  const absl::Time deadline = validated.deadline;

  std::shared_ptr<Session> session;
  absl::StatusOr<Placement> placed = absl::ResourceExhaustedError("queue not empty");
  {
    absl::MutexLock lock(&mutex_);
    if (draining_) return absl::UnavailableError("the router is draining");
    // FIFO: nobody overtakes a queued request.
    if (queue_.empty()) placed = registry_->Place(model_->id(), prefix_key, "");
    if (!placed.ok() && placed.status().code() == absl::StatusCode::kUnavailable) {
      return placed.status();
    }
    if (!placed.ok() && static_cast<int>(queue_.size()) >= options_.max_queue) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "every verify worker is busy and ", queue_.size(), " requests are already queued"));
    }
    if (!placed.ok() && registry_->UsableVerifyWorkers(model_->id()) == 0) {
      return absl::UnavailableError("no live verify worker serves the model");
    }
    const uint64_t id = next_id_++;
    SessionHost* host = this;  // private base: convertible here only
    session = std::make_shared<Session>(id, host, std::move(validated), prefix_key,
                                        std::move(on_chunk), std::move(on_done));
    sessions_[id] = session;
    if (!placed.ok()) {
      queue_.push_back({session, std::min(deadline, absl::Now() + options_.max_queue_wait)});
    }
    UpdateGauges();
  }
  auto handle = std::make_unique<Handle>(session);
  if (placed.ok()) session->Launch(*std::move(placed));
  return handle;
}

void RouterBackend::Pump() {
  while (true) {
    std::shared_ptr<Session> session;
    absl::StatusOr<Placement> placed = absl::UnknownError("");
    {
      absl::MutexLock lock(&mutex_);
      if (queue_.empty() || stop_) return;
      placed = registry_->Place(model_->id(), queue_.front().session->prefix_key(), "");
      if (!placed.ok()) return;  // still full (or no worker: the deadline decides)
      session = std::move(queue_.front().session);
      queue_.pop_front();
      UpdateGauges();
    }
    session->Launch(*std::move(placed));
  }
}

void RouterBackend::ExpireQueued() {
  std::vector<std::pair<std::shared_ptr<Session>, absl::Status>> expired;
  {
    absl::MutexLock lock(&mutex_);
    const absl::Time now = absl::Now();
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->expires <= now) {
        expired.emplace_back(it->session,
                             it->session->deadline() <= now
                                 ? absl::DeadlineExceededError("deadline exceeded while queued")
                                 : absl::UnavailableError("no verify worker became free in time"));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    UpdateGauges();
  }
  for (auto& [session, status] : expired) session->FailUnlaunched(status);
}

void RouterBackend::Housekeeping() {
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return stop_; };
      if (mutex_.AwaitWithTimeout(absl::Condition(&stopped), options_.housekeeping_interval)) {
        return;
      }
    }
    std::vector<WorkerInfo> dropped;
    if (registry_->Sweep(&dropped) > 0) ReassignDrafts(dropped);
    ExpireQueued();
    Pump();
  }
}

void RouterBackend::ReassignDrafts(const std::vector<WorkerInfo>& dropped) {
  std::vector<std::shared_ptr<Session>> sessions;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [id, session] : sessions_) sessions.push_back(session);
  }
  std::vector<std::string> verify_workers;
  for (const WorkerInfo& w : registry_->Snapshot()) {
    if (w.kind == WorkerKind::kVerify) verify_workers.push_back(w.address);
  }
  for (const WorkerInfo& lost : dropped) {
    if (lost.kind != WorkerKind::kDraft) continue;
    // The router's sessions drafting there, by verify worker. Every live
    // verify worker is asked too: it may hold sessions this router does
    // not know of (another router's, or finished ones kept for prefix reuse).
    absl::flat_hash_map<std::string, std::vector<std::shared_ptr<Session>>> by_verify;
    for (const std::string& v : verify_workers) by_verify[v];
    for (const auto& session : sessions) {
      std::optional<Placement> p = session->running_placement();
      if (p.has_value() && p->draft_address == lost.address) {
        by_verify[p->verify_address].push_back(session);
      }
    }
    // One replacement per verify worker, chosen in turn, so that a large
    // worker's sessions spread over the draft workers left.
    for (auto& [verify_address, group] : by_verify) {
      const Placement to =
          registry_->PlaceDraft(model_->id(), static_cast<int>(group.size()), lost.address);
      std::vector<std::shared_ptr<Session>> moved;
      int gone = 0;  // ended since the snapshot: their count on `to` goes back
      for (auto& session : group) {
        if (session->MoveDraft(lost.address, to.draft_id, to.draft_address)) {
          moved.push_back(std::move(session));
        } else {
          ++gone;
        }
      }
      for (int i = 0; i < gone && !to.draft_id.empty(); ++i) registry_->Release(to);
      if (!moved.empty()) {
        DSPARK_LOG(INFO) << "draft worker " << lost.address << " lost: " << moved.size()
                         << " sessions on " << verify_address << " move to "
                         << (to.draft_address.empty() ? "none" : to.draft_address);
      }
      SendReassign(verify_address, lost.address, to, std::move(moved));
    }
  }
}

void RouterBackend::SendReassign(const std::string& verify_address, const std::string& from,
                                 const Placement& to, std::vector<std::shared_ptr<Session>> moved) {
  struct Call {
    grpc::ClientContext context;
    v1::ReassignDraftsRequest request;
    v1::ReassignDraftsResponse response;
  };
  auto call = std::make_shared<Call>();
  call->request.set_from_address(from);
  call->request.set_to_address(to.draft_address);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + options_.reassign_timeout));
  {
    absl::MutexLock lock(&mutex_);
    ++reassign_calls_;
  }
  VerifyStub(verify_address)
      ->async()
      ->ReassignDrafts(
          &call->context, &call->request, &call->response,
          [this, call, verify_address, to, moved = std::move(moved)](grpc::Status status) {
            // Sessions the verify worker left without speculation are not
            // counted on `to`. It reports counts, not sessions: which of
            // ours they were is a guess, the totals are right.
            size_t undo = 0;
            if (!status.ok()) {
              DSPARK_LOG(WARNING) << "ReassignDrafts to " << verify_address
                                  << " failed: " << status.error_message();
              undo = moved.size();
            } else {
              const size_t reattached =
                  static_cast<size_t>(std::max(0, call->response.reattached_sessions()));
              undo = moved.size() > reattached ? moved.size() - reattached : 0;
            }
            for (size_t i = 0; i < undo && !to.draft_id.empty(); ++i) {
              if (moved[i]->MoveDraft(to.draft_address, "", "")) registry_->Release(to);
            }
            absl::MutexLock lock(&mutex_);
            --reassign_calls_;
          });
}

void RouterBackend::SessionEnded(uint64_t session_id) {
  absl::MutexLock lock(&mutex_);
  sessions_.erase(session_id);
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [&](const Queued& q) { return q.session->id() == session_id; });
  if (it != queue_.end()) queue_.erase(it);
  UpdateGauges();
}

void RouterBackend::UpdateGauges() {
  if (options_.metrics == nullptr) return;
  options_.metrics->requests_waiting->Set(static_cast<double>(queue_.size()));
  options_.metrics->requests_running->Set(static_cast<double>(sessions_.size() - queue_.size()));
}

v1::VerifyWorker::Stub* RouterBackend::VerifyStub(const std::string& address) {
  absl::MutexLock lock(&stubs_mutex_);
  auto& stub = stubs_[address];
  if (stub == nullptr) stub = v1::VerifyWorker::NewStub(rpc::MakeChannel(address));
  return stub.get();
}

absl::StatusOr<std::vector<int32_t>> RouterBackend::Tokenize(
    const std::string& model, const std::variant<std::string, std::vector<ChatTurn>>& input) {
  DSPARK_RETURN_IF_ERROR(CheckModelId(model, *model_));
  if (const auto* text = std::get_if<std::string>(&input)) return TokenizeInput(*text, *model_);
  return TokenizeInput(std::get<std::vector<ChatTurn>>(input), *model_);
}

absl::StatusOr<std::string> RouterBackend::Detokenize(const std::string& model,
                                                      const std::vector<int32_t>& ids) {
  DSPARK_RETURN_IF_ERROR(CheckModelId(model, *model_));
  return model_->Decode(ids);
}

std::vector<ModelCard> RouterBackend::ListModels() {
  return {ModelCard{model_->id(), model_->context_length(), options_.drafter}};
}

bool RouterBackend::Healthy() {
  {
    absl::MutexLock lock(&mutex_);
    if (draining_) return false;
  }
  return registry_->UsableVerifyWorkers(model_->id()) > 0;
}

void RouterBackend::BeginDrain() {
  absl::MutexLock lock(&mutex_);
  draining_ = true;
}

bool RouterBackend::WaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mutex_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return sessions_.empty(); };
  return mutex_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

int RouterBackend::queued() const {
  absl::MutexLock lock(&mutex_);
  return static_cast<int>(queue_.size());
}

int RouterBackend::running() const {
  absl::MutexLock lock(&mutex_);
  return static_cast<int>(sessions_.size() - queue_.size());
}

}  // namespace dspark::router
