#include "common/tokenizer/internal/jinja_eval.h"

#include <algorithm>
#include <utility>

#include "absl/strings/cord.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/internal/jinja_builtins.h"
#include "common/tokenizer/internal/jinja_json.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer::jinja {
namespace {

// Marks an error that already carries its template position.
constexpr char kLocatedPayload[] = "dspark.tokenizer.jinja/located";

}  // namespace

absl::Status NestingError() {
  return absl::ResourceExhaustedError(
      Cat("chat template evaluation nested deeper than ", kMaxEvalNesting, " levels"));
}

absl::Status Locate(absl::Status s, Pos p) {
  if (s.ok() || s.GetPayload(kLocatedPayload).has_value()) return s;
  absl::Status out(s.code(), Cat("line ", p.line, ":", p.col, ": ", s.message()));
  out.SetPayload(kLocatedPayload, absl::Cord("1"));
  return out;
}

Evaluator::Evaluator(const EvalLimits& limits, absl::Time now)
    : limits_(limits),
      now_(now),
      budget_(limits.max_steps, limits.max_output_bytes),
      arena_(&budget_) {}

absl::StatusOr<std::string> Evaluator::Render(const Body& body,
                                              const nlohmann::ordered_json& context) {
  if (!context.is_object() && !context.is_null()) {
    return absl::InvalidArgumentError("chat template context must be a JSON object");
  }
  auto globals = std::make_shared<Frame>();
  for (auto& [name, fn] : GlobalFunctions()) globals->vars[name] = std::move(fn);
  auto top = std::make_shared<Frame>();
  top->parent = globals;
  if (context.is_object()) {
    for (const auto& [key, value] : context.items()) {
      DSPARK_ASSIGN_OR_RETURN(Value v, FromJson(value, arena_));
      top->vars[key] = std::move(v);
    }
  }
  DSPARK_RETURN_IF_ERROR(budget_.Charge(0));
  std::string out;
  DSPARK_RETURN_IF_ERROR(Exec(body, top, &out));
  return out;
}

absl::Status Evaluator::Append(std::string_view text, std::string* out) {
  DSPARK_RETURN_IF_ERROR(budget_.CheckBytes(out->size() + text.size()));
  out->append(text);
  return absl::OkStatus();
}

absl::Status Evaluator::Exec(const Body& body, const std::shared_ptr<Frame>& frame,
                             std::string* out) {
  for (const StmtPtr& s : body) {
    DSPARK_RETURN_IF_ERROR(Locate(budget_.Charge(1), s->pos));
    DSPARK_RETURN_IF_ERROR(Locate(ExecStmt(*s, frame, out), s->pos));
    if (flow_ != Flow::kNormal) return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status Evaluator::ExecStmt(const Stmt& s, const std::shared_ptr<Frame>& frame,
                                 std::string* out) {
  NestingGuard guard(&nesting_);
  if (nesting_ > kMaxEvalNesting) return NestingError();
  switch (s.kind) {
    case Stmt::Kind::kText:
      return Append(s.text, out);
    case Stmt::Kind::kOutput: {
      DSPARK_ASSIGN_OR_RETURN(Value v, Eval(*s.expr, frame));
      if (v.is_string()) return Append(v.str(), out);
      DSPARK_ASSIGN_OR_RETURN(std::string text, ToStr(v));
      return Append(text, out);
    }
    case Stmt::Kind::kIf:
      for (const auto& [cond, body] : s.branches) {
        DSPARK_ASSIGN_OR_RETURN(Value c, Eval(*cond, frame));
        if (Truthy(c)) return Exec(body, frame, out);
      }
      return Exec(s.else_body, frame, out);
    case Stmt::Kind::kFor:
      return ExecFor(s, frame, out);
    case Stmt::Kind::kSet:
    case Stmt::Kind::kSetBlock:
      return ExecSet(s, frame, out);
    case Stmt::Kind::kMacro:
      frame->vars[s.text] = MakeMacro(s, frame);
      return absl::OkStatus();
    case Stmt::Kind::kCallBlock:
      return ExecCallBlock(s, frame, out);
    case Stmt::Kind::kFilterBlock: {
      std::string captured;
      DSPARK_RETURN_IF_ERROR(Exec(s.body, frame, &captured));
      DSPARK_ASSIGN_OR_RETURN(Value input, MakeString(std::move(captured)));
      Value saved = std::exchange(block_input_, input);
      absl::StatusOr<Value> v = Eval(*s.expr, frame);
      block_input_ = std::move(saved);
      if (!v.ok()) return v.status();
      DSPARK_ASSIGN_OR_RETURN(std::string text, ToStr(*v));
      return Append(text, out);
    }
    case Stmt::Kind::kWith: {
      auto inner = std::make_shared<Frame>();
      inner->parent = frame;
      for (size_t i = 0; i < s.targets.size(); ++i) {
        DSPARK_ASSIGN_OR_RETURN(Value v, Eval(*s.values[i], frame));
        inner->vars[s.targets[i]] = std::move(v);
      }
      return Exec(s.body, inner, out);
    }
    case Stmt::Kind::kBreak:
      flow_ = Flow::kBreak;
      return absl::OkStatus();
    case Stmt::Kind::kContinue:
      flow_ = Flow::kContinue;
      return absl::OkStatus();
    case Stmt::Kind::kDo:
      return Eval(*s.expr, frame).status();
  }
  return absl::OkStatus();
}

absl::Status Evaluator::Assign(Frame& frame, const std::vector<std::string>& targets,
                               const Value& v) {
  if (targets.size() == 1) {
    frame.vars[targets[0]] = v;
    return absl::OkStatus();
  }
  if (!v.is_sequence() && !v.is_string()) {
    return absl::InvalidArgumentError(Cat("cannot unpack non-iterable ", v.type_name(), " object"));
  }
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  if (items.size() != targets.size()) {
    return absl::InvalidArgumentError(
        Cat("cannot unpack ", items.size(), " values into ", targets.size(), " names"));
  }
  for (size_t i = 0; i < targets.size(); ++i) frame.vars[targets[i]] = items[i];
  return absl::OkStatus();
}

absl::Status Evaluator::ExecFor(const Stmt& s, const std::shared_ptr<Frame>& frame,
                                std::string* out) {
  DSPARK_ASSIGN_OR_RETURN(Value seq, Eval(*s.expr, frame));
  DSPARK_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(seq));
  if (s.cond) {
    std::vector<Value> kept;
    for (Value& item : items) {
      DSPARK_RETURN_IF_ERROR(budget_.Charge(1));
      auto scratch = std::make_shared<Frame>();
      scratch->parent = frame;
      DSPARK_RETURN_IF_ERROR(Assign(*scratch, s.targets, item));
      DSPARK_ASSIGN_OR_RETURN(Value keep, Eval(*s.cond, scratch));
      if (Truthy(keep)) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    auto inner = std::make_shared<Frame>();
    inner->parent = frame;
    return Exec(s.else_body, inner, out);
  }
  // One loop object per loop, updated in place like Jinja's LoopContext.
  Value loop = arena_.NewDict();
  Dict& ld = loop.dict();
  const int64_t n = static_cast<int64_t>(items.size());
  DSPARK_RETURN_IF_ERROR(ld.Set(Value::String("length"), Value::Int(n)));
  DSPARK_RETURN_IF_ERROR(ld.Set(Value::String("depth"), Value::Int(1)));
  DSPARK_RETURN_IF_ERROR(ld.Set(Value::String("depth0"), Value::Int(0)));
  for (int64_t i = 0; i < n; ++i) {
    DSPARK_RETURN_IF_ERROR(budget_.Charge(1));
    DSPARK_RETURN_IF_ERROR(ld.Set(Value::String("index"), Value::Int(i + 1)));
    DSPARK_RETURN_IF_ERROR(ld.Set(Value::String("index0"), Value::Int(i)));
    DSPARK_RETURN_IF_ERROR(ld.Set(Value::String("revindex"), Value::Int(n - i)));
    DSPARK_RETURN_IF_ERROR(ld.Set(Value::String("revindex0"), Value::Int(n - i - 1)));
    DSPARK_RETURN_IF_ERROR(ld.Set(Value::String("first"), Value::Bool(i == 0)));
    DSPARK_RETURN_IF_ERROR(ld.Set(Value::String("last"), Value::Bool(i == n - 1)));
    DSPARK_RETURN_IF_ERROR(
        ld.Set(Value::String("previtem"),
               i > 0 ? items[i - 1] : Value::Undefined("there is no previous item")));
    DSPARK_RETURN_IF_ERROR(
        ld.Set(Value::String("nextitem"),
               i + 1 < n ? items[i + 1] : Value::Undefined("there is no next item")));
    const int64_t index0 = i;
    DSPARK_RETURN_IF_ERROR(ld.Set(
        Value::String("cycle"),
        Value::Function("cycle", [index0](Evaluator&, CallArgs& args) -> absl::StatusOr<Value> {
          if (args.positional.empty()) {
            return absl::InvalidArgumentError("no items for cycling given");
          }
          return args.positional[index0 % args.positional.size()];
        })));
    auto inner = std::make_shared<Frame>();
    inner->parent = frame;
    DSPARK_RETURN_IF_ERROR(Assign(*inner, s.targets, items[i]));
    inner->vars["loop"] = loop;
    DSPARK_RETURN_IF_ERROR(Exec(s.body, inner, out));
    if (flow_ == Flow::kBreak) {
      flow_ = Flow::kNormal;
      break;
    }
    flow_ = Flow::kNormal;
  }
  return absl::OkStatus();
}

absl::Status Evaluator::ExecSet(const Stmt& s, const std::shared_ptr<Frame>& frame,
                                std::string* out) {
  Value v;
  if (s.kind == Stmt::Kind::kSet) {
    DSPARK_ASSIGN_OR_RETURN(v, Eval(*s.expr, frame));
  } else {
    std::string captured;
    DSPARK_RETURN_IF_ERROR(Exec(s.body, frame, &captured));
    DSPARK_ASSIGN_OR_RETURN(v, MakeString(std::move(captured)));
    if (s.expr) {
      Value saved = std::exchange(block_input_, v);
      absl::StatusOr<Value> filtered = Eval(*s.expr, frame);
      block_input_ = std::move(saved);
      if (!filtered.ok()) return filtered.status();
      v = *std::move(filtered);
    }
  }
  if (!s.text.empty()) {
    const Value ns = Lookup(*frame, s.targets[0]);
    if (!ns.is_namespace()) {
      return absl::InvalidArgumentError(
          Cat("cannot assign attribute on non-namespace object '", s.targets[0], "'"));
    }
    return ns.dict().Set(Value::String(s.text), std::move(v));
  }
  return Assign(*frame, s.targets, v);
}

absl::Status Evaluator::ExecCallBlock(const Stmt& s, const std::shared_ptr<Frame>& frame,
                                      std::string* out) {
  const Expr& call = *s.expr;
  DSPARK_ASSIGN_OR_RETURN(Value callee, Eval(*call.args[0], frame));
  CallArgs args;
  DSPARK_RETURN_IF_ERROR(EvalArgs(call, 1, frame, &args));
  const Stmt* block = &s;
  std::weak_ptr<Frame> scope = frame;
  args.kwargs.emplace_back("caller",
                           Value::Function("caller", [block, scope](Evaluator& ev, CallArgs& a) {
                             return ev.CallMacro(*block, scope, a, false);
                           }));
  DSPARK_ASSIGN_OR_RETURN(Value result, Call(callee, args));
  DSPARK_ASSIGN_OR_RETURN(std::string text, ToStr(result));
  return Append(text, out);
}

Value Evaluator::MakeMacro(const Stmt& macro, const std::shared_ptr<Frame>& frame) {
  const Stmt* m = &macro;
  std::weak_ptr<Frame> scope = frame;
  return Value::Function(macro.text, [m, scope](Evaluator& ev, CallArgs& args) {
    return ev.CallMacro(*m, scope, args, true);
  });
}

absl::StatusOr<Value> Evaluator::CallMacro(const Stmt& macro,
                                           const std::weak_ptr<Frame>& defined_in, CallArgs& args,
                                           bool allow_caller) {
  std::shared_ptr<Frame> parent = defined_in.lock();
  if (parent == nullptr) {
    return absl::InvalidArgumentError(Cat("macro '", macro.text, "' called after its scope ended"));
  }
  if (call_depth_ >= limits_.max_recursion_depth) {
    return absl::ResourceExhaustedError(
        Cat("chat template recursion deeper than max_recursion_depth (",
            limits_.max_recursion_depth, ")"));
  }
  auto frame = std::make_shared<Frame>();
  frame->parent = parent;
  std::vector<bool> kw_used(args.kwargs.size(), false);
  for (size_t i = 0; i < macro.params.size(); ++i) {
    const Param& p = macro.params[i];
    Value v;
    bool found = false;
    if (i < args.positional.size()) {
      v = args.positional[i];
      found = true;
    }
    for (size_t k = 0; !found && k < args.kwargs.size(); ++k) {
      if (args.kwargs[k].first == p.name) {
        v = args.kwargs[k].second;
        kw_used[k] = found = true;
      }
    }
    if (!found && p.default_value) {
      DSPARK_ASSIGN_OR_RETURN(v, Eval(*p.default_value, frame));
    } else if (!found) {
      v = Value::Undefined(Cat("parameter '", p.name, "' was not provided"));
    }
    frame->vars[p.name] = std::move(v);
  }
  List varargs;
  for (size_t i = macro.params.size(); i < args.positional.size(); ++i) {
    varargs.push_back(args.positional[i]);
  }
  frame->vars["varargs"] = arena_.NewList(std::move(varargs));
  Value kwargs = arena_.NewDict();
  for (size_t k = 0; k < args.kwargs.size(); ++k) {
    if (kw_used[k]) continue;
    if (args.kwargs[k].first == "caller" && allow_caller) {
      frame->vars["caller"] = args.kwargs[k].second;
    } else {
      DSPARK_RETURN_IF_ERROR(
          kwargs.dict().Set(Value::String(args.kwargs[k].first), args.kwargs[k].second));
    }
  }
  frame->vars["kwargs"] = kwargs;
  ++call_depth_;
  std::string out;
  absl::Status status = Exec(macro.body, frame, &out);
  --call_depth_;
  flow_ = Flow::kNormal;
  DSPARK_RETURN_IF_ERROR(status);
  return MakeString(std::move(out));
}

Value Evaluator::Lookup(const Frame& frame, const std::string& name) const {
  for (const Frame* f = &frame; f != nullptr; f = f->parent.get()) {
    const auto it = f->vars.find(name);
    if (it != f->vars.end()) return it->second;
  }
  return Value::Undefined(Cat("'", name, "' is undefined"));
}

}  // namespace dspark::tokenizer::jinja
