// A small command-line parser for the dspark subcommands: `--name value`,
// `--name=value` and boolean `--name`. Unknown flags are errors.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dspark::cli {

class Args {
 public:
  // `bool_flags` take no value.
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                                    const std::set<std::string>& value_flags,
                                    const std::set<std::string>& bool_flags);
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& def = "") const;
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t def) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double def) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// A subcommand's exit code: 0, or 1 after printing "dspark NAME: error".
int ExitCode(const char* name, const absl::Status& status);

// "1,2,3" -> {1, 2, 3}; InvalidArgument on anything else.
absl::StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text);

}  // namespace dspark::cli
