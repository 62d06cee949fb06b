#include "common/base/env_flags.h"

#include <cctype>
#include <string>

#include "absl/flags/reflection.h"
#include "absl/strings/match.h"

extern char** environ;

namespace dspark::base {

std::vector<char*> ArgsWithEnvFlags(int argc, char** argv) {
  static std::vector<std::string>* storage = new std::vector<std::string>();
  std::vector<char*> args;
  if (argc > 0) args.push_back(argv[0]);
  for (char** env = environ; env != nullptr && *env != nullptr; ++env) {
    const std::string entry = *env;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || !absl::StartsWith(entry, "DSPARK_")) continue;
    std::string name = entry.substr(7, eq - 7);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.empty() || absl::FindCommandLineFlag(name) == nullptr) continue;
    storage->push_back("--" + name + "=" + entry.substr(eq + 1));
  }
  for (std::string& flag : *storage) args.push_back(flag.data());
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  return args;
}

}  // namespace dspark::base
