// Jinja's built-in tests (declared in jinja_builtins.h): `x is defined`,
// `x is equalto y`, ...
#include <cmath>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/internal/jinja_builtins.h"
#include "common/tokenizer/internal/jinja_eval.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer::jinja {
namespace {

using Test = absl::StatusOr<bool> (*)(Evaluator&, const Value&, CallArgs&);

absl::StatusOr<Value> OneArg(std::string_view test, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs(test, args, {"other"}, &a));
  return a[0];
}

template <int kOp>  // 0 ==, 1 !=, 2 <, 3 <=, 4 >, 5 >=
absl::StatusOr<bool> CompareTest(Evaluator& ev, const Value& v, CallArgs& args) {
  DSPARK_ASSIGN_OR_RETURN(Value other, OneArg("compare", args));
  if (kOp <= 1) {
    DSPARK_ASSIGN_OR_RETURN(bool eq, Equals(v, other, ev.budget()));
    return eq == (kOp == 0);
  }
  DSPARK_ASSIGN_OR_RETURN(int c, Compare(v, other, ev.budget()));
  return kOp == 2 ? c < 0 : kOp == 3 ? c <= 0 : kOp == 4 ? c > 0 : c >= 0;
}

absl::StatusOr<bool> CaseTest(Evaluator& ev, const Value& v, bool lower) {
  DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(v));
  CallArgs none;
  DSPARK_ASSIGN_OR_RETURN(
      Value r, ev.Call(GetMethod(Value::String(s), lower ? "islower" : "isupper"), none));
  return r.bool_value();
}

// Jinja's `value % 2 == remainder`, on any number.
absl::StatusOr<bool> Parity(Evaluator&, const Value& v, int remainder) {
  if (v.is_undefined()) return absl::InvalidArgumentError(v.str());
  if (!v.is_number()) {
    return absl::InvalidArgumentError(Cat("odd/even test requires a number, not ", v.type_name()));
  }
  if (v.is_float()) {
    double m = std::fmod(v.float_value(), 2.0);
    if (m < 0) m += 2.0;
    return m == remainder;
  }
  return ((v.int_value() % 2) + 2) % 2 == remainder;
}

const absl::flat_hash_map<std::string_view, Test>& Tests() {
  static const auto* const kTests = new absl::flat_hash_map<std::string_view, Test>{
      {"defined",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> {
         return !v.is_undefined();
       }},
      {"undefined",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> {
         return v.is_undefined();
       }},
      {"none",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> { return v.is_none(); }},
      {"boolean",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> { return v.is_bool(); }},
      {"true",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> {
         return v.is_bool() && v.bool_value();
       }},
      {"false",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> {
         return v.is_bool() && !v.bool_value();
       }},
      {"integer",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> { return v.is_int(); }},
      {"float",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> { return v.is_float(); }},
      {"number",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> { return v.is_number(); }},
      {"string",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> { return v.is_string(); }},
      {"mapping",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> { return v.is_dict(); }},
      {"iterable",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> {
         return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict();
       }},
      {"sequence",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> {
         return v.is_undefined() || v.is_string() || (v.is_sequence() && !v.is_view()) ||
                v.is_dict();
       }},
      {"callable",
       [](Evaluator&, const Value& v, CallArgs&) -> absl::StatusOr<bool> {
         return v.is_callable();
       }},
      {"escaped",
       [](Evaluator&, const Value&, CallArgs&) -> absl::StatusOr<bool> { return false; }},
      {"lower", [](Evaluator& ev, const Value& v, CallArgs&) { return CaseTest(ev, v, true); }},
      {"upper", [](Evaluator& ev, const Value& v, CallArgs&) { return CaseTest(ev, v, false); }},
      {"odd", [](Evaluator& ev, const Value& v, CallArgs&) { return Parity(ev, v, 1); }},
      {"even", [](Evaluator& ev, const Value& v, CallArgs&) { return Parity(ev, v, 0); }},
      {"divisibleby",
       [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<bool> {
         DSPARK_ASSIGN_OR_RETURN(Value n, OneArg("divisibleby", args));
         if (!v.is_number() || !n.is_number())
           return absl::InvalidArgumentError("divisibleby requires numbers");
         if (n.float_value() == 0) return absl::InvalidArgumentError("division by zero");
         if (v.is_float() || n.is_float()) return std::fmod(v.float_value(), n.float_value()) == 0;
         return v.int_value() % n.int_value() == 0;
       }},
      {"sameas",
       [](Evaluator& ev, const Value& v, CallArgs& args) -> absl::StatusOr<bool> {
         DSPARK_ASSIGN_OR_RETURN(Value other, OneArg("sameas", args));
         if (v.kind() != other.kind()) return false;
         if (v.is_none() || v.is_bool() || v.is_undefined()) return Equals(v, other, ev.budget());
         if (v.is_int() || v.is_float() || v.is_string()) return Equals(v, other, ev.budget());
         return v.identity() == other.identity();
       }},
      {"in",
       [](Evaluator& ev, const Value& v, CallArgs& args) -> absl::StatusOr<bool> {
         DSPARK_ASSIGN_OR_RETURN(Value seq, OneArg("in", args));
         return ev.Contains(seq, v);
       }},
      {"filter",
       [](Evaluator& ev, const Value& v,
          CallArgs&) -> absl::StatusOr<bool> { return v.is_string() && IsKnownFilter(v.str()); }},
      {"test",
       [](Evaluator& ev, const Value& v,
          CallArgs&) -> absl::StatusOr<bool> { return v.is_string() && IsKnownTest(v.str()); }},
      {"==", CompareTest<0>},
      {"eq", CompareTest<0>},
      {"equalto", CompareTest<0>},
      {"!=", CompareTest<1>},
      {"ne", CompareTest<1>},
      {"<", CompareTest<2>},
      {"lt", CompareTest<2>},
      {"lessthan", CompareTest<2>},
      {"<=", CompareTest<3>},
      {"le", CompareTest<3>},
      {">", CompareTest<4>},
      {"gt", CompareTest<4>},
      {"greaterthan", CompareTest<4>},
      {">=", CompareTest<5>},
      {"ge", CompareTest<5>},
  };
  return *kTests;
}

}  // namespace

bool IsKnownTest(std::string_view name) { return Tests().contains(name); }

absl::StatusOr<bool> ApplyTest(Evaluator& ev, std::string_view name, const Value& input,
                               CallArgs& args) {
  const auto it = Tests().find(name);
  if (it == Tests().end()) {
    return absl::InvalidArgumentError(Cat("unsupported test '", name, "'"));
  }
  return it->second(ev, input, args);
}

}  // namespace dspark::tokenizer::jinja
