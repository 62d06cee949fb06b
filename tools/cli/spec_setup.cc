#include "tools/cli/spec_setup.h"

#include <cstdlib>
#include <filesystem>
#include <functional>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/engine/backend/cpu/thread_pool.h"
#include "draft_worker/factory/drafter_factory.h"
#include "verify_worker/scheduler/model_profiler.h"

namespace dspark::cli {
namespace fs = std::filesystem;

std::string CommittedDrafterDir(const std::string& model_arg) {
  // A catalogue name ("qwen2.5-coder-0.5b-instruct": not a stem, its dots
  // are not an extension) or a file whose name without ".gguf" is one.
  const fs::path file = fs::path(model_arg).filename();
  std::string name = file.extension() == ".gguf" ? file.stem().string() : file.string();
  if (name.empty()) name = "smollm2-135m-instruct";  // the catalogue default
  std::vector<fs::path> roots;
  if (const char* env = std::getenv("DSPARK_DRAFTERS")) roots.emplace_back(env);
  roots.emplace_back(fs::path(DSPARK_SOURCE_DIR) / "models" / "drafters");
  for (const fs::path& root : roots) {
    const fs::path dir = root / name;
    if (fs::exists(dir / "config.json")) return dir.string();
  }
  return "";
}

absl::StatusOr<std::unique_ptr<drafter::Drafter>> MakeDrafterOfKind(
    const std::string& model_arg, const std::string& kind, const std::string& path,
    int draft_layers, engine::Model* target, std::string* resolved) {
  drafter::DrafterOptions options{.kind = kind, .path = path};
  if (draft_layers > 0) options.draft_layers = draft_layers;
  const bool dspark = kind == "dspark" || kind == "dspark+ngram";
  if (kind == "auto" || (dspark && options.path.empty())) {
    const std::string dir = CommittedDrafterDir(model_arg);
    if (!dir.empty()) {
      // Prompt lookup beside the trained drafter: on code it drafts as far
      // as the trained one, at no cost (docs/decisions.md).
      options.kind = kind == "auto" ? "dspark+ngram" : kind;
      options.path = dir;
    } else if (dspark) {
      return absl::NotFoundError(
          absl::StrCat("no committed DSpark drafter for '", model_arg, "'; pass --drafter-path"));
    } else {
      options.kind = "ngram";
    }
  }
  if (resolved != nullptr) *resolved = options.kind;
  return drafter::MakeDrafter(options, target);
}

absl::StatusOr<std::unique_ptr<drafter::Drafter>> MakeDrafterFromArgs(const Args& args,
                                                                      const std::string& kind,
                                                                      engine::Model* target,
                                                                      std::string* resolved) {
  DSPARK_ASSIGN_OR_RETURN(int64_t layers, args.GetInt("draft-layers", 0));
  return MakeDrafterOfKind(args.Get("model"), kind, args.Get("drafter-path"),
                           static_cast<int>(layers), target, resolved);
}

absl::StatusOr<scheduler::CostTable> CostTableFromArgs(const Args& args, engine::Model* target) {
  const engine::ModelOptions model_options{.mode = target->mode(),
                                           .threads = target->thread_pool()->num_threads()};
  const std::string identity = scheduler::ModelIdentity(target->file().path(), model_options);
  std::string path = args.Get("cost-table");
  if (path.empty()) {
    const char* home = std::getenv("DSPARK_HOME");
    const fs::path root =
        home != nullptr
            ? fs::path(home)
            : fs::path(std::getenv("HOME") ? std::getenv("HOME") : "/tmp") / ".cache" / "dspark";
    path = (root / "cost" /
            absl::StrCat(fs::path(target->file().path()).stem().string(), "-",
                         std::hash<std::string>{}(identity) % 1000000007, ".json"))
               .string();
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
  }
  return scheduler::LoadOrProfile(path, identity, *target, {});
}

absl::StatusOr<std::unique_ptr<scheduler::StepScheduler>> MakeSchedulerFromArgs(
    const std::string& kind, int verify_len, const scheduler::CostTable& table) {
  return scheduler::MakeStepScheduler(
      {.kind = kind, .cost_table = table, .fixed_length = verify_len});
}

}  // namespace dspark::cli
