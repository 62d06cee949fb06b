// Shared flag handling for subcommands that run a model: resolving --model
// (catalogue name, GGUF file or Hugging Face directory) and building the
// engine with --threads / --exact.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/engine/model/model.h"
#include "tools/cli/args.h"

namespace dspark::cli {


absl::StatusOr<std::unique_ptr<engine::Model>> LoadModelFromArgs(const Args& args);

}  // namespace dspark::cli
