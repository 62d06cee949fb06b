// SpecEngine::Step: one ragged target forward over prefill chunks and
// decoding sequences, with drafting before it and lossless acceptance after.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/base/logging.h"
#include "verify_worker/scheduler/step_scheduler.h"
#include "verify_worker/spec_engine/sequence.h"
#include "verify_worker/spec_engine/spec_engine.h"
#include "verify_worker/verification/verification.h"

namespace dspark::spec {
namespace {

// One sequence's part of the step.
struct Work {
  SpecEngine::Sequence* s = nullptr;
  int64_t old_len = 0;   // KV length before the forward
  int prompt_chunk = 0;  // > 0: prompt tokens prefilled this step
  int verify = 0;        // drafted tokens verified (decoding sequences)
  drafter::DraftBlock block;
};

// The pause after one more drafting step that did not pay: doubled, 1 to kMax.
int LongerPause(int pause, int max) { return std::min(std::max(1, 2 * pause), max); }

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void SpecEngine::ExtendDrafter(Sequence& s, absl::Span<const int32_t> tokens,
                               const float* features) {
  if (drafter_ == nullptr || !s.drafter_ok) return;
  const size_t row = capture_layers_.size() * target_->config().dim;
  absl::Span<const float> f;
  if (row > 0) f = absl::MakeConstSpan(features, tokens.size() * row);
  absl::Status st = drafter_->Extend(s.id, tokens, f);
  if (!st.ok()) {
    // Speculation is an optimisation: the request goes on without it.
    DSPARK_LOG(WARNING) << "drafter extend failed, request " << s.id
                        << " continues without: " << st;
    drafter_->Close(s.id);
    s.drafter_ok = false;
  }
}

int SpecEngine::DraftCap(const Sequence& s) const {
  const SpeculationSettings& sp = s.req.speculation;
  if (drafter_ == nullptr || !s.drafter_ok || !sp.enabled || !policy_.speculate) return 0;
  int cap = s.req.max_tokens - static_cast<int>(s.generated.size()) - 1;
  cap = std::min({cap, drafter_->max_block(), SpecCounters::kMaxPositions});
  if (options_.max_draft_tokens > 0) cap = std::min(cap, options_.max_draft_tokens);
  cap = std::min(cap, s.draft_hint);
  if (sp.max_block > 0) cap = std::min(cap, sp.max_block);
  if (policy_.max_block > 0) cap = std::min(cap, policy_.max_block);
  const int64_t ctx = target_->config().context_length;
  if (ctx > 0) cap = static_cast<int>(std::min<int64_t>(cap, ctx - cache_->Length(s.seq) - 1));
  return std::max(0, cap);
}

std::optional<drafter::DraftRequest> SpecEngine::NextDraftRequest(Sequence& s) {
  const int cap = DraftCap(s);
  if (cap == 0) return std::nullopt;
  // Backing off an expensive drafter whose blocks do not pay: probes only.
  if (s.draft_backoff > 0 && steps_ % s.draft_backoff != 0) return std::nullopt;
  drafter::DraftRequest r{.session = s.id,
                          .last_token = s.generated.back(),
                          .max_tokens = cap,
                          .sampling = s.req.sampling,
                          .draw_counter = s.draft_counter};
  s.draft_counter += SpecCounters::kMaxPositions;
  return r;
}

void SpecEngine::SplitForOverlap(std::vector<Sequence*>* now, std::vector<Sequence*>* later) {
  for (auto& s : running_) {
    if (s->has_last) now->push_back(s.get());
  }
  const bool overlap = options_.two_batch_overlap && drafter_ != nullptr &&
                       drafter_->drafts_elsewhere() && policy_.speculate && now->size() >= 2;
  if (!overlap) return;
  // The sequences whose drafts are in flight go now; the others (verified
  // last step, or new) draft during this forward and go next step.
  const absl::flat_hash_set<RequestId> in_flight(in_flight_.ids.begin(), in_flight_.ids.end());
  std::vector<Sequence*> all = std::move(*now);
  now->clear();
  for (Sequence* s : all) (in_flight.contains(s->id) ? now : later)->push_back(s);
  // The halves alternate, so the smaller one bounds how much drafting a
  // forward hides: move sequences over (they draft before this forward).
  while (later->size() > now->size() + 1) {
    now->push_back(later->back());
    later->pop_back();
  }
}

void SpecEngine::DraftFor(std::vector<Sequence*>* now_seqs, const std::vector<Sequence*>& later,
                          std::vector<drafter::DraftBlock>* blocks, std::vector<int>* asked) {
  std::vector<Sequence*>& now = *now_seqs;
  const size_t planned = now.size();  // the ones after these were asked already
  std::vector<drafter::DraftRequest> later_requests;
  for (Sequence* s : later) {
    if (auto r = NextDraftRequest(*s)) {
      later_requests.push_back(*r);
    } else {
      now.push_back(s);  // nothing to wait for: verified now, not starved
    }
  }
  blocks->assign(now.size(), {});
  asked->assign(now.size(), 0);
  if (drafter_ == nullptr) return;
  absl::flat_hash_map<RequestId, size_t> index_of;
  for (size_t i = 0; i < now.size(); ++i) index_of[now[i]->id] = i;
  InFlight previous = std::exchange(in_flight_, {});
  const absl::flat_hash_set<RequestId> drafted_before(previous.ids.begin(), previous.ids.end());
  std::vector<drafter::DraftRequest> now_requests;
  for (size_t i = 0; i < planned; ++i) {
    if (drafted_before.contains(now[i]->id)) continue;
    if (auto r = NextDraftRequest(*now[i])) now_requests.push_back(*r);
  }
  const auto t0 = std::chrono::steady_clock::now();
  // What this step waits for goes first: the drafter answers in order.
  absl::StatusOr<uint64_t> now_ticket = absl::UnimplementedError("drafted in this thread");
  if (drafter_->drafts_elsewhere() && !now_requests.empty()) {
    now_ticket = drafter_->StartDraft(now_requests);
  }
  if (!later_requests.empty()) {
    absl::StatusOr<uint64_t> ticket = drafter_->StartDraft(later_requests);
    if (ticket.ok()) {
      in_flight_.ticket = *ticket;
      for (const drafter::DraftRequest& r : later_requests) {
        in_flight_.ids.push_back(r.session);
        in_flight_.max_tokens.push_back(r.max_tokens);
      }
    } else {
      DSPARK_LOG(WARNING) << "drafting ahead failed, the next step drafts instead: "
                          << ticket.status();
    }
  }
  // True when the block's sequence is still there (not cancelled meanwhile).
  const auto place = [&](drafter::DraftBlock& block, RequestId id, int max_tokens) {
    auto it = index_of.find(id);
    if (it == index_of.end()) return false;
    (*blocks)[it->second] = std::move(block);
    (*asked)[it->second] = max_tokens;
    return true;
  };
  bool waited = false;
  std::vector<drafter::DraftBlock> drafted;
  if (!previous.ids.empty()) {
    waited = true;
    drafted.clear();
    absl::Status st = drafter_->FinishDraft(previous.ticket, &drafted);
    if (st.ok() && drafted.size() == previous.ids.size()) {
      for (size_t k = 0; k < drafted.size(); ++k) {
        if (place(drafted[k], previous.ids[k], previous.max_tokens[k])) ++overlapped_drafts_;
      }
    } else {
      DSPARK_LOG(WARNING) << "drafting failed, step goes on without: " << st;
    }
  }
  if (!now_requests.empty()) {
    waited = true;
    drafted.clear();
    absl::Status st = now_ticket.ok()                ? drafter_->FinishDraft(*now_ticket, &drafted)
                      : drafter_->drafts_elsewhere() ? now_ticket.status()
                                                     : drafter_->Draft(now_requests, &drafted);
    if (st.ok() && drafted.size() == now_requests.size()) {
      for (size_t k = 0; k < drafted.size(); ++k) {
        place(drafted[k], now_requests[k].session, now_requests[k].max_tokens);
      }
    } else {
      DSPARK_LOG(WARNING) << "drafting failed, step goes on without: " << st;
    }
  }
  // The time this step waited for drafts: under overlap, only what the
  // previous forward did not hide.
  last_draft_wait_ = waited ? SecondsSince(t0) : 0.0;
  if (waited) draft_seconds_ = 0.9 * draft_seconds_ + 0.1 * last_draft_wait_;
}

absl::Status SpecEngine::Step(std::vector<SpecEvent>* events) {
  ++steps_;
  last_verify_lengths_.clear();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (!(*it)->cancelled) {
      ++it;
      continue;
    }
    SpecEvent e{.id = (*it)->id};
    Complete(**it, FinishReason::kCancelled, &e);
    totals_.Add((*it)->counters);
    events->push_back(std::move(e));
    it = waiting_.erase(it);
  }
  for (size_t i = 0; i < running_.size();) {
    if (!running_[i]->cancelled) {
      ++i;
      continue;
    }
    SpecEvent e{.id = running_[i]->id};
    Complete(*running_[i], FinishReason::kCancelled, &e);
    events->push_back(std::move(e));
    Retire(std::move(running_[i]), /*reusable=*/true);
    running_.erase(running_.begin() + i);
  }
  Admit();

  // This step's decoding sequences and, under two-batch overlap, the others,
  // whose drafts are sent now to be drafted while this step's forward runs.
  std::vector<Sequence*> decoding, sending;
  SplitForOverlap(&decoding, &sending);
  std::vector<drafter::DraftBlock> blocks;
  std::vector<int> asked;  // max_tokens of each block's request
  DraftFor(&decoding, sending, &blocks, &asked);

  // Plan: one decode token per decoding sequence first (latency), then
  // prefill chunks, then the drafted tokens the step scheduler picks.
  std::vector<Work> work;
  int budget = options_.max_batch_tokens - static_cast<int>(decoding.size());
  int prefill_tokens = 0;
  for (auto& s : running_) {
    if (s->has_last) continue;
    const int remaining = static_cast<int>(s->req.prompt.size() - s->prefilled);
    const int chunk = std::min({options_.prefill_chunk, remaining, budget});
    if (chunk <= 0) continue;
    budget -= chunk;
    prefill_tokens += chunk;
    work.push_back({.s = s.get(), .prompt_chunk = chunk});
  }

  std::vector<std::vector<float>> offered(decoding.size());
  for (size_t i = 0; i < decoding.size(); ++i) {
    drafter::DraftBlock& b = blocks[i];
    if (b.tokens.empty()) continue;
    // A block drafted before a policy change still obeys the current limits.
    size_t n = std::min({b.tokens.size(), b.q.size(), b.confidence.size(),
                         static_cast<size_t>(std::min(asked[i], DraftCap(*decoding[i])))});
    // A drafter is untrusted input: a block ends at its first id outside the
    // vocabulary instead of failing the forward for every request in the step.
    const int32_t vocab = target_->config().vocab_size;
    for (size_t k = 0; k < n; ++k) {
      if (b.tokens[k] < 0 || b.tokens[k] >= vocab) {
        n = k;
        break;
      }
    }
    // The minimum-confidence cut: positions whose chance of being reached
    // and accepted falls below it are not offered to the scheduler.
    offered[i].assign(b.confidence.begin(), b.confidence.begin() + n);
    for (float& c : offered[i]) c = std::isnan(c) ? 0.0f : std::clamp(c, 0.0f, 1.0f);
    if (options_.calibrate_confidence) calibrator_.Apply(absl::MakeSpan(offered[i]));
    const double floor =
        std::max<double>(decoding[i]->req.speculation.min_confidence, policy_.min_confidence);
    double reach = 1.0;
    size_t k = 0;
    while (k < n) {
      reach *= offered[i][k];
      if (reach < floor) break;
      ++k;
    }
    offered[i].resize(k);
    decoding[i]->counters.drafted_tokens += static_cast<int64_t>(n);
  }
  const int verify_budget =
      policy_.max_verify_tokens > 0
          ? static_cast<int>(std::min<int64_t>(budget, policy_.max_verify_tokens))
          : budget;
  const std::vector<int> lengths = ChooseLengths(offered, prefill_tokens, verify_budget);
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (!offered[i].empty()) last_verify_lengths_.push_back(lengths[i]);
  }
  // Under the confidence scheduler, draft about as much as gets verified.
  // Drafting pays while the tokens it adds per sequence-step exceed the
  // share of a step it costs: n (1 + a) / (1 + r + v) > n for n sequences,
  // a accepted per sequence, r = draft time / step time and v = the extra
  // forward time of the verified tokens / step time. (The scheduler
  // verifies only where it expects a >= v, so without v a drafter whose
  // blocks only break even would be paid for with r.) When a drafter costs
  // more than a few percent of a step and its blocks go unverified or do
  // not pay, it pauses for a doubling number of steps (probing after each
  // pause, in steps that the paused sequences share), and a sequence that
  // starts decoding takes the pause of the engine's last drafting step. All
  // of this depends on drafts, past verdicts and timings, never on this
  // step's verdict.
  const bool adaptive = scheduler_ != nullptr && scheduler_->kind() == "confidence";
  const double draft_share = draft_seconds_ / std::max(forward_seconds_, 1e-9);
  const bool expensive = draft_share > 0.05;
  bool drafted_any = false;
  for (const drafter::DraftBlock& b : blocks) drafted_any = drafted_any || !b.tokens.empty();
  if (drafted_any) verify_share_ = 0.9 * verify_share_ + 0.1 * last_verify_share_;
  const bool pays = accepted_per_draft_ > draft_share + verify_share_;
  if (adaptive && drafted_any) {
    draft_pause_ = expensive && !pays ? LongerPause(draft_pause_, kMaxDraftBackoff) : 0;
  }
  for (size_t i = 0; i < decoding.size() && adaptive; ++i) {
    Sequence& s = *decoding[i];
    if (offered[i].empty() && blocks[i].tokens.empty()) continue;  // nothing drafted: keep the hint
    const bool used_all = lengths[i] == static_cast<int>(offered[i].size());
    s.draft_hint = lengths[i] + (used_all ? 2 : 1);
    if (!expensive || (lengths[i] > 0 && pays)) {
      s.draft_backoff = 0;
    } else {
      s.draft_backoff = LongerPause(s.draft_backoff, kMaxDraftBackoff);
    }
  }
  for (size_t i = 0; i < decoding.size(); ++i) {
    work.push_back({.s = decoding[i], .verify = lengths[i], .block = std::move(blocks[i])});
  }
  if (work.empty()) return absl::OkStatus();

  engine::ForwardBatch batch;
  batch.capture_layers = capture_layers_;
  const bool features = !capture_layers_.empty();
  for (Work& w : work) {
    Sequence& s = *w.s;
    engine::SequenceInput in{.seq = s.seq};
    if (w.prompt_chunk > 0) {
      auto begin = s.req.prompt.begin() + s.prefilled;
      in.tokens.assign(begin, begin + w.prompt_chunk);
      if (s.prefilled + w.prompt_chunk == static_cast<int64_t>(s.req.prompt.size())) {
        in.logit_rows = {w.prompt_chunk - 1};
      }
    } else {
      in.tokens.push_back(s.generated.back());
      in.tokens.insert(in.tokens.end(), w.block.tokens.begin(), w.block.tokens.begin() + w.verify);
      for (int r = 0; r <= w.verify; ++r) in.logit_rows.push_back(r);
    }
    if (features && s.drafter_ok) {
      for (int r = 0; r < static_cast<int>(in.tokens.size()); ++r) in.feature_rows.push_back(r);
    }
    w.old_len = cache_->Length(s.seq);
    batch.seqs.push_back(std::move(in));
  }
  for (const engine::SequenceInput& in : batch.seqs) {
    batch_tokens_ += static_cast<int64_t>(in.tokens.size());
  }
  engine::ForwardOutput out;
  const auto forward_start = std::chrono::steady_clock::now();
  absl::Status st = target_->Forward(batch, cache_, &out);
  forward_seconds_ = 0.9 * forward_seconds_ + 0.1 * SecondsSince(forward_start);
  if (!st.ok()) {
    for (Work& w : work) {
      SpecEvent e{.id = w.s->id, .error = st};
      Complete(*w.s, FinishReason::kError, &e);
      events->push_back(std::move(e));
      w.s->cancelled = true;  // retired below
    }
    for (size_t i = 0; i < running_.size();) {
      if (!running_[i]->cancelled) {
        ++i;
        continue;
      }
      Retire(std::move(running_[i]), /*reusable=*/false);
      running_.erase(running_.begin() + i);
    }
    return st;
  }

  const int64_t vocab = target_->config().vocab_size;
  const size_t feature_row = capture_layers_.size() * target_->config().dim;
  size_t logit_at = 0, feature_at = 0;
  std::vector<Sequence*> finished;
  for (size_t k = 0; k < work.size(); ++k) {
    Work& w = work[k];
    Sequence& s = *w.s;
    const std::vector<int32_t>& fed = batch.seqs[k].tokens;
    const float* f = features ? out.features.data() + feature_at * feature_row : nullptr;
    feature_at += batch.seqs[k].feature_rows.size();
    SpecEvent e{.id = s.id};
    bool done = false;
    if (w.prompt_chunk > 0) {
      s.prefilled += w.prompt_chunk;
      s.kv_tokens.insert(s.kv_tokens.end(), fed.begin(), fed.end());
      ExtendDrafter(s, fed, f);
      if (!batch.seqs[k].logit_rows.empty()) {
        // The first token is drawn exactly as plain decoding draws it.
        const int32_t t =
            engine::SampleToken(&out.logits[logit_at * vocab], vocab, s.req.sampling, 0);
        logit_at += 1;
        s.has_last = true;
        s.draft_backoff = draft_pause_;
        done = EmitToken(s, t, &e);
      }
    } else {
      verify::VerifyInput in{.logits = &out.logits[logit_at * vocab],
                             .vocab = vocab,
                             .draft = absl::MakeConstSpan(w.block.tokens.data(), w.verify),
                             .q = absl::MakeConstSpan(w.block.q.data(), w.verify),
                             .sampling = s.req.sampling,
                             .generated_index = s.generated.size(),
                             .draw_counter = s.verify_counter};
      s.verify_counter += 2 * w.verify + 2;
      const verify::VerifyResult r = verify::Verify(in);
      calibrator_.Observe(w.block.confidence, w.verify, r.accepted);
      if (!w.block.tokens.empty()) {
        // The mean of the blocks so far (the optimistic start counting as
        // one), then a running average over about the last 50.
        ++drafts_observed_;
        const double w = std::max(0.02, 1.0 / static_cast<double>(drafts_observed_ + 1));
        accepted_per_draft_ = (1 - w) * accepted_per_draft_ + w * r.accepted;
      }
      logit_at += w.verify + 1;
      const int keep = 1 + r.accepted;  // the fed last token and the accepted drafts
      cache_->Truncate(s.seq, w.old_len + keep);
      s.kv_tokens.insert(s.kv_tokens.end(), fed.begin(), fed.begin() + keep);
      ExtendDrafter(s, absl::MakeConstSpan(fed.data(), keep), f);
      SpecCounters& c = s.counters;
      ++c.decode_steps;
      if (w.verify > 0) ++c.verify_steps;
      c.verified_tokens += w.verify;
      c.accepted_tokens += r.accepted;
      for (int i = 0; i < w.verify; ++i) ++c.verified_at[i];
      for (int i = 0; i < r.accepted; ++i) ++c.accepted_at[i];
      for (int i = 0; i < r.accepted && !done; ++i) done = EmitToken(s, w.block.tokens[i], &e);
      if (!done) done = EmitToken(s, r.next_token, &e);
    }
    if (done) {
      Complete(s, e.finish, &e);
      finished.push_back(&s);
    }
    if (!e.tokens.empty() || e.finish != FinishReason::kNone) events->push_back(std::move(e));
  }
  for (Sequence* s : finished) {
    auto it =
        std::find_if(running_.begin(), running_.end(), [s](const auto& r) { return r.get() == s; });
    Retire(std::move(*it), /*reusable=*/true);
    running_.erase(it);
  }
  return absl::OkStatus();
}

std::vector<int> SpecEngine::ChooseLengths(const std::vector<std::vector<float>>& offered,
                                           int base_tokens, int budget) {
  std::vector<int> lengths(offered.size(), 0);
  if (scheduler_ == nullptr) {
    for (size_t i = 0; i < offered.size(); ++i) lengths[i] = static_cast<int>(offered[i].size());
  } else {
    std::vector<scheduler::SequenceDraft> drafts(offered.size());
    for (size_t i = 0; i < offered.size(); ++i) drafts[i].confidence = offered[i];
    scheduler::StepPlan plan;
    scheduler_->Schedule({.seqs = drafts, .base_tokens = base_tokens}, &plan);
    for (size_t i = 0; i < offered.size(); ++i) {
      lengths[i] = std::clamp(plan.lengths[i], 0, static_cast<int>(offered[i].size()));
    }
    last_verify_share_ =
        plan.plain_seconds > 0 ? std::max(0.0, plan.step_seconds / plan.plain_seconds - 1) : 0;
  }
  // The forward's token budget: shorten the longest blocks first.
  int total = 0;
  for (int l : lengths) total += l;
  while (total > std::max(0, budget)) {
    *std::max_element(lengths.begin(), lengths.end()) -= 1;
    --total;
  }
  return lengths;
}

}  // namespace dspark::spec
