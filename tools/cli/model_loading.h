// Shared flag handling for subcommands that run a model: resolving --model
// (catalogue name, GGUF file or Hugging Face directory) and building the
// engine with --threads / --exact.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/engine/model/model.h"
#include "common/tokenizer/tokenizer.h"
#include "tools/cli/args.h"

namespace dspark::cli {

absl::StatusOr<std::unique_ptr<engine::Model>> LoadModelFromArgs(const Args& args);

// The tokenizer that came with a loaded model (its GGUF metadata, or the
// tokenizer.json of its Hugging Face directory).
absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadModelTokenizer(
    const engine::Model& model);

}  // namespace dspark::cli
