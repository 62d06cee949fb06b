// Syntax tree of a parsed Jinja template. Built once by the parser and never
// modified afterwards, so one tree may be rendered from many threads.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/tokenizer/internal/jinja_value.h"

namespace dspark::tokenizer::jinja {

// 1-based position in the (newline-normalised) template source.
struct Pos {
  int line = 0;
  int col = 0;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,      // literal: None/bool/int/float/str
    kName,         // name
    kList,         // args: items
    kTuple,        // args: items
    kDict,         // args: key0, value0, key1, value1, ...
    kGetAttr,      // args[0].name
    kGetItem,      // args[0][args[1]]
    kSlice,        // args[0][args[1]:args[2]:args[3]] (null parts omitted)
    kCall,         // args[0](args[1:], kwargs)
    kFilter,       // args[0] | name(args[1:], kwargs); args[0] null in filter blocks
    kTest,         // args[0] is [not] name(args[1:]); `negated`
    kNot,          // not args[0]
    kNeg,          // -args[0]
    kPos,          // +args[0]
    kBinary,       // args[0] <name> args[1]: + - * / // % ** ~
    kAnd,          // args[0] and args[1]
    kOr,           // args[0] or args[1]
    kCompare,      // args[0] ops[0] args[1] ops[1] args[2] ... (chained)
    kConditional,  // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  Pos pos;
  std::string name;  // identifier, attribute, filter/test name or operator
  Value literal;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare: "==", "!=", "<", "<=", ">", ">=", "in", "notin"
  bool negated = false;
  int depth = 1;  // height of this subtree (the parser bounds it)
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Macro / call-block parameter with optional default.
struct Param {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Stmt {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // branches (cond, body); else_body
    kFor,          // for targets in expr [if cond]: body else: else_body
    kSet,          // set targets (or ns.attr) = expr
    kSetBlock,     // set targets[0] [| filter]: body
    kMacro,        // macro name(params): body
    kCallBlock,    // call(params) expr: body
    kFilterBlock,  // filter <filter>: body
    kWith,         // with targets[i] = values[i]: body
    kBreak,
    kContinue,
    kDo,  // do expr
  };
  Kind kind;
  Pos pos;
  std::string text;                  // kText; kMacro name; kSet namespace attribute
  ExprPtr expr;                      // output / iterable / value / call / filter chain
  ExprPtr cond;                      // kFor filter condition
  std::vector<std::string> targets;  // assigned names
  std::vector<ExprPtr> values;       // kWith values
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<Param> params;
};

}  // namespace dspark::tokenizer::jinja
