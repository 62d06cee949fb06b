// What `dspark eval-drafter` measures beyond the engine's own counters: how
// well a drafter's confidences predict acceptance. A CalibrationProbe wraps
// the drafter under test, remembers each drafted block, and when the engine
// extends the session with the verified outcome ([last token, accepted
// drafts...]) records one (confidence, accepted) sample per position the
// target reached. Calibrate() bins the samples (expected vs observed
// acceptance per bucket) and computes the expected calibration error.
// Not thread-safe, like every Drafter.
//
//   CalibrationProbe probe(real_drafter.get());
//   ... run a SpecEngine with &probe at a fixed verify length ...
//   Calibration c = Calibrate(probe.samples(), /*num_buckets=*/10);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "draft_worker/drafter/drafter.h"

namespace dspark::cli {

// One drafted position that the target reached (every earlier position of
// its block was accepted): the drafter's confidence, and the verdict.
struct ConfidenceSample {
  float confidence = 0;
  bool accepted = false;
  int position = 0;  // 0-based in the block
};

// Forwards every call to `inner` (which outlives the probe) and records
// samples. It assumes what a fixed verify length equal to the drafted length
// gives: every drafted token is verified, so a block extended with k accepted
// drafts had positions 0..k-1 accepted and position k (if drafted) rejected.
class CalibrationProbe final : public drafter::Drafter {
 public:
  explicit CalibrationProbe(drafter::Drafter* inner) : inner_(inner) {}

  std::string name() const override { return inner_->name(); }
  int max_block() const override { return inner_->max_block(); }
  std::vector<int> context_layers() const override { return inner_->context_layers(); }
  absl::Status Open(drafter::SessionId session) override;
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override;
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override;
  absl::Status Fork(drafter::SessionId child, drafter::SessionId parent,
                    int64_t prefix_len) override;
  void Close(drafter::SessionId session) override;

  const std::vector<ConfidenceSample>& samples() const { return samples_; }

 private:
  drafter::Drafter* inner_;
  // The session's last drafted block, awaiting its verdict.
  absl::flat_hash_map<drafter::SessionId, drafter::DraftBlock> pending_;
  std::vector<ConfidenceSample> samples_;
};

struct CalibrationBucket {
  double lo = 0, hi = 0;         // confidence range [lo, hi) ([lo, 1] for the last)
  int64_t count = 0;
  double mean_confidence = 0;    // expected acceptance
  double accept_rate = 0;        // observed acceptance
};

struct Calibration {
  std::vector<CalibrationBucket> buckets;  // num_buckets equal-width bins over [0, 1]
  int64_t samples = 0;
  // Expected calibration error: sum over buckets of count / samples *
  // |accept_rate - mean_confidence|. 0 when there are no samples.
  double ece = 0;
};

// Confidences outside [0, 1] (or NaN) are clamped into it (NaN as 0), as the
// engine reads them. num_buckets >= 1.
Calibration Calibrate(const std::vector<ConfidenceSample>& samples, int num_buckets);

}  // namespace dspark::cli
