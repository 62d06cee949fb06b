// RemoteDrafter and RoutingDrafter against in-process DraftWorker servers on
// loopback (no real model): the remote path gives exactly the blocks of the
// same drafter in process (n-gram, and a random-weight DSpark drafter on a
// tiny random target, greedy and sampled, with Fork); refused operations
// surface; a killed or hung draft worker makes RoutingDrafter return empty
// blocks within its timeout and never an error; sessions without a worker
// draft nothing; batches split by worker; Fork across workers is
// Unimplemented; a worker needing other context layers is not used;
// Reassign rebuilds sessions of a dead worker on another from the kept
// context tail (forked children included) and never fails.
#include "verify_worker/remote_drafter/remote_drafter.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "draft_worker/dspark/dspark_drafter.h"
#include "draft_worker/ngram/ngram_drafter.h"
#include "draft_worker/service/spec_codec.h"
#include "tests/draft_worker/dspark/dspark_test_util.h"
#include "tests/draft_worker/service/draft_worker_test_util.h"
#include "verify_worker/remote_drafter/routing_drafter.h"

namespace dspark::remote_drafter {
namespace {

using draft_service::testing::GatedDrafter;
using draft_service::testing::InProcessDraftWorker;
using drafter::DraftBlock;
using drafter::DraftRequest;

std::unique_ptr<drafter::Drafter> Ngram() {
  auto d = drafter::NgramDrafter::Create({});
  EXPECT_TRUE(d.ok()) << d.status();
  return *std::move(d);
}

// A repetitive context: prompt lookup finds continuations in it.
std::vector<int32_t> Context(int offset, int n = 40) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(10 + (i + offset) % 9);
  return t;
}

DraftRequest Req(int64_t session, int32_t last, int max_tokens = 5) {
  return {.session = session, .last_token = last, .max_tokens = max_tokens};
}

void ExpectSame(const std::vector<DraftBlock>& got, const std::vector<DraftBlock>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << "block " << i;
    EXPECT_EQ(got[i].q, want[i].q) << "block " << i;
    EXPECT_EQ(got[i].confidence, want[i].confidence) << "block " << i;
  }
}

// Runs the same script on both drafters and compares every Draft. `features`
// gives the features of n tokens (empty for token-only drafters).
void RunScript(drafter::Drafter& remote, drafter::Drafter& local,
               const std::function<std::vector<float>(int n, uint64_t seed)>& features) {
  auto both = [&](auto&& op) {
    absl::Status a = op(remote), b = op(local);
    EXPECT_EQ(a.code(), b.code()) << a << " vs " << b;
  };
  auto extend = [&](drafter::SessionId s, const std::vector<int32_t>& tokens, uint64_t seed) {
    const std::vector<float> f = features(static_cast<int>(tokens.size()), seed);
    both([&](drafter::Drafter& d) { return d.Extend(s, tokens, f); });
  };
  auto draft = [&](const std::vector<DraftRequest>& requests) {
    std::vector<DraftBlock> got, want;
    absl::Status a = remote.Draft(requests, &got);
    absl::Status b = local.Draft(requests, &want);
    EXPECT_TRUE(a.ok()) << a;
    EXPECT_TRUE(b.ok()) << b;
    ExpectSame(got, want);
    want.resize(requests.size());
    return want;
  };
  for (drafter::SessionId s : {1, 2}) {
    both([&](drafter::Drafter& d) { return d.Open(s); });
    extend(s, Context(static_cast<int>(s)), s);
  }
  DraftRequest sampled = Req(2, 11, 4);
  sampled.sampling = {.temperature = 0.8f, .top_k = 20, .seed = 5};
  sampled.draw_counter = 16;
  std::vector<DraftBlock> first = draft({Req(1, 12), sampled});
  // The target accepted part of the first block: roll forward with it.
  std::vector<int32_t> accepted = {12};
  if (!first[0].tokens.empty()) accepted.push_back(first[0].tokens[0]);
  extend(1, accepted, 7);
  draft({Req(1, 13, 7), Req(2, 14, 1)});
  both([&](drafter::Drafter& d) { return d.Fork(3, 1, 30); });
  extend(3, {15, 16}, 8);
  draft({Req(3, 17), Req(1, 13, 3)});
  remote.Close(2);
  local.Close(2);
  draft({Req(1, 13, 2)});
}

TEST(RemoteDrafterTest, NgramOverTheStreamEqualsInProcess) {
  InProcessDraftWorker worker(Ngram(), {});
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto remote = RemoteDrafter::Connect({.address = worker.address()});
  ASSERT_TRUE(remote.ok()) << remote.status();
  EXPECT_EQ((*remote)->name(), "ngram");
  EXPECT_EQ((*remote)->max_block(), 7);
  EXPECT_TRUE((*remote)->context_layers().empty());
  auto local = Ngram();
  RunScript(**remote, *local, [](int, uint64_t) { return std::vector<float>(); });
  EXPECT_TRUE((*remote)->health().ok());
  // The stream is still in order: sessions 1 and 3 are open there.
  EXPECT_EQ(worker.service().stats().open_sessions, 2);
}

class RemoteDsparkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dspark::testing::MakeTempDir("remote_dspark_test");
    ASSERT_FALSE(dir_.empty());
    const std::string gguf = dir_ + "/tiny.gguf";
    ASSERT_TRUE(dspark::testing::WriteTinyTarget(gguf, {}, 1).ok());
    const auto config = dspark::testing::TinyDrafterConfig({});
    std::filesystem::create_directories(dir_ + "/drafter");
    ASSERT_TRUE(dspark::testing::WriteDrafter(dir_ + "/drafter", config,
                                              dspark::testing::RandomDrafterTensors(config, 42))
                    .ok());
    // Each side its own target: a model runs on one thread at a time.
    for (auto* target : {&local_target_, &worker_target_}) {
      auto model =
          engine::Model::Load(gguf, {.mode = engine::cpu::ActivationMode::kExact, .threads = 1});
      ASSERT_TRUE(model.ok()) << model.status();
      *target = *std::move(model);
    }
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<drafter::Drafter> Load(engine::Model* target) {
    auto d = drafter::DsparkDrafter::Load(dir_ + "/drafter", target);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::unique_ptr<drafter::Drafter>(std::move(*d)) : nullptr;
  }

  std::string dir_;
  std::unique_ptr<engine::Model> local_target_, worker_target_;
};

TEST_F(RemoteDsparkTest, DsparkOverTheStreamEqualsInProcess) {
  InProcessDraftWorker worker(Load(worker_target_.get()),
                              {.loop = draft_service::LoopOptionsFor(*worker_target_)});
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto remote = RemoteDrafter::Connect(
      {.address = worker.address(), .target_model = draft_service::TargetIdentity(*local_target_)});
  ASSERT_TRUE(remote.ok()) << remote.status();
  EXPECT_EQ((*remote)->name(), "dspark");
  EXPECT_EQ((*remote)->context_layers(), (std::vector<int>{1, 2}));
  auto local = Load(local_target_.get());
  ASSERT_NE(local, nullptr);
  RunScript(**remote, *local, [](int n, uint64_t seed) {
    return dspark::testing::RandomFloats(static_cast<int64_t>(n) * 2 * 64, seed, 2.0f);
  });
  EXPECT_TRUE((*remote)->health().ok());
}

TEST(RemoteDrafterTest, RefusedTargetAndRefusedOperationsSurface) {
  InProcessDraftWorker worker(std::make_unique<GatedDrafter>(Ngram(), std::vector<int>{0}),
                              {.loop = {.target_model = "a.gguf:1", .target_dim = 2}});
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto wrong = RemoteDrafter::Connect({.address = worker.address(), .target_model = "b.gguf:1"});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition) << wrong.status();

  auto remote = RemoteDrafter::Connect({.address = worker.address(), .target_model = "a.gguf:1"});
  ASSERT_TRUE(remote.ok()) << remote.status();
  drafter::Drafter& d = **remote;
  ASSERT_TRUE(d.Open(1).ok());
  ASSERT_TRUE(d.Open(2).ok());
  // Session 1's features have the wrong size: the worker refuses the Extend.
  ASSERT_TRUE(d.Extend(1, {3, 4}, std::vector<float>(3)).ok());  // not answered yet
  ASSERT_TRUE(d.Extend(2, {3, 4}, std::vector<float>(4)).ok());
  std::vector<DraftBlock> blocks;
  ASSERT_TRUE(d.Draft({Req(2, 4)}, &blocks).ok());  // the barrier: replies are in order
  EXPECT_EQ((*remote)->SessionStatus(1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.Extend(1, {5}, std::vector<float>(2)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.Draft({Req(1, 5)}, &blocks).code(), absl::StatusCode::kFailedPrecondition);
  // A refused batch is an error for that call only.
  EXPECT_EQ(d.Draft({Req(2, 4, 9)}, &blocks).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*remote)->health().ok());
  d.Close(1);
  EXPECT_TRUE((*remote)->SessionStatus(1).ok());
}

TEST(RemoteDrafterTest, UnreachableWorkerFailsFast) {
  std::string address;
  {
    InProcessDraftWorker gone(Ngram(), {});
    ASSERT_TRUE(gone.ok());
    address = gone.address();
  }
  const absl::Time t0 = absl::Now();
  auto remote = RemoteDrafter::Connect({.address = address, .timeout = absl::Seconds(5)});
  EXPECT_FALSE(remote.ok());
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5)) << remote.status();
}

// ---- RoutingDrafter ----

TEST(RoutingDrafterTest, KilledWorkerGivesEmptyBlocksNeverErrors) {
  auto worker =
      std::make_unique<InProcessDraftWorker>(Ngram(), draft_service::DraftWorkerServiceOptions{});
  ASSERT_TRUE(worker->ok());
  RoutingDrafter routing({.max_block = 7, .timeout = absl::Seconds(1)});
  auto local = Ngram();
  for (drafter::SessionId s : {1, 2}) {
    routing.Assign(s, worker->address());
    ASSERT_TRUE(routing.Open(s).ok());
    ASSERT_TRUE(routing.Extend(s, Context(static_cast<int>(s)), {}).ok());
    ASSERT_TRUE(local->Open(s).ok());
    ASSERT_TRUE(local->Extend(s, Context(static_cast<int>(s)), {}).ok());
  }
  std::vector<DraftBlock> got, want;
  ASSERT_TRUE(routing.Draft({Req(1, 12), Req(2, 13)}, &got).ok());
  ASSERT_TRUE(local->Draft({Req(1, 12), Req(2, 13)}, &want).ok());
  ExpectSame(got, want);
  ASSERT_FALSE(got[0].tokens.empty());
  EXPECT_EQ(routing.attached_sessions(), 2);

  worker->Stop();  // as if the process died
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(routing.Draft({Req(1, 12), Req(2, 13)}, &got).ok());
  EXPECT_LT(absl::Now() - t0, absl::Seconds(1) + absl::Milliseconds(500));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].tokens.empty());
  EXPECT_TRUE(got[1].tokens.empty());
  EXPECT_TRUE(routing.Extend(1, {12, 13}, {}).ok());
  ASSERT_TRUE(routing.Draft({Req(1, 14)}, &got).ok());
  EXPECT_TRUE(got[0].tokens.empty());
  EXPECT_EQ(routing.detached_sessions(), 2);
  routing.Close(1);
  routing.Close(2);

  // A new worker named for new sessions works (the router's reattachment).
  InProcessDraftWorker fresh(Ngram(), {});
  ASSERT_TRUE(fresh.ok());
  routing.Assign(5, fresh.address());
  ASSERT_TRUE(routing.Open(5).ok());
  ASSERT_TRUE(routing.Extend(5, Context(1), {}).ok());
  ASSERT_TRUE(routing.Draft({Req(5, 12)}, &got).ok());
  EXPECT_FALSE(got[0].tokens.empty());
}

TEST(RoutingDrafterTest, HungWorkerTimesOutWithEmptyBlocks) {
  auto gated = std::make_unique<GatedDrafter>(Ngram());
  GatedDrafter* gate = gated.get();
  InProcessDraftWorker worker(std::move(gated), {});
  ASSERT_TRUE(worker.ok());
  const absl::Duration timeout = absl::Milliseconds(300);
  RoutingDrafter routing({.max_block = 7, .timeout = timeout});
  routing.Assign(1, worker.address());
  ASSERT_TRUE(routing.Open(1).ok());
  ASSERT_TRUE(routing.Extend(1, Context(0), {}).ok());
  gate->CloseGate();  // the worker stops answering
  std::vector<DraftBlock> got;
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(routing.Draft({Req(1, 12)}, &got).ok());
  const absl::Duration took = absl::Now() - t0;
  EXPECT_GE(took, timeout);
  EXPECT_LT(took, timeout + absl::Seconds(1));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].tokens.empty());
  // Detached: the next step does not wait again.
  const absl::Time t1 = absl::Now();
  ASSERT_TRUE(routing.Draft({Req(1, 12)}, &got).ok());
  EXPECT_LT(absl::Now() - t1, timeout);
  EXPECT_EQ(routing.detached_sessions(), 1);
  gate->OpenGate();
}

TEST(RoutingDrafterTest, SessionsWithoutAWorkerDraftNothing) {
  std::string gone_address;
  {
    InProcessDraftWorker gone(Ngram(), {});
    ASSERT_TRUE(gone.ok());
    gone_address = gone.address();
  }
  RoutingDrafter routing({.max_block = 7});
  ASSERT_TRUE(routing.Open(1).ok());  // never assigned
  routing.Assign(2, gone_address);    // nobody listens there
  ASSERT_TRUE(routing.Open(2).ok());
  ASSERT_TRUE(routing.Extend(1, Context(0), {}).ok());
  ASSERT_TRUE(routing.Extend(2, Context(0), {}).ok());
  std::vector<DraftBlock> got;
  ASSERT_TRUE(routing.Draft({Req(1, 12), Req(2, 12)}, &got).ok());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].tokens.empty());
  EXPECT_TRUE(got[1].tokens.empty());
  // Misuse is still an error, as for any drafter.
  EXPECT_EQ(routing.Open(1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(routing.Extend(9, {1}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(routing.Draft({Req(9, 1)}, &got).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(routing.Draft({Req(1, 1, 8)}, &got).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RoutingDrafterTest, SplitsBatchesByWorkerAndForksOnlyWithinOne) {
  InProcessDraftWorker a(Ngram(), {}), b(Ngram(), {});
  ASSERT_TRUE(a.ok() && b.ok());
  auto local_a = Ngram(), local_b = Ngram();
  RoutingDrafter routing({.max_block = 7});
  const std::vector<std::pair<drafter::SessionId, InProcessDraftWorker*>> placement = {
      {1, &a}, {2, &b}, {3, &a}};
  for (auto [s, w] : placement) {
    routing.Assign(s, w->address());
    ASSERT_TRUE(routing.Open(s).ok());
    ASSERT_TRUE(routing.Extend(s, Context(static_cast<int>(s)), {}).ok());
    drafter::Drafter* local = w == &a ? local_a.get() : local_b.get();
    ASSERT_TRUE(local->Open(s).ok());
    ASSERT_TRUE(local->Extend(s, Context(static_cast<int>(s)), {}).ok());
  }
  std::vector<DraftBlock> got, want_a, want_b;
  ASSERT_TRUE(routing.Draft({Req(1, 12), Req(2, 13), Req(3, 14)}, &got).ok());
  ASSERT_TRUE(local_a->Draft({Req(1, 12), Req(3, 14)}, &want_a).ok());
  ASSERT_TRUE(local_b->Draft({Req(2, 13)}, &want_b).ok());
  ExpectSame(got, {want_a[0], want_b[0], want_a[1]});
  EXPECT_EQ(a.service().stats().max_batch, 2);
  EXPECT_EQ(b.service().stats().max_batch, 1);

  routing.Assign(4, b.address());
  EXPECT_EQ(routing.Fork(4, 1, 20).code(), absl::StatusCode::kUnimplemented);
  ASSERT_TRUE(routing.Open(4).ok());  // what the engine does then
  routing.Assign(5, a.address());
  ASSERT_TRUE(routing.Fork(5, 1, 20).ok());
  ASSERT_TRUE(local_a->Fork(5, 1, 20).ok());
  ASSERT_TRUE(routing.Draft({Req(5, 19)}, &got).ok());
  ASSERT_TRUE(local_a->Draft({Req(5, 19)}, &want_a).ok());
  ExpectSame(got, want_a);
  EXPECT_EQ(routing.attached_sessions(), 5);
}

// Without a draft worker (none assigned, as in a cluster without draft
// workers) a session forks detached, so the engine shares the prefix's KV;
// a child that is to draft on a worker still needs its parent there.
TEST(RoutingDrafterTest, ForksDetachedWhenNoWorkerIsNamed) {
  InProcessDraftWorker a(Ngram(), {});
  ASSERT_TRUE(a.ok());
  RoutingDrafter routing({.max_block = 7});
  ASSERT_TRUE(routing.Open(1).ok());  // never assigned: detached
  ASSERT_TRUE(routing.Extend(1, Context(1), {}).ok());
  ASSERT_TRUE(routing.Fork(2, 1, 20).ok());
  std::vector<DraftBlock> got;
  ASSERT_TRUE(routing.Draft({Req(2, 12)}, &got).ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].tokens.empty());  // detached: drafts nothing
  routing.Assign(3, a.address());
  EXPECT_EQ(routing.Fork(3, 1, 20).code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(routing.Fork(2, 1, 20).code(), absl::StatusCode::kInvalidArgument);  // open already
  EXPECT_EQ(routing.attached_sessions(), 0);
}

// Draft in two halves: a ticket is collected once; unknown or spent
// tickets are InvalidArgument.
TEST(RoutingDrafterTest, TicketsAreCollectedOnce) {
  RoutingDrafter routing({.max_block = 7});
  ASSERT_TRUE(routing.Open(1).ok());  // never assigned: detached, empty blocks
  ASSERT_TRUE(routing.Extend(1, Context(0), {}).ok());
  auto ticket = routing.StartDraft({{.session = 1, .last_token = 5, .max_tokens = 3}});
  ASSERT_TRUE(ticket.ok()) << ticket.status();
  std::vector<DraftBlock> got;
  ASSERT_TRUE(routing.FinishDraft(*ticket, &got).ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].tokens.empty());
  EXPECT_EQ(routing.FinishDraft(*ticket, &got).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(routing.FinishDraft(12345, &got).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RoutingDrafterTest, UsesWorkersOnlyWhenTheirContextLayersFit) {
  // The verify worker captures layers {1, 2} (2 x 4 floats per token).
  InProcessDraftWorker token_only(Ngram(), {.loop = {.target_dim = 4}});
  InProcessDraftWorker other_layers(std::make_unique<GatedDrafter>(Ngram(), std::vector<int>{3}),
                                    {.loop = {.target_dim = 4}});
  InProcessDraftWorker same_layers(std::make_unique<GatedDrafter>(Ngram(), std::vector<int>{1, 2}),
                                   {.loop = {.target_dim = 4}});
  ASSERT_TRUE(token_only.ok() && other_layers.ok() && same_layers.ok());
  RoutingDrafter routing({.context_layers = {1, 2}, .max_block = 7});
  EXPECT_EQ(routing.context_layers(), (std::vector<int>{1, 2}));
  const std::vector<std::pair<drafter::SessionId, InProcessDraftWorker*>> placement = {
      {1, &token_only}, {2, &other_layers}, {3, &same_layers}};
  const std::vector<int32_t> ctx = Context(0);
  const std::vector<float> features(ctx.size() * 2 * 4, 1.0f);
  for (auto [s, w] : placement) {
    routing.Assign(s, w->address());
    ASSERT_TRUE(routing.Open(s).ok());
    ASSERT_TRUE(routing.Extend(s, ctx, features).ok());
  }
  std::vector<DraftBlock> got;
  ASSERT_TRUE(routing.Draft({Req(1, 12), Req(2, 12), Req(3, 12)}, &got).ok());
  EXPECT_FALSE(got[0].tokens.empty()) << "features dropped for a token-only drafter";
  EXPECT_TRUE(got[1].tokens.empty()) << "a drafter needing other layers is not used";
  EXPECT_FALSE(got[2].tokens.empty()) << "features sent whole";
  EXPECT_EQ(routing.attached_sessions(), 2);
  EXPECT_EQ(other_layers.service().stats().open_sessions, 0);
}

// Forwards to `inner` (token-only) but reports `context_layers` and records
// every token and feature each session was extended with (Fork children
// start empty: their shared prefix was never sent). Keyed by the draft
// worker's own session ids (not the verify side's). Called on the draft
// worker's drafting thread; sessions() on the test's.
class RecordingDrafter final : public drafter::Drafter {
 public:
  struct Seen {
    std::vector<int32_t> tokens;
    std::vector<float> features;
  };
  RecordingDrafter(std::unique_ptr<drafter::Drafter> inner, std::vector<int> context_layers)
      : inner_(std::move(inner)), context_layers_(std::move(context_layers)) {}

  std::string name() const override { return inner_->name(); }
  int max_block() const override { return inner_->max_block(); }
  std::vector<int> context_layers() const override { return context_layers_; }
  absl::Status Open(drafter::SessionId session) override {
    {
      absl::MutexLock lock(&mu_);
      seen_[session] = {};
    }
    return inner_->Open(session);
  }
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override {
    {
      absl::MutexLock lock(&mu_);
      Seen& seen = seen_[session];
      seen.tokens.insert(seen.tokens.end(), tokens.begin(), tokens.end());
      seen.features.insert(seen.features.end(), features.begin(), features.end());
    }
    return inner_->Extend(session, tokens, {});
  }
  absl::Status Draft(absl::Span<const DraftRequest> requests,
                     std::vector<DraftBlock>* blocks) override {
    return inner_->Draft(requests, blocks);
  }
  absl::Status Fork(drafter::SessionId child, drafter::SessionId parent,
                    int64_t prefix_len) override {
    {
      absl::MutexLock lock(&mu_);
      seen_[child] = {};
    }
    return inner_->Fork(child, parent, prefix_len);
  }
  void Close(drafter::SessionId session) override { inner_->Close(session); }

  std::map<drafter::SessionId, Seen> sessions() const {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

 private:
  std::unique_ptr<drafter::Drafter> inner_;
  std::vector<int> context_layers_;
  mutable absl::Mutex mu_;
  std::map<drafter::SessionId, Seen> seen_ ABSL_GUARDED_BY(mu_);
};

// Features of context position p: row p is {p, p + 0.5, ...} (8 floats:
// layers {1, 2} x target dim 4), so a replayed row shows where it came from.
constexpr int kRow = 8;
std::vector<float> FeaturesOf(int64_t begin, int64_t end) {
  std::vector<float> f;
  for (int64_t p = begin; p < end; ++p) {
    for (int k = 0; k < kRow; ++k) f.push_back(static_cast<float>(p) + 0.5f * k);
  }
  return f;
}

TEST(RoutingDrafterTest, ReassignReplaysTheKeptTailOnTheNewWorker) {
  auto recorder = [] {
    return std::make_unique<RecordingDrafter>(Ngram(), std::vector<int>{1, 2});
  };
  auto a = std::make_unique<InProcessDraftWorker>(
      recorder(), draft_service::DraftWorkerServiceOptions{.loop = {.target_dim = 4}});
  InProcessDraftWorker b(recorder(), {.loop = {.target_dim = 4}});
  ASSERT_TRUE(a->ok() && b.ok());
  auto* on_b = static_cast<RecordingDrafter*>(b.drafter());
  constexpr int kTail = 16;
  RoutingDrafter routing({.context_layers = {1, 2},
                          .max_block = 7,
                          .timeout = absl::Seconds(1),
                          .replay_tokens = kTail});
  // Session 1: 40 context tokens in two Extends; session 3 forks its first 35.
  const std::vector<int32_t> ctx = Context(1);
  routing.Assign(1, a->address());
  ASSERT_TRUE(routing.Open(1).ok());
  const absl::Span<const int32_t> all(ctx);
  ASSERT_TRUE(routing.Extend(1, all.subspan(0, 30), FeaturesOf(0, 30)).ok());
  ASSERT_TRUE(routing.Extend(1, all.subspan(30), FeaturesOf(30, 40)).ok());
  routing.Assign(3, a->address());
  ASSERT_TRUE(routing.Fork(3, 1, 35).ok());
  ASSERT_TRUE(routing.Extend(3, {20, 21}, FeaturesOf(35, 37)).ok());
  std::vector<DraftBlock> got;
  ASSERT_TRUE(routing.Draft({Req(1, 12), Req(3, 22)}, &got).ok());
  ASSERT_FALSE(got[0].tokens.empty());

  const std::string a_address = a->address();
  a->Stop();  // as if the process died
  ASSERT_TRUE(routing.Draft({Req(1, 12), Req(3, 22)}, &got).ok());
  EXPECT_TRUE(got[0].tokens.empty());
  EXPECT_TRUE(got[1].tokens.empty());
  EXPECT_EQ(routing.detached_sessions(), 2);
  // Detached sessions still keep their context: the target went on.
  ASSERT_TRUE(routing.Extend(1, {12, 13}, FeaturesOf(40, 42)).ok());
  // Admitted but not opened yet: it will open on the new worker.
  routing.Assign(4, a_address);

  const ReassignResult moved = routing.Reassign(a_address, b.address());
  EXPECT_EQ(moved.reattached, 3);
  EXPECT_EQ(moved.detached, 0);
  EXPECT_EQ(routing.attached_sessions(), 2);

  // Session 1's tail: positions 26..41. Session 3's: what its parent kept
  // of the shared prefix when it forked (24..34), then its own two.
  std::vector<int32_t> tail1(ctx.begin() + 26, ctx.end());
  tail1.insert(tail1.end(), {12, 13});
  std::vector<int32_t> tail3(ctx.begin() + 24, ctx.begin() + 35);
  tail3.insert(tail3.end(), {20, 21});
  std::vector<float> features3 = FeaturesOf(24, 37);
  // A Draft is the barrier: B has read every earlier message.
  auto local = Ngram();
  for (auto [s, tail] : {std::pair{1, tail1}, std::pair{3, tail3}}) {
    ASSERT_TRUE(local->Open(s).ok());
    ASSERT_TRUE(local->Extend(s, tail, {}).ok());
  }
  std::vector<DraftBlock> want;
  ASSERT_TRUE(routing.Draft({Req(1, 14), Req(3, 22)}, &got).ok());
  ASSERT_TRUE(local->Draft({Req(1, 14), Req(3, 22)}, &want).ok());
  ExpectSame(got, want);
  EXPECT_FALSE(got[0].tokens.empty()) << "B drafts from the replayed tail";
  const auto seen = on_b->sessions();
  ASSERT_EQ(seen.size(), 2u);
  auto features_of = [&](const std::vector<int32_t>& tokens) -> std::vector<float> {
    for (const auto& [id, session] : seen) {
      if (session.tokens == tokens) return session.features;
    }
    ADD_FAILURE() << "no session on B saw exactly its tail";
    return {};
  };
  EXPECT_EQ(features_of(tail1), FeaturesOf(26, 42));
  EXPECT_EQ(features_of(tail3), features3);
  EXPECT_EQ(b.service().stats().open_sessions, 2);

  ASSERT_TRUE(routing.Open(4).ok());
  ASSERT_TRUE(routing.Extend(4, Context(4), FeaturesOf(0, 40)).ok());
  ASSERT_TRUE(routing.Draft({Req(4, 12)}, &got).ok());
  EXPECT_FALSE(got[0].tokens.empty()) << "session 4 opened on B";
  EXPECT_EQ(b.service().stats().open_sessions, 3);

  // Close after the move closes on B.
  routing.Close(3);
  ASSERT_TRUE(routing.Draft({Req(1, 14)}, &got).ok());
  EXPECT_EQ(b.service().stats().open_sessions, 2);

  // A move to nowhere reachable detaches, without an error.
  std::string gone;
  {
    InProcessDraftWorker g(Ngram(), {});
    ASSERT_TRUE(g.ok());
    gone = g.address();
  }
  const ReassignResult lost = routing.Reassign(b.address(), gone);
  EXPECT_EQ(lost.reattached, 0);
  EXPECT_EQ(lost.detached, 2);
  ASSERT_TRUE(routing.Draft({Req(1, 14), Req(4, 12)}, &got).ok());
  EXPECT_TRUE(got[0].tokens.empty());
  EXPECT_TRUE(got[1].tokens.empty());
  EXPECT_EQ(routing.detached_sessions(), 2);
  // They remember where the router put them: moving them on from there works.
  const ReassignResult back = routing.Reassign(gone, b.address());
  EXPECT_EQ(back.reattached, 2);
  ASSERT_TRUE(routing.Draft({Req(1, 14)}, &got).ok());
  EXPECT_FALSE(got[0].tokens.empty());
  // An empty address detaches them on purpose; other addresses are untouched.
  EXPECT_EQ(routing.Reassign("10.9.9.9:1", b.address()).reattached, 0);
  const ReassignResult off = routing.Reassign(b.address(), "");
  EXPECT_EQ(off.reattached, 0);
  EXPECT_EQ(off.detached, 2);
  EXPECT_EQ(routing.attached_sessions(), 0);
}

TEST(RoutingDrafterTest, WithoutAKeptTailReassignDetaches) {
  InProcessDraftWorker a(Ngram(), {}), b(Ngram(), {});
  ASSERT_TRUE(a.ok() && b.ok());
  RoutingDrafter routing({.max_block = 7, .replay_tokens = 0});
  for (drafter::SessionId s : {1, 2}) {
    routing.Assign(s, a.address());
    ASSERT_TRUE(routing.Open(s).ok());
    ASSERT_TRUE(routing.Extend(s, Context(1), {}).ok());
  }
  const ReassignResult moved = routing.Reassign(a.address(), b.address());
  EXPECT_EQ(moved.reattached, 0);
  EXPECT_EQ(moved.detached, 2);
  std::vector<DraftBlock> got;
  ASSERT_TRUE(routing.Draft({Req(1, 12)}, &got).ok());
  EXPECT_TRUE(got[0].tokens.empty());
  // A session opened on `a` since is the barrier: the two were closed there.
  routing.Assign(3, a.address());
  ASSERT_TRUE(routing.Open(3).ok());
  ASSERT_TRUE(routing.Extend(3, Context(1), {}).ok());
  ASSERT_TRUE(routing.Draft({Req(3, 12)}, &got).ok());
  EXPECT_EQ(a.service().stats().open_sessions, 1) << "closed on the old worker";
  EXPECT_EQ(b.service().stats().open_sessions, 0);
}

}  // namespace
}  // namespace dspark::remote_drafter
