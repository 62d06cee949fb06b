#include "verify_worker/verification/verification.h"

#include <algorithm>
#include <vector>

namespace dspark::verify {
namespace {

float ProbOf(const drafter::SparseDist& dist, int32_t token) {
  for (const auto& [id, p] : dist) {
    if (id == token) return p;
  }
  return 0.0f;
}

// Draws from `dist` (sums to 1) with the uniform u by inverse CDF.
int32_t Draw(const std::vector<std::pair<int32_t, float>>& dist, double u) {
  double acc = 0;
  for (size_t i = 0; i + 1 < dist.size(); ++i) {
    acc += dist[i].second;
    if (u < acc) return dist[i].first;
  }
  return dist.back().first;
}

// Draws from max(p - q, 0) / Z. If the residual is empty (p == q up to
// rounding, where a rejection has probability ~0) it draws from p.
int32_t DrawResidual(const drafter::SparseDist& p, const drafter::SparseDist& q, double u) {
  std::vector<std::pair<int32_t, float>> residual;
  double z = 0;
  for (const auto& [id, pp] : p) {
    const double r = static_cast<double>(pp) - ProbOf(q, id);
    if (r > 0) {
      residual.emplace_back(id, static_cast<float>(r));
      z += r;
    }
  }
  if (residual.empty() || z <= 0) return Draw(p, u);
  double acc = 0;
  const double target = u * z;
  for (size_t i = 0; i + 1 < residual.size(); ++i) {
    acc += residual[i].second;
    if (target < acc) return residual[i].first;
  }
  return residual.back().first;
}

VerifyResult VerifyGreedy(const VerifyInput& in) {
  const int n = static_cast<int>(in.draft.size());
  for (int i = 0; i < n; ++i) {
    const int32_t best = engine::ArgMax(in.logits + i * in.vocab, in.vocab);
    if (best != in.draft[i]) return {.accepted = i, .next_token = best};
  }
  return {.accepted = n, .next_token = engine::ArgMax(in.logits + n * in.vocab, in.vocab)};
}

}  // namespace

VerifyResult Verify(const VerifyInput& in) {
  const int n = static_cast<int>(in.draft.size());
  if (in.sampling.temperature <= 0.0f) return VerifyGreedy(in);
  if (n == 0) {
    return {
        .accepted = 0,
        .next_token = engine::SampleToken(in.logits, in.vocab, in.sampling, in.generated_index)};
  }
  const uint64_t seed = VerifySeed(in.sampling.seed);
  for (int i = 0; i < n; ++i) {
    const auto p = engine::FilteredDistribution(in.logits + i * in.vocab, in.vocab, in.sampling);
    const int32_t x = in.draft[i];
    const double qx = ProbOf(in.q[i], x);
    const double px = ProbOf(p, x);
    const double u = engine::UniformDraw(seed, in.draw_counter + 2 * i);
    // Accept with probability min(1, p/q); q(x) > 0 for a token drawn from q.
    if (qx > 0 && u * qx < px) continue;
    const double v = engine::UniformDraw(seed, in.draw_counter + 2 * i + 1);
    return {.accepted = i, .next_token = DrawResidual(p, in.q[i], v)};
  }
  const auto p = engine::FilteredDistribution(in.logits + n * in.vocab, in.vocab, in.sampling);
  return {.accepted = n,
          .next_token = Draw(p, engine::UniformDraw(seed, in.draw_counter + 2 * n + 1))};
}

}  // namespace dspark::verify
