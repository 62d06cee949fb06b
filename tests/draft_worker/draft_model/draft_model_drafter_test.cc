// DraftModelDrafter on the real default model (SmolLM2 and its first layers
// as self-draft models): drafts equal the draft model's own greedy decoding,
// batching and rollback change no bit, q is a distribution, and bad input or
// an exhausted KV cache changes nothing. Skips when the model is not pulled.
#include "draft_worker/draft_model/draft_model_drafter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <numeric>

#include "common/engine/model/generate.h"
#include "common/engine/model_store/model_store.h"

namespace dspark::drafter {
namespace {

using engine::Model;

// Arbitrary in-vocabulary ids; the model's continuation of them is what it is.
const std::vector<int32_t> kPromptA = {1, 4093, 314, 253, 1789, 28, 2012, 30, 5534, 3458, 314};
const std::vector<int32_t> kPromptB = {504, 3820, 282, 260, 3458, 314, 9050, 30, 216};

bool Same(const DraftBlock& a, const DraftBlock& b) {
  return a.tokens == b.tokens && a.q == b.q && a.confidence == b.confidence;
}

class DraftModelDrafterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = new std::string(ModelPath(ModelCacheDir(), "smollm2-135m-instruct"));
    if (::access(path_->c_str(), R_OK) != 0) return;
    auto target = Model::Load(*path_, {.threads = 2});
    ASSERT_TRUE(target.ok()) << target.status();
    target_ = target->release();
  }
  static void TearDownTestSuite() {
    delete target_;
    delete path_;
    target_ = nullptr;
  }
  void SetUp() override {
    if (target_ == nullptr) {
      GTEST_SKIP() << *path_ << " not found: run `dspark pull smollm2-135m-instruct` first";
    }
  }

  // A drafter over the first `layers` layers of the target (0 = all).
  static std::unique_ptr<DraftModelDrafter> MakeDrafter(int layers, int64_t kv_tokens = 4096) {
    auto draft = Model::Load(*path_, {.threads = 2, .max_layers = layers});
    EXPECT_TRUE(draft.ok()) << draft.status();
    auto d = DraftModelDrafter::Create(std::move(*draft), target_->config().vocab_size,
                                       {.kv = {.max_tokens = kv_tokens}});
    EXPECT_TRUE(d.ok()) << d.status();
    return std::move(*d);
  }

  // Opens `s` with `context` committed and drafts one block after `last`.
  static DraftBlock Fresh(DraftModelDrafter& d, SessionId s, const std::vector<int32_t>& context,
                          const DraftRequest& request) {
    EXPECT_TRUE(d.Open(s).ok());
    EXPECT_TRUE(d.Extend(s, context, {}).ok());
    std::vector<DraftBlock> blocks;
    absl::Status st = d.Draft({request}, &blocks);
    EXPECT_TRUE(st.ok()) << st;
    return blocks.empty() ? DraftBlock{} : blocks[0];
  }

  static std::string* path_;
  static Model* target_;
};
std::string* DraftModelDrafterTest::path_ = nullptr;
Model* DraftModelDrafterTest::target_ = nullptr;

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_F(DraftModelDrafterTest, TheFullTargetDraftsItsOwnGreedyContinuation) {
  auto cache = target_->NewKvCache({.max_tokens = 256});
  auto ref = engine::Generate(*target_, *cache, kPromptA, {.max_tokens = 12});
  ASSERT_TRUE(ref.ok()) << ref.status();
  const std::vector<int32_t>& g = ref->tokens;  // [12]

  auto d = MakeDrafter(0, 256);
  EXPECT_EQ(d->name(), "draft-model");
  EXPECT_EQ(d->max_block(), 7);
  const std::vector<int32_t> context(kPromptA.begin(), kPromptA.end() - 1);
  DraftBlock b =
      Fresh(*d, 1, context, {.session = 1, .last_token = kPromptA.back(), .max_tokens = 7});
  EXPECT_EQ(b.tokens, std::vector<int32_t>(g.begin(), g.begin() + 7));
  // The target accepted 3 drafts; its bonus g[3] is the next last_token.
  ASSERT_TRUE(d->Extend(1, {kPromptA.back(), g[0], g[1], g[2]}, {}).ok());
  std::vector<DraftBlock> blocks;
  ASSERT_TRUE(d->Draft({{.session = 1, .last_token = g[3], .max_tokens = 7}}, &blocks).ok());
  EXPECT_EQ(blocks[0].tokens, std::vector<int32_t>(g.begin() + 4, g.begin() + 11));
  for (const SparseDist& q : blocks[0].q) EXPECT_EQ(q.size(), 1u);
}

TEST_F(DraftModelDrafterTest, BatchingSessionsChangesNoBit) {
  auto batched = MakeDrafter(8);
  auto alone = MakeDrafter(8);
  const DraftRequest ra = {.session = 1, .last_token = 314, .max_tokens = 6};
  const DraftRequest rb = {.session = 2,
                           .last_token = 216,
                           .max_tokens = 4,
                           .sampling = {.temperature = 0.8f, .seed = 42},
                           .draw_counter = 17};
  const DraftBlock a = Fresh(*alone, 1, kPromptA, ra);
  const DraftBlock b = Fresh(*alone, 2, kPromptB, rb);
  ASSERT_EQ(a.tokens.size(), 6u);
  ASSERT_EQ(b.tokens.size(), 4u);

  ASSERT_TRUE(batched->Open(1).ok());
  ASSERT_TRUE(batched->Open(2).ok());
  ASSERT_TRUE(batched->Extend(1, kPromptA, {}).ok());
  ASSERT_TRUE(batched->Extend(2, kPromptB, {}).ok());
  std::vector<DraftBlock> blocks;
  ASSERT_TRUE(batched->Draft({rb, ra}, &blocks).ok());
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_TRUE(Same(blocks[0], b));
  EXPECT_TRUE(Same(blocks[1], a));
}

TEST_F(DraftModelDrafterTest, RollbackEqualsAFreshDrafterOnTheCommittedTokens) {
  auto d = MakeDrafter(8);
  const std::vector<int32_t> context(kPromptA.begin(), kPromptA.end() - 1);
  const int32_t last = kPromptA.back();
  DraftBlock first = Fresh(*d, 1, context, {.session = 1, .last_token = last, .max_tokens = 5});
  ASSERT_EQ(first.tokens.size(), 5u);
  // Two drafts accepted; the target's correction differs from the third.
  const int32_t correction = first.tokens[2] == 42 ? 43 : 42;
  const std::vector<int32_t> committed = {last, first.tokens[0], first.tokens[1]};
  ASSERT_TRUE(d->Extend(1, committed, {}).ok());
  const DraftRequest next = {.session = 1, .last_token = correction, .max_tokens = 5};
  std::vector<DraftBlock> blocks;
  ASSERT_TRUE(d->Draft({next}, &blocks).ok());
  auto fresh = MakeDrafter(8);
  EXPECT_TRUE(Same(blocks[0], Fresh(*fresh, 1, Concat(context, committed), next)));

  // No draft accepted, then a block dropped without an Extend: still exact.
  ASSERT_TRUE(d->Extend(1, {correction}, {}).ok());
  ASSERT_TRUE(d->Draft({{.session = 1, .last_token = 7, .max_tokens = 3}}, &blocks).ok());
  const DraftRequest last_request = {.session = 1, .last_token = 7, .max_tokens = 7};
  ASSERT_TRUE(d->Draft({last_request}, &blocks).ok());
  auto fresh2 = MakeDrafter(8);
  EXPECT_TRUE(Same(blocks[0], Fresh(*fresh2, 1, Concat(Concat(context, committed), {correction}),
                                    last_request)));
  // The KV holds the committed tokens plus the fed drafts, nothing more.
  EXPECT_EQ(d->kv_cache().Length(0), static_cast<int64_t>(context.size() + 4 + 7));
}

TEST_F(DraftModelDrafterTest, QIsADistributionAndConfidenceAProbability) {
  auto d = MakeDrafter(8);
  for (float temperature : {0.0f, 0.7f, 1.5f}) {
    const SessionId s = static_cast<SessionId>(temperature * 10);
    DraftBlock b = Fresh(*d, s, kPromptB,
                         {.session = s,
                          .last_token = 216,
                          .max_tokens = 7,
                          .sampling = {.temperature = temperature, .seed = 3}});
    ASSERT_EQ(b.tokens.size(), 7u);
    for (size_t i = 0; i < 7; ++i) {
      double sum = 0;
      bool has_token = false;
      for (const auto& [t, p] : b.q[i]) {
        EXPECT_GT(p, 0.0f);
        sum += p;
        has_token |= t == b.tokens[i];
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
      EXPECT_TRUE(has_token);
      EXPECT_LE(b.q[i].size(), static_cast<size_t>(kDraftTopK));
      if (temperature == 0) {
        EXPECT_EQ(b.q[i].size(), 1u);
      }
      EXPECT_GT(b.confidence[i], 0.0f);
      EXPECT_LE(b.confidence[i], 1.0f);
    }
  }
}

TEST_F(DraftModelDrafterTest, RejectsADraftModelOfAnotherVocabulary) {
  auto draft = Model::Load(*path_, {.threads = 1, .max_layers = 2});
  ASSERT_TRUE(draft.ok());
  auto d = DraftModelDrafter::Create(std::move(*draft), target_->config().vocab_size + 1, {});
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), ::testing::HasSubstr("vocabulary"));
  auto ok =
      DraftModelDrafter::CreateShared(target_, target_->config().vocab_size, {.max_block = 0});
  EXPECT_EQ(ok.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DraftModelDrafterTest, BadInputChangesNothing) {
  auto d = MakeDrafter(4);
  const DraftRequest good = {.session = 1, .last_token = 314, .max_tokens = 4};
  ASSERT_TRUE(d->Open(1).ok());
  EXPECT_EQ(d->Open(1).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(d->Extend(1, kPromptA, {}).ok());
  const int32_t vocab = target_->config().vocab_size;
  EXPECT_EQ(d->Extend(1, {5, vocab}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->Extend(9, {5}, {}).code(), absl::StatusCode::kInvalidArgument);
  std::vector<DraftBlock> blocks;
  for (const DraftRequest& bad : std::vector<DraftRequest>{
           {.session = 9, .last_token = 1, .max_tokens = 1},
           {.session = 1, .last_token = 1, .max_tokens = 0},
           {.session = 1, .last_token = 1, .max_tokens = 8},
           {.session = 1, .last_token = vocab, .max_tokens = 1},
           {.session = 1, .last_token = 1, .max_tokens = 1, .sampling = {.top_p = 2.0f}}}) {
    EXPECT_EQ(d->Draft({good, bad}, &blocks).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(d->Draft({good, good}, &blocks).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(d->Draft({good}, &blocks).ok());
  auto fresh = MakeDrafter(4);
  EXPECT_TRUE(Same(blocks[0], Fresh(*fresh, 1, kPromptA, good)));
  d->Close(1);
  d->Close(1);  // unknown: ignored
  EXPECT_EQ(d->Extend(1, {5}, {}).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DraftModelDrafterTest, KvExhaustionIsResourceExhaustedAndChangesNothing) {
  // 64 positions in blocks of 16: two 30-token sessions drafting 7 need 6 blocks.
  auto d = MakeDrafter(4, 64);
  std::vector<int32_t> context(30);
  std::iota(context.begin(), context.end(), 100);
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Open(2).ok());
  ASSERT_TRUE(d->Extend(1, context, {}).ok());
  ASSERT_TRUE(d->Extend(2, context, {}).ok());
  const int64_t free_before = d->kv_cache().free_blocks();
  std::vector<DraftBlock> blocks;
  const DraftRequest r1 = {.session = 1, .last_token = 5, .max_tokens = 7};
  const DraftRequest r2 = {.session = 2, .last_token = 6, .max_tokens = 7};
  EXPECT_EQ(d->Draft({r1, r2}, &blocks).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(d->kv_cache().free_blocks(), free_before);
  // Each alone fits, and drafts what a fresh drafter drafts.
  ASSERT_TRUE(d->Draft({r1}, &blocks).ok());
  auto fresh = MakeDrafter(4, 64);
  EXPECT_TRUE(Same(blocks[0], Fresh(*fresh, 1, context, r1)));
}

}  // namespace
}  // namespace dspark::drafter
