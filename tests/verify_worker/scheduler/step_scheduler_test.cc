// StepScheduler on synthetic cost tables: a "GPU-like" T (memory bound, flat
// up to 64 tokens) and a "CPU-like" T (compute bound, a + b n with b large),
// the policy knobs, the "fixed" and "off" kinds, and an exhaustive-search
// check that the greedy allocation finds the best rate.
#include "verify_worker/scheduler/step_scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <new>
#include <random>
#include <vector>

// Counts heap allocations, to check that a steady step loop does not allocate.
// Not inlined: GCC would otherwise see free() meet a pointer from operator new
// at every call site and warn (-Wmismatched-new-delete).
static int64_t g_allocations = 0;
__attribute__((noinline)) void* operator new(size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace dspark::scheduler {
namespace {

// Points at every n up to 64 and then every 16 up to 1024, so the table
// interpolates these shapes exactly where they are linear between points.
CostTable TableOf(const std::function<double(int64_t)>& t) {
  std::vector<CostPoint> points;
  for (int64_t n = 1; n <= 1024; n += (n < 64 ? 1 : 16)) points.push_back({n, t(n)});
  auto table = CostTable::FromPoints(std::move(points));
  EXPECT_TRUE(table.ok()) << table.status();
  return *table;
}

// Memory bound: 10 ms whatever the batch up to 64 tokens, then compute bound.
double GpuLike(int64_t n) { return n <= 64 ? 0.010 + 1e-6 * n : 0.010064 + 1e-4 * (n - 64); }
// Compute bound: an 8-token forward costs 3.8x a 1-token one (the 2-core CPU).
double CpuLike(int64_t n) { return 0.003 + 0.002 * n; }

std::unique_ptr<StepScheduler> Make(const StepSchedulerOptions& options) {
  auto s = MakeStepScheduler(options);
  EXPECT_TRUE(s.ok()) << s.status();
  return std::move(*s);
}

std::vector<SequenceDraft> Drafts(const std::vector<std::vector<float>>& blocks) {
  std::vector<SequenceDraft> drafts(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) drafts[i].confidence = blocks[i];
  return drafts;
}

StepPlan Plan(StepScheduler& s, const std::vector<SequenceDraft>& drafts, int64_t base = 0) {
  StepPlan plan;
  s.Schedule({.seqs = drafts, .base_tokens = base}, &plan);
  EXPECT_EQ(plan.lengths.size(), drafts.size());
  return plan;
}

// The best rate over every allocation the policy allows, by enumeration,
// with the constraints written out independently of the scheduler.
double ExhaustiveBestRate(const std::vector<std::vector<float>>& blocks,
                          const std::vector<SequenceDraft>& drafts, int64_t base,
                          const SchedulerPolicy& policy, const CostTable& table) {
  const size_t num = blocks.size();
  std::vector<int> cap(num);
  for (size_t r = 0; r < num; ++r) {
    cap[r] = policy.speculate && drafts[r].speculate ? static_cast<int>(blocks[r].size()) : 0;
    if (drafts[r].max_block > 0) cap[r] = std::min(cap[r], drafts[r].max_block);
    if (policy.max_block > 0) cap[r] = std::min(cap[r], policy.max_block);
  }
  std::vector<int> l(num, 0);
  double best = 0;
  while (true) {
    int64_t sum = 0;
    double expected = 0;
    bool allowed = true;
    for (size_t r = 0; r < num; ++r) {
      double p = 1;
      expected += 1;
      for (int i = 0; i < l[r]; ++i) {
        p *= std::clamp(static_cast<double>(blocks[r][i]), 0.0, 1.0);
        expected += p;
      }
      if (l[r] > 0 && p < policy.min_confidence) allowed = false;
      sum += l[r];
    }
    if (policy.max_verify_tokens > 0 && sum > policy.max_verify_tokens) allowed = false;
    if (allowed) best = std::max(best, expected / table.Seconds(base + num + sum));
    size_t r = 0;
    while (r < num && l[r] == cap[r]) l[r++] = 0;
    if (r == num) break;
    ++l[r];
  }
  return best;
}

TEST(StepSchedulerTest, OneSequenceOnFlatCostVerifiesTheWholeBlock) {
  auto s = Make({.cost_table = TableOf(GpuLike)});
  const std::vector<float> block(7, 0.8f);
  StepPlan plan = Plan(*s, Drafts({block}));
  EXPECT_EQ(plan.lengths[0], 7);
  EXPECT_EQ(plan.verify_tokens, 7);
  EXPECT_EQ(plan.batch_tokens, 8);
  double e = 1, p = 1;
  for (int i = 0; i < 7; ++i) e += (p *= 0.8f);
  EXPECT_NEAR(plan.expected_tokens, e, 1e-9);
  EXPECT_DOUBLE_EQ(plan.step_seconds, GpuLike(8));
  EXPECT_DOUBLE_EQ(plan.plain_seconds, GpuLike(1));  // the step verifying nothing
  EXPECT_NEAR(plan.tokens_per_second, e / GpuLike(8), 1e-6);
}

TEST(StepSchedulerTest, MoreSequencesOnCpuCostVerifyLess) {
  // Each drafted token costs 2 ms whoever it belongs to, while the tokens
  // per second without speculation grow with the batch: the bar a drafted
  // token must clear rises. Per sequence the length only falls; the total
  // first grows (more first positions to take) and then falls to zero.
  auto s = Make({.cost_table = TableOf(CpuLike)});
  const std::vector<float> block(7, 0.9f);
  const std::vector<int> sizes = {1, 2, 4, 8, 16, 32, 64};
  std::vector<double> per_seq;
  std::vector<int64_t> totals;
  for (int num : sizes) {
    const std::vector<std::vector<float>> blocks(num, block);
    StepPlan plan = Plan(*s, Drafts(blocks));
    totals.push_back(plan.verify_tokens);
    per_seq.push_back(static_cast<double>(plan.verify_tokens) / num);
    // Identical drafts get lengths within one token of each other.
    auto [lo, hi] = std::minmax_element(plan.lengths.begin(), plan.lengths.end());
    EXPECT_LE(*hi - *lo, 1) << num << " sequences";
  }
  for (size_t i = 1; i < sizes.size(); ++i) {
    EXPECT_LE(per_seq[i], per_seq[i - 1]) << sizes[i] << " sequences";
  }
  // Worked out apart from the scheduler (all gains sorted, every k tried) for
  // T = 3 ms + 2 ms/token and c = 0.9.
  EXPECT_EQ(totals, (std::vector<int64_t>{4, 6, 8, 8, 0, 0, 0}));
}

TEST(StepSchedulerTest, ManySequencesOnFlatCostStillVerifyLongBlocks) {
  // 8 x (1 + 7) = 64 tokens still fit the flat region: speculation is free.
  auto s = Make({.cost_table = TableOf(GpuLike)});
  const std::vector<std::vector<float>> blocks(8, std::vector<float>(7, 0.8f));
  StepPlan plan = Plan(*s, Drafts(blocks));
  for (int l : plan.lengths) EXPECT_EQ(l, 7);
}

TEST(StepSchedulerTest, LowConfidenceOnSteepCostVerifiesNothing) {
  auto s = Make({.cost_table = TableOf(CpuLike)});
  StepPlan plan = Plan(*s, Drafts({std::vector<float>(7, 0.1f), std::vector<float>(7, 0.1f)}));
  EXPECT_EQ(plan.lengths, (std::vector<int>{0, 0}));
  EXPECT_EQ(plan.batch_tokens, 2);
  EXPECT_DOUBLE_EQ(plan.expected_tokens, 2);
}

TEST(StepSchedulerTest, PrefillTokensInTheBatchAreCounted) {
  // Flat to 64, then 5 ms per token: with 64 prefill tokens already in the
  // step every drafted token is expensive.
  auto steep_after_64 = [](int64_t n) { return n <= 64 ? 0.010 : 0.010 + 0.005 * (n - 64); };
  const CostTable table = TableOf(steep_after_64);
  auto s = Make({.cost_table = table});
  const std::vector<std::vector<float>> blocks = {std::vector<float>(7, 0.8f)};
  const std::vector<SequenceDraft> drafts = Drafts(blocks);
  EXPECT_EQ(Plan(*s, drafts, 0).lengths[0], 7);
  StepPlan plan = Plan(*s, drafts, 64);
  EXPECT_GT(plan.lengths[0], 0);
  EXPECT_LT(plan.lengths[0], 7);
  EXPECT_EQ(plan.batch_tokens, 64 + 1 + plan.lengths[0]);
  EXPECT_NEAR(plan.tokens_per_second, ExhaustiveBestRate(blocks, drafts, 64, {}, table), 1e-9);
}

TEST(StepSchedulerTest, MinConfidenceCutsTheBlock) {
  // Cumulative 0.9, 0.81, 0.729, 0.6561, 0.59049, ...: only the first four
  // reach 0.6, though flat T would verify all seven.
  auto s = Make({.cost_table = TableOf(GpuLike), .policy = {.min_confidence = 0.6}});
  const std::vector<float> block(7, 0.9f);
  EXPECT_EQ(Plan(*s, Drafts({block})).lengths[0], 4);
  s->SetPolicy({.min_confidence = 0.95});
  EXPECT_EQ(Plan(*s, Drafts({block})).lengths[0], 0);
  s->SetPolicy({});
  EXPECT_EQ(Plan(*s, Drafts({block})).lengths[0], 7);
}

TEST(StepSchedulerTest, MaxVerifyTokensCapsTheStep) {
  auto s = Make({.cost_table = TableOf(GpuLike), .policy = {.max_verify_tokens = 10}});
  const std::vector<std::vector<float>> blocks(4, std::vector<float>(7, 0.9f));
  StepPlan plan = Plan(*s, Drafts(blocks));
  // The 10 largest gains: every first (0.9) and second (0.81) position, then
  // two third ones (ties go to the earlier sequence).
  EXPECT_EQ(plan.lengths, (std::vector<int>{3, 3, 2, 2}));
  EXPECT_EQ(plan.verify_tokens, 10);
}

TEST(StepSchedulerTest, BudgetGoesToTheMostConfidentDrafts) {
  auto s = Make({.cost_table = TableOf(GpuLike), .policy = {.max_verify_tokens = 4}});
  StepPlan plan = Plan(*s, Drafts({std::vector<float>(7, 0.5f), std::vector<float>(7, 0.95f)}));
  EXPECT_EQ(plan.lengths, (std::vector<int>{0, 4}));
}

TEST(StepSchedulerTest, PerRequestSwitchAndCap) {
  auto s = Make({.cost_table = TableOf(GpuLike)});
  const std::vector<float> block(7, 0.9f);
  std::vector<SequenceDraft> drafts = {{.confidence = block},
                                       {.confidence = block, .speculate = false},
                                       {.confidence = block, .max_block = 2}};
  StepPlan plan = Plan(*s, drafts);
  EXPECT_EQ(plan.lengths, (std::vector<int>{7, 0, 2}));
  EXPECT_EQ(plan.batch_tokens, 3 + 9);
}

TEST(StepSchedulerTest, PolicySwitchAndBlockCap) {
  auto s = Make({.cost_table = TableOf(GpuLike), .policy = {.max_block = 3}});
  const std::vector<float> block(7, 0.9f);
  EXPECT_EQ(Plan(*s, Drafts({block, block})).lengths, (std::vector<int>{3, 3}));
  s->SetPolicy({.speculate = false});
  EXPECT_FALSE(s->policy().speculate);
  EXPECT_EQ(Plan(*s, Drafts({block, block})).lengths, (std::vector<int>{0, 0}));
}

TEST(StepSchedulerTest, BadConfidencesAreClamped) {
  auto s = Make({.cost_table = TableOf(GpuLike)});
  // 1.5 counts as 1, NaN as 0 (ends the block), negative as 0.
  const std::vector<float> a = {1.5f, 1.0f, std::nanf(""), 0.9f};
  const std::vector<float> b = {-0.3f, 0.9f};
  StepPlan plan = Plan(*s, Drafts({a, b}));
  EXPECT_EQ(plan.lengths, (std::vector<int>{2, 0}));
  EXPECT_DOUBLE_EQ(plan.expected_tokens, 2 + 2);
}

TEST(StepSchedulerTest, EmptyStep) {
  auto s = Make({.cost_table = TableOf(CpuLike)});
  StepPlan plan = Plan(*s, {}, 5);
  EXPECT_TRUE(plan.lengths.empty());
  EXPECT_EQ(plan.batch_tokens, 5);
  EXPECT_EQ(plan.expected_tokens, 0);
}

TEST(StepSchedulerTest, FixedKind) {
  auto s = Make({.kind = "fixed", .fixed_length = 3});
  EXPECT_EQ(s->kind(), "fixed");
  const std::vector<float> low(7, 0.01f), short_block(2, 0.9f);
  std::vector<SequenceDraft> drafts = {{.confidence = low},
                                       {.confidence = short_block},
                                       {.confidence = low, .speculate = false},
                                       {.confidence = low, .max_block = 1}};
  StepPlan plan = Plan(*s, drafts);
  // Confidence-blind: 0.01 still gets 3.
  EXPECT_EQ(plan.lengths, (std::vector<int>{3, 2, 0, 1}));
  EXPECT_EQ(plan.step_seconds, 0);  // no cost table given
  // A budget is shared level by level.
  s->SetPolicy({.max_verify_tokens = 4, .min_confidence = 0.5});
  plan = Plan(*s, Drafts({low, low, low}));
  EXPECT_EQ(plan.lengths, (std::vector<int>{2, 1, 1}));
}

TEST(StepSchedulerTest, OffKind) {
  auto s = Make({.kind = "off", .cost_table = TableOf(GpuLike)});
  EXPECT_EQ(s->kind(), "off");
  const std::vector<float> block(7, 0.99f);
  StepPlan plan = Plan(*s, Drafts({block, block}));
  EXPECT_EQ(plan.lengths, (std::vector<int>{0, 0}));
  EXPECT_EQ(plan.batch_tokens, 2);
  EXPECT_DOUBLE_EQ(plan.step_seconds, GpuLike(2));
  EXPECT_DOUBLE_EQ(plan.plain_seconds, plan.step_seconds);
}

TEST(StepSchedulerTest, FactoryRejectsBadOptions) {
  EXPECT_EQ(MakeStepScheduler({.kind = "confidence"}).status().code(),
            absl::StatusCode::kInvalidArgument);  // no cost table
  EXPECT_EQ(MakeStepScheduler({.kind = "eager"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeStepScheduler({.kind = "fixed", .fixed_length = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// For a fixed total k of verify tokens, the largest expected count is the
// sum of the k largest marginal gains (gains never increase along a block,
// so those always form prefixes), and T depends on k alone; the scheduler
// evaluates every k. So it matches exhaustive search up to rounding for ANY
// cost table — linear, concave or an arbitrary noisy monotone one — and the
// test holds all of them to 1e-9.
TEST(StepSchedulerTest, GreedyMatchesExhaustiveSearch) {
  std::mt19937 rng(20240607);
  std::uniform_real_distribution<double> unit(0, 1);
  const std::vector<float> ladder = {0, 0.25f, 0.5f, 0.5f, 0.8f, 1};  // ties on purpose
  for (int trial = 0; trial < 3000; ++trial) {
    const int shape = trial % 4;
    const double a = 0.001 + 0.01 * unit(rng), b = 0.0001 + 0.004 * unit(rng);
    std::function<double(int64_t)> t;
    if (shape == 0) t = [=](int64_t n) { return a + b * n; };
    if (shape == 1) t = [=](int64_t n) { return a + 4 * b * std::sqrt(static_cast<double>(n)); };
    if (shape == 2) t = [=](int64_t n) { return n <= 8 ? a : a + b * (n - 8); };
    std::vector<CostPoint> points;
    double level = a;
    for (int64_t n = 1; n <= 32; ++n) {
      // Shape 3: random steps, some backwards (FromPoints makes them monotone).
      level += b * (2 * unit(rng) - 0.5);
      points.push_back({n, shape == 3 ? std::max(level, 1e-4) : t(n)});
    }
    auto table = CostTable::FromPoints(points);
    ASSERT_TRUE(table.ok()) << table.status();

    const int num = 1 + trial % 3;
    std::vector<std::vector<float>> blocks(num);
    for (auto& block : blocks) {
      block.resize(rng() % 5);
      for (float& c : block) c = trial % 2 ? ladder[rng() % ladder.size()] : unit(rng);
    }
    std::vector<SequenceDraft> drafts = Drafts(blocks);
    if (trial % 7 == 0) drafts[0].max_block = 2;
    if (trial % 11 == 0) drafts[num - 1].speculate = false;
    SchedulerPolicy policy;
    if (trial % 5 == 0) policy.max_verify_tokens = 1 + rng() % 4;
    if (trial % 6 == 0) policy.min_confidence = 0.3;
    if (trial % 13 == 0) policy.max_block = 1 + rng() % 3;
    const int64_t base = trial % 3 == 0 ? rng() % 6 : 0;

    auto s = Make({.cost_table = *table, .policy = policy});
    StepPlan plan = Plan(*s, drafts, base);
    const double best = ExhaustiveBestRate(blocks, drafts, base, policy, *table);
    ASSERT_NEAR(plan.tokens_per_second, best, 1e-9 * best) << "trial " << trial;
    // The plan itself respects every limit.
    for (int r = 0; r < num; ++r) {
      ASSERT_LE(plan.lengths[r], static_cast<int>(blocks[r].size())) << "trial " << trial;
      if (!drafts[r].speculate) {
        ASSERT_EQ(plan.lengths[r], 0) << "trial " << trial;
      }
    }
    if (policy.max_verify_tokens > 0) {
      ASSERT_LE(plan.verify_tokens, policy.max_verify_tokens) << "trial " << trial;
    }
  }
}

TEST(StepSchedulerTest, SteadyStepsDoNotAllocate) {
  auto s = Make({.cost_table = TableOf(CpuLike)});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> conf(0.3f, 1.0f);
  std::vector<std::vector<float>> blocks(64, std::vector<float>(7));
  for (auto& block : blocks) {
    for (float& c : block) c = conf(rng);
  }
  const std::vector<SequenceDraft> drafts = Drafts(blocks);
  const StepInput input{.seqs = drafts, .base_tokens = 16};
  StepPlan plan;
  s->Schedule(input, &plan);  // sizes the buffers
  const int64_t before = g_allocations;
  constexpr int kSteps = 1000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kSteps; ++i) s->Schedule(input, &plan);
  const double micros =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      kSteps;
  EXPECT_EQ(g_allocations, before);
  RecordProperty("microseconds_per_step_64x7", std::to_string(micros));
  // Microseconds in a release build; the bound leaves room for sanitizers
  // and a busy machine while still catching a blow-up in complexity.
  EXPECT_LT(micros, 1000);
}

}  // namespace
}  // namespace dspark::scheduler
