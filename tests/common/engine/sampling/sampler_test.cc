#include "common/engine/sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

namespace dspark::engine {
namespace {

TEST(SamplerTest, GreedyTakesArgmaxLowestIdOnTies) {
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(SampleToken(logits.data(), 4, {}, 0), 1);
}

TEST(SamplerTest, FiltersKeepWhatTheyShould) {
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  auto all = FilteredDistribution(logits.data(), 4, {.temperature = 1.0f});
  ASSERT_EQ(all.size(), 4u);
  EXPECT_NEAR(all[0].second, 0.5, 1e-6);
  EXPECT_EQ(FilteredDistribution(logits.data(), 4, {.temperature = 1.0f, .top_k = 2}).size(), 2u);
  // top_p 0.75 needs {0.5, 0.3}.
  auto tp = FilteredDistribution(logits.data(), 4, {.temperature = 1.0f, .top_p = 0.75f});
  ASSERT_EQ(tp.size(), 2u);
  EXPECT_NEAR(tp[0].second, 0.5 / 0.8, 1e-6);
  // min_p 0.2 drops tokens under 0.1.
  EXPECT_EQ(FilteredDistribution(logits.data(), 4, {.temperature = 1.0f, .min_p = 0.2f}).size(), 3u);
}

TEST(SamplerTest, SameSeedSameDrawsAndFrequenciesMatch) {
  std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplingParams p{.temperature = 1.0f, .seed = 1234};
  std::map<int, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    int t = SampleToken(logits.data(), 3, p, i);
    EXPECT_EQ(t, SampleToken(logits.data(), 3, p, i));
    ++counts[t];
  }
  // Chi-square with 2 degrees of freedom, p = 0.001 critical value 13.8.
  const double expect[] = {0.6, 0.3, 0.1};
  double chi2 = 0;
  for (int k = 0; k < 3; ++k) {
    double e = expect[k] * n;
    chi2 += (counts[k] - e) * (counts[k] - e) / e;
  }
  EXPECT_LT(chi2, 13.8);
}

TEST(SamplerTest, InvalidParamsAreRejected) {
  EXPECT_FALSE(ValidateSamplingParams({.temperature = -1}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.top_k = -2}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.top_p = 0}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.min_p = 2}).ok());
  EXPECT_TRUE(ValidateSamplingParams({.temperature = 0.7f, .top_k = 40, .top_p = 0.9f}).ok());
}

}  // namespace
}  // namespace dspark::engine
