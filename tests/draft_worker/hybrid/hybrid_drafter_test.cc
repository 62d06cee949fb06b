// HybridDrafter: the n-gram block when its expected accepted length is
// enough (the model drafter not asked), else the better of the two; both
// drafters see every session change; bad input changes nothing. Pure: the
// model drafter is a recording fake.
#include "draft_worker/hybrid/hybrid_drafter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "draft_worker/factory/drafter_factory.h"

namespace dspark::drafter {
namespace {

using ::testing::ElementsAre;

// Drafts 100, 101, ... with one fixed confidence; records what it was told.
class RecordingFakeDrafter final : public Drafter {
 public:
  explicit RecordingFakeDrafter(float confidence) : confidence_(confidence) {}
  std::string name() const override { return "recording-fake"; }
  int max_block() const override { return 5; }
  absl::Status Open(SessionId s) override {
    if (history_.contains(s)) return absl::AlreadyExistsError("open");
    history_[s];
    return absl::OkStatus();
  }
  absl::Status Extend(SessionId s, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override {
    if (!history_.contains(s)) return absl::InvalidArgumentError("unknown session");
    if (!features.empty()) return absl::InvalidArgumentError("no features here");
    history_[s].insert(history_[s].end(), tokens.begin(), tokens.end());
    return absl::OkStatus();
  }
  absl::Status Draft(absl::Span<const DraftRequest> requests,
                     std::vector<DraftBlock>* blocks) override {
    blocks->clear();
    for (const DraftRequest& r : requests) {
      if (!history_.contains(r.session)) return absl::InvalidArgumentError("unknown session");
      ++asked_;
      DraftBlock b;
      for (int i = 0; i < r.max_tokens; ++i) {
        b.tokens.push_back(100 + i);
        b.q.push_back({{100 + i, 1.0f}});
        b.confidence.push_back(confidence_);
      }
      blocks->push_back(std::move(b));
    }
    return absl::OkStatus();
  }
  absl::Status Fork(SessionId child, SessionId parent, int64_t prefix_len) override {
    if (!history_.contains(parent)) return absl::InvalidArgumentError("unknown parent");
    const std::vector<int32_t>& p = history_[parent];
    history_[child] = std::vector<int32_t>(p.begin(), p.begin() + prefix_len);
    return absl::OkStatus();
  }
  void Close(SessionId s) override { history_.erase(s); }

  int asked() const { return asked_; }
  const std::vector<int32_t>* history(SessionId s) const {
    auto it = history_.find(s);
    return it == history_.end() ? nullptr : &it->second;
  }

 private:
  float confidence_;
  int asked_ = 0;
  absl::flat_hash_map<SessionId, std::vector<int32_t>> history_;
};

struct Made {
  std::unique_ptr<HybridDrafter> hybrid;
  RecordingFakeDrafter* model;
};

Made Make(float model_confidence, double ngram_enough) {
  auto model = std::make_unique<RecordingFakeDrafter>(model_confidence);
  RecordingFakeDrafter* raw = model.get();
  auto ngram = NgramDrafter::Create({.max_block = 5});  // prior confidence 0.5
  EXPECT_TRUE(ngram.ok());
  return {std::make_unique<HybridDrafter>(std::move(model), std::move(*ngram),
                                          HybridDrafterOptions{.ngram_enough = ngram_enough}),
          raw};
}

DraftBlock DraftOne(Drafter& d, SessionId s, int32_t last, int max_tokens) {
  std::vector<DraftBlock> blocks;
  absl::Status st =
      d.Draft({{.session = s, .last_token = last, .max_tokens = max_tokens}}, &blocks);
  EXPECT_TRUE(st.ok()) << st;
  return blocks.empty() ? DraftBlock{} : blocks[0];
}

TEST(HybridDrafterTest, ExpectedAcceptedIsTheSumOfRunningProducts) {
  EXPECT_DOUBLE_EQ(ExpectedAccepted({.confidence = {}}), 0);
  EXPECT_DOUBLE_EQ(ExpectedAccepted({.confidence = {0.5f, 0.5f, 1.0f}}), 0.5 + 0.25 + 0.25);
}

TEST(HybridDrafterTest, WithoutAMatchTheModelDrafts) {
  Made m = Make(/*model_confidence=*/0.1f, /*ngram_enough=*/0.5);
  ASSERT_TRUE(m.hybrid->Open(1).ok());
  ASSERT_TRUE(m.hybrid->Extend(1, {1, 2, 3, 4}, {}).ok());
  EXPECT_THAT(DraftOne(*m.hybrid, 1, /*last=*/9, 3).tokens, ElementsAre(100, 101, 102));
  EXPECT_EQ(m.model->asked(), 1);
  EXPECT_EQ(m.hybrid->model_blocks(), 1);
  EXPECT_EQ(m.hybrid->ngram_blocks(), 0);
}

TEST(HybridDrafterTest, AnExpectedEnoughMatchSkipsTheModel) {
  // The prior 0.5 gives a 3-token match 0.5 + 0.25 + 0.125 expected tokens.
  Made m = Make(/*model_confidence=*/0.99f, /*ngram_enough=*/0.8);
  ASSERT_TRUE(m.hybrid->Open(1).ok());
  ASSERT_TRUE(m.hybrid->Extend(1, {5, 6, 7, 8, 9, 5}, {}).ok());
  EXPECT_THAT(DraftOne(*m.hybrid, 1, /*last=*/6, 3).tokens, ElementsAre(7, 8, 9));
  EXPECT_EQ(m.model->asked(), 0);
  EXPECT_EQ(m.hybrid->ngram_blocks(), 1);
}

TEST(HybridDrafterTest, BelowEnoughTheBlockExpectedToGoFurtherWins) {
  for (float model_confidence : {0.9f, 0.2f}) {
    SCOPED_TRACE(absl::StrCat("model confidence ", model_confidence));
    Made m = Make(model_confidence, /*ngram_enough=*/10);  // always ask the model
    ASSERT_TRUE(m.hybrid->Open(1).ok());
    ASSERT_TRUE(m.hybrid->Extend(1, {5, 6, 7, 8, 9, 5}, {}).ok());
    const DraftBlock b = DraftOne(*m.hybrid, 1, /*last=*/6, 3);
    EXPECT_EQ(m.model->asked(), 1);
    // Model: 0.9 + 0.81 + 0.729 > 0.875 > 0.2 + 0.04 + 0.008.
    if (model_confidence > 0.5f) {
      EXPECT_THAT(b.tokens, ElementsAre(100, 101, 102));
    } else {
      EXPECT_THAT(b.tokens, ElementsAre(7, 8, 9));
    }
    EXPECT_EQ(b.q.size(), 3u);
    EXPECT_EQ(b.confidence.size(), 3u);
  }
}

TEST(HybridDrafterTest, BothDraftersFollowEverySession) {
  Made m = Make(/*model_confidence=*/0.1f, /*ngram_enough=*/0.8);
  ASSERT_TRUE(m.hybrid->Open(1).ok());
  ASSERT_TRUE(m.hybrid->Extend(1, {5, 6, 7, 8}, {}).ok());
  ASSERT_TRUE(m.hybrid->Fork(2, 1, /*prefix_len=*/3).ok());
  EXPECT_THAT(*m.model->history(2), ElementsAre(5, 6, 7));
  // The child's n-gram index has the prefix (6 follows 5), and only it: 8
  // was never seen there, so nothing matches and the model drafts.
  EXPECT_THAT(DraftOne(*m.hybrid, 2, /*last=*/5, 1).tokens, ElementsAre(6));
  EXPECT_THAT(DraftOne(*m.hybrid, 2, /*last=*/8, 1).tokens, ElementsAre(100));
  m.hybrid->Close(1);
  EXPECT_EQ(m.model->history(1), nullptr);
  std::vector<DraftBlock> blocks;
  EXPECT_FALSE(m.hybrid->Draft({{.session = 1, .last_token = 5, .max_tokens = 1}}, &blocks).ok());
  EXPECT_EQ(m.hybrid->name(), "recording-fake+ngram");
  EXPECT_EQ(m.hybrid->max_block(), 5);
}

TEST(HybridDrafterTest, BadInputChangesNothing) {
  Made m = Make(/*model_confidence=*/0.1f, /*ngram_enough=*/0.8);
  ASSERT_TRUE(m.hybrid->Open(1).ok());
  EXPECT_EQ(m.hybrid->Open(1).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(m.hybrid->Extend(1, {5, 6}, {}).ok());
  std::vector<DraftBlock> blocks;
  EXPECT_EQ(m.hybrid->Draft({{.session = 1, .last_token = 5, .max_tokens = 6}}, &blocks).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.hybrid->Draft({{.session = 9, .last_token = 5, .max_tokens = 1}}, &blocks).code(),
            absl::StatusCode::kInvalidArgument);
  // Features the model drafter refuses: the n-gram drafter does not see the
  // tokens either.
  const float feature = 1.0f;
  EXPECT_FALSE(m.hybrid->Extend(1, {7}, absl::MakeConstSpan(&feature, 1)).ok());
  EXPECT_THAT(*m.model->history(1), ElementsAre(5, 6));
  EXPECT_EQ(m.model->asked(), 0);
  EXPECT_THAT(DraftOne(*m.hybrid, 1, /*last=*/5, 1).tokens, ElementsAre(6));
  EXPECT_THAT(DraftOne(*m.hybrid, 1, /*last=*/7, 1).tokens, ElementsAre(100));
}

// The factory builds "<model drafter>+ngram" only around a model drafter,
// and the model drafter's own errors come through.
TEST(HybridDrafterTest, FactoryRefusesWhatIsNotAModelDrafterPlusNgram) {
  for (const char* kind : {"ngram+ngram", "none+ngram", "dspark+ngram", "mystery+ngram"}) {
    SCOPED_TRACE(kind);
    auto d = MakeDrafter({.kind = kind}, /*target=*/nullptr);  // refused before the target is read
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_THAT(std::string(MakeDrafter({.kind = "ngram+ngram"}, nullptr).status().message()),
              ::testing::HasSubstr("only a model drafter"));
  EXPECT_THAT(std::string(MakeDrafter({.kind = "dspark+ngram"}, nullptr).status().message()),
              ::testing::HasSubstr("checkpoint directory"));
}

}  // namespace
}  // namespace dspark::drafter
