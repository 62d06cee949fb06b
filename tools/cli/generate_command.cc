// dspark generate --model M [--prompt TEXT | --chat TEXT | --prompt-ids 1,2,3]
//   [--system TEXT] --max-tokens N --temperature T --top-k K --top-p P
//   --min-p P --seed S [--stop TEXT] [--print-ids] [--exact] [--threads N]
//   [--drafter auto|dspark|dspark+ngram|draft-model|ngram|none] [--scheduler confidence|fixed|off]
//   [--verify-len K] [--max-block N] [--min-confidence C] (see spec_setup.h)
// Runs the speculative engine (lossless: the output is the target's own) and
// streams the text (or, with --print-ids, the generated ids on one line) to
// stdout, with a speed and acceptance summary on stderr.
#include <chrono>
#include <cstdio>
#include <set>
#include <string>

#include "absl/strings/str_format.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/incremental_detokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/model_loading.h"
#include "tools/cli/spec_setup.h"
#include "verify_worker/spec_engine/spec_engine.h"

namespace dspark::cli {
namespace {

absl::StatusOr<std::vector<int32_t>> PromptIds(const Args& args, const tokenizer::Tokenizer* tok) {
  const int given = args.Has("prompt") + args.Has("chat") + args.Has("prompt-ids");
  if (given != 1) {
    return absl::InvalidArgumentError("give exactly one of --prompt, --chat, --prompt-ids");
  }
  if (args.Has("prompt-ids")) return ParseIdList(args.Get("prompt-ids"));
  if (args.Has("prompt"))
    return tok->Encode(args.Get("prompt"), /*add_special=*/true, /*parse_special=*/true);
  nlohmann::json messages = nlohmann::json::array();
  if (args.Has("system")) messages.push_back({{"role", "system"}, {"content", args.Get("system")}});
  messages.push_back({{"role", "user"}, {"content", args.Get("chat")}});
  if (tok->chat_template().empty()) {
    return absl::InvalidArgumentError("the model has no chat template; use --prompt");
  }
  DSPARK_ASSIGN_OR_RETURN(
      std::string rendered,
      tokenizer::ApplyChatTemplate(tok->chat_template(), messages, /*add_generation_prompt=*/true,
                                   tok->bos_id() >= 0 ? tok->TokenText(tok->bos_id()) : "",
                                   tok->eos_id() >= 0 ? tok->TokenText(tok->eos_id()) : ""));
  // The template writes the special tokens itself (as Hugging Face does).
  return tok->Encode(rendered, /*add_special=*/false, /*parse_special=*/true);
}

// "acceptance by position: 0.81 0.66 ..." for the verified positions.
std::string AcceptanceLine(const spec::SpecCounters& c) {
  std::string line;
  for (int i = 0; i < spec::SpecCounters::kMaxPositions && c.verified_at[i] > 0; ++i) {
    absl::StrAppendFormat(&line, " %.2f", static_cast<double>(c.accepted_at[i]) / c.verified_at[i]);
  }
  return line.empty() ? " -" : line;
}

absl::Status Run(const std::vector<std::string>& argv) {
  std::set<std::string> value_flags = {
      "model", "threads", "prompt", "chat", "system", "prompt-ids", "max-tokens",    "temperature",
      "top-k", "top-p",   "min-p",  "seed", "stop",   "max-block",  "min-confidence"};
  value_flags.insert(kSpecValueFlags.begin(), kSpecValueFlags.end());
  DSPARK_ASSIGN_OR_RETURN(Args args,
                          Args::Parse(argv, value_flags, {"print-ids", "exact", "quiet"}));
  spec::SpecRequest request;
  DSPARK_ASSIGN_OR_RETURN(int64_t max_tokens, args.GetInt("max-tokens", 128));
  DSPARK_ASSIGN_OR_RETURN(double temperature, args.GetDouble("temperature", 0.0));
  DSPARK_ASSIGN_OR_RETURN(int64_t top_k, args.GetInt("top-k", 0));
  DSPARK_ASSIGN_OR_RETURN(double top_p, args.GetDouble("top-p", 1.0));
  DSPARK_ASSIGN_OR_RETURN(double min_p, args.GetDouble("min-p", 0.0));
  DSPARK_ASSIGN_OR_RETURN(int64_t seed, args.GetInt("seed", 0));
  DSPARK_ASSIGN_OR_RETURN(int64_t max_block, args.GetInt("max-block", 0));
  DSPARK_ASSIGN_OR_RETURN(double min_confidence, args.GetDouble("min-confidence", 0.0));
  DSPARK_ASSIGN_OR_RETURN(int64_t verify_len, args.GetInt("verify-len", 7));
  request.max_tokens = static_cast<int>(max_tokens);
  request.sampling = {.temperature = static_cast<float>(temperature),
                      .top_k = static_cast<int>(top_k),
                      .top_p = static_cast<float>(top_p),
                      .min_p = static_cast<float>(min_p),
                      .seed = static_cast<uint64_t>(seed)};
  request.speculation = {.max_block = static_cast<int>(max_block),
                         .min_confidence = static_cast<float>(min_confidence)};
  if (args.Has("stop")) request.stop_strings = {args.Get("stop")};
  DSPARK_RETURN_IF_ERROR(engine::ValidateSamplingParams(request.sampling));

  DSPARK_ASSIGN_OR_RETURN(auto model, LoadModelFromArgs(args));
  std::unique_ptr<tokenizer::Tokenizer> tok;
  const bool print_ids = args.Has("print-ids");
  if (!args.Has("prompt-ids") || !print_ids || args.Has("stop")) {
    DSPARK_ASSIGN_OR_RETURN(tok, LoadModelTokenizer(*model));
  }
  DSPARK_ASSIGN_OR_RETURN(request.prompt, PromptIds(args, tok.get()));
  // With raw ids the caller controls everything, stop tokens included.
  if (tok != nullptr && !args.Has("prompt-ids")) request.stop_ids = tok->eos_ids();

  std::string drafter_kind;
  DSPARK_ASSIGN_OR_RETURN(auto drafter, MakeDrafterFromArgs(args, args.Get("drafter", "auto"),
                                                            model.get(), &drafter_kind));
  const std::string scheduler_kind = drafter ? args.Get("scheduler", "confidence") : "off";
  scheduler::CostTable table;
  if (scheduler_kind == "confidence") {
    DSPARK_ASSIGN_OR_RETURN(table, CostTableFromArgs(args, model.get()));
  }
  DSPARK_ASSIGN_OR_RETURN(
      auto scheduler, MakeSchedulerFromArgs(scheduler_kind, static_cast<int>(verify_len), table));

  auto cache = model->NewKvCache(
      {.max_tokens = static_cast<int64_t>(request.prompt.size()) + request.max_tokens + 64});
  spec::SpecEngine engine(
      model.get(), cache.get(), drafter.get(), scheduler.get(), print_ids ? nullptr : tok.get(),
      {.prefix_cache_entries = 0,
       .max_draft_tokens = scheduler_kind == "fixed" ? static_cast<int>(verify_len) : 0});
  const size_t prompt_tokens = request.prompt.size();
  DSPARK_ASSIGN_OR_RETURN(spec::RequestId id, engine.Add(std::move(request)));
  (void)id;
  std::vector<int32_t> generated;
  spec::SpecCounters counters;
  double first_token_at = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [&t0] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  while (engine.HasWork()) {
    std::vector<spec::SpecEvent> events;
    DSPARK_RETURN_IF_ERROR(engine.Step(&events));
    for (const spec::SpecEvent& e : events) {
      if (generated.empty() && !e.tokens.empty()) first_token_at = since();
      generated.insert(generated.end(), e.tokens.begin(), e.tokens.end());
      if (!print_ids) {
        std::fputs(e.text.c_str(), stdout);
        std::fflush(stdout);
      }
      if (e.finish == spec::FinishReason::kError) return e.error;
      if (e.finish != spec::FinishReason::kNone) counters = e.counters;
    }
  }
  const double total = since();
  if (print_ids) {
    for (size_t i = 0; i < generated.size(); ++i) std::printf("%s%d", i ? " " : "", generated[i]);
  }
  std::printf("\n");
  if (!args.Has("quiet")) {
    const double n = static_cast<double>(generated.size());
    const double steps = std::max<double>(1, counters.decode_steps);
    std::fprintf(stderr,
                 "[dspark] prompt %zu tokens, prefill %.1f tokens/s; generated %zu tokens, "
                 "decode %.1f tokens/s\n"
                 "[dspark] drafter %s, scheduler %s: %.2f tokens per step (tau), "
                 "verified %lld of %lld drafted, accepted %lld; acceptance by position:%s\n",
                 prompt_tokens, prompt_tokens / std::max(first_token_at, 1e-9), generated.size(),
                 n > 1 ? (n - 1) / std::max(total - first_token_at, 1e-9) : 0.0,
                 drafter ? drafter_kind.c_str() : "none", scheduler_kind.c_str(), (n - 1) / steps,
                 static_cast<long long>(counters.verified_tokens),
                 static_cast<long long>(counters.drafted_tokens),
                 static_cast<long long>(counters.accepted_tokens),
                 AcceptanceLine(counters).c_str());
  }
  return absl::OkStatus();
}

}  // namespace

int GenerateCommand(const std::vector<std::string>& args) {
  return ExitCode("generate", Run(args));
}

}  // namespace dspark::cli
