// Runtime values of the Jinja interpreter with Python semantics: None, bool,
// int, float, str, list, tuple, dict (insertion-ordered), namespace, callable
// and Undefined. Values are cheap to copy (payloads are shared). Containers
// belong to one render and are not thread-safe; strings and scalars are
// immutable, so the parser's literals are shared by concurrent renders.
//
// Containers are created through an Arena owned by the render; its
// destructor empties them all, which breaks reference cycles (a list appended
// to itself) and keeps destruction of deeply nested data from recursing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dspark::tokenizer::jinja {

class Value;
class Dict;
class Evaluator;
using List = std::vector<Value>;

// Arguments of a call: f(a, b, key=c).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> kwargs;
};

struct Callable {
  std::string name;
  std::function<absl::StatusOr<Value>(Evaluator&, CallArgs&)> fn;
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kTuple,
    kDict,
    kNamespace,
    kCallable,
  };

  Value() : kind_(Kind::kUndefined), i_(0) {}
  // `hint` names what was missing, for the error raised when it is used.
  static Value Undefined(std::string hint);
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value Function(std::string name,
                        std::function<absl::StatusOr<Value>(Evaluator&, CallArgs&)> fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // bool, int or float (Python's numbers.Number).
  bool is_number() const { return is_bool() || is_int() || is_float(); }
  bool is_string() const { return kind_ == Kind::kString; }
  // list or tuple.
  bool is_sequence() const { return kind_ == Kind::kList || kind_ == Kind::kTuple; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool bool_value() const { return b_; }
  // Integer value of a bool or int.
  int64_t int_value() const { return is_bool() ? (b_ ? 1 : 0) : i_; }
  // Numeric value of any number.
  double float_value() const { return is_float() ? f_ : static_cast<double>(int_value()); }
  // String payload; for Undefined the message to raise when it is used.
  const std::string& str() const;
  List& list() const;  // list or tuple
  Dict& dict() const;  // dict or namespace
  const Callable& callable() const;
  // What Python object a list stands for when it is not a plain list.
  enum class View : uint8_t {
    kNone,
    kDictKeys,    // dict.keys(): prints dict_keys([...])
    kDictValues,  // dict.values()
    kDictItems,   // dict.items()
    // A lazy filter result (select, map, ...): always true, no len(), not
    // subscriptable, prints <generator object>.
    kGenerator,
  };
  View view() const { return view_; }
  bool is_view() const { return view_ != View::kNone; }
  // Identity of the shared payload (Python's `is` for containers).
  const void* identity() const { return ptr_.get(); }
  // Python type name, for error messages ("str", "dict", ...).
  std::string_view type_name() const;

 private:
  friend class Arena;
  Kind kind_;
  View view_ = View::kNone;  // lists only
  union {
    bool b_;
    int64_t i_;
    double f_;
  };
  // String, Callable (immutable) or List/Dict (mutable) payload.
  std::shared_ptr<const void> ptr_;
};

// Hashable key of a dict entry: Python's equality for str, int, float, bool,
// None and tuples thereof. Returns false for unhashable values.
bool DictKey(const Value& v, std::string* key);

class Dict {
 public:
  // nullptr when absent or unhashable.
  const Value* Find(const Value& key) const;
  const Value* FindString(std::string_view key) const;
  // InvalidArgument for unhashable keys.
  absl::Status Set(const Value& key, Value value);
  const std::vector<std::pair<Value, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }
  void Clear();

 private:
  std::vector<std::pair<Value, Value>> items_;
  absl::flat_hash_map<std::string, size_t> index_;
};

class Budget;

class Arena {
 public:
  // Every element created is debited from `budget` (may be null), so a render
  // cannot hold more container elements than its step limit.
  explicit Arena(Budget* budget) : budget_(budget) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();

  Value NewList(List items = {});
  Value NewTuple(List items = {});
  // A list standing for a dict view or generator (see Value::View).
  Value NewView(List items, Value::View view);
  Value NewDict();
  Value NewNamespace();

 private:
  Budget* budget_;
  std::vector<std::shared_ptr<List>> lists_;
  std::vector<std::shared_ptr<Dict>> dicts_;
};

// Work allowance of one render. Deep operations (repr, equality, JSON) charge
// it per element visited, so data sharing sub-structures cannot blow up.
class Budget {
 public:
  Budget(int64_t max_steps, size_t max_bytes) : steps_left_(max_steps), max_bytes_(max_bytes) {}
  // ResourceExhausted once more than max_steps have been charged.
  absl::Status Charge(int64_t steps);
  // Like Charge, but reported by the next Charge.
  void Debit(int64_t steps) { steps_left_ -= steps; }
  // ResourceExhausted when one value or the output would exceed max_bytes.
  absl::Status CheckBytes(size_t bytes) const;
  int64_t steps_used(int64_t max_steps) const { return max_steps - steps_left_; }
  size_t max_bytes() const { return max_bytes_; }

 private:
  int64_t steps_left_;
  size_t max_bytes_;
};

// Deepest nesting a value may have (input JSON, repr, JSON output).
inline constexpr int kMaxValueDepth = 128;

// Python truthiness.
bool Truthy(const Value& v);
// str(v) appended to *out; Undefined renders empty.
absl::Status AppendStr(const Value& v, Budget& budget, std::string* out);
// repr(v) appended to *out.
absl::Status AppendRepr(const Value& v, Budget& budget, std::string* out);
// Python ==.
absl::StatusOr<bool> Equals(const Value& a, const Value& b, Budget& budget);
// Python ordering (<0, 0, >0); InvalidArgument for types Python cannot order.
absl::StatusOr<int> Compare(const Value& a, const Value& b, Budget& budget);

}  // namespace dspark::tokenizer::jinja
