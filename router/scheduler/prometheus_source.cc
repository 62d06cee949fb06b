#include "router/scheduler/prometheus_source.h"

#include <cmath>
#include <limits>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace dspark::router {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Value {
  double value = kNaN;
  absl::Time at;
};

// worker -> value of an instant-vector query.
absl::StatusOr<std::map<std::string, Value>> Query(httplib::Client& client,
                                                   const std::string& promql) {
  httplib::Params params{{"query", promql}};
  httplib::Result res = client.Get("/api/v1/query", params, httplib::Headers{});
  if (!res) {
    return absl::UnavailableError(
        absl::StrCat("prometheus unreachable: ", httplib::to_string(res.error())));
  }
  if (res->status != 200) {
    return absl::UnavailableError(absl::StrCat("prometheus answered HTTP ", res->status));
  }
  nlohmann::json j = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("status", "") != "success" ||
      !j.contains("data") || !j["data"].is_object() ||
      j["data"].value("resultType", "") != "vector" || !j["data"]["result"].is_array()) {
    return absl::DataLossError("prometheus answer is not an instant vector");
  }
  std::map<std::string, Value> out;
  for (const auto& series : j["data"]["result"]) {
    if (!series.is_object() || !series.contains("metric") || !series.contains("value")) continue;
    const auto& metric = series["metric"];
    const auto& value = series["value"];
    if (!metric.is_object() || !metric.contains("worker") || !metric["worker"].is_string() ||
        !value.is_array() || value.size() != 2 || !value[0].is_number() || !value[1].is_string()) {
      return absl::DataLossError("prometheus series without worker label or [time, value]");
    }
    Value v;
    const std::string text = value[1].get<std::string>();
    if (!absl::SimpleAtod(text, &v.value)) v.value = kNaN;  // "NaN", "+Inf" parse; junk -> NaN
    v.at = absl::FromUnixMillis(static_cast<int64_t>(value[0].get<double>() * 1000));
    out[metric["worker"].get<std::string>()] = v;
  }
  return out;
}

}  // namespace

PrometheusSource::PrometheusSource(PrometheusSourceOptions options)
    : options_(std::move(options)) {}

absl::StatusOr<std::vector<WorkerLoadSample>> PrometheusSource::Read() {
  httplib::Client client(options_.url);
  const int64_t ms = absl::ToInt64Milliseconds(options_.timeout);
  client.set_connection_timeout(ms / 1000, (ms % 1000) * 1000);
  client.set_read_timeout(ms / 1000, (ms % 1000) * 1000);
  const std::string w = options_.window;
  const std::string pool = "{pool=\"verify\"}";
  struct Field {
    std::string promql;
    double WorkerLoadSample::*field;
  };
  const Field fields[] = {
      {"max by (worker) (dspark_num_requests_running" + pool + ")", &WorkerLoadSample::running},
      {"max by (worker) (dspark_num_requests_waiting" + pool + ")", &WorkerLoadSample::waiting},
      {"max by (worker) (dspark_kv_cache_usage_perc" + pool + ")", &WorkerLoadSample::kv_usage},
      {absl::StrCat("sum by (worker) (rate(dspark_step_duration_seconds_sum[", w,
                    "])) / sum by (worker) (rate(dspark_step_duration_seconds_count[", w, "]))"),
       &WorkerLoadSample::step_seconds},
      {absl::StrCat("sum by (worker) (rate(dspark_spec_decode_num_accepted_tokens_total[", w,
                    "])) / sum by (worker) (rate(dspark_spec_decode_num_draft_tokens_total[", w,
                    "]))"),
       &WorkerLoadSample::acceptance},
      {absl::StrCat("sum by (worker) (rate(dspark_spec_decode_num_draft_tokens_total[", w, "]))"),
       &WorkerLoadSample::verified_per_second},
  };
  std::map<std::string, WorkerLoadSample> by_worker;
  for (const Field& f : fields) {
    absl::StatusOr<std::map<std::string, Value>> values = Query(client, f.promql);
    if (!values.ok()) return values.status();
    for (const auto& [worker, v] : *values) {
      auto [it, fresh] = by_worker.try_emplace(worker);
      WorkerLoadSample& s = it->second;
      if (fresh) {
        s.worker = worker;
        s.running = s.waiting = s.kv_usage = s.step_seconds = s.acceptance = kNaN;
        s.verified_per_second = kNaN;
        s.observed = v.at;
      }
      s.*(f.field) = v.value;
      s.observed = std::min(s.observed, v.at);  // the oldest input dates the sample
    }
  }
  std::vector<WorkerLoadSample> out;
  for (auto& [worker, s] : by_worker) out.push_back(s);
  return out;
}

}  // namespace dspark::router
