// Expression evaluation and value access of the Evaluator (jinja_eval.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "common/base/status_macros.h"
#include "common/tokenizer/internal/jinja_builtins.h"
#include "common/tokenizer/internal/jinja_eval.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer::jinja {
namespace {

absl::Status TypeError(std::string_view op, const Value& a, const Value& b) {
  return absl::InvalidArgumentError(Cat("unsupported operand type(s) for ", op, ": '",
                                        a.type_name(), "' and '", b.type_name(), "'"));
}

bool IsIntLike(const Value& v) { return v.is_bool() || v.is_int(); }

absl::Status Overflow() { return absl::InvalidArgumentError("integer overflow"); }

// Python's floor division and modulo on integers.
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
// Steps charged for work linear in a string's length (decoding, hashing,
// searching), so that long strings cannot make one step arbitrarily slow.
int64_t ScanCost(const Value& v) {
  return v.is_string() ? static_cast<int64_t>(v.str().size() / 256) : 0;
}

int64_t FloorMod(int64_t a, int64_t b) {
  int64_t m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

}  // namespace

absl::StatusOr<Value> Evaluator::MakeString(std::string s) {
  DSPARK_RETURN_IF_ERROR(budget_.CheckBytes(s.size()));
  DSPARK_RETURN_IF_ERROR(budget_.Charge(1 + static_cast<int64_t>(s.size() / 128)));
  return Value::String(std::move(s));
}

absl::StatusOr<std::string> Evaluator::ToStr(const Value& v) {
  if (v.is_string()) return v.str();
  std::string out;
  DSPARK_RETURN_IF_ERROR(AppendStr(v, budget_, &out));
  return out;
}

absl::StatusOr<std::vector<Value>> Evaluator::Iterate(const Value& v) {
  std::vector<Value> items;
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return items;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      DSPARK_RETURN_IF_ERROR(budget_.Charge(static_cast<int64_t>(v.list().size())));
      return v.list();
    case Value::Kind::kDict:
      DSPARK_RETURN_IF_ERROR(budget_.Charge(static_cast<int64_t>(v.dict().size())));
      for (const auto& [k, unused] : v.dict().items()) items.push_back(k);
      return items;
    case Value::Kind::kString: {
      const std::u32string u = DecodeUtf8(v.str());
      DSPARK_RETURN_IF_ERROR(budget_.Charge(static_cast<int64_t>(u.size())));
      for (char32_t c : u) {
        std::string s;
        AppendUtf8(c, &s);
        items.push_back(Value::String(std::move(s)));
      }
      return items;
    }
    default:
      return absl::InvalidArgumentError(Cat("'", v.type_name(), "' object is not iterable"));
  }
}

absl::StatusOr<Value> Evaluator::GetAttr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) return absl::InvalidArgumentError(obj.str());
  if (!name.empty() && name[0] == '_') {
    return Value::Undefined(Cat("access to attribute '", name, "' is unsafe"));
  }
  if (obj.is_namespace()) {
    const Value* v = obj.dict().FindString(name);
    if (v != nullptr) return *v;
  } else {
    Value method = GetMethod(obj, name);
    if (!method.is_undefined()) return method;
    if (obj.is_dict()) {
      const Value* v = obj.dict().FindString(name);
      if (v != nullptr) return *v;
    }
  }
  return Value::Undefined(Cat("'", obj.type_name(), " object' has no attribute '", name, "'"));
}

absl::StatusOr<Value> Evaluator::GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return absl::InvalidArgumentError(obj.str());
  // Decoding the string or hashing the key is linear in its length.
  DSPARK_RETURN_IF_ERROR(budget_.Charge(ScanCost(obj) + ScanCost(key)));
  if (obj.is_view() && !key.is_string()) {
    return absl::InvalidArgumentError(Cat("'", obj.type_name(), "' object is not subscriptable"));
  }
  if ((obj.is_sequence() || obj.is_string()) && IsIntLike(key)) {
    int64_t i = key.int_value();
    if (obj.is_sequence()) {
      const int64_t n = static_cast<int64_t>(obj.list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.list()[i];
    } else {
      const std::u32string u = DecodeUtf8(obj.str());
      const int64_t n = static_cast<int64_t>(u.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) {
        std::string s;
        AppendUtf8(u[i], &s);
        return Value::String(std::move(s));
      }
    }
    return Value::Undefined(Cat(obj.type_name(), " object has no element ", key.int_value()));
  }
  if (obj.is_dict()) {
    const Value* v = obj.dict().Find(key);
    if (v != nullptr) return *v;
  }
  if (key.is_string()) return GetAttr(obj, key.str());
  return Value::Undefined(Cat("'", obj.type_name(), " object' has no attribute '",
                              key.is_string() ? key.str() : "?", "'"));
}

absl::StatusOr<Value> Evaluator::Call(const Value& fn, CallArgs& args) {
  if (fn.is_callable()) return fn.callable().fn(*this, args);
  if (fn.is_undefined()) return absl::InvalidArgumentError(fn.str());
  return absl::InvalidArgumentError(Cat("'", fn.type_name(), "' object is not callable"));
}

absl::StatusOr<bool> Evaluator::Contains(const Value& container, const Value& item) {
  DSPARK_RETURN_IF_ERROR(budget_.Charge(ScanCost(container) + ScanCost(item)));
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        return absl::InvalidArgumentError(
            Cat("'in <string>' requires string as left operand, not ", item.type_name()));
      }
      return SubstringFinder(item.str()).Find(container.str()) != std::string::npos;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      for (const Value& e : container.list()) {
        DSPARK_ASSIGN_OR_RETURN(bool eq, Equals(e, item, budget_));
        if (eq) return true;
      }
      return false;
    case Value::Kind::kDict:
      return container.dict().Find(item) != nullptr;
    default:
      return absl::InvalidArgumentError(
          Cat("argument of type '", container.type_name(), "' is not iterable"));
  }
}

absl::Status Evaluator::EvalArgs(const Expr& e, size_t first, const std::shared_ptr<Frame>& frame,
                                 CallArgs* args) {
  for (size_t i = first; i < e.args.size(); ++i) {
    DSPARK_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i], frame));
    args->positional.push_back(std::move(v));
  }
  for (const auto& [name, expr] : e.kwargs) {
    DSPARK_ASSIGN_OR_RETURN(Value v, Eval(*expr, frame));
    args->kwargs.emplace_back(name, std::move(v));
  }
  return absl::OkStatus();
}

absl::StatusOr<Value> Evaluator::Eval(const Expr& e, const std::shared_ptr<Frame>& frame) {
  NestingGuard guard(&nesting_);
  if (nesting_ > kMaxEvalNesting) return Locate(NestingError(), e.pos);
  absl::Status charged = budget_.Charge(1);
  if (!charged.ok()) return Locate(charged, e.pos);
  absl::StatusOr<Value> v = EvalInner(e, frame);
  if (!v.ok()) return Locate(v.status(), e.pos);
  return v;
}

absl::StatusOr<Value> Evaluator::EvalInner(const Expr& e, const std::shared_ptr<Frame>& frame) {
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      return e.literal;
    case Expr::Kind::kName:
      return Lookup(*frame, e.name);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      List items;
      for (const ExprPtr& a : e.args) {
        DSPARK_ASSIGN_OR_RETURN(Value v, Eval(*a, frame));
        items.push_back(std::move(v));
      }
      return e.kind == Expr::Kind::kList ? arena_.NewList(std::move(items))
                                         : arena_.NewTuple(std::move(items));
    }
    case Expr::Kind::kDict: {
      Value d = arena_.NewDict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        DSPARK_ASSIGN_OR_RETURN(Value k, Eval(*e.args[i], frame));
        DSPARK_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i + 1], frame));
        DSPARK_RETURN_IF_ERROR(d.dict().Set(k, std::move(v)));
      }
      return d;
    }
    case Expr::Kind::kGetAttr: {
      DSPARK_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0], frame));
      return GetAttr(obj, e.name);
    }
    case Expr::Kind::kGetItem: {
      DSPARK_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0], frame));
      DSPARK_ASSIGN_OR_RETURN(Value key, Eval(*e.args[1], frame));
      return GetItem(obj, key);
    }
    case Expr::Kind::kSlice: {
      DSPARK_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0], frame));
      Value parts[3] = {Value::None(), Value::None(), Value::None()};
      for (int i = 0; i < 3; ++i) {
        if (e.args[i + 1]) {
          DSPARK_ASSIGN_OR_RETURN(parts[i], Eval(*e.args[i + 1], frame));
        }
      }
      return EvalSlice(obj, parts[0], parts[1], parts[2]);
    }
    case Expr::Kind::kCall: {
      DSPARK_ASSIGN_OR_RETURN(Value fn, Eval(*e.args[0], frame));
      CallArgs args;
      DSPARK_RETURN_IF_ERROR(EvalArgs(e, 1, frame, &args));
      return Call(fn, args);
    }
    case Expr::Kind::kFilter: {
      Value input = block_input_;
      if (e.args[0]) {
        DSPARK_ASSIGN_OR_RETURN(input, Eval(*e.args[0], frame));
      }
      CallArgs args;
      DSPARK_RETURN_IF_ERROR(EvalArgs(e, 1, frame, &args));
      return ApplyFilter(*this, e.name, input, args);
    }
    case Expr::Kind::kTest: {
      DSPARK_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0], frame));
      CallArgs args;
      DSPARK_RETURN_IF_ERROR(EvalArgs(e, 1, frame, &args));
      DSPARK_ASSIGN_OR_RETURN(bool r, ApplyTest(*this, e.name, v, args));
      return Value::Bool(r != e.negated);
    }
    case Expr::Kind::kNot: {
      DSPARK_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0], frame));
      return Value::Bool(!Truthy(v));
    }
    case Expr::Kind::kNeg:
    case Expr::Kind::kPos: {
      DSPARK_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0], frame));
      if (v.is_undefined()) return absl::InvalidArgumentError(v.str());
      if (!v.is_number()) {
        return absl::InvalidArgumentError(Cat("bad operand type for unary ",
                                              e.kind == Expr::Kind::kNeg ? "-" : "+", ": '",
                                              v.type_name(), "'"));
      }
      if (e.kind == Expr::Kind::kPos) return v.is_bool() ? Value::Int(v.int_value()) : v;
      if (v.is_float()) return Value::Float(-v.float_value());
      if (v.int_value() == std::numeric_limits<int64_t>::min()) return Overflow();
      return Value::Int(-v.int_value());
    }
    case Expr::Kind::kBinary: {
      DSPARK_ASSIGN_OR_RETURN(Value a, Eval(*e.args[0], frame));
      DSPARK_ASSIGN_OR_RETURN(Value b, Eval(*e.args[1], frame));
      return EvalBinary(e.name, a, b);
    }
    case Expr::Kind::kAnd:
    case Expr::Kind::kOr: {
      DSPARK_ASSIGN_OR_RETURN(Value a, Eval(*e.args[0], frame));
      if (Truthy(a) == (e.kind == Expr::Kind::kOr)) return a;
      return Eval(*e.args[1], frame);
    }
    case Expr::Kind::kCompare:
      return EvalCompare(e, frame);
    case Expr::Kind::kConditional: {
      DSPARK_ASSIGN_OR_RETURN(Value c, Eval(*e.args[0], frame));
      if (Truthy(c)) return Eval(*e.args[1], frame);
      if (e.args[2]) return Eval(*e.args[2], frame);
      return Value::Undefined(
          "the inline if-expression evaluated to false and no else section was defined");
    }
  }
  return absl::InternalError("unknown expression kind");
}

absl::StatusOr<Value> Evaluator::EvalCompare(const Expr& e, const std::shared_ptr<Frame>& frame) {
  DSPARK_ASSIGN_OR_RETURN(Value left, Eval(*e.args[0], frame));
  for (size_t i = 0; i < e.ops.size(); ++i) {
    DSPARK_ASSIGN_OR_RETURN(Value right, Eval(*e.args[i + 1], frame));
    const std::string& op = e.ops[i];
    bool r = false;
    if (op == "==" || op == "!=") {
      DSPARK_ASSIGN_OR_RETURN(bool eq, Equals(left, right, budget_));
      r = eq == (op == "==");
    } else if (op == "in" || op == "notin") {
      DSPARK_ASSIGN_OR_RETURN(bool in, Contains(right, left));
      r = in == (op == "in");
    } else {
      DSPARK_ASSIGN_OR_RETURN(int c, Compare(left, right, budget_));
      r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    }
    if (!r) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

absl::StatusOr<Value> Evaluator::EvalBinary(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    DSPARK_ASSIGN_OR_RETURN(std::string s, ToStr(a));
    DSPARK_ASSIGN_OR_RETURN(std::string t, ToStr(b));
    DSPARK_RETURN_IF_ERROR(budget_.CheckBytes(s.size() + t.size()));
    return MakeString(s + t);
  }
  if (a.is_undefined()) return absl::InvalidArgumentError(a.str());
  if (b.is_undefined()) return absl::InvalidArgumentError(b.str());
  const bool ints = IsIntLike(a) && IsIntLike(b);
  const bool nums = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) {
      int64_t r;
      if (__builtin_add_overflow(a.int_value(), b.int_value(), &r)) return Overflow();
      return Value::Int(r);
    }
    if (nums) return Value::Float(a.float_value() + b.float_value());
    if (a.is_string() && b.is_string()) {
      DSPARK_RETURN_IF_ERROR(budget_.CheckBytes(a.str().size() + b.str().size()));
      return MakeString(a.str() + b.str());
    }
    if (a.is_sequence() && a.kind() == b.kind()) {
      List items = a.list();
      items.insert(items.end(), b.list().begin(), b.list().end());
      return a.kind() == Value::Kind::kList ? arena_.NewList(std::move(items))
                                            : arena_.NewTuple(std::move(items));
    }
    return TypeError(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      int64_t r;
      if (__builtin_sub_overflow(a.int_value(), b.int_value(), &r)) return Overflow();
      return Value::Int(r);
    }
    if (nums) return Value::Float(a.float_value() - b.float_value());
    return TypeError(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      int64_t r;
      if (__builtin_mul_overflow(a.int_value(), b.int_value(), &r)) return Overflow();
      return Value::Int(r);
    }
    if (nums) return Value::Float(a.float_value() * b.float_value());
    const Value& seq = IsIntLike(a) ? b : a;
    const Value& count = IsIntLike(a) ? a : b;
    if (IsIntLike(count) && (seq.is_string() || seq.is_sequence())) {
      const size_t unit = seq.is_string() ? seq.str().size() : seq.list().size();
      const int64_t n = unit == 0 ? 0 : std::max<int64_t>(0, count.int_value());
      if (unit > 0 && static_cast<uint64_t>(n) > budget_.max_bytes() / unit) {
        return budget_.CheckBytes(budget_.max_bytes() + 1);
      }
      if (seq.is_string()) {
        std::string s;
        s.reserve(n * unit);
        for (int64_t i = 0; i < n; ++i) s += seq.str();
        return MakeString(std::move(s));
      }
      DSPARK_RETURN_IF_ERROR(budget_.Charge(n * static_cast<int64_t>(unit)));
      List items;
      for (int64_t i = 0; i < n; ++i) {
        items.insert(items.end(), seq.list().begin(), seq.list().end());
      }
      return seq.kind() == Value::Kind::kList ? arena_.NewList(std::move(items))
                                              : arena_.NewTuple(std::move(items));
    }
    return TypeError(op, a, b);
  }
  if (op == "%" && a.is_string()) {
    DSPARK_ASSIGN_OR_RETURN(std::string s, PercentFormat(*this, a.str(), b));
    return MakeString(std::move(s));
  }
  if (!nums) return TypeError(op, a, b);
  if (op == "/") {
    if (b.float_value() == 0) return absl::InvalidArgumentError("division by zero");
    return Value::Float(a.float_value() / b.float_value());
  }
  if (op == "//" || op == "%") {
    if (b.float_value() == 0) {
      return absl::InvalidArgumentError(op == "%" ? "modulo by zero" : "division by zero");
    }
    if (ints) {
      if (a.int_value() == std::numeric_limits<int64_t>::min() && b.int_value() == -1) {
        return op == "%" ? Value::Int(0) : absl::StatusOr<Value>(Overflow());
      }
      return Value::Int(op == "//" ? FloorDiv(a.int_value(), b.int_value())
                                   : FloorMod(a.int_value(), b.int_value()));
    }
    const double x = a.float_value(), y = b.float_value();
    if (op == "//") return Value::Float(std::floor(x / y));
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    if (m == 0) m = std::copysign(0.0, y);  // Python: a zero result takes the divisor's sign
    return Value::Float(m);
  }
  if (op == "**") {
    if (ints && b.int_value() >= 0) {
      // Exponentiation by squaring with overflow checks.
      int64_t result = 1, base = a.int_value(), exp = b.int_value();
      while (exp > 0) {
        if ((exp & 1) && __builtin_mul_overflow(result, base, &result)) return Overflow();
        exp >>= 1;
        if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return Overflow();
      }
      return Value::Int(result);
    }
    return Value::Float(std::pow(a.float_value(), b.float_value()));
  }
  return absl::InternalError(Cat("unknown operator ", op));
}

absl::StatusOr<Value> Evaluator::EvalSlice(const Value& obj, const Value& start, const Value& stop,
                                           const Value& step) {
  DSPARK_RETURN_IF_ERROR(budget_.Charge(ScanCost(obj)));
  if (obj.is_undefined()) return absl::InvalidArgumentError(obj.str());
  if ((!obj.is_sequence() && !obj.is_string()) || obj.is_view()) {
    return absl::InvalidArgumentError(Cat("'", obj.type_name(), "' object is not subscriptable"));
  }
  for (const Value* v : {&start, &stop, &step}) {
    if (!v->is_none() && !IsIntLike(*v)) {
      return absl::InvalidArgumentError("slice indices must be integers or None");
    }
  }
  const int64_t st = step.is_none() ? 1 : step.int_value();
  if (st == 0) return absl::InvalidArgumentError("slice step cannot be zero");
  std::u32string chars;
  if (obj.is_string()) chars = DecodeUtf8(obj.str());
  const int64_t n = obj.is_string() ? static_cast<int64_t>(chars.size())
                                    : static_cast<int64_t>(obj.list().size());
  const int64_t lower = st > 0 ? 0 : -1;
  const int64_t upper = st > 0 ? n : n - 1;
  auto clamp = [&](const Value& v, int64_t dflt) {
    if (v.is_none()) return dflt;
    int64_t i = v.int_value();
    if (i < 0) return std::max(i + n, lower);
    return std::min(i, upper);
  };
  const int64_t b = clamp(start, st > 0 ? lower : upper);
  const int64_t e = clamp(stop, st > 0 ? upper : lower);
  DSPARK_RETURN_IF_ERROR(budget_.Charge(std::max<int64_t>(0, (e - b) / st)));
  if (obj.is_string()) {
    std::u32string out;
    for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(chars[i]);
    return MakeString(EncodeUtf8(out));
  }
  List items;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) items.push_back(obj.list()[i]);
  return obj.kind() == Value::Kind::kList ? arena_.NewList(std::move(items))
                                          : arena_.NewTuple(std::move(items));
}

}  // namespace dspark::tokenizer::jinja
