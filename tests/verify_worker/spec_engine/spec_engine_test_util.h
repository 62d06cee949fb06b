// Helpers shared by the SpecEngine tests on the default model: loading
// SmolLM2 (or saying why not), building each drafter under test, and running
// an engine until it is idle while collecting every request's events.
// Test-only; not thread-safe (one engine, one thread).
//
//   SharedModel* m = SharedModel::Get();  // null: skip with SharedModel::SkipReason()
//   auto drafter = MakeTestDrafter("ngram", m->model.get(), &why);
//   SpecEngine engine(m->model.get(), cache.get(), drafter.get(), sched.get(), nullptr, {});
//   ... engine.Add(...) ...
//   absl::flat_hash_map<RequestId, Outcome> outcomes;
//   ASSERT_TRUE(RunToIdle(engine, &outcomes).ok());
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "common/engine/model/model.h"
#include "common/tokenizer/tokenizer.h"
#include "draft_worker/drafter/drafter.h"
#include "verify_worker/scheduler/cost_table.h"
#include "verify_worker/spec_engine/spec_engine.h"

namespace dspark::spec::testing {

// The default model (SmolLM2-135M-Instruct, int8 activations, 2 threads) and
// its tokenizer, loaded once per test binary.
struct SharedModel {
  std::unique_ptr<engine::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  // [n] a few paragraphs of English prose and code, tokenized (n > 600):
  // prompts are slices of it.
  std::vector<int32_t> corpus;

  // Null when the model is not pulled or fails to load; then SkipReason() says why.
  static SharedModel* Get();
  static const std::string& SkipReason();
};

// What one request produced: its events joined.
struct Outcome {
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason finish = FinishReason::kNone;
  absl::Status error;
  SpecCounters counters;
  int events = 0;
  int finish_events = 0;  // must end up 1
};

// Appends `events` to `outcomes`.
void Collect(const std::vector<SpecEvent>& events,
             absl::flat_hash_map<RequestId, Outcome>* outcomes);

// Steps until the engine has no work, collecting events. Fails (instead of
// hanging) after `max_steps` steps.
absl::Status RunToIdle(SpecEngine& engine, absl::flat_hash_map<RequestId, Outcome>* outcomes,
                       int64_t max_steps = 100000);

// A drafter of one of the kinds under test, for `target`:
//   "random"      RandomFakeDrafter (random tokens and confidences)
//   "wrong"       AlwaysWrongFakeDrafter proposing kNeverEmittedToken
//   "oracle"      OracleFakeDrafter (the target itself)
//   "ngram"       prompt lookup
//   "draft-model" the target's first 4 layers (self-draft)
//   "dspark"      a random-weight DSpark drafter made by
//                 tools/make_random_drafter.py (once per binary)
// Null with *skip set when the drafter cannot be built here (the DSpark one
// without the venv); a drafter that should build but does not is an error.
absl::StatusOr<std::unique_ptr<drafter::Drafter>> MakeTestDrafter(const std::string& kind,
                                                                  engine::Model* target,
                                                                  std::string* skip);

// A control token of SmolLM2 that plain text never produces (the DSpark mask
// token); the always-wrong drafter proposes it.
inline constexpr int32_t kNeverEmittedToken = 16;

// Plain greedy decoding of `prompt` (engine::Generate): what speculative
// output must equal. A failed Generate fails the test and returns {}.
std::vector<int32_t> Reference(SharedModel& m, const std::vector<int32_t>& prompt, int max_tokens,
                               const std::vector<int32_t>& stop_ids = {});

// A synthetic cost table shaped like the 2-core CPU's (T(8) ~ 2.5 T(1)).
scheduler::CostTable SyntheticCostTable();

}  // namespace dspark::spec::testing

// Opens a test on the shared model: binds `m`, or skips with the reason.
#define SKIP_WITHOUT_MODEL()                                                             \
  ::dspark::spec::testing::SharedModel* m = ::dspark::spec::testing::SharedModel::Get(); \
  if (m == nullptr) GTEST_SKIP() << ::dspark::spec::testing::SharedModel::SkipReason()
