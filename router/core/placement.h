// Placement policy: which verify worker and which draft worker run a new
// session. Pure functions over a snapshot of the candidates, so the policy is
// tested without a registry or a network; WorkerRegistry calls them under
// its lock. Thread-safe (no state).
//
// Verify worker: least loaded with room, except that a prompt prefix keeps
// going to the same worker (its prefix cache then hits) while that worker is
// within `affinity_slack` sessions of the least loaded one. The preferred
// worker is chosen by rendezvous hashing of (prefix, worker address), so a
// worker joining or leaving moves only its own share of prefixes.
// Draft worker: least loaded relative to its capacity.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dspark::router {

struct PlacementCandidate {
  std::string address;
  // Sessions the router has running there.
  int assigned = 0;
  // Sessions the worker itself reports (running + waiting); covers sessions
  // other routers placed. Load = max(assigned, reported).
  int reported = 0;
  int max_sessions = 1;
  // The cluster scheduler's share of new sessions, (0, 1]: the load is
  // divided by it when comparing workers. Default 1.
  double weight = 1.0;
  // Eligible at all: live, not draining, serves the model, not excluded.
  bool usable = true;
};

struct PlacementOptions {
  // How many more sessions than the least loaded worker the prefix's
  // preferred worker may have and still get it. Default 2.
  int affinity_slack = 2;
  // Prompt tokens hashed for affinity (a shared system prompt or chat
  // preamble). Default 64.
  int affinity_prefix_tokens = 64;
};

// Hash of the first `options.affinity_prefix_tokens` prompt tokens (the
// whole prompt when shorter); never 0.
uint64_t PrefixKey(absl::Span<const int32_t> prompt, const PlacementOptions& options);

// Index into `candidates` of the verify worker for a session with
// `prefix_key`. Unavailable when no candidate is usable, ResourceExhausted
// when every usable one is full (assigned >= max_sessions).
absl::StatusOr<int> ChooseVerifyWorker(const std::vector<PlacementCandidate>& candidates,
                                       uint64_t prefix_key, const PlacementOptions& options);

// Index of the draft worker, or -1 when none is usable with room (the
// session then runs without a draft worker).
int ChooseDraftWorker(const std::vector<PlacementCandidate>& candidates);

}  // namespace dspark::router
