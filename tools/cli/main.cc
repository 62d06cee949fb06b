// dspark: the command-line front end (pull, generate, logits, bench, tokenize).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tools/cli/commands.h"

namespace {

constexpr char kUsage[] =
    "usage: dspark COMMAND [flags]\n"
    "  pull [NAME...]        fetch catalogue models into the model cache (default: the default model)\n"
    "  generate --model M    generate text (--prompt TEXT | --chat TEXT | --prompt-ids 1,2,3)\n"
    "  logits --model M      teacher-forced top-K logits per position (--prompt-ids, --top K)\n"
    "  bench engine          engine speed table (dspark and llama.cpp side by side)\n"
    "  bench tokenizer       tokenizer encode MB/s (dspark and HF tokenizers side by side)\n"
    "  bench spec            speculative decoding: target-only vs drafters x verify lengths\n"
    "                        vs the step scheduler, per concurrency level\n"
    "  bench serving         load generator: in-process vs router vs verify worker direct\n"
    "                        (TTFT, ITL, e2e p50/p99, tokens/s; --rate); --sweep:\n"
    "                        target-only, fixed 1/3/7, adaptive at concurrency 1..64\n"
    "  tokenize --model M    JSON lines on stdin: text -> ids (--decode: ids -> text,\n"
    "                        --chat: messages -> prompt)\n"
    "  distill --model M     self-distillation data for drafter training (--prompts FILE\n"
    "                        --out DIR --layers a,b,c; tools/dspark_drafter/DATA.md)\n"
    "  eval-drafter          drafter acceptance by position, tau and confidence calibration\n"
    "                        (ECE) on the held-out prompt sets, greedy and sampled\n"
    "  up                    a local cluster (router + verify + draft workers) on 127.0.0.1;\n"
    "                        --demo sends chat requests through its OpenAI endpoint\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "pull") return dspark::cli::PullCommand(args);
  if (command == "generate") return dspark::cli::GenerateCommand(args);
  if (command == "logits") return dspark::cli::LogitsCommand(args);
  if (command == "bench") return dspark::cli::BenchCommand(args);
  if (command == "tokenize") return dspark::cli::TokenizeCommand(args);
  if (command == "distill") return dspark::cli::DistillCommand(args);
  if (command == "eval-drafter") return dspark::cli::EvalDrafterCommand(args);
  if (command == "up") return dspark::cli::UpCommand(args);
  std::fprintf(stderr, "dspark: unknown command '%s'\n%s", command.c_str(), kUsage);
  return 2;
}
