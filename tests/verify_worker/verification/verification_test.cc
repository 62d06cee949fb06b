#include "verify_worker/verification/verification.h"

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace dspark::verify {
namespace {

using drafter::SparseDist;

// Target logits for `rows` positions over a small vocabulary.
std::vector<float> RandomLogits(int rows, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.5f);
  std::vector<float> logits(rows * vocab);
  for (float& z : logits) z = n(rng);
  return logits;
}

// A random sparse draft distribution and a token drawn from it.
SparseDist RandomQ(int vocab, int support, std::mt19937& rng) {
  std::vector<int32_t> ids(vocab);
  for (int i = 0; i < vocab; ++i) ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), rng);
  std::uniform_real_distribution<float> u(0.05f, 1.0f);
  SparseDist q;
  float sum = 0;
  for (int i = 0; i < support; ++i) {
    q.emplace_back(ids[i], u(rng));
    sum += q.back().second;
  }
  for (auto& e : q) e.second /= sum;
  return q;
}

int32_t DrawFrom(const SparseDist& q, double u) {
  double acc = 0;
  for (size_t i = 0; i + 1 < q.size(); ++i) {
    acc += q[i].second;
    if (u < acc) return q[i].first;
  }
  return q.back().first;
}

// Total-variation distance between an empirical histogram of `n` draws and p.
double TotalVariation(const std::map<int32_t, int>& counts, int n, const SparseDist& p) {
  std::map<int32_t, double> diff;
  for (const auto& [id, c] : counts) diff[id] += static_cast<double>(c) / n;
  for (const auto& [id, prob] : p) diff[id] -= prob;
  double tv = 0;
  for (const auto& [id, d] : diff) tv += std::abs(d);
  return tv / 2;
}

TEST(VerifyGreedy, AcceptsTheMatchingPrefixThenTheTargetsToken) {
  const int vocab = 10;
  std::vector<float> logits(4 * vocab, 0.0f);
  const int32_t argmax[4] = {3, 7, 1, 9};
  for (int r = 0; r < 4; ++r) logits[r * vocab + argmax[r]] = 5.0f;
  std::vector<int32_t> draft = {3, 7, 2};
  std::vector<SparseDist> q = {{{3, 1.0f}}, {{7, 1.0f}}, {{2, 1.0f}}};
  VerifyResult r = Verify({.logits = logits.data(), .vocab = vocab, .draft = draft, .q = q});
  EXPECT_EQ(r.accepted, 2);
  EXPECT_EQ(r.next_token, 1);  // the target's choice at the first mismatch

  draft = {3, 7, 1};
  r = Verify({.logits = logits.data(), .vocab = vocab, .draft = draft, .q = q});
  EXPECT_EQ(r.accepted, 3);
  EXPECT_EQ(r.next_token, 9);  // the bonus token

  r = Verify({.logits = logits.data(), .vocab = vocab});
  EXPECT_EQ(r.accepted, 0);
  EXPECT_EQ(r.next_token, 3);
}

TEST(VerifySampled, EmptyDraftDrawsExactlyAsPlainDecoding) {
  const int vocab = 50;
  auto logits = RandomLogits(1, vocab, 1);
  engine::SamplingParams sp{.temperature = 0.8f, .top_k = 20, .seed = 42};
  for (uint64_t i = 0; i < 100; ++i) {
    VerifyResult r = Verify({.logits = logits.data(),
                             .vocab = vocab,
                             .sampling = sp,
                             .generated_index = i,
                             .draw_counter = 1000 + i});
    EXPECT_EQ(r.next_token, engine::SampleToken(logits.data(), vocab, sp, i));
  }
}

// The first emitted token of a verified block must be distributed as the
// target's filtered p, whatever q the drafter used; and, given the first
// draft was accepted, the second emitted token as p at row 1.
//
// Bound: with N draws over K categories the expected TV of an exact sampler
// is about sqrt(K / (2 pi N)) (sum of K half-normal deviations of sd
// sqrt(p(1-p)/N), halved); for K = 12 and N = 200,000 that is 0.0031. A
// 0.012 bound is ~4x that, so a correct verifier fails with negligible
// probability, while the drafts' own distribution q (what a verifier that
// accepted everything would emit) sits far above it (checked below).
TEST(VerifySampled, EmittedTokensFollowTheTargetDistribution) {
  const int vocab = 12, n = 200000;
  std::mt19937 rng(7);
  const auto logits = RandomLogits(3, vocab, 3);
  struct Case {
    engine::SamplingParams sp;
    int q_support;
  };
  const Case cases[] = {
      {{.temperature = 1.0f, .seed = 1}, 4},
      {{.temperature = 0.7f, .top_k = 6, .seed = 2}, 8},  // q outside p's support
      {{.temperature = 1.3f, .top_p = 0.8f, .min_p = 0.02f, .seed = 3},
       1},  // point-mass q (n-gram)
  };
  for (const Case& c : cases) {
    const SparseDist p0 = engine::FilteredDistribution(logits.data(), vocab, c.sp);
    const SparseDist p1 = engine::FilteredDistribution(logits.data() + vocab, vocab, c.sp);
    SparseDist q0 = RandomQ(vocab, c.q_support, rng);
    SparseDist q1 = RandomQ(vocab, c.q_support, rng);
    if (c.q_support == 1) {  // an n-gram style guess: the target's likeliest token
      q0 = {{p0.front().first, 1.0f}};
      q1 = {{p1.front().first, 1.0f}};
    }
    std::map<int32_t, int> first, second, drafted;
    int second_n = 0;
    const uint64_t draft_seed = drafter::DraftSeed(c.sp.seed);
    for (int i = 0; i < n; ++i) {
      std::vector<int32_t> draft = {DrawFrom(q0, engine::UniformDraw(draft_seed, 2 * i)),
                                    DrawFrom(q1, engine::UniformDraw(draft_seed, 2 * i + 1))};
      std::vector<SparseDist> q = {q0, q1};
      VerifyResult r = Verify({.logits = logits.data(),
                               .vocab = vocab,
                               .draft = draft,
                               .q = q,
                               .sampling = c.sp,
                               .draw_counter = 6ull * i});
      ++drafted[draft[0]];
      ++first[r.accepted >= 1 ? draft[0] : r.next_token];
      if (r.accepted >= 1) {
        ++second[r.accepted >= 2 ? draft[1] : r.next_token];
        ++second_n;
      }
    }
    EXPECT_LT(TotalVariation(first, n, p0), 0.012) << "temperature " << c.sp.temperature;
    // Fewer samples for the conditional: scale the bound by sqrt(n / second_n).
    ASSERT_GT(second_n, n / 20);
    EXPECT_LT(TotalVariation(second, second_n, p1), 0.012 * std::sqrt(double(n) / second_n));
    // The test has power: the raw drafts are far from p.
    EXPECT_GT(TotalVariation(drafted, n, p0), 0.05);
  }
}

TEST(VerifySampled, RejectsATokenTheDrafterGaveNoMass) {
  const int vocab = 6;
  std::vector<float> logits(2 * vocab, 0.0f);
  std::vector<int32_t> draft = {2};
  std::vector<SparseDist> q = {{{4, 1.0f}}};  // inconsistent: 2 is not in q
  engine::SamplingParams sp{.temperature = 1.0f};
  for (uint64_t c = 0; c < 50; ++c) {
    VerifyResult r = Verify({.logits = logits.data(),
                             .vocab = vocab,
                             .draft = draft,
                             .q = q,
                             .sampling = sp,
                             .draw_counter = 4 * c});
    EXPECT_EQ(r.accepted, 0);
    EXPECT_NE(r.next_token, 4);  // the residual max(p - q, 0) has no mass at 4
  }
}

}  // namespace
}  // namespace dspark::verify
