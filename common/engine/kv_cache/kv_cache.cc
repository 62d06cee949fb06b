#include "common/engine/kv_cache/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"

namespace dspark::engine {

KvCache::KvCache(const KvLayout& layout, const KvCacheOptions& options)
    : layout_(layout), options_(options) {
  DSPARK_CHECK(options_.block_size > 0 && options_.max_tokens > 0);
  num_blocks_ = (options_.max_tokens + options_.block_size - 1) / options_.block_size;
  entry_floats_ = static_cast<int64_t>(layout_.num_kv_heads) * layout_.head_dim;
  const size_t total = static_cast<size_t>(layout_.num_layers) * num_blocks_ *
                       options_.block_size * entry_floats_;
  keys_.assign(total, 0.0f);
  values_.assign(total, 0.0f);
  ref_counts_.assign(num_blocks_, 0);
  free_list_.reserve(num_blocks_);
  for (int64_t b = num_blocks_ - 1; b >= 0; --b) free_list_.push_back(static_cast<int32_t>(b));
}

KvCache::Sequence& KvCache::Get(SeqId seq) {
  DSPARK_CHECK(HasSequence(seq)) << "unknown sequence " << seq;
  return sequences_[seq];
}

const KvCache::Sequence& KvCache::Get(SeqId seq) const {
  DSPARK_CHECK(HasSequence(seq)) << "unknown sequence " << seq;
  return sequences_[seq];
}

bool KvCache::HasSequence(SeqId seq) const {
  return seq >= 0 && seq < static_cast<SeqId>(sequences_.size()) && sequences_[seq].live;
}

int64_t KvCache::num_sequences() const {
  return static_cast<int64_t>(sequences_.size() - free_ids_.size());
}

SeqId KvCache::CreateSequence() {
  SeqId id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = static_cast<SeqId>(sequences_.size());
    sequences_.emplace_back();
  }
  sequences_[id] = Sequence{.live = true};
  return id;
}

absl::StatusOr<SeqId> KvCache::ForkSequence(SeqId parent, int64_t prefix_len) {
  if (!HasSequence(parent)) return absl::NotFoundError(absl::StrCat("unknown sequence ", parent));
  const Sequence& p = sequences_[parent];
  if (prefix_len < 0 || prefix_len > p.length) {
    return absl::InvalidArgumentError(
        absl::StrCat("fork prefix ", prefix_len, " exceeds parent length ", p.length));
  }
  const int64_t nblocks = (prefix_len + options_.block_size - 1) / options_.block_size;
  std::vector<int32_t> blocks(p.blocks.begin(), p.blocks.begin() + nblocks);
  for (int32_t b : blocks) ++ref_counts_[b];
  SeqId id = CreateSequence();
  sequences_[id].blocks = std::move(blocks);
  sequences_[id].length = prefix_len;
  return id;
}

absl::Status KvCache::Reserve(SeqId seq, int64_t new_len) {
  Sequence& s = Get(seq);
  const int64_t bs = options_.block_size;
  const int64_t have = static_cast<int64_t>(s.blocks.size());
  const int64_t need = (new_len + bs - 1) / bs;
  // The block the next write lands in, if it is shared, must be copied.
  const int64_t write_block = s.length / bs;
  const bool cow = new_len > s.length && write_block < have && ref_counts_[s.blocks[write_block]] > 1;
  const int64_t wanted = std::max<int64_t>(0, need - have) + (cow ? 1 : 0);
  if (wanted > free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache out of blocks: need ", wanted,
                                                     ", free ", free_blocks(), " of ",
                                                     num_blocks_));
  }
  if (cow) {
    int32_t fresh = free_list_.back();
    free_list_.pop_back();
    ref_counts_[fresh] = 1;
    CopyBlock(s.blocks[write_block], fresh);
    --ref_counts_[s.blocks[write_block]];
    s.blocks[write_block] = fresh;
  }
  while (static_cast<int64_t>(s.blocks.size()) < need) {
    int32_t b = free_list_.back();
    free_list_.pop_back();
    ref_counts_[b] = 1;
    s.blocks.push_back(b);
  }
  return absl::OkStatus();
}

void KvCache::SetLength(SeqId seq, int64_t len) {
  Sequence& s = Get(seq);
  DSPARK_CHECK(len >= 0 && len <= Capacity(seq)) << "length " << len << " beyond capacity";
  s.length = len;
}

void KvCache::Truncate(SeqId seq, int64_t len) {
  Sequence& s = Get(seq);
  DSPARK_CHECK(len >= 0 && len <= s.length) << "truncate to " << len << " > " << s.length;
  s.length = len;
  const int64_t keep = (len + options_.block_size - 1) / options_.block_size;
  while (static_cast<int64_t>(s.blocks.size()) > keep) {
    Release(s.blocks.back());
    s.blocks.pop_back();
  }
}

void KvCache::FreeSequence(SeqId seq) {
  Sequence& s = Get(seq);
  for (int32_t b : s.blocks) Release(b);
  s = Sequence{};
  free_ids_.push_back(seq);
}

int64_t KvCache::Length(SeqId seq) const { return Get(seq).length; }

int64_t KvCache::Capacity(SeqId seq) const {
  return static_cast<int64_t>(Get(seq).blocks.size()) * options_.block_size;
}

void KvCache::Release(int32_t block) {
  DSPARK_CHECK(ref_counts_[block] > 0);
  if (--ref_counts_[block] == 0) free_list_.push_back(block);
}

int64_t KvCache::Offset(int layer, int32_t block, int64_t slot) const {
  return ((static_cast<int64_t>(layer) * num_blocks_ + block) * options_.block_size + slot) *
         entry_floats_;
}

void KvCache::CopyBlock(int32_t from, int32_t to) {
  const size_t n = static_cast<size_t>(options_.block_size) * entry_floats_;
  for (int layer = 0; layer < layout_.num_layers; ++layer) {
    std::memcpy(&keys_[Offset(layer, to, 0)], &keys_[Offset(layer, from, 0)], n * sizeof(float));
    std::memcpy(&values_[Offset(layer, to, 0)], &values_[Offset(layer, from, 0)],
                n * sizeof(float));
  }
}

float* KvCache::Key(int layer, SeqId seq, int64_t pos) {
  const Sequence& s = sequences_[seq];
  return &keys_[Offset(layer, s.blocks[pos / options_.block_size], pos % options_.block_size)];
}

float* KvCache::Value(int layer, SeqId seq, int64_t pos) {
  const Sequence& s = sequences_[seq];
  return &values_[Offset(layer, s.blocks[pos / options_.block_size], pos % options_.block_size)];
}

const float* KvCache::Key(int layer, SeqId seq, int64_t pos) const {
  return const_cast<KvCache*>(this)->Key(layer, seq, pos);
}

const float* KvCache::Value(int layer, SeqId seq, int64_t pos) const {
  return const_cast<KvCache*>(this)->Value(layer, seq, pos);
}

}  // namespace dspark::engine
