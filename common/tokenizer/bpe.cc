#include "common/tokenizer/bpe.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <functional>

#include "absl/hash/hash.h"
#include "common/tokenizer/unicode.h"

namespace dspark::tokenizer {
namespace {

// Words up to this many symbols use the O(n^2)-compare linear scan, which
// beats a heap for the short words that dominate natural text.
constexpr size_t kScanLimit = 48;

}  // namespace

void BpeMerger::AddMerge(int32_t left, int32_t right, int32_t rank, int32_t result) {
  merges_.try_emplace(Key(left, right), Rule{rank, result});
}

void BpeMerger::Merge(std::vector<int32_t>* symbols) const {
  if (symbols->size() < 2) return;
  if (symbols->size() <= kScanLimit) {
    MergeWithScan(symbols);
  } else {
    MergeWithHeap(symbols);
  }
}

void BpeMerger::MergeWithScan(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& s = *symbols;
  size_t n = s.size();
  if (n < 2) return;
  // rank[i], result[i]: the rule for the pair (s[i], s[i+1]).
  absl::InlinedVector<int32_t, kScanLimit> rank(n - 1), result(n - 1);
  auto fill = [&](size_t i) {
    const Rule* r = Find(s[i], s[i + 1]);
    rank[i] = r ? r->rank : INT_MAX;
    result[i] = r ? r->result : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) fill(i);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i) {
      if (rank[i] < rank[best]) best = i;
    }
    if (rank[best] == INT_MAX) break;
    s[best] = result[best];
    s.erase(s.begin() + best + 1);
    rank.erase(rank.begin() + best);
    result.erase(result.begin() + best);
    --n;
    if (best + 1 < n) fill(best);
    if (best > 0) fill(best - 1);
  }
}

void BpeMerger::MergeWithHeap(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& s = *symbols;
  const int32_t n = static_cast<int32_t>(s.size());
  if (n < 2) return;
  // Scratch reused across calls on this thread: long words are where the
  // allocations (and page faults) would otherwise dominate.
  thread_local std::vector<int32_t> prev, next;
  thread_local std::vector<uint64_t> heap;
  prev.resize(n);
  next.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  // Entries are (rank << 32 | left position): a min-heap pops the lowest
  // rank, leftmost first. An entry is acted on only if the pair now at its
  // position still has that rank; any current pair has an entry with its
  // current rank, so the popped one is always the global minimum.
  auto rank_at = [&](int32_t l) -> const Rule* {
    return l >= 0 && next[l] >= 0 ? Find(s[l], s[next[l]]) : nullptr;
  };
  auto push = [&](int32_t l) {
    if (const Rule* rule = rank_at(l)) {
      heap.push_back((static_cast<uint64_t>(static_cast<uint32_t>(rule->rank)) << 32) |
                     static_cast<uint32_t>(l));
      std::push_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const Rule* rule = rank_at(i)) {
      heap.push_back((static_cast<uint64_t>(static_cast<uint32_t>(rule->rank)) << 32) |
                     static_cast<uint32_t>(i));
    }
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    const uint64_t top = heap.back();
    heap.pop_back();
    const auto left = static_cast<int32_t>(top & 0xFFFFFFFFu);
    const auto rank = static_cast<int32_t>(top >> 32);
    if (s[left] == INT_MIN) continue;  // merged away
    const Rule* rule = rank_at(left);
    if (rule == nullptr || rule->rank != rank) continue;  // stale
    const int32_t right = next[left];
    s[left] = rule->result;
    s[right] = INT_MIN;
    next[left] = next[right];
    if (next[left] >= 0) prev[next[left]] = left;
    push(prev[left]);
    push(left);
  }
  int32_t out = 0;
  for (int32_t i = 0; i != -1; i = next[i]) s[out++] = s[i];
  s.resize(out);
}

namespace {

constexpr size_t kSlots = 4;

struct CacheSlot {
  uint64_t owner = 0;  // WordCache id, 0 = free
  uint64_t last_use = 0;
  absl::flat_hash_map<std::string, WordCache::Ids> map;
};

std::atomic<uint64_t> next_cache_id{1};

}  // namespace

WordCache::WordCache(size_t capacity)
    : id_(next_cache_id.fetch_add(1, std::memory_order_relaxed)), capacity_(capacity) {}

WordCache::Map& WordCache::ThreadMap() const {
  thread_local CacheSlot slots[kSlots];
  thread_local uint64_t clock = 0;
  ++clock;
  CacheSlot* victim = &slots[0];
  for (CacheSlot& s : slots) {
    if (s.owner == id_) {
      s.last_use = clock;
      return s.map;
    }
    if (s.last_use < victim->last_use) victim = &s;
  }
  victim->owner = id_;
  victim->last_use = clock;
  victim->map.clear();
  return victim->map;
}

bool WordCache::Lookup(std::string_view word, std::vector<int32_t>* out) const {
  const Map& map = ThreadMap();
  auto it = map.find(AsAbsl(word));
  if (it == map.end()) return false;
  out->insert(out->end(), it->second.begin(), it->second.end());
  return true;
}

void WordCache::Insert(std::string_view word, const int32_t* ids, size_t n) const {
  Map& map = ThreadMap();
  if (map.size() >= capacity_) map.clear();
  map.try_emplace(std::string(word), Ids(ids, ids + n));
}

}  // namespace dspark::tokenizer
