// Expression half of the Jinja parser: a token stream plus Jinja2's
// expression grammar and precedence (or, and, not, comparisons, + -, ~,
// * / // %, **, unary, filters and tests, postfix). The statement parser
// (jinja_parser.cc) derives from it. Not thread-safe; one per parse.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/internal/jinja_ast.h"
#include "common/tokenizer/internal/jinja_lexer.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer::jinja {

// Deepest nesting of statements or expressions the parser accepts, so that
// parsing and rendering never exhaust the stack.
inline constexpr int kMaxSyntaxDepth = 100;
// Tallest expression tree (a + b + c ... is as tall as it is long).
inline constexpr int kMaxExprDepth = 256;

ExprPtr MakeExpr(Expr::Kind kind, Pos pos, std::string name = "");

class ExprParser {
 public:
  explicit ExprParser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

 protected:
  using TK = Token::Kind;

  // Guards recursion depth for nested statements and expressions.
  class DepthGuard {
   public:
    explicit DepthGuard(int* depth) : depth_(depth) { ++*depth_; }
    ~DepthGuard() { --*depth_; }

   private:
    int* depth_;
  };

  const Token& Peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& Next() {
    const Token& t = Peek();
    if (i_ < t_.size() - 1) ++i_;
    return t;
  }
  bool IsOp(std::string_view op, size_t k = 0) const {
    return Peek(k).kind == TK::kOp && Peek(k).text == op;
  }
  bool IsName(std::string_view name, size_t k = 0) const {
    return Peek(k).kind == TK::kName && Peek(k).text == name;
  }
  absl::Status Error(Pos p, std::string_view msg) const {
    return absl::InvalidArgumentError(Cat("line ", p.line, ":", p.col, ": ", msg));
  }
  absl::Status Unexpected(std::string_view expected) const;
  absl::Status ExpectOp(std::string_view op) {
    if (!IsOp(op)) return Unexpected(Cat("'", op, "'"));
    Next();
    return absl::OkStatus();
  }
  absl::Status ExpectBlockEnd() {
    if (Peek().kind != TK::kBlockEnd) return Unexpected("end of statement '%}'");
    Next();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Peek().kind != TK::kName) return Unexpected("a name");
    return Next().text;
  }

  // Sets e->depth from its children; error beyond kMaxExprDepth.
  absl::StatusOr<ExprPtr> Seal(ExprPtr e) const;

  // Jinja's parse_tuple: one expression, or a tuple when commas follow.
  absl::StatusOr<ExprPtr> ParseTuple(bool with_condexpr,
                                     std::initializer_list<std::string_view> extra_end,
                                     bool explicit_parens = false);
  absl::StatusOr<ExprPtr> ParseExpression();
  absl::StatusOr<ExprPtr> ParseBinaryChain(Expr::Kind kind, std::string_view word,
                                           absl::StatusOr<ExprPtr> (ExprParser::*sub)());
  absl::StatusOr<ExprPtr> ParseOr();
  absl::StatusOr<ExprPtr> ParseAnd();
  absl::StatusOr<ExprPtr> ParseNot();
  absl::StatusOr<ExprPtr> ParseCompare();
  absl::StatusOr<ExprPtr> ParseBinaryOps(std::initializer_list<std::string_view> ops,
                                         absl::StatusOr<ExprPtr> (ExprParser::*sub)());
  absl::StatusOr<ExprPtr> ParseMath1();
  absl::StatusOr<ExprPtr> ParseConcat();
  absl::StatusOr<ExprPtr> ParseMath2();
  absl::StatusOr<ExprPtr> ParsePow();
  absl::StatusOr<ExprPtr> ParseUnaryFiltered();
  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter);
  absl::StatusOr<ExprPtr> ParsePrimary();
  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr node);
  absl::Status ParseCallArgs(Expr* e);
  absl::StatusOr<ExprPtr> ParseCall(ExprPtr callee);
  absl::StatusOr<std::string> ParseDottedName();
  absl::StatusOr<ExprPtr> ParseFilters(ExprPtr node, bool leading_pipe = true);
  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseTest(ExprPtr node);

  int depth_ = 0;

 private:
  std::vector<Token> t_;
  size_t i_ = 0;
};

}  // namespace dspark::tokenizer::jinja
