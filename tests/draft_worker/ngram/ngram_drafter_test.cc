// NgramDrafter: longest, most recent match; blocks cut at the end of the
// history; the incremental index agrees with a brute-force search; confidence
// learned from verdicts; input errors change nothing. Pure: no model.
#include "draft_worker/ngram/ngram_drafter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace dspark::drafter {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::unique_ptr<NgramDrafter> Make(const NgramDrafterOptions& options = {}) {
  auto d = NgramDrafter::Create(options);
  EXPECT_TRUE(d.ok()) << d.status();
  return std::move(*d);
}

DraftBlock DraftOne(NgramDrafter& d, SessionId s, int32_t last, int max_tokens,
                    engine::SamplingParams sampling = {}) {
  std::vector<DraftBlock> blocks;
  absl::Status st =
      d.Draft({{.session = s, .last_token = last, .max_tokens = max_tokens, .sampling = sampling}},
              &blocks);
  EXPECT_TRUE(st.ok()) << st;
  return blocks.empty() ? DraftBlock{} : blocks[0];
}

TEST(NgramDrafterTest, PrefersTheLongestMatch) {
  auto d = Make({.min_ngram = 1, .max_ngram = 3});
  ASSERT_TRUE(d->Open(1).ok());
  // "1 2 3" once, followed by 10 11; "2 3" more recently, followed by 20 21.
  ASSERT_TRUE(d->Extend(1, {1, 2, 3, 10, 11, 4, 2, 3, 20, 21, 1, 2}, {}).ok());
  DraftBlock b = DraftOne(*d, 1, /*last=*/3, /*max_tokens=*/3);
  EXPECT_THAT(b.tokens, ElementsAre(10, 11, 4));
  // With max_ngram 2 the most recent "2 3" wins.
  auto d2 = Make({.min_ngram = 1, .max_ngram = 2});
  ASSERT_TRUE(d2->Open(1).ok());
  ASSERT_TRUE(d2->Extend(1, {1, 2, 3, 10, 11, 4, 2, 3, 20, 21, 1, 2}, {}).ok());
  EXPECT_THAT(DraftOne(*d2, 1, 3, 3).tokens, ElementsAre(20, 21, 1));
}

TEST(NgramDrafterTest, TakesTheMostRecentOccurrenceAndStopsAtTheEnd) {
  auto d = Make({.max_ngram = 2});
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Extend(1, {1, 2, 7, 1, 2, 8, 0, 1}, {}).ok());
  // "1 2" last seen at 3..4; what followed runs into the request's last_token
  // and then the history ends: 4 tokens, not 7.
  DraftBlock b = DraftOne(*d, 1, /*last=*/2, /*max_tokens=*/7);
  EXPECT_THAT(b.tokens, ElementsAre(8, 0, 1, 2));
  EXPECT_EQ(b.q.size(), 4u);
  EXPECT_EQ(b.confidence.size(), 4u);
}

TEST(NgramDrafterTest, FallsBackToShorterMatchesDownToMinNgram) {
  auto d = Make({.min_ngram = 1, .max_ngram = 3});
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Extend(1, {5, 6, 9, 9}, {}).ok());
  EXPECT_THAT(DraftOne(*d, 1, 5, 2).tokens, ElementsAre(6, 9));  // only "5" matches
  auto strict = Make({.min_ngram = 2, .max_ngram = 3});
  ASSERT_TRUE(strict->Open(1).ok());
  ASSERT_TRUE(strict->Extend(1, {5, 6, 9, 9}, {}).ok());
  EXPECT_THAT(DraftOne(*strict, 1, 5, 2).tokens, IsEmpty());
}

TEST(NgramDrafterTest, EmptyBlockWhenNothingMatches) {
  auto d = Make();
  ASSERT_TRUE(d->Open(1).ok());
  DraftBlock b = DraftOne(*d, 1, 4, 5);  // no history at all
  EXPECT_THAT(b.tokens, IsEmpty());
  ASSERT_TRUE(d->Extend(1, {1, 2, 3}, {}).ok());
  b = DraftOne(*d, 1, 4, 5);
  EXPECT_THAT(b.tokens, IsEmpty());
  EXPECT_THAT(b.q, IsEmpty());
  EXPECT_THAT(b.confidence, IsEmpty());
}

TEST(NgramDrafterTest, RespectsMaxTokensAndMaxBlock) {
  auto d = Make({.max_block = 4});
  EXPECT_EQ(d->max_block(), 4);
  EXPECT_EQ(d->name(), "ngram");
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Extend(1, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {}).ok());
  for (int k = 1; k <= 4; ++k) EXPECT_EQ(DraftOne(*d, 1, 1, k).tokens.size(), k);
  std::vector<DraftBlock> blocks;
  for (int bad : {0, 5, -1}) {
    EXPECT_EQ(d->Draft({{.session = 1, .last_token = 1, .max_tokens = bad}}, &blocks).code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(NgramDrafterTest, QIsOneHotForGreedyAndSampledRequests) {
  auto d = Make();
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Extend(1, {1, 2, 3, 4, 5}, {}).ok());
  for (float temperature : {0.0f, 0.7f}) {
    DraftBlock b = DraftOne(*d, 1, 2, 3, {.temperature = temperature, .seed = 9});
    ASSERT_THAT(b.tokens, ElementsAre(3, 4, 5));
    for (size_t i = 0; i < b.tokens.size(); ++i) {
      ASSERT_EQ(b.q[i].size(), 1u);
      EXPECT_EQ(b.q[i][0].first, b.tokens[i]);
      EXPECT_EQ(b.q[i][0].second, 1.0f);
      EXPECT_GT(b.confidence[i], 0.0f);
      EXPECT_LT(b.confidence[i], 1.0f);
    }
  }
}

// The reference: scan the whole sequence for the latest earlier occurrence.
std::vector<int32_t> BruteForce(const std::vector<int32_t>& history, int32_t last, int max_tokens,
                                int min_n, int max_n) {
  std::vector<int32_t> seq = history;
  seq.push_back(last);
  const int len = static_cast<int>(seq.size());
  for (int n = max_n; n >= min_n; --n) {
    if (n > len - 1) continue;
    for (int start = len - 1 - n; start >= 0; --start) {  // occurrence seq[start, start + n)
      if (!std::equal(seq.begin() + start, seq.begin() + start + n, seq.end() - n)) continue;
      std::vector<int32_t> out;
      for (int p = start + n; p < len && static_cast<int>(out.size()) < max_tokens; ++p) {
        out.push_back(seq[p]);
      }
      return out;
    }
  }
  return {};
}

TEST(NgramDrafterTest, IncrementalIndexAgreesWithBruteForce) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 20; ++trial) {
    const int min_n = 1 + trial % 2, max_n = min_n + trial % 4;
    auto d = Make({.min_ngram = min_n, .max_ngram = max_n, .max_block = 6});
    ASSERT_TRUE(d->Open(trial).ok());
    std::vector<int32_t> history;
    const int alphabet = 3 + trial % 5;
    for (int round = 0; round < 40; ++round) {
      std::vector<int32_t> chunk(rng() % 4);
      for (int32_t& t : chunk) t = static_cast<int32_t>(rng() % alphabet);
      ASSERT_TRUE(d->Extend(trial, chunk, {}).ok());
      history.insert(history.end(), chunk.begin(), chunk.end());
      const int32_t last = static_cast<int32_t>(rng() % alphabet);
      const int k = 1 + static_cast<int>(rng() % 6);
      ASSERT_EQ(DraftOne(*d, trial, last, k).tokens, BruteForce(history, last, k, min_n, max_n))
          << "trial " << trial << " round " << round;
    }
  }
}

// One verify round on a fresh session whose history makes the drafter propose
// [4, 5, 1, 2, 3] (match "1 2 3", n = 3): the target commits the first
// `accepted` drafts and then `next`.
void Round(NgramDrafter& d, SessionId s, int accepted, int32_t next) {
  ASSERT_TRUE(d.Open(s).ok());
  ASSERT_TRUE(d.Extend(s, {1, 2, 3, 4, 5, 1, 2}, {}).ok());
  const std::vector<int32_t> drafted = DraftOne(d, s, 3, 5).tokens;
  ASSERT_THAT(drafted, ElementsAre(4, 5, 1, 2, 3));
  std::vector<int32_t> committed = {3};
  committed.insert(committed.end(), drafted.begin(), drafted.begin() + accepted);
  ASSERT_TRUE(d.Extend(s, committed, {}).ok());
  DraftOne(d, s, next, 1);  // the next step's request carries the correction
  d.Close(s);
}

TEST(NgramDrafterTest, ConfidenceStartsAtThePriorAndLearnsFromVerdicts) {
  auto d = Make({.confidence_prior = 0.5, .prior_weight = 2});
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Extend(1, {1, 2, 3, 4, 5, 1, 2}, {}).ok());
  DraftBlock b = DraftOne(*d, 1, 3, 5);
  for (float c : b.confidence) EXPECT_FLOAT_EQ(c, 0.5f);
  d->Close(1);

  // Two accepted, then a correction that differs from draft 2: positions 0
  // and 1 seen accepted, position 2 rejected, positions 3-4 unseen.
  Round(*d, 10, /*accepted=*/2, /*next=*/77);
  EXPECT_DOUBLE_EQ(d->Confidence(3, 0), (1.0 + 1) / 3);
  EXPECT_DOUBLE_EQ(d->Confidence(3, 1), (1.0 + 1) / 3);
  EXPECT_DOUBLE_EQ(d->Confidence(3, 2), 1.0 / 3);
  EXPECT_DOUBLE_EQ(d->Confidence(3, 3), 0.5);
  EXPECT_DOUBLE_EQ(d->Confidence(1, 0), 0.5);  // other match lengths untouched
  // One accepted and the next token equals draft 1 (the verifier stopped
  // there and the target agreed): as good as an acceptance of position 1.
  Round(*d, 11, /*accepted=*/1, /*next=*/5);
  EXPECT_DOUBLE_EQ(d->Confidence(3, 1), (1.0 + 2) / 4);
  EXPECT_DOUBLE_EQ(d->Confidence(3, 2), 1.0 / 3);
  // The new estimate reaches the next blocks' confidences.
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Extend(1, {1, 2, 3, 4, 5, 1, 2}, {}).ok());
  b = DraftOne(*d, 1, 3, 5);
  EXPECT_FLOAT_EQ(b.confidence[1], 0.75f);
}

TEST(NgramDrafterTest, ConfidenceMovesTowardTheObservedRate) {
  auto d = Make();
  // Position 0 accepted in 4 of 5 rounds, position 1 never.
  for (int r = 0; r < 200; ++r) Round(*d, r, r % 5 == 0 ? 0 : 1, /*next=*/99);
  EXPECT_NEAR(d->Confidence(3, 0), 0.8, 0.03);
  EXPECT_LT(d->Confidence(3, 1), 0.05);
  EXPECT_DOUBLE_EQ(d->Confidence(3, 2), 0.5);
}

TEST(NgramDrafterTest, AllAcceptedBlocksNeedNoNextToken) {
  auto d = Make();
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Extend(1, {1, 2, 3, 4, 5, 1, 2}, {}).ok());
  ASSERT_THAT(DraftOne(*d, 1, 3, 2).tokens, ElementsAre(4, 5));
  ASSERT_TRUE(d->Extend(1, {3, 4, 5}, {}).ok());
  EXPECT_DOUBLE_EQ(d->Confidence(3, 1), 2.0 / 3);
  // An Extend carrying more than the block also settles it: [last, 4, 9]
  // rejected draft 1 (9 followed draft 0).
  ASSERT_TRUE(d->Open(2).ok());
  ASSERT_TRUE(d->Extend(2, {1, 2, 3, 4, 5, 1, 2}, {}).ok());
  ASSERT_THAT(DraftOne(*d, 2, 3, 3).tokens, ElementsAre(4, 5, 1));
  ASSERT_TRUE(d->Extend(2, {3, 4, 9}, {}).ok());
  EXPECT_DOUBLE_EQ(d->Confidence(3, 0), 3.0 / 4);
  EXPECT_DOUBLE_EQ(d->Confidence(3, 1), 2.0 / 4);
}

TEST(NgramDrafterTest, BlocksDroppedWithoutExtendTeachNothing) {
  auto d = Make();
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Extend(1, {1, 2, 3, 4, 5, 1, 2}, {}).ok());
  DraftOne(*d, 1, 3, 3);
  DraftOne(*d, 1, 3, 3);  // the first block never got a verdict
  // An Extend that does not start with the block's last_token is no verdict.
  ASSERT_TRUE(d->Extend(1, {8}, {}).ok());
  DraftOne(*d, 1, 3, 3);
  for (int pos = 0; pos < 3; ++pos) EXPECT_DOUBLE_EQ(d->Confidence(3, pos), 0.5);
}

TEST(NgramDrafterTest, UnknownSessionsAndBadInputChangeNothing) {
  auto d = Make();
  std::vector<DraftBlock> blocks;
  EXPECT_EQ(d->Extend(5, {1, 2}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->Draft({{.session = 5, .last_token = 1, .max_tokens = 1}}, &blocks).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(d->Open(1).ok());
  EXPECT_EQ(d->Open(1).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(d->Extend(1, {1, 2, 3}, {}).ok());
  const float features[] = {1.0f};
  EXPECT_EQ(d->Extend(1, {4}, features).code(), absl::StatusCode::kInvalidArgument);
  // A batch with one bad request drafts nothing for the good one either.
  EXPECT_EQ(d->Draft({{.session = 1, .last_token = 1, .max_tokens = 2},
                      {.session = 5, .last_token = 1, .max_tokens = 2}},
                     &blocks)
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->Draft({{.session = 1, .last_token = 1, .max_tokens = 2},
                      {.session = 1, .last_token = 1, .max_tokens = 2}},
                     &blocks)
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(DraftOne(*d, 1, 1, 3).tokens, ElementsAre(2, 3, 1));  // history still 1 2 3
  d->Close(77);                                                     // unknown: ignored
}

TEST(NgramDrafterTest, CloseForgetsTheSessionAndTheIdCanBeReused) {
  auto d = Make();
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Extend(1, {1, 2, 3}, {}).ok());
  d->Close(1);
  std::vector<DraftBlock> blocks;
  EXPECT_EQ(d->Draft({{.session = 1, .last_token = 1, .max_tokens = 1}}, &blocks).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->Extend(1, {1}, {}).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(d->Open(1).ok());
  EXPECT_THAT(DraftOne(*d, 1, 1, 3).tokens, IsEmpty());  // the old history is gone
  ASSERT_TRUE(d->Extend(1, {1, 9}, {}).ok());
  EXPECT_THAT(DraftOne(*d, 1, 1, 3).tokens, ElementsAre(9, 1));
}

TEST(NgramDrafterTest, BatchesManySessionsIndependently) {
  auto d = Make();
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Open(2).ok());
  ASSERT_TRUE(d->Extend(1, {1, 2, 3}, {}).ok());
  ASSERT_TRUE(d->Extend(2, {1, 5, 6}, {}).ok());
  std::vector<DraftBlock> blocks;
  ASSERT_TRUE(d->Draft({{.session = 2, .last_token = 1, .max_tokens = 2},
                        {.session = 1, .last_token = 1, .max_tokens = 2}},
                       &blocks)
                  .ok());
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_THAT(blocks[0].tokens, ElementsAre(5, 6));
  EXPECT_THAT(blocks[1].tokens, ElementsAre(2, 3));
}

TEST(NgramDrafterTest, RejectsBadOptions) {
  EXPECT_FALSE(NgramDrafter::Create({.min_ngram = 0}).ok());
  EXPECT_FALSE(NgramDrafter::Create({.min_ngram = 3, .max_ngram = 2}).ok());
  EXPECT_FALSE(NgramDrafter::Create({.max_block = 0}).ok());
  EXPECT_FALSE(NgramDrafter::Create({.confidence_prior = 1.0}).ok());
  EXPECT_FALSE(NgramDrafter::Create({.prior_weight = 0}).ok());
}

}  // namespace
}  // namespace dspark::drafter
