#include "common/tokenizer/internal/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer::jinja {
namespace {

absl::Status TooDeep() {
  return absl::InvalidArgumentError(Cat("value nested deeper than ", kMaxValueDepth, " levels"));
}

bool IsIntLike(const Value& v) { return v.is_bool() || v.is_int(); }

const char* ViewName(Value::View view) {
  switch (view) {
    case Value::View::kDictKeys:
      return "dict_keys";
    case Value::View::kDictValues:
      return "dict_values";
    case Value::View::kDictItems:
      return "dict_items";
    case Value::View::kGenerator:
      return "generator";
    default:
      return "list";
  }
}

}  // namespace

Value Value::Undefined(std::string hint) {
  Value v;
  v.ptr_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}

Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.ptr_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

Value Value::Function(std::string name,
                      std::function<absl::StatusOr<Value>(Evaluator&, CallArgs&)> fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.ptr_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

const std::string& Value::str() const {
  static const std::string* const kEmpty = new std::string();
  static const std::string* const kUndefinedValue = new std::string("value is undefined");
  if (kind_ == Kind::kUndefined &&
      (ptr_ == nullptr || static_cast<const std::string*>(ptr_.get())->empty())) {
    return *kUndefinedValue;
  }
  if ((kind_ != Kind::kString && kind_ != Kind::kUndefined) || ptr_ == nullptr) return *kEmpty;
  return *static_cast<const std::string*>(ptr_.get());
}

List& Value::list() const { return *static_cast<List*>(const_cast<void*>(ptr_.get())); }
Dict& Value::dict() const { return *static_cast<Dict*>(const_cast<void*>(ptr_.get())); }
const Callable& Value::callable() const { return *static_cast<const Callable*>(ptr_.get()); }

std::string_view Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return "list";
    case Kind::kTuple:
      return "tuple";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

bool DictKey(const Value& v, std::string* key) {
  switch (v.kind()) {
    case Value::Kind::kString:
      *key = Cat("s", v.str());
      return true;
    case Value::Kind::kBool:
    case Value::Kind::kInt:
      *key = Cat("i", v.int_value());
      return true;
    case Value::Kind::kFloat: {
      const double f = v.float_value();
      if (std::floor(f) == f && std::fabs(f) < 9.2e18) {
        *key = Cat("i", static_cast<int64_t>(f));
      } else {
        *key = Cat("f", PyFloatRepr(f));
      }
      return true;
    }
    case Value::Kind::kNone:
      *key = "n";
      return true;
    case Value::Kind::kTuple: {
      *key = "t";
      for (const Value& e : v.list()) {
        std::string part;
        if (!DictKey(e, &part)) return false;
        CatAppend(key, part.size(), ":", part);
      }
      return true;
    }
    default:
      return false;
  }
}

const Value* Dict::Find(const Value& key) const {
  std::string k;
  if (!DictKey(key, &k)) return nullptr;
  const auto it = index_.find(k);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

const Value* Dict::FindString(std::string_view key) const {
  const auto it = index_.find(Cat("s", key));
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

absl::Status Dict::Set(const Value& key, Value value) {
  std::string k;
  if (!DictKey(key, &k)) {
    return absl::InvalidArgumentError(Cat("unhashable type: '", key.type_name(), "'"));
  }
  const auto [it, inserted] = index_.try_emplace(k, items_.size());
  if (inserted) {
    items_.emplace_back(key, std::move(value));
  } else {
    items_[it->second].second = std::move(value);
  }
  return absl::OkStatus();
}

void Dict::Clear() {
  items_.clear();
  index_.clear();
}

Arena::~Arena() {
  for (auto& l : lists_) l->clear();
  for (auto& d : dicts_) d->Clear();
}

Value Arena::NewList(List items) {
  if (budget_ != nullptr) budget_->Debit(1 + static_cast<int64_t>(items.size()));
  auto p = std::make_shared<List>(std::move(items));
  lists_.push_back(p);
  Value v;
  v.kind_ = Value::Kind::kList;
  v.ptr_ = std::move(p);
  return v;
}

Value Arena::NewTuple(List items) {
  Value v = NewList(std::move(items));
  v.kind_ = Value::Kind::kTuple;
  return v;
}

Value Arena::NewView(List items, Value::View view) {
  Value v = NewList(std::move(items));
  v.view_ = view;
  return v;
}

Value Arena::NewDict() {
  if (budget_ != nullptr) budget_->Debit(1);
  auto p = std::make_shared<Dict>();
  dicts_.push_back(p);
  Value v;
  v.kind_ = Value::Kind::kDict;
  v.ptr_ = std::move(p);
  return v;
}

Value Arena::NewNamespace() {
  Value v = NewDict();
  v.kind_ = Value::Kind::kNamespace;
  return v;
}

absl::Status Budget::Charge(int64_t steps) {
  steps_left_ -= steps;
  if (steps_left_ < 0) {
    return absl::ResourceExhaustedError("chat template exceeded its step limit (max_steps)");
  }
  return absl::OkStatus();
}

absl::Status Budget::CheckBytes(size_t bytes) const {
  if (bytes > max_bytes_) {
    return absl::ResourceExhaustedError(
        Cat("chat template produced more than max_output_bytes (", max_bytes_, ") bytes"));
  }
  return absl::OkStatus();
}

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.bool_value();
    case Value::Kind::kInt:
      return v.int_value() != 0;
    case Value::Kind::kFloat:
      return v.float_value() != 0;
    case Value::Kind::kString:
      return !v.str().empty();
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      return v.view() == Value::View::kGenerator || !v.list().empty();
    case Value::Kind::kDict:
      return v.dict().size() > 0;
    default:
      return true;
  }
}

namespace {

absl::Status AppendReprAt(const Value& v, Budget& budget, std::string* out, int depth, bool repr);

absl::Status AppendItems(const Value& v, Budget& budget, std::string* out, int depth) {
  if (v.view() == Value::View::kGenerator) {
    out->append("<generator object>");
    return absl::OkStatus();
  }
  if (v.is_view()) out->append(ViewName(v.view())).push_back('(');
  if (v.is_sequence()) {
    const bool tuple = v.kind() == Value::Kind::kTuple;
    out->push_back(tuple ? '(' : '[');
    const List& items = v.list();
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out->append(", ");
      DSPARK_RETURN_IF_ERROR(AppendReprAt(items[i], budget, out, depth + 1, true));
    }
    if (tuple && items.size() == 1) out->push_back(',');
    out->push_back(tuple ? ')' : ']');
    if (v.is_view()) out->push_back(')');
    return absl::OkStatus();
  }
  out->push_back('{');
  bool first = true;
  for (const auto& [k, val] : v.dict().items()) {
    if (!first) out->append(", ");
    first = false;
    DSPARK_RETURN_IF_ERROR(AppendReprAt(k, budget, out, depth + 1, true));
    out->append(": ");
    DSPARK_RETURN_IF_ERROR(AppendReprAt(val, budget, out, depth + 1, true));
  }
  out->push_back('}');
  return absl::OkStatus();
}

absl::Status AppendReprAt(const Value& v, Budget& budget, std::string* out, int depth, bool repr) {
  if (depth > kMaxValueDepth) return TooDeep();
  DSPARK_RETURN_IF_ERROR(budget.Charge(1));
  DSPARK_RETURN_IF_ERROR(budget.CheckBytes(out->size()));
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      if (repr) out->append("Undefined");
      return absl::OkStatus();
    case Value::Kind::kNone:
      out->append("None");
      return absl::OkStatus();
    case Value::Kind::kBool:
      out->append(v.bool_value() ? "True" : "False");
      return absl::OkStatus();
    case Value::Kind::kInt:
      CatAppend(out, v.int_value());
      return absl::OkStatus();
    case Value::Kind::kFloat:
      out->append(PyFloatRepr(v.float_value()));
      return absl::OkStatus();
    case Value::Kind::kString:
      out->append(repr ? PyStringRepr(v.str()) : v.str());
      return absl::OkStatus();
    case Value::Kind::kList:
    case Value::Kind::kTuple:
    case Value::Kind::kDict:
      return AppendItems(v, budget, out, depth);
    case Value::Kind::kNamespace:
      out->append("<Namespace ");
      {
        // Render the attributes as a dict.
        DSPARK_RETURN_IF_ERROR(AppendItems(v, budget, out, depth));
      }
      out->append(">");
      return absl::OkStatus();
    case Value::Kind::kCallable:
      CatAppend(out, "<function ", v.callable().name, ">");
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> EqualsAt(const Value& a, const Value& b, Budget& budget, int depth) {
  if (depth > kMaxValueDepth) return TooDeep();
  DSPARK_RETURN_IF_ERROR(budget.Charge(1));
  if (a.is_number() && b.is_number()) {
    if (IsIntLike(a) && IsIntLike(b)) return a.int_value() == b.int_value();
    return a.float_value() == b.float_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      if (a.str().size() != b.str().size()) return false;
      DSPARK_RETURN_IF_ERROR(budget.Charge(static_cast<int64_t>(a.str().size() / 256)));
      return a.str() == b.str();
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      if (a.identity() == b.identity()) return true;
      const List& x = a.list();
      const List& y = b.list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        DSPARK_ASSIGN_OR_RETURN(bool eq, EqualsAt(x[i], y[i], budget, depth + 1));
        if (!eq) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      if (a.identity() == b.identity()) return true;
      if (a.dict().size() != b.dict().size()) return false;
      for (const auto& [k, v] : a.dict().items()) {
        const Value* other = b.dict().Find(k);
        if (other == nullptr) return false;
        DSPARK_ASSIGN_OR_RETURN(bool eq, EqualsAt(v, *other, budget, depth + 1));
        if (!eq) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

absl::StatusOr<int> CompareAt(const Value& a, const Value& b, Budget& budget, int depth) {
  if (depth > kMaxValueDepth) return TooDeep();
  DSPARK_RETURN_IF_ERROR(budget.Charge(1));
  if (a.is_number() && b.is_number()) {
    if (IsIntLike(a) && IsIntLike(b)) {
      return a.int_value() < b.int_value() ? -1 : (a.int_value() > b.int_value() ? 1 : 0);
    }
    const double x = a.float_value(), y = b.float_value();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    DSPARK_RETURN_IF_ERROR(
        budget.Charge(static_cast<int64_t>(std::min(a.str().size(), b.str().size()) / 256)));
    const int c = a.str().compare(b.str());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_sequence() && a.kind() == b.kind()) {
    const List& x = a.list();
    const List& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      DSPARK_ASSIGN_OR_RETURN(bool eq, EqualsAt(x[i], y[i], budget, depth + 1));
      if (!eq) return CompareAt(x[i], y[i], budget, depth + 1);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  if (a.is_undefined() || b.is_undefined()) {
    return absl::InvalidArgumentError(a.is_undefined() ? a.str() : b.str());
  }
  return absl::InvalidArgumentError(
      Cat("cannot order values of types '", a.type_name(), "' and '", b.type_name(), "'"));
}

}  // namespace

absl::Status AppendStr(const Value& v, Budget& budget, std::string* out) {
  return AppendReprAt(v, budget, out, 0, false);
}

absl::Status AppendRepr(const Value& v, Budget& budget, std::string* out) {
  return AppendReprAt(v, budget, out, 0, true);
}

absl::StatusOr<bool> Equals(const Value& a, const Value& b, Budget& budget) {
  return EqualsAt(a, b, budget, 0);
}

absl::StatusOr<int> Compare(const Value& a, const Value& b, Budget& budget) {
  return CompareAt(a, b, budget, 0);
}

}  // namespace dspark::tokenizer::jinja
