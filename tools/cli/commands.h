// The dspark subcommands. Each takes the arguments after its name and returns
// the process exit code; errors are printed to stderr.
#pragma once

#include <string>
#include <vector>

namespace dspark::cli {

int PullCommand(const std::vector<std::string>& args);
int GenerateCommand(const std::vector<std::string>& args);
int LogitsCommand(const std::vector<std::string>& args);
int BenchCommand(const std::vector<std::string>& args);

}  // namespace dspark::cli
