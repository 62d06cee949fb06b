// CalibrationProbe turns the engine's extend-after-verify into one sample per
// reached position, and Calibrate bins them and computes the ECE.
#include "tools/cli/drafter_eval.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/fakes/fake_drafters.h"

namespace dspark::cli {
namespace {

// Drafts `n` tokens with the fake (confidence 0.9 everywhere), then extends
// the session the way the engine does after verifying them: the fed last
// token plus `accepted` drafts.
void DraftAndVerify(CalibrationProbe& probe, int n, int accepted) {
  std::vector<drafter::DraftBlock> blocks;
  ASSERT_TRUE(probe.Draft({{.session = 1, .last_token = 5, .max_tokens = n}}, &blocks).ok());
  ASSERT_EQ(blocks.size(), 1u);
  ASSERT_EQ(static_cast<int>(blocks[0].tokens.size()), n);
  std::vector<int32_t> committed = {5};
  for (int i = 0; i < accepted; ++i) committed.push_back(blocks[0].tokens[i]);
  ASSERT_TRUE(probe.Extend(1, committed, {}).ok());
}

TEST(CalibrationProbeTest, OneSamplePerReachedPosition) {
  testing::AlwaysWrongFakeDrafter inner(/*token=*/3);
  CalibrationProbe probe(&inner);
  EXPECT_EQ(probe.name(), inner.name());
  EXPECT_EQ(probe.max_block(), inner.max_block());
  ASSERT_TRUE(probe.Open(1).ok());
  ASSERT_TRUE(probe.Extend(1, {1, 2, 3}, {}).ok());  // a prefill: nothing pending, no sample
  EXPECT_TRUE(probe.samples().empty());

  DraftAndVerify(probe, 4, 0);  // position 0 rejected
  DraftAndVerify(probe, 4, 2);  // 0, 1 accepted, 2 rejected
  DraftAndVerify(probe, 3, 3);  // all accepted: nothing was rejected
  const std::vector<ConfidenceSample>& s = probe.samples();
  ASSERT_EQ(s.size(), 1u + 3u + 3u);
  const bool accepted[] = {false, true, true, false, true, true, true};
  const int position[] = {0, 0, 1, 2, 0, 1, 2};
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s[i].accepted, accepted[i]) << i;
    EXPECT_EQ(s[i].position, position[i]) << i;
    EXPECT_FLOAT_EQ(s[i].confidence, 0.9f) << i;
  }

  // A closed session forgets its pending block.
  std::vector<drafter::DraftBlock> blocks;
  ASSERT_TRUE(probe.Draft({{.session = 1, .last_token = 5, .max_tokens = 2}}, &blocks).ok());
  probe.Close(1);
  ASSERT_TRUE(probe.Open(1).ok());
  ASSERT_TRUE(probe.Extend(1, {7}, {}).ok());
  EXPECT_EQ(probe.samples().size(), 7u);
}

TEST(CalibrationProbeTest, ErrorsPassThroughAndRecordNothing) {
  testing::AlwaysWrongFakeDrafter inner(/*token=*/3);
  CalibrationProbe probe(&inner);
  std::vector<drafter::DraftBlock> blocks;
  EXPECT_FALSE(probe.Draft({{.session = 9, .last_token = 5, .max_tokens = 2}}, &blocks).ok());
  EXPECT_FALSE(probe.Extend(9, {1, 2}, {}).ok());
  EXPECT_TRUE(probe.samples().empty());
}

TEST(CalibrateTest, BucketsAndEce) {
  // Bucket 0.8-0.9: confidences 0.8 and 0.85, one accepted (observed 0.5,
  // expected 0.825). Bucket 0.2-0.3: 0.2, 0.2, accepted both (1.0 vs 0.2).
  // The last bucket takes 1.0; NaN reads as 0 and out-of-range values clamp.
  const std::vector<ConfidenceSample> samples = {
      {.confidence = 0.8f, .accepted = true},  {.confidence = 0.85f, .accepted = false},
      {.confidence = 0.2f, .accepted = true},  {.confidence = 0.2f, .accepted = true},
      {.confidence = 1.0f, .accepted = true},  {.confidence = 1.5f, .accepted = true},
      {.confidence = std::nanf(""), .accepted = false}, {.confidence = -1.0f, .accepted = false}};
  const Calibration c = Calibrate(samples, 10);
  ASSERT_EQ(c.buckets.size(), 10u);
  EXPECT_EQ(c.samples, 8);
  EXPECT_EQ(c.buckets[8].count, 2);
  EXPECT_NEAR(c.buckets[8].mean_confidence, 0.825, 1e-6);
  EXPECT_DOUBLE_EQ(c.buckets[8].accept_rate, 0.5);
  EXPECT_EQ(c.buckets[2].count, 2);
  EXPECT_DOUBLE_EQ(c.buckets[2].accept_rate, 1.0);
  EXPECT_EQ(c.buckets[9].count, 2);
  EXPECT_DOUBLE_EQ(c.buckets[9].mean_confidence, 1.0);
  EXPECT_EQ(c.buckets[0].count, 2);
  EXPECT_DOUBLE_EQ(c.buckets[0].accept_rate, 0.0);
  EXPECT_DOUBLE_EQ(c.buckets[0].lo, 0.0);
  EXPECT_DOUBLE_EQ(c.buckets[9].hi, 1.0);
  const double ece = 2.0 / 8 * (0.825 - 0.5) + 2.0 / 8 * (1.0 - 0.2) + 0 + 0;
  EXPECT_NEAR(c.ece, ece, 1e-6);
  EXPECT_EQ(Calibrate({}, 10).ece, 0.0);
  EXPECT_EQ(Calibrate(samples, 0).buckets.size(), 1u);  // at least one bucket
}

}  // namespace
}  // namespace dspark::cli
