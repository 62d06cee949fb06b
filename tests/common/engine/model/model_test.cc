// Model::Forward contract on the real default model: bad input is an error
// that changes nothing (no KV blocks leaked, other sequences untouched), and
// all blocks return when sequences end. Skips when the model is not pulled.
#include "common/engine/model/model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "common/engine/model/generate.h"
#include "common/engine/model_store/model_store.h"

namespace dspark::engine {
namespace {

class ModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = ModelPath(ModelCacheDir(), "smollm2-135m-instruct");
    if (::access(path.c_str(), R_OK) != 0) return;
    auto model = Model::Load(path, {.threads = 2});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = model->release();
  }
  static void TearDownTestSuite() { delete model_; }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << "run `dspark pull smollm2-135m-instruct` first";
  }
  static Model* model_;
};
Model* ModelTest::model_ = nullptr;

TEST_F(ModelTest, ConfigMatchesTheFile) {
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.dim, 576);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_TRUE(c.tied_head);
  EXPECT_FALSE(c.rope_neox);
}

TEST_F(ModelTest, BadInputIsAnErrorAndChangesNothing) {
  auto cache = model_->NewKvCache({.block_size = 16, .max_tokens = 64});
  SeqId good = cache->CreateSequence();
  ForwardOutput out;
  ForwardBatch ok_batch;
  ok_batch.seqs.push_back({.seq = good, .tokens = {1, 2, 3}, .logit_rows = {2}});
  ASSERT_TRUE(model_->Forward(ok_batch, cache.get(), &out).ok());
  const int64_t free_before = cache->free_blocks();
  const float first_logit = out.logits[0];

  auto expect_rejected = [&](ForwardBatch batch, absl::StatusCode code) {
    absl::Status st = model_->Forward(batch, cache.get(), &out);
    EXPECT_EQ(st.code(), code) << st;
    EXPECT_EQ(cache->Length(good), 3);
    EXPECT_EQ(cache->free_blocks(), free_before);
  };
  SeqId other = cache->CreateSequence();
  ForwardBatch b;
  b.seqs.push_back({.seq = other, .tokens = {5}});
  b.seqs.push_back({.seq = good, .tokens = {49152}});  // outside the vocabulary
  expect_rejected(b, absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->Length(other), 0);
  b.seqs = {{.seq = good, .tokens = {4}, .logit_rows = {1}}};  // row out of range
  expect_rejected(b, absl::StatusCode::kInvalidArgument);
  b.seqs = {{.seq = 12345, .tokens = {4}}};
  expect_rejected(b, absl::StatusCode::kInvalidArgument);
  b.seqs = {{.seq = good, .tokens = {}}};
  expect_rejected(b, absl::StatusCode::kInvalidArgument);
  b.seqs = {{.seq = good, .tokens = {4}}, {.seq = good, .tokens = {5}}};  // twice
  expect_rejected(b, absl::StatusCode::kInvalidArgument);
  b.seqs = {};
  expect_rejected(b, absl::StatusCode::kInvalidArgument);
  // 64 tokens of KV: a 40-token sequence beside `good` runs out of blocks.
  b.seqs = {{.seq = other, .tokens = std::vector<int32_t>(40, 7)},
            {.seq = good, .tokens = std::vector<int32_t>(30, 7)}};
  expect_rejected(b, absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(cache->Length(other), 0);

  // The good sequence still continues exactly as it would have.
  ForwardBatch next;
  next.seqs.push_back({.seq = good, .tokens = {4}, .logit_rows = {0}});
  ASSERT_TRUE(model_->Forward(next, cache.get(), &out).ok());
  auto fresh = model_->NewKvCache({.max_tokens = 64});
  SeqId s = fresh->CreateSequence();
  ForwardBatch whole;
  whole.seqs.push_back({.seq = s, .tokens = {1, 2, 3, 4}, .logit_rows = {3}});
  ForwardOutput ref;
  ASSERT_TRUE(model_->Forward(whole, fresh.get(), &ref).ok());
  EXPECT_EQ(out.logits, ref.logits);
  EXPECT_NE(first_logit, 0.0f);

  cache->FreeSequence(good);
  cache->FreeSequence(other);
  EXPECT_EQ(cache->free_blocks(), cache->num_blocks());
}

TEST_F(ModelTest, ContextOverflowIsAnError) {
  auto cache = model_->NewKvCache({.max_tokens = 32});
  SeqId s = cache->CreateSequence();
  ForwardBatch b;
  b.seqs.push_back({.seq = s, .tokens = std::vector<int32_t>(model_->config().context_length + 1, 5)});
  ForwardOutput out;
  EXPECT_EQ(model_->Forward(b, cache.get(), &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->free_blocks(), cache->num_blocks());
}

TEST_F(ModelTest, GreedyGenerationIsDeterministicAndFreesItsBlocks) {
  auto cache = model_->NewKvCache({.max_tokens = 256});
  GenerateOptions opts{.max_tokens = 12};
  auto a = Generate(*model_, *cache, {1, 9690, 28, 2}, opts);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->tokens.size(), 12u);
  auto b = Generate(*model_, *cache, {1, 9690, 28, 2}, opts);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_EQ(cache->free_blocks(), cache->num_blocks());
  // Seeded sampling: same seed, same tokens.
  opts.sampling = {.temperature = 0.8f, .top_p = 0.95f, .seed = 7};
  auto c = Generate(*model_, *cache, {1, 9690, 28, 2}, opts);
  auto d = Generate(*model_, *cache, {1, 9690, 28, 2}, opts);
  ASSERT_TRUE(c.ok() && d.ok());
  EXPECT_EQ(c->tokens, d->tokens);
}

}  // namespace
}  // namespace dspark::engine
