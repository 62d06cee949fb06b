// ProfileModel and the model LoadOrProfile on the tiny committed llama
// checkpoint (2 layers, random weights): the shape of the result and the
// error cases. Timings of a model this small say nothing; the real model's
// are checked in model_profiler_model_test.cc.
#include "verify_worker/scheduler/model_profiler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"

namespace dspark::scheduler {
namespace {

std::string TinyLlama() {
  return std::string(DSPARK_SOURCE_DIR) + "/tests/common/engine/model/testdata/tiny/llama";
}

class ModelProfilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = engine::Model::Load(TinyLlama(), {.threads = 1});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        absl::StrCat(::testing::TempDir(), "model_profiler_test_", ::getpid(), "_", info->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // 9 and 24 tokens need 2 and 3 sequences, 8 fills one block exactly.
  static ProfileOptions Small() {
    return {.cost = {.tokens = {1, 3, 8, 9, 24}, .repetitions = 1, .warmup = 1},
            .context_tokens = 20};
  }

  std::unique_ptr<engine::Model> model_;
  std::string dir_;
};

TEST_F(ModelProfilerTest, ProfilesEveryBatchSize) {
  auto table = ProfileModel(*model_, Small());
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->points().size(), 5u);
  const std::vector<int64_t> sizes = {1, 3, 8, 9, 24};
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(table->points()[i].tokens, sizes[i]);
    EXPECT_GT(table->points()[i].seconds, 0);
    if (i > 0) {
      EXPECT_GE(table->points()[i].seconds, table->points()[i - 1].seconds);
    }
  }
  // Block size 1 and no context: every token its own sequence, still fine.
  ProfileOptions singles = Small();
  singles.context_tokens = 0;
  singles.block_tokens = 1;
  EXPECT_TRUE(ProfileModel(*model_, singles).ok());
}

TEST_F(ModelProfilerTest, RejectsBadOptions) {
  ProfileOptions o = Small();
  o.context_tokens = 250;  // + 8 > the tiny model's 256 positions
  EXPECT_EQ(ProfileModel(*model_, o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Small();
  o.block_tokens = 0;
  EXPECT_EQ(ProfileModel(*model_, o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Small();
  o.context_tokens = -1;
  EXPECT_EQ(ProfileModel(*model_, o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Small();
  o.cost.tokens = {};
  EXPECT_EQ(ProfileModel(*model_, o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Small();
  o.cost.tokens = {4, 0};
  EXPECT_EQ(ProfileModel(*model_, o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ModelProfilerTest, LoadOrProfileReusesTheCacheForTheSameOptions) {
  const std::string path = dir_ + "/costs.json";
  auto first = LoadOrProfile(path, "tiny", *model_, Small());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(std::filesystem::exists(path));
  // A second profile would time again; bit-identical seconds at every point
  // mean the file was read instead.
  auto second = LoadOrProfile(path, "tiny", *model_, Small());
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->points().size(), first->points().size());
  for (size_t i = 0; i < first->points().size(); ++i) {
    EXPECT_EQ(second->points()[i].seconds, first->points()[i].seconds);
  }
  // The options are part of the identity: other sizes re-profile.
  ProfileOptions other = Small();
  other.cost.tokens = {2, 16};
  auto third = LoadOrProfile(path, "tiny", *model_, other);
  ASSERT_TRUE(third.ok()) << third.status();
  ASSERT_EQ(third->points().size(), 2u);
  EXPECT_EQ(third->points()[1].tokens, 16);
  // Bad options fail before any file is touched.
  other.block_tokens = 0;
  EXPECT_EQ(LoadOrProfile(path, "tiny", *model_, other).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ModelIdentityTest, NamesTheFilesAndSettings) {
  const std::string id = ModelIdentity(TinyLlama(), {.threads = 2});
  EXPECT_NE(id.find("tiny/llama"), std::string::npos) << id;
  EXPECT_NE(id.find("model.safetensors:"), std::string::npos) << id;
  EXPECT_NE(id.find("config.json:"), std::string::npos) << id;
  EXPECT_NE(id.find("threads=2"), std::string::npos) << id;
  EXPECT_NE(id.find(" cpu="), std::string::npos) << id;
  EXPECT_EQ(id.find(" cpu=unknown"), std::string::npos) << id;  // Linux has /proc/cpuinfo
  EXPECT_NE(id.find(" build="), std::string::npos) << id;
  EXPECT_EQ(id.find(" build=0@"), std::string::npos) << id;  // the test binary's own size
  EXPECT_EQ(id, ModelIdentity(TinyLlama(), {.threads = 2}));
  EXPECT_NE(id, ModelIdentity(TinyLlama(), {.threads = 1}));
  EXPECT_NE(
      id, ModelIdentity(TinyLlama(), {.mode = engine::cpu::ActivationMode::kExact, .threads = 2}));
  EXPECT_NE(id, ModelIdentity(TinyLlama(), {.threads = 2, .max_layers = 1}));
  EXPECT_NE(id, ModelIdentity(TinyLlama() + "_bf16", {.threads = 2}));
}

}  // namespace
}  // namespace dspark::scheduler
