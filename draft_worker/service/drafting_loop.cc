#include "draft_worker/service/drafting_loop.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "draft_worker/drafter/draft_requests.h"
#include "draft_worker/service/spec_codec.h"

namespace dspark::draft_service {

namespace v1 = dspark::internal::v1;

DraftingLoop::DraftingLoop(drafter::Drafter* drafter, const DraftingLoopOptions& options)
    : drafter_(drafter),
      options_(options),
      context_layers_(drafter->context_layers()),
      max_block_(drafter->max_block()) {
  thread_ = std::thread([this] { Run(); });
}

DraftingLoop::~DraftingLoop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
  // Streams still connected (their server is gone): free the drafter's state.
  for (auto& [id, stream] : streams_) CloseSessions(stream);
}

int64_t DraftingLoop::AddStream(std::shared_ptr<StreamLink> link) {
  absl::MutexLock lock(&mu_);
  const int64_t id = next_stream_++;
  queue_.push_back({.kind = Kind::kStart, .stream = id, .link = std::move(link)});
  return id;
}

void DraftingLoop::Submit(int64_t stream, v1::SpecRequest request) {
  absl::MutexLock lock(&mu_);
  queue_.push_back({.kind = Kind::kRequest, .stream = stream, .request = std::move(request)});
}

void DraftingLoop::EndStream(int64_t stream) {
  absl::MutexLock lock(&mu_);
  queue_.push_back({.kind = Kind::kEnd, .stream = stream});
}

DraftingStats DraftingLoop::SnapshotLocked() const {
  DraftingStats stats = stats_;
  stats.queued = static_cast<int>(queue_.size());
  return stats;
}

DraftingStats DraftingLoop::stats() const {
  absl::MutexLock lock(&mu_);
  return SnapshotLocked();
}

bool DraftingLoop::AwaitStats(const std::function<bool(const DraftingStats&)>& done,
                              absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto ready = [this, &done]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done(SnapshotLocked()); };
  return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
}

void DraftingLoop::Run() {
  while (true) {
    std::deque<Item> items;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](DraftingLoop* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stop_ || !self->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping, nothing left
      items.swap(queue_);
    }
    Process(std::move(items));
  }
}

void DraftingLoop::Process(std::deque<Item> items) {
  // Rounds: each applies every item it can and drafts all the Draft
  // messages it met in one call. Streams never share sessions, so only a
  // stream's own order matters; a stream with a Draft in this round defers
  // its later messages (an Extend after a Draft would change that draft).
  while (!items.empty()) {
    std::deque<Item> deferred;
    absl::flat_hash_set<int64_t> waiting;  // streams with a Draft this round
    std::vector<PendingDraft> drafts;
    for (Item& item : items) {
      if (waiting.contains(item.stream)) {
        deferred.push_back(std::move(item));
        continue;
      }
      const size_t before = drafts.size();
      Apply(item, &drafts);
      if (drafts.size() > before) waiting.insert(item.stream);
    }
    RunDrafts(std::move(drafts));
    items.swap(deferred);
  }
}

void DraftingLoop::Apply(Item& item, std::vector<PendingDraft>* drafts) {
  switch (item.kind) {
    case Kind::kStart:
      streams_[item.stream].link = std::move(item.link);
      break;
    case Kind::kEnd: {
      auto it = streams_.find(item.stream);
      if (it == streams_.end()) return;
      CloseSessions(it->second);
      it->second.link->Finish();
      streams_.erase(it);
      break;
    }
    case Kind::kRequest: {
      auto it = streams_.find(item.stream);
      if (it == streams_.end()) return;  // ended already
      v1::SpecResponse response;
      response.set_seq(item.request.seq());
      absl::Status st = HandleRequest(it->second, item.request, &response, drafts, item.stream);
      if (!st.ok()) {
        response.clear_reply();
        response.set_code(static_cast<int>(st.code()));
        response.set_message(std::string(st.message()));
        it->second.link->Send(std::move(response));
      } else if (item.request.has_hello()) {
        it->second.link->Send(std::move(response));
      }
      break;
    }
  }
  if (options_.metrics != nullptr) {
    options_.metrics->sessions->Set(open_sessions_);
    options_.metrics->streams->Set(static_cast<double>(streams_.size()));
  }
  absl::MutexLock lock(&mu_);
  stats_.streams = static_cast<int>(streams_.size());
  stats_.open_sessions = open_sessions_;
}

absl::Status DraftingLoop::HandleRequest(Stream& stream, const v1::SpecRequest& request,
                                         v1::SpecResponse* response,
                                         std::vector<PendingDraft>* drafts, int64_t stream_id) {
  if (request.has_hello()) return HandleHello(stream, request.hello(), response);
  if (request.op_case() == v1::SpecRequest::OP_NOT_SET) {
    return absl::InvalidArgumentError("SpecRequest without an operation");
  }
  if (!stream.hello) return absl::FailedPreconditionError("the stream must start with Hello");
  switch (request.op_case()) {
    case v1::SpecRequest::kOpen: {
      const int64_t session = request.open().session();
      if (stream.sessions.contains(session)) {
        return absl::InvalidArgumentError(absl::StrCat("session ", session, " is already open"));
      }
      const drafter::SessionId id = next_session_++;
      absl::Status st = drafter_->Open(id);
      if (!st.ok()) return st;
      stream.sessions[session] = id;
      ++open_sessions_;
      return absl::OkStatus();
    }
    case v1::SpecRequest::kExtend:
      return HandleExtend(stream, request.extend());
    case v1::SpecRequest::kFork:
      return HandleFork(stream, request.fork());
    case v1::SpecRequest::kClose: {
      // Closing an unknown session is not a failure (the Drafter contract).
      auto it = stream.sessions.find(request.close().session());
      if (it == stream.sessions.end()) return absl::OkStatus();
      drafter_->Close(it->second);
      stream.sessions.erase(it);
      --open_sessions_;
      return absl::OkStatus();
    }
    case v1::SpecRequest::kDraft: {
      PendingDraft pending{.stream = stream_id, .seq = request.seq()};
      absl::Status st = HandleDraft(stream, request.draft(), &pending);
      if (st.ok()) drafts->push_back(std::move(pending));
      return st;
    }
    default:
      return absl::InvalidArgumentError("unknown SpecRequest operation");
  }
}

absl::Status DraftingLoop::HandleHello(Stream& stream, const v1::Hello& hello,
                                       v1::SpecResponse* response) {
  if (stream.hello) return absl::FailedPreconditionError("Hello sent twice on one stream");
  if (!options_.target_model.empty() && hello.target_model() != options_.target_model) {
    return absl::FailedPreconditionError(absl::StrCat("this draft worker drafts for target '",
                                                      options_.target_model, "', not '",
                                                      hello.target_model(), "'"));
  }
  stream.hello = true;
  v1::HelloReply* reply = response->mutable_hello();
  reply->set_drafter(drafter_->name());
  reply->set_max_block(max_block_);
  reply->mutable_context_layers()->Add(context_layers_.begin(), context_layers_.end());
  return absl::OkStatus();
}

absl::Status DraftingLoop::HandleExtend(Stream& stream, const v1::ExtendSession& extend) {
  auto it = stream.sessions.find(extend.session());
  if (it == stream.sessions.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown session ", extend.session()));
  }
  const int64_t n = extend.tokens_size();
  for (int32_t t : extend.tokens()) {
    if (t < 0 || (options_.vocab_size > 0 && t >= options_.vocab_size)) {
      return absl::InvalidArgumentError(absl::StrCat("token ", t, " outside the vocabulary"));
    }
  }
  const int64_t want_bytes = n * static_cast<int64_t>(context_layers_.size()) *
                             options_.target_dim * static_cast<int64_t>(sizeof(float));
  if (static_cast<int64_t>(extend.features().size()) != want_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "features of ", n, " tokens are ", extend.features().size(), " bytes, want ", want_bytes,
        " (f32 [tokens, ", context_layers_.size(), " layers * ", options_.target_dim, "])"));
  }
  if (options_.metrics != nullptr) {
    options_.metrics->feature_bytes->Increment(static_cast<double>(extend.features().size()));
  }
  absl::StatusOr<std::vector<float>> features = FeaturesFromBytes(extend.features());
  if (!features.ok()) return features.status();
  return drafter_->Extend(it->second, absl::MakeConstSpan(extend.tokens().data(), n), *features);
}

absl::Status DraftingLoop::HandleFork(Stream& stream, const v1::ForkSession& fork) {
  auto parent = stream.sessions.find(fork.parent());
  if (parent == stream.sessions.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown parent session ", fork.parent()));
  }
  if (stream.sessions.contains(fork.child())) {
    return absl::InvalidArgumentError(absl::StrCat("session ", fork.child(), " is already open"));
  }
  const drafter::SessionId id = next_session_++;
  absl::Status st = drafter_->Fork(id, parent->second, fork.prefix_len());
  if (!st.ok()) return st;
  stream.sessions[fork.child()] = id;
  ++open_sessions_;
  return absl::OkStatus();
}

absl::Status DraftingLoop::HandleDraft(Stream& stream, const v1::DraftBatch& batch,
                                       PendingDraft* pending) {
  pending->requests.reserve(batch.requests_size());
  for (const v1::DraftRequest& wire : batch.requests()) {
    drafter::DraftRequest r = FromProto(wire);
    auto it = stream.sessions.find(r.session);
    if (it == stream.sessions.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown session ", r.session));
    }
    r.session = it->second;
    pending->requests.push_back(r);
  }
  // Checked here, per stream, so that one stream's bad request does not fail
  // the batched call for the others.
  return drafter::CheckDraftRequests(pending->requests, max_block_, options_.vocab_size,
                                     [](drafter::SessionId) { return true; });
}

void DraftingLoop::RunDrafts(std::vector<PendingDraft> drafts) {
  if (drafts.empty()) return;
  std::vector<drafter::DraftRequest> all;
  for (const PendingDraft& d : drafts) all.insert(all.end(), d.requests.begin(), d.requests.end());
  std::vector<drafter::DraftBlock> blocks;
  absl::Status st = absl::OkStatus();
  if (!all.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    st = drafter_->Draft(all, &blocks);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (st.ok() && blocks.size() != all.size()) {
      st = absl::InternalError(absl::StrCat(drafter_->name(), " drafter returned ", blocks.size(),
                                            " blocks for ", all.size()));
    }
    if (options_.metrics != nullptr) {
      options_.metrics->batch_size->Observe(static_cast<double>(all.size()));
      options_.metrics->draft_latency->Observe(seconds);
      if (st.ok()) {
        size_t tokens = 0;
        for (const drafter::DraftBlock& b : blocks) tokens += b.tokens.size();
        options_.metrics->drafted_tokens->Increment(static_cast<double>(tokens));
      }
    }
    absl::MutexLock lock(&mu_);
    ++stats_.draft_calls;
    if (st.ok()) stats_.drafted_blocks += static_cast<int64_t>(blocks.size());
    stats_.max_batch = std::max(stats_.max_batch, static_cast<int>(all.size()));
    stats_.max_batch_streams = std::max(stats_.max_batch_streams, static_cast<int>(drafts.size()));
    const bool first = stats_.draft_calls == 1;
    stats_.draft_seconds = first ? seconds : 0.9 * stats_.draft_seconds + 0.1 * seconds;
    stats_.batch_requests =
        first ? static_cast<double>(all.size()) : 0.9 * stats_.batch_requests + 0.1 * all.size();
  }
  if (!st.ok() && drafts.size() > 1) {
    // Somebody's request failed the batch (the checks above passed, so it is
    // the drafter's own refusal): draft each stream alone so that the error
    // reaches only the stream that caused it.
    DSPARK_LOG(WARNING) << "batched draft failed (" << st << "); drafting each stream alone";
    for (PendingDraft& d : drafts) RunDrafts({std::move(d)});
    return;
  }
  size_t next = 0;
  for (const PendingDraft& d : drafts) {
    v1::SpecResponse response;
    response.set_seq(d.seq);
    if (!st.ok()) {
      response.set_code(static_cast<int>(st.code()));
      response.set_message(std::string(st.message()));
    } else {
      v1::DraftBlocks* out = response.mutable_blocks();
      for (size_t i = 0; i < d.requests.size(); ++i) ToProto(blocks[next++], out->add_blocks());
    }
    Reply(d.stream, std::move(response));
  }
}

void DraftingLoop::CloseSessions(Stream& stream) {
  for (const auto& [session, id] : stream.sessions) drafter_->Close(id);
  open_sessions_ -= static_cast<int>(stream.sessions.size());
  stream.sessions.clear();
}

void DraftingLoop::Reply(int64_t stream, v1::SpecResponse response) {
  auto it = streams_.find(stream);
  if (it != streams_.end()) it->second.link->Send(std::move(response));
}

}  // namespace dspark::draft_service
