#include "common/tokenizer/regex_splitter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dspark::tokenizer {
namespace {

std::vector<std::string> Split(std::vector<SplitStep> steps, std::string_view text) {
  auto s = RegexSplitter::Create(std::move(steps));
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return {};
  std::vector<std::string_view> pieces;
  EXPECT_TRUE((*s)->Split(text, &pieces).ok());
  return {pieces.begin(), pieces.end()};
}

using V = std::vector<std::string>;

TEST(RegexSplitterTest, Gpt2Pattern) {
  EXPECT_EQ(Split({{kGpt2Pattern}}, "Hello world's  123 !!\n"),
            (V{"Hello", " world", "'s", " ", " 123", " !!", "\n"}));
  EXPECT_EQ(Split({{kGpt2Pattern}}, "hi   "), (V{"hi", "   "}));
}

TEST(RegexSplitterTest, Llama3AndQwenDigits) {
  EXPECT_EQ(Split({{kLlama3Pattern}}, "x 12345"), (V{"x", " ", "123", "45"}));
  EXPECT_EQ(Split({{kQwen2Pattern}}, "x 123"), (V{"x", " ", "1", "2", "3"}));
  EXPECT_EQ(Split({{kLlama3Pattern}}, "I'M here"), (V{"I", "'M", " here"}));
}

TEST(RegexSplitterTest, Behaviors) {
  const std::string text = "a-b--c";
  EXPECT_EQ(Split({{"-", SplitBehavior::kIsolated}}, text), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(Split({{"-", SplitBehavior::kRemoved}}, text), (V{"a", "b", "c"}));
  EXPECT_EQ(Split({{"-", SplitBehavior::kMergedWithPrevious}}, text), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(Split({{"-", SplitBehavior::kMergedWithNext}}, text), (V{"a", "-b", "-", "-c"}));
  EXPECT_EQ(Split({{"-", SplitBehavior::kContiguous}}, text), (V{"a", "-", "b", "--", "c"}));
  // invert: the text between matches is the delimiter.
  EXPECT_EQ(Split({{"\\w+", SplitBehavior::kRemoved, true}}, "ab, cd"), (V{"ab", "cd"}));
  // Metaspace-style split keeps "▁" at the start of each word.
  EXPECT_EQ(Split({{RegexEscape("▁"), SplitBehavior::kMergedWithNext}}, "▁Hello▁world"),
            (V{"▁Hello", "▁world"}));
}

TEST(RegexSplitterTest, StepsApplyToEachPiece) {
  // "\p{N}" first isolates digits; the word pattern then never joins them.
  EXPECT_EQ(Split({{"\\p{N}"}, {kGpt2Pattern}}, "ab 12"), (V{"ab", " ", "1", "2"}));
  // `$` is the end of each piece, not before a final newline.
  EXPECT_EQ(Split({{"\\s+$"}}, "a \n"), (V{"a", " \n"}));
}

TEST(RegexSplitterTest, EmptyMatchesAndEmptyText) {
  EXPECT_EQ(Split({{"x*"}}, "abxxc"), (V{"ab", "xx", "c"}));
  EXPECT_TRUE(Split({{kGpt2Pattern}}, "").empty());
  EXPECT_EQ(Split({}, "whole"), (V{"whole"}));
}

TEST(RegexSplitterTest, BadPatternIsAnError) {
  auto s = RegexSplitter::Create({{"(unclosed"}});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RegexSplitterTest, GgufFamilies) {
  for (const char* pre : {"gpt2", "gpt-2", "llama-bpe", "qwen2", "smollm", "starcoder", "refact",
                          "deepseek-coder", "deepseek-llm", "falcon", "mpt", "default"}) {
    auto steps = GgufPreTokenizerSteps(pre);
    ASSERT_TRUE(steps.ok()) << pre;
    EXPECT_TRUE(RegexSplitter::Create(*steps).ok()) << pre;
  }
  EXPECT_EQ(GgufPreTokenizerSteps("tekken").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dspark::tokenizer
