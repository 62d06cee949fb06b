// dspark eval-drafter [--model M] [--drafters dspark,dspark+ngram,ngram,draft-model]
//   [--drafter-path DIR] [--draft-model-path FILE] [--draft-layers N]
//   [--sets mt_bench,humaneval,gsm8k,spec_bench] [--num-prompts P]
//   [--max-tokens N] [--block B] [--temperatures 0,1] [--seed S]
//   [--concurrency C] [--buckets K] [--data-dir D] [--json FILE]
//   [--threads T] [--exact]
// How good a drafter is, on the held-out prompt sets: every drafter drafts
// blocks of B tokens (default 7) and the target verifies all of them (a fixed
// verify length, so the numbers describe the drafter, not the step
// scheduler), greedy and at each temperature (top-k-truncated drafts, exact
// rejection sampling; request p gets seed S + p). Per set, drafter and
// temperature: tau (tokens emitted per verify step, the bonus token
// included), acceptance by block position (share of blocks whose first i+1
// drafts were accepted), and the confidence head's calibration (expected vs
// observed acceptance of every position the target reached, ECE over K
// equal-width buckets). Markdown on stdout, progress on stderr.
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/drafter_eval.h"
#include "tools/cli/model_loading.h"
#include "tools/cli/prompt_sets.h"
#include "tools/cli/spec_setup.h"
#include "tools/cli/workload_runner.h"

namespace dspark::cli {
namespace {

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    out.emplace_back(part);
  }
  return out;
}

// One (set, drafter, temperature) measurement.
struct Row {
  std::string set, drafter;
  double temperature = 0;
  WorkloadRun run;
  std::vector<ConfidenceSample> samples;
};

std::vector<double> AcceptByPosition(const spec::SpecCounters& c) {
  std::vector<double> out;
  for (int i = 0; i < spec::SpecCounters::kMaxPositions && c.verified_at[i] > 0; ++i) {
    out.push_back(static_cast<double>(c.accepted_at[i]) / c.verified_at[i]);
  }
  return out;
}

nlohmann::json CalibrationJson(const Calibration& c) {
  nlohmann::json buckets = nlohmann::json::array();
  for (const CalibrationBucket& b : c.buckets) {
    buckets.push_back({{"lo", b.lo}, {"hi", b.hi}, {"count", b.count},
                       {"mean_confidence", b.mean_confidence}, {"accept_rate", b.accept_rate}});
  }
  return {{"samples", c.samples}, {"ece", c.ece}, {"buckets", buckets}};
}

void PrintCalibration(const std::string& title, const Calibration& c) {
  std::printf("\n#### calibration: %s (%lld positions reached, ECE %.3f)\n\n"
              "| confidence | positions | mean confidence | accepted |\n|---|---|---|---|\n",
              title.c_str(), static_cast<long long>(c.samples), c.ece);
  for (const CalibrationBucket& b : c.buckets) {
    if (b.count == 0) continue;
    std::printf("| %.1f-%.1f | %lld | %.3f | %.3f |\n", b.lo, b.hi,
                static_cast<long long>(b.count), b.mean_confidence, b.accept_rate);
  }
}

absl::Status Run(const Args& args) {
  const std::string model_arg = args.Get("model", "smollm2-135m-instruct");
  std::vector<std::string> argv = {"--model", model_arg};
  for (const char* flag : {"threads"}) {
    if (args.Has(flag)) argv.insert(argv.end(), {absl::StrCat("--", flag), args.Get(flag)});
  }
  if (args.Has("exact")) argv.push_back("--exact");
  DSPARK_ASSIGN_OR_RETURN(Args model_args, Args::Parse(argv, {"model", "threads"}, {"exact"}));
  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> model, LoadModelFromArgs(model_args));
  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, LoadModelTokenizer(*model));

  DSPARK_ASSIGN_OR_RETURN(int64_t num_prompts, args.GetInt("num-prompts", 16));
  DSPARK_ASSIGN_OR_RETURN(int64_t max_tokens, args.GetInt("max-tokens", 128));
  DSPARK_ASSIGN_OR_RETURN(int64_t block, args.GetInt("block", 7));
  DSPARK_ASSIGN_OR_RETURN(int64_t seed, args.GetInt("seed", 0));
  DSPARK_ASSIGN_OR_RETURN(int64_t concurrency, args.GetInt("concurrency", 8));
  DSPARK_ASSIGN_OR_RETURN(int64_t buckets, args.GetInt("buckets", 10));
  DSPARK_ASSIGN_OR_RETURN(int64_t draft_layers, args.GetInt("draft-layers", 0));
  if (num_prompts < 1 || max_tokens < 1 || concurrency < 1 || buckets < 1) {
    return absl::InvalidArgumentError(
        "--num-prompts, --max-tokens, --concurrency and --buckets must be >= 1");
  }
  if (block < 1 || block > spec::SpecCounters::kMaxPositions) {
    return absl::InvalidArgumentError(
        absl::StrCat("--block ", block, " is outside 1..", spec::SpecCounters::kMaxPositions));
  }
  std::vector<double> temperatures;
  for (const std::string& t : SplitList(args.Get("temperatures", "0,1"))) {
    double v;
    if (!absl::SimpleAtod(t, &v) || v < 0) {
      return absl::InvalidArgumentError(absl::StrCat("--temperatures: bad value '", t, "'"));
    }
    temperatures.push_back(v);
  }
  const std::vector<std::string> drafters = SplitList(args.Get("drafters", "dspark,ngram"));
  const std::vector<std::string> sets =
      SplitList(args.Get("sets", "mt_bench,humaneval,gsm8k,spec_bench"));
  if (temperatures.empty() || drafters.empty() || sets.empty()) {
    return absl::InvalidArgumentError("--temperatures, --drafters and --sets must not be empty");
  }
  const std::string data_dir = args.Get("data-dir", DefaultDataDir());

  // A fixed verify length of B: every drafted token is verified.
  DSPARK_ASSIGN_OR_RETURN(auto scheduler,
                          MakeSchedulerFromArgs("fixed", static_cast<int>(block), {}));
  std::vector<Row> rows;
  for (const std::string& set : sets) {
    DSPARK_ASSIGN_OR_RETURN(std::vector<std::string> messages, LoadPromptSet(data_dir, set));
    Workload w{.model = model.get(),
               .concurrency = static_cast<int>(concurrency),
               .max_tokens = static_cast<int>(max_tokens)};
    w.stop_ids = tok->eos_ids();
    w.prompt_index = SpreadEvenly(messages.size(), static_cast<int>(num_prompts));
    for (size_t i : w.prompt_index) {
      DSPARK_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ChatPromptIds(*tok, messages[i]));
      w.prompts.push_back(std::move(ids));
    }
    for (const std::string& kind : drafters) {
      const bool dspark = kind == "dspark" || kind == "dspark+ngram";
      if (!dspark && kind != "draft-model" && kind != "ngram") {
        return absl::InvalidArgumentError(absl::StrCat(
            "--drafters: unknown drafter '", kind, "' (dspark, dspark+ngram, draft-model, ngram)"));
      }
      const std::string path =
          kind == "ngram" ? "" : args.Get(dspark ? "drafter-path" : "draft-model-path");
      for (double temperature : temperatures) {
        // A fresh drafter per run: no state carries over between runs.
        DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<drafter::Drafter> inner,
                                MakeDrafterOfKind(model_arg, kind, path,
                                                  static_cast<int>(draft_layers), model.get(),
                                                  nullptr));
        CalibrationProbe probe(inner.get());
        w.sampling = {.temperature = static_cast<float>(temperature),
                      .seed = static_cast<uint64_t>(seed)};
        std::fprintf(stderr, "[eval-drafter] %s: %s at temperature %g, %zu prompts...\n",
                     set.c_str(), kind.c_str(), temperature, w.prompts.size());
        DSPARK_ASSIGN_OR_RETURN(WorkloadRun run,
                                RunWorkload(w, &probe, scheduler.get(), static_cast<int>(block)));
        if (run.counters.verified_tokens != run.counters.drafted_tokens) {
          std::fprintf(stderr,
                       "[eval-drafter] warning: %lld of %lld drafted tokens were not verified; "
                       "calibration counts them as reached\n",
                       static_cast<long long>(run.counters.drafted_tokens -
                                              run.counters.verified_tokens),
                       static_cast<long long>(run.counters.drafted_tokens));
        }
        rows.push_back({.set = set, .drafter = kind, .temperature = temperature,
                        .run = std::move(run), .samples = probe.samples()});
      }
    }
  }

  std::printf("## eval-drafter: %s, block %lld, %lld prompts per set, at most %lld new tokens\n\n"
              "| set | drafter | temperature | tau | accept by position | ECE | positions |\n"
              "|---|---|---|---|---|---|---|\n",
              model_arg.c_str(), static_cast<long long>(block),
              static_cast<long long>(num_prompts), static_cast<long long>(max_tokens));
  nlohmann::json json = {{"model", model_arg}, {"block", block}, {"num_prompts", num_prompts},
                         {"max_tokens", max_tokens}, {"seed", seed}, {"rows", nlohmann::json::array()}};
  // Calibration pooled over the sets, per drafter and temperature.
  std::map<std::pair<std::string, double>, std::vector<ConfidenceSample>> pooled;
  for (const Row& r : rows) {
    const Calibration c = Calibrate(r.samples, static_cast<int>(buckets));
    const std::vector<double> accept = AcceptByPosition(r.run.counters);
    std::printf("| %s | %s | %g | %.2f | %s | %.3f | %lld |\n", r.set.c_str(), r.drafter.c_str(),
                r.temperature, r.run.tau(),
                absl::StrJoin(accept, " ", [](std::string* out, double v) {
                  absl::StrAppend(out, absl::StrFormat("%.2f", v));
                }).c_str(),
                c.ece, static_cast<long long>(c.samples));
    auto& pool = pooled[{r.drafter, r.temperature}];
    pool.insert(pool.end(), r.samples.begin(), r.samples.end());
    json["rows"].push_back({{"set", r.set}, {"drafter", r.drafter},
                            {"temperature", r.temperature}, {"tau", r.run.tau()},
                            {"accept_by_pos", accept},
                            {"generated_tokens", r.run.counters.generated_tokens},
                            {"decode_steps", r.run.counters.decode_steps},
                            {"drafted_tokens", r.run.counters.drafted_tokens},
                            {"accepted_tokens", r.run.counters.accepted_tokens},
                            {"calibration", CalibrationJson(c)}});
  }
  json["pooled_calibration"] = nlohmann::json::array();
  for (const auto& [key, samples] : pooled) {
    const Calibration c = Calibrate(samples, static_cast<int>(buckets));
    PrintCalibration(absl::StrFormat("%s, temperature %g, all sets", key.first, key.second), c);
    json["pooled_calibration"].push_back(
        {{"drafter", key.first}, {"temperature", key.second}, {"calibration", CalibrationJson(c)}});
  }
  if (args.Has("json")) {
    std::ofstream out(args.Get("json"));
    out << json.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", args.Get("json")));
  }
  return absl::OkStatus();
}

}  // namespace

int EvalDrafterCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::Parse(
      argv,
      {"model", "drafters", "drafter-path", "draft-model-path", "draft-layers", "sets",
       "num-prompts", "max-tokens", "block", "temperatures", "seed", "concurrency", "buckets",
       "data-dir", "json", "threads"},
      {"exact"});
  if (!args.ok()) return ExitCode("eval-drafter", args.status());
  return ExitCode("eval-drafter", Run(*args));
}

}  // namespace dspark::cli
