// Methods of str/list/dict, global functions, argument binding and
// printf-style formatting (declared in jinja_builtins.h).
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/internal/jinja_builtins.h"
#include "common/tokenizer/internal/jinja_eval.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer::jinja {
namespace {

using Method = absl::StatusOr<Value> (*)(Evaluator&, const Value&, CallArgs&);

absl::Status ArgError(std::string_view fn, std::string_view what) {
  return absl::InvalidArgumentError(Cat(fn, "() ", what));
}

// Optional str argument: absent/None -> nullopt.
absl::StatusOr<std::optional<std::string>> OptStr(std::string_view fn, const Value& v) {
  if (v.is_undefined() || v.is_none()) return std::nullopt;
  if (!v.is_string()) return ArgError(fn, "argument must be str or None");
  return v.str();
}

absl::StatusOr<int64_t> OptInt(std::string_view fn, const Value& v, int64_t dflt) {
  if (v.is_undefined() || v.is_none()) return dflt;
  if (!v.is_int() && !v.is_bool()) return ArgError(fn, "argument must be an integer");
  return v.int_value();
}

absl::StatusOr<std::string> ReqStr(std::string_view fn, const Value& v) {
  if (!v.is_string()) return ArgError(fn, "argument must be str");
  return v.str();
}

absl::StatusOr<Value> Strip(Evaluator& ev, const Value& self, CallArgs& args, std::string_view fn,
                            bool left, bool right) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs(fn, args, {"chars"}, &a));
  DSPARK_ASSIGN_OR_RETURN(std::optional<std::string> chars, OptStr(fn, a[0]));
  return ev.MakeString(PyStrip(self.str(), chars, left, right));
}

absl::StatusOr<Value> Split(Evaluator& ev, const Value& self, CallArgs& args, bool right) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("split", args, {"sep", "maxsplit"}, &a));
  DSPARK_ASSIGN_OR_RETURN(std::optional<std::string> sep, OptStr("split", a[0]));
  DSPARK_ASSIGN_OR_RETURN(int64_t maxsplit, OptInt("split", a[1], -1));
  if (sep && sep->empty()) return absl::InvalidArgumentError("empty separator");
  List items;
  for (std::string& part : PySplit(self.str(), sep, maxsplit, right)) {
    items.push_back(Value::String(std::move(part)));
  }
  DSPARK_RETURN_IF_ERROR(ev.budget().Charge(static_cast<int64_t>(items.size())));
  return ev.arena().NewList(std::move(items));
}

absl::StatusOr<Value> AffixTest(const Value& self, CallArgs& args, bool prefix) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs(prefix ? "startswith" : "endswith", args, {"affix"}, &a));
  std::vector<std::string> affixes;
  if (a[0].is_string()) {
    affixes.push_back(a[0].str());
  } else if (a[0].kind() == Value::Kind::kTuple) {
    for (const Value& v : a[0].list()) {
      if (!v.is_string())
        return absl::InvalidArgumentError("tuple for affix must only contain str");
      affixes.push_back(v.str());
    }
  } else {
    return absl::InvalidArgumentError("startswith/endswith argument must be str or a tuple of str");
  }
  const std::string& s = self.str();
  for (const std::string& f : affixes) {
    if (f.size() <= s.size() && (prefix ? s.compare(0, f.size(), f) == 0
                                        : s.compare(s.size() - f.size(), f.size(), f) == 0)) {
      return Value::Bool(true);
    }
  }
  return Value::Bool(false);
}

absl::StatusOr<Value> Find(Evaluator& ev, const Value& self, CallArgs& args, bool from_right) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("find", args, {"sub"}, &a));
  DSPARK_ASSIGN_OR_RETURN(std::string sub, ReqStr("find", a[0]));
  const std::string& s = self.str();
  DSPARK_RETURN_IF_ERROR(ev.budget().Charge(static_cast<int64_t>(self.str().size() / 256)));
  const SubstringFinder finder(sub);
  const size_t at = from_right ? finder.RFind(s, s.size()) : finder.Find(s);
  if (at == std::string::npos) return Value::Int(-1);
  return Value::Int(CodePointCount(std::string_view(s).substr(0, at)));
}

// str.format with "{}", "{0}" and "{name}" fields (no format specs).
absl::StatusOr<Value> Format(Evaluator& ev, const Value& self, CallArgs& args) {
  const std::string& f = self.str();
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    if ((c == '{' || c == '}') && i + 1 < f.size() && f[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == '}') return absl::InvalidArgumentError("single '}' encountered in format string");
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    const size_t close = f.find('}', i);
    if (close == std::string::npos) {
      return absl::InvalidArgumentError("single '{' encountered in format string");
    }
    const std::string field = f.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos) {
      return absl::InvalidArgumentError(Cat("unsupported str.format field '{", field, "}'"));
    }
    const Value* v = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), ::isdigit)) {
      const size_t idx = field.empty() ? auto_index++ : std::stoul(field);
      if (idx >= args.positional.size()) {
        return absl::InvalidArgumentError("replacement index out of range for str.format");
      }
      v = &args.positional[idx];
    } else {
      for (const auto& [k, val] : args.kwargs) {
        if (k == field) v = &val;
      }
      if (v == nullptr) return absl::InvalidArgumentError(Cat("str.format: missing '", field, "'"));
    }
    DSPARK_ASSIGN_OR_RETURN(std::string s, ev.ToStr(*v));
    out += s;
    DSPARK_RETURN_IF_ERROR(ev.budget().CheckBytes(out.size()));
    i = close;
  }
  return ev.MakeString(std::move(out));
}

absl::StatusOr<Value> Justify(Evaluator& ev, const Value& self, CallArgs& args,
                              std::string_view fn) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs(fn, args, {"width", "fillchar"}, &a));
  DSPARK_ASSIGN_OR_RETURN(int64_t width, OptInt(fn, a[0], 0));
  std::string fill = a[1].is_string() ? a[1].str() : " ";
  if (CodePointCount(fill) != 1) return ArgError(fn, "fill character must be one character");
  const int64_t len = CodePointCount(self.str());
  if (width <= len) return self;
  DSPARK_RETURN_IF_ERROR(ev.budget().CheckBytes(width * fill.size()));
  const int64_t pad = width - len;
  int64_t left = 0;
  if (fn == "center") left = pad / 2 + (pad & width & 1);
  if (fn == "rjust") left = pad;
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += self.str();
  for (int64_t i = left; i < pad; ++i) out += fill;
  return ev.MakeString(std::move(out));
}

template <bool (*Pred)(char32_t)>
absl::StatusOr<Value> AllChars(Evaluator&, const Value& self, CallArgs& args) {
  const std::u32string u = DecodeUtf8(self.str());
  if (u.empty()) return Value::Bool(false);
  for (char32_t c : u) {
    if (!Pred(c)) return Value::Bool(false);
  }
  return Value::Bool(true);
}

bool IsDigit(char32_t c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char32_t c) { return PyIsAlpha(c); }
bool IsAlnum(char32_t c) { return IsDigit(c) || IsAlpha(c); }

absl::StatusOr<Value> CaseTest(const Value& self, bool lower) {
  bool cased = false;
  for (char32_t c : DecodeUtf8(self.str())) {
    if (lower ? PyToUpper(c) != c && PyToLower(c) == c : PyToLower(c) != c && PyToUpper(c) == c) {
      cased = true;
    } else if (PyToUpper(c) != c || PyToLower(c) != c) {
      return Value::Bool(false);
    }
  }
  return Value::Bool(cased);
}

const absl::flat_hash_map<std::string_view, Method>& StringMethods() {
  static const auto* const kMethods = new absl::flat_hash_map<std::string_view, Method>{
      {"strip", [](Evaluator& ev, const Value& s,
                   CallArgs& a) { return Strip(ev, s, a, "strip", true, true); }},
      {"lstrip", [](Evaluator& ev, const Value& s,
                    CallArgs& a) { return Strip(ev, s, a, "lstrip", true, false); }},
      {"rstrip", [](Evaluator& ev, const Value& s,
                    CallArgs& a) { return Strip(ev, s, a, "rstrip", false, true); }},
      {"split", [](Evaluator& ev, const Value& s, CallArgs& a) { return Split(ev, s, a, false); }},
      {"rsplit", [](Evaluator& ev, const Value& s, CallArgs& a) { return Split(ev, s, a, true); }},
      {"splitlines",
       [](Evaluator& ev, const Value& s, CallArgs& a) -> absl::StatusOr<Value> {
         List items;
         for (std::string& line : PySplitLines(s.str()))
           items.push_back(Value::String(std::move(line)));
         return ev.arena().NewList(std::move(items));
       }},
      {"startswith", [](Evaluator&, const Value& s, CallArgs& a) { return AffixTest(s, a, true); }},
      {"endswith", [](Evaluator&, const Value& s, CallArgs& a) { return AffixTest(s, a, false); }},
      {"upper",
       [](Evaluator& ev, const Value& s, CallArgs&) { return ev.MakeString(PyUpper(s.str())); }},
      {"lower",
       [](Evaluator& ev, const Value& s, CallArgs&) { return ev.MakeString(PyLower(s.str())); }},
      {"title",
       [](Evaluator& ev, const Value& s, CallArgs&) { return ev.MakeString(PyTitle(s.str())); }},
      {"capitalize", [](Evaluator& ev, const Value& s,
                        CallArgs&) { return ev.MakeString(PyCapitalize(s.str())); }},
      {"replace",
       [](Evaluator& ev, const Value& s, CallArgs& args) -> absl::StatusOr<Value> {
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("replace", args, {"old", "new", "count"}, &a));
         DSPARK_ASSIGN_OR_RETURN(std::string old, ReqStr("replace", a[0]));
         DSPARK_ASSIGN_OR_RETURN(std::string repl, ReqStr("replace", a[1]));
         DSPARK_ASSIGN_OR_RETURN(int64_t count, OptInt("replace", a[2], -1));
         if (!old.empty() || repl.empty()) {
           const size_t grow = repl.size() > old.size() ? repl.size() - old.size() : 0;
           if (!old.empty() && grow > 0 &&
               s.str().size() / old.size() * grow > ev.budget().max_bytes()) {
             return ev.budget().CheckBytes(ev.budget().max_bytes() + 1);
           }
         } else if ((s.str().size() + 1) * repl.size() > ev.budget().max_bytes()) {
           return ev.budget().CheckBytes(ev.budget().max_bytes() + 1);
         }
         return ev.MakeString(PyReplace(s.str(), old, repl, count));
       }},
      {"find", [](Evaluator& ev, const Value& s, CallArgs& a) { return Find(ev, s, a, false); }},
      {"rfind", [](Evaluator& ev, const Value& s, CallArgs& a) { return Find(ev, s, a, true); }},
      {"count",
       [](Evaluator& ev, const Value& s, CallArgs& args) -> absl::StatusOr<Value> {
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("count", args, {"sub"}, &a));
         DSPARK_RETURN_IF_ERROR(ev.budget().Charge(static_cast<int64_t>(s.str().size() / 256)));
         DSPARK_ASSIGN_OR_RETURN(std::string sub, ReqStr("count", a[0]));
         if (sub.empty()) return Value::Int(CodePointCount(s.str()) + 1);
         int64_t n = 0;
         const SubstringFinder finder(sub);
         for (size_t at = finder.Find(s.str()); at != std::string::npos;
              at = finder.Find(s.str(), at + sub.size())) {
           ++n;
         }
         return Value::Int(n);
       }},
      {"join",
       [](Evaluator& ev, const Value& s, CallArgs& args) -> absl::StatusOr<Value> {
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("join", args, {"iterable"}, &a));
         DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, ev.Iterate(a[0]));
         std::string out;
         for (size_t i = 0; i < items.size(); ++i) {
           if (!items[i].is_string()) {
             return absl::InvalidArgumentError(Cat("sequence item ", i, ": expected str instance, ",
                                                   items[i].type_name(), " found"));
           }
           if (i > 0) out += s.str();
           out += items[i].str();
           DSPARK_RETURN_IF_ERROR(ev.budget().CheckBytes(out.size()));
         }
         return ev.MakeString(std::move(out));
       }},
      {"format", Format},
      {"center",
       [](Evaluator& ev, const Value& s, CallArgs& a) { return Justify(ev, s, a, "center"); }},
      {"ljust",
       [](Evaluator& ev, const Value& s, CallArgs& a) { return Justify(ev, s, a, "ljust"); }},
      {"rjust",
       [](Evaluator& ev, const Value& s, CallArgs& a) { return Justify(ev, s, a, "rjust"); }},
      {"isdigit", AllChars<IsDigit>},
      {"isalpha", AllChars<IsAlpha>},
      {"isalnum", AllChars<IsAlnum>},
      {"isspace", AllChars<IsPySpace>},
      {"islower", [](Evaluator&, const Value& s, CallArgs&) { return CaseTest(s, true); }},
      {"isupper", [](Evaluator&, const Value& s, CallArgs&) { return CaseTest(s, false); }},
      {"removeprefix",
       [](Evaluator& ev, const Value& s, CallArgs& args) -> absl::StatusOr<Value> {
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("removeprefix", args, {"prefix"}, &a));
         DSPARK_ASSIGN_OR_RETURN(std::string p, ReqStr("removeprefix", a[0]));
         if (s.str().compare(0, p.size(), p) == 0) return ev.MakeString(s.str().substr(p.size()));
         return s;
       }},
      {"removesuffix",
       [](Evaluator& ev, const Value& s, CallArgs& args) -> absl::StatusOr<Value> {
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("removesuffix", args, {"suffix"}, &a));
         DSPARK_ASSIGN_OR_RETURN(std::string p, ReqStr("removesuffix", a[0]));
         const std::string& str = s.str();
         if (!p.empty() && p.size() <= str.size() &&
             str.compare(str.size() - p.size(), p.size(), p) == 0) {
           return ev.MakeString(str.substr(0, str.size() - p.size()));
         }
         return s;
       }},
  };
  return *kMethods;
}

absl::StatusOr<Value> DictView(Evaluator& ev, const Value& self, int which) {
  List items;
  for (const auto& [k, v] : self.dict().items()) {
    if (which == 0) {
      items.push_back(k);
    } else if (which == 1) {
      items.push_back(v);
    } else {
      items.push_back(ev.arena().NewTuple({k, v}));
    }
  }
  return ev.arena().NewView(std::move(items), which == 0   ? Value::View::kDictKeys
                                              : which == 1 ? Value::View::kDictValues
                                                           : Value::View::kDictItems);
}

const absl::flat_hash_map<std::string_view, Method>& DictMethods() {
  static const auto* const kMethods = new absl::flat_hash_map<std::string_view, Method>{
      {"keys", [](Evaluator& ev, const Value& d, CallArgs&) { return DictView(ev, d, 0); }},
      {"values", [](Evaluator& ev, const Value& d, CallArgs&) { return DictView(ev, d, 1); }},
      {"items", [](Evaluator& ev, const Value& d, CallArgs&) { return DictView(ev, d, 2); }},
      {"get",
       [](Evaluator&, const Value& d, CallArgs& args) -> absl::StatusOr<Value> {
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("get", args, {"key", "default"}, &a));
         const Value* v = d.dict().Find(a[0]);
         if (v != nullptr) return *v;
         return a[1].is_undefined() ? Value::None() : a[1];
       }},
      {"copy",
       [](Evaluator& ev, const Value& d, CallArgs&) -> absl::StatusOr<Value> {
         Value out = ev.arena().NewDict();
         for (const auto& [k, v] : d.dict().items()) DSPARK_RETURN_IF_ERROR(out.dict().Set(k, v));
         return out;
       }},
  };
  return *kMethods;
}

const absl::flat_hash_map<std::string_view, Method>& ListMethods() {
  static const auto* const kMethods = new absl::flat_hash_map<std::string_view, Method>{
      // Jinja's immutable sandbox forbids append; accepted here because
      // templates written for other engines use `{% set _ = xs.append(x) %}`.
      {"append",
       [](Evaluator& ev, const Value& l, CallArgs& args) -> absl::StatusOr<Value> {
         if (l.kind() != Value::Kind::kList)
           return absl::InvalidArgumentError("tuple has no append");
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("append", args, {"object"}, &a));
         DSPARK_RETURN_IF_ERROR(ev.budget().Charge(1));
         l.list().push_back(a[0]);
         return Value::None();
       }},
      {"count",
       [](Evaluator& ev, const Value& l, CallArgs& args) -> absl::StatusOr<Value> {
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("count", args, {"value"}, &a));
         int64_t n = 0;
         for (const Value& v : l.list()) {
           DSPARK_ASSIGN_OR_RETURN(bool eq, Equals(v, a[0], ev.budget()));
           n += eq;
         }
         return Value::Int(n);
       }},
      {"index",
       [](Evaluator& ev, const Value& l, CallArgs& args) -> absl::StatusOr<Value> {
         std::vector<Value> a;
         DSPARK_RETURN_IF_ERROR(BindArgs("index", args, {"value"}, &a));
         for (size_t i = 0; i < l.list().size(); ++i) {
           DSPARK_ASSIGN_OR_RETURN(bool eq, Equals(l.list()[i], a[0], ev.budget()));
           if (eq) return Value::Int(static_cast<int64_t>(i));
         }
         return absl::InvalidArgumentError("value is not in list");
       }},
  };
  return *kMethods;
}

absl::StatusOr<Value> Range(Evaluator& ev, CallArgs& args) {
  std::vector<Value> a;
  DSPARK_RETURN_IF_ERROR(BindArgs("range", args, {"start", "stop", "step"}, &a));
  int64_t start = 0, stop = 0, step = 1;
  if (a[0].is_undefined()) return ArgError("range", "expected at least 1 argument");
  for (const Value& v : a) {
    if (!v.is_undefined() && !v.is_int() && !v.is_bool()) {
      return ArgError("range", "arguments must be integers");
    }
  }
  if (a[1].is_undefined()) {
    stop = a[0].int_value();
  } else {
    start = a[0].int_value();
    stop = a[1].int_value();
    if (!a[2].is_undefined()) step = a[2].int_value();
  }
  if (step == 0) return ArgError("range", "arg 3 must not be zero");
  const __int128 span = step > 0 ? (__int128)stop - start : (__int128)start - stop;
  const __int128 astep = step > 0 ? step : -(__int128)step;
  const __int128 count = span <= 0 ? 0 : (span + astep - 1) / astep;
  if (count > (1 << 30)) return ev.budget().Charge(int64_t{1} << 62);
  DSPARK_RETURN_IF_ERROR(ev.budget().Charge(static_cast<int64_t>(count)));
  List items;
  items.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) items.push_back(Value::Int(start + i * step));
  return ev.arena().NewList(std::move(items));
}

// dict(**kw) and namespace(**kw), optionally seeded from a mapping.
absl::StatusOr<Value> MakeMapping(Evaluator& ev, CallArgs& args, bool ns) {
  Value out = ns ? ev.arena().NewNamespace() : ev.arena().NewDict();
  if (args.positional.size() > 1)
    return ArgError(ns ? "namespace" : "dict", "takes at most 1 positional argument");
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (!src.is_dict() && !src.is_namespace()) {
      return ArgError(ns ? "namespace" : "dict", "argument must be a mapping");
    }
    for (const auto& [k, v] : src.dict().items()) DSPARK_RETURN_IF_ERROR(out.dict().Set(k, v));
  }
  for (const auto& [k, v] : args.kwargs)
    DSPARK_RETURN_IF_ERROR(out.dict().Set(Value::String(k), v));
  return out;
}

}  // namespace

Value GetMethod(const Value& obj, std::string_view name) {
  const absl::flat_hash_map<std::string_view, Method>* table = nullptr;
  if (obj.is_string()) {
    table = &StringMethods();
  } else if (obj.is_dict()) {
    table = &DictMethods();
  } else if (obj.is_sequence()) {
    table = &ListMethods();
  }
  if (table == nullptr) return Value::Undefined("");
  const auto it = table->find(name);
  if (it == table->end()) return Value::Undefined("");
  const Method method = it->second;
  Value self = obj;
  return Value::Function(std::string(name), [method, self](Evaluator& ev, CallArgs& args) {
    return method(ev, self, args);
  });
}

std::vector<std::pair<std::string, Value>> GlobalFunctions() {
  std::vector<std::pair<std::string, Value>> g;
  g.emplace_back("range", Value::Function("range", Range));
  g.emplace_back("dict", Value::Function("dict", [](Evaluator& ev, CallArgs& a) {
                   return MakeMapping(ev, a, false);
                 }));
  g.emplace_back("namespace", Value::Function("namespace", [](Evaluator& ev, CallArgs& a) {
                   return MakeMapping(ev, a, true);
                 }));
  g.emplace_back("raise_exception",
                 Value::Function(
                     "raise_exception", [](Evaluator& ev, CallArgs& args) -> absl::StatusOr<Value> {
                       std::vector<Value> a;
                       DSPARK_RETURN_IF_ERROR(BindArgs("raise_exception", args, {"message"}, &a));
                       DSPARK_ASSIGN_OR_RETURN(std::string msg, ev.ToStr(a[0]));
                       return absl::InvalidArgumentError(Cat("raise_exception: ", msg));
                     }));
  g.emplace_back(
      "strftime_now",
      Value::Function("strftime_now", [](Evaluator& ev, CallArgs& args) -> absl::StatusOr<Value> {
        std::vector<Value> a;
        DSPARK_RETURN_IF_ERROR(BindArgs("strftime_now", args, {"format"}, &a));
        DSPARK_ASSIGN_OR_RETURN(std::string f, ReqStr("strftime_now", a[0]));
        return ev.MakeString(absl::FormatTime(f, ev.now(), absl::LocalTimeZone()));
      }));
  return g;
}

absl::Status BindArgs(std::string_view fn, const CallArgs& args,
                      const std::vector<std::string_view>& names, std::vector<Value>* out) {
  out->assign(names.size(), Value());
  if (args.positional.size() > names.size()) {
    return ArgError(fn, Cat("takes at most ", names.size(), " argument(s) (",
                            args.positional.size(), " given)"));
  }
  std::vector<bool> set(names.size(), false);
  for (size_t i = 0; i < args.positional.size(); ++i) {
    (*out)[i] = args.positional[i];
    set[i] = true;
  }
  for (const auto& [key, value] : args.kwargs) {
    const auto it = std::find(names.begin(), names.end(), key);
    if (it == names.end()) {
      return ArgError(fn, Cat("got an unexpected keyword argument '", key, "'"));
    }
    const size_t i = it - names.begin();
    if (set[i]) return ArgError(fn, Cat("got multiple values for argument '", key, "'"));
    (*out)[i] = value;
    set[i] = true;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PercentFormat(Evaluator& ev, std::string_view fmt, const Value& args) {
  std::vector<Value> values;
  if (args.kind() == Value::Kind::kTuple) {
    values = args.list();
  } else {
    values.push_back(args);
  }
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    size_t j = i + 1;
    bool left = false;
    while (j < fmt.size() && std::string_view("-+ #0").find(fmt[j]) != std::string_view::npos) {
      left |= fmt[j] == '-';
      ++j;
    }
    int64_t width = 0, prec = -1;
    while (j < fmt.size() && isdigit(static_cast<unsigned char>(fmt[j])) && width < 100000) {
      width = width * 10 + (fmt[j++] - '0');
    }
    if (j < fmt.size() && fmt[j] == '.') {
      ++j;
      prec = 0;
      while (j < fmt.size() && isdigit(static_cast<unsigned char>(fmt[j])) && prec < 100000) {
        prec = prec * 10 + (fmt[j++] - '0');
      }
    }
    if (j >= fmt.size()) return absl::InvalidArgumentError("incomplete format");
    const char type = fmt[j];
    const std::string spec(fmt.substr(i, j - i));
    if (spec.size() > 8) return absl::InvalidArgumentError("format spec too long");
    i = j;
    if (type == '%') {
      out.push_back('%');
      continue;
    }
    if (next >= values.size()) {
      return absl::InvalidArgumentError("not enough arguments for format string");
    }
    const Value& v = values[next++];
    char buf[512];
    if (type == 's' || type == 'r') {
      std::string s;
      if (type == 's') {
        DSPARK_ASSIGN_OR_RETURN(s, ev.ToStr(v));
      } else {
        DSPARK_RETURN_IF_ERROR(AppendRepr(v, ev.budget(), &s));
      }
      if (prec >= 0) {
        const std::u32string u = DecodeUtf8(s);
        if (static_cast<int64_t>(u.size()) > prec) s = EncodeUtf8(u.substr(0, prec));
      }
      const int64_t pad = std::max<int64_t>(0, width - CodePointCount(s));
      DSPARK_RETURN_IF_ERROR(ev.budget().CheckBytes(out.size() + s.size() + pad));
      if (!left) out.append(pad, ' ');
      out += s;
      if (left) out.append(pad, ' ');
    } else if (std::string_view("diouxXeEfFgG").find(type) != std::string_view::npos) {
      if (!v.is_number()) {
        return absl::InvalidArgumentError(Cat(
            "%", std::string(1, type), " format: a real number is required, not ", v.type_name()));
      }
      if (std::string_view("diouxX").find(type) != std::string_view::npos) {
        const long long n = v.is_float() ? static_cast<long long>(v.float_value()) : v.int_value();
        const char t = type == 'i' || type == 'u' ? 'd' : type;
        std::snprintf(buf, sizeof(buf), (spec + "ll" + t).c_str(), n);
      } else {
        std::snprintf(buf, sizeof(buf), (spec + type).c_str(), v.float_value());
      }
      out += buf;
    } else {
      return absl::InvalidArgumentError(
          Cat("unsupported format character '", std::string(1, type), "'"));
    }
    DSPARK_RETURN_IF_ERROR(ev.budget().CheckBytes(out.size()));
  }
  // Like CPython, lists and dicts (mappings) may go unused.
  if (next < values.size() && !args.is_dict() && args.kind() != Value::Kind::kList) {
    return absl::InvalidArgumentError("not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace dspark::tokenizer::jinja
