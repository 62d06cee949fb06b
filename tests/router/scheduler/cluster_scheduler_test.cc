// The cluster scheduler's decisions: bounded, stable under steady load,
// reverting when load drops, and safe when load data is missing, NaN, stale
// or unreachable (with a fake Prometheus that misbehaves on purpose).
#include "router/scheduler/cluster_scheduler.h"

#include <cmath>
#include <limits>

#include "common/metrics/metrics.h"
#include "gtest/gtest.h"
#include "router/scheduler/prometheus_source.h"
#include "tests/fakes/fake_prometheus.h"

namespace dspark::router {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

WorkerLoadSample Sample(const std::string& worker, double running, double waiting, double kv,
                        double acceptance = 0.5) {
  return {.worker = worker, .running = running, .waiting = waiting, .kv_usage = kv,
          .step_seconds = 0.02, .acceptance = acceptance, .verified_per_second = 50,
          .observed = absl::Now()};
}

// Runs `rounds` rounds at one load; returns every cap it set.
std::vector<int> Caps(ClusterScheduler& s, const WorkerLoadSample& load, int rounds) {
  std::vector<int> caps;
  for (int i = 0; i < rounds; ++i) {
    auto d = s.Decide(std::vector<WorkerLoadSample>{load}, {load.worker}, absl::Now());
    caps.push_back(d[0].policy.speculation ? d[0].policy.max_verify_tokens : -1);
  }
  return caps;
}

TEST(ClusterSchedulerTest, OverloadLowersTheCapOneRungAtATimeAndLightLoadRaisesIt) {
  ClusterScheduler s({.hold_rounds = 3});
  const auto heavy = Caps(s, Sample("v0", 40, 5, 0.95), 20);
  // The first round already lowers the default (no cap) one rung; then each
  // change is one rung, at least 3 rounds apart; it stops at 8.
  EXPECT_EQ(heavy.front(), 64);
  EXPECT_EQ(heavy.back(), 8);
  int changes = 0, last_change = -100;
  for (size_t i = 1; i < heavy.size(); ++i) {
    if (heavy[i] == heavy[i - 1]) continue;
    ++changes;
    EXPECT_GE(static_cast<int>(i) - last_change, 3) << "changed twice within hold_rounds";
    last_change = static_cast<int>(i);
  }
  EXPECT_EQ(changes, 3);  // 64 -> 32 -> 16 -> 8, never off for load alone
  const auto light = Caps(s, Sample("v0", 2, 0, 0.1), 20);
  EXPECT_EQ(light.back(), 0) << "reverts to no cap when load drops";
}

TEST(ClusterSchedulerTest, SteadyLoadGivesASteadyPolicy) {
  ClusterScheduler s;
  // Between the light and heavy bands: hold whatever was set.
  Caps(s, Sample("v0", 40, 2, 0.5), 7);  // walk down two rungs first
  const auto steady = Caps(s, Sample("v0", 16, 0, 0.7), 200);
  for (int cap : steady) EXPECT_EQ(cap, steady.front()) << "oscillated under steady load";
  // Load hovering at the edges of the bands alternately still moves at most
  // once per hold period and never flips back and forth every round.
  ClusterScheduler t({.hold_rounds = 3});
  std::vector<int> caps;
  for (int i = 0; i < 60; ++i) {
    auto load = i % 2 ? Sample("v0", 33, 0, 0.5) : Sample("v0", 8, 0, 0.5);
    caps.push_back(Caps(t, load, 1)[0]);
  }
  int flips = 0;
  for (size_t i = 2; i < caps.size(); ++i) flips += caps[i] != caps[i - 1] && caps[i] == caps[i - 2];
  EXPECT_LE(flips, 60 / 3);
}

TEST(ClusterSchedulerTest, LowAcceptanceTurnsSpeculationOffAndReprobes) {
  ClusterScheduler s({.min_acceptance = 0.05, .probe_rounds = 5});
  // Too little evidence (one short request's verdicts): stays on.
  WorkerLoadSample thin = Sample("v0", 2, 0, 0.1, /*acceptance=*/0.0);
  thin.verified_per_second = 0.2;
  EXPECT_NE(Caps(s, thin, 1)[0], -1);
  auto caps = Caps(s, Sample("v0", 2, 0, 0.1, /*acceptance=*/0.01), 1);
  EXPECT_EQ(caps[0], -1);
  // While off, acceptance is unknown (NaN: nothing verified); after the probe
  // period it comes back with a small cap.
  caps = Caps(s, Sample("v0", 2, 0, 0.1, kNaN), 6);
  EXPECT_EQ(caps.front(), -1);
  EXPECT_EQ(caps.back(), 8);
}

TEST(ClusterSchedulerTest, MissingNaNAndStaleDataFallBackToDefaultsAndRecover) {
  ClusterScheduler s({.hold_rounds = 1});
  Caps(s, Sample("v0", 40, 5, 0.95), 4);
  ASSERT_NE(Caps(s, Sample("v0", 40, 5, 0.95), 1)[0], 0);

  auto d = s.Decide(absl::UnavailableError("prometheus unreachable"), {"v0"}, absl::Now());
  EXPECT_FALSE(s.healthy());
  EXPECT_TRUE(d[0].policy.speculation);
  EXPECT_EQ(d[0].policy.max_verify_tokens, 0);
  EXPECT_NE(d[0].policy.reason.find("fallback"), std::string::npos) << d[0].policy.reason;

  WorkerLoadSample nan = Sample("v0", kNaN, 0, 0.5);
  d = s.Decide(std::vector<WorkerLoadSample>{nan}, {"v0"}, absl::Now());
  EXPECT_FALSE(s.healthy());
  EXPECT_NE(d[0].policy.reason.find("NaN"), std::string::npos);

  WorkerLoadSample stale = Sample("v0", 40, 5, 0.95);
  stale.observed = absl::Now() - absl::Minutes(5);
  d = s.Decide(std::vector<WorkerLoadSample>{stale}, {"v0"}, absl::Now());
  EXPECT_FALSE(s.healthy());
  EXPECT_NE(d[0].policy.reason.find("stale"), std::string::npos);
  EXPECT_EQ(d[0].policy.max_verify_tokens, 0);

  // A worker the source does not know falls back alone.
  d = s.Decide(std::vector<WorkerLoadSample>{Sample("v1", 1, 0, 0.1)}, {"v0", "v1"}, absl::Now());
  EXPECT_FALSE(s.healthy());
  EXPECT_NE(d[0].policy.reason.find("no load data"), std::string::npos);

  // Data returns: decisions resume.
  auto caps = Caps(s, Sample("v0", 40, 5, 0.95), 3);
  EXPECT_TRUE(s.healthy());
  EXPECT_GT(caps.back(), 0);
}

TEST(ClusterSchedulerTest, PolicyVersionsIncreaseOnlyOnChange) {
  ClusterScheduler s({.hold_rounds = 1});
  auto a = s.Decide(std::vector<WorkerLoadSample>{Sample("v0", 16, 0, 0.7)}, {"v0"}, absl::Now());
  auto b = s.Decide(std::vector<WorkerLoadSample>{Sample("v0", 16, 0, 0.7)}, {"v0"}, absl::Now());
  EXPECT_TRUE(a[0].changed);
  EXPECT_FALSE(b[0].changed);
  EXPECT_EQ(a[0].policy.version, b[0].policy.version);
  auto c = s.Decide(std::vector<WorkerLoadSample>{Sample("v0", 40, 3, 0.7)}, {"v0"}, absl::Now());
  EXPECT_TRUE(c[0].changed);
  EXPECT_GT(c[0].policy.version, b[0].policy.version);
  EXPECT_LT(c[0].placement_weight, a[0].placement_weight) << "busier worker, fewer new sessions";
}

// PrometheusSource against a fake Prometheus that behaves, then misbehaves.
TEST(PrometheusSourceTest, ReadsLoadAndReportsEveryMisbehaviour) {
  testing::FakePrometheus prom;
  prom.SetLoad("127.0.0.1:5001", {.running = 3, .waiting = 1, .kv_usage = 0.25, .acceptance = 0.6});
  prom.SetLoad("127.0.0.1:5002", {.running = 7, .waiting = 0, .kv_usage = 0.5, .acceptance = 0.4});
  PrometheusSource source({.url = prom.url(), .timeout = absl::Seconds(1)});

  auto good = source.Read();
  ASSERT_TRUE(good.ok()) << good.status();
  ASSERT_EQ(good->size(), 2u);
  EXPECT_EQ((*good)[0].worker, "127.0.0.1:5001");
  EXPECT_EQ((*good)[0].running, 3);
  EXPECT_EQ((*good)[0].waiting, 1);
  EXPECT_DOUBLE_EQ((*good)[0].kv_usage, 0.25);
  EXPECT_DOUBLE_EQ((*good)[1].acceptance, 0.4);

  prom.SetMode(testing::FakePrometheus::Mode::kHttpError);
  EXPECT_EQ(source.Read().status().code(), absl::StatusCode::kUnavailable);
  prom.SetMode(testing::FakePrometheus::Mode::kGarbage);
  EXPECT_EQ(source.Read().status().code(), absl::StatusCode::kDataLoss);
  prom.SetMode(testing::FakePrometheus::Mode::kSlow);
  const absl::Time t0 = absl::Now();
  EXPECT_EQ(source.Read().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(3)) << "a slow Prometheus must not stall the router";
  prom.SetMode(testing::FakePrometheus::Mode::kNaN);
  auto nan = source.Read();
  ASSERT_TRUE(nan.ok());
  EXPECT_TRUE(std::isnan((*nan)[0].running));
  prom.SetMode(testing::FakePrometheus::Mode::kStale);
  auto stale = source.Read();
  ASSERT_TRUE(stale.ok());
  EXPECT_LT((*stale)[0].observed, absl::Now() - absl::Minutes(5));

  PrometheusSource nowhere({.url = "http://127.0.0.1:1", .timeout = absl::Seconds(1)});
  EXPECT_EQ(nowhere.Read().status().code(), absl::StatusCode::kUnavailable);
}

// The loop end to end: decisions pushed, fallback exported as a metric and
// logged, recovery when Prometheus comes back.
TEST(ClusterSchedulerLoopTest, FallsBackWhilePrometheusMisbehavesAndRecovers) {
  testing::FakePrometheus prom;
  const std::string w = "127.0.0.1:6001";
  prom.SetLoad(w, {.running = 40, .waiting = 4, .kv_usage = 0.95});
  PrometheusSource source({.url = prom.url(), .timeout = absl::Seconds(1)});
  auto registry = std::make_shared<prometheus::Registry>();
  metrics::SchedulerMetrics m(*registry, {.worker = "router", .pool = "router", .model = "m"});
  std::vector<Decision> pushed;
  ClusterSchedulerLoop loop({.scheduler = {.hold_rounds = 1}}, &source,
                            [&] { return std::vector<std::string>{w}; },
                            [&](const Decision& d) { pushed.push_back(d); }, &m);
  for (int i = 0; i < 3; ++i) loop.RunOnce();
  EXPECT_EQ(pushed.size(), 3u);
  EXPECT_EQ(pushed.back().policy.max_verify_tokens, 16);
  EXPECT_EQ(m.metrics_source_healthy->Value(), 1);

  prom.SetMode(testing::FakePrometheus::Mode::kGarbage);
  loop.RunOnce();
  EXPECT_EQ(pushed.back().policy.max_verify_tokens, 0);
  EXPECT_TRUE(pushed.back().policy.speculation);
  EXPECT_EQ(m.metrics_source_healthy->Value(), 0);
  EXPECT_EQ(m.fallbacks->Value(), 1);

  prom.SetMode(testing::FakePrometheus::Mode::kGood);
  loop.RunOnce();
  EXPECT_EQ(m.metrics_source_healthy->Value(), 1);
  EXPECT_EQ(pushed.back().policy.max_verify_tokens, 64) << "decisions resume from the default";
  EXPECT_GE(m.decisions->Add({{"target_worker", w}, {"reason", "fallback to defaults"}}).Value(), 1);
}

}  // namespace
}  // namespace dspark::router
