// RouterBackend against fake verify workers over real gRPC: streaming,
// admission (bounded queue, queued requests start when room frees),
// cancellation and deadlines reaching the worker, replay after a worker
// fails mid-stream, prefix affinity; a dropped draft worker's sessions are
// reassigned to another (ReassignDrafts, and the router's counts).
#include "router/core/router_backend.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/router/router_test_util.h"

namespace dspark::router {
namespace {

using dspark::testing::FakeVerifyWorker;
using dspark::testing::FakeVerifyWorkerOptions;
using testing::Collector;
using testing::TestCluster;
using testing::TextRequest;

constexpr absl::Duration kWait = absl::Seconds(10);

std::vector<int32_t> Ids(const std::string& text) { return {text.begin(), text.end()}; }

std::string Text(const std::vector<int32_t>& ids) { return {ids.begin(), ids.end()}; }

TEST(RouterBackendTest, StreamsTheWorkersTokens) {
  TestCluster cluster(1, 4);
  Collector c;
  ASSERT_TRUE(cluster.backend().Start(TextRequest("hello", 6), c.OnChunk(), c.OnDone()).ok());
  ASSERT_TRUE(c.WaitDone());
  ASSERT_TRUE(c.status().ok()) << c.status();
  const std::vector<int32_t> want = FakeVerifyWorker::Continuation(Ids("hello"), 6);
  EXPECT_EQ(c.tokens(), want);
  EXPECT_EQ(c.text(), Text(want));
  const GenerationChunk last = c.chunks().back();
  EXPECT_EQ(last.finish, Finish::kLength);
  EXPECT_EQ(last.model, testing::kModelId);
  EXPECT_EQ(last.prompt_tokens, 5);
  EXPECT_EQ(last.completion_tokens, 6);
  // What the worker was asked.
  auto requests = cluster.worker(0).requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].max_tokens(), 6);
  EXPECT_EQ(requests[0].stop_token_ids_size(), 1);
  EXPECT_TRUE(requests[0].draft_worker().empty());
  EXPECT_TRUE(cluster.worker(0).WaitForIdle(kWait));
  EXPECT_EQ(cluster.registry().Snapshot()[0].assigned, 0) << "the session's slot was released";
}

TEST(RouterBackendTest, RecordsRequestMetrics) {
  prometheus::Registry registry;
  metrics::RequestMetrics metrics(registry, {.worker = "router", .pool = "router", .model = "m"});
  RouterBackendOptions options;
  options.metrics = &metrics;
  TestCluster cluster(1, 4, options);
  Collector ok;
  ASSERT_TRUE(cluster.backend().Start(TextRequest("hello", 5), ok.OnChunk(), ok.OnDone()).ok());
  ASSERT_TRUE(ok.WaitDone());
  ASSERT_TRUE(cluster.backend().WaitIdle(absl::Now() + kWait));
  EXPECT_EQ(metrics.generation_tokens->Value(), 5);
  EXPECT_EQ(metrics.prompt_tokens->Value(), 5);
  EXPECT_EQ(metrics.time_to_first_token->Collect().histogram.sample_count, 1u);
  EXPECT_EQ(metrics.inter_token_latency->Collect().histogram.sample_count, 4u);
  EXPECT_EQ(metrics.e2e_request_latency->Collect().histogram.sample_count, 1u);
  EXPECT_EQ(metrics.request_queue_time->Collect().histogram.sample_count, 1u);
  EXPECT_EQ(metrics.request_success->Add({{"finished_reason", "length"}}).Value(), 1);
  EXPECT_EQ(metrics.requests_running->Value(), 0);
  EXPECT_EQ(metrics.requests_waiting->Value(), 0);
}

TEST(RouterBackendTest, DraftWorkerIsNamedInTheSessionRequest) {
  TestCluster cluster(1, 4);
  cluster.registry().Register(WorkerKind::kDraft, "127.0.0.1:9", testing::kModelId, 8);
  Collector c;
  ASSERT_TRUE(cluster.backend().Start(TextRequest("x", 2), c.OnChunk(), c.OnDone()).ok());
  ASSERT_TRUE(c.WaitDone());
  EXPECT_EQ(cluster.worker(0).requests()[0].draft_worker(), "127.0.0.1:9");
}

TEST(RouterBackendTest, FullQueueIsResourceExhaustedAndQueuedRequestsRunLater) {
  RouterBackendOptions options;
  options.max_queue = 1;
  TestCluster cluster(1, /*max_sessions=*/1, options, FakeVerifyWorkerOptions{.pause_after = 1});
  Collector a, b, c;
  ASSERT_TRUE(cluster.backend().Start(TextRequest("a", 3), a.OnChunk(), a.OnDone()).ok());
  ASSERT_TRUE(cluster.worker(0).WaitForPaused(1, kWait));
  ASSERT_TRUE(cluster.backend().Start(TextRequest("b", 3), b.OnChunk(), b.OnDone()).ok());
  EXPECT_EQ(cluster.backend().queued(), 1);
  auto refused = cluster.backend().Start(TextRequest("c", 3), c.OnChunk(), c.OnDone());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_EQ(cluster.worker(0).requests().size(), 1u) << "b waits for room";

  cluster.worker(0).Resume();
  ASSERT_TRUE(a.WaitDone());
  ASSERT_TRUE(b.WaitDone());
  EXPECT_TRUE(a.status().ok()) << a.status();
  EXPECT_TRUE(b.status().ok()) << b.status();
  EXPECT_EQ(b.tokens(), FakeVerifyWorker::Continuation(Ids("b"), 3));
  EXPECT_EQ(cluster.worker(0).requests().size(), 2u);
  EXPECT_EQ(cluster.backend().queued(), 0);
}

TEST(RouterBackendTest, NoWorkerIsUnavailable) {
  TestCluster cluster(0, 1);
  Collector c;
  auto started = cluster.backend().Start(TextRequest("a", 3), c.OnChunk(), c.OnDone());
  EXPECT_EQ(started.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(cluster.backend().Healthy());
}

TEST(RouterBackendTest, CancelReachesTheWorkerAndFreesTheSlot) {
  TestCluster cluster(1, 1, {}, FakeVerifyWorkerOptions{.pause_after = 2});
  Collector c;
  auto handle = cluster.backend().Start(TextRequest("a", 10), c.OnChunk(), c.OnDone());
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(cluster.worker(0).WaitForPaused(1, kWait));
  (*handle)->Cancel();
  ASSERT_TRUE(cluster.worker(0).WaitForCancelled(1, kWait));
  ASSERT_TRUE(c.WaitDone());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kCancelled);
  // The two tokens sent before the pause may or may not have been read
  // before the cancel; none after it.
  EXPECT_LE(c.tokens().size(), 2u);
  (*handle)->Cancel();  // idempotent
  EXPECT_TRUE(cluster.worker(0).WaitForIdle(kWait));
  EXPECT_EQ(cluster.registry().Snapshot()[0].assigned, 0);
}

TEST(RouterBackendTest, CancelWhileQueuedNeverReachesAWorker) {
  TestCluster cluster(1, 1, {}, FakeVerifyWorkerOptions{.pause_after = 1});
  Collector a, b;
  ASSERT_TRUE(cluster.backend().Start(TextRequest("a", 3), a.OnChunk(), a.OnDone()).ok());
  ASSERT_TRUE(cluster.worker(0).WaitForPaused(1, kWait));
  auto queued = cluster.backend().Start(TextRequest("b", 3), b.OnChunk(), b.OnDone());
  ASSERT_TRUE(queued.ok());
  (*queued)->Cancel();
  ASSERT_TRUE(b.WaitDone(absl::ZeroDuration())) << "a queued request ends at once";
  EXPECT_EQ(b.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(cluster.backend().queued(), 0);
  cluster.worker(0).Resume();
  ASSERT_TRUE(a.WaitDone());
  EXPECT_EQ(cluster.worker(0).requests().size(), 1u);
}

TEST(RouterBackendTest, DeadlineReachesTheWorker) {
  TestCluster cluster(1, 1, {}, FakeVerifyWorkerOptions{.pause_after = 1});
  Collector c;
  GenerationRequest r = TextRequest("a", 5);
  r.deadline = absl::Now() + absl::Milliseconds(300);
  ASSERT_TRUE(cluster.backend().Start(r, c.OnChunk(), c.OnDone()).ok());
  ASSERT_TRUE(c.WaitDone());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDeadlineExceeded) << c.status();
  EXPECT_TRUE(cluster.worker(0).WaitForCancelled(1, kWait)) << "the worker saw the deadline";
}

TEST(RouterBackendTest, QueuedRequestPastItsDeadlineFails) {
  TestCluster cluster(1, 1, {}, FakeVerifyWorkerOptions{.pause_after = 1});
  Collector a, b;
  ASSERT_TRUE(cluster.backend().Start(TextRequest("a", 3), a.OnChunk(), a.OnDone()).ok());
  ASSERT_TRUE(cluster.worker(0).WaitForPaused(1, kWait));
  GenerationRequest r = TextRequest("b", 3);
  r.deadline = absl::Now() + absl::Milliseconds(200);
  ASSERT_TRUE(cluster.backend().Start(r, b.OnChunk(), b.OnDone()).ok());
  ASSERT_TRUE(b.WaitDone());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kDeadlineExceeded);
  cluster.worker(0).Resume();
  ASSERT_TRUE(a.WaitDone());
  EXPECT_EQ(cluster.worker(0).requests().size(), 1u);
}

// The worker the one running session was placed on (placement happens
// inside Start, so the registry knows at once).
int PlacedWorker(TestCluster& cluster) {
  for (const WorkerInfo& w : cluster.registry().Snapshot()) {
    if (w.assigned == 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (cluster.worker_address(i) == w.address) return i;
    }
  }
  return -1;
}

TEST(RouterBackendTest, FailedWorkerMidStreamIsReplayedWithoutDuplicateOrLostTokens) {
  TestCluster cluster(2, 4, {}, FakeVerifyWorkerOptions{.pause_after = 3});
  Collector c;
  ASSERT_TRUE(cluster.backend().Start(TextRequest("hello", 10), c.OnChunk(), c.OnDone()).ok());
  const int first = PlacedWorker(cluster);
  ASSERT_GE(first, 0);
  ASSERT_TRUE(cluster.worker(first).WaitForPaused(1, kWait));
  const int second = 1 - first;
  cluster.worker(second).Resume();        // the replay runs straight through
  cluster.worker(first).SetFailAfter(3);  // the paused session now fails
  cluster.worker(first).Resume();
  ASSERT_TRUE(c.WaitDone());
  ASSERT_TRUE(c.status().ok()) << c.status();
  const std::vector<int32_t> want = FakeVerifyWorker::Continuation(Ids("hello"), 10);
  EXPECT_EQ(c.tokens(), want);
  EXPECT_EQ(c.text(), Text(want));
  EXPECT_EQ(c.chunks().back().completion_tokens, 10);
  EXPECT_EQ(c.chunks().back().prompt_tokens, 5);
  // The replay: the original prompt plus the 3 streamed tokens, 7 to go.
  auto replayed = cluster.worker(second).requests();
  ASSERT_EQ(replayed.size(), 1u);
  std::vector<int32_t> prompt = Ids("hello");
  prompt.insert(prompt.end(), want.begin(), want.begin() + 3);
  EXPECT_EQ(std::vector<int32_t>(replayed[0].prompt().begin(), replayed[0].prompt().end()), prompt);
  EXPECT_EQ(replayed[0].max_tokens(), 7);
}

TEST(RouterBackendTest, FailureWithNoOtherWorkerIsUnavailable) {
  TestCluster cluster(1, 4, {}, FakeVerifyWorkerOptions{.fail_after = 2});
  Collector c;
  ASSERT_TRUE(cluster.backend().Start(TextRequest("a", 10), c.OnChunk(), c.OnDone()).ok());
  ASSERT_TRUE(c.WaitDone());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_EQ(c.tokens().size(), 2u);
}

TEST(RouterBackendTest, StopStringAcrossTheReplayBoundaryEndsTheStream) {
  TestCluster cluster(2, 4, {}, FakeVerifyWorkerOptions{.pause_after = 3});
  const std::vector<int32_t> want = FakeVerifyWorker::Continuation(Ids("hello"), 10);
  GenerationRequest r = TextRequest("hello", 10);
  // Tokens 3 and 4 (0-based 2, 3): one before the failure, one after.
  r.stop = {Text({want[2], want[3]})};
  Collector c;
  ASSERT_TRUE(cluster.backend().Start(r, c.OnChunk(), c.OnDone()).ok());
  const int first = PlacedWorker(cluster);
  ASSERT_GE(first, 0);
  ASSERT_TRUE(cluster.worker(first).WaitForPaused(1, kWait));
  cluster.worker(1 - first).Resume();
  cluster.worker(first).SetFailAfter(3);
  cluster.worker(first).Resume();
  ASSERT_TRUE(c.WaitDone());
  ASSERT_TRUE(c.status().ok()) << c.status();
  EXPECT_EQ(c.chunks().back().finish, Finish::kStop);
  // The fake worker does not apply stop strings, so the text the first
  // worker sent includes want[2]; the router cuts what follows.
  EXPECT_EQ(c.text(), Text({want[0], want[1], want[2]}));
}

TEST(RouterBackendTest, SamePromptPrefixGoesToTheSameWorker) {
  TestCluster cluster(2, 8, {}, FakeVerifyWorkerOptions{.pause_after = 1});
  std::vector<std::unique_ptr<Collector>> collectors;
  for (int i = 0; i < 3; ++i) {
    collectors.push_back(std::make_unique<Collector>());
    auto& c = *collectors.back();
    ASSERT_TRUE(cluster.backend()
                    .Start(TextRequest("You are a helpful assistant.", 3), c.OnChunk(), c.OnDone())
                    .ok());
  }
  // Loads 0, 1, 2 against 0: within the slack of 2, all on the prefix's
  // worker (placement happens inside Start).
  std::vector<int> assigned;
  for (const WorkerInfo& w : cluster.registry().Snapshot()) assigned.push_back(w.assigned);
  std::sort(assigned.begin(), assigned.end());
  EXPECT_EQ(assigned, (std::vector<int>{0, 3}));
  cluster.worker(0).Resume();
  cluster.worker(1).Resume();
  for (auto& c : collectors) ASSERT_TRUE(c->WaitDone());
}

TEST(RouterBackendTest, DrainRefusesNewRequestsAndWaitsForRunningOnes) {
  TestCluster cluster(1, 4, {}, FakeVerifyWorkerOptions{.pause_after = 1});
  Collector a;
  ASSERT_TRUE(cluster.backend().Start(TextRequest("a", 3), a.OnChunk(), a.OnDone()).ok());
  ASSERT_TRUE(cluster.worker(0).WaitForPaused(1, kWait));
  EXPECT_TRUE(cluster.backend().Healthy());
  cluster.backend().BeginDrain();
  EXPECT_FALSE(cluster.backend().Healthy());
  Collector b;
  EXPECT_EQ(cluster.backend().Start(TextRequest("b", 3), b.OnChunk(), b.OnDone()).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(cluster.backend().WaitIdle(absl::Now()));
  cluster.worker(0).Resume();
  EXPECT_TRUE(cluster.backend().WaitIdle(absl::Now() + kWait));
  EXPECT_TRUE(a.status().ok()) << a.status();
}

// A router whose registry runs on a clock the test moves, with one fake
// verify worker (sessions pause after 2 tokens) and no draft worker yet.
class DraftLossTest : public ::testing::TestWithParam<int> {
 protected:
  DraftLossTest()
      : registry_({.heartbeat_interval = absl::Seconds(1), .clock = [this] { return Now(); }}) {
    verify_id_ = registry_.Register(WorkerKind::kVerify, verify_.address(), testing::kModelId, 8);
    backend_ = std::make_unique<RouterBackend>(
        RouterBackendOptions{.housekeeping_interval = absl::Milliseconds(10)}, testing::TestModel(),
        &registry_);
  }
  ~DraftLossTest() override {
    verify_.worker.Resume();
    backend_.reset();
  }

  absl::Time Now() {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  // The registry's entry at `address`; assigned -1 when there is none.
  int Assigned(const std::string& address) {
    for (const WorkerInfo& w : registry_.Snapshot()) {
      if (w.address == address) return w.assigned;
    }
    return -1;
  }

  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1000);
  testing::WorkerServer verify_{
      FakeVerifyWorkerOptions{.model = testing::kModelId, .pause_after = 2}};
  WorkerRegistry registry_;
  std::string verify_id_;
  std::unique_ptr<RouterBackend> backend_;
};

// Param: the sessions the verify worker says it reattached (-1: all).
TEST_P(DraftLossTest, SweptDraftWorkerSessionsMoveToTheLeastLoadedOther) {
  const std::string lost = "127.0.0.1:1", busy = "127.0.0.1:2", idle = "127.0.0.1:3";
  verify_.worker.SetReassignReattached(GetParam());
  registry_.Register(WorkerKind::kDraft, lost, testing::kModelId, 8);
  std::vector<std::unique_ptr<Collector>> collectors;
  for (int i = 0; i < 2; ++i) {
    collectors.push_back(std::make_unique<Collector>());
    ASSERT_TRUE(
        backend_
            ->Start(TextRequest("ab", 5), collectors.back()->OnChunk(), collectors.back()->OnDone())
            .ok());
  }
  ASSERT_TRUE(verify_.worker.WaitForPaused(2, kWait));
  EXPECT_EQ(Assigned(lost), 2);
  // Two more draft workers join, one already busy; then `lost` falls silent
  // (3 missed 1 s heartbeats) while the others keep beating.
  Advance(absl::Seconds(2));
  const std::string busy_id = registry_.Register(WorkerKind::kDraft, busy, testing::kModelId, 8);
  registry_.Register(WorkerKind::kDraft, idle, testing::kModelId, 8);
  internal::v1::WorkerLoad load;
  load.set_running_sessions(5);
  ASSERT_TRUE(registry_.Heartbeat(busy_id, load));
  ASSERT_TRUE(registry_.Heartbeat(verify_id_, {}));
  Advance(absl::Milliseconds(1500));  // the housekeeping's next sweep drops `lost`

  ASSERT_TRUE(verify_.worker.WaitForReassigns(1, kWait));
  const auto reassigns = verify_.worker.reassigns();
  ASSERT_EQ(reassigns.size(), 1u);
  EXPECT_EQ(reassigns[0].from_address(), lost);
  EXPECT_EQ(reassigns[0].to_address(), idle);
  EXPECT_EQ(Assigned(lost), -1);
  const int expected = GetParam() < 0 ? 2 : GetParam();
  // Counted on `idle` before the call; what the worker could not move goes
  // back when its answer arrives.
  const absl::Time deadline = absl::Now() + kWait;
  while (Assigned(idle) != expected && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // the answer's effect is not observable otherwise
  }
  EXPECT_EQ(Assigned(idle), expected);
  verify_.worker.Resume();
  for (auto& c : collectors) {
    ASSERT_TRUE(c->WaitDone());
    EXPECT_TRUE(c->status().ok()) << c->status();
    EXPECT_EQ(c->tokens(), FakeVerifyWorker::Continuation(Ids("ab"), 5));
  }
  ASSERT_TRUE(backend_->WaitIdle(absl::Now() + kWait));
  EXPECT_EQ(Assigned(idle), 0) << "the moved sessions released `idle`, not more, not less";
  EXPECT_EQ(Assigned(busy), 0);
}

INSTANTIATE_TEST_SUITE_P(Answers, DraftLossTest, ::testing::Values(-1, 1, 0));

TEST_F(DraftLossTest, WithNoDraftWorkerLeftSessionsGoOnWithout) {
  const std::string lost = "127.0.0.1:1";
  registry_.Register(WorkerKind::kDraft, lost, testing::kModelId, 8);
  Collector old;
  auto handle = backend_->Start(TextRequest("ab", 5), old.OnChunk(), old.OnDone());
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(verify_.worker.WaitForPaused(1, kWait));
  Advance(absl::Seconds(2));
  ASSERT_TRUE(registry_.Heartbeat(verify_id_, {}));
  Advance(absl::Milliseconds(1500));
  ASSERT_TRUE(verify_.worker.WaitForReassigns(1, kWait));
  EXPECT_EQ(verify_.worker.reassigns()[0].from_address(), lost);
  EXPECT_EQ(verify_.worker.reassigns()[0].to_address(), "");
  // A draft worker comes back at the lost one's address and gets a new
  // session; the old session ending does not take that one's count away.
  registry_.Register(WorkerKind::kDraft, lost, testing::kModelId, 8);
  Collector fresh;
  ASSERT_TRUE(backend_->Start(TextRequest("cd", 5), fresh.OnChunk(), fresh.OnDone()).ok());
  ASSERT_TRUE(verify_.worker.WaitForPaused(2, kWait));
  EXPECT_EQ(Assigned(lost), 1);
  (*handle)->Cancel();
  ASSERT_TRUE(old.WaitDone());
  EXPECT_EQ(old.status().code(), absl::StatusCode::kCancelled) << old.status();
  EXPECT_EQ(Assigned(lost), 1);
  verify_.worker.Resume();
  ASSERT_TRUE(fresh.WaitDone());
  EXPECT_TRUE(fresh.status().ok()) << fresh.status();
  ASSERT_TRUE(backend_->WaitIdle(absl::Now() + kWait));
  EXPECT_EQ(Assigned(lost), 0);
}

}  // namespace
}  // namespace dspark::router
