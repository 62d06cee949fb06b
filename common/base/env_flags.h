// Flags from the environment, for containers: DSPARK_FOO_BAR=v acts as
// --foo_bar=v for every flag the binary defines; the command line wins.
// Call before absl::ParseCommandLine, in main only.
//
//   std::vector<char*> args = base::ArgsWithEnvFlags(argc, argv);
//   absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
#pragma once

#include <vector>

namespace dspark::base {

// argv[0], then one --name=value per matching DSPARK_* variable, then the
// rest of argv. The returned pointers stay valid for the program's life.
std::vector<char*> ArgsWithEnvFlags(int argc, char** argv);

}  // namespace dspark::base
