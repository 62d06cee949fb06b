// The verify worker's drafter when drafting happens on draft workers: each
// session drafts on the worker the router named for it (Assign), over one
// RemoteDrafter (one SpecStream) per worker address shared by all its
// sessions. A Draft batch is split by worker and the workers draft at once.
// Speculation is an optimisation, so nothing here fails a request: a session
// without an address, or whose worker's stream broke or timed out, is
// detached and gets empty blocks from then on (plain decoding, no error).
// A detached session stays detached until the router names another worker
// for its address (Reassign): its draft state was on the lost worker, so
// the session is rebuilt there from the tail of its committed context that
// is kept here (the last `replay_tokens` tokens and their features). New
// sessions on a failed address reconnect, at most once per reconnect
// interval. Not thread-safe: one thread (the step loop) makes every call,
// Assign and Reassign included.
//
//   RoutingDrafter drafter({.target_model = draft_service::TargetIdentity(model),
//                           .context_layers = config.target_layer_ids});
//   SpecEngine engine(&model, &cache, &drafter, ...);
//   DSPARK_ASSIGN_OR_RETURN(RequestId id, engine.Add(request));
//   drafter.Assign(id, "10.0.0.7:7001");  // before the next Step
//   ...
//   drafter.Reassign("10.0.0.7:7001", "10.0.0.8:7001");  // 7001 died
//
// context_layers: the engine reads them once, before any session exists, so
// they come from the options, not from a worker's Hello. The verify worker
// takes them from the committed drafter's config (ReadDsparkConfig below) or
// leaves them empty (token-only drafters). A worker whose Hello names other
// layers is used only if it needs none (features are then not sent);
// otherwise its sessions are detached.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "draft_worker/drafter/drafter.h"
#include "draft_worker/dspark/dspark_checkpoint.h"
#include "verify_worker/remote_drafter/remote_drafter.h"

namespace dspark::metrics {
struct VerifyMetrics;
}

namespace dspark::remote_drafter {

// dir/config.json of a DSpark drafter checkpoint, parsed and checked (its
// target_layer_ids are the context layers, block_size the block).
absl::StatusOr<drafter::DsparkConfig> ReadDsparkConfig(const std::string& dir);

struct RoutingDrafterOptions {
  // Hello.target_model (draft_service::TargetIdentity). Default "".
  std::string target_model;
  // Target layers whose features Extend carries (see above). Default none.
  std::vector<int> context_layers;
  // What max_block() answers; each worker's requests are cut to its own
  // block. Default 16 (drafter::kMaxBlockSize).
  int max_block = drafter::kMaxBlockSize;
  // Longest wait for a worker's Hello or Draft reply. Default 2 s.
  absl::Duration timeout = absl::Seconds(2);
  // Shortest time between connection attempts to a failed address. Default 1 s.
  absl::Duration reconnect_interval = absl::Seconds(1);
  // Committed context tokens kept per session (the newest ones, with their
  // features) so that Reassign can rebuild the session on another worker;
  // the rebuilt session drafts from at most this much context. Memory:
  // replay_tokens x context_layers x target dim x 4 bytes per open session
  // (256 x 3 x 576 x 4 = 1.8 MB for SmolLM2-135M's DSpark drafter), plus
  // 4 bytes a token. 0: keep nothing (Reassign then only detaches).
  // Default 256.
  int replay_tokens = 256;
};

// What Reassign did with the sessions of the old address.
struct ReassignResult {
  int reattached = 0;  // now drafting on the new address (or will open there)
  int detached = 0;    // left without speculation
};

class RoutingDrafter final : public drafter::Drafter {
 public:
  explicit RoutingDrafter(const RoutingDrafterOptions& options);
  ~RoutingDrafter() override;

  // The draft worker for `session` (a RequestId the engine will Open or
  // Fork); call before the engine's next Step. Without it the session is
  // detached. A request that finishes without ever being admitted leaves
  // its assignment behind until Close(session).
  void Assign(drafter::SessionId session, const std::string& address);
  // Every session named for `from` (attached, detached, or assigned and not
  // yet opened) moves to `to`: it is closed on `from` if that still works,
  // opened on `to` and extended with its kept context tail. Blocks up to
  // the timeout when `to` must be connected. A session that cannot move
  // (`to` empty or unreachable, nothing kept) is detached; it remembers
  // `to`, so a later Reassign away from `to` moves it again.
  ReassignResult Reassign(const std::string& from, const std::string& to);
  // Exports Draft round trips and feature bytes sent from now on; any
  // thread (the metrics' labels name the server's run-time address, known
  // after the drafter is built). Null stops it. Outlives the drafter.
  void SetMetrics(metrics::VerifyMetrics* metrics) { metrics_.store(metrics); }

  std::string name() const override { return "remote"; }
  int max_block() const override { return options_.max_block; }
  std::vector<int> context_layers() const override { return options_.context_layers; }

  // Open and Extend fail only on misuse (an id opened twice, an unknown
  // id); worker trouble detaches the session instead.
  absl::Status Open(drafter::SessionId session) override;
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override;
  // Blocks until every worker answered or timed out (one timeout in all).
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override;
  // Draft in two halves (drafter.h); each worker's reply is awaited within
  // the timeout counted from StartDraft. A pending ticket keeps its workers'
  // streams alive across a Reassign.
  bool drafts_elsewhere() const override { return true; }
  absl::StatusOr<uint64_t> StartDraft(absl::Span<const drafter::DraftRequest> requests) override;
  absl::Status FinishDraft(uint64_t ticket, std::vector<drafter::DraftBlock>* blocks) override;
  // On the parent's worker; Unimplemented when the child is assigned to
  // another worker or the parent is detached (the engine then opens it).
  absl::Status Fork(drafter::SessionId child, drafter::SessionId parent,
                    int64_t prefix_len) override;
  void Close(drafter::SessionId session) override;

  // Open sessions drafting on a live worker, and detached ones.
  int attached_sessions() const;
  int detached_sessions() const;

 private:
  // One draft worker address.
  struct Worker {
    std::string address;
    std::unique_ptr<RemoteDrafter> remote;        // null after a failed connect
    bool send_features = true;                    // false: the worker's drafter needs none
    absl::Time failed_at = absl::InfinitePast();  // last connect failure or break
    bool failure_logged = false;
  };
  // The newest committed context of a session, for Reassign.
  struct Tail {
    std::deque<int32_t> tokens;  // [n], n <= replay_tokens
    std::deque<float> features;  // [n, row]
    size_t row = 0;              // floats per token; 0: none came
    int64_t length = 0;          // whole context length; tokens end there
  };
  struct Route {
    std::string address;             // the worker named for it; "" none
    std::shared_ptr<Worker> worker;  // null: detached
    Tail tail;
  };

  // One worker's share of a StartDraft.
  struct Batch {
    std::shared_ptr<Worker> worker;
    std::vector<drafter::DraftRequest> requests;
    std::vector<size_t> index;  // into the StartDraft requests
    absl::StatusOr<uint64_t> ticket = absl::UnknownError("not sent");
  };
  struct Pending {
    size_t requests = 0;
    absl::Time sent;
    std::vector<Batch> batches;
  };

  // The worker for a new session on `address`, connecting (blocking up to
  // the timeout) when there is no live one; null when none can be had.
  std::shared_ptr<Worker> WorkerFor(const std::string& address);
  // True while the worker's stream works; logs its failure once.
  bool Alive(Worker& worker);
  // The session's worker if it can still draft for it, else detaches it.
  Worker* Attached(drafter::SessionId session, Route& route);
  // Appends to the tail and trims it to replay_tokens.
  void Remember(Tail& tail, absl::Span<const int32_t> tokens, absl::Span<const float> features);
  // Opens the (detached) session on route.address and replays its tail;
  // true when it is attached there.
  bool Replay(drafter::SessionId session, Route& route);

  const RoutingDrafterOptions options_;
  absl::flat_hash_map<drafter::SessionId, std::string> assigned_;
  absl::flat_hash_map<drafter::SessionId, Route> routes_;  // open sessions
  absl::flat_hash_map<std::string, std::shared_ptr<Worker>> workers_;
  absl::flat_hash_map<uint64_t, Pending> pending_;  // StartDraft tickets not yet finished
  uint64_t next_ticket_ = 1;
  std::atomic<metrics::VerifyMetrics*> metrics_{nullptr};
};

}  // namespace dspark::remote_drafter
