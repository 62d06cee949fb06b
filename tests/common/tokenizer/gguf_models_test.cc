// Tokenizer::FromGgufMetadata on the real models dspark serves, found at
// $DSPARK_HOME/models/<name> or ~/.cache/dspark/models/<name> (`dspark pull`);
// each test skips when its model is absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/engine/model_file/model_file.h"
#include "common/tokenizer/tokenizer.h"
#include "tests/common/tokenizer/test_data.h"

namespace dspark::tokenizer {
namespace {

using testing::ReferenceCase;

std::string ModelPath(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* home = std::getenv("DSPARK_HOME")) dirs.push_back(std::string(home) + "/models");
  if (const char* home = std::getenv("HOME"))
    dirs.push_back(std::string(home) + "/.cache/dspark/models");
  for (const std::string& d : dirs) {
    std::string p = d + "/" + name;
    if (FILE* f = std::fopen(p.c_str(), "rb")) {
      std::fclose(f);
      return p;
    }
  }
  return "";
}

std::unique_ptr<Tokenizer> LoadModel(const std::string& path) {
  auto file = engine::OpenGguf(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return nullptr;
  auto tok = Tokenizer::FromGgufMetadata(**file);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

TEST(SmolLm2Test, MatchesTransformers) {
  std::string path = ModelPath("smollm2-135m-instruct.gguf");
  if (path.empty()) GTEST_SKIP() << "smollm2-135m-instruct.gguf not pulled";
  std::unique_ptr<Tokenizer> tok = LoadModel(path);
  ASSERT_NE(tok, nullptr);
  // Produced by tools/make_tokenizer_refs.py --cpp: transformers 5.x
  // AutoTokenizer.from_pretrained(dir, gguf_file=...) on this GGUF,
  // encode(text, add_special_tokens=False) (special-token text is matched).
  const std::vector<ReferenceCase> cases = {
      {"Hello, world! How are you?", {19556, 28, 905, 17, 1073, 359, 346, 47}},
      {" Hello", {38699}},
      {"I've 12345 apples; they're 3.14 each.",
       {57, 3543, 216, 33, 34, 35, 36, 37, 13855, 43, 502, 2316, 216, 35, 30, 33, 36, 971, 30}},
      {"def f(x):\n    return x * 2\n",
       {1604, 275, 24, 104, 727, 472, 1003, 1792, 1672, 216, 34, 198}},
      {"  multiple   spaces\t\ttabs\n\n\nnewlines",
       {216, 2701, 256, 5600, 197, 197, 100, 7366, 1116, 198, 2241, 5110}},
      {"<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
       {1, 4093, 198, 26843, 665, 2, 198, 1, 520, 9531, 198}},
      {"Ünïcödé, 日本語, 🦙🦙 emoji",
       {142, 246, 94,  25972, 83,    7466, 84,  2756,  28,  17097, 241, 115,  40993,
        179, 120, 248, 28,    15107, 116,  243, 10813, 116, 243,   649, 33777}},
  };
  for (const ReferenceCase& c : cases) {
    auto ids = tok->Encode(c.text, /*add_special=*/false, /*parse_special=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, c.ids) << "text: " << c.text << "\n got " << absl::StrJoin(*ids, " ");
    auto text = tok->Decode(*ids, /*skip_special=*/false);
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(*text, c.text);
  }
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->eos_token(), "<|im_end|>");
  EXPECT_NE(std::find(tok->eos_ids().begin(), tok->eos_ids().end(), 0), tok->eos_ids().end());
  EXPECT_FALSE(tok->chat_template().empty());
}

// The same BPE as the Qwen3 tokenizer.json in shared data; lines that use
// Qwen3-only added tokens (ids >= 151665: <think>, ...) are skipped.
TEST(Qwen25GgufTest, MatchesQwen3Reference) {
  std::string path = ModelPath("qwen2.5-coder-0.5b-instruct.gguf");
  std::string ref = testing::TokenizerDataPath("qwen3/reference.jsonl");
  if (path.empty() || ref.empty()) GTEST_SKIP() << "model or shared data absent";
  std::unique_ptr<Tokenizer> tok = LoadModel(path);
  ASSERT_NE(tok, nullptr);
  auto cases = testing::ReadReferenceJsonl(ref);
  ASSERT_TRUE(cases.ok());
  int compared = 0;
  for (const ReferenceCase& c : *cases) {
    if (std::any_of(c.ids.begin(), c.ids.end(), [](int32_t id) { return id >= 151665; })) continue;
    auto ids = tok->Encode(c.text, false, true);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*ids, c.ids) << c.text;
    ++compared;
  }
  EXPECT_GE(compared, 75);
  EXPECT_EQ(tok->eos_token(), "<|im_end|>");
}

// Gemma 3's GGUF stores the SentencePiece model (scores, no merges); it must
// agree with the tokenizer.json (merges) reference.
TEST(Gemma3GgufTest, MatchesGemma3Reference) {
  std::string path = ModelPath("gemma-3-270m.gguf");
  std::string ref = testing::TokenizerDataPath("gemma3/reference.jsonl");
  if (path.empty() || ref.empty()) GTEST_SKIP() << "model or shared data absent";
  std::unique_ptr<Tokenizer> tok = LoadModel(path);
  ASSERT_NE(tok, nullptr);
  auto cases = testing::ReadReferenceJsonl(ref);
  ASSERT_TRUE(cases.ok());
  int matched = 0;
  for (const ReferenceCase& c : *cases) {
    auto ids = tok->Encode(c.text, false, true);
    ASSERT_TRUE(ids.ok());
    if (*ids == c.ids) {
      ++matched;
    } else {
      ADD_FAILURE() << c.text << "\n want " << absl::StrJoin(c.ids, " ") << "\n got  "
                    << absl::StrJoin(*ids, " ");
    }
  }
  EXPECT_EQ(matched, static_cast<int>(cases->size()));
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->bos_id(), 2);
}

}  // namespace
}  // namespace dspark::tokenizer
