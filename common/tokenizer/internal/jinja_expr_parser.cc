#include "common/tokenizer/internal/jinja_expr_parser.h"

#include <utility>

#include "common/base/status_macros.h"
#include "common/tokenizer/internal/jinja_builtins.h"

namespace dspark::tokenizer::jinja {
namespace {

using TK = Token::Kind;

ExprPtr MakeExprImpl(Expr::Kind kind, Pos pos, std::string name) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->pos = pos;
  e->name = std::move(name);
  return e;
}

ExprPtr MakeLiteral(Value v, Pos pos) {
  ExprPtr e = MakeExprImpl(Expr::Kind::kLiteral, pos, "");
  e->literal = std::move(v);
  return e;
}

std::string Describe(const Token& t) {
  switch (t.kind) {
    case TK::kText:
      return "template text";
    case TK::kVarBegin:
      return "'{{'";
    case TK::kVarEnd:
      return "'}}'";
    case TK::kBlockBegin:
      return "'{%'";
    case TK::kBlockEnd:
      return "'%}'";
    case TK::kString:
      return "string literal";
    case TK::kEof:
      return "end of template";
    default:
      return Cat("'", t.text, "'");
  }
}

}  // namespace

ExprPtr MakeExpr(Expr::Kind kind, Pos pos, std::string name) {
  return MakeExprImpl(kind, pos, std::move(name));
}

absl::StatusOr<ExprPtr> ExprParser::Seal(ExprPtr e) const {
  int depth = 0;
  for (const ExprPtr& a : e->args) {
    if (a) depth = std::max(depth, a->depth);
  }
  for (const auto& [name, v] : e->kwargs) depth = std::max(depth, v->depth);
  e->depth = depth + 1;
  if (e->depth > kMaxExprDepth) return Error(e->pos, "expression nested too deeply");
  return e;
}

absl::Status ExprParser::Unexpected(std::string_view expected) const {
  return Error(Peek().pos, Cat("unexpected ", Describe(Peek()), ", expected ", expected));
}

// Jinja's parse_tuple: one expression, or a tuple when commas follow.
absl::StatusOr<ExprPtr> ExprParser::ParseTuple(bool with_condexpr,
                                               std::initializer_list<std::string_view> extra_end,
                                               bool explicit_parens) {
  const Pos pos = Peek().pos;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  auto at_end = [&] {
    const Token& t = Peek();
    if (t.kind == TK::kVarEnd || t.kind == TK::kBlockEnd || t.kind == TK::kEof) return true;
    if (IsOp(")")) return true;
    for (std::string_view e : extra_end) {
      if (IsName(e)) return true;
    }
    return false;
  };
  while (true) {
    if (!items.empty()) DSPARK_RETURN_IF_ERROR(ExpectOp(","));
    if (at_end()) break;
    DSPARK_ASSIGN_OR_RETURN(ExprPtr e, with_condexpr ? ParseExpression() : ParseOr());
    items.push_back(std::move(e));
    if (IsOp(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) return Unexpected("an expression");
  }
  ExprPtr t = MakeExpr(Expr::Kind::kTuple, pos);
  t->args = std::move(items);
  return Seal(std::move(t));
}

absl::StatusOr<ExprPtr> ExprParser::ParseExpression() {
  DepthGuard guard(&depth_);
  if (depth_ > kMaxSyntaxDepth) return Error(Peek().pos, "expression nested too deeply");
  DSPARK_ASSIGN_OR_RETURN(ExprPtr expr, ParseOr());
  while (IsName("if")) {
    const Pos pos = Next().pos;
    ExprPtr c = MakeExpr(Expr::Kind::kConditional, pos);
    DSPARK_ASSIGN_OR_RETURN(ExprPtr cond, ParseOr());
    c->args.push_back(std::move(cond));
    c->args.push_back(std::move(expr));
    if (IsName("else")) {
      Next();
      DSPARK_ASSIGN_OR_RETURN(ExprPtr otherwise, ParseExpression());
      c->args.push_back(std::move(otherwise));
    } else {
      c->args.push_back(nullptr);
    }
    DSPARK_ASSIGN_OR_RETURN(expr, Seal(std::move(c)));
  }
  return expr;
}

absl::StatusOr<ExprPtr> ExprParser::ParseBinaryChain(Expr::Kind kind, std::string_view word,
                                                     absl::StatusOr<ExprPtr> (ExprParser::*sub)()) {
  DSPARK_ASSIGN_OR_RETURN(ExprPtr left, (this->*sub)());
  while (IsName(word)) {
    const Pos pos = Next().pos;
    DSPARK_ASSIGN_OR_RETURN(ExprPtr right, (this->*sub)());
    ExprPtr e = MakeExpr(kind, pos);
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(right));
    DSPARK_ASSIGN_OR_RETURN(left, Seal(std::move(e)));
  }
  return left;
}

absl::StatusOr<ExprPtr> ExprParser::ParseOr() {
  return ParseBinaryChain(Expr::Kind::kOr, "or", &ExprParser::ParseAnd);
}
absl::StatusOr<ExprPtr> ExprParser::ParseAnd() {
  return ParseBinaryChain(Expr::Kind::kAnd, "and", &ExprParser::ParseNot);
}

absl::StatusOr<ExprPtr> ExprParser::ParseNot() {
  if (IsName("not")) {
    DepthGuard guard(&depth_);
    if (depth_ > kMaxSyntaxDepth) return Error(Peek().pos, "expression nested too deeply");
    ExprPtr e = MakeExpr(Expr::Kind::kNot, Next().pos);
    DSPARK_ASSIGN_OR_RETURN(ExprPtr inner, ParseNot());
    e->args.push_back(std::move(inner));
    return Seal(std::move(e));
  }
  return ParseCompare();
}

absl::StatusOr<ExprPtr> ExprParser::ParseCompare() {
  const Pos pos = Peek().pos;
  DSPARK_ASSIGN_OR_RETURN(ExprPtr first, ParseMath1());
  ExprPtr cmp;
  while (true) {
    std::string op;
    const Token& t = Peek();
    if (t.kind == TK::kOp && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" ||
                              t.text == ">" || t.text == ">=")) {
      op = t.text;
      Next();
    } else if (IsName("in")) {
      op = "in";
      Next();
    } else if (IsName("not") && IsName("in", 1)) {
      op = "notin";
      Next();
      Next();
    } else {
      break;
    }
    if (!cmp) {
      cmp = MakeExpr(Expr::Kind::kCompare, pos);
      cmp->args.push_back(std::move(first));
    }
    DSPARK_ASSIGN_OR_RETURN(ExprPtr rhs, ParseMath1());
    cmp->ops.push_back(op);
    cmp->args.push_back(std::move(rhs));
  }
  if (cmp) return Seal(std::move(cmp));
  return first;
}

absl::StatusOr<ExprPtr> ExprParser::ParseBinaryOps(std::initializer_list<std::string_view> ops,
                                                   absl::StatusOr<ExprPtr> (ExprParser::*sub)()) {
  DSPARK_ASSIGN_OR_RETURN(ExprPtr left, (this->*sub)());
  while (true) {
    std::string_view op;
    for (std::string_view o : ops) {
      if (IsOp(o)) op = o;
    }
    if (op.empty()) return left;
    const Pos pos = Next().pos;
    DSPARK_ASSIGN_OR_RETURN(ExprPtr right, (this->*sub)());
    ExprPtr e = MakeExpr(Expr::Kind::kBinary, pos, std::string(op));
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(right));
    DSPARK_ASSIGN_OR_RETURN(left, Seal(std::move(e)));
  }
}

absl::StatusOr<ExprPtr> ExprParser::ParseMath1() {
  return ParseBinaryOps({"+", "-"}, &ExprParser::ParseConcat);
}

absl::StatusOr<ExprPtr> ExprParser::ParseConcat() {
  return ParseBinaryOps({"~"}, &ExprParser::ParseMath2);
}

absl::StatusOr<ExprPtr> ExprParser::ParseMath2() {
  return ParseBinaryOps({"*", "/", "//", "%"}, &ExprParser::ParsePow);
}

absl::StatusOr<ExprPtr> ExprParser::ParsePow() {
  return ParseBinaryOps({"**"}, &ExprParser::ParseUnaryFiltered);
}

absl::StatusOr<ExprPtr> ExprParser::ParseUnaryFiltered() { return ParseUnary(true); }

absl::StatusOr<ExprPtr> ExprParser::ParseUnary(bool with_filter) {
  DepthGuard guard(&depth_);
  if (depth_ > kMaxSyntaxDepth) return Error(Peek().pos, "expression nested too deeply");
  ExprPtr node;
  if (IsOp("-") || IsOp("+")) {
    const Token& t = Next();
    node = MakeExpr(t.text == "-" ? Expr::Kind::kNeg : Expr::Kind::kPos, t.pos);
    DSPARK_ASSIGN_OR_RETURN(ExprPtr inner, ParseUnary(false));
    node->args.push_back(std::move(inner));
    DSPARK_ASSIGN_OR_RETURN(node, Seal(std::move(node)));
  } else {
    DSPARK_ASSIGN_OR_RETURN(node, ParsePrimary());
    DSPARK_ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
  }
  if (!with_filter) return node;
  return ParseFilterExpr(std::move(node));
}

absl::StatusOr<ExprPtr> ExprParser::ParsePrimary() {
  const Token& t = Peek();
  switch (t.kind) {
    case TK::kName: {
      Next();
      if (t.text == "true" || t.text == "True") return MakeLiteral(Value::Bool(true), t.pos);
      if (t.text == "false" || t.text == "False") return MakeLiteral(Value::Bool(false), t.pos);
      if (t.text == "none" || t.text == "None") return MakeLiteral(Value::None(), t.pos);
      return MakeExpr(Expr::Kind::kName, t.pos, t.text);
    }
    case TK::kString: {
      std::string s;
      const Pos pos = t.pos;
      while (Peek().kind == TK::kString) s += Next().text;
      return MakeLiteral(Value::String(std::move(s)), pos);
    }
    case TK::kInt:
      Next();
      return MakeLiteral(Value::Int(t.int_value), t.pos);
    case TK::kFloat:
      Next();
      return MakeLiteral(Value::Float(t.float_value), t.pos);
    case TK::kOp:
      if (t.text == "(") {
        Next();
        DSPARK_ASSIGN_OR_RETURN(ExprPtr e, ParseTuple(true, {}, /*explicit_parens=*/true));
        DSPARK_RETURN_IF_ERROR(ExpectOp(")"));
        return e;
      }
      if (t.text == "[" || t.text == "{") {
        const bool is_list = t.text == "[";
        const Pos pos = Next().pos;
        ExprPtr e = MakeExpr(is_list ? Expr::Kind::kList : Expr::Kind::kDict, pos);
        const std::string_view close = is_list ? "]" : "}";
        while (!IsOp(close)) {
          if (!e->args.empty()) DSPARK_RETURN_IF_ERROR(ExpectOp(","));
          if (IsOp(close)) break;
          DSPARK_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression());
          e->args.push_back(std::move(item));
          if (!is_list) {
            DSPARK_RETURN_IF_ERROR(ExpectOp(":"));
            DSPARK_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression());
            e->args.push_back(std::move(value));
          }
        }
        Next();
        return Seal(std::move(e));
      }
      break;
    default:
      break;
  }
  return Unexpected("an expression");
}

absl::StatusOr<ExprPtr> ExprParser::ParsePostfix(ExprPtr node) {
  while (true) {
    if (IsOp(".")) {
      const Pos pos = Next().pos;
      const Token& t = Next();
      if (t.kind == TK::kName) {
        ExprPtr e = MakeExpr(Expr::Kind::kGetAttr, pos, t.text);
        e->args.push_back(std::move(node));
        DSPARK_ASSIGN_OR_RETURN(node, Seal(std::move(e)));
      } else if (t.kind == TK::kInt) {
        ExprPtr e = MakeExpr(Expr::Kind::kGetItem, pos);
        e->args.push_back(std::move(node));
        e->args.push_back(MakeLiteral(Value::Int(t.int_value), t.pos));
        DSPARK_ASSIGN_OR_RETURN(node, Seal(std::move(e)));
      } else {
        return Error(t.pos, Cat("unexpected ", Describe(t), " after '.'"));
      }
    } else if (IsOp("[")) {
      DSPARK_ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node)));
    } else if (IsOp("(")) {
      DSPARK_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
    } else {
      return node;
    }
  }
}

absl::StatusOr<ExprPtr> ExprParser::ParseSubscript(ExprPtr node) {
  const Pos pos = Next().pos;
  std::vector<ExprPtr> keys;  // a[x, y] indexes with the tuple (x, y)
  ExprPtr parts[3];           // start:stop:step, or parts[0] alone
  bool is_slice = false;
  while (true) {
    int part = 0;
    while (!IsOp("]") && !IsOp(",")) {
      if (IsOp(":")) {
        Next();
        is_slice = true;
        if (++part > 2) return Unexpected("']'");
        continue;
      }
      if (parts[part]) return Unexpected(is_slice ? "':' or ']'" : "']'");
      DSPARK_ASSIGN_OR_RETURN(parts[part], ParseExpression());
    }
    if (!is_slice && !parts[0]) return Unexpected("an expression");
    if (is_slice && (!keys.empty() || IsOp(","))) {
      return Error(pos, "unsupported construct: slice in a tuple index");
    }
    if (IsOp("]")) break;
    Next();  // ","
    keys.push_back(std::move(parts[0]));
  }
  Next();  // "]"
  if (!keys.empty()) {
    keys.push_back(std::move(parts[0]));
    ExprPtr tuple = MakeExpr(Expr::Kind::kTuple, pos);
    tuple->args = std::move(keys);
    DSPARK_ASSIGN_OR_RETURN(parts[0], Seal(std::move(tuple)));
  }
  ExprPtr e = MakeExpr(is_slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, pos);
  e->args.push_back(std::move(node));
  e->args.push_back(std::move(parts[0]));
  if (is_slice) {
    e->args.push_back(std::move(parts[1]));
    e->args.push_back(std::move(parts[2]));
  }
  return Seal(std::move(e));
}

absl::Status ExprParser::ParseCallArgs(Expr* e) {
  DSPARK_RETURN_IF_ERROR(ExpectOp("("));
  bool first = true;
  while (!IsOp(")")) {
    if (!first) DSPARK_RETURN_IF_ERROR(ExpectOp(","));
    first = false;
    if (IsOp(")")) break;
    if (IsOp("*") || IsOp("**")) return Error(Peek().pos, "unsupported construct '*args'");
    if (Peek().kind == TK::kName && IsOp("=", 1)) {
      std::string key = Next().text;
      Next();
      DSPARK_ASSIGN_OR_RETURN(ExprPtr v, ParseExpression());
      e->kwargs.emplace_back(std::move(key), std::move(v));
    } else {
      if (!e->kwargs.empty()) return Error(Peek().pos, "positional argument after keyword");
      DSPARK_ASSIGN_OR_RETURN(ExprPtr v, ParseExpression());
      e->args.push_back(std::move(v));
    }
  }
  Next();
  return absl::OkStatus();
}

absl::StatusOr<ExprPtr> ExprParser::ParseCall(ExprPtr callee) {
  ExprPtr e = MakeExpr(Expr::Kind::kCall, callee->pos);
  e->args.push_back(std::move(callee));
  DSPARK_RETURN_IF_ERROR(ParseCallArgs(e.get()));
  return Seal(std::move(e));
}

absl::StatusOr<std::string> ExprParser::ParseDottedName() {
  DSPARK_ASSIGN_OR_RETURN(std::string name, ExpectName());
  while (IsOp(".")) {
    Next();
    DSPARK_ASSIGN_OR_RETURN(std::string part, ExpectName());
    CatAppend(&name, ".", part);
  }
  return name;
}

// "| f(args) | g" applied to `node` (null: the body of a filter block).
absl::StatusOr<ExprPtr> ExprParser::ParseFilters(ExprPtr node, bool leading_pipe) {
  do {
    if (leading_pipe) Next();
    leading_pipe = true;
    const Pos pos = Peek().pos;
    DSPARK_ASSIGN_OR_RETURN(std::string name, ParseDottedName());
    if (!IsKnownFilter(name)) {
      return Error(pos, Cat("unsupported filter '", name, "'"));
    }
    ExprPtr f = MakeExpr(Expr::Kind::kFilter, pos, name);
    f->args.push_back(std::move(node));
    if (IsOp("(")) DSPARK_RETURN_IF_ERROR(ParseCallArgs(f.get()));
    DSPARK_ASSIGN_OR_RETURN(node, Seal(std::move(f)));
  } while (IsOp("|"));
  return node;
}

absl::StatusOr<ExprPtr> ExprParser::ParseFilterExpr(ExprPtr node) {
  while (true) {
    if (IsOp("|")) {
      DSPARK_ASSIGN_OR_RETURN(node, ParseFilters(std::move(node)));
    } else if (IsName("is")) {
      DSPARK_ASSIGN_OR_RETURN(node, ParseTest(std::move(node)));
    } else if (IsOp("(")) {
      DSPARK_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
    } else {
      return node;
    }
  }
}

absl::StatusOr<ExprPtr> ExprParser::ParseTest(ExprPtr node) {
  Next();  // "is"
  bool negated = false;
  if (IsName("not")) {
    Next();
    negated = true;
  }
  const Pos pos = Peek().pos;
  std::string name;
  if (Peek().kind == TK::kOp &&
      (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp("<=") || IsOp(">") || IsOp(">="))) {
    name = Next().text;
  } else {
    DSPARK_ASSIGN_OR_RETURN(name, ParseDottedName());
  }
  if (!IsKnownTest(name)) return Error(pos, Cat("unsupported test '", name, "'"));
  ExprPtr t = MakeExpr(Expr::Kind::kTest, pos, name);
  t->negated = negated;
  t->args.push_back(std::move(node));
  const Token& next = Peek();
  if (IsOp("(")) {
    DSPARK_RETURN_IF_ERROR(ParseCallArgs(t.get()));
  } else if ((next.kind == TK::kName || next.kind == TK::kString || next.kind == TK::kInt ||
              next.kind == TK::kFloat || IsOp("[") || IsOp("{")) &&
             !IsName("else") && !IsName("or") && !IsName("and")) {
    if (IsName("is")) return Error(next.pos, "cannot chain multiple tests with 'is'");
    DSPARK_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
    DSPARK_ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
    t->args.push_back(std::move(arg));
  }
  return Seal(std::move(t));
}

std::vector<Token> t_;
size_t i_ = 0;
int depth_ = 0;
int loop_depth_ = 0;
}  // namespace dspark::tokenizer::jinja
