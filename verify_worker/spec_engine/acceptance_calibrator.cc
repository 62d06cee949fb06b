#include "verify_worker/spec_engine/acceptance_calibrator.h"

#include <algorithm>

namespace dspark::spec {

double AcceptanceCalibrator::Factor(int i) const {
  if (i < 0 || i >= kPositions) return 1.0;
  return (accepted_[i] + prior_) / (predicted_[i] + prior_);
}

void AcceptanceCalibrator::Apply(absl::Span<float> confidences) const {
  for (size_t i = 0; i < confidences.size(); ++i) {
    const double c = std::clamp(static_cast<double>(confidences[i]), 0.0, 1.0) * Factor(i);
    confidences[i] = static_cast<float>(std::clamp(c, 0.0, 1.0));
  }
}

void AcceptanceCalibrator::Observe(absl::Span<const float> raw, int verified, int accepted) {
  // Position i was reached when every earlier one was accepted: i <= accepted.
  const int reached = std::min({verified, accepted + 1, kPositions, static_cast<int>(raw.size())});
  for (int i = 0; i < reached; ++i) {
    predicted_[i] = predicted_[i] * decay_ + std::clamp(static_cast<double>(raw[i]), 0.0, 1.0);
    accepted_[i] = accepted_[i] * decay_ + (i < accepted ? 1.0 : 0.0);
  }
}

}  // namespace dspark::spec
