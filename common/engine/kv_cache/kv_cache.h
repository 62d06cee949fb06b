// Paged KV cache: fixed-size blocks shared through per-sequence block tables,
// ref-counted so sequences with a common prefix share blocks, with O(blocks
// freed) rollback of rejected draft tokens. Not thread-safe: owned by the
// engine's step thread.
//
// Page layout (the one place it is described): for each layer, K and V are
// each one f32 array [num_blocks, block_size, num_kv_heads, head_dim]; the
// entry of a sequence's position p lives in block table[p / block_size] at
// slot p % block_size.
//
//   KvCache cache({.num_layers = 30, .num_kv_heads = 3, .head_dim = 64}, {});
//   DSPARK_ASSIGN_OR_RETURN(SeqId s, cache.CreateSequence());
//   DSPARK_RETURN_IF_ERROR(cache.Reserve(s, 12));  // room for 12 positions
//   ... write K/V at positions 0..11 ... cache.SetLength(s, 12);
//   cache.Truncate(s, 9);                          // roll back 3 tokens
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dspark::engine {

using SeqId = int64_t;

struct KvLayout {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
};

struct KvCacheOptions {
  // Tokens per block. Default 16.
  int block_size = 16;
  // Total token capacity across all sequences; rounded up to whole blocks.
  // Default 16384.
  int64_t max_tokens = 16384;
};

class KvCache {
 public:
  KvCache(const KvLayout& layout, const KvCacheOptions& options);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  SeqId CreateSequence();
  // A new sequence whose first `prefix_len` positions are `parent`'s, sharing
  // its blocks (the partial last block too, copied on first write).
  absl::StatusOr<SeqId> ForkSequence(SeqId parent, int64_t prefix_len);
  // Makes room for positions [0, new_len); allocates blocks and un-shares the
  // block that the next write lands in. ResourceExhausted when out of blocks
  // (nothing changes then).
  absl::Status Reserve(SeqId seq, int64_t new_len);
  // Marks positions [0, len) valid (len <= reserved capacity).
  void SetLength(SeqId seq, int64_t len);
  // Rolls back to `len` <= Length(seq), returning blocks no longer used.
  void Truncate(SeqId seq, int64_t len);
  void FreeSequence(SeqId seq);

  bool HasSequence(SeqId seq) const;
  int64_t Length(SeqId seq) const;
  int64_t Capacity(SeqId seq) const;

  // [num_kv_heads, head_dim] at a reserved position.
  float* Key(int layer, SeqId seq, int64_t pos);
  float* Value(int layer, SeqId seq, int64_t pos);
  const float* Key(int layer, SeqId seq, int64_t pos) const;
  const float* Value(int layer, SeqId seq, int64_t pos) const;

  int block_size() const { return options_.block_size; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_list_.size()); }
  int64_t num_sequences() const;
  const KvLayout& layout() const { return layout_; }

 private:
  struct Sequence {
    bool live = false;
    int64_t length = 0;
    std::vector<int32_t> blocks;  // block table
  };
  Sequence& Get(SeqId seq);
  const Sequence& Get(SeqId seq) const;
  int64_t Offset(int layer, int32_t block, int64_t slot) const;
  void Release(int32_t block);
  void CopyBlock(int32_t from, int32_t to);

  KvLayout layout_;
  KvCacheOptions options_;
  int64_t num_blocks_;
  int64_t entry_floats_;               // num_kv_heads * head_dim
  std::vector<float> keys_;            // [num_layers, num_blocks, block_size, kv_heads, head_dim]
  std::vector<float> values_;          // same
  std::vector<int32_t> ref_counts_;    // [num_blocks]
  std::vector<int32_t> free_list_;
  std::vector<Sequence> sequences_;    // indexed by SeqId
  std::vector<SeqId> free_ids_;
};

}  // namespace dspark::engine
