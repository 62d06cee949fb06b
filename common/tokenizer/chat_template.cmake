# Chat template renderer: a small Jinja2 interpreter (internal/jinja_*) behind
# common/tokenizer/chat_template.h. Included from this folder's CMakeLists.txt.
dspark_cc_library(NAME chat_template
  SRCS
    ${CMAKE_CURRENT_LIST_DIR}/chat_template.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_eval.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_expr.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_expr_parser.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_filters.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_json.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_lexer.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_methods.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_parser.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_tests.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_text.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_value.cc
  HDRS
    ${CMAKE_CURRENT_LIST_DIR}/chat_template.h
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_ast.h
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_builtins.h
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_eval.h
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_expr_parser.h
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_json.h
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_lexer.h
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_parser.h
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_text.h
    ${CMAKE_CURRENT_LIST_DIR}/internal/jinja_value.h
  DEPS
    dspark::base
    absl::cord
    absl::flat_hash_map
    absl::flat_hash_set
    absl::status
    absl::statusor
    absl::str_format
    absl::strings
    absl::time
    nlohmann_json::nlohmann_json)
