#include "tools/cli/drafter_eval.h"

#include <algorithm>
#include <cmath>

namespace dspark::cli {

absl::Status CalibrationProbe::Open(drafter::SessionId session) {
  pending_.erase(session);
  return inner_->Open(session);
}

absl::Status CalibrationProbe::Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                                      absl::Span<const float> features) {
  auto it = pending_.find(session);
  if (it != pending_.end() && !tokens.empty()) {
    // The engine extends a verified block with its fed last token and the
    // accepted drafts.
    const drafter::DraftBlock& block = it->second;
    const size_t drafted = std::min(block.tokens.size(), block.confidence.size());
    const size_t accepted = std::min(tokens.size() - 1, drafted);
    const size_t reached = std::min(accepted + 1, drafted);
    for (size_t i = 0; i < reached; ++i) {
      samples_.push_back({.confidence = block.confidence[i],
                          .accepted = i < accepted,
                          .position = static_cast<int>(i)});
    }
    pending_.erase(it);
  }
  return inner_->Extend(session, tokens, features);
}

absl::Status CalibrationProbe::Draft(absl::Span<const drafter::DraftRequest> requests,
                                     std::vector<drafter::DraftBlock>* blocks) {
  absl::Status st = inner_->Draft(requests, blocks);
  if (!st.ok() || blocks->size() != requests.size()) return st;
  for (size_t i = 0; i < requests.size(); ++i) pending_[requests[i].session] = (*blocks)[i];
  return st;
}

absl::Status CalibrationProbe::Fork(drafter::SessionId child, drafter::SessionId parent,
                                    int64_t prefix_len) {
  return inner_->Fork(child, parent, prefix_len);
}

void CalibrationProbe::Close(drafter::SessionId session) {
  pending_.erase(session);
  inner_->Close(session);
}

Calibration Calibrate(const std::vector<ConfidenceSample>& samples, int num_buckets) {
  num_buckets = std::max(1, num_buckets);
  Calibration c;
  c.buckets.resize(static_cast<size_t>(num_buckets));
  std::vector<double> accepted(c.buckets.size(), 0.0);
  for (int b = 0; b < num_buckets; ++b) {
    c.buckets[b].lo = static_cast<double>(b) / num_buckets;
    c.buckets[b].hi = static_cast<double>(b + 1) / num_buckets;
  }
  for (const ConfidenceSample& s : samples) {
    const double p = std::isnan(s.confidence) ? 0.0 : std::clamp<double>(s.confidence, 0.0, 1.0);
    const int b = std::min(num_buckets - 1, static_cast<int>(p * num_buckets));
    CalibrationBucket& bucket = c.buckets[b];
    ++bucket.count;
    bucket.mean_confidence += p;
    accepted[b] += s.accepted ? 1.0 : 0.0;
  }
  c.samples = static_cast<int64_t>(samples.size());
  for (size_t b = 0; b < c.buckets.size(); ++b) {
    CalibrationBucket& bucket = c.buckets[b];
    if (bucket.count == 0) continue;
    bucket.mean_confidence /= bucket.count;
    bucket.accept_rate = accepted[b] / bucket.count;
    c.ece += static_cast<double>(bucket.count) / c.samples *
             std::abs(bucket.accept_rate - bucket.mean_confidence);
  }
  return c;
}

}  // namespace dspark::cli
