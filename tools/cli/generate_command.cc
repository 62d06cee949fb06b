// dspark generate --model M [--prompt TEXT | --chat TEXT | --prompt-ids 1,2,3]
//   [--system TEXT] --max-tokens N --temperature T --top-k K --top-p P
//   --min-p P --seed S [--print-ids] [--exact] [--threads N]
// Streams the text (or, with --print-ids, the generated ids on one line) to
// stdout and a speed summary to stderr.
#include <cstdio>
#include <string>

#include "common/base/status_macros.h"
#include "common/engine/model/generate.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/incremental_detokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/model_loading.h"

namespace dspark::cli {
namespace {

absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadTokenizer(const engine::Model& model) {
  if (model.file().format() == "hf") return tokenizer::Tokenizer::FromHfDirectory(model.file().path());
  return tokenizer::Tokenizer::FromGgufMetadata(model.file());
}

absl::StatusOr<std::vector<int32_t>> PromptIds(const Args& args, const tokenizer::Tokenizer* tok) {
  const int given = args.Has("prompt") + args.Has("chat") + args.Has("prompt-ids");
  if (given != 1) {
    return absl::InvalidArgumentError("give exactly one of --prompt, --chat, --prompt-ids");
  }
  if (args.Has("prompt-ids")) return ParseIdList(args.Get("prompt-ids"));
  if (args.Has("prompt")) return tok->Encode(args.Get("prompt"), /*add_special=*/true, /*parse_special=*/true);
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

absl::Status Run(const std::vector<std::string>& argv) {
  DSPARK_ASSIGN_OR_RETURN(
      Args args, Args::Parse(argv,
                             {"model", "threads", "prompt", "chat", "system", "prompt-ids",
                              "max-tokens", "temperature", "top-k", "top-p", "min-p", "seed"},
                             {"print-ids", "exact", "quiet"}));
  engine::GenerateOptions options;
  DSPARK_ASSIGN_OR_RETURN(int64_t max_tokens, args.GetInt("max-tokens", 128));
  DSPARK_ASSIGN_OR_RETURN(double temperature, args.GetDouble("temperature", 0.0));
  DSPARK_ASSIGN_OR_RETURN(int64_t top_k, args.GetInt("top-k", 0));
  DSPARK_ASSIGN_OR_RETURN(double top_p, args.GetDouble("top-p", 1.0));
  DSPARK_ASSIGN_OR_RETURN(double min_p, args.GetDouble("min-p", 0.0));
  DSPARK_ASSIGN_OR_RETURN(int64_t seed, args.GetInt("seed", 0));
  options.max_tokens = static_cast<int>(max_tokens);
  options.sampling = {.temperature = static_cast<float>(temperature),
                      .top_k = static_cast<int>(top_k),
                      .top_p = static_cast<float>(top_p),
                      .min_p = static_cast<float>(min_p),
                      .seed = static_cast<uint64_t>(seed)};
  DSPARK_RETURN_IF_ERROR(engine::ValidateSamplingParams(options.sampling));

  DSPARK_ASSIGN_OR_RETURN(auto model, LoadModelFromArgs(args));
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (!args.Has("prompt-ids") || !args.Has("print-ids")) {
    DSPARK_ASSIGN_OR_RETURN(tok, LoadTokenizer(*model));
  }
  DSPARK_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, PromptIds(args, tok.get()));
  // With raw ids the caller controls everything, stop tokens included.
  if (tok != nullptr && !args.Has("prompt-ids")) options.stop_ids = tok->eos_ids();

  auto cache = model->NewKvCache(
      {.max_tokens = static_cast<int64_t>(prompt.size()) + options.max_tokens + 16});
  const bool print_ids = args.Has("print-ids");
  std::unique_ptr<tokenizer::IncrementalDetokenizer> detok;
  if (!print_ids) detok = std::make_unique<tokenizer::IncrementalDetokenizer>(*tok);
  auto on_token = [&detok](int32_t id) {
    if (detok != nullptr) {
      auto delta = detok->Append(id);
      if (delta.ok()) {
        std::fputs(delta->c_str(), stdout);
        std::fflush(stdout);
      }
    }
    return true;
  };
  DSPARK_ASSIGN_OR_RETURN(engine::GenerateResult result,
                          engine::Generate(*model, *cache, prompt, options, on_token));
  if (print_ids) {
    for (size_t i = 0; i < result.tokens.size(); ++i) {
      std::printf("%s%d", i ? " " : "", result.tokens[i]);
    }
  } else {
    std::fputs(detok->Finish().c_str(), stdout);
  }
  std::printf("\n");
  if (!args.Has("quiet")) {
    const double n = static_cast<double>(result.tokens.size());
    std::fprintf(stderr,
                 "[dspark] prompt %zu tokens, prefill %.1f tokens/s; generated %zu tokens, "
                 "decode %.1f tokens/s\n",
                 prompt.size(), prompt.size() / std::max(result.prefill_seconds, 1e-9),
                 result.tokens.size(),
                 n > 1 ? (n - 1) / std::max(result.decode_seconds, 1e-9) : 0.0);
  }
  return absl::OkStatus();
}

}  // namespace

int GenerateCommand(const std::vector<std::string>& args) {
  return ExitCode("generate", Run(args));
}

}  // namespace dspark::cli
