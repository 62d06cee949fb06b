// VerifyService over real gRPC on the tiny committed llama checkpoint (2
// layers, random weights, no tokenizer), so it always runs: greedy sessions
// at concurrency equal engine::Generate with an always-right and an
// often-wrong drafter; a client cancel or deadline mid-stream frees the KV;
// bad requests are INVALID_ARGUMENT at once while a canary runs; a policy with
// speculation off changes no output; drain finishes what is in flight and
// refuses the rest. "Mid-stream" is reached by holding the step loop in a
// GatedDrafter, never by timing.
#include "verify_worker/service/verify_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/engine/model/generate.h"
#include "tests/fakes/fake_drafters.h"
#include "tests/verify_worker/service/verify_service_test_util.h"
#include "verify_worker/scheduler/step_scheduler.h"

namespace dspark::verify::testing {
namespace {

using internal::v1::SessionRequest;

constexpr absl::Duration kWait = absl::Seconds(60);

engine::Model* Tiny() {
  static engine::Model* model = [] {
    auto m = engine::Model::Load(
        std::string(DSPARK_SOURCE_DIR) + "/tests/common/engine/model/testdata/tiny/llama",
        {.threads = 1});
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? m->release() : nullptr;
  }();
  return model;
}

std::vector<int32_t> Prompt(int length, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(length);
  for (int32_t& t : p) t = 3 + static_cast<int32_t>(rng() % 250);
  return p;
}

// Plain greedy decoding: what every session must stream.
std::vector<int32_t> Reference(const std::vector<int32_t>& prompt, int max_tokens,
                               std::vector<int32_t> stop_ids = {}) {
  auto cache = Tiny()->NewKvCache({.max_tokens = 1024});
  auto r = engine::Generate(*Tiny(), *cache, prompt,
                            {.max_tokens = max_tokens, .stop_ids = std::move(stop_ids)});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->tokens : std::vector<int32_t>{};
}

// A worker on the tiny model: `kind` "oracle" (drafts always accepted) or
// "random" (mostly rejected), behind a gate; fixed verify length 4.
class Worker {
 public:
  explicit Worker(const std::string& kind, VerifyServiceOptions options = {},
                  spec::SpecEngineOptions engine = {}) {
    if (kind == "oracle") {
      inner_ = std::make_unique<dspark::testing::OracleFakeDrafter>(Tiny(), 5);
    } else {
      inner_ = std::make_unique<dspark::testing::RandomFakeDrafter>(256, 5, 7);
    }
    gate_ = std::make_unique<GatedDrafter>(inner_.get());
    auto sched = scheduler::MakeStepScheduler({.kind = "fixed", .fixed_length = 4});
    EXPECT_TRUE(sched.ok());
    scheduler_ = std::move(*sched);
    cache_ = Tiny()->NewKvCache({.max_tokens = 4096});
    engine.max_batch_tokens = 128;
    engine.prefill_chunk = 32;
    harness_ = std::make_unique<ServiceHarness>(EngineParts{.model = Tiny(),
                                                            .cache = cache_.get(),
                                                            .drafter = gate_.get(),
                                                            .scheduler = scheduler_.get(),
                                                            .engine = engine},
                                                std::move(options));
  }
  ~Worker() {
    gate_->Release();
    harness_.reset();
  }

  ServiceHarness& h() { return *harness_; }
  GatedDrafter& gate() { return *gate_; }
  engine::KvCache& cache() { return *cache_; }

 private:
  std::unique_ptr<drafter::Drafter> inner_;
  std::unique_ptr<GatedDrafter> gate_;
  std::unique_ptr<scheduler::StepScheduler> scheduler_;
  std::unique_ptr<engine::KvCache> cache_;
  std::unique_ptr<ServiceHarness> harness_;
};

struct Case {
  std::vector<int32_t> prompt;
  int max_tokens;
  std::vector<int32_t> expected;
};

std::vector<Case> Cases(int n) {
  std::vector<Case> cases;
  for (int i = 0; i < n; ++i) {
    Case c{.prompt = Prompt(1 + 13 * i % 70, 100 + i), .max_tokens = 8 + 11 * i % 40};
    c.expected = Reference(c.prompt, c.max_tokens);
    cases.push_back(std::move(c));
  }
  return cases;
}

// Runs every case on its own thread at once; checks each output.
void RunConcurrently(ServiceHarness& h, const std::vector<Case>& cases,
                     const std::function<void(SessionRequest&)>& adjust = {}) {
  std::vector<SessionResult> results(cases.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < cases.size(); ++i) {
    threads.emplace_back([&, i] {
      SessionRequest r = Request(cases[i].prompt, cases[i].max_tokens);
      if (adjust) adjust(r);
      results[i] = h.Run(r);
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < cases.size(); ++i) {
    const SessionResult& r = results[i];
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.error_message();
    EXPECT_EQ(r.tokens, cases[i].expected) << "case " << i;
    EXPECT_EQ(r.last.finish(), internal::v1::SESSION_FINISH_LENGTH) << i;
    EXPECT_EQ(r.last.completion_tokens(), static_cast<int>(r.tokens.size())) << i;
    EXPECT_EQ(r.last.prompt_tokens(), static_cast<int>(cases[i].prompt.size())) << i;
  }
}

class GreedyTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GreedyTest, OutputsEqualGenerateAtConcurrency) {
  ASSERT_NE(Tiny(), nullptr);
  const std::vector<Case> cases = Cases(10);
  Worker w(GetParam(), {}, {.max_running = 4});  // some wait for a slot
  RunConcurrently(w.h(), cases);
  ASSERT_TRUE(w.h().service().WaitIdle(absl::Now() + kWait));
  const internal::v1::WorkerLoad load = w.h().Load();
  EXPECT_EQ(load.running_sessions(), 0);
  EXPECT_EQ(load.waiting_sessions(), 0);
  EXPECT_EQ(load.kv_blocks_used(), 0);
  EXPECT_EQ(load.kv_blocks_total(), w.cache().num_blocks());
  EXPECT_GT(load.step_time_seconds(), 0);
  EXPECT_GE(load.batch_tokens_per_step(), 1);
  if (GetParam() == "oracle") {
    EXPECT_DOUBLE_EQ(load.acceptance_rate(), 1.0);
  }
  EXPECT_FALSE(load.draining());
}

TEST_P(GreedyTest, StopIdsAndSpeculationCapsKeepTheOutput) {
  ASSERT_NE(Tiny(), nullptr);
  const std::vector<int32_t> prompt = Prompt(20, 5);
  const std::vector<int32_t> full = Reference(prompt, 40);
  ASSERT_EQ(full.size(), 40u);
  const int32_t stop = full[17];
  const std::vector<int32_t> stopped = Reference(prompt, 40, {stop});
  Worker w(GetParam());
  SessionRequest r = Request(prompt, 40);
  r.add_stop_token_ids(stop);
  r.set_max_block(2);
  r.set_min_confidence(0.25f);
  SessionResult out = w.h().Run(r);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.tokens, stopped);
  EXPECT_EQ(out.last.finish(), internal::v1::SESSION_FINISH_STOP);
  // Per session speculation off: nothing drafted.
  r = Request(prompt, 40);
  r.set_speculation_enabled(false);
  out = w.h().Run(r);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.tokens, full);
  EXPECT_EQ(out.last.drafted_tokens(), 0);
  EXPECT_EQ(out.last.target_steps(), 40);
}

INSTANTIATE_TEST_SUITE_P(Drafters, GreedyTest, ::testing::Values("oracle", "random"));

// ---------------------------------------------------------------------------
// Cancellation: the client's, and a passed deadline.

TEST(VerifyServiceTest, ClientCancelMidStreamFreesKv) {
  ASSERT_NE(Tiny(), nullptr);
  Worker w("random");
  ASSERT_EQ(w.h().Load().kv_blocks_used(), 0);
  w.gate().Hold();
  grpc::ClientContext context;
  auto reader = w.h().stub().Generate(&context, Request(Prompt(40, 1), 200));
  internal::v1::SessionEvent first;
  ASSERT_TRUE(reader->Read(&first));  // the prefill step's token
  EXPECT_EQ(first.token_ids_size(), 1);
  ASSERT_TRUE(w.gate().WaitHeld(absl::Now() + kWait));  // mid-stream: held in the next step
  internal::v1::WorkerLoad load = w.h().Load();
  EXPECT_EQ(load.running_sessions(), 1);
  EXPECT_GT(load.kv_blocks_used(), 0);
  context.TryCancel();
  // The cancel is in the loop's inbox before the held step ends, so the
  // session ends at the next step, 198 tokens short of its length.
  ASSERT_TRUE(w.h().service().WaitClientCancels(1, absl::Now() + kWait));
  w.gate().Release();
  internal::v1::SessionEvent e;
  int more = 0;
  while (reader->Read(&e)) ++more;
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(w.h().service().WaitIdle(absl::Now() + kWait));
  load = w.h().Load();
  EXPECT_EQ(load.running_sessions(), 0);
  EXPECT_EQ(load.kv_blocks_used(), 0);
  EXPECT_EQ(more, 0);
  // Only the held step drafted: the next one took the cancel first.
  // Finishing would have taken ~198 more.
  EXPECT_EQ(w.gate().drafts(), 1);
}

TEST(VerifyServiceTest, DeadlineMidStreamFreesKv) {
  ASSERT_NE(Tiny(), nullptr);
  // No prefix cache: then the cache itself must be empty afterwards.
  Worker w("oracle", {}, {.prefix_cache_entries = 0});
  w.gate().Hold();
  SessionResult r;
  std::thread client([&] { r = w.h().Run(Request(Prompt(30, 2), 200), absl::Seconds(1)); });
  ASSERT_TRUE(w.gate().WaitHeld(absl::Now() + kWait));
  ASSERT_TRUE(w.h().service().WaitClientCancels(1, absl::Now() + kWait));
  w.gate().Release();
  client.join();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(w.h().service().WaitIdle(absl::Now() + kWait));
  EXPECT_EQ(w.h().Load().kv_blocks_used(), 0);
  EXPECT_EQ(w.cache().free_blocks(), w.cache().num_blocks());
  EXPECT_EQ(w.cache().num_sequences(), 0);
}

// ---------------------------------------------------------------------------
// Bad input: refused at once (the step loop is held throughout), with the
// engine's reason, while a canary in flight completes unharmed.

TEST(VerifyServiceTest, BadRequestsAreInvalidArgumentWhileCanaryCompletes) {
  ASSERT_NE(Tiny(), nullptr);
  const std::vector<int32_t> canary_prompt = Prompt(25, 3);
  const std::vector<int32_t> expected = Reference(canary_prompt, 60);
  Worker w("oracle");
  w.gate().Hold();
  SessionResult canary;
  std::thread client([&] { canary = w.h().Run(Request(canary_prompt, 60)); });
  ASSERT_TRUE(w.gate().WaitHeld(absl::Now() + kWait));

  struct Bad {
    std::string name;
    SessionRequest request;
    std::string reason;  // a part of the message
  };
  std::vector<Bad> bad;
  bad.push_back({"empty prompt", Request({}, 10), "empty prompt"});
  bad.push_back({"token outside vocab", Request({5, 256, 7}, 10), "outside the vocabulary"});
  bad.push_back({"negative token", Request({5, -1}, 10), "outside the vocabulary"});
  bad.push_back({"max_tokens 0", Request({5, 6}, 0), "max_tokens"});
  bad.push_back({"max_tokens -3", Request({5, 6}, -3), "max_tokens"});
  bad.push_back({"prompt too long", Request(Prompt(250, 4), 10), "context length"});
  SessionRequest r = Request({5, 6}, 10);
  r.mutable_sampling()->set_top_p(0.0f);
  bad.push_back({"top_p 0", r, "top_p"});
  r = Request({5, 6}, 10);
  r.mutable_sampling()->set_temperature(-1.0f);
  bad.push_back({"temperature < 0", r, "temperature"});
  r = Request({5, 6}, 10);
  r.set_max_block(-2);
  bad.push_back({"max_block < 0", r, "max_block"});
  r = Request({5, 6}, 10);
  r.set_min_confidence(1.5f);
  bad.push_back({"min_confidence > 1", r, "min_confidence"});
  r = Request({5, 6}, 10);
  r.add_stop_strings("x");  // the tiny model has no tokenizer
  bad.push_back({"stop string without tokenizer", r, "tokenizer"});
  for (const Bad& b : bad) {
    const SessionResult out = w.h().Run(b.request, absl::Seconds(30));
    EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << b.name;
    EXPECT_NE(out.status.error_message().find(b.reason), std::string::npos)
        << b.name << ": " << out.status.error_message();
    EXPECT_EQ(out.events, 0) << b.name;
  }
  EXPECT_EQ(w.h().Load().running_sessions(), 1);  // the canary only
  w.gate().Release();
  client.join();
  ASSERT_TRUE(canary.status.ok()) << canary.status.error_message();
  EXPECT_EQ(canary.tokens, expected);
  ASSERT_TRUE(w.h().service().WaitIdle(absl::Now() + kWait));
  EXPECT_EQ(w.h().Load().kv_blocks_used(), 0);
}

// ---------------------------------------------------------------------------
// Policy.

TEST(VerifyServiceTest, SpeculationOffPolicyKeepsOutputsAndOlderVersionsAreIgnored) {
  ASSERT_NE(Tiny(), nullptr);
  const std::vector<Case> cases = Cases(6);
  Worker w("random");
  auto set = [&](bool speculate, uint64_t version) {
    grpc::ClientContext context;
    internal::v1::SetPolicyRequest request;
    request.mutable_policy()->set_speculation_enabled(speculate);
    request.mutable_policy()->set_version(version);
    request.mutable_policy()->set_reason("test");
    internal::v1::SetPolicyResponse response;
    EXPECT_TRUE(w.h().stub().SetPolicy(&context, request, &response).ok());
    return response.policy();
  };
  internal::v1::Policy p = set(false, 3);
  EXPECT_FALSE(p.speculation_enabled());
  EXPECT_EQ(p.version(), 3u);
  p = set(true, 2);  // older: ignored
  EXPECT_FALSE(p.speculation_enabled());
  EXPECT_EQ(p.version(), 3u);
  EXPECT_FALSE(w.h().Load().policy().speculation_enabled());
  RunConcurrently(w.h(), cases);
  // Nothing was drafted under the policy.
  const SessionResult one = w.h().Run(Request(cases[2].prompt, cases[2].max_tokens));
  ASSERT_TRUE(one.status.ok());
  EXPECT_EQ(one.tokens, cases[2].expected);
  EXPECT_EQ(one.last.drafted_tokens(), 0);
  EXPECT_EQ(one.last.target_steps(), cases[2].max_tokens);
  // Tight caps: still the same output, verified tokens bounded.
  grpc::ClientContext context;
  internal::v1::SetPolicyRequest request;
  request.mutable_policy()->set_speculation_enabled(true);
  request.mutable_policy()->set_max_block(1);
  request.mutable_policy()->set_max_verify_tokens_per_step(1);
  request.mutable_policy()->set_version(4);
  internal::v1::SetPolicyResponse response;
  ASSERT_TRUE(w.h().stub().SetPolicy(&context, request, &response).ok());
  EXPECT_EQ(response.policy().version(), 4u);
  const SessionResult capped = w.h().Run(Request(cases[2].prompt, cases[2].max_tokens));
  ASSERT_TRUE(capped.status.ok());
  EXPECT_EQ(capped.tokens, cases[2].expected);
  EXPECT_GT(capped.last.drafted_tokens(), 0);
  EXPECT_LE(capped.last.verified_tokens(), capped.last.target_steps());
}

// ---------------------------------------------------------------------------
// Drain: sessions in flight finish, new ones are refused.

TEST(VerifyServiceTest, DrainFinishesInFlightAndRefusesNew) {
  ASSERT_NE(Tiny(), nullptr);
  const std::vector<Case> cases = Cases(3);
  Worker w("oracle");
  w.gate().Hold();
  std::vector<SessionResult> results(cases.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < cases.size(); ++i) {
    threads.emplace_back(
        [&, i] { results[i] = w.h().Run(Request(cases[i].prompt, cases[i].max_tokens)); });
  }
  ASSERT_TRUE(w.gate().WaitHeld(absl::Now() + kWait));
  ASSERT_TRUE(w.h().service().WaitSessions(3, absl::Now() + kWait));  // all 3 admitted
  w.h().service().StartDrain();
  const SessionResult refused = w.h().Run(Request(cases[0].prompt, 5));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(refused.status.error_message(), "draining");
  EXPECT_TRUE(w.h().Load().draining());
  w.gate().Release();
  EXPECT_TRUE(w.h().service().WaitIdle(absl::Now() + kWait));
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.error_message();
    EXPECT_EQ(results[i].tokens, cases[i].expected) << i;
  }
  w.h().server().Drain(absl::Seconds(5));
}

// The routing drafter's seam: each session's draft worker address reaches
// the assign hook with the engine's id before the session drafts, and a
// cancelled session reaches the cancelled hook.
TEST(VerifyServiceTest, DraftWorkerAddressesReachTheHooks) {
  ASSERT_NE(Tiny(), nullptr);
  absl::Mutex mu;
  std::vector<std::pair<spec::RequestId, std::string>> assigned;
  std::vector<spec::RequestId> cancelled;
  VerifyServiceOptions options;
  options.loop.assign = [&](spec::RequestId id, const std::string& address) {
    absl::MutexLock lock(&mu);
    assigned.push_back({id, address});
  };
  options.loop.cancelled = [&](spec::RequestId id) {
    absl::MutexLock lock(&mu);
    cancelled.push_back(id);
  };
  Worker w("oracle", std::move(options));
  SessionRequest r = Request(Prompt(12, 8), 6);
  r.set_draft_worker("10.0.0.7:7001");
  ASSERT_TRUE(w.h().Run(r).status.ok());
  ASSERT_TRUE(w.h().Run(Request(Prompt(12, 9), 6)).status.ok());
  w.gate().Hold();
  grpc::ClientContext context;
  r.set_max_tokens(100);
  auto reader = w.h().stub().Generate(&context, r);
  ASSERT_TRUE(w.gate().WaitHeld(absl::Now() + kWait));
  context.TryCancel();
  ASSERT_TRUE(w.h().service().WaitClientCancels(1, absl::Now() + kWait));
  w.gate().Release();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(w.h().service().WaitIdle(absl::Now() + kWait));
  absl::MutexLock lock(&mu);
  ASSERT_EQ(assigned.size(), 3u);
  EXPECT_EQ(assigned[0].second, "10.0.0.7:7001");
  EXPECT_EQ(assigned[1].second, "");
  EXPECT_EQ(assigned[2].second, "10.0.0.7:7001");
  EXPECT_NE(assigned[0].first, assigned[1].first);
  EXPECT_EQ(cancelled, std::vector<spec::RequestId>{assigned[2].first});
}

// ReassignDrafts reaches the reassign hook on the step loop's thread (where
// the assign hook runs) and answers with its counts; without a hook it
// moves nothing; after Stop it is UNAVAILABLE.
TEST(VerifyServiceTest, ReassignDraftsRunsTheHookOnTheStepLoop) {
  ASSERT_NE(Tiny(), nullptr);
  absl::Mutex mu;
  std::thread::id assign_thread, reassign_thread;
  std::vector<std::pair<std::string, std::string>> moves;
  VerifyServiceOptions options;
  options.loop.assign = [&](spec::RequestId, const std::string&) {
    absl::MutexLock lock(&mu);
    assign_thread = std::this_thread::get_id();
  };
  options.loop.reassign = [&](const std::string& from, const std::string& to) {
    absl::MutexLock lock(&mu);
    reassign_thread = std::this_thread::get_id();
    moves.push_back({from, to});
    return DraftMoves{.reattached = 3, .detached = 1};
  };
  Worker w("oracle", std::move(options));
  SessionRequest r = Request(Prompt(12, 8), 6);
  r.set_draft_worker("10.0.0.7:7001");
  ASSERT_TRUE(w.h().Run(r).status.ok());
  auto reassign = [&](Worker& worker, grpc::Status* status) {
    grpc::ClientContext context;
    internal::v1::ReassignDraftsRequest request;
    request.set_from_address("10.0.0.7:7001");
    request.set_to_address("10.0.0.8:7001");
    internal::v1::ReassignDraftsResponse response;
    *status = worker.h().stub().ReassignDrafts(&context, request, &response);
    return response;
  };
  grpc::Status status;
  internal::v1::ReassignDraftsResponse response = reassign(w, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.reattached_sessions(), 3);
  EXPECT_EQ(response.detached_sessions(), 1);
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(moves.size(), 1u);
    EXPECT_EQ(moves[0], std::make_pair(std::string("10.0.0.7:7001"), std::string("10.0.0.8:7001")));
    EXPECT_EQ(reassign_thread, assign_thread);
    EXPECT_NE(reassign_thread, std::this_thread::get_id());
  }
  w.h().service().Stop();
  reassign(w, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();

  Worker plain("oracle");
  response = reassign(plain, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.reattached_sessions(), 0);
  EXPECT_EQ(response.detached_sessions(), 0);
}

TEST(VerifyServiceTest, AfterStopSessionsAreUnavailable) {
  ASSERT_NE(Tiny(), nullptr);
  Worker w("oracle");
  w.h().service().Stop();
  const SessionResult r = w.h().Run(Request(Prompt(10, 9), 10));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  EXPECT_EQ(r.events, 0);
}

}  // namespace
}  // namespace dspark::verify::testing
