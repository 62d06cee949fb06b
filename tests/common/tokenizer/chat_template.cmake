# Tests of the chat template renderer (common/tokenizer/chat_template.h).
# Included from this folder's CMakeLists.txt.
dspark_cc_test(NAME chat_template_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/chat_template_test.cc
  DEPS dspark::chat_template dspark::base absl::strings absl::time nlohmann_json::nlohmann_json)
