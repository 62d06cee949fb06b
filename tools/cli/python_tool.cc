#include "tools/cli/python_tool.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace dspark::cli {

absl::StatusOr<nlohmann::json> RunPythonTool(const std::string& script_and_args,
                                             const std::string& env) {
  const std::string root = DSPARK_SOURCE_DIR;
  const std::string cmd =
      absl::StrCat(env, env.empty() ? "" : " ", root, "/.venv/bin/python ", root, "/", script_and_args);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return absl::InternalError("cannot run " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (::pclose(p) != 0) {
    return absl::UnavailableError(
        absl::StrCat("reference tool failed (is `tools/setup.sh test` done?): ", cmd));
  }
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InternalError(absl::StrCat("no JSON object from ", cmd, ": ", out));
  }
  return j;
}

}  // namespace dspark::cli
