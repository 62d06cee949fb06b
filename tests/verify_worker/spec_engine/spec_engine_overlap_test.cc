// Two-batch overlap in the SpecEngine on the default model (SmolLM2-135M),
// greedy, with DeferringTestDrafter: a drafter that drafts elsewhere in
// the Drafter contract's sense (StartDraft / FinishDraft), made of an
// in-process drafter that drafts only when the ticket is finished, and that
// records every call the contract forbids on a pending session. Requests
// join and leave mid-flight, are cancelled while their drafts are in
// flight, and speculation is switched off and on by policy: outputs equal
// engine::Generate, the halves really alternate, the contract holds and
// every KV block comes back. Skips when the model is not pulled.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "tests/verify_worker/spec_engine/spec_engine_test_util.h"
#include "verify_worker/scheduler/step_scheduler.h"
#include "verify_worker/spec_engine/spec_engine.h"

namespace dspark::spec::testing {
namespace {

// Drafts through `inner` when a ticket is finished, so a block reflects the
// session's state at that time: an Extend between Start and Finish would
// change it (and is recorded as a violation).
class DeferringTestDrafter final : public drafter::Drafter {
 public:
  explicit DeferringTestDrafter(std::unique_ptr<drafter::Drafter> inner)
      : inner_(std::move(inner)) {}

  std::string name() const override { return "deferring-test"; }
  int max_block() const override { return inner_->max_block(); }
  std::vector<int> context_layers() const override { return inner_->context_layers(); }
  bool drafts_elsewhere() const override { return true; }

  absl::Status Open(drafter::SessionId s) override { return inner_->Open(s); }
  absl::Status Extend(drafter::SessionId s, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override {
    if (pending_sessions_.contains(s)) violations_.push_back(absl::StrCat("Extend ", s));
    return inner_->Extend(s, tokens, features);
  }
  absl::Status Fork(drafter::SessionId child, drafter::SessionId parent,
                    int64_t prefix_len) override {
    if (pending_sessions_.contains(parent)) violations_.push_back(absl::StrCat("Fork ", parent));
    return inner_->Fork(child, parent, prefix_len);
  }
  void Close(drafter::SessionId s) override {
    closed_.insert(s);
    inner_->Close(s);
  }
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override {
    violations_.push_back("Draft called on a drafter that drafts elsewhere");
    return inner_->Draft(requests, blocks);
  }
  absl::StatusOr<uint64_t> StartDraft(absl::Span<const drafter::DraftRequest> requests) override {
    for (const drafter::DraftRequest& r : requests) {
      if (!pending_sessions_.insert(r.session).second) {
        violations_.push_back(absl::StrCat("two drafts pending for ", r.session));
      }
    }
    pending_[next_] = std::vector<drafter::DraftRequest>(requests.begin(), requests.end());
    max_pending_ = std::max(max_pending_, static_cast<int>(pending_.size()));
    return next_++;
  }
  absl::Status FinishDraft(uint64_t ticket, std::vector<drafter::DraftBlock>* blocks) override {
    auto it = pending_.find(ticket);
    if (it == pending_.end()) return absl::InvalidArgumentError("unknown ticket");
    std::vector<drafter::DraftRequest> live;
    for (const drafter::DraftRequest& r : it->second) {
      pending_sessions_.erase(r.session);
      if (!closed_.contains(r.session)) live.push_back(r);
    }
    // Closed sessions (cancelled meanwhile) get empty blocks, as a draft
    // worker that forgot them would answer.
    std::vector<drafter::DraftBlock> drafted;
    absl::Status st = inner_->Draft(live, &drafted);
    blocks->assign(it->second.size(), {});
    for (size_t i = 0, k = 0; st.ok() && i < it->second.size(); ++i) {
      if (!closed_.contains(it->second[i].session)) (*blocks)[i] = std::move(drafted[k++]);
    }
    pending_.erase(it);
    return st;
  }

  const std::vector<std::string>& violations() const { return violations_; }
  int max_pending() const { return max_pending_; }
  const absl::flat_hash_set<drafter::SessionId>& pending_sessions() const {
    return pending_sessions_;
  }

 private:
  std::unique_ptr<drafter::Drafter> inner_;
  std::map<uint64_t, std::vector<drafter::DraftRequest>> pending_;
  absl::flat_hash_set<drafter::SessionId> pending_sessions_;
  absl::flat_hash_set<drafter::SessionId> closed_;
  std::vector<std::string> violations_;
  uint64_t next_ = 1;
  int max_pending_ = 0;
};

std::vector<int32_t> Slice(const SharedModel& m, int begin, int length) {
  return std::vector<int32_t>(m.corpus.begin() + begin, m.corpus.begin() + begin + length);
}

std::unique_ptr<DeferringTestDrafter> Deferring(const std::string& kind, engine::Model* target) {
  std::string skip;
  auto d = MakeTestDrafter(kind, target, &skip);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::make_unique<DeferringTestDrafter>(std::move(*d)) : nullptr;
}

class TwoBatchOverlapTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TwoBatchOverlapTest, HalvesAlternateAndOutputsEqualGenerate) {
  SKIP_WITHOUT_MODEL();
  struct Arrival {
    int64_t at_step;
    std::vector<int32_t> prompt;
    int max_tokens;
  };
  const std::vector<Arrival> arrivals = {
      {0, Slice(*m, 0, 40), 24},   {0, Slice(*m, 50, 9), 12},    {0, Slice(*m, 90, 17), 40},
      {2, Slice(*m, 120, 70), 30}, {5, Slice(*m, 300, 1), 20},   {5, Slice(*m, 210, 33), 16},
      {9, Slice(*m, 400, 64), 28}, {14, Slice(*m, 333, 21), 18}, {30, Slice(*m, 11, 15), 22}};
  auto drafter = Deferring(GetParam(), m->model.get());
  ASSERT_NE(drafter, nullptr);
  auto sched = scheduler::MakeStepScheduler({.kind = "fixed", .fixed_length = 4});
  ASSERT_TRUE(sched.ok()) << sched.status();
  auto cache = m->model->NewKvCache({.max_tokens = 4096});
  const int64_t free_at_start = cache->free_blocks();
  SpecEngine engine(
      m->model.get(), cache.get(), drafter.get(), sched->get(), nullptr,
      {.max_batch_tokens = 96,
       .prefill_chunk = 32,
       .max_running = 5,
       .prefix_cache_entries = 0,
       .two_batch_overlap = true});
  std::map<RequestId, size_t> which;
  absl::flat_hash_map<RequestId, Outcome> out;
  size_t next = 0;
  RequestId cancelled = -1;
  bool cancelled_in_flight = false;
  // A request that never drafts is never waited for: it decodes at least
  // every other step (it once starved behind the halves that drafted).
  const std::vector<int32_t> plain_prompt = Slice(*m, 500, 12);
  auto plain =
      engine.Add({.prompt = plain_prompt, .max_tokens = 30, .speculation = {.enabled = false}});
  ASSERT_TRUE(plain.ok()) << plain.status();
  int64_t plain_last = -1, plain_gap = 0;
  for (int64_t step = 0; next < arrivals.size() || engine.HasWork(); ++step) {
    ASSERT_LT(step, 10000);
    for (; next < arrivals.size() && arrivals[next].at_step <= step; ++next) {
      auto id =
          engine.Add({.prompt = arrivals[next].prompt, .max_tokens = arrivals[next].max_tokens});
      ASSERT_TRUE(id.ok()) << id.status();
      which[*id] = next;
    }
    // Speculation off for a while: the drafts in flight are collected and
    // dropped, and no new ones start.
    if (step == 12) engine.SetPolicy({.speculate = false});
    if (step == 16) engine.SetPolicy({});
    // A request cancelled while its draft is in flight.
    if (step >= 6 && cancelled < 0 && !drafter->pending_sessions().empty()) {
      cancelled = *drafter->pending_sessions().begin();
      cancelled_in_flight = true;
      engine.Cancel(cancelled);
    }
    std::vector<SpecEvent> events;
    ASSERT_TRUE(engine.Step(&events).ok());
    for (const SpecEvent& e : events) {
      if (e.id != *plain || e.tokens.empty()) continue;
      if (plain_last >= 0) plain_gap = std::max(plain_gap, step - plain_last);
      plain_last = step;
    }
    Collect(events, &out);
  }
  EXPECT_TRUE(cancelled_in_flight);
  EXPECT_LE(plain_gap, 2) << "a request that does not draft waited " << plain_gap << " steps";
  EXPECT_EQ(out[*plain].tokens, Reference(*m, plain_prompt, 30));
  EXPECT_TRUE(drafter->violations().empty()) << drafter->violations().front();
  EXPECT_GT(engine.overlapped_drafts(), 10) << "the halves never alternated";
  // At most: last step's tickets, this step's own, and the next half's.
  EXPECT_LE(drafter->max_pending(), 3);
  SpecCounters total;
  for (const auto& [id, i] : which) {
    const Outcome& o = out[id];
    const std::vector<int32_t> ref = Reference(*m, arrivals[i].prompt, arrivals[i].max_tokens);
    EXPECT_EQ(o.finish_events, 1) << "request " << id;
    if (id == cancelled) {
      EXPECT_EQ(o.finish, FinishReason::kCancelled);
      ASSERT_LE(o.tokens.size(), ref.size());
      EXPECT_EQ(o.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + o.tokens.size()));
      continue;
    }
    EXPECT_EQ(o.tokens, ref) << "request " << id << " (arrival " << i << ")";
    EXPECT_EQ(o.finish, FinishReason::kLength);
    total.Add(o.counters);
  }
  EXPECT_GT(total.verified_tokens, 0);
  EXPECT_EQ(cache->free_blocks(), free_at_start) << "target KV leaked";
  std::printf("[overlap] %s: %lld overlapped drafts, accepted/verified %lld/%lld in %lld steps\n",
              GetParam().c_str(), static_cast<long long>(engine.overlapped_drafts()),
              static_cast<long long>(total.accepted_tokens),
              static_cast<long long>(total.verified_tokens),
              static_cast<long long>(engine.steps()));
}

INSTANTIATE_TEST_SUITE_P(Drafters, TwoBatchOverlapTest, ::testing::Values("oracle", "ngram"));

// Without the option, a drafter that drafts elsewhere is only ever asked
// for what the step needs at once (StartDraft then FinishDraft in the step).
TEST(TwoBatchOverlapOffTest, NothingIsDraftedAhead) {
  SKIP_WITHOUT_MODEL();
  auto drafter = Deferring("oracle", m->model.get());
  ASSERT_NE(drafter, nullptr);
  auto sched = scheduler::MakeStepScheduler({.kind = "fixed", .fixed_length = 3});
  ASSERT_TRUE(sched.ok()) << sched.status();
  auto cache = m->model->NewKvCache({.max_tokens = 4096});
  SpecEngine engine(m->model.get(), cache.get(), drafter.get(), sched->get(), nullptr,
                    {.max_batch_tokens = 96,
                     .prefill_chunk = 32,
                     .prefix_cache_entries = 0,
                     .two_batch_overlap = false});
  std::vector<std::vector<int32_t>> prompts;
  std::vector<RequestId> ids;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(Slice(*m, 41 * i, 10 + 7 * i));
    auto id = engine.Add({.prompt = prompts.back(), .max_tokens = 20});
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  absl::flat_hash_map<RequestId, Outcome> out;
  ASSERT_EQ(RunToIdle(engine, &out), absl::OkStatus());
  EXPECT_EQ(engine.overlapped_drafts(), 0);
  EXPECT_EQ(drafter->max_pending(), 1);
  EXPECT_TRUE(drafter->violations().empty()) << drafter->violations().front();
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(out[ids[i]].tokens, Reference(*m, prompts[i], 20)) << "request " << i;
  }
}

}  // namespace
}  // namespace dspark::spec::testing
