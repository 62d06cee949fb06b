// The draft worker's single drafting thread: it owns the Drafter and applies
// the SpecStream operations of every connected verify worker in arrival
// order, and drafts the Draft requests pending from several streams at once
// in ONE Drafter::Draft call (batching across sessions and verify workers).
// Session ids are chosen per stream by the verify worker; the loop maps
// (stream, session) to a drafter-wide id. A stream that ends closes its
// sessions. Thread-safe: AddStream / Submit / EndStream / stats may be called
// from any thread (gRPC reactions) and never block on drafting.
//
//   DraftingLoop loop(drafter.get(), {.target_model = TargetIdentity(*target), ...});
//   const int64_t stream = loop.AddStream(link);  // link: where responses go
//   loop.Submit(stream, request);                 // in the stream's order
//   loop.EndStream(stream);                       // sessions closed, link->Finish()
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics/metrics.h"
#include "draft_worker/drafter/drafter.h"
#include "dspark/internal/v1/spec.pb.h"

namespace dspark::draft_service {

// A stream's way back to its verify worker. Called from the drafting thread
// only; implementations must not block (queue and return).
class StreamLink {
 public:
  virtual ~StreamLink() = default;
  virtual void Send(dspark::internal::v1::SpecResponse response) = 0;
  // Ends the stream (OK) once everything sent before is written.
  virtual void Finish() = 0;
};

struct DraftingLoopOptions {
  // The target identity (spec_codec.h TargetIdentity) a Hello must name;
  // empty: any target is accepted. Default "".
  std::string target_model;
  // Target vocabulary: tokens and last_token outside it are bad input;
  // 0: not checked. Default 0.
  int64_t vocab_size = 0;
  // The target's hidden size: an Extend of n tokens carries exactly
  // n * context_layers * target_dim floats. Default 0 (then only drafters
  // without context layers can be served).
  int target_dim = 0;
  // Prometheus metrics to keep (not owned; outlives the loop); null: none.
  // Default null.
  metrics::DraftMetrics* metrics = nullptr;
};

struct DraftingStats {
  int streams = 0;             // connected streams
  int open_sessions = 0;       // over every stream
  int64_t draft_calls = 0;     // Drafter::Draft calls made
  int64_t drafted_blocks = 0;  // blocks they returned
  int max_batch = 0;           // most requests in one Draft call so far
  int max_batch_streams = 0;   // most streams served by one Draft call so far
  double draft_seconds = 0;    // recent mean time of a Draft call
  double batch_requests = 0;   // recent mean requests per Draft call
  int queued = 0;              // messages not yet taken by the drafting thread
};

class DraftingLoop {
 public:
  // `drafter` (not owned) must outlive the loop; from now on only the
  // loop's thread calls it.
  DraftingLoop(drafter::Drafter* drafter, const DraftingLoopOptions& options);
  // Applies what is queued, closes every session left, stops the thread.
  ~DraftingLoop();

  DraftingLoop(const DraftingLoop&) = delete;
  DraftingLoop& operator=(const DraftingLoop&) = delete;

  // A new stream; its id names it in Submit and EndStream.
  int64_t AddStream(std::shared_ptr<StreamLink> link);
  // Queues one message of the stream, to apply after those queued before.
  void Submit(int64_t stream, dspark::internal::v1::SpecRequest request);
  // After the stream's queued messages: closes its sessions, calls Finish.
  void EndStream(int64_t stream);

  DraftingStats stats() const;
  // Waits up to `timeout` until `done(stats)` holds; false on timeout
  // (tests and drain wait on it instead of polling).
  bool AwaitStats(const std::function<bool(const DraftingStats&)>& done,
                  absl::Duration timeout) const;

 private:
  enum class Kind { kStart, kRequest, kEnd };
  struct Item {
    Kind kind = Kind::kRequest;
    int64_t stream = 0;
    std::shared_ptr<StreamLink> link;           // kStart
    dspark::internal::v1::SpecRequest request;  // kRequest
  };
  // Drafting-thread state of one stream.
  struct Stream {
    std::shared_ptr<StreamLink> link;
    bool hello = false;
    // The verify worker's session id -> the drafter's.
    absl::flat_hash_map<int64_t, drafter::SessionId> sessions;
  };
  // A Draft message validated and waiting for the round's batched call.
  struct PendingDraft {
    int64_t stream = 0;
    uint64_t seq = 0;
    std::vector<drafter::DraftRequest> requests;  // drafter-wide session ids
  };

  DraftingStats SnapshotLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run();
  // Applies `items` in order; a stream's messages after its Draft wait for
  // that Draft's batched call (the next round).
  void Process(std::deque<Item> items);
  void Apply(Item& item, std::vector<PendingDraft>* drafts);
  // Answers a request; OK is not answered except for Hello and Draft.
  absl::Status HandleRequest(Stream& stream, const dspark::internal::v1::SpecRequest& request,
                             dspark::internal::v1::SpecResponse* response,
                             std::vector<PendingDraft>* drafts, int64_t stream_id);
  absl::Status HandleHello(Stream& stream, const dspark::internal::v1::Hello& hello,
                           dspark::internal::v1::SpecResponse* response);
  absl::Status HandleExtend(Stream& stream, const dspark::internal::v1::ExtendSession& extend);
  absl::Status HandleFork(Stream& stream, const dspark::internal::v1::ForkSession& fork);
  absl::Status HandleDraft(Stream& stream, const dspark::internal::v1::DraftBatch& batch,
                           PendingDraft* pending);
  void RunDrafts(std::vector<PendingDraft> drafts);
  void CloseSessions(Stream& stream);
  void Reply(int64_t stream, dspark::internal::v1::SpecResponse response);

  drafter::Drafter* const drafter_;
  const DraftingLoopOptions options_;
  std::vector<int> context_layers_;  // the drafter's, read once
  int max_block_ = 0;

  mutable absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_stream_ ABSL_GUARDED_BY(mu_) = 1;
  DraftingStats stats_ ABSL_GUARDED_BY(mu_);

  // Drafting thread only.
  absl::flat_hash_map<int64_t, Stream> streams_;
  drafter::SessionId next_session_ = 1;
  int open_sessions_ = 0;

  std::thread thread_;
};

}  // namespace dspark::draft_service
