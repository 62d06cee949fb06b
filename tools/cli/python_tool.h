// Runs one of the repo's Python tools in the project virtualenv and parses
// the single JSON object it prints (the reference sides of `dspark bench`).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace dspark::cli {

// Runs `<env> <repo>/.venv/bin/python <repo>/<script_and_args>` through the
// shell. Unavailable if it fails (set-up not done), Internal if it prints no JSON.
absl::StatusOr<nlohmann::json> RunPythonTool(const std::string& script_and_args,
                                             const std::string& env = "");

}  // namespace dspark::cli
