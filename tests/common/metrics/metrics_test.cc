// Every metric set registers under its names with the constant labels, and
// the /metrics endpoint serves them on a run-time port.
#include "common/metrics/metrics.h"

#include "gtest/gtest.h"
#include "httplib.h"

namespace dspark::metrics {
namespace {

TEST(MetricsTest, ServesEveryMetricSetWithItsLabels) {
  auto registry = std::make_shared<prometheus::Registry>();
  MetricLabels labels{.worker = "verify-0", .pool = "verify", .model = "m"};
  VerifyMetrics verify(*registry, labels);
  verify.step_duration->Observe(0.01);
  verify.accepted_per_pos->Add({{"position", "0"}}).Increment(3);
  verify.cost_table->Add({{"batch_tokens", "8"}}).Set(0.02);
  auto router_registry = std::make_shared<prometheus::Registry>();
  RequestMetrics requests(*router_registry, {.worker = "router", .pool = "router", .model = "m"});
  SchedulerMetrics scheduler(*router_registry, {.worker = "router", .pool = "router", .model = "m"});
  requests.request_success->Add({{"finished_reason", "stop"}}).Increment();
  auto draft_registry = std::make_shared<prometheus::Registry>();
  DraftMetrics draft(*draft_registry, {.worker = "draft-0", .pool = "draft", .model = "m"});
  draft.batch_size->Observe(4);

  for (auto* reg : {&registry, &router_registry, &draft_registry}) {
    auto server = MetricsServer::Start("127.0.0.1:0", *reg);
    ASSERT_TRUE(server.ok()) << server.status();
    ASSERT_GT((*server)->port(), 0);
    httplib::Client client("127.0.0.1", (*server)->port());
    auto res = client.Get("/metrics");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    if (reg == &registry) {
      EXPECT_NE(res->body.find("dspark_step_duration_seconds_count{model=\"m\",pool=\"verify\","
                               "worker=\"verify-0\"} 1"),
                std::string::npos)
          << res->body;
      EXPECT_NE(res->body.find("dspark_spec_decode_num_accepted_tokens_per_pos_total{model=\"m\","
                               "pool=\"verify\",worker=\"verify-0\",position=\"0\"} 3"),
                std::string::npos)
          << res->body;
    } else if (reg == &router_registry) {
      EXPECT_NE(res->body.find("dspark_request_success_total{model=\"m\",pool=\"router\",worker=\"router\","
                               "finished_reason=\"stop\"} 1"),
                std::string::npos)
          << res->body;
      EXPECT_NE(res->body.find("dspark_scheduler_metrics_healthy"), std::string::npos);
    } else {
      EXPECT_NE(res->body.find("dspark_draft_batch_size_sum{"), std::string::npos);
    }
  }
}

TEST(MetricsTest, BusyAddressIsAnError) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto first = MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(first.ok());
  auto second =
      MetricsServer::Start("127.0.0.1:" + std::to_string((*first)->port()), registry);
  EXPECT_FALSE(second.ok());
}

}  // namespace
}  // namespace dspark::metrics
