// Jinja's built-in filters, tests, global functions and the methods of
// Python's str/list/dict that chat templates call, with Python semantics.
// Stateless; every call works on one render's Evaluator.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/internal/jinja_value.h"

namespace dspark::tokenizer::jinja {

bool IsKnownFilter(std::string_view name);
bool IsKnownTest(std::string_view name);

absl::StatusOr<Value> ApplyFilter(Evaluator& ev, std::string_view name, const Value& input,
                                  CallArgs& args);
absl::StatusOr<bool> ApplyTest(Evaluator& ev, std::string_view name, const Value& input,
                               CallArgs& args);

// The bound method `obj.name` of a str, list or dict, or Undefined when the
// type has no such method.
Value GetMethod(const Value& obj, std::string_view name);

// Global functions: range, dict, namespace, raise_exception, strftime_now.
std::vector<std::pair<std::string, Value>> GlobalFunctions();

// Python's `fmt % args` (printf-style: %s %r %d %i %f %e %g %x %%).
absl::StatusOr<std::string> PercentFormat(Evaluator& ev, std::string_view fmt, const Value& args);

// Binds `args` to a Python-style signature: out[i] is the value for names[i]
// (Undefined when not given). Errors name `fn` for extra or unknown arguments.
absl::Status BindArgs(std::string_view fn, const CallArgs& args,
                      const std::vector<std::string_view>& names, std::vector<Value>* out);

}  // namespace dspark::tokenizer::jinja
