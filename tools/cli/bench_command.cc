// dspark bench engine [--models a,b] [--threads-list 1,2] [--prompt-tokens N]
//   [--decode-tokens N] [--reps N] [--no-llamacpp] [--row-major]
// For each model and thread count: prefill and decode tokens/s, the cost of a
// k-token forward relative to k = 1, and decode as a fraction of the memory
// bandwidth roofline — dspark and llama.cpp (tools/bench/llamacpp_engine.py)
// side by side in one run, as a Markdown table on stdout. --row-major adds
// dspark with its row-major int8 kernels (no panel repacking) to the run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/engine/backend/cpu/thread_pool.h"
#include "common/engine/model/model.h"
#include "common/engine/model_store/model_store.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/python_tool.h"

namespace dspark::cli {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kKs[] = {1, 2, 4, 8, 16};

struct EngineNumbers {
  double prefill_tps = 0;
  double decode_tps = 0;
  std::map<int, double> k_ms;  // k -> median ms of a k-token forward
};

// Same deterministic ids as tools/bench/llamacpp_engine.py.
std::vector<int32_t> MakeIds(int n, int vocab, int salt) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) {
    ids[i] = static_cast<int32_t>((static_cast<int64_t>(i) * 7919 + salt * 104729LL) % (vocab - 1000) + 500);
  }
  return ids;
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Read bandwidth in bytes/s over `threads` threads (best of 5 passes of 1 GiB).
double MeasureReadBandwidth(int threads) {
  const size_t n = (size_t{1} << 30) / sizeof(int64_t);
  std::vector<int64_t> buf(n, 1);
  engine::cpu::ThreadPool pool(threads);
  double best = 1e30;
  std::vector<int64_t> sums(64, 0);
  for (int rep = 0; rep < 5; ++rep) {
    auto t = Clock::now();
    pool.ParallelFor(threads, [&](int64_t b, int64_t e) {
      for (int64_t part = b; part < e; ++part) {
        const size_t lo = n / threads * part, hi = part + 1 == threads ? n : n / threads * (part + 1);
        int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = lo; i + 4 <= hi; i += 4) {
          s0 += buf[i]; s1 += buf[i + 1]; s2 += buf[i + 2]; s3 += buf[i + 3];
        }
        sums[part] = s0 + s1 + s2 + s3;
      }
    });
    best = std::min(best, SecondsSince(t));
  }
  return static_cast<double>(n * sizeof(int64_t)) / best;
}

absl::StatusOr<EngineNumbers> MeasureDspark(engine::Model& model, int prompt_tokens,
                                            int decode_tokens, int reps) {
  EngineNumbers r;
  const int vocab = model.config().vocab_size;
  auto cache = model.NewKvCache({.max_tokens = prompt_tokens + decode_tokens + 64});
  const std::vector<int32_t> prompt = MakeIds(prompt_tokens, vocab, 1);
  engine::ForwardOutput out;
  double best = 1e30;
  engine::SeqId seq = -1;
  for (int rep = 0; rep < std::max(1, reps / 2); ++rep) {
    if (seq >= 0) cache->FreeSequence(seq);
    seq = cache->CreateSequence();
    engine::ForwardBatch batch;
    batch.seqs.push_back({.seq = seq, .tokens = prompt, .logit_rows = {prompt_tokens - 1}});
    auto t = Clock::now();
    DSPARK_RETURN_IF_ERROR(model.Forward(batch, cache.get(), &out));
    best = std::min(best, SecondsSince(t));
  }
  r.prefill_tps = prompt_tokens / best;
  const std::vector<int32_t> dec = MakeIds(decode_tokens, vocab, 2);
  auto t = Clock::now();
  for (int32_t id : dec) {
    engine::ForwardBatch batch;
    batch.seqs.push_back({.seq = seq, .tokens = {id}, .logit_rows = {0}});
    DSPARK_RETURN_IF_ERROR(model.Forward(batch, cache.get(), &out));
  }
  r.decode_tps = decode_tokens / SecondsSince(t);
  cache->Truncate(seq, prompt_tokens);
  // The block sizes take turns within each rep, so that a slow spell of the
  // machine falls on all of them and not on one k's ratio.
  std::map<int, std::vector<double>> times;
  for (int rep = 0; rep < reps; ++rep) {
    for (int k : kKs) {
      engine::SequenceInput in{.seq = seq, .tokens = MakeIds(k, vocab, 3)};
      in.logit_rows.resize(k);
      std::iota(in.logit_rows.begin(), in.logit_rows.end(), 0);  // a verify block needs all
      engine::ForwardBatch batch;
      batch.seqs.push_back(std::move(in));
      auto tk = Clock::now();
      DSPARK_RETURN_IF_ERROR(model.Forward(batch, cache.get(), &out));
      times[k].push_back(SecondsSince(tk) * 1e3);
      cache->Truncate(seq, prompt_tokens);
    }
  }
  for (auto& [k, t] : times) {
    std::sort(t.begin(), t.end());
    r.k_ms[k] = t[t.size() / 2];
  }
  return r;
}

absl::StatusOr<EngineNumbers> MeasureLlamaCpp(const std::string& path, int threads,
                                              int prompt_tokens, int decode_tokens, int reps) {
  DSPARK_ASSIGN_OR_RETURN(
      nlohmann::json j,
      RunPythonTool(absl::StrCat("tools/bench/llamacpp_engine.py --model '", path, "' --threads ",
                                 threads, " --prompt-tokens ", prompt_tokens, " --decode-tokens ",
                                 decode_tokens, " --reps ", reps, " --ks ",
                                 absl::StrJoin(kKs, ","))));
  EngineNumbers r;
  r.prefill_tps = j["prefill_tps"];
  r.decode_tps = j["decode_tps"];
  for (int k : kKs) r.k_ms[k] = j["k_ms"][std::to_string(k)];
  return r;
}

std::string Row(const std::string& model, int threads, const std::string& engine,
                const EngineNumbers& r, double roofline, const std::string& vs) {
  std::string s = absl::StrFormat("| %s | %d | %s | %.1f | %.1f |", model, threads, engine,
                                  r.prefill_tps, r.decode_tps);
  for (int k : kKs) {
    if (k == 1) continue;
    absl::StrAppendFormat(&s, " %.2f |", r.k_ms.at(k) / r.k_ms.at(1));
  }
  absl::StrAppendFormat(&s, " %.2f | %.0f%% | %s |", r.k_ms.at(1), roofline * 100, vs);
  return s;
}

absl::Status Run(const std::vector<std::string>& argv) {
  DSPARK_ASSIGN_OR_RETURN(
      Args args, Args::Parse(argv, {"models", "threads-list", "prompt-tokens", "decode-tokens", "reps"},
                             {"no-llamacpp", "row-major"}));
  if (args.positional().size() != 1 || args.positional()[0] != "engine") {
    return absl::InvalidArgumentError("usage: dspark bench engine|tokenizer|spec [flags]");
  }
  const std::string models_arg =
      args.Get("models", "smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct,gemma-3-270m");
  std::vector<int> thread_counts;
  for (absl::string_view t : absl::StrSplit(args.Get("threads-list", "1,2"), ',')) {
    int v;
    if (!absl::SimpleAtoi(t, &v) || v < 1) return absl::InvalidArgumentError("bad --threads-list");
    thread_counts.push_back(v);
  }
  DSPARK_ASSIGN_OR_RETURN(int64_t prompt_tokens, args.GetInt("prompt-tokens", 128));
  DSPARK_ASSIGN_OR_RETURN(int64_t decode_tokens, args.GetInt("decode-tokens", 64));
  DSPARK_ASSIGN_OR_RETURN(int64_t reps, args.GetInt("reps", 5));
  const bool llamacpp = !args.Has("no-llamacpp");

  std::map<int, double> bandwidth;
  for (int t : thread_counts) bandwidth[t] = MeasureReadBandwidth(t);
  std::printf("Memory read bandwidth measured:");
  for (auto [t, bw] : bandwidth) std::printf(" %d thread(s) %.1f GB/s;", t, bw / 1e9);
  std::printf("\n\n| model | threads | engine | prefill tok/s | decode tok/s | k=2 | k=4 | k=8 | "
              "k=16 | k=1 ms | decode / roofline | decode vs llama.cpp |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  for (absl::string_view name : absl::StrSplit(models_arg, ',')) {
    DSPARK_ASSIGN_OR_RETURN(std::string path, dspark::ResolveModelPath(std::string(name)));
    for (int threads : thread_counts) {
      DSPARK_ASSIGN_OR_RETURN(auto model, engine::Model::Load(path, {.threads = threads}));
      const double bytes = static_cast<double>(model->WeightBytesPerToken());
      DSPARK_ASSIGN_OR_RETURN(EngineNumbers ours, MeasureDspark(*model, prompt_tokens, decode_tokens, reps));
      model.reset();
      std::string vs = "-";
      std::string theirs_row;
      if (llamacpp) {
        DSPARK_ASSIGN_OR_RETURN(EngineNumbers theirs,
                                MeasureLlamaCpp(path, threads, prompt_tokens, decode_tokens, reps));
        vs = absl::StrFormat("%.2fx", ours.decode_tps / theirs.decode_tps);
        theirs_row = Row(std::string(name), threads, "llama.cpp", theirs,
                         theirs.decode_tps * bytes / bandwidth[threads], "1.00x");
      }
      std::printf("%s\n", Row(std::string(name), threads, "dspark", ours,
                              ours.decode_tps * bytes / bandwidth[threads], vs).c_str());
      if (args.Has("row-major")) {
        DSPARK_ASSIGN_OR_RETURN(
            auto plain, engine::Model::Load(path, {.threads = threads, .panel_weights = false}));
        DSPARK_ASSIGN_OR_RETURN(EngineNumbers rm,
                                MeasureDspark(*plain, prompt_tokens, decode_tokens, reps));
        std::printf("%s\n", Row(std::string(name), threads, "dspark row-major", rm,
                                rm.decode_tps * bytes / bandwidth[threads], "-").c_str());
      }
      if (!theirs_row.empty()) std::printf("%s\n", theirs_row.c_str());
      std::fflush(stdout);
    }
  }
  std::printf("\nk=N columns: time of an N-token forward (logits for all N) / time of a 1-token "
              "forward. Roofline: decode tok/s x weight bytes per token / measured bandwidth.\n");
  return absl::OkStatus();
}

}  // namespace

int BenchCommand(const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "tokenizer") {
    return BenchTokenizerCommand(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (!args.empty() && args[0] == "serving") {
    return BenchServingCommand(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (!args.empty() && args[0] == "spec") {
    return BenchSpecCommand(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  return ExitCode("bench", Run(args));
}

}  // namespace dspark::cli
