// Per-position calibration of a drafter's confidences against the target's
// past verdicts. A drafter without a trained confidence head reports its
// top-1 probability, which can be far from the real acceptance rate (a
// shallow self-draft model is confident and mostly wrong); the step scheduler
// needs calibrated numbers to decide whether verifying pays. The factor for
// position i is (accepted + prior) / (predicted + prior) over positions that
// were verified and reached (all earlier ones accepted), with exponential
// forgetting. Only past verdicts feed it, so the current step's choice still
// depends on the draft alone. Not thread-safe (the step thread owns it).
#pragma once

#include "absl/types/span.h"

namespace dspark::spec {

class AcceptanceCalibrator {
 public:
  static constexpr int kPositions = 16;

  // `prior`: pseudo-observations pulling each factor towards 1. `decay`:
  // weight kept by old observations at each new one.
  explicit AcceptanceCalibrator(double prior = 4.0, double decay = 0.998)
      : prior_(prior), decay_(decay) {}

  // Scales confidences [n] in place, clamped to [0, 1].
  void Apply(absl::Span<float> confidences) const;

  // After verification: the raw confidences of the block, how many drafted
  // tokens were verified and how many of them were accepted.
  void Observe(absl::Span<const float> raw, int verified, int accepted);

  // The current factor of position i.
  double Factor(int i) const;

 private:
  double prior_;
  double decay_;
  double predicted_[kPositions] = {};
  double accepted_[kPositions] = {};
};

}  // namespace dspark::spec
