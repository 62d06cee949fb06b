#include "tests/fakes/fake_prometheus.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace dspark::testing {

FakePrometheus::FakePrometheus() : server_(std::make_unique<httplib::Server>()) {
  server_->Get("/api/v1/query", [this](const httplib::Request& req, httplib::Response& res) {
    Mode mode;
    {
      absl::MutexLock lock(&mu_);
      ++queries_;
      mode = mode_;
    }
    if (mode == Mode::kHttpError) {
      res.status = 503;
      res.set_content("{\"status\":\"error\",\"error\":\"overloaded\"}", "application/json");
      return;
    }
    if (mode == Mode::kGarbage) {
      res.set_content("<html>not prometheus</html>", "text/html");
      return;
    }
    if (mode == Mode::kSlow) {
      // The misbehaviour under test: an answer slower than the client's timeout.
      std::this_thread::sleep_for(std::chrono::seconds(3));
    }
    res.set_content(Answer(req.get_param_value("query")), "application/json");
  });
  port_ = server_->bind_to_any_port("127.0.0.1");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // bind_to_any_port already listens: connections queue until the accept loop runs.
}

FakePrometheus::~FakePrometheus() {
  server_->stop();
  thread_.join();
}

std::string FakePrometheus::url() const { return absl::StrCat("http://127.0.0.1:", port_); }

void FakePrometheus::SetMode(Mode mode) {
  absl::MutexLock lock(&mu_);
  mode_ = mode;
}

void FakePrometheus::SetLoad(const std::string& worker, const Load& load) {
  absl::MutexLock lock(&mu_);
  loads_[worker] = load;
}

int FakePrometheus::queries() const {
  absl::MutexLock lock(&mu_);
  return queries_;
}

std::string FakePrometheus::Answer(const std::string& promql) {
  absl::MutexLock lock(&mu_);
  const double now = absl::ToUnixMillis(absl::Now()) / 1000.0;
  const double at = mode_ == Mode::kStale ? now - 600 : now;
  nlohmann::json result = nlohmann::json::array();
  for (const auto& [worker, load] : loads_) {
    double v = load.acceptance;
    if (absl::StrContains(promql, "dspark_num_requests_running")) v = load.running;
    if (absl::StrContains(promql, "dspark_num_requests_waiting")) v = load.waiting;
    if (absl::StrContains(promql, "dspark_kv_cache_usage_perc")) v = load.kv_usage;
    if (absl::StrContains(promql, "dspark_step_duration_seconds")) v = load.step_seconds;
    const std::string text = mode_ == Mode::kNaN ? "NaN" : absl::StrCat(v);
    result.push_back({{"metric", {{"worker", worker}}}, {"value", {at, text}}});
  }
  return nlohmann::json{{"status", "success"},
                        {"data", {{"resultType", "vector"}, {"result", result}}}}
      .dump();
}

}  // namespace dspark::testing
