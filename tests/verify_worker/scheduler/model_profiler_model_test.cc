// ProfileModel on the real default model (SmolLM2-135M, Q4_1): every planned
// batch size is measured on real forwards over a shared context, and the
// table is well formed. The timings are recorded as test properties, never
// asserted (a busy CI machine can stall any one of them; the speed itself is
// what `dspark bench` measures). Skips until `dspark pull smollm2-135m-instruct`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>

#include <string>

#include "common/engine/model_store/model_store.h"
#include "verify_worker/scheduler/model_profiler.h"

namespace dspark::scheduler {
namespace {

TEST(ModelProfilerModelTest, SmolLm2ProfilesEveryBatchSize) {
  const std::string path = ModelPath(ModelCacheDir(), "smollm2-135m-instruct");
  if (::access(path.c_str(), R_OK) != 0) {
    GTEST_SKIP() << path << " not found: run `dspark pull smollm2-135m-instruct`";
  }
  auto model = engine::Model::Load(path, {.threads = 2});
  ASSERT_TRUE(model.ok()) << model.status();
  auto table = ProfileModel(**model, {.cost = {.tokens = {1, 8, 32}, .repetitions = 1, .warmup = 1},
                                      .context_tokens = 64});
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->points().size(), 3u);
  const int64_t planned[] = {1, 8, 32};
  double previous = 0;
  for (size_t i = 0; i < 3; ++i) {
    const CostPoint& p = table->points()[i];
    RecordProperty("seconds_at_" + std::to_string(p.tokens), std::to_string(p.seconds));
    EXPECT_EQ(p.tokens, planned[i]);
    EXPECT_TRUE(std::isfinite(p.seconds) && p.seconds > 0) << p.seconds;
    EXPECT_GE(p.seconds, previous) << "the table is non-decreasing in tokens";
    previous = p.seconds;
  }
  // The profile ran real forwards and left the model usable: a second
  // profile over another shape succeeds as well.
  auto again = ProfileModel(**model, {.cost = {.tokens = {2, 5}, .repetitions = 1, .warmup = 0},
                                      .context_tokens = 3});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->points().size(), 2u);
}

}  // namespace
}  // namespace dspark::scheduler
