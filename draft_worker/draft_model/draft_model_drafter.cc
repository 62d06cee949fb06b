#include "draft_worker/draft_model/draft_model_drafter.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/engine/sampling/sampler.h"
#include "draft_worker/drafter/draft_requests.h"

namespace dspark::drafter {

using engine::KvCache;
using engine::Model;

absl::StatusOr<std::unique_ptr<DraftModelDrafter>> DraftModelDrafter::Create(
    std::unique_ptr<Model> draft, int target_vocab, const DraftModelDrafterOptions& options) {
  Model* model = draft.get();
  auto drafter = CreateShared(model, target_vocab, options);
  if (drafter.ok()) (*drafter)->owned_ = std::move(draft);
  return drafter;
}

absl::StatusOr<std::unique_ptr<DraftModelDrafter>> DraftModelDrafter::CreateShared(
    Model* draft, int target_vocab, const DraftModelDrafterOptions& options) {
  if (draft == nullptr) return absl::InvalidArgumentError("no draft model");
  if (draft->config().vocab_size != target_vocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("draft model vocabulary (", draft->config().vocab_size,
                     " tokens) differs from the target's (", target_vocab, " tokens)"));
  }
  if (options.max_block < 1 || options.top_k < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_block ", options.max_block, " and top_k ",
                                                   options.top_k, " must be >= 1"));
  }
  if (options.kv.block_size < 1 || options.kv.max_tokens < 1) {
    return absl::InvalidArgumentError("KV cache block_size and max_tokens must be >= 1");
  }
  return std::unique_ptr<DraftModelDrafter>(new DraftModelDrafter(nullptr, draft, options));
}

DraftModelDrafter::DraftModelDrafter(std::unique_ptr<Model> owned, Model* model,
                                     const DraftModelDrafterOptions& options)
    : owned_(std::move(owned)),
      model_(model),
      options_(options),
      vocab_(model->config().vocab_size),
      cache_(model->NewKvCache(options.kv)) {}

DraftModelDrafter::~DraftModelDrafter() = default;

absl::Status DraftModelDrafter::Open(SessionId session) {
  if (sessions_.contains(session)) {
    return absl::AlreadyExistsError(absl::StrCat("session ", session, " is already open"));
  }
  sessions_[session].seq = cache_->CreateSequence();
  return absl::OkStatus();
}

absl::Status DraftModelDrafter::Fork(SessionId child, SessionId parent, int64_t prefix_len) {
  auto it = sessions_.find(parent);
  if (it == sessions_.end())
    return absl::InvalidArgumentError(absl::StrCat("unknown session ", parent));
  if (sessions_.contains(child)) {
    return absl::AlreadyExistsError(absl::StrCat("session ", child, " is already open"));
  }
  const Session& p = it->second;
  const int64_t committed = p.kv_committed + static_cast<int64_t>(p.pending.size());
  if (prefix_len < 0 || prefix_len > committed) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix ", prefix_len, " beyond session ", parent));
  }
  // Share the KV of the committed prefix; the rest of it is still pending.
  const int64_t shared = std::min(prefix_len, p.kv_committed);
  DSPARK_ASSIGN_OR_RETURN(engine::SeqId seq, cache_->ForkSequence(p.seq, shared));
  Session c{.seq = seq, .kv_committed = shared};
  c.pending.assign(p.pending.begin(), p.pending.begin() + (prefix_len - shared));
  sessions_[child] = std::move(c);
  return absl::OkStatus();
}

void DraftModelDrafter::Close(SessionId session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  cache_->FreeSequence(it->second.seq);
  sessions_.erase(it);
}

void DraftModelDrafter::RollBack(Session& s) {
  if (s.speculative.empty()) return;
  cache_->Truncate(s.seq, s.kv_committed);
  s.speculative.clear();
}

absl::Status DraftModelDrafter::Extend(SessionId session, absl::Span<const int32_t> tokens,
                                       absl::Span<const float> features) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown session ", session));
  }
  if (!features.empty()) {
    return absl::InvalidArgumentError("the draft-model drafter reads no context features");
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= vocab_) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", t, " outside the vocabulary [0, ", vocab_, ")"));
    }
  }
  Session& s = it->second;
  if (!s.speculative.empty() && s.pending.empty()) {
    // The KV already holds [last_token, drafts...]: keep the committed prefix.
    size_t keep = 0;
    while (keep < tokens.size() && keep < s.speculative.size() &&
           tokens[keep] == s.speculative[keep]) {
      ++keep;
    }
    s.kv_committed += static_cast<int64_t>(keep);
    tokens.remove_prefix(keep);
  }
  RollBack(s);
  s.speculative.clear();
  s.pending.insert(s.pending.end(), tokens.begin(), tokens.end());
  return absl::OkStatus();
}

absl::Status DraftModelDrafter::Draft(absl::Span<const DraftRequest> requests,
                                      std::vector<DraftBlock>* blocks) {
  DSPARK_RETURN_IF_ERROR(
      CheckDraftRequests(requests, options_.max_block, vocab_,
                         [this](SessionId id) { return sessions_.contains(id); }));

  // One job per request that has room to draft: k tokens, fed as
  // [pending..., last_token] then the first k - 1 drafts.
  struct Job {
    size_t request;
    Session* s;
    int k;
    DraftBlock block;
  };
  std::vector<Job> jobs;
  const int64_t context = model_->config().context_length;
  for (size_t i = 0; i < requests.size(); ++i) {
    Session& s = sessions_.find(requests[i].session)->second;
    RollBack(s);  // the last block's drafts are forgotten (no Extend kept them)
    const int64_t room = context - s.kv_committed - static_cast<int64_t>(s.pending.size());
    const int k = static_cast<int>(std::min<int64_t>(requests[i].max_tokens, room));
    if (k > 0) jobs.push_back({.request = i, .s = &s, .k = k});
  }
  // Room for every job up front, so no forward fails half-way through.
  auto undo = [&](size_t count) {
    for (size_t j = 0; j < count; ++j) cache_->Truncate(jobs[j].s->seq, jobs[j].s->kv_committed);
  };
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Session& s = *jobs[j].s;
    absl::Status st =
        cache_->Reserve(s.seq, s.kv_committed + static_cast<int64_t>(s.pending.size()) + jobs[j].k);
    if (!st.ok()) {
      undo(j + 1);
      return st;
    }
  }

  engine::ForwardBatch batch;
  engine::ForwardOutput out;
  std::vector<size_t> members;  // jobs in this step's batch, in batch order
  for (int step = 0;; ++step) {
    batch.seqs.clear();
    members.clear();
    for (size_t j = 0; j < jobs.size(); ++j) {
      Job& job = jobs[j];
      if (job.k <= step) continue;
      engine::SequenceInput in{.seq = job.s->seq};
      if (step == 0) {
        in.tokens = job.s->pending;
        in.tokens.push_back(requests[job.request].last_token);
      } else {
        in.tokens = {job.block.tokens.back()};
      }
      in.logit_rows = {static_cast<int32_t>(in.tokens.size()) - 1};
      batch.seqs.push_back(std::move(in));
      members.push_back(j);
    }
    if (members.empty()) break;
    absl::Status st = model_->Forward(batch, cache_.get(), &out);
    if (!st.ok()) {
      undo(jobs.size());
      return st;
    }
    for (size_t m = 0; m < members.size(); ++m) {
      Job& job = jobs[members[m]];
      const DraftRequest& r = requests[job.request];
      const double u = engine::UniformDraw(DraftSeed(r.sampling.seed), r.draw_counter + step);
      SparseDist q;
      float top1 = 0;
      const int32_t token = SampleDraft(out.logits.data() + m * static_cast<size_t>(vocab_), vocab_,
                                        r.sampling, options_.top_k, u, &q, &top1);
      job.block.tokens.push_back(token);
      job.block.q.push_back(std::move(q));
      job.block.confidence.push_back(top1);
    }
  }

  blocks->assign(requests.size(), DraftBlock{});
  for (Job& job : jobs) {
    Session& s = *job.s;
    s.kv_committed += static_cast<int64_t>(s.pending.size());
    s.pending.clear();
    s.speculative.assign(1, requests[job.request].last_token);
    s.speculative.insert(s.speculative.end(), job.block.tokens.begin(), job.block.tokens.end() - 1);
    (*blocks)[job.request] = std::move(job.block);
  }
  return absl::OkStatus();
}

}  // namespace dspark::drafter
