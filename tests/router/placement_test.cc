// Placement policy: least loaded with room, prefix affinity within the
// slack, Unavailable / ResourceExhausted, draft workers by share.
#include "router/core/placement.h"

#include <gtest/gtest.h>

#include <set>

#include "absl/strings/str_cat.h"

namespace dspark::router {
namespace {

std::vector<PlacementCandidate> Workers(std::vector<int> assigned, int max_sessions = 8) {
  std::vector<PlacementCandidate> out;
  for (size_t i = 0; i < assigned.size(); ++i) {
    PlacementCandidate c;
    c.address = absl::StrCat("10.0.0.", i, ":7000");
    c.assigned = assigned[i];
    c.max_sessions = max_sessions;
    out.push_back(c);
  }
  return out;
}

TEST(PlacementTest, LeastLoadedWinsWithoutSlack) {
  PlacementOptions options;
  options.affinity_slack = 0;
  for (uint64_t key = 1; key < 50; ++key) {
    auto chosen = ChooseVerifyWorker(Workers({3, 1, 2}), key, options);
    ASSERT_TRUE(chosen.ok());
    EXPECT_EQ(*chosen, 1) << key;
  }
}

TEST(PlacementTest, ReportedLoadCountsToo) {
  PlacementOptions options;
  options.affinity_slack = 0;
  auto workers = Workers({0, 1});
  workers[0].reported = 5;  // sessions another router placed
  EXPECT_EQ(*ChooseVerifyWorker(workers, 7, options), 1);
}

TEST(PlacementTest, SchedulerWeightMakesAWorkerLookBusier) {
  PlacementOptions options;
  options.affinity_slack = 0;
  auto workers = Workers({2, 3});
  EXPECT_EQ(*ChooseVerifyWorker(workers, 7, options), 0);
  workers[0].weight = 0.5;  // 2 / 0.5 = 4 > 3
  EXPECT_EQ(*ChooseVerifyWorker(workers, 7, options), 1);
}

TEST(PlacementTest, SamePrefixSameWorkerWhileLoadAllows) {
  PlacementOptions options;  // slack 2
  const auto workers = Workers({0, 0, 0, 0});
  std::set<int> homes;
  for (uint64_t key = 1; key < 200; ++key) {
    const int first = *ChooseVerifyWorker(workers, key, options);
    EXPECT_EQ(*ChooseVerifyWorker(workers, key, options), first);
    homes.insert(first);
    // Within the slack the home keeps it; beyond, the least loaded gets it.
    auto loaded = workers;
    loaded[first].assigned = 2;
    EXPECT_EQ(*ChooseVerifyWorker(loaded, key, options), first);
    loaded[first].assigned = 3;
    EXPECT_NE(*ChooseVerifyWorker(loaded, key, options), first);
  }
  EXPECT_EQ(homes.size(), 4u) << "prefixes spread over every worker";
}

TEST(PlacementTest, FullOrUnusableWorkersAreSkipped) {
  PlacementOptions options;
  auto workers = Workers({2, 0, 0}, /*max_sessions=*/2);
  workers[1].usable = false;  // draining
  for (uint64_t key = 1; key < 50; ++key) EXPECT_EQ(*ChooseVerifyWorker(workers, key, options), 2);
}

TEST(PlacementTest, NoUsableWorkerIsUnavailableAllFullIsExhausted) {
  PlacementOptions options;
  EXPECT_EQ(ChooseVerifyWorker({}, 1, options).status().code(), absl::StatusCode::kUnavailable);
  auto workers = Workers({0});
  workers[0].usable = false;
  EXPECT_EQ(ChooseVerifyWorker(workers, 1, options).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ChooseVerifyWorker(Workers({2, 2}, 2), 1, options).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(PlacementTest, DraftWorkerByShareOfCapacity) {
  auto drafts = Workers({4, 3});
  drafts[0].max_sessions = 16;  // 25% used
  drafts[1].max_sessions = 4;   // 75% used
  EXPECT_EQ(ChooseDraftWorker(drafts), 0);
  EXPECT_EQ(ChooseDraftWorker(Workers({1, 1}, 1)), -1);
  EXPECT_EQ(ChooseDraftWorker({}), -1);
}

TEST(PlacementTest, PrefixKeyHashesTheLeadingTokens) {
  PlacementOptions options;
  options.affinity_prefix_tokens = 4;
  const std::vector<int32_t> a = {1, 2, 3, 4, 5, 6};
  const std::vector<int32_t> b = {1, 2, 3, 4, 9, 9, 9};
  const std::vector<int32_t> c = {1, 2, 3, 5, 5, 6};
  EXPECT_EQ(PrefixKey(a, options), PrefixKey(b, options));
  EXPECT_NE(PrefixKey(a, options), PrefixKey(c, options));
  EXPECT_NE(PrefixKey(std::vector<int32_t>{1, 2}, options),
            PrefixKey(std::vector<int32_t>{1}, options));
  EXPECT_NE(PrefixKey({}, options), 0u);
}

}  // namespace
}  // namespace dspark::router
