// Tokenizer::FromGgufMetadata against llama.cpp's tokenizer test vectors
// (tokenizers/llamacpp-vectors, ids from HF transformers). The vocab-only
// GGUFs are read with the test's own metadata reader; llama-bpe and qwen2,
// whose GGUFs are not in the snapshot, are rebuilt from the equivalent
// tokenizer.json the way convert_hf_to_gguf.py writes them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/engine/model_file/model_file.h"
#include "common/tokenizer/tokenizer.h"
#include "tests/common/tokenizer/test_data.h"

namespace dspark::tokenizer {
namespace {

using testing::FakeModelFile;
using testing::ReferenceCase;
using testing::TokenizerDataPath;

// Encodes every vector without specials and returns how many match; reports
// each mismatch.
int CountMatches(const Tokenizer& tok, const std::vector<ReferenceCase>& cases,
                 const std::string& name) {
  int matched = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto ids = tok.Encode(cases[i].text, /*add_special=*/false, /*parse_special=*/false);
    if (!ids.ok()) {
      ADD_FAILURE() << name << " #" << i << ": " << ids.status();
      continue;
    }
    if (*ids == cases[i].ids) {
      ++matched;
      continue;
    }
    ADD_FAILURE() << name << " #" << i << " \"" << cases[i].text << "\"\n  want "
                  << absl::StrJoin(cases[i].ids, " ") << "\n  got  " << absl::StrJoin(*ids, " ");
  }
  return matched;
}

std::vector<ReferenceCase> Vectors(const std::string& name) {
  std::string base = TokenizerDataPath("llamacpp-vectors/ggml-vocab-" + name + ".gguf");
  std::string inp = TokenizerDataPath("llamacpp-vectors/ggml-vocab-" + name + ".gguf.inp");
  std::string out = TokenizerDataPath("llamacpp-vectors/ggml-vocab-" + name + ".gguf.out");
  if (inp.empty() || out.empty()) return {};
  auto cases = testing::ReadLlamaCppVectors(inp, out);
  EXPECT_TRUE(cases.ok()) << cases.status();
  return cases.ok() ? *cases : std::vector<ReferenceCase>{};
}

class GgufVocabTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufVocabTest, MatchesLlamaCppVectors) {
  const std::string name = GetParam();
  std::string path = TokenizerDataPath("llamacpp-vectors/ggml-vocab-" + name + ".gguf");
  std::vector<ReferenceCase> cases = Vectors(name);
  if (path.empty() || cases.empty()) GTEST_SKIP() << "no llamacpp-vectors for " << name;
  // Through the engine's GGUF parser, and through the test's own metadata
  // reader (which keeps this test independent of the parser).
  auto engine_file = engine::OpenGguf(path);
  ASSERT_TRUE(engine_file.ok()) << engine_file.status();
  auto tok = Tokenizer::FromGgufMetadata(**engine_file);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(CountMatches(**tok, cases, name), static_cast<int>(cases.size()));
  auto file = testing::ReadGgufMetadata(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto tok2 = Tokenizer::FromGgufMetadata(**file);
  ASSERT_TRUE(tok2.ok()) << tok2.status();
  EXPECT_EQ(CountMatches(**tok2, cases, name), static_cast<int>(cases.size()));
}

INSTANTIATE_TEST_SUITE_P(Vocabs, GgufVocabTest,
                         ::testing::Values("gpt-2", "llama-spm", "phi-3", "starcoder", "refact",
                                           "deepseek-coder", "deepseek-llm", "falcon", "mpt"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) {
                             if (c == '-') c = '_';
                           }
                           return s;
                         });

struct Rebuilt {
  const char* vectors;  // llamacpp-vectors name
  const char* json;     // tokenizer.json folder
  const char* pre;      // tokenizer.ggml.pre
};

class GgufFromJsonTest : public ::testing::TestWithParam<Rebuilt> {};

TEST_P(GgufFromJsonTest, MatchesLlamaCppVectors) {
  const Rebuilt& p = GetParam();
  std::string json = TokenizerDataPath(std::string(p.json) + "/tokenizer.json");
  std::vector<ReferenceCase> cases = Vectors(p.vectors);
  if (json.empty() || cases.empty()) GTEST_SKIP() << "no shared data for " << p.vectors;
  auto file = testing::GgufMetadataFromHfJson(json, p.pre);
  ASSERT_TRUE(file.ok()) << file.status();
  auto tok = Tokenizer::FromGgufMetadata(**file);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(CountMatches(**tok, cases, p.vectors), static_cast<int>(cases.size()));
}

INSTANTIATE_TEST_SUITE_P(Families, GgufFromJsonTest,
                         ::testing::Values(Rebuilt{"llama-bpe", "llama3", "llama-bpe"},
                                           Rebuilt{"qwen2", "qwen3", "qwen2"},
                                           Rebuilt{"deepseek-r1-qwen", "qwen3",
                                                   "deepseek-r1-qwen"}),
                         [](const auto& info) {
                           std::string s = info.param.vectors;
                           for (char& c : s) {
                             if (c == '-') c = '_';
                           }
                           return s;
                         });

TEST(GgufLoaderTest, SpmVocabRulesAndSpecials) {
  std::string path = TokenizerDataPath("llamacpp-vectors/ggml-vocab-llama-spm.gguf");
  if (path.empty()) GTEST_SKIP() << "no llamacpp-vectors";
  auto file = testing::ReadGgufMetadata(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto tok = Tokenizer::FromGgufMetadata(**file);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.model_type(), ModelType::kCharBpe);
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.bos_token(), "<s>");
  EXPECT_EQ(t.eos_token(), "</s>");
  auto ids = t.Encode("Hello", /*add_special=*/true, /*parse_special=*/false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{1, 15043}));
  // parse_special recognises "</s>"; without it the text is spelled out.
  auto special = t.Encode("a</s>", false, true);
  ASSERT_TRUE(special.ok());
  EXPECT_EQ(special->back(), 2);
  auto plain = t.Encode("a</s>", false, false);
  ASSERT_TRUE(plain.ok());
  EXPECT_NE(plain->back(), 2);
  auto text = t.Decode(*ids, /*skip_special=*/true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "Hello");
  // Byte fallback round trip through <0xXX> tokens.
  auto emoji = t.Encode("🦙", false, false);
  ASSERT_TRUE(emoji.ok());
  auto back = t.Decode(*emoji, true);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, "🦙");
}

TEST(GgufLoaderTest, BadMetadataIsAnError) {
  using testing::MetaInts;
  using testing::MetaString;
  using testing::MetaStrings;
  std::map<std::string, engine::MetaValue> meta;
  EXPECT_FALSE(Tokenizer::FromGgufMetadata(FakeModelFile(meta)).ok());  // no model
  meta["tokenizer.ggml.model"] = MetaString("gpt2");
  EXPECT_FALSE(Tokenizer::FromGgufMetadata(FakeModelFile(meta)).ok());  // no tokens
  meta["tokenizer.ggml.tokens"] = MetaStrings({"a", "b", "ab"});
  EXPECT_FALSE(Tokenizer::FromGgufMetadata(FakeModelFile(meta)).ok());  // no merges
  meta["tokenizer.ggml.merges"] = MetaStrings({"a b"});
  meta["tokenizer.ggml.token_type"] = MetaInts({1, 1});  // wrong length
  EXPECT_FALSE(Tokenizer::FromGgufMetadata(FakeModelFile(meta)).ok());
  meta["tokenizer.ggml.token_type"] = MetaInts({1, 1, 1});
  meta["tokenizer.ggml.pre"] = MetaString("no-such-family");
  auto unknown_pre = Tokenizer::FromGgufMetadata(FakeModelFile(meta));
  EXPECT_EQ(unknown_pre.status().code(), absl::StatusCode::kUnimplemented);
  meta["tokenizer.ggml.pre"] = MetaString("gpt2");
  meta["tokenizer.ggml.merges"] = MetaStrings({"nospace"});
  EXPECT_FALSE(Tokenizer::FromGgufMetadata(FakeModelFile(meta)).ok());
  meta["tokenizer.ggml.merges"] = MetaStrings({"a b"});
  meta["tokenizer.ggml.bos_token_id"] = testing::MetaInt(99);  // out of range: ignored
  auto tok = Tokenizer::FromGgufMetadata(FakeModelFile(meta));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->bos_id(), -1);
  auto ids = (*tok)->Encode("ab", false, false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, std::vector<int32_t>{2});
  meta["tokenizer.ggml.model"] = MetaString("bert");
  EXPECT_EQ(Tokenizer::FromGgufMetadata(FakeModelFile(meta)).status().code(),
            absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace dspark::tokenizer
