# Helpers that give every folder one target with a dspark:: alias.
#
#   dspark_cc_library(NAME engine_tensor SRCS a.cc HDRS a.h DEPS absl::status)
#     -> target dspark_engine_tensor, alias dspark::engine_tensor
#   dspark_cc_test(NAME gguf_test SRCS gguf_test.cc DEPS dspark::engine_model_file)
#   dspark_cc_binary(NAME dspark SRCS main.cc DEPS ...)

set(DSPARK_SOURCE_ROOT ${CMAKE_SOURCE_DIR})
set(DSPARK_DATA_DIR "${CMAKE_SOURCE_DIR}/../shared/data" CACHE PATH "Shared test data")

set(DSPARK_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers)
if(DSPARK_SANITIZE)
  add_compile_options(-fsanitize=${DSPARK_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=${DSPARK_SANITIZE})
endif()

function(dspark_cc_library)
  cmake_parse_arguments(A "" "NAME" "SRCS;HDRS;DEPS;COPTS" ${ARGN})
  set(target dspark_${A_NAME})
  if(A_SRCS)
    add_library(${target} STATIC ${A_SRCS} ${A_HDRS})
    target_include_directories(${target} PUBLIC ${DSPARK_SOURCE_ROOT})
    target_link_libraries(${target} PUBLIC ${A_DEPS})
    target_compile_options(${target} PRIVATE ${DSPARK_WARNINGS} ${A_COPTS})
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${DSPARK_SOURCE_ROOT})
    target_link_libraries(${target} INTERFACE ${A_DEPS})
  endif()
  add_library(dspark::${A_NAME} ALIAS ${target})
endfunction()

function(dspark_cc_binary)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS})
  target_compile_options(${A_NAME} PRIVATE ${DSPARK_WARNINGS})
endfunction()

# Tests get DSPARK_DATA_DIR (shared data, may be absent: tests skip) and
# DSPARK_SOURCE_DIR (committed fixtures under tests/).
function(dspark_cc_test)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${A_NAME} PRIVATE
    DSPARK_DATA_DIR="${DSPARK_DATA_DIR}" DSPARK_SOURCE_DIR="${DSPARK_SOURCE_ROOT}")
  target_compile_options(${A_NAME} PRIVATE ${DSPARK_WARNINGS})
  add_test(NAME ${A_NAME} COMMAND ${A_NAME})
  set_tests_properties(${A_NAME} PROPERTIES LABELS "unit;${A_LABELS}")
endfunction()
