#include "common/engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace dspark::engine {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0, got ", p.temperature));
  }
  if (p.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("min_p must be in [0, 1], got ", p.min_p));
  }
  return absl::OkStatus();
}

int32_t ArgMax(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

std::vector<std::pair<int32_t, float>> FilteredDistribution(const float* logits, int64_t vocab,
                                                           const SamplingParams& params) {
  if (params.temperature <= 0.0f) return {{ArgMax(logits, vocab), 1.0f}};
  const double inv_t = 1.0 / params.temperature;
  std::vector<std::pair<int32_t, float>> cand;
  cand.reserve(vocab);
  for (int64_t i = 0; i < vocab; ++i) cand.emplace_back(static_cast<int32_t>(i), logits[i]);
  auto by_logit = [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  };
  if (params.top_k > 0 && params.top_k < vocab) {
    std::partial_sort(cand.begin(), cand.begin() + params.top_k, cand.end(), by_logit);
    cand.resize(params.top_k);
  } else {
    std::sort(cand.begin(), cand.end(), by_logit);
  }
  // Softmax in double, in sorted order (a fixed order for determinism).
  const double max_logit = cand.front().second;
  std::vector<double> p(cand.size());
  double sum = 0;
  for (size_t i = 0; i < cand.size(); ++i) {
    p[i] = std::exp((cand[i].second - max_logit) * inv_t);
    sum += p[i];
  }
  size_t keep = cand.size();
  if (params.min_p > 0.0f) {
    const double floor = params.min_p * (p[0] / sum);
    size_t k = 1;
    while (k < keep && p[k] / sum >= floor) ++k;
    keep = k;
  }
  if (params.top_p < 1.0f) {
    double acc = 0;
    size_t k = 0;
    while (k < keep) {
      acc += p[k] / sum;
      ++k;
      if (acc >= params.top_p) break;
    }
    keep = k;
  }
  double kept_sum = 0;
  for (size_t i = 0; i < keep; ++i) kept_sum += p[i];
  std::vector<std::pair<int32_t, float>> out(keep);
  for (size_t i = 0; i < keep; ++i) {
    out[i] = {cand[i].first, static_cast<float>(p[i] / kept_sum)};
  }
  return out;
}

double UniformDraw(uint64_t seed, uint64_t counter) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) ^ SplitMix64(counter + 0x632BE59BD9B4E019ull));
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

int32_t SampleToken(const float* logits, int64_t vocab, const SamplingParams& params,
                    uint64_t counter) {
  if (params.temperature <= 0.0f) return ArgMax(logits, vocab);
  auto dist = FilteredDistribution(logits, vocab, params);
  const double u = UniformDraw(params.seed, counter);
  double acc = 0;
  for (const auto& [id, prob] : dist) {
    acc += prob;
    if (u < acc) return id;
  }
  return dist.back().first;
}

}  // namespace dspark::engine
