// The operator-facing configuration stays true to the code: every metric a
// Grafana dashboard or a Prometheus rule queries is one some dspark process
// exports (common/metrics), and every PromQL expression parses and every
// file passes Debian's promtool.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "common/metrics/metrics.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "prometheus/text_serializer.h"

namespace dspark {
namespace {

const std::filesystem::path kDeploy = std::filesystem::path(DSPARK_SOURCE_DIR) / "deploy";

// Names of every series family the metric sets export (histograms expand to
// _bucket, _sum and _count).
std::set<std::string> ExportedNames() {
  prometheus::Registry registry;
  metrics::MetricLabels labels{.worker = "w", .pool = "p", .model = "m"};
  metrics::RequestMetrics requests(registry, labels);
  metrics::VerifyMetrics verify(registry, labels);
  metrics::DraftMetrics draft(registry, labels);
  metrics::SchedulerMetrics scheduler(registry, labels);
  // Labelled families export nothing until their first series exists, as in
  // a process that has not yet seen such an event: create one each.
  requests.request_success->Add({{"finished_reason", "stop"}});
  requests.request_errors->Add({{"code", "INTERNAL"}});
  verify.accepted_per_pos->Add({{"position", "0"}});
  verify.verified_per_pos->Add({{"position", "0"}});
  verify.cost_table->Add({{"batch_tokens", "1"}});
  scheduler.decisions->Add({{"target_worker", "v"}, {"reason", "r"}});
  scheduler.policy_max_verify->Add({{"target_worker", "v"}});
  scheduler.policy_speculation->Add({{"target_worker", "v"}});
  std::set<std::string> names;
  for (const auto& family : registry.Collect()) {
    names.insert(family.name);
    if (family.type == prometheus::MetricType::Histogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) names.insert(family.name + suffix);
    }
  }
  return names;
}

std::string Read(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every "expr" string in a dashboard, with Grafana's variables replaced by
// values Prometheus accepts.
std::vector<std::string> DashboardExprs(const nlohmann::json& dashboard) {
  std::vector<std::string> out;
  for (const auto& panel : dashboard.at("panels")) {
    for (const auto& target : panel.at("targets")) {
      std::string expr = target.at("expr").get<std::string>();
      expr = std::regex_replace(expr, std::regex(R"(\$__rate_interval)"), "1m");
      expr = std::regex_replace(expr, std::regex(R"(\$model)"), ".*");
      out.push_back(expr);
    }
  }
  return out;
}

std::set<std::string> MetricNames(const std::string& expr) {
  std::set<std::string> out;
  std::regex name(R"(\bdspark_[a-z0-9_]+)");
  for (std::sregex_iterator it(expr.begin(), expr.end(), name), end; it != end; ++it) {
    out.insert(it->str());
  }
  return out;
}

bool HavePromtool() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

TEST(DeployConfigTest, DashboardsQueryOnlyExportedMetrics) {
  const std::set<std::string> exported = ExportedNames();
  int dashboards = 0, exprs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kDeploy / "grafana")) {
    if (entry.path().extension() != ".json") continue;
    ++dashboards;
    nlohmann::json dashboard = nlohmann::json::parse(Read(entry.path()));
    for (const std::string& expr : DashboardExprs(dashboard)) {
      ++exprs;
      const std::set<std::string> names = MetricNames(expr);
      EXPECT_FALSE(names.empty()) << entry.path() << ": queries no dspark metric: " << expr;
      for (const std::string& n : names) {
        EXPECT_TRUE(exported.count(n)) << entry.path().filename() << " queries " << n
                                       << ", which no dspark process exports";
      }
    }
  }
  EXPECT_EQ(dashboards, 4);  // Overview, Speculative decoding, Workers, Scheduler
  EXPECT_GT(exprs, 20);
}

TEST(DeployConfigTest, RulesQueryOnlyExportedMetrics) {
  const std::set<std::string> exported = ExportedNames();
  const std::string rules = Read(kDeploy / "prometheus" / "rules.yml");
  ASSERT_FALSE(rules.empty());
  for (const std::string& n : MetricNames(rules)) {
    EXPECT_TRUE(exported.count(n)) << "rules.yml queries " << n << ", which nothing exports";
  }
}

TEST(DeployConfigTest, PromtoolAcceptsConfigRulesAndEveryDashboardExpression) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool not installed (apt install prometheus)";
  const std::string config = (kDeploy / "prometheus" / "prometheus.yml").string();
  EXPECT_EQ(std::system(("promtool check config " + config + " >/dev/null").c_str()), 0);
  const std::string rules = (kDeploy / "prometheus" / "rules.yml").string();
  EXPECT_EQ(std::system(("promtool check rules " + rules + " >/dev/null").c_str()), 0);

  // Each dashboard expression as a recording rule: promtool parses it.
  const auto tmp = std::filesystem::temp_directory_path() / "dspark_dashboard_rules.yml";
  std::ofstream out(tmp);
  out << "groups:\n  - name: dashboards\n    rules:\n";
  int k = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kDeploy / "grafana")) {
    if (entry.path().extension() != ".json") continue;
    for (const std::string& expr : DashboardExprs(nlohmann::json::parse(Read(entry.path())))) {
      out << "      - record: dashboard:expr" << k++ << "\n        expr: "
          << nlohmann::json(expr).dump() << "\n";
    }
  }
  out.close();
  EXPECT_EQ(std::system(("promtool check rules " + tmp.string()).c_str()), 0);
  std::filesystem::remove(tmp);
}

}  // namespace
}  // namespace dspark
