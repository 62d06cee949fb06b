// The in-process speculative serving loop: continuous batching over one
// target model and its paged KV cache. Every Step admits waiting requests
// (reusing cached prefixes), mixes prefill chunks with decoding sequences in
// one ragged forward, has the drafter propose blocks for the decoding ones,
// lets the step scheduler choose how many drafted tokens each verifies, and
// accepts losslessly. Not thread-safe: one thread (the step loop) calls
// everything.
//
// Two-batch overlap (with a drafter that drafts elsewhere, a draft worker):
// the decoding sequences alternate in two halves. A step sends the drafts
// of the half it does not verify (verified last step, or new) and collects
// those sent the step before, so each half drafts while the other one's
// forward runs. The halves are not fixed: they are "in flight" and "not",
// evened out each step by drafting a few at once. A block is the same block
// either way (it depends on the sequence's committed state only, which does
// not change while its draft is in flight), so outputs do not change.
//
//   SpecEngine engine(&model, &cache, drafter.get(), scheduler.get(), &tok, {});
//   DSPARK_ASSIGN_OR_RETURN(RequestId id, engine.Add(std::move(request)));
//   std::vector<SpecEvent> events;
//   while (engine.HasWork()) DSPARK_RETURN_IF_ERROR(engine.Step(&events));
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/engine/kv_cache/kv_cache.h"
#include "common/engine/model/model.h"
#include "verify_worker/scheduler/step_scheduler.h"
#include "verify_worker/spec_engine/acceptance_calibrator.h"
#include "verify_worker/spec_engine/request.h"

namespace dspark::drafter {
class Drafter;
struct DraftBlock;
struct DraftRequest;
}  // namespace dspark::drafter
namespace dspark::tokenizer {
class Tokenizer;
}

namespace dspark::spec {

struct SpecEngineOptions {
  // Most tokens in one target forward (prefill chunks + decode + verified
  // drafts). Default 512.
  int max_batch_tokens = 512;
  // Most prompt tokens of one request per forward. Default 256.
  int prefill_chunk = 256;
  // Most requests decoding at once; the rest wait. Default 64.
  int max_running = 64;
  // Finished sequences kept (KV and drafter state) for prefix reuse, LRU.
  // Default 8; 0 turns prefix sharing with finished requests off.
  int prefix_cache_entries = 8;
  // Shortest common prefix worth sharing, in tokens. Default 16.
  int min_shared_prefix = 16;
  // Scale drafter confidences by observed per-position acceptance before
  // the step scheduler sees them (AcceptanceCalibrator). Default true.
  bool calibrate_confidence = true;
  // Most tokens asked of the drafter per block; 0 = its block size. A fixed
  // verify length sets it too, so no drafting is wasted. Default 0.
  int max_draft_tokens = 0;
  // Two-batch overlap, with a drafter that drafts elsewhere (a draft
  // worker): the decoding sequences alternate in two halves, and while one
  // half is verified the other's drafts are drafted. Default false: it pays
  // only when drafting is a large share of a step and runs on other cores
  // (docs/decisions.md).
  bool two_batch_overlap = false;
};

class SpecEngine {
 public:
  // `drafter` may be null (no speculation); `tokenizer` may be null (no text,
  // no stop strings). All pointers outlive the engine.
  SpecEngine(engine::Model* target, engine::KvCache* cache, drafter::Drafter* drafter,
             scheduler::StepScheduler* scheduler, const tokenizer::Tokenizer* tokenizer,
             const SpecEngineOptions& options);
  ~SpecEngine();

  // Queues a request. Bad input (empty prompt, unknown token, bad sampling
  // parameters, max_tokens < 1, longer than the context or the whole KV
  // cache, stop strings without a tokenizer) is InvalidArgument and changes
  // nothing.
  absl::StatusOr<RequestId> Add(SpecRequest request);
  // Add's checks alone. Reads only what never changes after construction
  // (the model's config, the cache's size, whether there is a tokenizer), so
  // unlike everything else here it may be called from any thread: a server
  // rejects bad input at once instead of after the step in progress.
  absl::Status Validate(const SpecRequest& request) const;
  // Finishes the request at the next Step with kCancelled; unknown ids are ignored.
  void Cancel(RequestId id);
  bool HasWork() const { return !waiting_.empty() || !running_.empty(); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }

  // Runs one step, appending one event per request that emitted tokens or
  // finished. An error is returned only for a broken engine (a failed
  // forward); requests hit by it finish with kError events.
  absl::Status Step(std::vector<SpecEvent>* events);

  // The worker-wide speculation policy (the cluster scheduler's), from the
  // next Step on: every request's own settings can only tighten it. Passed
  // on to the step scheduler too; the engine applies it as well, so that
  // speculation off stops drafting (not just verifying) and the limits hold
  // without a scheduler.
  void SetPolicy(const scheduler::SchedulerPolicy& policy);
  const scheduler::SchedulerPolicy& policy() const { return policy_; }

  // Totals over every finished request.
  const SpecCounters& counters() const { return totals_; }
  int64_t steps() const { return steps_; }
  // Tokens fed to the target over all steps (prefill, decode and verified drafts).
  int64_t batch_tokens() const { return batch_tokens_; }
  // The verify length the last Step chose for each sequence that had a
  // drafted block (metrics: what the step scheduler decides).
  const std::vector<int>& last_verify_lengths() const { return last_verify_lengths_; }
  // Drafted blocks that were drafted while a forward ran (two-batch overlap).
  int64_t overlapped_drafts() const { return overlapped_drafts_; }
  // Seconds the last Step waited for drafts (0: it drafted nothing).
  double last_draft_wait() const { return last_draft_wait_; }
  // KV blocks kept by finished requests for prefix reuse: reclaimable, the
  // first thing Admit evicts when blocks run short. An upper bound: cached
  // prefixes forked from one another share blocks that count once each.
  int64_t cached_prefix_blocks() const;
  // KV blocks reserved by running requests (each its worst case: prompt +
  // max_tokens + a verify block), what admission counts against the cache.
  int64_t reserved_blocks() const { return committed_blocks_; }

  // A request's state (sequence.h); named here for the step's helpers.
  struct Sequence;

 private:
  struct CachedPrefix;
  // The drafts started during the last forward, not yet collected.
  struct InFlight {
    uint64_t ticket = 0;
    std::vector<RequestId> ids;   // in request order
    std::vector<int> max_tokens;  // each request's
  };

  // Longest pause of drafting, in steps (a power of two).
  static constexpr int kMaxDraftBackoff = 32;
  // While the pause is at its longest, one new sequence in this many gets a
  // drafter session (and keeps probing); the others decode without one.
  static constexpr int kProbeEvery = 4;

  void Admit();
  // Whether the new sequence gets a drafter session: not (except every
  // kProbeEvery-th) while drafting has not paid for long, so that such a
  // sequence costs no context features and no drafter work at all.
  bool WantsDrafter();
  void Share(Sequence& s);
  int64_t BlocksFor(int64_t tokens) const;
  // Sets the event's finish reason, flushes held-back text, copies counters.
  void Complete(Sequence& s, FinishReason reason, SpecEvent* event);
  // Frees a finished sequence or, when `reusable`, keeps it in the prefix cache.
  void Retire(std::unique_ptr<Sequence> s, bool reusable);
  // Appends a generated token; true when it finishes the request.
  bool EmitToken(Sequence& s, int32_t token, SpecEvent* event);
  void ExtendDrafter(Sequence& s, absl::Span<const int32_t> tokens, const float* features);
  // Most drafted tokens the sequence may verify this step.
  int DraftCap(const Sequence& s) const;
  // The sequence's next draft request; none when it may not draft now.
  std::optional<drafter::DraftRequest> NextDraftRequest(Sequence& s);
  // The decoding sequences this step verifies (`now`) and, under two-batch
  // overlap, those that draft meanwhile (`later`).
  void SplitForOverlap(std::vector<Sequence*>* now, std::vector<Sequence*>* later);
  // Starts `later`'s drafts (those of `later` that do not draft now join
  // `now`), and returns blocks for `now` (collected from the last step's
  // in-flight drafts or drafted here) with each request's max_tokens.
  void DraftFor(std::vector<Sequence*>* now, const std::vector<Sequence*>& later,
                std::vector<drafter::DraftBlock>* blocks, std::vector<int>* asked);
  // Verify lengths for the decoding sequences from the confidences of their
  // offered positions, given `base_tokens` other tokens in the forward and at
  // most `budget` drafted tokens in all.
  std::vector<int> ChooseLengths(const std::vector<std::vector<float>>& offered, int base_tokens,
                                 int budget);

  engine::Model* target_;
  engine::KvCache* cache_;
  drafter::Drafter* drafter_;
  scheduler::StepScheduler* scheduler_;
  const tokenizer::Tokenizer* tokenizer_;
  SpecEngineOptions options_;
  std::vector<int> capture_layers_;
  RequestId next_id_ = 1;
  int64_t steps_ = 0;
  int64_t batch_tokens_ = 0;
  std::vector<int> last_verify_lengths_;
  InFlight in_flight_;
  int64_t overlapped_drafts_ = 0;
  double last_draft_wait_ = 0;
  scheduler::SchedulerPolicy policy_;
  int64_t committed_blocks_ = 0;  // worst-case KV blocks of running requests
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;
  std::deque<CachedPrefix> prefix_cache_;  // most recent at the back
  SpecCounters totals_;
  AcceptanceCalibrator calibrator_;
  // Running averages of the drafter's and the target's time per step.
  double draft_seconds_ = 0;
  double forward_seconds_ = 0;
  // Running average of drafted tokens accepted per drafted sequence-step
  // (optimistic start, so a new drafter gets tried).
  double accepted_per_draft_ = 1.0;
  int64_t drafts_observed_ = 0;
  // What verifying drafted tokens adds to a step, as a share of the step
  // verifying none (from the scheduler's cost table): its last value and
  // its running average over steps that drafted.
  double last_verify_share_ = 0;
  double verify_share_ = 0;
  // The pause a sequence starts decoding with: 0 while drafting pays,
  // doubling (to kMaxDraftBackoff) over steps whose drafts did not pay, so a
  // new request does not make the next step wait for a draft nobody uses.
  int draft_pause_ = 0;
  int64_t unpaid_admissions_ = 0;  // sequences started while the pause was longest
};

}  // namespace dspark::spec
