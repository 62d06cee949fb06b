#include "verify_worker/spec_engine/spec_engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/incremental_detokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "draft_worker/drafter/drafter.h"
#include "verify_worker/spec_engine/sequence.h"

namespace dspark::spec {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "unknown";
}

void SpecCounters::Add(const SpecCounters& o) {
  prompt_tokens += o.prompt_tokens;
  prefix_tokens_shared += o.prefix_tokens_shared;
  generated_tokens += o.generated_tokens;
  decode_steps += o.decode_steps;
  verify_steps += o.verify_steps;
  drafted_tokens += o.drafted_tokens;
  verified_tokens += o.verified_tokens;
  accepted_tokens += o.accepted_tokens;
  for (int i = 0; i < kMaxPositions; ++i) {
    verified_at[i] += o.verified_at[i];
    accepted_at[i] += o.accepted_at[i];
  }
}

SpecEngine::SpecEngine(engine::Model* target, engine::KvCache* cache, drafter::Drafter* drafter,
                       scheduler::StepScheduler* scheduler, const tokenizer::Tokenizer* tokenizer,
                       const SpecEngineOptions& options)
    : target_(target),
      cache_(cache),
      drafter_(drafter),
      scheduler_(scheduler),
      tokenizer_(tokenizer),
      options_(options) {
  options_.max_batch_tokens = std::max(1, options_.max_batch_tokens);
  options_.max_running = std::clamp(options_.max_running, 1, options_.max_batch_tokens);
  options_.prefill_chunk = std::max(1, options_.prefill_chunk);
  if (drafter_ != nullptr) capture_layers_ = drafter_->context_layers();
}

SpecEngine::~SpecEngine() {
  for (auto& s : running_) {
    cache_->FreeSequence(s->seq);
    if (s->drafter_ok) drafter_->Close(s->id);
  }
  for (CachedPrefix& c : prefix_cache_) {
    cache_->FreeSequence(c.seq);
    if (c.session >= 0) drafter_->Close(c.session);
  }
}

int64_t SpecEngine::BlocksFor(int64_t tokens) const {
  return (tokens + cache_->block_size() - 1) / cache_->block_size();
}

absl::Status SpecEngine::Validate(const SpecRequest& request) const {
  const engine::ModelConfig& c = target_->config();
  if (request.prompt.empty()) return absl::InvalidArgumentError("empty prompt");
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token ", t, " outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  DSPARK_RETURN_IF_ERROR(engine::ValidateSamplingParams(request.sampling));
  if (request.max_tokens < 1) return absl::InvalidArgumentError("max_tokens must be >= 1");
  const int64_t total = static_cast<int64_t>(request.prompt.size()) + request.max_tokens;
  if (c.context_length > 0 && total > c.context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt (", request.prompt.size(), " tokens) + max_tokens (",
                     request.max_tokens, ") exceeds the context length ", c.context_length));
  }
  if (!request.stop_strings.empty() && tokenizer_ == nullptr) {
    return absl::InvalidArgumentError("stop strings need a tokenizer");
  }
  const SpeculationSettings& sp = request.speculation;
  if (sp.max_block < 0) return absl::InvalidArgumentError("speculation max_block must be >= 0");
  if (!(sp.min_confidence >= 0.0f && sp.min_confidence <= 1.0f)) {
    return absl::InvalidArgumentError("speculation min_confidence must be in [0, 1]");
  }
  const int64_t blocks = BlocksFor(total + SpecCounters::kMaxPositions + 1);
  if (blocks > cache_->num_blocks()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request needs ", blocks, " KV blocks; the cache has ", cache_->num_blocks()));
  }
  return absl::OkStatus();
}

absl::StatusOr<RequestId> SpecEngine::Add(SpecRequest request) {
  DSPARK_RETURN_IF_ERROR(Validate(request));
  auto s = std::make_unique<Sequence>();
  s->blocks = BlocksFor(static_cast<int64_t>(request.prompt.size()) + request.max_tokens +
                        SpecCounters::kMaxPositions + 1);
  s->id = next_id_++;
  if (tokenizer_ != nullptr) {
    s->detok = std::make_unique<tokenizer::IncrementalDetokenizer>(*tokenizer_);
    s->detok->SetStopStrings(request.stop_strings);
  }
  s->counters.prompt_tokens = static_cast<int64_t>(request.prompt.size());
  s->req = std::move(request);
  const RequestId id = s->id;
  waiting_.push_back(std::move(s));
  return id;
}

void SpecEngine::SetPolicy(const scheduler::SchedulerPolicy& policy) {
  policy_ = policy;
  if (scheduler_ != nullptr) scheduler_->SetPolicy(policy);
}

int64_t SpecEngine::cached_prefix_blocks() const {
  int64_t blocks = 0;
  for (const CachedPrefix& c : prefix_cache_) blocks += BlocksFor(c.tokens.size());
  return blocks;
}

void SpecEngine::Cancel(RequestId id) {
  for (auto& s : waiting_) {
    if (s->id == id) s->cancelled = true;
  }
  for (auto& s : running_) {
    if (s->id == id) s->cancelled = true;
  }
}

void SpecEngine::Admit() {
  while (!waiting_.empty() && static_cast<int>(running_.size()) < options_.max_running) {
    Sequence& s = *waiting_.front();
    int64_t cached_blocks = cached_prefix_blocks();
    while (committed_blocks_ + s.blocks + cached_blocks > cache_->num_blocks() &&
           !prefix_cache_.empty()) {
      CachedPrefix& oldest = prefix_cache_.front();
      cached_blocks -= BlocksFor(oldest.tokens.size());
      cache_->FreeSequence(oldest.seq);
      if (oldest.session >= 0) drafter_->Close(oldest.session);
      prefix_cache_.pop_front();
    }
    if (committed_blocks_ + s.blocks + cached_blocks > cache_->num_blocks()) break;
    committed_blocks_ += s.blocks;
    Share(s);
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

bool SpecEngine::WantsDrafter() {
  // (A request with speculation off still feeds the drafter: `dspark
  // distill` records context features through it.)
  if (drafter_ == nullptr) return false;
  if (draft_pause_ < kMaxDraftBackoff) return true;
  return unpaid_admissions_++ % kProbeEvery == 0;
}

// Starts the sequence, forking the longest usable prefix from a cached or
// running sequence (KV and drafter state both), else from scratch.
void SpecEngine::Share(Sequence& s) {
  const std::vector<int32_t>& prompt = s.req.prompt;
  // At least the last prompt token is fed to the target (its logits start decoding).
  const size_t limit = prompt.size() - 1;
  engine::SeqId parent = -1;
  drafter::SessionId parent_session = -1;
  size_t best = 0;
  const bool need_drafter = WantsDrafter();
  auto consider = [&](engine::SeqId seq, drafter::SessionId session,
                      const std::vector<int32_t>& tokens) {
    if (need_drafter && session < 0) return;  // no drafter state to share
    const size_t n = std::min(limit, tokens.size());
    size_t k = 0;
    while (k < n && tokens[k] == prompt[k]) ++k;
    if (k > best) {
      best = k;
      parent = seq;
      parent_session = session;
    }
  };
  for (const CachedPrefix& c : prefix_cache_) consider(c.seq, c.session, c.tokens);
  for (const auto& r : running_) consider(r->seq, r->drafter_ok ? r->id : -1, r->kv_tokens);

  if (best >= static_cast<size_t>(std::max(1, options_.min_shared_prefix))) {
    absl::Status drafter_status =
        need_drafter ? drafter_->Fork(s.id, parent_session, static_cast<int64_t>(best))
                     : absl::OkStatus();
    if (drafter_status.ok()) {
      absl::StatusOr<engine::SeqId> fork = cache_->ForkSequence(parent, static_cast<int64_t>(best));
      if (fork.ok()) {
        s.seq = *fork;
        s.drafter_ok = need_drafter;
        s.prefilled = static_cast<int64_t>(best);
        s.kv_tokens.assign(prompt.begin(), prompt.begin() + best);
        s.counters.prefix_tokens_shared = static_cast<int64_t>(best);
        for (size_t i = 0; i < prefix_cache_.size(); ++i) {
          if (prefix_cache_[i].seq != parent) continue;
          CachedPrefix used = std::move(prefix_cache_[i]);  // most recently used: to the back
          prefix_cache_.erase(prefix_cache_.begin() + i);
          prefix_cache_.push_back(std::move(used));
          break;
        }
        return;
      }
      if (need_drafter) drafter_->Close(s.id);
    }
  }
  s.seq = cache_->CreateSequence();
  if (need_drafter) {
    absl::Status st = drafter_->Open(s.id);
    if (!st.ok()) DSPARK_LOG(WARNING) << "drafter open failed, request " << s.id << ": " << st;
    s.drafter_ok = st.ok();
  }
}

bool SpecEngine::EmitToken(Sequence& s, int32_t token, SpecEvent* event) {
  s.generated.push_back(token);
  event->tokens.push_back(token);
  if (s.detok != nullptr) {
    absl::StatusOr<std::string> text = s.detok->Append(token);
    if (text.ok()) event->text += *text;
    if (s.detok->stopped()) {
      event->finish = FinishReason::kStop;
      return true;
    }
  }
  const auto& stops = s.req.stop_ids;
  if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
    event->finish = FinishReason::kStop;
  } else if (static_cast<int>(s.generated.size()) >= s.req.max_tokens) {
    event->finish = FinishReason::kLength;
  }
  return event->finish != FinishReason::kNone;
}

void SpecEngine::Retire(std::unique_ptr<Sequence> s, bool reusable) {
  committed_blocks_ -= s->blocks;
  s->counters.generated_tokens = static_cast<int64_t>(s->generated.size());
  totals_.Add(s->counters);
  const bool keep = reusable && options_.prefix_cache_entries > 0 &&
                    static_cast<int>(s->kv_tokens.size()) >= options_.min_shared_prefix;
  if (!keep) {
    cache_->FreeSequence(s->seq);
    if (s->drafter_ok) drafter_->Close(s->id);
    return;
  }
  prefix_cache_.push_back(
      {.seq = s->seq, .session = s->drafter_ok ? s->id : -1, .tokens = std::move(s->kv_tokens)});
  while (static_cast<int>(prefix_cache_.size()) > options_.prefix_cache_entries) {
    CachedPrefix& oldest = prefix_cache_.front();
    cache_->FreeSequence(oldest.seq);
    if (oldest.session >= 0) drafter_->Close(oldest.session);
    prefix_cache_.pop_front();
  }
}

void SpecEngine::Complete(Sequence& s, FinishReason reason, SpecEvent* event) {
  event->finish = reason;
  // Flush held-back text unless a stop string cut it (a stop id still flushes).
  if (s.detok != nullptr && !s.detok->stopped()) event->text += s.detok->Finish();
  s.counters.generated_tokens = static_cast<int64_t>(s.generated.size());
  event->counters = s.counters;
}

}  // namespace dspark::spec
