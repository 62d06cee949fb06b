#include "verify_worker/scheduler/cost_table.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/file_util.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "nlohmann/json.hpp"

namespace dspark::scheduler {
namespace {

using nlohmann::json;

// Written into every file so that a future incompatible layout is refused
// (InvalidArgument) rather than misread.
constexpr char kFormat[] = "dspark.cost_table";
constexpr int kVersion = 1;

absl::Status Malformed(const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": not a valid cost table (", why, "); delete it to re-profile"));
}

double Median(std::vector<double>& v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  if (v.size() % 2 == 1) return v[mid];
  const double upper = v[mid];
  const double lower = *std::max_element(v.begin(), v.begin() + mid);
  return 0.5 * (lower + upper);
}

}  // namespace

std::vector<int64_t> DefaultProfileTokens() {
  return {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256};
}

absl::StatusOr<CostTable> CostTable::FromPoints(std::vector<CostPoint> points) {
  if (points.empty()) return absl::InvalidArgumentError("cost table: no points");
  std::sort(points.begin(), points.end(),
            [](const CostPoint& a, const CostPoint& b) { return a.tokens < b.tokens; });
  for (size_t i = 0; i < points.size(); ++i) {
    const CostPoint& p = points[i];
    if (p.tokens < 1) {
      return absl::InvalidArgumentError(absl::StrCat("cost table: tokens ", p.tokens, " < 1"));
    }
    if (!std::isfinite(p.seconds) || p.seconds <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cost table: seconds ", p.seconds, " at ", p.tokens, " tokens is not > 0"));
    }
    if (i > 0 && points[i - 1].tokens == p.tokens) {
      return absl::InvalidArgumentError(
          absl::StrCat("cost table: two points for ", p.tokens, " tokens"));
    }
  }
  for (size_t i = 1; i < points.size(); ++i) {
    points[i].seconds = std::max(points[i].seconds, points[i - 1].seconds);
  }
  return CostTable(std::move(points));
}

absl::StatusOr<CostTable> CostTable::Profile(const MeasureFn& measure,
                                             const CostProfileOptions& options) {
  if (options.tokens.empty()) return absl::InvalidArgumentError("cost profile: no batch sizes");
  if (options.repetitions < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cost profile: repetitions ", options.repetitions, " < 1"));
  }
  for (int64_t n : options.tokens) {
    if (n < 1) return absl::InvalidArgumentError(absl::StrCat("cost profile: batch size ", n));
  }
  auto run = [&](int64_t n) -> absl::StatusOr<double> {
    absl::StatusOr<double> s = measure(n);
    if (!s.ok()) {
      return absl::Status(s.status().code(),
                          absl::StrCat("cost profile at ", n, " tokens: ", s.status().message()));
    }
    if (!std::isfinite(*s) || *s <= 0) {
      return absl::InternalError(
          absl::StrCat("cost profile at ", n, " tokens: measured ", *s, " seconds"));
    }
    return s;
  };
  for (int i = 0; i < options.warmup; ++i) {
    DSPARK_RETURN_IF_ERROR(run(options.tokens.front()).status());
  }
  // samples[k][rep]: rep outer, sizes inner (see the header).
  std::vector<std::vector<double>> samples(options.tokens.size());
  for (int rep = 0; rep < options.repetitions; ++rep) {
    for (size_t k = 0; k < options.tokens.size(); ++k) {
      DSPARK_ASSIGN_OR_RETURN(double s, run(options.tokens[k]));
      samples[k].push_back(s);
    }
  }
  std::vector<CostPoint> points;
  points.reserve(options.tokens.size());
  for (size_t k = 0; k < options.tokens.size(); ++k) {
    points.push_back({.tokens = options.tokens[k], .seconds = Median(samples[k])});
  }
  return FromPoints(std::move(points));
}

double CostTable::Seconds(int64_t tokens) const {
  if (points_.empty()) return 0;
  if (tokens <= points_.front().tokens) return points_.front().seconds;
  if (points_.size() == 1) return points_.front().seconds;
  // First point with tokens >= `tokens`; past the end, extrapolate along the
  // last segment.
  auto it = std::lower_bound(points_.begin(), points_.end(), tokens,
                             [](const CostPoint& p, int64_t n) { return p.tokens < n; });
  if (it != points_.end() && it->tokens == tokens) return it->seconds;
  if (it == points_.end()) --it;
  const CostPoint& hi = *it;
  const CostPoint& lo = *(it - 1);
  const double slope = (hi.seconds - lo.seconds) / static_cast<double>(hi.tokens - lo.tokens);
  return lo.seconds + slope * static_cast<double>(tokens - lo.tokens);
}

absl::Status CostTable::Save(const std::string& path, const std::string& identity) const {
  json points = json::array();
  for (const CostPoint& p : points_) {
    points.push_back({{"tokens", p.tokens}, {"seconds", p.seconds}});
  }
  const json doc = {{"format", kFormat},
                    {"version", kVersion},
                    {"identity", identity},
                    {"points", std::move(points)}};
  const std::filesystem::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) {
    std::filesystem::create_directories(target.parent_path(), ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat(target.parent_path().string(), ": cannot create directory: ", ec.message()));
    }
  }
  // Unique per process: two workers saving the same cache do not interleave.
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << doc.dump(2) << "\n";
    out.close();
    if (!out) {
      std::filesystem::remove(tmp, ec);
      return absl::InternalError(absl::StrCat(tmp, ": write failed"));
    }
  }
  std::filesystem::rename(tmp, target, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::InternalError(absl::StrCat(path, ": cannot replace: ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<CostTable> CostTable::Load(const std::string& path, const std::string& identity) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no cost table"));
  }
  DSPARK_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Malformed(path, "not JSON");
  if (!doc.is_object()) return Malformed(path, "not a JSON object");
  auto format = doc.find("format");
  if (format == doc.end() || !format->is_string() || format->get<std::string>() != kFormat) {
    return Malformed(path, absl::StrCat("\"format\" is not \"", kFormat, "\""));
  }
  auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() ||
      version->get<int64_t>() != kVersion) {
    return Malformed(path, absl::StrCat("\"version\" is not ", kVersion));
  }
  auto file_identity = doc.find("identity");
  if (file_identity == doc.end() || !file_identity->is_string()) {
    return Malformed(path, "\"identity\" is not a string");
  }
  auto points_json = doc.find("points");
  if (points_json == doc.end() || !points_json->is_array()) {
    return Malformed(path, "\"points\" is not an array");
  }
  std::vector<CostPoint> points;
  for (const json& p : *points_json) {
    if (!p.is_object()) return Malformed(path, "a point is not an object");
    auto tokens = p.find("tokens");
    auto seconds = p.find("seconds");
    if (tokens == p.end() || !tokens->is_number_integer() || seconds == p.end() ||
        !seconds->is_number()) {
      return Malformed(path, "a point lacks integer \"tokens\" or number \"seconds\"");
    }
    points.push_back({.tokens = tokens->get<int64_t>(), .seconds = seconds->get<double>()});
  }
  absl::StatusOr<CostTable> table = FromPoints(std::move(points));
  if (!table.ok()) return Malformed(path, table.status().message());
  // Checked last so that a stale file is reported as stale only when it is
  // otherwise a good table.
  if (file_identity->get<std::string>() != identity) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": cost table was profiled for \"",
                                                      file_identity->get<std::string>(),
                                                      "\", not \"", identity, "\""));
  }
  return table;
}

absl::StatusOr<CostTable> LoadOrProfile(const std::string& path, const std::string& identity,
                                        const MeasureFn& measure,
                                        const CostProfileOptions& options) {
  if (!path.empty()) {
    absl::StatusOr<CostTable> cached = CostTable::Load(path, identity);
    if (cached.ok()) return cached;
    if (!absl::IsNotFound(cached.status())) {
      DSPARK_LOG(WARNING) << "re-profiling: " << cached.status().message();
    }
  }
  DSPARK_ASSIGN_OR_RETURN(CostTable table, CostTable::Profile(measure, options));
  if (!path.empty()) {
    absl::Status saved = table.Save(path, identity);
    if (!saved.ok()) DSPARK_LOG(WARNING) << "cost table not cached: " << saved.message();
  }
  return table;
}

}  // namespace dspark::scheduler
