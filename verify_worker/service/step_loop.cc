#include "verify_worker/service/step_loop.h"

#include <algorithm>
#include <utility>

#include "common/base/logging.h"
#include "common/metrics/metrics.h"

namespace dspark::verify {
namespace {

// The event that ends a session the worker gave up on (Stop): Unavailable,
// so the router replays it on another worker.
spec::SpecEvent ShutdownEvent(spec::RequestId id) {
  return {.id = id,
          .finish = spec::FinishReason::kCancelled,
          .error = absl::UnavailableError("verify worker shutting down")};
}

}  // namespace

StepLoop::StepLoop(const EngineParts& parts, StepLoopOptions options)
    : cache_(parts.cache), options_(std::move(options)) {
  engine_ = std::make_unique<spec::SpecEngine>(parts.model, parts.cache, parts.drafter,
                                               parts.scheduler, parts.tokenizer, parts.engine);
  load_.kv_blocks_total = cache_->num_blocks();
  thread_ = std::thread([this] { Run(); });
}

StepLoop::~StepLoop() { Stop(); }

StepLoop::Ticket StepLoop::Submit(spec::SpecRequest request, std::string draft_worker, Sink sink) {
  Ticket ticket;
  {
    absl::MutexLock lock(&mu_);
    ticket = next_ticket_++;
    if (!stopping_) {
      ++live_;
      ++queued_;
      inbox_.push_back(
          Submission{ticket, std::move(request), std::move(draft_worker), std::move(sink)});
      return ticket;
    }
  }
  sink(ShutdownEvent(-1));
  return ticket;
}

void StepLoop::Cancel(Ticket ticket) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) inbox_.push_back(Cancellation{ticket});
}

void StepLoop::SetPolicy(const scheduler::SchedulerPolicy& policy) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) inbox_.push_back(policy);
}

void StepLoop::Reassign(std::string from, std::string to,
                        std::function<void(absl::StatusOr<DraftMoves>)> done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      inbox_.push_back(Reassignment{std::move(from), std::move(to), std::move(done)});
      return;
    }
  }
  done(absl::UnavailableError("verify worker shutting down"));
}

void StepLoop::SetMetrics(metrics::VerifyMetrics* metrics) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) inbox_.push_back(metrics);
}

int StepLoop::live_sessions() const {
  absl::MutexLock lock(&mu_);
  return live_;
}

bool StepLoop::WaitIdle(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(
                            +[](const int* live) { return *live == 0; }, &live_),
                        deadline);
  return live_ == 0;
}

bool StepLoop::WaitLive(int n, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return live_ >= n; };
  return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
}

LoopLoad StepLoop::Load() const {
  absl::MutexLock lock(&mu_);
  return load_;
}

void StepLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void StepLoop::Run() {
  std::deque<Item> items;
  std::vector<spec::SpecEvent> events;
  for (;;) {
    bool stop;
    {
      absl::MutexLock lock(&mu_);
      // Idle: sleep until a reactor hands something over (no polling).
      if (!engine_->HasWork()) {
        mu_.Await(absl::Condition(this, &StepLoop::HasInput));
      }
      items.swap(inbox_);
      for (const Item& item : items) queued_ -= std::holds_alternative<Submission>(item) ? 1 : 0;
      stop = stopping_;
    }
    for (Item& item : items) Take(std::move(item));
    items.clear();
    events.clear();
    if (stop) {
      // Everything still here ends now; one Step retires the cancelled
      // sequences (no forward: nothing is left to run).
      for (const auto& [id, sink] : sinks_) engine_->Cancel(id);
      absl::Status st = engine_->Step(&events);
      if (!st.ok()) DSPARK_LOG(WARNING) << "final step failed: " << st;
      for (spec::SpecEvent& e : events) {
        if (e.finish == spec::FinishReason::kCancelled) e.error = ShutdownEvent(e.id).error;
      }
      Deliver(events);
      events.clear();
      for (auto& [id, sink] : sinks_) events.push_back(ShutdownEvent(id));  // not expected
      Deliver(events);
      PublishLoad();
      return;
    }
    if (engine_->HasWork()) {
      const int64_t tokens_before = engine_->batch_tokens();
      const int64_t overlapped_before = engine_->overlapped_drafts();
      const absl::Time t0 = absl::Now();
      absl::Status st = engine_->Step(&events);
      // The sessions hit by a broken forward got kError events; the others
      // go on (a transient failure should not take the worker down).
      if (!st.ok()) DSPARK_LOG(ERROR) << "engine step failed: " << st;
      const int64_t fed = engine_->batch_tokens() - tokens_before;
      if (fed > 0) RecordStep(absl::ToDoubleSeconds(absl::Now() - t0), fed);
      if (options_.metrics != nullptr) {
        int verified = 0;
        for (int len : engine_->last_verify_lengths()) {
          options_.metrics->block_length->Observe(len);
          verified += len;
        }
        if (fed > 0) options_.metrics->verify_tokens->Observe(verified);
        if (engine_->last_draft_wait() > 0) {
          options_.metrics->draft_wait->Observe(engine_->last_draft_wait());
        }
        options_.metrics->overlapped_drafts->Increment(
            static_cast<double>(engine_->overlapped_drafts() - overlapped_before));
      }
      Deliver(events);
    }
    PublishLoad();
  }
}

void StepLoop::Take(Item item) {
  if (auto* p = std::get_if<scheduler::SchedulerPolicy>(&item)) {
    engine_->SetPolicy(*p);
    return;
  }
  if (auto* m = std::get_if<metrics::VerifyMetrics*>(&item)) {
    options_.metrics = *m;
    return;
  }
  if (auto* r = std::get_if<Reassignment>(&item)) {
    r->done(options_.reassign ? options_.reassign(r->from, r->to) : DraftMoves{});
    return;
  }
  if (auto* c = std::get_if<Cancellation>(&item)) {
    auto it = ids_.find(c->ticket);
    if (it != ids_.end()) engine_->Cancel(it->second);
    return;
  }
  Submission& s = std::get<Submission>(item);
  absl::StatusOr<spec::RequestId> id = engine_->Add(std::move(s.request));
  if (!id.ok()) {
    s.sink({.finish = spec::FinishReason::kError, .error = id.status()});
    ++ended_;
    return;
  }
  ids_[s.ticket] = *id;
  tickets_[*id] = s.ticket;
  sinks_[*id] = std::move(s.sink);
  if (options_.assign) options_.assign(*id, s.draft_worker);
}

void StepLoop::Deliver(std::vector<spec::SpecEvent>& events) {
  const absl::Time now = absl::Now();
  for (spec::SpecEvent& e : events) {
    auto it = sinks_.find(e.id);
    if (it == sinks_.end()) continue;
    if (e.finish == spec::FinishReason::kNone) {
      it->second(std::move(e));
      continue;
    }
    if (options_.metrics != nullptr) CountFinished(e.counters);
    if (e.counters.verified_tokens > 0) {
      accept_samples_.push_back({now, static_cast<double>(e.counters.accepted_tokens),
                                 static_cast<double>(e.counters.verified_tokens)});
    }
    Sink sink = std::move(it->second);
    sinks_.erase(it);
    auto t = tickets_.find(e.id);
    if (t != tickets_.end()) {
      ids_.erase(t->second);
      tickets_.erase(t);
    }
    const bool cancelled = e.finish == spec::FinishReason::kCancelled;
    const spec::RequestId id = e.id;
    sink(std::move(e));
    ++ended_;
    if (cancelled && options_.cancelled) options_.cancelled(id);
  }
}

void StepLoop::RecordStep(double seconds, int64_t batch_tokens) {
  step_samples_.push_back({absl::Now(), seconds, static_cast<double>(batch_tokens)});
  if (options_.metrics != nullptr) {
    options_.metrics->step_duration->Observe(seconds);
    options_.metrics->batch_tokens->Observe(static_cast<double>(batch_tokens));
  }
}

// Counters are added when a session finishes: its totals are exact then.
void StepLoop::CountFinished(const spec::SpecCounters& c) {
  metrics::VerifyMetrics& m = *options_.metrics;
  m.prompt_tokens->Increment(static_cast<double>(c.prompt_tokens - c.prefix_tokens_shared));
  m.generation_tokens->Increment(static_cast<double>(c.generated_tokens));
  m.num_drafts->Increment(static_cast<double>(c.verify_steps));
  m.num_draft_tokens->Increment(static_cast<double>(c.verified_tokens));
  m.num_accepted_tokens->Increment(static_cast<double>(c.accepted_tokens));
  for (int p = 0; p < spec::SpecCounters::kMaxPositions; ++p) {
    if (c.verified_at[p] == 0) continue;
    const prometheus::Labels pos{{"position", std::to_string(p)}};
    m.verified_per_pos->Add(pos).Increment(static_cast<double>(c.verified_at[p]));
    m.accepted_per_pos->Add(pos).Increment(static_cast<double>(c.accepted_at[p]));
  }
}

void StepLoop::Trim(std::deque<Sample>& samples, absl::Time now, absl::Duration window) {
  while (!samples.empty() && now - samples.front().at > window) samples.pop_front();
}

void StepLoop::PublishLoad() {
  const absl::Time now = absl::Now();
  Trim(step_samples_, now, options_.load_window);
  Trim(accept_samples_, now, options_.load_window);
  LoopLoad load;
  load.running = engine_->num_running();
  load.kv_blocks_total = cache_->num_blocks();
  // What admission counts (running requests' worst case), not blocks in the
  // prefix cache: those are reclaimable, and cached prefixes share blocks.
  load.kv_blocks_used = engine_->reserved_blocks();
  double seconds = 0, tokens = 0, accepted = 0, verified = 0;
  for (const Sample& s : step_samples_) {
    seconds += s.a;
    tokens += s.b;
  }
  for (const Sample& s : accept_samples_) {
    accepted += s.a;
    verified += s.b;
  }
  if (!step_samples_.empty()) {
    load.step_seconds = seconds / step_samples_.size();
    load.batch_tokens_per_step = tokens / step_samples_.size();
  }
  if (verified > 0) load.acceptance_rate = accepted / verified;
  const int engine_waiting = engine_->num_waiting();
  absl::MutexLock lock(&mu_);
  load.waiting = engine_waiting + queued_;
  if (options_.metrics != nullptr) {
    const scheduler::SchedulerPolicy& p = engine_->policy();
    options_.metrics->requests_running->Set(load.running);
    options_.metrics->requests_waiting->Set(load.waiting);
    options_.metrics->kv_cache_usage->Set(
        load.kv_blocks_total > 0 ? static_cast<double>(load.kv_blocks_used) / load.kv_blocks_total
                                 : 0.0);
    options_.metrics->policy_speculation->Set(p.speculate ? 1 : 0);
    options_.metrics->policy_max_verify->Set(static_cast<double>(p.max_verify_tokens));
    options_.metrics->policy_min_confidence->Set(p.min_confidence);
  }
  load_ = load;
  // Together with the load, so that a waiter woken by live_ == 0 reads the
  // load of the idle engine.
  live_ -= ended_;
  ended_ = 0;
}

}  // namespace dspark::verify
