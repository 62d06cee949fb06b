#include "common/tokenizer/bpe.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

namespace dspark::tokenizer {
namespace {

TEST(BpeMergerTest, LowestRankFirstThenLeftmost) {
  // ids: a=0 b=1 ab=2 bb=3 abb=4
  BpeMerger m;
  m.AddMerge(1, 1, /*rank=*/0, /*result=*/3);  // b b -> bb
  m.AddMerge(0, 1, 1, 2);                      // a b -> ab
  m.AddMerge(0, 3, 2, 4);                      // a bb -> abb
  std::vector<int32_t> s = {0, 1, 1};          // a b b
  m.Merge(&s);
  EXPECT_EQ(s, std::vector<int32_t>{4});
  s = {1, 1, 1};  // b b b: the leftmost pair merges first
  m.Merge(&s);
  EXPECT_EQ(s, (std::vector<int32_t>{3, 1}));
  s = {0, -1, 1};  // negative ids never merge
  m.Merge(&s);
  EXPECT_EQ(s, (std::vector<int32_t>{0, -1, 1}));
}

// The linear-scan and heap implementations agree on random inputs.
TEST(BpeMergerTest, ScanAndHeapAgree) {
  std::mt19937 rng(42);
  BpeMerger m;
  const int kBase = 6;
  int next = kBase;
  std::vector<int32_t> rank_order;
  for (int i = 0; i < 60; ++i) {
    int32_t l = rng() % next, r = rng() % next;
    m.AddMerge(l, r, static_cast<int32_t>(rng() % 40), next++);
  }
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<int32_t> s(1 + rng() % 80);
    for (int32_t& x : s) x = rng() % kBase;
    std::vector<int32_t> a = s, b = s;
    m.MergeWithScan(&a);
    m.MergeWithHeap(&b);
    ASSERT_EQ(a, b) << "iteration " << iter;
  }
}

TEST(WordCacheTest, HitsMissesAndBound) {
  WordCache cache(/*capacity=*/32);
  std::vector<int32_t> out;
  EXPECT_FALSE(cache.Lookup("hello", &out));
  const int32_t ids[] = {7, 8};
  cache.Insert("hello", ids, 2);
  EXPECT_TRUE(cache.Lookup("hello", &out));
  EXPECT_EQ(out, (std::vector<int32_t>{7, 8}));
  for (int i = 0; i < 1000; ++i) cache.Insert("w" + std::to_string(i), ids, 1);  // stays bounded
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      std::vector<int32_t> o;
      const int32_t one[] = {t};
      for (int i = 0; i < 2000; ++i) {
        std::string w = "t" + std::to_string(i % 50);
        if (!cache.Lookup(w, &o)) cache.Insert(w, one, 1);
      }
    });
  }
  for (auto& th : threads) th.join();
}

}  // namespace
}  // namespace dspark::tokenizer
