// Tree-walking evaluator for one render of a parsed Jinja template. One
// Evaluator per render (it holds the render's scopes, arena and budget); the
// syntax tree it walks is shared and read-only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tokenizer/internal/jinja_ast.h"
#include "common/tokenizer/internal/jinja_value.h"
#include "nlohmann/json.hpp"

namespace dspark::tokenizer::jinja {

// Deepest recursion of statement and expression evaluation, whatever mix of
// macro calls, nested blocks and tall expressions produces it; keeps the
// C++ stack to about a megabyte.
inline constexpr int kMaxEvalNesting = 1000;

struct EvalLimits {
  size_t max_output_bytes = 1 << 20;
  int64_t max_steps = 1'000'000;
  int max_recursion_depth = 64;
};

// Prefixes "line L:C: " to an error that has no template position yet.
absl::Status Locate(absl::Status s, Pos p);
absl::Status NestingError();

// Counts one level of evaluation recursion for its lifetime.
class NestingGuard {
 public:
  explicit NestingGuard(int* nesting) : nesting_(nesting) { ++*nesting_; }
  ~NestingGuard() { --*nesting_; }
  NestingGuard(const NestingGuard&) = delete;
  NestingGuard& operator=(const NestingGuard&) = delete;

 private:
  int* nesting_;
};

// Variables of one scope; lookups fall back to the parent.
struct Frame {
  std::shared_ptr<Frame> parent;
  absl::flat_hash_map<std::string, Value> vars;
};

class Evaluator {
 public:
  // `now` is what strftime_now() formats.
  Evaluator(const EvalLimits& limits, absl::Time now);
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  // Renders `body` with the keys of the JSON object `context` as variables.
  absl::StatusOr<std::string> Render(const Body& body, const nlohmann::ordered_json& context);

  // Services for filters, tests, methods and globals.
  Arena& arena() { return arena_; }
  Budget& budget() { return budget_; }
  absl::Time now() const { return now_; }
  // A string value, charged by length and bounded by max_output_bytes.
  absl::StatusOr<Value> MakeString(std::string s);
  // Python str(v).
  absl::StatusOr<std::string> ToStr(const Value& v);
  // The elements `for` would visit: list/tuple items, dict keys, string code
  // points; Undefined is empty.
  absl::StatusOr<std::vector<Value>> Iterate(const Value& v);
  // obj.name: methods of builtin types first, then items (Jinja's getattr).
  absl::StatusOr<Value> GetAttr(const Value& obj, std::string_view name);
  // obj[key]: items first, then attributes (Jinja's getitem).
  absl::StatusOr<Value> GetItem(const Value& obj, const Value& key);
  absl::StatusOr<Value> Call(const Value& fn, CallArgs& args);
  // Python `item in container`.
  absl::StatusOr<bool> Contains(const Value& container, const Value& item);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  absl::Status Exec(const Body& body, const std::shared_ptr<Frame>& frame, std::string* out);
  absl::Status ExecStmt(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out);
  absl::Status ExecFor(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out);
  absl::Status ExecSet(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out);
  absl::Status ExecCallBlock(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out);
  absl::Status Append(std::string_view text, std::string* out);
  absl::Status Assign(Frame& frame, const std::vector<std::string>& targets, const Value& v);

  absl::StatusOr<Value> Eval(const Expr& e, const std::shared_ptr<Frame>& frame);
  absl::StatusOr<Value> EvalInner(const Expr& e, const std::shared_ptr<Frame>& frame);
  absl::Status EvalArgs(const Expr& e, size_t first, const std::shared_ptr<Frame>& frame,
                        CallArgs* args);
  absl::StatusOr<Value> EvalBinary(const std::string& op, const Value& a, const Value& b);
  absl::StatusOr<Value> EvalCompare(const Expr& e, const std::shared_ptr<Frame>& frame);
  absl::StatusOr<Value> EvalSlice(const Value& obj, const Value& start, const Value& stop,
                                  const Value& step);
  Value Lookup(const Frame& frame, const std::string& name) const;

  // A macro as a callable value bound to the scope it was defined in.
  Value MakeMacro(const Stmt& macro, const std::shared_ptr<Frame>& frame);
  absl::StatusOr<Value> CallMacro(const Stmt& macro, const std::weak_ptr<Frame>& defined_in,
                                  CallArgs& args, bool allow_caller);

  EvalLimits limits_;
  absl::Time now_;
  Budget budget_;
  Arena arena_;
  Flow flow_ = Flow::kNormal;
  int call_depth_ = 0;
  // Statements + expressions being evaluated (C++ recursion depth).
  int nesting_ = 0;
  // Input of the innermost filter block ({% filter %} / {% set x | f %}).
  Value block_input_;
};

}  // namespace dspark::tokenizer::jinja
