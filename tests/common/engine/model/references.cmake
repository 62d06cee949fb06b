# Reference tests of the model against transformers and llama.cpp
# (fixtures under testdata/, made by tools/make_references.py and
# tools/make_tiny_hf_models.py). reference_test skips models not pulled.
dspark_cc_test(NAME reference_test
  SRCS reference_test.cc
  DEPS dspark::engine_model nlohmann_json::nlohmann_json LABELS model)
dspark_cc_test(NAME hf_tiny_test
  SRCS hf_tiny_test.cc
  DEPS dspark::engine_model nlohmann_json::nlohmann_json LABELS model)
