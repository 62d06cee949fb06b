// CostTable: interpolation and extrapolation, the monotone fix, profiling
// with a scripted measurement, the JSON cache (round trip, stale identity,
// malformed files) and LoadOrProfile's cache rules.
#include "verify_worker/scheduler/cost_table.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dspark::scheduler {
namespace {

CostTable Table(std::vector<CostPoint> points) {
  auto table = CostTable::FromPoints(std::move(points));
  EXPECT_TRUE(table.ok()) << table.status();
  return *table;
}

// A fresh directory per test, removed afterwards.
class CostTableFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = absl::StrCat(::testing::TempDir(), "cost_table_test_", ::getpid(), "_", info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Write(const std::string& path, const std::string& text) const {
    std::ofstream(path, std::ios::binary) << text;
  }
  std::string dir_;
};

TEST(CostTableTest, InterpolatesAndExtrapolates) {
  const CostTable t = Table({{1, 1.0}, {3, 2.0}, {7, 4.0}});
  EXPECT_DOUBLE_EQ(t.Seconds(1), 1.0);
  EXPECT_DOUBLE_EQ(t.Seconds(2), 1.5);
  EXPECT_DOUBLE_EQ(t.Seconds(3), 2.0);
  EXPECT_DOUBLE_EQ(t.Seconds(5), 3.0);
  EXPECT_DOUBLE_EQ(t.Seconds(7), 4.0);
  // Past the last point: the last segment's slope (0.5 s per token).
  EXPECT_DOUBLE_EQ(t.Seconds(9), 5.0);
  EXPECT_DOUBLE_EQ(t.Seconds(107), 54.0);
  // Below the first point: its value.
  EXPECT_DOUBLE_EQ(t.Seconds(0), 1.0);
}

TEST(CostTableTest, SinglePointIsConstant) {
  const CostTable t = Table({{4, 0.25}});
  EXPECT_DOUBLE_EQ(t.Seconds(1), 0.25);
  EXPECT_DOUBLE_EQ(t.Seconds(400), 0.25);
}

TEST(CostTableTest, EmptyTableCostsNothing) {
  const CostTable t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.Seconds(8), 0);
}

TEST(CostTableTest, NoisyPointsAreMadeMonotone) {
  // Unsorted, with two dips (noise): every point is raised to the running max.
  const CostTable t = Table({{8, 3.0}, {1, 2.0}, {2, 1.0}, {4, 3.5}, {16, 5.0}});
  std::vector<double> seconds;
  for (const CostPoint& p : t.points()) seconds.push_back(p.seconds);
  EXPECT_EQ(seconds, (std::vector<double>{2.0, 2.0, 3.5, 3.5, 5.0}));
  EXPECT_EQ(t.points().front().tokens, 1);
  EXPECT_EQ(t.points().back().tokens, 16);
  for (int64_t n = 1; n < 40; ++n) EXPECT_LE(t.Seconds(n), t.Seconds(n + 1)) << n;
}

TEST(CostTableTest, BadPointsAreRejected) {
  for (const std::vector<CostPoint>& points : std::vector<std::vector<CostPoint>>{
           {},                    // no points
           {{0, 1.0}},            // tokens < 1
           {{1, 0.0}},            // not > 0
           {{1, -1.0}},           //
           {{1, std::nan("")}},   //
           {{1, 1.0}, {1, 2.0}},  // duplicate
       }) {
    EXPECT_EQ(CostTable::FromPoints(points).status().code(), absl::StatusCode::kInvalidArgument)
        << points.size();
  }
}

TEST(CostTableTest, ProfileKeepsTheMedianAndInterleavesRepetitions) {
  std::vector<int64_t> calls;
  // Per size, the repetitions return a spike, the typical value and a dip.
  std::map<int64_t, std::vector<double>> script = {{1, {9.0, 1.0, 0.5}}, {2, {2.0, 1.5, 9.0}}};
  std::map<int64_t, int> seen;
  MeasureFn measure = [&](int64_t n) -> absl::StatusOr<double> {
    calls.push_back(n);
    if (calls.size() == 1) return 100.0;  // the warm-up: discarded
    return script[n][seen[n]++];
  };
  auto t = CostTable::Profile(measure, {.tokens = {1, 2}, .repetitions = 3, .warmup = 1});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(calls, (std::vector<int64_t>{1, 1, 2, 1, 2, 1, 2}));
  ASSERT_EQ(t->points().size(), 2u);
  EXPECT_DOUBLE_EQ(t->points()[0].seconds, 1.0);
  EXPECT_DOUBLE_EQ(t->points()[1].seconds, 2.0);
}

TEST(CostTableTest, ProfileMedianOfAnEvenCountIsTheMidpoint) {
  int call = 0;
  const std::vector<double> values = {4.0, 1.0, 3.0, 2.0};
  MeasureFn measure = [&](int64_t) -> absl::StatusOr<double> { return values[call++]; };
  auto t = CostTable::Profile(measure, {.tokens = {8}, .repetitions = 4, .warmup = 0});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_DOUBLE_EQ(t->Seconds(8), 2.5);
}

TEST(CostTableTest, ProfileReportsMeasurementErrors) {
  MeasureFn failing = [](int64_t n) -> absl::StatusOr<double> {
    if (n == 4) return absl::ResourceExhaustedError("out of KV blocks");
    return 1.0;
  };
  auto t = CostTable::Profile(failing, {.tokens = {1, 4}, .repetitions = 1, .warmup = 0});
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(t.status().message().find("4 tokens"), std::string::npos) << t.status();

  MeasureFn zero = [](int64_t) -> absl::StatusOr<double> { return 0.0; };
  EXPECT_FALSE(CostTable::Profile(zero, {.tokens = {1}, .repetitions = 1}).ok());
  MeasureFn one = [](int64_t) -> absl::StatusOr<double> { return 1.0; };
  EXPECT_EQ(CostTable::Profile(one, {.tokens = {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CostTable::Profile(one, {.tokens = {1}, .repetitions = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CostTable::Profile(one, {.tokens = {0}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CostTableFileTest, SaveLoadRoundTrip) {
  const CostTable t = Table({{1, 0.0061}, {8, 0.0238123456789}, {64, 0.1 / 3}});
  const std::string path = Path("sub/dir/costs.json");  // parents are created
  ASSERT_TRUE(t.Save(path, "model-a threads=2").ok());
  auto loaded = CostTable::Load(path, "model-a threads=2");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->points().size(), t.points().size());
  for (size_t i = 0; i < t.points().size(); ++i) {
    EXPECT_EQ(loaded->points()[i].tokens, t.points()[i].tokens);
    EXPECT_EQ(loaded->points()[i].seconds, t.points()[i].seconds);  // bit-exact
  }
  // No temporary file is left next to it.
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(Path("sub/dir"))) {
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(CostTableFileTest, MissingFileIsNotFound) {
  EXPECT_EQ(CostTable::Load(Path("none.json"), "x").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CostTableFileTest, OtherIdentityIsRefused) {
  const std::string path = Path("costs.json");
  ASSERT_TRUE(Table({{1, 1.0}}).Save(path, "model-a threads=2").ok());
  auto loaded = CostTable::Load(path, "model-a threads=1");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(loaded.status().message().find(path), std::string::npos) << loaded.status();
}

TEST_F(CostTableFileTest, MalformedFilesAreInvalidArgumentNamingTheFile) {
  const std::string good_head =
      R"({"format": "dspark.cost_table", "version": 1, "identity": "m", )";
  const std::vector<std::string> bad = {
      "",
      "not json at all",
      R"({"format": "dspark.cost_table", "version": 1, "identity": "m", "points": [{"tok)",
      "[1, 2, 3]",
      R"({"format": "other", "version": 1, "identity": "m", "points": []})",
      R"({"format": "dspark.cost_table", "version": 2, "identity": "m", "points": []})",
      R"({"format": "dspark.cost_table", "version": 1, "identity": 7, "points": []})",
      good_head + R"("points": {}})",
      good_head + R"("points": []})",
      good_head + R"("points": [7]})",
      good_head + R"("points": [{"tokens": "1", "seconds": 1.0}]})",
      good_head + R"("points": [{"tokens": 1.5, "seconds": 1.0}]})",
      good_head + R"("points": [{"tokens": 1}]})",
      good_head + R"("points": [{"tokens": 1, "seconds": -1.0}]})",
      good_head + R"("points": [{"tokens": 1, "seconds": 1.0}, {"tokens": 1, "seconds": 2.0}]})",
  };
  const std::string path = Path("costs.json");
  for (const std::string& text : bad) {
    Write(path, text);
    auto loaded = CostTable::Load(path, "m");
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(loaded.status().message().find(path), std::string::npos) << loaded.status();
  }
  // The same head with good points loads: the cases above fail for their own reason.
  Write(path, good_head + R"("points": [{"tokens": 1, "seconds": 1.0}]})");
  EXPECT_TRUE(CostTable::Load(path, "m").ok());
}

TEST_F(CostTableFileTest, LoadOrProfileUsesTheCacheOnlyForTheSameIdentity) {
  int calls = 0;
  double scale = 1.0;
  MeasureFn measure = [&](int64_t n) -> absl::StatusOr<double> {
    ++calls;
    return scale * static_cast<double>(n);
  };
  const CostProfileOptions options = {.tokens = {1, 2, 4}, .repetitions = 1, .warmup = 0};
  const std::string path = Path("costs.json");

  auto first = LoadOrProfile(path, "model-a", measure, options);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(calls, 3);
  EXPECT_DOUBLE_EQ(first->Seconds(4), 4.0);

  scale = 2.0;  // a re-profile would now give other numbers
  auto cached = LoadOrProfile(path, "model-a", measure, options);
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(calls, 3);
  EXPECT_DOUBLE_EQ(cached->Seconds(4), 4.0);

  auto other = LoadOrProfile(path, "model-b", measure, options);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(calls, 6);
  EXPECT_DOUBLE_EQ(other->Seconds(4), 8.0);
  // ... and the cache now holds model-b's table.
  EXPECT_EQ(CostTable::Load(path, "model-a").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CostTable::Load(path, "model-b").ok());

  Write(path, "{ garbage");
  auto repaired = LoadOrProfile(path, "model-b", measure, options);
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_EQ(calls, 9);
  EXPECT_TRUE(CostTable::Load(path, "model-b").ok());
}

TEST_F(CostTableFileTest, LoadOrProfileWithoutPathOrWritableCache) {
  int calls = 0;
  MeasureFn measure = [&](int64_t) -> absl::StatusOr<double> { return ++calls, 1.0; };
  const CostProfileOptions options = {.tokens = {1}, .repetitions = 1, .warmup = 0};
  EXPECT_TRUE(LoadOrProfile("", "m", measure, options).ok());
  EXPECT_EQ(calls, 1);
  // The cache path's parent is a file: saving fails, the table still comes back.
  Write(Path("file"), "x");
  EXPECT_TRUE(LoadOrProfile(Path("file/costs.json"), "m", measure, options).ok());
  EXPECT_EQ(calls, 2);
  // Profiling errors are returned.
  MeasureFn failing = [](int64_t) -> absl::StatusOr<double> {
    return absl::InternalError("forward failed");
  };
  EXPECT_EQ(LoadOrProfile(Path("costs.json"), "m", failing, options).status().code(),
            absl::StatusCode::kInternal);
  EXPECT_FALSE(std::filesystem::exists(Path("costs.json")));
}

}  // namespace
}  // namespace dspark::scheduler
