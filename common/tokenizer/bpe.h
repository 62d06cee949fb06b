// Byte-pair-encoding merge engine over token ids, shared by byte-level BPE
// (GPT-2 family: initial symbols are bytes) and SentencePiece-style BPE
// (initial symbols are characters, merges come from a merges list or from
// token scores). Merge order: lowest rank first, ties leftmost, which is what
// Hugging Face tokenizers, SentencePiece and llama.cpp all do.
//
// Also WordCache, a bounded cache from pre-token text to ids.
//
// BpeMerger is immutable after construction and Merge is thread-safe;
// WordCache is thread-safe (its state is per thread).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"

namespace dspark::tokenizer {

class BpeMerger {
 public:
  // Adds the rule "left right -> result" with priority `rank` (lower merges
  // first). A later rule for the same pair is ignored, as in HF tokenizers.
  void AddMerge(int32_t left, int32_t right, int32_t rank, int32_t result);

  // Applies the merges to `symbols` (token ids; negative ids never merge)
  // until no adjacent pair has a rule. Linear-scan for short words, a heap
  // over a linked list for long ones.
  void Merge(std::vector<int32_t>* symbols) const;

  // Forces one algorithm (tests check that both agree).
  void MergeWithScan(std::vector<int32_t>* symbols) const;
  void MergeWithHeap(std::vector<int32_t>* symbols) const;

  size_t size() const { return merges_.size(); }

 private:
  struct Rule {
    int32_t rank;
    int32_t result;
  };
  static uint64_t Key(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  const Rule* Find(int32_t l, int32_t r) const {
    if (l < 0 || r < 0) return nullptr;
    auto it = merges_.find(Key(l, r));
    return it == merges_.end() ? nullptr : &it->second;
  }

  absl::flat_hash_map<uint64_t, Rule> merges_;
};

// Bounded map from a pre-token's text to its ids, kept per thread so that
// lookups take no lock (each thread holds slots for up to kSlots caches;
// a thread that switches between more tokenizers than that re-warms them).
// A full map is cleared rather than evicted entry by entry: cheaper than LRU
// bookkeeping and, for natural text, nearly as effective since the frequent
// words come straight back.
class WordCache {
 public:
  using Ids = absl::InlinedVector<int32_t, 6>;
  explicit WordCache(size_t capacity = 1 << 14);

  // Appends the cached ids of `word` to `out` and returns true on a hit.
  bool Lookup(std::string_view word, std::vector<int32_t>* out) const;
  void Insert(std::string_view word, const int32_t* ids, size_t n) const;

 private:
  using Map = absl::flat_hash_map<std::string, Ids>;
  Map& ThreadMap() const;

  const uint64_t id_;  // unique per instance, never reused
  const size_t capacity_;
};

}  // namespace dspark::tokenizer
