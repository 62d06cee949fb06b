// VerifyService over real gRPC on the default model (SmolLM2-135M) with its
// committed DSpark drafter and tokenizer: greedy sessions at concurrency give
// engine::Generate's tokens and the in-process SpecEngine's text; stop
// strings cut the text; a cancel mid-stream frees the KV; bad requests fail
// at once while a canary completes; speculation off by policy changes
// nothing; drain finishes in-flight sessions and refuses new ones. Skips
// until `dspark pull smollm2-135m-instruct`.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "draft_worker/factory/drafter_factory.h"
#include "tests/verify_worker/service/verify_service_test_util.h"
#include "tests/verify_worker/spec_engine/spec_engine_test_util.h"
#include "verify_worker/scheduler/step_scheduler.h"
#include "verify_worker/service/verify_service.h"

namespace dspark::verify::testing {
namespace {

using internal::v1::SessionRequest;
using spec::testing::SharedModel;

constexpr absl::Duration kWait = absl::Seconds(300);

struct Case {
  std::vector<int32_t> prompt;
  int max_tokens;
  std::vector<int32_t> tokens;  // engine::Generate
  std::string text;             // the in-process SpecEngine's
};

std::unique_ptr<drafter::Drafter> CommittedDrafter(engine::Model* model) {
  auto d = drafter::MakeDrafter(
      {.kind = "dspark",
       .path = std::string(DSPARK_SOURCE_DIR) + "/models/drafters/smollm2-135m-instruct"},
      model);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

// References, computed before any worker runs (one thread uses the model at
// a time): Generate's tokens, and the text an in-process engine streams.
std::vector<Case> Cases(SharedModel& m, int n, int max_tokens) {
  std::vector<Case> cases;
  for (int i = 0; i < n; ++i) {
    Case c{.prompt = std::vector<int32_t>(m.corpus.begin() + 37 * i,
                                          m.corpus.begin() + 37 * i + 12 + 9 * i),
           .max_tokens = max_tokens};
    c.tokens = spec::testing::Reference(m, c.prompt, c.max_tokens);
    cases.push_back(std::move(c));
  }
  auto cache = m.model->NewKvCache({.max_tokens = 4096});
  spec::SpecEngine engine(m.model.get(), cache.get(), nullptr, nullptr, m.tokenizer.get(), {});
  absl::flat_hash_map<spec::RequestId, size_t> which;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto id = engine.Add({.prompt = cases[i].prompt, .max_tokens = cases[i].max_tokens});
    EXPECT_TRUE(id.ok()) << id.status();
    if (id.ok()) which[*id] = i;
  }
  absl::flat_hash_map<spec::RequestId, spec::testing::Outcome> out;
  EXPECT_TRUE(spec::testing::RunToIdle(engine, &out).ok());
  for (const auto& [id, o] : out) cases[which[id]].text = o.text;
  return cases;
}

// A worker on the shared model with the committed drafter behind a gate,
// verifying 4 drafted tokens a step (the confidence scheduler may verify
// none on a 2-core CPU, and acceptance is part of what is checked).
class Worker {
 public:
  explicit Worker(SharedModel& m, spec::SpecEngineOptions engine = {}) {
    inner_ = CommittedDrafter(m.model.get());
    gate_ = std::make_unique<GatedDrafter>(inner_.get());
    auto sched = scheduler::MakeStepScheduler({.kind = "fixed", .fixed_length = 4});
    EXPECT_TRUE(sched.ok());
    scheduler_ = std::move(*sched);
    cache_ = m.model->NewKvCache({.max_tokens = 8192});
    harness_ =
        std::make_unique<ServiceHarness>(EngineParts{.model = m.model.get(),
                                                     .cache = cache_.get(),
                                                     .drafter = gate_.get(),
                                                     .scheduler = scheduler_.get(),
                                                     .tokenizer = m.tokenizer.get(),
                                                     .engine = engine},
                                         VerifyServiceOptions{.model = "smollm2-135m-instruct"});
  }
  ~Worker() {
    gate_->Release();
    harness_.reset();
  }
  ServiceHarness& h() { return *harness_; }
  GatedDrafter& gate() { return *gate_; }

 private:
  std::unique_ptr<drafter::Drafter> inner_;
  std::unique_ptr<GatedDrafter> gate_;
  std::unique_ptr<scheduler::StepScheduler> scheduler_;
  std::unique_ptr<engine::KvCache> cache_;
  std::unique_ptr<ServiceHarness> harness_;
};

std::vector<SessionResult> RunAll(ServiceHarness& h, const std::vector<Case>& cases) {
  std::vector<SessionResult> results(cases.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < cases.size(); ++i) {
    threads.emplace_back(
        [&, i] { results[i] = h.Run(Request(cases[i].prompt, cases[i].max_tokens), kWait); });
  }
  for (std::thread& t : threads) t.join();
  return results;
}

void ExpectMatches(const std::vector<Case>& cases, const std::vector<SessionResult>& results) {
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.error_message();
    EXPECT_EQ(results[i].tokens, cases[i].tokens) << "case " << i;
    EXPECT_EQ(results[i].text, cases[i].text) << "case " << i;
    EXPECT_EQ(results[i].last.finish(), internal::v1::SESSION_FINISH_LENGTH) << i;
  }
}

TEST(VerifyServiceModelTest, GreedyAtConcurrencyEqualsGenerateThenSpeculationOffToo) {
  SKIP_WITHOUT_MODEL();
  const std::vector<Case> cases = Cases(*m, 4, 24);
  Worker w(*m);
  std::vector<SessionResult> results = RunAll(w.h(), cases);
  ExpectMatches(cases, results);
  int64_t accepted = 0;
  for (const SessionResult& r : results) accepted += r.last.accepted_tokens();
  EXPECT_GT(accepted, 0);  // the committed drafter does get tokens accepted
  ASSERT_TRUE(w.h().service().WaitIdle(absl::Now() + kWait));
  internal::v1::WorkerLoad load = w.h().Load();
  EXPECT_EQ(load.kv_blocks_used(), 0);
  EXPECT_GT(load.acceptance_rate(), 0);

  internal::v1::Policy off;
  off.set_speculation_enabled(false);
  off.set_version(1);
  EXPECT_FALSE(w.h().service().ApplyPolicy(off).speculation_enabled());
  results = RunAll(w.h(), cases);
  ExpectMatches(cases, results);
  for (const SessionResult& r : results) EXPECT_EQ(r.last.drafted_tokens(), 0);
}

TEST(VerifyServiceModelTest, StopStringCutsTheText) {
  SKIP_WITHOUT_MODEL();
  const std::vector<Case> cases = Cases(*m, 1, 24);
  const std::string& text = cases[0].text;
  ASSERT_GT(text.size(), 12u);
  const std::string stop = text.substr(text.size() / 2, 3);
  Worker w(*m);
  SessionRequest r = Request(cases[0].prompt, 24);
  r.add_stop_strings(stop);
  const SessionResult out = w.h().Run(r, kWait);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.last.finish(), internal::v1::SESSION_FINISH_STOP);
  EXPECT_EQ(out.text, text.substr(0, text.find(stop)));
}

TEST(VerifyServiceModelTest, CancelMidStreamFreesKv) {
  SKIP_WITHOUT_MODEL();
  Worker w(*m);
  w.gate().Hold();
  grpc::ClientContext context;
  const std::vector<int32_t> prompt(m->corpus.begin(), m->corpus.begin() + 60);
  auto reader = w.h().stub().Generate(&context, Request(prompt, 200));
  internal::v1::SessionEvent first;
  ASSERT_TRUE(reader->Read(&first));
  ASSERT_TRUE(w.gate().WaitHeld(absl::Now() + kWait));
  EXPECT_GT(w.h().Load().kv_blocks_used(), 0);
  context.TryCancel();
  ASSERT_TRUE(w.h().service().WaitClientCancels(1, absl::Now() + kWait));
  w.gate().Release();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(w.h().service().WaitIdle(absl::Now() + kWait));
  EXPECT_EQ(w.h().Load().kv_blocks_used(), 0);
  EXPECT_EQ(w.gate().drafts(), 1);
}

TEST(VerifyServiceModelTest, BadRequestsFailAtOnceWhileCanaryCompletes) {
  SKIP_WITHOUT_MODEL();
  const std::vector<Case> cases = Cases(*m, 1, 20);
  Worker w(*m);
  w.gate().Hold();
  SessionResult canary;
  std::thread client([&] { canary = w.h().Run(Request(cases[0].prompt, 20), kWait); });
  ASSERT_TRUE(w.gate().WaitHeld(absl::Now() + kWait));
  const int vocab = m->model->config().vocab_size;
  const int context = m->model->config().context_length;
  std::vector<SessionRequest> bad = {Request({}, 5), Request({1, vocab}, 5), Request({1, 2}, 0),
                                     Request(std::vector<int32_t>(context, 1), 5)};
  SessionRequest r = Request({1, 2}, 5);
  r.mutable_sampling()->set_top_p(1.5f);
  bad.push_back(r);
  for (const SessionRequest& b : bad) {
    const SessionResult out = w.h().Run(b, absl::Seconds(30));
    EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << out.status.error_message();
  }
  w.gate().Release();
  client.join();
  ASSERT_TRUE(canary.status.ok()) << canary.status.error_message();
  EXPECT_EQ(canary.tokens, cases[0].tokens);
}

TEST(VerifyServiceModelTest, DrainFinishesInFlightAndRefusesNew) {
  SKIP_WITHOUT_MODEL();
  const std::vector<Case> cases = Cases(*m, 2, 16);
  Worker w(*m);
  w.gate().Hold();
  std::vector<SessionResult> results;
  std::thread clients([&] { results = RunAll(w.h(), cases); });
  ASSERT_TRUE(w.h().service().WaitSessions(2, absl::Now() + kWait));
  w.h().service().StartDrain();
  const SessionResult refused = w.h().Run(Request(cases[0].prompt, 4), kWait);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  w.gate().Release();
  clients.join();
  ExpectMatches(cases, results);
}

}  // namespace
}  // namespace dspark::verify::testing
