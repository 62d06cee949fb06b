// dspark bench serving [--model M] [--prompts SET|FILE.jsonl] [--num-prompts P]
//   [--max-tokens N] [--concurrency 1,16 | --sweep] [--rate R] [--seed S]
//   [--modes inprocess,router,direct,router-overlap,target-only,fixed-N,adaptive]
//   [--drafter KIND] [--json FILE] [--draft-args "--flag=v ..."]
//   [--verify-args "..."] [--router-overhead PAIRS] [--reps R]
// A load generator for the serving path, every mode in one run:
//   inprocess  a SpecEngine in this process (the model's committed drafter,
//              confidence scheduler), no RPC at all;
//   router     a local cluster (router + 1 verify + 1 draft worker, separate
//              processes over gRPC), requests through dspark.v1 GenerateStream;
//   direct     the same cluster's verify worker called directly (internal
//              VerifyWorker.Generate), which isolates what the router adds;
//   router-overlap  as router, on a second cluster whose verify worker runs
//              with two-batch overlap (--two_batch_overlap): what drafting
//              during the other half's forward buys or costs.
// The speculation policies, each on a cluster of its own, through the router:
//   target-only  no draft worker, the step scheduler off;
//   fixed-N      every drafting sequence verifies N drafted tokens each step
//                (--scheduler=fixed --verify_len=N), the cluster scheduler off;
//   adaptive     as router: the confidence step scheduler and the router's
//                cluster scheduler.
// --sweep runs concurrency 1, 2, 4, ..., 64 (or --concurrency) with those five policies
// (target-only, fixed-1, fixed-3, fixed-7, adaptive) unless --modes says
// otherwise, each level with max(P, 2 x concurrency) requests, and ends with
// a table of adaptive against the best other mode at each level. --reps R
// measures every mode R times at each level, the modes taking turns, and
// the closing table takes each mode's fastest run.
// Closed loop at each --concurrency (that many requests always in flight),
// or open loop with Poisson arrivals at --rate requests/s. Prompts: a held-out
// set name (chat-templated) or a JSONL file of {"prompt": "..."} user
// messages. Reports TTFT, inter-token latency (per request: (e2e - TTFT) /
// (tokens - 1)) and end-to-end latency p50/p99, output tokens/s, tokens per
// target step, and each mode's throughput relative to in-process.
// --router-overhead PAIRS adds a paired measurement of what the router adds
// to time to first token on the same cluster (see MeasureRouterOverhead);
// --modes= (empty) runs that alone.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/base/status_macros.h"
#include "common/rpc/channel.h"
#include "common/rpc/status.h"
#include "common/tokenizer/tokenizer.h"
#include "deploy/local_cluster/local_cluster.h"
#include "dspark/internal/v1/verify.grpc.pb.h"
#include "dspark/v1/generation.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/model_loading.h"
#include "tools/cli/prompt_sets.h"
#include "tools/cli/spec_setup.h"
#include "verify_worker/spec_engine/spec_engine.h"

namespace dspark::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0, Clock::time_point t) {
  return std::chrono::duration<double>(t - t0).count();
}

// One request's timeline, seconds from its submission.
struct Timing {
  double ttft = -1;  // first token
  double e2e = 0;    // last event
  int tokens = 0;
  int64_t target_steps = 0;
  std::string error;
};

struct Load {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int32_t> stop_ids;
  int max_tokens = 128;
  int concurrency = 1;  // closed loop
  double rate = 0;      // > 0: open loop, Poisson arrivals
  uint64_t seed = 1;
};

// Submission offsets (seconds) for an open-loop run; empty for closed loop.
std::vector<double> Arrivals(const Load& load) {
  std::vector<double> at;
  if (load.rate <= 0) return at;
  std::mt19937_64 rng(load.seed);
  std::exponential_distribution<double> gap(load.rate);
  double t = 0;
  for (size_t i = 0; i < load.prompts.size(); ++i) at.push_back(t += gap(rng));
  return at;
}

// Drives `one(i)` per prompt from client threads: `concurrency` threads in a
// closed loop, or one thread per request released at its arrival time.
void Drive(const Load& load, const std::function<Timing(int)>& one, std::vector<Timing>* out) {
  const int n = static_cast<int>(load.prompts.size());
  out->assign(n, {});
  std::vector<double> at = Arrivals(load);
  std::vector<std::thread> threads;
  if (at.empty()) {
    std::atomic<int> next{0};
    for (int t = 0; t < load.concurrency; ++t) {
      threads.emplace_back([&] {
        for (int i = next++; i < n; i = next++) (*out)[i] = one(i);
      });
    }
  } else {
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      std::this_thread::sleep_until(t0 + std::chrono::duration<double>(at[i]));  // the arrival
      threads.emplace_back([&, i] { (*out)[i] = one(i); });
    }
  }
  for (auto& t : threads) t.join();
}

// The in-process engine as a thread-safe service for Drive's client threads.
class InProcess {
 public:
  InProcess(engine::Model* model, drafter::Drafter* drafter, scheduler::StepScheduler* sched,
            int max_running)
      : cache_(model->NewKvCache({})),
        engine_(model, cache_.get(), drafter, sched, nullptr, {.max_running = max_running}),
        loop_([this] { Loop(); }) {}
  ~InProcess() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    loop_.join();
  }

  Timing Run(spec::SpecRequest request) {
    Slot slot;
    slot.t0 = Clock::now();
    {
      absl::MutexLock lock(&mu_);
      inbox_.push_back({std::move(request), &slot});
      mu_.Await(absl::Condition(&slot.done));
    }
    return slot.timing;
  }

 private:
  struct Slot {
    Clock::time_point t0;
    Timing timing;
    bool done = false;
  };

  void Loop() {
    std::map<spec::RequestId, Slot*> live;
    std::vector<spec::SpecEvent> events;
    while (true) {
      std::vector<std::pair<spec::SpecRequest, Slot*>> incoming;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stop_ || !inbox_.empty() || engine_.HasWork();
        };
        mu_.Await(absl::Condition(&ready));
        if (stop_) return;
        incoming.swap(inbox_);
      }
      for (auto& [request, slot] : incoming) {
        absl::StatusOr<spec::RequestId> id = engine_.Add(std::move(request));
        if (!id.ok()) {
          absl::MutexLock lock(&mu_);
          slot->timing.error = id.status().ToString();
          slot->done = true;
          continue;
        }
        live[*id] = slot;
      }
      events.clear();
      absl::Status st = engine_.Step(&events);
      const auto now = Clock::now();
      absl::MutexLock lock(&mu_);
      for (const spec::SpecEvent& e : events) {
        Slot* slot = live.at(e.id);
        if (!e.tokens.empty() && slot->timing.ttft < 0) slot->timing.ttft = Since(slot->t0, now);
        slot->timing.tokens += static_cast<int>(e.tokens.size());
        if (e.finish == spec::FinishReason::kNone && st.ok()) continue;
        slot->timing.e2e = Since(slot->t0, now);
        slot->timing.target_steps = e.counters.decode_steps + 1;
        if (e.finish == spec::FinishReason::kError) slot->timing.error = e.error.ToString();
        slot->done = true;
        live.erase(e.id);
      }
    }
  }

  std::unique_ptr<engine::KvCache> cache_;
  spec::SpecEngine engine_;  // step-loop thread only
  absl::Mutex mu_;
  std::vector<std::pair<spec::SpecRequest, Slot*>> inbox_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loop_;
};

// One GenerateStream call through the router.
Timing StreamViaRouter(v1::Generation::Stub* stub, const v1::GenerateRequest& request) {
  Timing timing;
  const auto t0 = Clock::now();
  grpc::ClientContext context;
  auto reader = stub->GenerateStream(&context, request);
  v1::GenerateStreamResponse chunk;
  while (reader->Read(&chunk)) {
    if (chunk.token_ids_size() > 0 && timing.ttft < 0) timing.ttft = Since(t0, Clock::now());
    timing.tokens += chunk.token_ids_size();
    if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      timing.target_steps = chunk.speculation().target_steps();
    }
  }
  grpc::Status st = reader->Finish();
  timing.e2e = Since(t0, Clock::now());
  if (!st.ok()) timing.error = st.error_message();
  return timing;
}

Timing ViaRouter(v1::Generation::Stub* stub, const Load& load, int i) {
  v1::GenerateRequest request;
  for (int32_t t : load.prompts[i]) request.mutable_token_ids()->add_ids(t);
  request.mutable_stop()->set_max_tokens(load.max_tokens);
  return StreamViaRouter(stub, request);
}

// What the router would send the verify worker for `prompt` (greedy, the
// model's end-of-sequence ids as stops), speculating with `draft_worker`
// unless it is empty.
internal::v1::SessionRequest SessionRequestFor(const std::vector<int32_t>& prompt,
                                               const std::vector<int32_t>& stop_ids, int max_tokens,
                                               const std::string& draft_worker) {
  internal::v1::SessionRequest request;
  for (int32_t t : prompt) request.add_prompt(t);
  request.set_max_tokens(max_tokens);
  for (int32_t t : stop_ids) request.add_stop_token_ids(t);
  request.set_speculation_enabled(!draft_worker.empty());
  request.set_draft_worker(draft_worker);
  request.mutable_sampling()->set_top_p(1.0f);
  return request;
}

// One VerifyWorker.Generate call, bypassing the router.
Timing StreamDirect(internal::v1::VerifyWorker::Stub* stub,
                    const internal::v1::SessionRequest& request) {
  Timing timing;
  const auto t0 = Clock::now();
  grpc::ClientContext context;
  auto reader = stub->Generate(&context, request);
  internal::v1::SessionEvent event;
  while (reader->Read(&event)) {
    if (event.token_ids_size() > 0 && timing.ttft < 0) timing.ttft = Since(t0, Clock::now());
    timing.tokens += event.token_ids_size();
    if (event.finish() != internal::v1::SESSION_FINISH_NONE) timing.target_steps = event.target_steps();
  }
  grpc::Status st = reader->Finish();
  timing.e2e = Since(t0, Clock::now());
  if (!st.ok()) timing.error = st.error_message();
  return timing;
}

Timing Direct(internal::v1::VerifyWorker::Stub* stub, const std::string& draft_worker,
              const Load& load, int i) {
  return StreamDirect(
      stub, SessionRequestFor(load.prompts[i], load.stop_ids, load.max_tokens, draft_worker));
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[k];
}

struct Row {
  std::string mode;
  int concurrency = 0;
  double rate = 0;
  double wall = 0;
  std::vector<Timing> timings;
};

nlohmann::json Summarize(const Row& row, double inprocess_tps) {
  std::vector<double> ttft, itl, e2e;
  int64_t tokens = 0, steps = 0, errors = 0;
  std::string first_error;
  for (const Timing& t : row.timings) {
    if (!t.error.empty()) {
      if (errors++ == 0) first_error = t.error;
      continue;
    }
    tokens += t.tokens;
    steps += t.target_steps;
    ttft.push_back(t.ttft * 1e3);
    e2e.push_back(t.e2e);
    if (t.tokens > 1) itl.push_back((t.e2e - t.ttft) * 1e3 / (t.tokens - 1));
  }
  const double tps = tokens / std::max(row.wall, 1e-9);
  return {{"mode", row.mode},         {"concurrency", row.concurrency},
          {"rate", row.rate},         {"requests", row.timings.size()},
          {"errors", errors},         {"output_tok_s", tps},
          {"vs_inprocess", inprocess_tps > 0 ? tps / inprocess_tps : 0.0},
          {"ttft_ms_p50", Percentile(ttft, 0.5)}, {"ttft_ms_p99", Percentile(ttft, 0.99)},
          {"itl_ms_p50", Percentile(itl, 0.5)},   {"itl_ms_p99", Percentile(itl, 0.99)},
          {"e2e_s_p50", Percentile(e2e, 0.5)},    {"e2e_s_p99", Percentile(e2e, 0.99)},
          {"tokens_per_step", steps > 0 ? static_cast<double>(tokens) / steps : 0.0},
          {"first_error", first_error}};
}

void PrintRow(const nlohmann::json& j) {
  if (j["errors"].get<int>() > 0) {
    std::fprintf(stderr, "[bench serving] %s at %d: %d errors, the first: %s\n",
                 j["mode"].get<std::string>().c_str(), j["concurrency"].get<int>(),
                 j["errors"].get<int>(), j["first_error"].get<std::string>().c_str());
  }
  const double vs_inprocess = j["vs_inprocess"].get<double>();
  std::printf("| %s | %s | %d | %d | %.1f | %s | %.1f / %.1f | %.1f / %.1f | %.2f / %.2f | %.2f |\n",
              j["mode"].get<std::string>().c_str(),
              j["rate"].get<double>() > 0 ? absl::StrCat(j["rate"].get<double>(), "/s").c_str()
                                          : absl::StrCat(j["concurrency"].get<int>()).c_str(),
              j["requests"].get<int>(), j["errors"].get<int>(), j["output_tok_s"].get<double>(),
              vs_inprocess > 0 ? absl::StrFormat("%.2fx", vs_inprocess).c_str() : "-",
              j["ttft_ms_p50"].get<double>(),
              j["ttft_ms_p99"].get<double>(), j["itl_ms_p50"].get<double>(),
              j["itl_ms_p99"].get<double>(), j["e2e_s_p50"].get<double>(),
              j["e2e_s_p99"].get<double>(), j["tokens_per_step"].get<double>());
  std::fflush(stdout);
}

// --router-overhead: the time the router adds to the first token, measured
// in pairs so that drift and noise on a shared machine (which swamp the
// difference between the router and direct rows, measured minutes apart)
// hit both sides of a pair alike. Each pair sends one prompt through the
// router as a client would (chat messages, or text for a model without a
// chat template: the router templates, tokenizes and places it) and straight
// to the verify worker with the token ids the router computed, one request
// at a time, alternating which goes first. An untimed direct request of the
// same prompt precedes each pair: it leaves the prompt in the verify worker's
// prefix cache, so both timed requests fork the same cached prefix and
// prefill one token whichever goes first (without it the second request of
// a pair would find the first's prefix and the first might not).
constexpr int kOverheadWarmupPairs = 4;
constexpr int kOverheadMaxTokens = 1;  // the first token is what is timed
constexpr int kBootstrapResamples = 2000;

// One pair's times to first token.
struct OverheadPair {
  double router_ms = 0;
  double direct_ms = 0;
  bool router_first = false;
};

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / v.size();
}

// p50, p90 and mean of `v` (one value per pair), the p50 and the mean with
// 95% percentile-bootstrap intervals: resampling pairs with a fixed seed, so
// samples of equal size (the router, direct and difference columns) are
// resampled with the same pairs.
nlohmann::json Describe(const std::vector<double>& v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, v.empty() ? 0 : v.size() - 1);
  std::vector<double> medians, means, resample(v.size());
  for (int b = 0; b < kBootstrapResamples && !v.empty(); ++b) {
    for (double& x : resample) x = v[pick(rng)];
    medians.push_back(Percentile(resample, 0.5));
    means.push_back(Mean(resample));
  }
  auto interval = [](const std::vector<double>& stats) {
    return nlohmann::json::array({Percentile(stats, 0.025), Percentile(stats, 0.975)});
  };
  return {{"n", v.size()},
          {"p50", Percentile(v, 0.5)},
          {"p50_ci95", interval(medians)},
          {"p90", Percentile(v, 0.9)},
          {"mean", Mean(v)},
          {"mean_ci95", interval(means)}};
}

absl::StatusOr<nlohmann::json> MeasureRouterOverhead(const deploy::LocalCluster& cluster,
                                                     const Load& load,
                                                     const std::vector<std::string>& texts,
                                                     bool chat, int pairs) {
  auto router = v1::Generation::NewStub(rpc::MakeChannel(cluster.router().grpc));
  const auto* verify = cluster.processes(deploy::LocalCluster::Role::kVerify)[0];
  const auto drafts = cluster.processes(deploy::LocalCluster::Role::kDraft);
  const std::string draft = drafts.empty() ? "" : drafts[0]->grpc;
  auto direct = internal::v1::VerifyWorker::NewStub(rpc::MakeChannel(verify->grpc));

  std::vector<v1::GenerateRequest> via_router(texts.size());
  std::vector<internal::v1::SessionRequest> via_direct;
  for (size_t p = 0; p < texts.size(); ++p) {
    v1::TokenizeRequest tokenize;
    if (chat) {
      v1::ChatMessage* m = via_router[p].mutable_chat()->add_messages();
      m->set_role("user");
      m->set_content(texts[p]);
      *tokenize.mutable_chat() = via_router[p].chat();
    } else {
      via_router[p].set_prompt(texts[p]);
      tokenize.set_text(texts[p]);
    }
    via_router[p].mutable_stop()->set_max_tokens(kOverheadMaxTokens);
    grpc::ClientContext context;
    v1::TokenizeResponse ids;
    DSPARK_RETURN_IF_ERROR(rpc::FromGrpcStatus(router->Tokenize(&context, tokenize, &ids)));
    const std::vector<int32_t> router_ids(ids.token_ids().begin(), ids.token_ids().end());
    if (router_ids != load.prompts[p]) {
      std::fprintf(stderr,
                   "[bench serving] prompt %zu: the router's tokens (%zu) differ from this "
                   "tool's (%zu); the direct requests use the router's\n",
                   p, router_ids.size(), load.prompts[p].size());
    }
    via_direct.push_back(SessionRequestFor(router_ids, load.stop_ids, kOverheadMaxTokens, draft));
  }

  std::vector<OverheadPair> samples;
  int errors = 0;
  std::string first_error;
  auto failed = [&](const Timing& t) {
    if (t.error.empty() && t.ttft >= 0) return false;
    if (first_error.empty()) first_error = t.error.empty() ? "no token" : t.error;
    return true;
  };
  for (int k = 0; k < kOverheadWarmupPairs + pairs; ++k) {
    const size_t p = k % texts.size();
    const Timing prime = StreamDirect(direct.get(), via_direct[p]);
    OverheadPair pair{.router_first = k % 2 == 0};
    Timing r, d;
    if (pair.router_first) r = StreamViaRouter(router.get(), via_router[p]);
    d = StreamDirect(direct.get(), via_direct[p]);
    if (!pair.router_first) r = StreamViaRouter(router.get(), via_router[p]);
    if (k < kOverheadWarmupPairs) continue;
    if (failed(prime) || failed(r) || failed(d)) {
      ++errors;
      continue;
    }
    pair.router_ms = r.ttft * 1e3;
    pair.direct_ms = d.ttft * 1e3;
    samples.push_back(pair);
  }
  if (samples.empty()) {
    return absl::UnavailableError("--router-overhead: every pair failed: " + first_error);
  }

  std::vector<double> router_ms, direct_ms, diff, diff_router_first, diff_direct_first;
  nlohmann::json raw = nlohmann::json::array();
  for (const OverheadPair& s : samples) {
    router_ms.push_back(s.router_ms);
    direct_ms.push_back(s.direct_ms);
    diff.push_back(s.router_ms - s.direct_ms);
    (s.router_first ? diff_router_first : diff_direct_first).push_back(diff.back());
    raw.push_back({s.router_ms, s.direct_ms, s.router_first});
  }
  return nlohmann::json{
      {"mode", "router_overhead"},
      {"concurrency", 1},
      {"pairs", pairs},
      {"warmup_pairs", kOverheadWarmupPairs},
      {"errors", errors},
      {"first_error", first_error},
      {"max_tokens", kOverheadMaxTokens},
      {"router_input", chat ? "chat" : "prompt"},
      {"interval", absl::StrCat("95% percentile bootstrap over pairs, ", kBootstrapResamples,
                                " resamples, seed ", load.seed)},
      {"router_ttft_ms", Describe(router_ms, load.seed)},
      {"direct_ttft_ms", Describe(direct_ms, load.seed)},
      {"diff_ms", Describe(diff, load.seed)},
      {"diff_ms_router_first", Describe(diff_router_first, load.seed)},
      {"diff_ms_direct_first", Describe(diff_direct_first, load.seed)},
      {"pairs_ms", raw},  // [router TTFT, direct TTFT, router went first]
  };
}

void PrintOverhead(const nlohmann::json& j) {
  std::printf(
      "\n### router overhead: time to first token, %d pairs (%d errors), one request at a time, "
      "max %d token\n\n"
      "Each pair: the same prompt through the router (%s to dspark.v1 GenerateStream) and to the "
      "verify worker directly (VerifyWorker.Generate, the router's token ids), alternating which "
      "goes first, after an untimed request that leaves the prompt in the verify worker's prefix "
      "cache; %d untimed warm-up pairs. Intervals: %s.\n\n"
      "| TTFT ms | pairs | p50 [95%% CI] | p90 | mean [95%% CI] |\n|---|---|---|---|---|\n",
      j["pairs"].get<int>(), j["errors"].get<int>(), j["max_tokens"].get<int>(),
      j["router_input"] == "chat" ? "chat messages" : "prompt text", j["warmup_pairs"].get<int>(),
      j["interval"].get<std::string>().c_str());
  const std::pair<const char*, const char*> rows[] = {
      {"router", "router_ttft_ms"},
      {"direct", "direct_ttft_ms"},
      {"**router - direct** (per pair)", "diff_ms"},
      {"router - direct, router first", "diff_ms_router_first"},
      {"router - direct, direct first", "diff_ms_direct_first"}};
  for (const auto& [label, key] : rows) {
    const nlohmann::json& d = j[key];
    std::printf("| %s | %d | %.2f [%.2f, %.2f] | %.2f | %.2f [%.2f, %.2f] |\n", label,
                d["n"].get<int>(), d["p50"].get<double>(), d["p50_ci95"][0].get<double>(),
                d["p50_ci95"][1].get<double>(), d["p90"].get<double>(), d["mean"].get<double>(),
                d["mean_ci95"][0].get<double>(), d["mean_ci95"][1].get<double>());
  }
  std::fflush(stdout);
}

absl::StatusOr<std::vector<std::string>> LoadMessages(const std::string& spec) {
  if (!absl::EndsWith(spec, ".jsonl")) return LoadPromptSet(DefaultDataDir(), spec);
  std::ifstream in(spec);
  if (!in) return absl::NotFoundError("cannot read " + spec);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("prompt") || !j["prompt"].is_string()) {
      return absl::InvalidArgumentError(spec + ": each line needs {\"prompt\": \"...\"}");
    }
    out.push_back(j["prompt"].get<std::string>());
  }
  if (out.empty()) return absl::InvalidArgumentError(spec + " has no prompts");
  return out;
}

std::string BinDir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
}

// The cluster a mode runs on: its name (modes of one name share a cluster)
// and options, or nullopt for the in-process mode.
struct ClusterFor {
  std::string name;
  deploy::LocalClusterOptions options;
};

absl::StatusOr<std::optional<ClusterFor>> ClusterForMode(const std::string& mode,
                                                         const deploy::LocalClusterOptions& base) {
  if (mode == "inprocess") return std::optional<ClusterFor>();
  ClusterFor c{.name = mode, .options = base};
  int verify_len = 0;
  if (mode == "router" || mode == "direct" || mode == "adaptive") {
    c.name = "router";
  } else if (mode == "router-overlap") {
    c.options.verify_flags.push_back("--two_batch_overlap");
  } else if (mode == "target-only") {
    c.options.draft_workers = 0;
    c.options.verify_flags.push_back("--scheduler=off");
  } else if (absl::StartsWith(mode, "fixed-") &&
             absl::SimpleAtoi(mode.substr(6), &verify_len) && verify_len >= 1 &&
             verify_len <= 16) {
    c.options.verify_flags.push_back("--scheduler=fixed");
    c.options.verify_flags.push_back(absl::StrCat("--verify_len=", verify_len));
    c.options.router_flags.push_back("--scheduler_period_ms=0");
  } else {
    return absl::InvalidArgumentError("--modes: unknown mode '" + mode +
                                      "' (inprocess, router, direct, router-overlap, "
                                      "target-only, fixed-N with N in 1..16, adaptive)");
  }
  return std::optional<ClusterFor>(std::move(c));
}

// --sweep's closing table: at each level, the adaptive mode against the best
// of the others (and against target-only). With --reps, each mode's figure
// at a level is the fastest of its reps (the run least disturbed by the
// machine's other work); the last column compares the means of the reps.
void PrintSweepSummary(const nlohmann::json& rows) {
  struct Reps {
    double best = 0, sum = 0;
    int n = 0;
  };
  std::map<int, std::map<std::string, Reps>> tps;  // level -> mode -> its reps' tok/s
  for (const nlohmann::json& j : rows) {
    if (!j.contains("output_tok_s")) continue;
    Reps& r = tps[j["concurrency"].get<int>()][j["mode"].get<std::string>()];
    const double v = j["output_tok_s"].get<double>();
    r.best = std::max(r.best, v);
    r.sum += v;
    ++r.n;
  }
  const auto ratio = [](double a, double b) {
    return b > 0 ? absl::StrFormat("%.2fx", a / b) : std::string("-");
  };
  std::printf(
      "\n| concurrency | adaptive tok/s | best other | its tok/s | adaptive / best other | "
      "adaptive / target-only | adaptive / target-only, means of the reps "
      "|\n|---|---|---|---|---|---|---|\n");
  for (const auto& [level, by_mode] : tps) {
    auto adaptive = by_mode.find("adaptive");
    if (adaptive == by_mode.end()) continue;
    std::string best;
    double best_tps = 0;
    for (const auto& [mode, r] : by_mode) {
      if (mode != "adaptive" && r.best > best_tps) best = mode, best_tps = r.best;
    }
    auto target = by_mode.find("target-only");
    const Reps none;
    const Reps& t = target != by_mode.end() ? target->second : none;
    const Reps& a = adaptive->second;
    std::printf("| %d | %.1f | %s | %.1f | %s | %s | %s |\n", level, a.best,
                best.empty() ? "-" : best.c_str(), best_tps, ratio(a.best, best_tps).c_str(),
                ratio(a.best, t.best).c_str(),
                t.n > 0 ? ratio(a.sum / a.n, t.sum / t.n).c_str() : "-");
  }
  std::fflush(stdout);
}

absl::Status Run(const Args& args) {
  const std::string model_arg = args.Get("model", "smollm2-135m-instruct");
  DSPARK_ASSIGN_OR_RETURN(std::vector<std::string> messages,
                          LoadMessages(args.Get("prompts", "mt_bench")));
  DSPARK_ASSIGN_OR_RETURN(int64_t num_prompts, args.GetInt("num-prompts", 32));
  DSPARK_ASSIGN_OR_RETURN(int64_t max_tokens, args.GetInt("max-tokens", 128));
  DSPARK_ASSIGN_OR_RETURN(double rate, args.GetDouble("rate", 0));
  DSPARK_ASSIGN_OR_RETURN(int64_t seed, args.GetInt("seed", 1));
  DSPARK_ASSIGN_OR_RETURN(int64_t overhead_pairs, args.GetInt("router-overhead", 0));
  DSPARK_ASSIGN_OR_RETURN(int64_t reps, args.GetInt("reps", 1));
  if (num_prompts < 1 || max_tokens < 1 || reps < 1 || rate < 0 || overhead_pairs < 0) {
    return absl::InvalidArgumentError(
        "--num-prompts, --max-tokens, --reps >= 1; --rate, --router-overhead >= 0");
  }
  const bool sweep = args.Has("sweep");
  std::vector<int> levels;
  const std::string level_text =
      args.Get("concurrency", sweep ? "1,2,4,8,16,32,64" : "1,16");
  for (absl::string_view part : absl::StrSplit(level_text, ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1) {
      return absl::InvalidArgumentError(absl::StrCat("--concurrency: bad value '", part, "'"));
    }
    levels.push_back(v);
  }
  if (rate > 0) levels = {0};
  // Requests at a level: --num-prompts, and with --sweep at least two per
  // client so that a level is not one synchronized wave.
  const auto requests_at = [&](int level) {
    return sweep ? std::max<int64_t>(num_prompts, 2 * level) : num_prompts;
  };
  // --modes= (empty) runs none: --router-overhead alone.
  std::vector<std::string> modes = absl::StrSplit(
      args.Get("modes", sweep ? "target-only,fixed-1,fixed-3,fixed-7,adaptive"
                              : "inprocess,router,direct"),
      ',', absl::SkipEmpty());

  DSPARK_ASSIGN_OR_RETURN(auto model, LoadModelFromArgs(args));
  DSPARK_ASSIGN_OR_RETURN(auto tok, LoadModelTokenizer(*model));
  Load load{.max_tokens = static_cast<int>(max_tokens), .rate = rate,
            .seed = static_cast<uint64_t>(seed)};
  load.stop_ids = tok->eos_ids();
  std::vector<std::string> prompt_texts;  // the user message of each prompt
  std::vector<std::vector<int32_t>> prompt_ids;
  int64_t most_requests = num_prompts;
  for (int level : levels) most_requests = std::max(most_requests, requests_at(level));
  for (size_t i = 0; i < static_cast<size_t>(most_requests); ++i) {
    prompt_texts.push_back(messages[i % messages.size()]);
    DSPARK_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ChatPromptIds(*tok, prompt_texts.back()));
    prompt_ids.push_back(std::move(ids));
  }
  load.prompts.assign(prompt_ids.begin(), prompt_ids.begin() + num_prompts);

  deploy::LocalClusterOptions cluster_options{.bin_dir = BinDir(), .model = model_arg};
  if (args.Has("drafter")) {
    cluster_options.draft_flags.push_back("--drafter=" + args.Get("drafter"));
  }
  for (absl::string_view a : absl::StrSplit(args.Get("draft-args"), ' ', absl::SkipEmpty())) {
    cluster_options.draft_flags.emplace_back(a);
  }
  for (absl::string_view a : absl::StrSplit(args.Get("verify-args"), ' ', absl::SkipEmpty())) {
    cluster_options.verify_flags.emplace_back(a);
  }
  // Every cluster a mode needs starts before the first measurement, so that
  // the modes of a level are measured minutes, not a whole run, apart.
  std::map<std::string, std::unique_ptr<deploy::LocalCluster>> clusters;
  std::map<std::string, std::string> cluster_of_mode;
  std::vector<std::string> needed = modes;
  if (overhead_pairs > 0) needed.push_back("router");
  for (const std::string& mode : needed) {
    DSPARK_ASSIGN_OR_RETURN(std::optional<ClusterFor> c, ClusterForMode(mode, cluster_options));
    if (!c) continue;
    cluster_of_mode[mode] = c->name;
    if (clusters.count(c->name)) continue;
    std::fprintf(stderr, "[bench serving] starting a local cluster for %s...\n", c->name.c_str());
    DSPARK_ASSIGN_OR_RETURN(clusters[c->name], deploy::LocalCluster::Start(c->options));
  }
  const auto uses = [&modes](const char* mode) {
    return std::find(modes.begin(), modes.end(), mode) != modes.end();
  };
  std::unique_ptr<drafter::Drafter> drafter;
  std::unique_ptr<scheduler::StepScheduler> sched;
  std::string drafter_kind = args.Get("drafter", "auto");
  if (uses("inprocess")) {
    DSPARK_ASSIGN_OR_RETURN(drafter, MakeDrafterFromArgs(args, args.Get("drafter", "auto"),
                                                         model.get(), &drafter_kind));
    DSPARK_ASSIGN_OR_RETURN(scheduler::CostTable table, CostTableFromArgs(args, model.get()));
    DSPARK_ASSIGN_OR_RETURN(sched,
                            MakeSchedulerFromArgs(drafter ? "confidence" : "off", 0, table));
  }

  std::printf("## bench serving: %s, %s prompts (%s), greedy, max %d tokens, drafter %s\n\n",
              model_arg.c_str(),
              sweep ? absl::StrCat("max(", num_prompts, ", 2 x concurrency)").c_str()
                    : absl::StrCat(num_prompts).c_str(),
              args.Get("prompts", "mt_bench").c_str(), load.max_tokens, drafter_kind.c_str());
  if (!modes.empty()) {
    std::printf(
        "| mode | concurrency | requests | errors | output tok/s | vs in-process | "
        "TTFT ms p50 / p99 | ITL ms p50 / p99 | e2e s p50 / p99 | tokens / target step |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n");
  }
  nlohmann::json all = nlohmann::json::array();
  for (int level : levels) {
    load.concurrency = std::max(level, 1);
    load.prompts.assign(prompt_ids.begin(), prompt_ids.begin() + requests_at(level));
    double inprocess_tps = 0;
    for (int64_t rep = 0; rep < reps; ++rep) {
      for (const std::string& mode : modes) {
        Row row{.mode = mode, .concurrency = level, .rate = rate};
        std::unique_ptr<InProcess> engine;
        std::function<Timing(const Load&, int)> one;
        if (mode == "inprocess") {
          engine = std::make_unique<InProcess>(model.get(), drafter.get(), sched.get(), 64);
          one = [&engine](const Load& l, int i) {
            spec::SpecRequest request;
            request.prompt = l.prompts[i];
            request.max_tokens = l.max_tokens;
            request.stop_ids = l.stop_ids;
            return engine->Run(std::move(request));
          };
        } else if (mode == "direct") {
          const deploy::LocalCluster& c = *clusters.at(cluster_of_mode.at(mode));
          const auto* verify = c.processes(deploy::LocalCluster::Role::kVerify)[0];
          const auto drafts = c.processes(deploy::LocalCluster::Role::kDraft);
          const std::string draft = drafts.empty() ? "" : drafts[0]->grpc;
          std::shared_ptr<internal::v1::VerifyWorker::Stub> stub =
              internal::v1::VerifyWorker::NewStub(rpc::MakeChannel(verify->grpc));
          one = [stub, draft](const Load& l, int i) { return Direct(stub.get(), draft, l, i); };
        } else {
          const deploy::LocalCluster& c = *clusters.at(cluster_of_mode.at(mode));
          std::shared_ptr<v1::Generation::Stub> stub =
              v1::Generation::NewStub(rpc::MakeChannel(c.router().grpc));
          one = [stub](const Load& l, int i) { return ViaRouter(stub.get(), l, i); };
        }
        // Every mode first serves one untimed request (connections, caches),
        // so that the order of the modes does not favour the later ones.
        Load warmup = load;
        warmup.prompts.resize(1);
        warmup.concurrency = 1;
        warmup.rate = 0;
        std::vector<Timing> ignored;
        Drive(warmup, [&](int i) { return one(warmup, i); }, &ignored);
        const auto t0 = Clock::now();
        Drive(load, [&](int i) { return one(load, i); }, &row.timings);
        row.wall = Since(t0, Clock::now());
        nlohmann::json j = Summarize(row, inprocess_tps);
        if (mode == "inprocess") {
          inprocess_tps = j["output_tok_s"].get<double>();
          j["vs_inprocess"] = 1.0;
        }
        j["rep"] = rep;
        PrintRow(j);
        all.push_back(j);
      }
    }
  }
  if (uses("adaptive")) PrintSweepSummary(all);
  if (overhead_pairs > 0) {
    std::fprintf(stderr, "[bench serving] router overhead: %lld pairs...\n",
                 static_cast<long long>(overhead_pairs));
    load.prompts.assign(prompt_ids.begin(), prompt_ids.begin() + num_prompts);
    const std::vector<std::string> texts(prompt_texts.begin(), prompt_texts.begin() + num_prompts);
    DSPARK_ASSIGN_OR_RETURN(
        nlohmann::json j,
        MeasureRouterOverhead(*clusters.at("router"), load, texts, !tok->chat_template().empty(),
                              static_cast<int>(overhead_pairs)));
    PrintOverhead(j);
    all.push_back(std::move(j));
  }
  for (auto& [name, cluster] : clusters) cluster->Stop(absl::Seconds(30));
  if (args.Has("json")) {
    std::ofstream(args.Get("json")) << all.dump(2) << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

int BenchServingCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::Parse(
      argv,
      {"model", "prompts", "num-prompts", "max-tokens", "concurrency", "rate", "seed", "modes",
       "drafter", "drafter-path", "draft-layers", "cost-table", "threads", "json", "draft-args",
       "verify-args", "router-overhead", "reps"},
      {"sweep", "exact"});
  if (!args.ok()) return ExitCode("bench serving", args.status());
  return ExitCode("bench serving", Run(*args));
}

}  // namespace dspark::cli
