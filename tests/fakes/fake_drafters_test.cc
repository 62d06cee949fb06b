// The fake drafters keep their promises: Random is reproducible and its q is
// an exact sparse distribution holding the token; AlwaysWrong proposes only
// its token; both check input like real drafters. Pure: no model.
#include "tests/fakes/fake_drafters.h"

#include <gtest/gtest.h>

#include <set>

namespace dspark::testing {
namespace {

using drafter::DraftBlock;
using drafter::DraftRequest;

bool Same(const DraftBlock& a, const DraftBlock& b) {
  return a.tokens == b.tokens && a.q == b.q && a.confidence == b.confidence;
}

TEST(RandomFakeDrafterTest, IsReproducibleAndIndependentOfTheBatch) {
  RandomFakeDrafter a(/*vocab=*/1000, /*max_block=*/7, /*seed=*/5);
  RandomFakeDrafter b(1000, 7, 5);
  for (auto* d : {&a, &b}) {
    ASSERT_TRUE(d->Open(1).ok());
    ASSERT_TRUE(d->Open(2).ok());
  }
  const DraftRequest r1 = {.session = 1, .last_token = 3, .max_tokens = 7, .draw_counter = 40};
  const DraftRequest r2 = {.session = 2,
                           .last_token = 3,
                           .max_tokens = 5,
                           .sampling = {.temperature = 1.0f, .seed = 8},
                           .draw_counter = 40};
  std::vector<DraftBlock> together, alone1, alone2;
  ASSERT_TRUE(a.Draft({r1, r2}, &together).ok());
  ASSERT_TRUE(b.Draft({r2}, &alone2).ok());
  ASSERT_TRUE(b.Draft({r1}, &alone1).ok());
  EXPECT_TRUE(Same(together[0], alone1[0]));
  EXPECT_TRUE(Same(together[1], alone2[0]));
  // Fresh counters, another session or another seed: other drafts.
  std::vector<DraftBlock> later, other_session;
  DraftRequest r1_later = r1;
  r1_later.draw_counter = 47;
  ASSERT_TRUE(a.Draft({r1_later}, &later).ok());
  EXPECT_NE(later[0].tokens, alone1[0].tokens);
  DraftRequest r1_other = r1;
  r1_other.session = 2;
  ASSERT_TRUE(a.Draft({r1_other}, &other_session).ok());
  EXPECT_NE(other_session[0].tokens, alone1[0].tokens);
  RandomFakeDrafter c(1000, 7, 6);
  ASSERT_TRUE(c.Open(1).ok());
  std::vector<DraftBlock> other_seed;
  ASSERT_TRUE(c.Draft({r1}, &other_seed).ok());
  EXPECT_NE(other_seed[0].tokens, alone1[0].tokens);
}

TEST(RandomFakeDrafterTest, QIsAnExactSparseDistributionHoldingTheToken) {
  RandomFakeDrafter d(50, 7, 1);
  ASSERT_TRUE(d.Open(1).ok());
  std::set<size_t> support_sizes;
  for (uint64_t counter = 0; counter < 200; counter += 7) {
    for (float temperature : {0.0f, 0.9f}) {
      std::vector<DraftBlock> blocks;
      ASSERT_TRUE(d.Draft({{.session = 1,
                            .last_token = 0,
                            .max_tokens = 7,
                            .sampling = {.temperature = temperature, .seed = counter},
                            .draw_counter = counter}},
                          &blocks)
                      .ok());
      const DraftBlock& b = blocks[0];
      ASSERT_EQ(b.tokens.size(), 7u);
      ASSERT_EQ(b.q.size(), 7u);
      ASSERT_EQ(b.confidence.size(), 7u);
      for (size_t i = 0; i < 7; ++i) {
        double sum = 0;
        std::set<int32_t> ids;
        for (const auto& [t, p] : b.q[i]) {
          EXPECT_GT(p, 0.0f);
          EXPECT_GE(t, 0);
          EXPECT_LT(t, 50);
          sum += p;
          ids.insert(t);
        }
        EXPECT_EQ(ids.size(), b.q[i].size()) << "repeated token in q";
        EXPECT_TRUE(ids.contains(b.tokens[i]));
        EXPECT_NEAR(sum, 1.0, 1e-5);
        if (temperature == 0) {
          EXPECT_EQ(b.q[i].size(), 1u);
        } else {
          EXPECT_LE(b.q[i].size(), 8u);
          support_sizes.insert(b.q[i].size());
        }
        EXPECT_GT(b.confidence[i], 0.0f);
        EXPECT_LT(b.confidence[i], 1.0f);
      }
    }
  }
  EXPECT_GT(support_sizes.size(), 4u) << "support sizes should vary over 1..8";
}

TEST(AlwaysWrongFakeDrafterTest, ProposesOnlyItsToken) {
  AlwaysWrongFakeDrafter d(/*token=*/0, /*max_block=*/5);
  EXPECT_EQ(d.max_block(), 5);
  ASSERT_TRUE(d.Open(3).ok());
  ASSERT_TRUE(d.Extend(3, {1, 2, 3}, {}).ok());
  std::vector<DraftBlock> blocks;
  ASSERT_TRUE(d.Draft({{.session = 3, .last_token = 9, .max_tokens = 4}}, &blocks).ok());
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_EQ(blocks[0].tokens, std::vector<int32_t>(4, 0));
  EXPECT_EQ(blocks[0].q, std::vector<drafter::SparseDist>(4, {{0, 1.0f}}));
  EXPECT_EQ(blocks[0].confidence, std::vector<float>(4, 0.9f));
}

TEST(FakeDraftersTest, CheckInputLikeRealDrafters) {
  RandomFakeDrafter random(100, 7, 1);
  AlwaysWrongFakeDrafter wrong(0);
  for (drafter::Drafter* d : std::initializer_list<drafter::Drafter*>{&random, &wrong}) {
    std::vector<DraftBlock> blocks;
    EXPECT_EQ(d->Extend(1, {1}, {}).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(d->Draft({{.session = 1, .max_tokens = 1}}, &blocks).code(),
              absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(d->Open(1).ok());
    EXPECT_EQ(d->Open(1).code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(d->Draft({{.session = 1, .max_tokens = 0}}, &blocks).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(d->Draft({{.session = 1, .max_tokens = 8}}, &blocks).code(),
              absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(d->Draft({{.session = 1, .max_tokens = 7}}, &blocks).ok());
    d->Close(1);
    EXPECT_EQ(d->Draft({{.session = 1, .max_tokens = 1}}, &blocks).code(),
              absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace dspark::testing
