// Property test of the streaming detokenizer on the real tokenizers in
// ../shared/data/tokenizers: for every reference string, streamed token by
// token with the output read at random points, the joined deltas equal
// Decode(ids), every delta is valid UTF-8 and adds no U+FFFD that the full
// decode lacks; and a stop string cut from a random place of the text is never
// leaked, the output ending exactly where the stop string first begins.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/tokenizer/incremental_detokenizer.h"
#include "tests/common/tokenizer/test_data.h"

namespace dspark::tokenizer {
namespace {

bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (int k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += n;
  }
  return true;
}

size_t CountReplacement(const std::string& s) {
  size_t n = 0;
  for (size_t p = s.find("\xEF\xBF\xBD"); p != std::string::npos; p = s.find("\xEF\xBF\xBD", p + 3)) ++n;
  return n;
}

class DetokenizerPropertyTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DetokenizerPropertyTest, RandomReadPointsAndStopStrings) {
  const std::string dir = testing::TokenizerDataPath(GetParam());
  if (dir.empty()) GTEST_SKIP() << "shared data tokenizers/" << GetParam() << " not found";
  auto tok = Tokenizer::FromHfDirectory(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto cases = testing::ReadReferenceJsonl(dir + "/reference.jsonl");
  ASSERT_TRUE(cases.ok()) << cases.status();
  std::mt19937 rng(20261123);
  int checked = 0;
  for (const auto& c : *cases) {
    auto full = (*tok)->Decode(c.ids, /*skip_special=*/true);
    ASSERT_TRUE(full.ok()) << full.status();
    for (int trial = 0; trial < 4; ++trial) {
      IncrementalDetokenizer d(**tok);
      std::string joined, pending;
      for (int32_t id : c.ids) {
        auto delta = d.Append(id);
        ASSERT_TRUE(delta.ok()) << delta.status();
        EXPECT_TRUE(ValidUtf8(*delta)) << "invalid UTF-8 delta for: " << c.text;
        pending += *delta;
        if (rng() % 3 == 0) {  // the client reads here
          joined += pending;
          pending.clear();
        }
      }
      joined += pending + d.Finish();
      EXPECT_EQ(joined, *full) << "deltas do not join to the decode of: " << c.text;
      EXPECT_LE(CountReplacement(joined), CountReplacement(*full));
    }
    // A stop string cut from the decoded text.
    if (full->size() >= 4) {
      size_t begin = rng() % (full->size() - 2);
      while (begin > 0 && (static_cast<unsigned char>((*full)[begin]) >> 6) == 2) --begin;
      size_t len = 1 + rng() % std::min<size_t>(6, full->size() - begin);
      while (begin + len < full->size() && (static_cast<unsigned char>((*full)[begin + len]) >> 6) == 2) ++len;
      const std::string stop = full->substr(begin, len);
      IncrementalDetokenizer d(**tok);
      d.SetStopStrings({stop});
      std::string out;
      for (int32_t id : c.ids) {
        auto delta = d.Append(id);
        ASSERT_TRUE(delta.ok());
        out += *delta;
        EXPECT_EQ(out.find(stop), std::string::npos) << "stop string leaked: " << stop;
      }
      out += d.Finish();
      EXPECT_TRUE(d.stopped()) << "stop string " << stop << " not found in " << *full;
      EXPECT_EQ(out, full->substr(0, full->find(stop)));
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(cases->size()));
}

INSTANTIATE_TEST_SUITE_P(SharedTokenizers, DetokenizerPropertyTest,
                         ::testing::Values("qwen3", "llama3", "mistral", "gemma3"));

}  // namespace
}  // namespace dspark::tokenizer
