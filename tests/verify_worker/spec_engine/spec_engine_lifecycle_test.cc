// SpecEngine request lifecycle on the default model (SmolLM2-135M), greedy:
// requests joining and leaving mid-flight still equal engine::Generate;
// Cancel frees every KV block (the target's and the draft model's); prefix
// sharing with finished and running requests; stop ids, max_tokens and stop
// strings that end a request in the middle of a drafted block stop at exactly
// the token Generate stops at; bad input to Add is InvalidArgument and the
// engine serves other requests afterwards; an expensive drafter whose blocks
// do not pay is paused, its probes shared by the paused sequences, and most
// requests starting meanwhile get no drafter session. Skips when the model is
// not pulled.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/engine/model/generate.h"
#include "draft_worker/draft_model/draft_model_drafter.h"
#include "tests/fakes/fake_drafters.h"
#include "tests/verify_worker/spec_engine/spec_engine_test_util.h"
#include "verify_worker/scheduler/step_scheduler.h"
#include "verify_worker/spec_engine/spec_engine.h"

namespace dspark::spec::testing {
namespace {

std::vector<int32_t> Slice(const SharedModel& m, int begin, int length) {
  return std::vector<int32_t>(m.corpus.begin() + begin, m.corpus.begin() + begin + length);
}

std::unique_ptr<scheduler::StepScheduler> Fixed(int length) {
  auto s = scheduler::MakeStepScheduler({.kind = "fixed", .fixed_length = length});
  return s.ok() ? std::move(*s) : nullptr;
}

std::unique_ptr<drafter::Drafter> Drafter(const std::string& kind, engine::Model* target) {
  std::string skip;
  auto d = MakeTestDrafter(kind, target, &skip);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

// ---------------------------------------------------------------------------
// Continuous batching: requests join between steps while others decode, and
// leave when done; with max_running 3 some wait for a slot. One prompt is a
// single token (nothing to prefill but the token whose logits start decoding).

class ContinuousBatchingTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ContinuousBatchingTest, JoiningAndLeavingMidFlightEqualsGenerate) {
  SKIP_WITHOUT_MODEL();
  struct Arrival {
    int64_t at_step;
    std::vector<int32_t> prompt;
    int max_tokens;
  };
  const std::vector<Arrival> arrivals = {{0, Slice(*m, 0, 40), 24},    {0, Slice(*m, 50, 9), 12},
                                         {2, Slice(*m, 120, 70), 30},  {5, Slice(*m, 300, 1), 20},
                                         {5, Slice(*m, 210, 33), 16},  {9, Slice(*m, 400, 64), 28},
                                         {14, Slice(*m, 333, 21), 18}, {30, Slice(*m, 11, 15), 22}};
  auto drafter = Drafter(GetParam(), m->model.get());
  ASSERT_NE(drafter, nullptr);
  auto sched = Fixed(4);
  auto cache = m->model->NewKvCache({.max_tokens = 4096});
  SpecEngine engine(
      m->model.get(), cache.get(), drafter.get(), sched.get(), nullptr,
      {.max_batch_tokens = 96, .prefill_chunk = 32, .max_running = 3, .prefix_cache_entries = 0});
  std::map<RequestId, size_t> which;
  absl::flat_hash_map<RequestId, Outcome> out;
  size_t next = 0;
  int max_running = 0, joined_while_busy = 0;
  for (int64_t step = 0; next < arrivals.size() || engine.HasWork(); ++step) {
    ASSERT_LT(step, 10000);
    for (; next < arrivals.size() && arrivals[next].at_step <= step; ++next) {
      if (engine.num_running() > 0) ++joined_while_busy;
      auto id =
          engine.Add({.prompt = arrivals[next].prompt, .max_tokens = arrivals[next].max_tokens});
      ASSERT_TRUE(id.ok()) << id.status();
      which[*id] = next;
    }
    std::vector<SpecEvent> events;
    ASSERT_TRUE(engine.Step(&events).ok());
    Collect(events, &out);
    max_running = std::max(max_running, engine.num_running());
  }
  EXPECT_EQ(max_running, 3) << "max_running never bound";
  EXPECT_GE(joined_while_busy, 5) << "requests did not join mid-flight";
  SpecCounters total;
  for (const auto& [id, i] : which) {
    const Outcome& o = out[id];
    EXPECT_EQ(o.tokens, Reference(*m, arrivals[i].prompt, arrivals[i].max_tokens))
        << "request " << id << " (arrival " << i << ")";
    EXPECT_EQ(o.finish, FinishReason::kLength);
    EXPECT_EQ(o.finish_events, 1);
    total.Add(o.counters);
  }
  EXPECT_GT(total.verified_tokens, 0);
  std::printf("[continuous] %s: accepted/verified %lld/%lld in %lld steps\n", GetParam().c_str(),
              static_cast<long long>(total.accepted_tokens),
              static_cast<long long>(total.verified_tokens),
              static_cast<long long>(engine.steps()));
}

INSTANTIATE_TEST_SUITE_P(Drafters, ContinuousBatchingTest, ::testing::Values("oracle", "random"));

// ---------------------------------------------------------------------------
// Cancel: running and waiting requests end with one kCancelled event, the
// others are unaffected, and every KV block comes back, in the target's cache
// and in the draft model's (the engine closed the drafter sessions).

TEST(SpecEngineCancelTest, CancelFreesKvAndLeavesOthersIntact) {
  SKIP_WITHOUT_MODEL();
  auto draft_model = engine::Model::Load(m->model->file().path(), {.threads = 2, .max_layers = 4});
  ASSERT_TRUE(draft_model.ok()) << draft_model.status();
  auto drafter = drafter::DraftModelDrafter::Create(std::move(*draft_model),
                                                    m->model->config().vocab_size, {});
  ASSERT_TRUE(drafter.ok()) << drafter.status();
  const int64_t draft_free = (*drafter)->kv_cache().free_blocks();
  auto sched = Fixed(3);
  auto cache = m->model->NewKvCache({.max_tokens = 4096});
  const int64_t free_at_start = cache->free_blocks();
  {
    SpecEngine engine(m->model.get(), cache.get(), drafter->get(), sched.get(), nullptr,
                      {.max_batch_tokens = 128,
                       .prefill_chunk = 32,
                       .max_running = 3,
                       .prefix_cache_entries = 0});
    std::vector<std::vector<int32_t>> prompts;
    std::vector<RequestId> ids;
    for (int i = 0; i < 6; ++i) {
      prompts.push_back(Slice(*m, 37 * i, 12 + 9 * i));
      auto id = engine.Add({.prompt = prompts.back(), .max_tokens = 24});
      ASSERT_TRUE(id.ok());
      ids.push_back(*id);
    }
    absl::flat_hash_map<RequestId, Outcome> out;
    std::vector<SpecEvent> events;
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(engine.Step(&events).ok());
    ASSERT_EQ(engine.num_running(), 3);
    engine.Cancel(ids[0]);  // running, decoding
    engine.Cancel(ids[4]);  // waiting
    engine.Cancel(12345);   // unknown: ignored
    ASSERT_TRUE(engine.Step(&events).ok());
    ASSERT_TRUE(engine.Step(&events).ok());
    engine.Cancel(ids[3]);  // admitted in the step that freed ids[0]'s slot
    engine.Cancel(ids[3]);  // twice: still one event
    Collect(events, &out);
    ASSERT_EQ(RunToIdle(engine, &out), absl::OkStatus());
    engine.Cancel(ids[1]);  // finished: ignored
    ASSERT_EQ(RunToIdle(engine, &out), absl::OkStatus());
    for (size_t i = 0; i < ids.size(); ++i) {
      const Outcome& o = out[ids[i]];
      const std::vector<int32_t> ref = Reference(*m, prompts[i], 24);
      EXPECT_EQ(o.finish_events, 1) << "request " << i;
      if (i == 0 || i == 3 || i == 4) {
        EXPECT_EQ(o.finish, FinishReason::kCancelled) << "request " << i;
        // What a cancelled request emitted before is still the reference's prefix.
        ASSERT_LE(o.tokens.size(), ref.size());
        EXPECT_EQ(o.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + o.tokens.size()));
      } else {
        EXPECT_EQ(o.finish, FinishReason::kLength) << "request " << i;
        EXPECT_EQ(o.tokens, ref) << "request " << i;
      }
    }
    EXPECT_TRUE(out[ids[4]].tokens.empty()) << "a request cancelled while waiting ran";
    EXPECT_FALSE(out[ids[0]].tokens.empty());
    EXPECT_EQ(cache->free_blocks(), free_at_start) << "target KV leaked";
    EXPECT_EQ((*drafter)->kv_cache().free_blocks(), draft_free) << "drafter sessions leaked";
  }
  EXPECT_EQ(cache->free_blocks(), free_at_start);
}

// ---------------------------------------------------------------------------
// Prefix sharing: a request whose prompt starts with a finished (or running)
// request's 100 tokens reuses their KV, and its output is unchanged.

class PrefixSharingTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PrefixSharingTest, SharedPrefixKeepsOutputs) {
  SKIP_WITHOUT_MODEL();
  const std::string kind = GetParam();
  auto drafter = kind == "none" ? nullptr : Drafter(kind, m->model.get());
  ASSERT_TRUE(kind == "none" || drafter != nullptr);
  auto sched = Fixed(4);
  auto cache = m->model->NewKvCache({.max_tokens = 4096});
  const int64_t free_at_start = cache->free_blocks();
  const std::vector<int32_t> shared = Slice(*m, 200, 100);
  auto with_suffix = [&](int begin, int length) {
    std::vector<int32_t> p = shared;
    const std::vector<int32_t> s = Slice(*m, begin, length);
    p.insert(p.end(), s.begin(), s.end());
    return p;
  };
  const std::vector<int32_t> a = with_suffix(20, 13), b = with_suffix(500, 27);
  ASSERT_NE(a[100], b[100]) << "the suffixes must differ at once";
  const std::vector<int32_t> ref_a = Reference(*m, a, 20);
  // c continues a's own output: the shareable prefix is all of c but its
  // last token (the last prompt token is always fed to the target).
  std::vector<int32_t> c = a;
  c.insert(c.end(), ref_a.begin(), ref_a.begin() + 6);
  {
    SpecEngine engine(m->model.get(), cache.get(), drafter.get(), sched.get(), nullptr,
                      {.max_batch_tokens = 128,
                       .prefill_chunk = 32,
                       .prefix_cache_entries = 4,
                       .min_shared_prefix = 16});
    absl::flat_hash_map<RequestId, Outcome> out;
    // a alone; then b and c (shared with finished a); then d while b runs.
    auto ida = engine.Add({.prompt = a, .max_tokens = 20});
    ASSERT_TRUE(ida.ok());
    ASSERT_EQ(RunToIdle(engine, &out), absl::OkStatus());
    auto idb = engine.Add({.prompt = b, .max_tokens = 20});
    auto idc = engine.Add({.prompt = c, .max_tokens = 20});
    ASSERT_TRUE(idb.ok() && idc.ok());
    // Once b decodes, its KV holds all of b, so d (b and one more token)
    // shares more than the 100 tokens.
    for (int step = 0; out[*idb].tokens.empty(); ++step) {
      ASSERT_LT(step, 100);
      std::vector<SpecEvent> events;
      ASSERT_TRUE(engine.Step(&events).ok());
      Collect(events, &out);
    }
    ASSERT_EQ(out[*idb].finish, FinishReason::kNone);
    std::vector<int32_t> d = b;
    d.push_back(a[5]);
    auto idd = engine.Add({.prompt = d, .max_tokens = 20});
    ASSERT_TRUE(idd.ok());
    ASSERT_EQ(RunToIdle(engine, &out), absl::OkStatus());
    const std::map<std::string, std::pair<RequestId, const std::vector<int32_t>*>> reqs = {
        {"a", {*ida, &a}}, {"b", {*idb, &b}}, {"c", {*idc, &c}}, {"d", {*idd, &d}}};
    std::string report;
    for (const auto& [name, r] : reqs) {
      const Outcome& o = out[r.first];
      EXPECT_EQ(o.tokens, name == "a" ? ref_a : Reference(*m, *r.second, 20)) << "request " << name;
      absl::StrAppend(&report, " ", name, "=", o.counters.prefix_tokens_shared);
    }
    const int64_t sb = out[*idb].counters.prefix_tokens_shared;
    const int64_t sc = out[*idc].counters.prefix_tokens_shared;
    const int64_t sd = out[*idd].counters.prefix_tokens_shared;
    EXPECT_EQ(out[*ida].counters.prefix_tokens_shared, 0);
    if (kind == "none") {
      // Without a drafter there is no drafter state to fork: sharing must happen.
      EXPECT_EQ(sb, 100);
      EXPECT_EQ(sc, static_cast<int64_t>(c.size()) - 1);
      EXPECT_GT(sd, 100);
    }
    // Shared or not, never more than the prompt minus its last token.
    EXPECT_LE(sb, 100);
    EXPECT_LE(sc, static_cast<int64_t>(c.size()) - 1);
    EXPECT_LE(sd, static_cast<int64_t>(d.size()) - 1);
    std::printf("[prefix] drafter %s: prompt tokens shared%s (%s)\n", kind.c_str(), report.c_str(),
                sb > 0 ? "shared" : "fell back to full prefill");
    EXPECT_LT(cache->free_blocks(), free_at_start) << "nothing kept in the prefix cache";
  }
  EXPECT_EQ(cache->free_blocks(), free_at_start) << "the prefix cache leaked KV";
}

INSTANTIATE_TEST_SUITE_P(Drafters, PrefixSharingTest,
                         ::testing::Values("none", "draft-model", "ngram", "random"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// ---------------------------------------------------------------------------
// Stop conditions with speculation on: the oracle drafter has every block
// accepted in full, so a stop lands in the middle of a verified block.

// Runs one request to completion and returns its outcome.
Outcome RunOne(SharedModel& m, drafter::Drafter* drafter, scheduler::StepScheduler* sched,
               const tokenizer::Tokenizer* tok, SpecRequest req) {
  auto cache = m.model->NewKvCache({.max_tokens = 2048});
  SpecEngine engine(m.model.get(), cache.get(), drafter, sched, tok,
                    {.max_batch_tokens = 128, .prefill_chunk = 32, .prefix_cache_entries = 0});
  absl::flat_hash_map<RequestId, Outcome> out;
  auto id = engine.Add(std::move(req));
  EXPECT_TRUE(id.ok()) << id.status();
  if (!id.ok()) return {};
  EXPECT_EQ(RunToIdle(engine, &out), absl::OkStatus());
  EXPECT_EQ(out.size(), 1u);
  return out[*id];
}

// Tokens emitted is fewer than the prefill token plus, per decode step, the
// accepted drafts and the bonus: a stop cut a block short.
bool CutMidBlock(const Outcome& o) {
  return static_cast<int64_t>(o.tokens.size()) <
         1 + o.counters.decode_steps + o.counters.accepted_tokens;
}

TEST(SpecEngineStopTest, StopIdInsideAnAcceptedBlock) {
  SKIP_WITHOUT_MODEL();
  const std::vector<int32_t> prompt = Slice(*m, 140, 30);
  const std::vector<int32_t> full = Reference(*m, prompt, 40);
  // With every block of 7 accepted, the tokens emitted by decode steps are
  // full[1..8], full[9..16], ...: pick a stop token first seen mid-block.
  int k = -1;
  for (int i = 2; i < static_cast<int>(full.size()) && k < 0; ++i) {
    const bool fresh = std::find(full.begin(), full.begin() + i, full[i]) == full.begin() + i;
    if (fresh && (i - 1) % 8 >= 2 && (i - 1) % 8 <= 5) k = i;
  }
  ASSERT_GE(k, 0) << "no usable stop token in the reference";
  const std::vector<int32_t> stop = {full[k]};
  const std::vector<int32_t> expected(full.begin(), full.begin() + k + 1);
  ASSERT_EQ(Reference(*m, prompt, 40, stop), expected);
  for (const std::string kind : {"oracle", "random"}) {
    auto drafter = Drafter(kind, m->model.get());
    auto sched = Fixed(7);
    const Outcome o = RunOne(*m, drafter.get(), sched.get(), nullptr,
                             {.prompt = prompt, .max_tokens = 40, .stop_ids = stop});
    EXPECT_EQ(o.tokens, expected) << kind;
    EXPECT_EQ(o.finish, FinishReason::kStop) << kind;
    if (kind == "oracle") {
      EXPECT_TRUE(CutMidBlock(o)) << "the stop did not fall inside a block";
    }
  }
  // A stop id drawn from the prefill ends the request before any drafting.
  auto drafter = Drafter("oracle", m->model.get());
  auto sched = Fixed(7);
  const Outcome first = RunOne(*m, drafter.get(), sched.get(), nullptr,
                               {.prompt = prompt, .max_tokens = 40, .stop_ids = {full[0]}});
  EXPECT_EQ(first.tokens, std::vector<int32_t>{full[0]});
  EXPECT_EQ(first.finish, FinishReason::kStop);
  EXPECT_EQ(first.counters.drafted_tokens, 0);
}

TEST(SpecEngineStopTest, MaxTokensWithFullBlocks) {
  SKIP_WITHOUT_MODEL();
  const std::vector<int32_t> prompt = Slice(*m, 260, 25);
  const std::vector<int32_t> full = Reference(*m, prompt, 17);
  auto drafter = Drafter("oracle", m->model.get());
  auto sched = Fixed(7);
  for (int max_tokens : {1, 2, 3, 8, 9, 10, 16, 17}) {
    const Outcome o = RunOne(*m, drafter.get(), sched.get(), nullptr,
                             {.prompt = prompt, .max_tokens = max_tokens});
    EXPECT_EQ(o.tokens, std::vector<int32_t>(full.begin(), full.begin() + max_tokens))
        << "max_tokens " << max_tokens;
    EXPECT_EQ(o.finish, FinishReason::kLength) << "max_tokens " << max_tokens;
    // The engine never drafts past max_tokens: nothing accepted is thrown away.
    EXPECT_EQ(o.counters.accepted_tokens + o.counters.decode_steps + 1, max_tokens)
        << "max_tokens " << max_tokens;
  }
}

TEST(SpecEngineStopTest, StopStringCutsTextAndTokens) {
  SKIP_WITHOUT_MODEL();
  const tokenizer::Tokenizer& tok = *m->tokenizer;
  const std::vector<int32_t> prompt = Slice(*m, 60, 40);
  const std::vector<int32_t> full = Reference(*m, prompt, 40);
  auto decode = [&](size_t n) {
    auto t = tok.Decode(std::span<const int32_t>(full.data(), n), /*skip_special=*/true);
    EXPECT_TRUE(t.ok());
    return t.ok() ? *t : std::string();
  };
  const std::string text = decode(full.size());
  // A stop string starting inside token 12's text and ending inside a later
  // token's: three characters from the middle of token 12.
  const size_t at = decode(12).size() + 1;
  ASSERT_LT(at + 3, text.size());
  const std::string stop_string = text.substr(at, 3);
  // Expected: the first token after which the text contains the stop string,
  // and the text before its first occurrence.
  size_t j = 0;
  while (decode(j + 1).find(stop_string) == std::string::npos) ++j;
  const std::vector<int32_t> expected(full.begin(), full.begin() + j + 1);
  const std::string expected_text = text.substr(0, text.find(stop_string));
  std::printf("[stop string] \"%s\" ends the request at token %zu of %zu\n", stop_string.c_str(), j,
              full.size());
  for (const std::string kind : {"oracle", "draft-model", "none"}) {
    auto drafter = kind == "none" ? nullptr : Drafter(kind, m->model.get());
    auto sched = Fixed(7);
    const Outcome o = RunOne(*m, drafter.get(), sched.get(), &tok,
                             {.prompt = prompt, .max_tokens = 40, .stop_strings = {stop_string}});
    EXPECT_EQ(o.tokens, expected) << kind;
    EXPECT_EQ(o.text, expected_text) << kind;
    EXPECT_EQ(o.finish, FinishReason::kStop) << kind;
    if (kind == "oracle") {
      EXPECT_TRUE(CutMidBlock(o)) << "the stop string did not end the request inside a block";
    }
  }
}

// A request ending on a stop id must still deliver the text the detokenizer
// held back because it could have begun a stop string (here: the last
// character, which begins a stop string that never matches). Without stop
// strings the joined text is Decode(tokens).
TEST(SpecEngineStopTest, StopIdFlushesHeldBackText) {
  SKIP_WITHOUT_MODEL();
  const tokenizer::Tokenizer& tok = *m->tokenizer;
  const std::vector<int32_t> prompt = Slice(*m, 60, 40);
  const std::vector<int32_t> full = Reference(*m, prompt, 30);
  int k = -1;
  for (int i = 8; i < static_cast<int>(full.size()) && k < 0; ++i) {
    if (std::find(full.begin(), full.begin() + i, full[i]) == full.begin() + i) k = i;
  }
  ASSERT_GE(k, 0);
  const std::vector<int32_t> expected(full.begin(), full.begin() + k + 1);
  auto text = tok.Decode(expected, /*skip_special=*/true);
  ASSERT_TRUE(text.ok() && !text->empty());
  // Starts with the text's last byte; "\x01" never appears in the output.
  const std::string never = std::string(1, text->back()) + "\x01\x01";
  ASSERT_EQ(static_cast<unsigned char>(text->back()) & 0x80, 0) << "want an ASCII last byte";
  for (const std::string kind : {"none", "oracle"}) {
    auto drafter = kind == "none" ? nullptr : Drafter(kind, m->model.get());
    auto sched = Fixed(7);
    const Outcome plain = RunOne(*m, drafter.get(), sched.get(), &tok,
                                 {.prompt = prompt, .max_tokens = 30, .stop_ids = {full[k]}});
    EXPECT_EQ(plain.tokens, expected) << kind;
    EXPECT_EQ(plain.text, *text) << kind << ": without stop strings";
    const Outcome held = RunOne(
        *m, drafter.get(), sched.get(), &tok,
        {.prompt = prompt, .max_tokens = 30, .stop_ids = {full[k]}, .stop_strings = {never}});
    EXPECT_EQ(held.tokens, expected) << kind;
    EXPECT_EQ(held.finish, FinishReason::kStop) << kind;
    EXPECT_EQ(held.text, *text) << kind << ": the held-back last character was lost";
  }
}

// ---------------------------------------------------------------------------
// KV pressure: a cache that holds two requests' worst case at a time. The
// others wait (finished prefixes are evicted from the prefix cache to make
// room), and every output still equals Generate.

TEST(SpecEngineKvPressureTest, RequestsWaitForBlocksAndStillMatch) {
  SKIP_WITHOUT_MODEL();
  auto drafter = Drafter("random", m->model.get());
  auto sched = Fixed(3);
  // Each request needs ceil((40 + 24 + 17) / 16) = 6 blocks at worst; 13 hold two.
  auto cache = m->model->NewKvCache({.block_size = 16, .max_tokens = 13 * 16});
  const int64_t free_at_start = cache->free_blocks();
  {
    SpecEngine engine(m->model.get(), cache.get(), drafter.get(), sched.get(), nullptr,
                      {.max_batch_tokens = 128, .prefill_chunk = 32, .prefix_cache_entries = 2});
    std::map<RequestId, std::vector<int32_t>> prompts;
    for (int i = 0; i < 5; ++i) {
      std::vector<int32_t> p = Slice(*m, 45 * i, 40);
      auto id = engine.Add({.prompt = p, .max_tokens = 24});
      ASSERT_TRUE(id.ok()) << id.status();
      prompts[*id] = p;
    }
    absl::flat_hash_map<RequestId, Outcome> out;
    int most_running = 0;
    for (int step = 0; engine.HasWork(); ++step) {
      ASSERT_LT(step, 1000);
      std::vector<SpecEvent> events;
      ASSERT_TRUE(engine.Step(&events).ok());
      Collect(events, &out);
      most_running = std::max(most_running, engine.num_running());
    }
    EXPECT_EQ(most_running, 2);
    for (const auto& [id, p] : prompts) {
      EXPECT_EQ(out[id].tokens, Reference(*m, p, 24)) << "request " << id;
    }
  }
  EXPECT_EQ(cache->free_blocks(), free_at_start);
}

// ---------------------------------------------------------------------------
// A misbehaving drafter (a remote draft worker may be buggy) proposes ids
// outside the vocabulary. Speculation is an optimisation: the engine must not
// fail the requests, and the output must still equal Generate.

class OutOfVocabDrafter final : public drafter::Drafter {
 public:
  explicit OutOfVocabDrafter(int32_t bad) : bad_(bad) {}
  std::string name() const override { return "out-of-vocab"; }
  int max_block() const override { return 4; }
  absl::Status Open(drafter::SessionId) override { return absl::OkStatus(); }
  absl::Status Extend(drafter::SessionId, absl::Span<const int32_t>,
                      absl::Span<const float>) override {
    return absl::OkStatus();
  }
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override {
    blocks->assign(requests.size(), {});
    for (size_t i = 0; i < requests.size(); ++i) {
      for (int k = 0; k < requests[i].max_tokens; ++k) {
        const int32_t t = k == 0 ? 28 : bad_;  // a real token, then garbage
        (*blocks)[i].tokens.push_back(t);
        (*blocks)[i].q.push_back({{t, 1.0f}});
        (*blocks)[i].confidence.push_back(0.9f);
      }
    }
    return absl::OkStatus();
  }
  void Close(drafter::SessionId) override {}

 private:
  int32_t bad_;
};

TEST(SpecEngineRobustnessTest, OutOfVocabDraftsDoNotFailRequests) {
  SKIP_WITHOUT_MODEL();
  const std::vector<int32_t> prompt = Slice(*m, 15, 20);
  const std::vector<int32_t> ref = Reference(*m, prompt, 12);
  for (int32_t bad : {m->model->config().vocab_size, -1}) {
    OutOfVocabDrafter drafter(bad);
    auto sched = Fixed(4);
    auto cache = m->model->NewKvCache({.max_tokens = 1024});
    SpecEngine engine(m->model.get(), cache.get(), &drafter, sched.get(), nullptr,
                      {.max_batch_tokens = 128, .prefill_chunk = 32});
    auto id = engine.Add({.prompt = prompt, .max_tokens = 12});
    ASSERT_TRUE(id.ok());
    absl::flat_hash_map<RequestId, Outcome> out;
    const absl::Status st = RunToIdle(engine, &out);
    EXPECT_TRUE(st.ok()) << "drafted id " << bad << ": " << st;
    EXPECT_NE(out[*id].finish, FinishReason::kError)
        << "drafted id " << bad << ": " << out[*id].error;
    EXPECT_EQ(out[*id].tokens, ref) << "drafted id " << bad;
  }
}

// ---------------------------------------------------------------------------
// Back-off: a drafter that costs far more than its blocks earn is paused,
// paused sequences probe together (only in steps numbered a multiple of the
// pause), a request that starts decoding later takes the pause at once
// instead of making its first steps wait for drafts, and only one in
// kProbeEvery of those gets a drafter session. Output stays exact.

// Every block is the always-wrong fake's (never accepted); each Draft call
// takes `delay` more, so drafting costs a large share of a step.
class SlowWrongDrafter final : public drafter::Drafter {
 public:
  explicit SlowWrongDrafter(absl::Duration delay) : inner_(kNeverEmittedToken), delay_(delay) {}
  std::string name() const override { return "slow-wrong"; }
  int max_block() const override { return inner_.max_block(); }
  absl::Status Open(drafter::SessionId session) override {
    ++opened;
    open_.insert(session);
    return inner_.Open(session);
  }
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override {
    return inner_.Extend(session, tokens, features);
  }
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override {
    absl::SleepFor(delay_);
    ++calls;
    return inner_.Draft(requests, blocks);
  }
  // The fake keeps no context, so a child is just a new session.
  absl::Status Fork(drafter::SessionId child, drafter::SessionId parent,
                    int64_t prefix_len) override {
    if (!open_.contains(parent)) return absl::InvalidArgumentError("unknown parent");
    ++forked;
    open_.insert(child);
    return inner_.Open(child);
  }
  void Close(drafter::SessionId session) override {
    open_.erase(session);
    inner_.Close(session);
  }

  int64_t calls = 0;   // Draft calls
  int64_t opened = 0;  // sessions opened
  int64_t forked = 0;  // sessions forked

 private:
  dspark::testing::AlwaysWrongFakeDrafter inner_;
  absl::Duration delay_;
  absl::flat_hash_set<drafter::SessionId> open_;
};

TEST(SpecEngineBackoffTest, PausedSequencesProbeTogetherAndFewLateOnesDraft) {
  SKIP_WITHOUT_MODEL();
  SlowWrongDrafter drafter(absl::Milliseconds(40));
  auto sched =
      scheduler::MakeStepScheduler({.kind = "confidence", .cost_table = SyntheticCostTable()});
  ASSERT_TRUE(sched.ok()) << sched.status();
  auto cache = m->model->NewKvCache({.max_tokens = 4096});
  SpecEngine engine(m->model.get(), cache.get(), &drafter, sched->get(), nullptr,
                    {.max_batch_tokens = 256, .prefill_chunk = 64});
  std::map<RequestId, std::vector<int32_t>> prompts;
  const auto add = [&](std::vector<int32_t> prompt, int max_tokens) {
    auto id = engine.Add({.prompt = prompt, .max_tokens = max_tokens});
    ASSERT_TRUE(id.ok()) << id.status();
    prompts[*id] = std::move(prompt);
  };
  const auto joined = [](std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const std::vector<int32_t> base = Slice(*m, 300, 24);
  const std::vector<int32_t> base16(base.begin(), base.begin() + 16);
  const std::vector<int32_t> base20(base.begin(), base.begin() + 20);
  for (int i = 0; i < 3; ++i) add(Slice(*m, 40 * i, 12), 110);
  absl::flat_hash_map<RequestId, Outcome> out;
  std::vector<int64_t> drafting_steps;  // engine steps (numbered from 1) that drafted
  for (int64_t step = 1; engine.HasWork(); ++step) {
    ASSERT_LT(step, 1000);
    // Join once every sequence is paused 32 steps: the 1st and 5th get a
    // drafter session. The 5th shares 20 prompt tokens with the 2nd (no
    // session) and 16 with the 1st: it forks the 1st's.
    if (step == 41) {
      add(joined(base16, Slice(*m, 400, 8)), 70);
      add(joined(base20, Slice(*m, 500, 4)), 70);
      add(Slice(*m, 200, 12), 70);
      add(Slice(*m, 220, 12), 70);
    }
    if (step == 43) add(base, 70);
    const int64_t before = drafter.calls;
    std::vector<SpecEvent> events;
    ASSERT_TRUE(engine.Step(&events).ok());
    Collect(events, &out);
    if (drafter.calls > before) drafting_steps.push_back(step);
  }
  // Steps 2, 3, 4, 8, 16 and 32 double the pause to 32; after that every
  // sequence with a session, the late ones included, drafts only in steps
  // 64 and 96. Three late ones of four get no drafter session at all.
  std::vector<int64_t> late;
  for (int64_t s : drafting_steps) {
    if (s > 40) late.push_back(s);
  }
  EXPECT_EQ(late, (std::vector<int64_t>{64, 96}))
      << "drafting steps: " << absl::StrJoin(drafting_steps, " ");
  EXPECT_LE(drafting_steps.size(), 10u) << absl::StrJoin(drafting_steps, " ");
  EXPECT_EQ(drafter.opened, 4);
  EXPECT_EQ(drafter.forked, 1);
  int n = 0;
  for (const auto& [id, prompt] : prompts) {  // in the order added
    const Outcome& o = out[id];
    EXPECT_EQ(o.tokens, Reference(*m, prompt, static_cast<int>(o.counters.generated_tokens)))
        << "request " << id;
    if (n < 4 || n == 7) {
      EXPECT_GT(o.counters.drafted_tokens, 0) << "request " << id << " never probed";
    } else {
      EXPECT_EQ(o.counters.drafted_tokens, 0) << "request " << id << " drafted";
    }
    if (n == 7) EXPECT_EQ(o.counters.prefix_tokens_shared, 16);
    ++n;
  }
}

// ---------------------------------------------------------------------------
// Bad input: InvalidArgument, nothing queued, and the engine still serves.

TEST(SpecEngineBadInputTest, RejectsBadRequestsAndKeepsServing) {
  SKIP_WITHOUT_MODEL();
  const engine::ModelConfig& config = m->model->config();
  auto drafter = Drafter("ngram", m->model.get());
  auto sched = Fixed(3);
  auto cache = m->model->NewKvCache({.max_tokens = 512});
  SpecEngine engine(m->model.get(), cache.get(), drafter.get(), sched.get(), /*tokenizer=*/nullptr,
                    {.max_batch_tokens = 128, .prefill_chunk = 32});
  const std::vector<int32_t> good = Slice(*m, 10, 20);
  // Start one good request so the bad ones arrive while it runs.
  auto first = engine.Add({.prompt = good, .max_tokens = 16});
  ASSERT_TRUE(first.ok());
  std::vector<SpecEvent> events;
  ASSERT_TRUE(engine.Step(&events).ok());
  absl::flat_hash_map<RequestId, Outcome> out;
  Collect(events, &out);

  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Bad {
    std::string what;
    SpecRequest req;
  };
  std::vector<Bad> bad = {
      {"empty prompt", {.prompt = {}, .max_tokens = 8}},
      {"negative token", {.prompt = {1, -1, 2}, .max_tokens = 8}},
      {"token == vocab", {.prompt = {1, config.vocab_size}, .max_tokens = 8}},
      {"max_tokens 0", {.prompt = good, .max_tokens = 0}},
      {"max_tokens -3", {.prompt = good, .max_tokens = -3}},
      {"stop strings without tokenizer", {.prompt = good, .max_tokens = 8, .stop_strings = {"x"}}},
      {"larger than the KV cache", {.prompt = good, .max_tokens = 600}},
      {"temperature -1", {.prompt = good, .max_tokens = 8, .sampling = {.temperature = -1}}},
      {"temperature NaN", {.prompt = good, .max_tokens = 8, .sampling = {.temperature = nan}}},
      {"top_k -1", {.prompt = good, .max_tokens = 8, .sampling = {.top_k = -1}}},
      {"top_p 0", {.prompt = good, .max_tokens = 8, .sampling = {.top_p = 0}}},
      {"top_p 1.5", {.prompt = good, .max_tokens = 8, .sampling = {.top_p = 1.5f}}},
      {"min_p 2", {.prompt = good, .max_tokens = 8, .sampling = {.min_p = 2}}},
      {"max_block -1", {.prompt = good, .max_tokens = 8, .speculation = {.max_block = -1}}},
      {"min_confidence 2", {.prompt = good, .max_tokens = 8, .speculation = {.min_confidence = 2}}},
      {"min_confidence NaN",
       {.prompt = good, .max_tokens = 8, .speculation = {.min_confidence = nan}}},
  };
  ASSERT_GT(config.context_length, 0);
  bad.push_back(
      {"prompt + max_tokens beyond the context",
       {.prompt = std::vector<int32_t>(config.context_length - 4, good[0]), .max_tokens = 8}});
  for (const Bad& b : bad) {
    auto id = engine.Add(b.req);
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument)
        << b.what << ": " << id.status();
    EXPECT_EQ(engine.num_waiting(), 0) << b.what << " was queued";
  }
  // Still serving: the running request and a new one both equal Generate.
  const std::vector<int32_t> other = Slice(*m, 90, 7);
  auto second = engine.Add({.prompt = other, .max_tokens = 12});
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(RunToIdle(engine, &out), absl::OkStatus());
  EXPECT_EQ(out[*first].tokens, Reference(*m, good, 16));
  EXPECT_EQ(out[*second].tokens, Reference(*m, other, 12));
  EXPECT_EQ(out.size(), 2u) << "a rejected request produced events";
}

}  // namespace
}  // namespace dspark::spec::testing
