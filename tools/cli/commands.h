// The dspark subcommands. Each takes the arguments after its name and returns
// the process exit code; errors are printed to stderr.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dspark::tokenizer {
class Tokenizer;
}  // namespace dspark::tokenizer

namespace dspark::cli {

int PullCommand(const std::vector<std::string>& args);
int GenerateCommand(const std::vector<std::string>& args);
int LogitsCommand(const std::vector<std::string>& args);
int BenchCommand(const std::vector<std::string>& args);
int TokenizeCommand(const std::vector<std::string>& args);
int DistillCommand(const std::vector<std::string>& args);
// `dspark eval-drafter`: acceptance and calibration on the held-out prompt sets.
int EvalDrafterCommand(const std::vector<std::string>& args);
// `dspark up`: a local cluster on 127.0.0.1 (up_command.cc).
int UpCommand(const std::vector<std::string>& args);
// `dspark bench tokenizer ...` (args after "tokenizer").
int BenchTokenizerCommand(const std::vector<std::string>& args);
// `dspark bench spec ...` (args after "spec").
int BenchSpecCommand(const std::vector<std::string>& args);
// `dspark bench serving ...` (args after "serving"; bench_serving.cc).
int BenchServingCommand(const std::vector<std::string>& args);

// The tokenizer of a --model argument: a directory holding tokenizer.json or
// tokenizer.model (no weights needed), else whatever ResolveModelPath finds
// (a catalogue name, a GGUF file or a Hugging Face model directory).
absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadTokenizerForModel(
    const std::string& model_arg);

}  // namespace dspark::cli
