// SpecEngine is lossless under greedy decoding on the default model
// (SmolLM2-135M): for every drafter (random, always wrong, oracle, n-gram,
// self-draft, a random-weight DSpark drafter), verify lengths 1..7 and the
// confidence scheduler, batches of 1, 4 and 16 requests with prompts of 5 to
// 300 tokens (chunked prefill sharing forwards with decoding), every request's
// tokens equal engine::Generate's for its prompt alone, bit for bit. Also:
// continuous batching (requests joining mid-flight), Cancel, prefix sharing,
// stop ids / max_tokens / stop strings hit in the middle of a drafted block,
// and bad input to Add. Skips when the model is not pulled.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/engine/model/generate.h"
#include "tests/verify_worker/spec_engine/spec_engine_test_util.h"
#include "verify_worker/scheduler/step_scheduler.h"
#include "verify_worker/spec_engine/spec_engine.h"

namespace dspark::spec::testing {
namespace {

// Engine settings that make prefill chunking and the token budget matter:
// a 190-token prompt takes 6 chunks, and 16 decoding requests verifying 7
// drafts each (128 tokens) hit the budget, which then shortens their blocks.
constexpr SpecEngineOptions kEngineOptions{
    .max_batch_tokens = 128, .prefill_chunk = 32, .max_running = 64, .prefix_cache_entries = 0};

// The mixed prompt lengths of the 16-request batch; batches of 4 take the
// first four, batches of 1 the second (the longest). Kept short: on two
// cores every prompt token is paid once per run, and there are 78 runs.
constexpr int kPromptLengths[16] = {5, 190, 17, 70, 64, 65, 9, 100, 33, 24, 11, 12, 28, 48, 80, 7};

struct Case {
  std::vector<int32_t> prompt;
  int max_tokens = 0;
  std::vector<int32_t> reference;  // engine::Generate, greedy
};

// A slice of the corpus, starting at a different place for each index.
std::vector<int32_t> Prompt(const SharedModel& m, int index, int length) {
  const int n = static_cast<int>(m.corpus.size());
  const int begin = (index * 97) % (n - length);
  return std::vector<int32_t>(m.corpus.begin() + begin, m.corpus.begin() + begin + length);
}

// The 16 cases with their references, computed once.
const std::vector<Case>& Cases() {
  static std::vector<Case>* cases = [] {
    SharedModel& m = *SharedModel::Get();
    auto* c = new std::vector<Case>;
    for (int i = 0; i < 16; ++i) {
      Case k{.prompt = Prompt(m, i, kPromptLengths[i]), .max_tokens = 20 + (i * 7) % 13};
      k.reference = Reference(m, k.prompt, k.max_tokens, m.tokenizer->eos_ids());
      c->push_back(std::move(k));
    }
    return c;
  }();
  return *cases;
}

struct RunConfig {
  std::string scheduler;  // "fixed" or "confidence"
  int verify_len = 0;     // fixed
  int batch = 1;
};

std::string Name(const RunConfig& r) {
  return r.scheduler == "fixed" ? absl::StrCat("fixed-", r.verify_len, " x", r.batch)
                                : absl::StrCat("confidence x", r.batch);
}

class LosslessGreedyTest : public ::testing::TestWithParam<std::string> {};

// The must-show matrix: every drafter, verify lengths 1..7 at batch 4, lengths
// 2 and 7 and the confidence scheduler at batches 1 and 16.
TEST_P(LosslessGreedyTest, EqualsTargetOnlyDecoding) {
  SKIP_WITHOUT_MODEL();
  const std::string kind = GetParam();
  const std::vector<Case>& cases = Cases();
  const std::vector<int32_t>& eos = m->tokenizer->eos_ids();
  if (kind == "wrong") {
    for (const Case& c : cases) {
      ASSERT_EQ(std::count(c.reference.begin(), c.reference.end(), kNeverEmittedToken), 0)
          << "the always-wrong drafter's token appears in a reference; pick another";
    }
  }
  std::vector<RunConfig> runs;
  for (int l = 1; l <= 7; ++l) runs.push_back({"fixed", l, 4});
  for (int batch : {1, 16}) {
    runs.push_back({"fixed", 2, batch});
    runs.push_back({"fixed", 7, batch});
    runs.push_back({"confidence", 0, batch});
  }
  SpecCounters all;
  std::string per_run;
  for (const RunConfig& run : runs) {
    SCOPED_TRACE(absl::StrCat(kind, " ", Name(run)));
    std::string skip;
    auto drafter = MakeTestDrafter(kind, m->model.get(), &skip);
    ASSERT_TRUE(drafter.ok()) << drafter.status();
    if (*drafter == nullptr) GTEST_SKIP() << "drafter " << kind << " unavailable: " << skip;
    auto sched = scheduler::MakeStepScheduler({.kind = run.scheduler,
                                               .cost_table = SyntheticCostTable(),
                                               .fixed_length = run.verify_len});
    ASSERT_TRUE(sched.ok()) << sched.status();
    auto cache = m->model->NewKvCache({.max_tokens = 8192});
    const int64_t free_at_start = cache->free_blocks();
    SpecEngine engine(m->model.get(), cache.get(), drafter->get(), sched->get(), nullptr,
                      kEngineOptions);
    // Batch 1 runs the 300-token prompt; the others the first `batch` cases.
    std::vector<int> picked;
    for (int i = 0; i < run.batch; ++i) picked.push_back(run.batch == 1 ? 1 : i);
    std::map<RequestId, int> which;
    for (int i : picked) {
      SpecRequest req{
          .prompt = cases[i].prompt, .max_tokens = cases[i].max_tokens, .stop_ids = eos};
      // The confidence runs also mix per-request settings.
      if (run.scheduler == "confidence" && run.batch > 1) {
        if (i % 4 == 1) req.speculation.max_block = 3;
        if (i % 4 == 2) req.speculation.min_confidence = 0.3f;
        if (i % 4 == 3) req.speculation.enabled = false;
      }
      auto id = engine.Add(std::move(req));
      ASSERT_TRUE(id.ok()) << id.status();
      which[*id] = i;
    }
    absl::flat_hash_map<RequestId, Outcome> out;
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(RunToIdle(engine, &out), absl::OkStatus());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    SpecCounters run_counters;
    for (const auto& [id, i] : which) {
      const Outcome& o = out[id];
      const Case& c = cases[i];
      EXPECT_EQ(o.tokens, c.reference) << "request " << id << ": prompt of " << c.prompt.size()
                                       << " tokens, max_tokens " << c.max_tokens;
      EXPECT_EQ(o.finish_events, 1);
      const bool stopped =
          !c.reference.empty() && std::count(eos.begin(), eos.end(), c.reference.back()) > 0;
      EXPECT_EQ(o.finish, stopped ? FinishReason::kStop : FinishReason::kLength);
      EXPECT_EQ(o.counters.generated_tokens, static_cast<int64_t>(o.tokens.size()));
      EXPECT_LE(o.counters.accepted_tokens, o.counters.verified_tokens);
      EXPECT_LE(o.counters.verified_tokens, o.counters.drafted_tokens);
      run_counters.Add(o.counters);
    }
    EXPECT_EQ(cache->free_blocks(), free_at_start) << "KV blocks leaked";
    if (run.scheduler == "fixed") {
      // The fixed scheduler never verifies more than its length per step.
      EXPECT_LE(run_counters.verified_tokens, run.verify_len * run_counters.decode_steps);
      for (int p = run.verify_len; p < SpecCounters::kMaxPositions; ++p) {
        EXPECT_EQ(run_counters.verified_at[p], 0) << "position " << p;
      }
    }
    EXPECT_GT(run_counters.verified_tokens, 0) << "nothing was verified: the run tested nothing";
    if (kind == "wrong") {
      EXPECT_EQ(run_counters.accepted_tokens, 0);
    }
    if (kind == "oracle") {
      // Greedy drafts of the target itself: every verified token is the
      // target's argmax (batch-invariant numerics make this exact).
      EXPECT_EQ(run_counters.accepted_tokens, run_counters.verified_tokens);
    }
    all.Add(run_counters);
    absl::StrAppend(&per_run, " ", Name(run), "=", run_counters.accepted_tokens, "/",
                    run_counters.verified_tokens, "(", absl::StrFormat("%.1fs", seconds), ")");
  }
  std::printf("[lossless] drafter %-11s accepted/verified %lld/%lld (%.1f%%) over %zu runs:%s\n",
              kind.c_str(), static_cast<long long>(all.accepted_tokens),
              static_cast<long long>(all.verified_tokens),
              100.0 * all.accepted_tokens / std::max<int64_t>(1, all.verified_tokens), runs.size(),
              per_run.c_str());
}

INSTANTIATE_TEST_SUITE_P(Drafters, LosslessGreedyTest,
                         ::testing::Values("random", "wrong", "oracle", "ngram", "draft-model",
                                           "dspark", "dspark+ngram"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           std::replace(n.begin(), n.end(), '+', '_');
                           return n;
                         });

}  // namespace
}  // namespace dspark::spec::testing
