// JSON in and out of Jinja values: input contexts (nlohmann::ordered_json,
// key order kept) and the `tojson` filter, formatted exactly as Python's
// json.dumps. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/internal/jinja_value.h"
#include "nlohmann/json.hpp"

namespace dspark::tokenizer::jinja {

// json.dumps options, as Hugging Face's `tojson` filter passes them.
struct JsonOptions {
  // Absent: one line. Otherwise newline + this string per nesting level.
  std::optional<std::string> indent;
  std::string item_separator = ", ";  // "," when indent is set
  std::string key_separator = ": ";
  bool ensure_ascii = false;
  bool sort_keys = false;
};
absl::Status AppendJson(const Value& v, const JsonOptions& options, Budget& budget,
                        std::string* out);

// Converts input JSON (objects keep their order) into values.
absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& j, Arena& arena);

}  // namespace dspark::tokenizer::jinja
