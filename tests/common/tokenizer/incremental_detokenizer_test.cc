#include "common/tokenizer/incremental_detokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/tokenizer/unicode.h"
#include "tests/common/tokenizer/test_data.h"

namespace dspark::tokenizer {
namespace {

using Ids = std::vector<int32_t>;

// A byte-level tokenizer with only the 256 byte tokens (ids = byte values),
// one merged token "ab" (256) and a special token (257): every multi-byte
// character is split across tokens.
std::unique_ptr<Tokenizer> BytesTokenizer() {
  TokenizerSpec spec;
  spec.model = ModelType::kByteLevelBpe;
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(ByteLevelEncode(std::string(1, char(b))));
  spec.tokens.push_back("ab");
  spec.tokens.push_back("<|eot|>");
  spec.kinds.assign(spec.tokens.size(), TokenKind::kNormal);
  spec.kinds[257] = TokenKind::kControl;
  spec.merges = {{"a", "b"}};
  spec.added_tokens.push_back({257, "<|eot|>", true});
  auto tok = Tokenizer::FromSpec(std::move(spec));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

// Streams `ids` and returns the deltas (Finish() last).
std::vector<std::string> Stream(IncrementalDetokenizer* d, const Ids& ids) {
  std::vector<std::string> deltas;
  for (int32_t id : ids) {
    auto delta = d->Append(id);
    EXPECT_TRUE(delta.ok()) << delta.status();
    deltas.push_back(delta.ok() ? *delta : "");
  }
  deltas.push_back(d->Finish());
  return deltas;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x;
  return s;
}

TEST(IncrementalDetokenizerTest, EmojiSplitAcrossByteTokensNeverYieldsReplacement) {
  auto tok = BytesTokenizer();
  ASSERT_NE(tok, nullptr);
  const std::string text =
      "hi 👨‍👩‍👧 🦙!";  // ZWJ family: 18 bytes of 4- and 3-byte chars
  Ids ids;
  for (char c : text) ids.push_back(static_cast<uint8_t>(c));
  IncrementalDetokenizer d(*tok);
  std::vector<std::string> deltas = Stream(&d, ids);
  for (const std::string& delta : deltas) {
    EXPECT_TRUE(IsValidUtf8(delta));
    EXPECT_EQ(delta.find("\xEF\xBF\xBD"), std::string::npos) << "U+FFFD in a delta";
  }
  EXPECT_EQ(Join(deltas), text);
  EXPECT_EQ(deltas[3], "");  // first byte of 👨 alone: held back
  EXPECT_EQ(deltas[6], "👨");
}

TEST(IncrementalDetokenizerTest, DeltasJoinToDecode) {
  auto tok = BytesTokenizer();
  ASSERT_NE(tok, nullptr);
  std::mt19937 rng(3);
  for (int iter = 0; iter < 500; ++iter) {
    Ids ids(rng() % 30);
    // Random bytes (including invalid sequences), "ab" and the special token.
    for (int32_t& id : ids) id = rng() % 9 == 0 ? 256 + rng() % 2 : rng() % 256;
    for (bool skip : {true, false}) {
      IncrementalDetokenizer d(*tok, skip);
      std::string joined = Join(Stream(&d, ids));
      auto full = tok->Decode(ids, skip);
      ASSERT_TRUE(full.ok());
      ASSERT_EQ(joined, *full) << "iteration " << iter;
      ASSERT_EQ(d.text(), *full);
    }
  }
}

TEST(IncrementalDetokenizerTest, LeadingSpaceRuleMatchesDecode) {
  std::string dir = testing::TokenizerDataPath("mistral");
  if (dir.empty()) GTEST_SKIP() << "no shared data";
  auto tok = Tokenizer::FromHfDirectory(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto ids = (*tok)->Encode("Hello world, 日本語 🦙", /*add_special=*/true, false);
  ASSERT_TRUE(ids.ok());
  for (bool skip : {true, false}) {
    IncrementalDetokenizer d(**tok, skip);
    auto full = (*tok)->Decode(*ids, skip);
    ASSERT_TRUE(full.ok());
    EXPECT_EQ(Join(Stream(&d, *ids)), *full);
  }
}

TEST(IncrementalDetokenizerTest, StopStringSplitOverDeltasIsNotLeaked) {
  auto tok = BytesTokenizer();
  ASSERT_NE(tok, nullptr);
  const std::string text = "answer: 42\nUser: more";
  Ids ids;
  for (char c : text) ids.push_back(static_cast<uint8_t>(c));
  IncrementalDetokenizer d(*tok);
  d.SetStopStrings({"\nUser:", "never"});
  std::string joined;
  for (int32_t id : ids) {
    auto delta = d.Append(id);
    ASSERT_TRUE(delta.ok());
    EXPECT_EQ(delta->find('\n'), std::string::npos) << "part of the stop string leaked";
    joined += *delta;
    if (d.stopped()) break;
  }
  joined += d.Finish();
  EXPECT_TRUE(d.stopped());
  EXPECT_EQ(d.stop_index(), 0);
  EXPECT_EQ(joined, "answer: 42");
  auto after = d.Append('x');
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, "");
}

TEST(IncrementalDetokenizerTest, HeldPrefixIsReleasedWhenItDiverges) {
  auto tok = BytesTokenizer();
  ASSERT_NE(tok, nullptr);
  IncrementalDetokenizer d(*tok);
  d.SetStopStrings({"STOP"});
  auto a = d.Append('S');
  auto b = d.Append('T');
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a + *b, "");  // could still become STOP
  auto c = d.Append('x');
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, "STx");
  auto e = d.Append('S');
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, "");
  EXPECT_EQ(d.Finish(), "S");  // end of stream releases the held prefix
  EXPECT_FALSE(d.stopped());
}

TEST(IncrementalDetokenizerTest, StopStringInsideOneTokenAndSpecials) {
  auto tok = BytesTokenizer();
  ASSERT_NE(tok, nullptr);
  IncrementalDetokenizer d(*tok, /*skip_special=*/false);
  d.SetStopStrings({"b<|eot|>"});
  std::string out;
  for (int32_t id : Ids{'x', 256, 257, 'y'}) {  // "x" "ab" "<|eot|>" "y"
    auto delta = d.Append(id);
    ASSERT_TRUE(delta.ok());
    out += *delta;
  }
  out += d.Finish();
  EXPECT_EQ(out, "xa");
  EXPECT_TRUE(d.stopped());
}

TEST(IncrementalDetokenizerTest, BadIdIsAnErrorAndKeepsState) {
  auto tok = BytesTokenizer();
  ASSERT_NE(tok, nullptr);
  IncrementalDetokenizer d(*tok);
  ASSERT_TRUE(d.Append(0xC3).ok());
  EXPECT_EQ(d.Append(999).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.Append(-1).status().code(), absl::StatusCode::kInvalidArgument);
  auto rest = d.Append(0xA9);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(*rest, "é");
  // An incomplete character at the end becomes U+FFFD only at Finish().
  ASSERT_TRUE(d.Append(0xF0).ok());
  EXPECT_EQ(d.Finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(d.Finish(), "");
}

}  // namespace
}  // namespace dspark::tokenizer
