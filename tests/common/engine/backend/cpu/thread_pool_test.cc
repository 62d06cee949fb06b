#include "common/engine/backend/cpu/thread_pool.h"

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace dspark::engine::cpu {
namespace {

// Runs one ParallelFor and returns the ranges it handed out.
std::vector<std::pair<int64_t, int64_t>> Ranges(ThreadPool& pool, int64_t n, int64_t grain) {
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  pool.ParallelFor(
      n,
      [&](int64_t b, int64_t e) {
        std::lock_guard<std::mutex> lock(mu);
        ranges.emplace_back(b, e);
      },
      grain);
  std::sort(ranges.begin(), ranges.end());
  return ranges;
}

TEST(ThreadPoolTest, NumThreads) {
  EXPECT_EQ(ThreadPool(1).num_threads(), 1);
  EXPECT_EQ(ThreadPool(3).num_threads(), 3);
  EXPECT_GE(ThreadPool(0).num_threads(), 1);
}

TEST(ThreadPoolTest, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 3, 7, 16, 17, 100, 1000, 4097}) {
      for (int64_t grain : {1, 4, 16, 64}) {
        std::vector<std::atomic<int>> hits(n);
        pool.ParallelFor(
            n,
            [&](int64_t b, int64_t e) {
              ASSERT_LE(0, b);
              ASSERT_LT(b, e);
              ASSERT_LE(e, n);
              for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
            },
            grain);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(hits[i].load(), 1)
              << "threads " << threads << " n " << n << " grain " << grain << " index " << i;
        }
      }
    }
  }
}

TEST(ThreadPoolTest, RangesAreContiguousAndGrainAligned) {
  ThreadPool pool(3);
  for (int64_t n : {5, 48, 50, 1000, 1001}) {
    for (int64_t grain : {1, 8, 16}) {
      auto ranges = Ranges(pool, n, grain);
      ASSERT_FALSE(ranges.empty());
      EXPECT_LE(ranges.size(), 3u);
      EXPECT_EQ(ranges.front().first, 0);
      EXPECT_EQ(ranges.back().second, n);
      for (size_t i = 0; i < ranges.size(); ++i) {
        EXPECT_EQ(ranges[i].first % grain, 0) << n << " " << grain;
        if (i + 1 < ranges.size()) {
          EXPECT_EQ(ranges[i].second, ranges[i + 1].first);
          EXPECT_EQ((ranges[i].second - ranges[i].first) % grain, 0);
        }
      }
    }
  }
}

TEST(ThreadPoolTest, PartitionIsStatic) {
  ThreadPool pool(2);
  const auto first = Ranges(pool, 1000, 16);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(Ranges(pool, 1000, 16), first);
  EXPECT_EQ(first.size(), 2u);
}

TEST(ThreadPoolTest, UsesSeveralThreads) {
  ThreadPool pool(2);
  std::mutex mu;
  std::set<std::thread::id> ids;
  // Enough iterations that the worker is certainly awake for some of them.
  for (int rep = 0; rep < 200 && ids.size() < 2; ++rep) {
    pool.ParallelFor(2, [&](int64_t, int64_t) {
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(std::this_thread::get_id());
    });
  }
  EXPECT_EQ(ids.size(), 2u);
}

TEST(ThreadPoolTest, ReusedManyTimes) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int rep = 0; rep < 20000; ++rep) {
    pool.ParallelFor(
        64, [&](int64_t b, int64_t e) { total.fetch_add(e - b); }, 8);
  }
  EXPECT_EQ(total.load(), 20000 * 64);
}

TEST(ThreadPoolTest, ReusedAfterWorkersSlept) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int rep = 0; rep < 5; ++rep) {
    pool.ParallelFor(10, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
    // Past the spin window, so the worker goes to sleep and must be woken.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(total.load(), 50);
}

TEST(ThreadPoolTest, NestedCallRunsInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  pool.ParallelFor(4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      pool.ParallelFor(10, [&](int64_t b2, int64_t e2) { total.fetch_add(e2 - b2); });
    }
  });
  EXPECT_EQ(total.load(), 40);
}

TEST(ThreadPoolTest, EmptyRangeDoesNothing) {
  ThreadPool pool(2);
  bool called = false;
  pool.ParallelFor(0, [&](int64_t, int64_t) { called = true; });
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace dspark::engine::cpu
