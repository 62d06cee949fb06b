// Jinja's built-in filters and tests (declared in jinja_builtins.h), with
// `tojson` as Hugging Face overrides it: json.dumps(ensure_ascii=False).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/internal/jinja_builtins.h"
#include "common/tokenizer/internal/jinja_eval.h"
#include "common/tokenizer/internal/jinja_json.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer::jinja {
namespace {

using Filter = absl::StatusOr<Value> (*)(Evaluator&, const Value&, CallArgs&);

bool Given(const Value& v) { return !v.is_undefined(); }

absl::StatusOr<Value> StrFilter(Evaluator& ev, const Value& v,
                                std::string (*fn)(std::string_view)) {
  DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(v));
  return ev.MakeString(fn(s));
}

// Jinja's make_attrgetter: "a.b.0" looks up each part with getitem.
absl::StatusOr<Value> GetPath(Evaluator& ev, Value item, const Value& attribute) {
  if (!Given(attribute) || attribute.is_none()) return item;
  if (attribute.is_int()) return ev.GetItem(item, attribute);
  DSPARK_ASSIGN_OR_RETURN(std::string path, ev.ToStr(attribute));
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    int64_t index;
    if (absl::SimpleAtoi(part, &index)) {
      DSPARK_ASSIGN_OR_RETURN(item, ev.GetItem(item, Value::Int(index)));
    } else {
      DSPARK_ASSIGN_OR_RETURN(item, ev.GetItem(item, Value::String(std::string(part))));
    }
  }
  return item;
}

// Sort/unique key: the attribute, lower-cased unless case-sensitive.
absl::StatusOr<Value> SortKey(Evaluator& ev, const Value& item, const Value& attribute,
                              bool case_sensitive) {
  DSPARK_ASSIGN_OR_RETURN(Value key, GetPath(ev, item, attribute));
  if (!case_sensitive && key.is_string()) return Value::String(PyLower(key.str()));
  return key;
}

absl::StatusOr<Value> Length(Evaluator& ev, const Value& v, CallArgs&) {
  if (v.is_string()) {
    DSPARK_RETURN_IF_ERROR(ev.budget().Charge(static_cast<int64_t>(v.str().size() / 256)));
  }
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return Value::Int(0);
    case Value::Kind::kString:
      return Value::Int(CodePointCount(v.str()));
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      if (v.view() == Value::View::kGenerator) break;
      return Value::Int(static_cast<int64_t>(v.list().size()));
    case Value::Kind::kDict:
      return Value::Int(static_cast<int64_t>(v.dict().size()));
    default:
      break;
  }
  return absl::InvalidArgumentError(Cat("object of type '", v.type_name(), "' has no len()"));
}

absl::StatusOr<Value> ToJson(Evaluator& ev, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(
      BindArgs("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"}, &a));
  JsonOptions o;
  o.ensure_ascii = Truthy(a[0]);
  if (Given(a[1]) && !a[1].is_none()) {
    if (a[1].is_string()) {
      o.indent = a[1].str();
    } else if (a[1].is_int()) {
      o.indent = std::string(std::clamp<int64_t>(a[1].int_value(), 0, 64), ' ');
    } else {
      return absl::InvalidArgumentError("tojson indent must be an int or str");
    }
    o.item_separator.assign(1, ',');  // assign(): GCC 12 -Wrestrict false positive
  }
  if (Given(a[2]) && !a[2].is_none()) {
    if (!a[2].is_sequence() || a[2].list().size() != 2 || !a[2].list()[0].is_string() ||
        !a[2].list()[1].is_string()) {
      return absl::InvalidArgumentError("tojson separators must be a pair of strings");
    }
    o.item_separator = a[2].list()[0].str();
    o.key_separator = a[2].list()[1].str();
  }
  o.sort_keys = Truthy(a[3]);
  std::string out;
  DSPARK_RETURN_IF_ERROR(AppendJson(v, o, ev.budget(), &out));
  return ev.MakeString(std::move(out));
}

// Python int(str): optional sign, digits with single underscores, spaces around.
std::string_view StripSpace(std::string_view s) {
  while (!s.empty() && IsPySpace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && IsPySpace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool ParsePyInt(std::string_view s, int base, int64_t* out) {
  s = StripSpace(s);
  std::string digits;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && s[i - 1] != '_' && s[i - 1] != '+' &&
        s[i - 1] != '-') {
      continue;
    }
    digits.push_back(s[i]);
  }
  if (digits.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(digits.c_str(), &end, base);
  if (errno != 0 || end != digits.c_str() + digits.size() || !absl::ascii_isalnum(digits.back())) {
    return false;
  }
  *out = v;
  return true;
}

bool ParsePyFloat(std::string_view s, double* out) {
  std::string lower(StripSpace(s));
  absl::AsciiStrToLower(&lower);
  if (lower == "nan" || lower == "+nan" || lower == "-nan") {
    *out = NAN;
    return true;
  }
  if (lower == "inf" || lower == "+inf" || lower == "infinity" || lower == "+infinity") {
    *out = INFINITY;
    return true;
  }
  if (lower == "-inf" || lower == "-infinity") {
    *out = -INFINITY;
    return true;
  }
  if (lower.empty() || lower.find_first_of("xp") != std::string::npos) return false;
  char* end = nullptr;
  *out = std::strtod(lower.c_str(), &end);
  return end == lower.c_str() + lower.size();
}

absl::StatusOr<Value> IntFilter(Evaluator&, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("int", args, {"default", "base"}, &a));
  if (v.is_undefined()) return absl::InvalidArgumentError(v.str());
  const Value dflt = Given(a[0]) ? a[0] : Value::Int(0);
  const int base = a[1].is_int() ? static_cast<int>(a[1].int_value()) : 10;
  if (v.is_bool() || v.is_int()) return Value::Int(v.int_value());
  double f = 0;
  if (v.is_string()) {
    int64_t i;
    if (base >= 2 && base <= 36 && ParsePyInt(v.str(), base, &i)) return Value::Int(i);
    if (!ParsePyFloat(v.str(), &f)) return dflt;
  } else if (v.is_float()) {
    f = v.float_value();
  } else {
    return dflt;
  }
  if (std::isnan(f)) return dflt;
  if (std::isinf(f) || std::fabs(f) >= 9.2e18) {
    return absl::InvalidArgumentError("cannot convert float to integer: out of range");
  }
  return Value::Int(static_cast<int64_t>(f));
}

absl::StatusOr<Value> FloatFilter(Evaluator&, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("float", args, {"default"}, &a));
  if (v.is_undefined()) return absl::InvalidArgumentError(v.str());
  if (v.is_number()) return Value::Float(v.float_value());
  double f;
  if (v.is_string() && ParsePyFloat(v.str(), &f)) return Value::Float(f);
  return Given(a[0]) ? a[0] : Value::Float(0.0);
}

absl::StatusOr<Value> Join(Evaluator& ev, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("join", args, {"d", "attribute"}, &a));
  std::string sep;
  if (Given(a[0])) {
    DSPARK_ASSIGN_OR_RETURN(sep, ev.ToStr(a[0]));
  }
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, ev.Iterate(v));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    DSPARK_ASSIGN_OR_RETURN(Value item, GetPath(ev, items[i], a[1]));
    DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(item));
    if (i > 0) out += sep;
    out += s;
    DSPARK_RETURN_IF_ERROR(ev.budget().CheckBytes(out.size()));
  }
  return ev.MakeString(std::move(out));
}

absl::StatusOr<Value> FirstLast(Evaluator& ev, const Value& v, bool first) {
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, ev.Iterate(v));
  if (items.empty()) {
    return Value::Undefined(Cat("No ", first ? "first" : "last", " item, sequence was empty."));
  }
  return first ? items.front() : items.back();
}

absl::StatusOr<Value> Default(Evaluator&, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("default", args, {"default_value", "boolean"}, &a));
  const Value dflt = Given(a[0]) ? a[0] : Value::String("");
  if (v.is_undefined() || (Truthy(a[1]) && !Truthy(v))) return dflt;
  return v;
}

absl::StatusOr<Value> Replace(Evaluator& ev, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("replace", args, {"old", "new", "count"}, &a));
  DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(v));
  DSPARK_ASSIGN_OR_RETURN(std::string old, ev.ToStr(a[0]));
  DSPARK_ASSIGN_OR_RETURN(std::string repl, ev.ToStr(a[1]));
  const int64_t count = a[2].is_int() ? a[2].int_value() : -1;
  const size_t slots = old.empty() ? s.size() + 1 : s.size() / old.size();
  if (repl.size() > old.size() && slots * (repl.size() - old.size()) > ev.budget().max_bytes()) {
    return ev.budget().CheckBytes(ev.budget().max_bytes() + 1);
  }
  return ev.MakeString(PyReplace(s, old, repl, count));
}

// Input of a filter Jinja implements as a generator: nothing happens until
// the result is consumed, so a non-iterable input gives an (always true)
// empty generator here rather than an error.
absl::StatusOr<std::vector<Value>> LazyIterate(Evaluator& ev, const Value& v) {
  absl::StatusOr<std::vector<Value>> items = ev.Iterate(v);
  if (!items.ok() && items.status().code() == absl::StatusCode::kInvalidArgument) {
    return std::vector<Value>();
  }
  return items;
}

absl::StatusOr<Value> Items(Evaluator& ev, const Value& v, CallArgs&) {
  if (v.is_undefined()) return ev.arena().NewView({}, Value::View::kGenerator);
  if (!v.is_dict()) return ev.arena().NewView({}, Value::View::kGenerator);  // lazy TypeError
  List items;
  for (const auto& [k, val] : v.dict().items()) items.push_back(ev.arena().NewTuple({k, val}));
  return ev.arena().NewView(std::move(items), Value::View::kGenerator);
}

// select / reject / selectattr / rejectattr.
absl::StatusOr<Value> SelectOrReject(Evaluator& ev, const Value& v, CallArgs& args, bool by_attr,
                                     bool select) {
  CallArgs rest;
  size_t next = 0;
  Value attribute;
  if (by_attr) {
    if (args.positional.empty()) return absl::InvalidArgumentError("missing attribute argument");
    attribute = args.positional[next++];
  }
  std::string test;
  if (next < args.positional.size()) {
    DSPARK_ASSIGN_OR_RETURN(test, ev.ToStr(args.positional[next++]));
    if (!IsKnownTest(test)) return absl::InvalidArgumentError(Cat("unsupported test '", test, "'"));
  }
  rest.positional.assign(args.positional.begin() + next, args.positional.end());
  rest.kwargs = args.kwargs;
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, LazyIterate(ev, v));
  List out;
  for (const Value& item : items) {
    DSPARK_ASSIGN_OR_RETURN(Value subject, by_attr ? GetPath(ev, item, attribute) : item);
    bool ok;
    if (test.empty()) {
      ok = Truthy(subject);
    } else {
      CallArgs test_args = rest;
      DSPARK_ASSIGN_OR_RETURN(ok, ApplyTest(ev, test, subject, test_args));
    }
    if (ok == select) out.push_back(item);
  }
  return ev.arena().NewView(std::move(out), Value::View::kGenerator);
}

absl::StatusOr<Value> Map(Evaluator& ev, const Value& v, CallArgs& args) {
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, LazyIterate(ev, v));
  List out;
  if (args.positional.empty()) {
    std::vector<Value> a;
    DSPARK_RETURN_IF_ERROR(BindArgs("map", args, {"attribute", "default"}, &a));
    for (const Value& item : items) {
      DSPARK_ASSIGN_OR_RETURN(Value x, GetPath(ev, item, a[0]));
      if (x.is_undefined() && Given(a[1])) x = a[1];
      out.push_back(std::move(x));
    }
  } else {
    DSPARK_ASSIGN_OR_RETURN(std::string filter, ev.ToStr(args.positional[0]));
    if (!IsKnownFilter(filter)) {
      return absl::InvalidArgumentError(Cat("unsupported filter '", filter, "'"));
    }
    CallArgs rest;
    rest.positional.assign(args.positional.begin() + 1, args.positional.end());
    rest.kwargs = args.kwargs;
    for (const Value& item : items) {
      CallArgs filter_args = rest;
      DSPARK_ASSIGN_OR_RETURN(Value x, ApplyFilter(ev, filter, item, filter_args));
      out.push_back(std::move(x));
    }
  }
  return ev.arena().NewView(std::move(out), Value::View::kGenerator);
}

absl::StatusOr<Value> Unique(Evaluator& ev, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("unique", args, {"case_sensitive", "attribute"}, &a));
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, LazyIterate(ev, v));
  absl::flat_hash_set<std::string> seen;
  List out;
  for (const Value& item : items) {
    DSPARK_ASSIGN_OR_RETURN(Value key, SortKey(ev, item, a[1], Truthy(a[0])));
    std::string k;
    if (!DictKey(key, &k)) {
      return absl::InvalidArgumentError(Cat("unhashable type: '", key.type_name(), "'"));
    }
    if (seen.insert(k).second) out.push_back(item);
  }
  return ev.arena().NewView(std::move(out), Value::View::kGenerator);
}

absl::StatusOr<Value> Escape(Evaluator& ev, const Value& v, CallArgs&) {
  DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(v));
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return ev.MakeString(std::move(out));
}

absl::StatusOr<Value> Indent(Evaluator& ev, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("indent", args, {"width", "first", "blank"}, &a));
  std::string pad = "    ";
  if (a[0].is_string()) {
    pad = a[0].str();
  } else if (a[0].is_int()) {
    pad = std::string(std::clamp<int64_t>(a[0].int_value(), 0, 1024), ' ');
  }
  DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(v));
  const std::vector<std::string> lines = PySplitLines(s + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += "\n";
      if (Truthy(a[2]) || !lines[i].empty()) out += pad;
    }
    out += lines[i];
    DSPARK_RETURN_IF_ERROR(ev.budget().CheckBytes(out.size()));
  }
  if (Truthy(a[1])) out = pad + out;
  return ev.MakeString(std::move(out));
}

absl::StatusOr<Value> Round(Evaluator&, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("round", args, {"precision", "method"}, &a));
  if (!v.is_number()) return absl::InvalidArgumentError("round filter requires a number");
  const int64_t precision = a[0].is_int() ? std::clamp<int64_t>(a[0].int_value(), -300, 300) : 0;
  const std::string method = a[1].is_string() ? a[1].str() : "common";
  const double x = v.float_value();
  if (method == "common" && !v.is_float()) {
    // round(int, n) stays an int.
    if (precision >= 0) return Value::Int(v.int_value());
    return Value::Int(static_cast<int64_t>(std::nearbyint(x / std::pow(10.0, -precision)) *
                                           std::pow(10.0, -precision)));
  }
  if (method == "common") {
    if (precision == 0) return Value::Float(std::nearbyint(x));  // half to even, like Python
    // Python rounds the exact decimal value of x, as printf does.
    char buf[512];
    if (precision > 0) {
      std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), x);
      return Value::Float(std::strtod(buf, nullptr));
    }
    const double p = std::pow(10.0, static_cast<double>(-precision));
    return Value::Float(std::nearbyint(x / p) * p);
  }
  const double p = std::pow(10.0, static_cast<double>(precision));
  if (method == "floor") return Value::Float(std::floor(x * p) / p);
  if (method == "ceil") return Value::Float(std::ceil(x * p) / p);
  return absl::InvalidArgumentError("method must be common, ceil or floor");
}

absl::StatusOr<Value> Sort(Evaluator& ev, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("sort", args, {"reverse", "case_sensitive", "attribute"}, &a));
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, ev.Iterate(v));
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : items) {
    DSPARK_ASSIGN_OR_RETURN(Value key, SortKey(ev, item, a[2], Truthy(a[1])));
    keyed.emplace_back(std::move(key), item);
  }
  absl::Status error;
  const bool reverse = Truthy(a[0]);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    if (!error.ok()) return false;
    absl::StatusOr<int> c =
        reverse ? Compare(y.first, x.first, ev.budget()) : Compare(x.first, y.first, ev.budget());
    if (!c.ok()) {
      error = c.status();
      return false;
    }
    return *c < 0;
  });
  DSPARK_RETURN_IF_ERROR(error);
  List out;
  for (auto& [k, item] : keyed) out.push_back(std::move(item));
  return ev.arena().NewList(std::move(out));
}

absl::StatusOr<Value> DictSort(Evaluator& ev, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("dictsort", args, {"case_sensitive", "by", "reverse"}, &a));
  if (!v.is_dict()) return absl::InvalidArgumentError("dictsort filter requires a mapping");
  CallArgs items_args;
  DSPARK_ASSIGN_OR_RETURN(Value pairs, Items(ev, v, items_args));
  const bool by_value = a[1].is_string() && a[1].str() == "value";
  CallArgs sort_args;
  sort_args.kwargs = {
      {"reverse", a[2]}, {"case_sensitive", a[0]}, {"attribute", Value::Int(by_value ? 1 : 0)}};
  return Sort(ev, pairs, sort_args);
}

absl::StatusOr<Value> MinMax(Evaluator& ev, const Value& v, CallArgs& args, bool max) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs(max ? "max" : "min", args, {"case_sensitive", "attribute"}, &a));
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, ev.Iterate(v));
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  DSPARK_ASSIGN_OR_RETURN(Value best_key, SortKey(ev, items[0], a[1], Truthy(a[0])));
  for (size_t i = 1; i < items.size(); ++i) {
    DSPARK_ASSIGN_OR_RETURN(Value key, SortKey(ev, items[i], a[1], Truthy(a[0])));
    DSPARK_ASSIGN_OR_RETURN(int c, Compare(key, best_key, ev.budget()));
    if (max ? c > 0 : c < 0) {
      best = i;
      best_key = key;
    }
  }
  return items[best];
}

absl::StatusOr<Value> Sum(Evaluator& ev, const Value& v, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("sum", args, {"attribute", "start"}, &a));
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, ev.Iterate(v));
  Value total = Given(a[1]) ? a[1] : Value::Int(0);
  for (const Value& item : items) {
    DSPARK_ASSIGN_OR_RETURN(Value x, GetPath(ev, item, a[0]));
    if (!x.is_number() || !total.is_number()) {
      return absl::InvalidArgumentError("sum filter requires numbers");
    }
    if (x.is_float() || total.is_float()) {
      total = Value::Float(total.float_value() + x.float_value());
    } else {
      int64_t r;
      if (__builtin_add_overflow(total.int_value(), x.int_value(), &r)) {
        return absl::InvalidArgumentError("integer overflow");
      }
      total = Value::Int(r);
    }
  }
  return total;
}

absl::StatusOr<Value> Reverse(Evaluator& ev, const Value& v, CallArgs&) {
  if (v.is_string()) {
    std::u32string u = DecodeUtf8(v.str());
    std::reverse(u.begin(), u.end());
    return ev.MakeString(EncodeUtf8(u));
  }
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, ev.Iterate(v));
  std::reverse(items.begin(), items.end());
  return ev.arena().NewView(std::move(items), Value::View::kGenerator);  // reversed() iterator
}

absl::StatusOr<Value> Abs(Evaluator&, const Value& v, CallArgs&) {
  if (v.is_float()) return Value::Float(std::fabs(v.float_value()));
  if (!v.is_number()) return absl::InvalidArgumentError("bad operand type for abs()");
  if (v.int_value() == INT64_MIN) return absl::InvalidArgumentError("integer overflow");
  return Value::Int(std::llabs(v.int_value()));
}

absl::StatusOr<Value> FormatFilter(Evaluator& ev, const Value& v, CallArgs& args) {
  DSPARK_ASSIGN_OR_RETURN(std::string fmt, ev.ToStr(v));
  Value tuple = ev.arena().NewTuple(args.positional);
  DSPARK_ASSIGN_OR_RETURN(std::string s, PercentFormat(ev, fmt, tuple));
  return ev.MakeString(std::move(s));
}

const absl::flat_hash_map<std::string_view, Filter>& Filters() {
  static const auto* const kFilters = new absl::flat_hash_map<std::string_view, Filter>{
      {"abs", Abs},
      {"attr",
       [](Evaluator& ev, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("attr", args, {"name"}, &a));
         DSPARK_ASSIGN_OR_RETURN(std::string name, ev.ToStr(a[0]));
         return ev.GetAttr(v, name);
       }},
      {"capitalize",
       [](Evaluator& ev, const Value& v, CallArgs&) { return StrFilter(ev, v, PyCapitalize); }},
      {"center",
       [](Evaluator& ev, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
         DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(v));
         if (args.positional.empty() && args.kwargs.empty())
           args.positional.push_back(Value::Int(80));
         return ev.Call(GetMethod(Value::String(s), "center"), args);
       }},
      {"count", Length},
      {"d", Default},
      {"default", Default},
      {"dictsort", DictSort},
      {"e", Escape},
      {"escape", Escape},
      {"first", [](Evaluator& ev, const Value& v, CallArgs&) { return FirstLast(ev, v, true); }},
      {"float", FloatFilter},
      {"format", FormatFilter},
      {"indent", Indent},
      {"int", IntFilter},
      {"items", Items},
      {"join", Join},
      {"last", [](Evaluator& ev, const Value& v, CallArgs&) { return FirstLast(ev, v, false); }},
      {"length", Length},
      {"list",
       [](Evaluator& ev, const Value& v, CallArgs&) -> absl::StatusOr<Value> {
         DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, ev.Iterate(v));
         return ev.arena().NewList(std::move(items));
       }},
      {"lower", [](Evaluator& ev, const Value& v, CallArgs&) { return StrFilter(ev, v, PyLower); }},
      {"map", Map},
      {"max", [](Evaluator& ev, const Value& v, CallArgs& a) { return MinMax(ev, v, a, true); }},
      {"min", [](Evaluator& ev, const Value& v, CallArgs& a) { return MinMax(ev, v, a, false); }},
      {"reject", [](Evaluator& ev, const Value& v,
                    CallArgs& a) { return SelectOrReject(ev, v, a, false, false); }},
      {"rejectattr", [](Evaluator& ev, const Value& v,
                        CallArgs& a) { return SelectOrReject(ev, v, a, true, false); }},
      {"replace", Replace},
      {"reverse", Reverse},
      {"round", Round},
      {"safe",  // Markup(value): a string
       [](Evaluator& ev, const Value& v, CallArgs&) -> absl::StatusOr<Value> {
         if (v.is_string()) return v;
         DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(v));
         return ev.MakeString(std::move(s));
       }},
      {"select", [](Evaluator& ev, const Value& v,
                    CallArgs& a) { return SelectOrReject(ev, v, a, false, true); }},
      {"selectattr", [](Evaluator& ev, const Value& v,
                        CallArgs& a) { return SelectOrReject(ev, v, a, true, true); }},
      {"sort", Sort},
      {"string",
       [](Evaluator& ev, const Value& v, CallArgs&) -> absl::StatusOr<Value> {
         DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(v));
         return ev.MakeString(std::move(s));
       }},
      {"sum", Sum},
      {"title",
       [](Evaluator& ev, const Value& v, CallArgs&) { return StrFilter(ev, v, JinjaTitle); }},
      {"tojson", ToJson},
      {"trim",
       [](Evaluator& ev, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("trim", args, {"chars"}, &a));
         DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(v));
         std::optional<std::string> chars;
         if (a[0].is_string()) chars = a[0].str();
         return ev.MakeString(PyStrip(s, chars, true, true));
       }},
      {"unique", Unique},
      {"upper", [](Evaluator& ev, const Value& v, CallArgs&) { return StrFilter(ev, v, PyUpper); }},
      {"wordcount",
       [](Evaluator& ev, const Value& v, CallArgs&) -> absl::StatusOr<Value> {
         DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(v));
         int64_t words = 0;
         bool in_word = false;
         for (char32_t c : DecodeUtf8(s)) {
           const bool word_char = c == '_' || (c >= '0' && c <= '9') || PyIsAlpha(c);
           if (word_char && !in_word) ++words;
           in_word = word_char;
         }
         return Value::Int(words);
       }},
  };
  return *kFilters;
}

}  // namespace

bool IsKnownFilter(std::string_view name) { return Filters().contains(name); }

absl::StatusOr<Value> ApplyFilter(Evaluator& ev, std::string_view name, const Value& input,
                                  CallArgs& args) {
  const auto it = Filters().find(name);
  if (it == Filters().end()) {
    return absl::InvalidArgumentError(Cat("unsupported filter '", name, "'"));
  }
  return it->second(ev, input, args);
}

}  // namespace dspark::tokenizer::jinja
