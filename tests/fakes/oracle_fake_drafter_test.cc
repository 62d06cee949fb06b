// OracleFakeDrafter drafts the target's own greedy continuation with
// confidence 1, through accept-and-continue rounds. Skips when the default
// model is not pulled.
#include <gtest/gtest.h>
#include <unistd.h>

#include "common/engine/model/generate.h"
#include "common/engine/model_store/model_store.h"
#include "tests/fakes/fake_drafters.h"

namespace dspark::testing {
namespace {

TEST(OracleFakeDrafterTest, DraftsTheTargetsGreedyTokens) {
  const std::string path = ModelPath(ModelCacheDir(), "smollm2-135m-instruct");
  if (::access(path.c_str(), R_OK) != 0) {
    GTEST_SKIP() << path << " not found: run `dspark pull smollm2-135m-instruct` first";
  }
  auto target = engine::Model::Load(path, {.threads = 2});
  ASSERT_TRUE(target.ok()) << target.status();
  const std::vector<int32_t> prompt = {1, 4093, 314, 253, 1789, 28, 2012, 30};
  auto cache = (*target)->NewKvCache({.max_tokens = 256});
  auto ref = engine::Generate(**target, *cache, prompt, {.max_tokens = 16});
  ASSERT_TRUE(ref.ok()) << ref.status();
  const std::vector<int32_t>& g = ref->tokens;

  OracleFakeDrafter oracle(target->get(), /*max_block=*/7, /*kv_tokens=*/256);
  EXPECT_EQ(oracle.name(), "oracle-fake");
  ASSERT_TRUE(oracle.Open(1).ok());
  const std::vector<int32_t> context(prompt.begin(), prompt.end() - 1);
  ASSERT_TRUE(oracle.Extend(1, context, {}).ok());
  // Two rounds of "all 7 accepted + bonus": g[0..6] drafted, g[7] the bonus.
  int32_t last = prompt.back();
  size_t at = 0;
  for (int round = 0; round < 2; ++round) {
    std::vector<drafter::DraftBlock> blocks;
    ASSERT_TRUE(oracle.Draft({{.session = 1, .last_token = last, .max_tokens = 7}}, &blocks).ok());
    EXPECT_EQ(blocks[0].tokens, std::vector<int32_t>(g.begin() + at, g.begin() + at + 7));
    EXPECT_EQ(blocks[0].confidence, std::vector<float>(7, 1.0f));
    std::vector<int32_t> committed = {last};
    committed.insert(committed.end(), blocks[0].tokens.begin(), blocks[0].tokens.end());
    ASSERT_TRUE(oracle.Extend(1, committed, {}).ok());
    last = g[at + 7];
    at += 8;
  }
}

}  // namespace
}  // namespace dspark::testing
