// Recursive-descent parser from Jinja source to a syntax tree, following
// Jinja2's grammar and operator precedence. Unknown tags, filters and tests
// are rejected here, like Jinja2 does at compile time. Pure function;
// thread-safe.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "common/tokenizer/internal/jinja_ast.h"

namespace dspark::tokenizer::jinja {

// Syntax errors are InvalidArgument "line L:C: message".
absl::StatusOr<Body> ParseTemplate(std::string_view source);

}  // namespace dspark::tokenizer::jinja
