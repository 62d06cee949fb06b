#include "draft_worker/drafter/draft_sampling.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dspark::drafter {

int32_t SampleDraft(const float* logits, int64_t vocab, const engine::SamplingParams& sampling,
                    int top_k, double u, SparseDist* q, float* top1_prob) {
  const int32_t best = engine::ArgMax(logits, vocab);
  if (top1_prob != nullptr) {
    double z = 0;
    for (int64_t i = 0; i < vocab; ++i)
      z += std::exp(static_cast<double>(logits[i] - logits[best]));
    *top1_prob = static_cast<float>(1.0 / z);
  }
  q->clear();
  if (sampling.temperature <= 0.0f) {
    q->emplace_back(best, 1.0f);
    return best;
  }
  engine::SamplingParams truncated{.temperature = sampling.temperature,
                                   .top_k = std::max(1, top_k)};
  *q = engine::FilteredDistribution(logits, vocab, truncated);
  // Inverse CDF over the sorted list; the last entry absorbs rounding.
  double acc = 0;
  for (size_t i = 0; i + 1 < q->size(); ++i) {
    acc += (*q)[i].second;
    if (u < acc) return (*q)[i].first;
  }
  return q->back().first;
}

}  // namespace dspark::drafter
