#include "router/core/placement.h"

#include <algorithm>

#include "absl/hash/hash.h"

namespace dspark::router {
namespace {

int Load(const PlacementCandidate& c) { return std::max(c.assigned, c.reported); }

// Load as compared between workers: a worker the cluster scheduler wants
// fewer sessions on looks busier.
double WeightedLoad(const PlacementCandidate& c) {
  return Load(c) / std::clamp(c.weight, 0.01, 1.0);
}

bool HasRoom(const PlacementCandidate& c) { return c.usable && c.assigned < c.max_sessions; }

// SplitMix64 finaliser: a well-mixed score for rendezvous hashing.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t Score(uint64_t prefix_key, const std::string& address) {
  return Mix(prefix_key ^ absl::HashOf(address));
}

}  // namespace

uint64_t PrefixKey(absl::Span<const int32_t> prompt, const PlacementOptions& options) {
  const size_t n = std::min(prompt.size(), static_cast<size_t>(options.affinity_prefix_tokens));
  uint64_t h = 0x51ed270b27a3b7f1ull;
  for (size_t i = 0; i < n; ++i) h = Mix(h ^ static_cast<uint32_t>(prompt[i]));
  return h == 0 ? 1 : h;
}

absl::StatusOr<int> ChooseVerifyWorker(const std::vector<PlacementCandidate>& candidates,
                                       uint64_t prefix_key, const PlacementOptions& options) {
  int least = -1;
  int preferred = -1;
  bool any_usable = false;
  for (int i = 0; i < static_cast<int>(candidates.size()); ++i) {
    const PlacementCandidate& c = candidates[i];
    if (!c.usable) continue;
    any_usable = true;
    // The preferred worker is chosen among all usable ones, full or not, so
    // a prefix's home does not move while it is momentarily full.
    if (preferred < 0 ||
        Score(prefix_key, c.address) > Score(prefix_key, candidates[preferred].address)) {
      preferred = i;
    }
    if (!HasRoom(c)) continue;
    if (least < 0 || WeightedLoad(c) < WeightedLoad(candidates[least]) ||
        (WeightedLoad(c) == WeightedLoad(candidates[least]) &&
         Score(prefix_key, c.address) > Score(prefix_key, candidates[least].address))) {
      least = i;
    }
  }
  if (!any_usable) return absl::UnavailableError("no live verify worker serves the model");
  if (least < 0) return absl::ResourceExhaustedError("every verify worker is full");
  const PlacementCandidate& p = candidates[preferred];
  if (HasRoom(p) && WeightedLoad(p) <= WeightedLoad(candidates[least]) + options.affinity_slack) {
    return preferred;
  }
  return least;
}

int ChooseDraftWorker(const std::vector<PlacementCandidate>& candidates) {
  int best = -1;
  double best_share = 0;
  for (int i = 0; i < static_cast<int>(candidates.size()); ++i) {
    const PlacementCandidate& c = candidates[i];
    if (!HasRoom(c)) continue;
    const double share = static_cast<double>(Load(c)) / std::max(1, c.max_sessions);
    if (best < 0 || share < best_share) {
      best = i;
      best_share = share;
    }
  }
  return best;
}

}  // namespace dspark::router
