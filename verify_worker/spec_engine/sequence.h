// The engine's private per-request state, shared by spec_engine.cc (admission
// and lifecycle) and spec_step.cc (the step). Not part of the public API.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/engine/kv_cache/kv_cache.h"
#include "common/tokenizer/incremental_detokenizer.h"
#include "draft_worker/drafter/drafter.h"
#include "verify_worker/spec_engine/spec_engine.h"

namespace dspark::spec {

struct SpecEngine::Sequence {
  RequestId id = -1;
  SpecRequest req;
  engine::SeqId seq = -1;
  int64_t blocks = 0;              // worst-case KV blocks committed at admission
  int64_t prefilled = 0;           // prompt tokens in the KV
  std::vector<int32_t> kv_tokens;  // the tokens whose KV (and drafter context) exist
  std::vector<int32_t> generated;
  bool has_last = false;    // generated.back() waits to be fed to the target
  bool drafter_ok = false;  // the drafter holds this session
  bool cancelled = false;
  uint64_t draft_counter = 0;   // next draft draw counter
  uint64_t verify_counter = 0;  // next acceptance draw counter
  // Tokens worth drafting next step: a little more than the scheduler chose
  // last time, so an expensive drafter is not run for blocks nobody verifies.
  int draft_hint = SpecCounters::kMaxPositions;
  // Pause of drafting, in steps (0 or a power of two): while paused the
  // sequence drafts only in steps numbered a multiple of it, so paused
  // sequences probe together and few steps wait for a drafter.
  int draft_backoff = 0;
  std::unique_ptr<tokenizer::IncrementalDetokenizer> detok;
  SpecCounters counters;
};

// A finished sequence kept for prefix reuse: its KV and drafter session.
struct SpecEngine::CachedPrefix {
  engine::SeqId seq = -1;
  drafter::SessionId session = -1;  // -1: no drafter state
  std::vector<int32_t> tokens;
};

}  // namespace dspark::spec
