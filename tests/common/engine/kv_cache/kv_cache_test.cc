#include "common/engine/kv_cache/kv_cache.h"

#include <gtest/gtest.h>

namespace dspark::engine {
namespace {

constexpr KvLayout kLayout{.num_layers = 2, .num_kv_heads = 2, .head_dim = 4};

void Fill(KvCache& cache, SeqId s, int64_t from, int64_t to, float base) {
  for (int layer = 0; layer < kLayout.num_layers; ++layer) {
    for (int64_t p = from; p < to; ++p) {
      for (int i = 0; i < 8; ++i) {
        cache.Key(layer, s, p)[i] = base + p * 10 + i + layer * 1000;
        cache.Value(layer, s, p)[i] = -(base + p * 10 + i + layer * 1000);
      }
    }
  }
}

TEST(KvCacheTest, ReserveWriteReadAndRollback) {
  KvCache cache(kLayout, {.block_size = 4, .max_tokens = 64});
  SeqId s = cache.CreateSequence();
  ASSERT_TRUE(cache.Reserve(s, 10).ok());
  EXPECT_EQ(cache.free_blocks(), 16 - 3);
  Fill(cache, s, 0, 10, 0);
  cache.SetLength(s, 10);
  EXPECT_EQ(cache.Key(1, s, 9)[3], 9 * 10 + 3 + 1000);
  cache.Truncate(s, 5);  // roll back 5 rejected tokens
  EXPECT_EQ(cache.Length(s), 5);
  EXPECT_EQ(cache.free_blocks(), 16 - 2);
  EXPECT_EQ(cache.Key(0, s, 4)[0], 40);  // kept positions untouched
  cache.FreeSequence(s);
  EXPECT_EQ(cache.free_blocks(), 16);
}

TEST(KvCacheTest, OutOfBlocksIsAnErrorAndChangesNothing) {
  KvCache cache(kLayout, {.block_size = 4, .max_tokens = 16});
  SeqId a = cache.CreateSequence();
  ASSERT_TRUE(cache.Reserve(a, 12).ok());
  SeqId b = cache.CreateSequence();
  absl::Status st = cache.Reserve(b, 8);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(cache.Capacity(b), 0);
  EXPECT_EQ(cache.free_blocks(), 1);
  cache.FreeSequence(a);
  cache.FreeSequence(b);
  EXPECT_EQ(cache.free_blocks(), 4);
}

TEST(KvCacheTest, ForkSharesPrefixAndCopiesOnWrite) {
  KvCache cache(kLayout, {.block_size = 4, .max_tokens = 64});
  SeqId parent = cache.CreateSequence();
  ASSERT_TRUE(cache.Reserve(parent, 6).ok());
  Fill(cache, parent, 0, 6, 0);
  cache.SetLength(parent, 6);
  auto child = cache.ForkSequence(parent, 6);
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(cache.free_blocks(), 16 - 2);  // shared, nothing copied yet
  EXPECT_EQ(cache.Key(0, *child, 5), cache.Key(0, parent, 5));
  // The child writes position 6: its partial block is copied first.
  ASSERT_TRUE(cache.Reserve(*child, 7).ok());
  EXPECT_EQ(cache.free_blocks(), 16 - 3);
  EXPECT_NE(cache.Key(0, *child, 5), cache.Key(0, parent, 5));
  EXPECT_EQ(cache.Key(0, *child, 5)[2], cache.Key(0, parent, 5)[2]);
  Fill(cache, *child, 6, 7, 500);
  cache.SetLength(*child, 7);
  // The parent's own next write must not see the child's data, and vice versa.
  ASSERT_TRUE(cache.Reserve(parent, 7).ok());
  Fill(cache, parent, 6, 7, 900);
  EXPECT_NE(cache.Key(0, parent, 6)[0], cache.Key(0, *child, 6)[0]);
  EXPECT_EQ(cache.Key(0, *child, 0), cache.Key(0, parent, 0));  // full block still shared
  cache.FreeSequence(parent);
  cache.FreeSequence(*child);
  EXPECT_EQ(cache.free_blocks(), 16);
  EXPECT_EQ(cache.num_sequences(), 0);
}

TEST(KvCacheTest, ForkBeyondParentIsAnError) {
  KvCache cache(kLayout, {.block_size = 4, .max_tokens = 16});
  SeqId p = cache.CreateSequence();
  EXPECT_EQ(cache.ForkSequence(p, 3).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.ForkSequence(p + 7, 0).status().code(), absl::StatusCode::kNotFound);
}

TEST(KvCacheTest, ManySequencesReturnAllBlocks) {
  KvCache cache(kLayout, {.block_size = 4, .max_tokens = 256});
  std::vector<SeqId> seqs;
  for (int i = 0; i < 20; ++i) {
    seqs.push_back(cache.CreateSequence());
    ASSERT_TRUE(cache.Reserve(seqs.back(), 1 + i % 7).ok());
    cache.SetLength(seqs.back(), 1 + i % 7);
  }
  for (int i = 0; i < 20; i += 3) {
    auto f = cache.ForkSequence(seqs[i], cache.Length(seqs[i]) / 2);
    ASSERT_TRUE(f.ok());
    seqs.push_back(*f);
  }
  for (SeqId s : seqs) cache.FreeSequence(s);
  EXPECT_EQ(cache.free_blocks(), cache.num_blocks());
}

}  // namespace
}  // namespace dspark::engine
