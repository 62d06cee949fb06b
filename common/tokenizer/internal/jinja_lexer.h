// Tokenizer for Jinja templates, configured as Hugging Face renders chat
// templates: trim_blocks and lstrip_blocks on, keep_trailing_newline off,
// "-"/"+" whitespace control, comments dropped, {% raw %} kept verbatim.
// Pure function; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/internal/jinja_ast.h"

namespace dspark::tokenizer::jinja {

struct Token {
  enum class Kind {
    kText,        // literal template text (after whitespace control)
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,  // decoded value in `text`
    kInt,
    kFloat,
    kOp,  // operator or bracket, in `text`
    kEof,
  };
  Kind kind;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  Pos pos;
};

// Syntax errors are InvalidArgument "line L:C: message".
absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source);

}  // namespace dspark::tokenizer::jinja
