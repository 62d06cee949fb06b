#include "common/tokenizer/internal/jinja_parser.h"

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "common/base/status_macros.h"
#include "common/tokenizer/internal/jinja_expr_parser.h"
#include "common/tokenizer/internal/jinja_lexer.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer::jinja {
namespace {

using TK = Token::Kind;

class Parser : public ExprParser {
 public:
  using ExprParser::ExprParser;

  absl::StatusOr<Body> Run() {
    std::string end;
    return ParseBody({}, &end, Pos{}, "");
  }

 private:
  // Parses statements until one of `end_tags` opens a block tag; consumes
  // "{%" and the tag name and stores the name in *end.
  absl::StatusOr<Body> ParseBody(std::initializer_list<std::string_view> end_tags, std::string* end,
                                 Pos open, std::string_view construct) {
    Body body;
    while (true) {
      const Token& t = Peek();
      if (t.kind == TK::kEof) {
        if (end_tags.size() == 0) return body;
        return Error(t.pos, Cat("unexpected end of template: '", construct, "' opened at line ",
                                open.line, ":", open.col, " needs '", *(end_tags.end() - 1), "'"));
      }
      if (t.kind == TK::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->pos = t.pos;
        s->text = Next().text;
        body.push_back(std::move(s));
        continue;
      }
      if (t.kind == TK::kVarBegin) {
        const Pos pos = Next().pos;
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->pos = pos;
        DSPARK_ASSIGN_OR_RETURN(s->expr, ParseTuple(true, {}));
        if (Peek().kind != TK::kVarEnd) return Unexpected("end of print statement '}}'");
        Next();
        body.push_back(std::move(s));
        continue;
      }
      if (t.kind != TK::kBlockBegin) return Unexpected("template text or a tag");
      if (Peek(1).kind != TK::kName) {
        Next();
        return Unexpected("a statement name");
      }
      const std::string& name = Peek(1).text;
      for (std::string_view e : end_tags) {
        if (name == e) {
          Next();
          *end = Next().text;
          return body;
        }
      }
      const Pos pos = Next().pos;
      DSPARK_ASSIGN_OR_RETURN(StmtPtr s, ParseStatement(pos));
      body.push_back(std::move(s));
    }
  }

  absl::StatusOr<StmtPtr> ParseStatement(Pos pos) {
    DepthGuard guard(&depth_);
    if (depth_ > kMaxSyntaxDepth) return Error(pos, "statements nested too deeply");
    const Token& name_tok = Next();
    const std::string name = name_tok.text;
    auto s = std::make_unique<Stmt>();
    s->pos = pos;
    std::string end;
    if (name == "if") {
      s->kind = Stmt::Kind::kIf;
      while (true) {
        DSPARK_ASSIGN_OR_RETURN(ExprPtr cond, ParseExpression());
        DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
        DSPARK_ASSIGN_OR_RETURN(Body body, ParseBody({"elif", "else", "endif"}, &end, pos, "if"));
        s->branches.emplace_back(std::move(cond), std::move(body));
        if (end != "elif") break;
      }
      if (end == "else") {
        DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
        DSPARK_ASSIGN_OR_RETURN(s->else_body, ParseBody({"endif"}, &end, pos, "if"));
      }
    } else if (name == "for") {
      s->kind = Stmt::Kind::kFor;
      DSPARK_ASSIGN_OR_RETURN(s->targets, ParseTargets());
      if (!IsName("in")) return Unexpected("'in'");
      Next();
      DSPARK_ASSIGN_OR_RETURN(s->expr, ParseTuple(false, {"recursive"}));
      if (IsName("if")) {
        Next();
        DSPARK_ASSIGN_OR_RETURN(s->cond, ParseExpression());
      }
      if (IsName("recursive")) return Error(Peek().pos, "unsupported construct 'recursive' loop");
      DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
      ++loop_depth_;
      auto body = ParseBody({"else", "endfor"}, &end, pos, "for");
      --loop_depth_;
      if (!body.ok()) return body.status();
      s->body = std::move(*body);
      if (end == "else") {
        DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
        DSPARK_ASSIGN_OR_RETURN(s->else_body, ParseBody({"endfor"}, &end, pos, "for"));
      }
    } else if (name == "set") {
      DSPARK_ASSIGN_OR_RETURN(std::string target, ExpectName());
      s->targets.push_back(target);
      if (IsOp(".")) {
        Next();
        DSPARK_ASSIGN_OR_RETURN(s->text, ExpectName());
      } else {
        while (IsOp(",")) {
          Next();
          DSPARK_ASSIGN_OR_RETURN(std::string more, ExpectName());
          s->targets.push_back(more);
        }
      }
      if (IsOp("=")) {
        Next();
        s->kind = Stmt::Kind::kSet;
        DSPARK_ASSIGN_OR_RETURN(s->expr, ParseTuple(true, {}));
        return FinishSimple(std::move(s));
      }
      if (s->targets.size() != 1 || !s->text.empty()) return Unexpected("'='");
      s->kind = Stmt::Kind::kSetBlock;
      if (IsOp("|")) {
        DSPARK_ASSIGN_OR_RETURN(s->expr, ParseFilters(nullptr));
      }
      DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
      DSPARK_ASSIGN_OR_RETURN(s->body, ParseBody({"endset"}, &end, pos, "set"));
    } else if (name == "macro") {
      s->kind = Stmt::Kind::kMacro;
      DSPARK_ASSIGN_OR_RETURN(s->text, ExpectName());
      DSPARK_RETURN_IF_ERROR(ParseParams(&s->params));
      DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
      const int saved = loop_depth_;
      loop_depth_ = 0;
      auto body = ParseBody({"endmacro"}, &end, pos, "macro");
      loop_depth_ = saved;
      if (!body.ok()) return body.status();
      s->body = std::move(*body);
    } else if (name == "call") {
      s->kind = Stmt::Kind::kCallBlock;
      if (IsOp("(")) DSPARK_RETURN_IF_ERROR(ParseParams(&s->params));
      DSPARK_ASSIGN_OR_RETURN(s->expr, ParseExpression());
      if (s->expr->kind != Expr::Kind::kCall) return Error(s->expr->pos, "expected a call");
      DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
      DSPARK_ASSIGN_OR_RETURN(s->body, ParseBody({"endcall"}, &end, pos, "call"));
    } else if (name == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      DSPARK_ASSIGN_OR_RETURN(s->expr, ParseFilters(nullptr, /*leading_pipe=*/false));
      DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
      DSPARK_ASSIGN_OR_RETURN(s->body, ParseBody({"endfilter"}, &end, pos, "filter"));
    } else if (name == "with") {
      s->kind = Stmt::Kind::kWith;
      while (Peek().kind != TK::kBlockEnd) {
        if (!s->targets.empty()) DSPARK_RETURN_IF_ERROR(ExpectOp(","));
        DSPARK_ASSIGN_OR_RETURN(std::string target, ExpectName());
        DSPARK_RETURN_IF_ERROR(ExpectOp("="));
        DSPARK_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression());
        s->targets.push_back(target);
        s->values.push_back(std::move(value));
      }
      DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
      DSPARK_ASSIGN_OR_RETURN(s->body, ParseBody({"endwith"}, &end, pos, "with"));
    } else if (name == "generation") {
      // Hugging Face's assistant-mask extension: renders its body in a scope.
      s->kind = Stmt::Kind::kWith;
      DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
      DSPARK_ASSIGN_OR_RETURN(s->body, ParseBody({"endgeneration"}, &end, pos, "generation"));
    } else if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) return Error(pos, Cat("'", name, "' outside of a loop"));
      s->kind = name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      return FinishSimple(std::move(s));
    } else if (name == "do") {
      s->kind = Stmt::Kind::kDo;
      DSPARK_ASSIGN_OR_RETURN(s->expr, ParseTuple(true, {}));
      return FinishSimple(std::move(s));
    } else if (name.rfind("end", 0) == 0 || name == "elif" || name == "else") {
      return Error(name_tok.pos, Cat("unexpected '", name, "'"));
    } else {
      return Error(name_tok.pos, Cat("unsupported tag '", name, "'"));
    }
    DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
    return s;
  }

  absl::StatusOr<StmtPtr> FinishSimple(StmtPtr s) {
    DSPARK_RETURN_IF_ERROR(ExpectBlockEnd());
    return s;
  }

  // "a", "a, b" or "(a, b)".
  absl::StatusOr<std::vector<std::string>> ParseTargets() {
    const bool paren = IsOp("(");
    if (paren) Next();
    std::vector<std::string> names;
    do {
      if (!names.empty()) Next();
      if (paren && IsOp(")")) break;
      DSPARK_ASSIGN_OR_RETURN(std::string n, ExpectName());
      names.push_back(n);
    } while (IsOp(","));
    if (paren) DSPARK_RETURN_IF_ERROR(ExpectOp(")"));
    return names;
  }

  absl::Status ParseParams(std::vector<Param>* params) {
    DSPARK_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (!params->empty()) DSPARK_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp(")")) break;
      Param p;
      DSPARK_ASSIGN_OR_RETURN(p.name, ExpectName());
      if (IsOp("=")) {
        Next();
        DSPARK_ASSIGN_OR_RETURN(p.default_value, ParseExpression());
      }
      params->push_back(std::move(p));
    }
    Next();
    return absl::OkStatus();
  }

  // Loops enclosing the current statement (break/continue are only valid
  // inside one; a macro body starts from zero).
  int loop_depth_ = 0;
};

}  // namespace

absl::StatusOr<Body> ParseTemplate(std::string_view source) {
  DSPARK_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(source));
  return Parser(std::move(tokens)).Run();
}

}  // namespace dspark::tokenizer::jinja
