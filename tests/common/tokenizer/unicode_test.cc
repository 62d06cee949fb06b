#include "common/tokenizer/unicode.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace dspark::tokenizer {
namespace {

TEST(UnicodeTest, StrictValidation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii, longer than eight bytes"));
  EXPECT_TRUE(IsValidUtf8("héllo wörld 日本 🦙"));
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  size_t at = 99;
  EXPECT_FALSE(IsValidUtf8("abc\xC0\xAF", &at));  // overlong '/'
  EXPECT_EQ(at, 3u);
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\xA6"));      // truncated
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(UnicodeTest, LossyDecodeReplacesMaximalSubparts) {
  // WHATWG examples: each maximal invalid subpart is one U+FFFD.
  EXPECT_EQ(SanitizeUtf8("a\xF0\x9F\xA6"
                         "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("ok 🦙"), "ok 🦙");
  // Not final: an incomplete but valid prefix is left for later.
  std::string out;
  EXPECT_EQ(DecodeUtf8Lossy("x\xF0\x9F", /*final=*/false, &out), 1u);
  EXPECT_EQ(out, "x");
}

// Streaming decode (carrying the undecoded tail) equals one-shot decode for
// any split points.
TEST(UnicodeTest, LossyDecodeIsStreamable) {
  std::mt19937 rng(7);
  const std::string alphabet[] = {"a",    "\xC3", "\xA9", "\xF0", "\x9F", "\xA6", "\x99",
                                  "\xED", "\xA0", "\x80", "\xE2", "\x96", "\x81", "\xFF"};
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bytes;
    int n = rng() % 24;
    for (int i = 0; i < n; ++i) bytes += alphabet[rng() % std::size(alphabet)];
    std::string streamed, pending;
    size_t pos = 0;
    while (pos < bytes.size()) {
      size_t len = 1 + rng() % 4;
      pending += bytes.substr(pos, len);
      pos += len;
      size_t used = DecodeUtf8Lossy(pending, false, &streamed);
      pending.erase(0, used);
    }
    DecodeUtf8Lossy(pending, true, &streamed);
    ASSERT_EQ(streamed, SanitizeUtf8(bytes)) << "iteration " << iter;
    ASSERT_TRUE(IsValidUtf8(streamed));
  }
}

TEST(UnicodeTest, ByteLevelMappingRoundTrips) {
  EXPECT_EQ(ByteLevelEncode(" hello\n"), "ĠhelloĊ");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string decoded;
  EXPECT_TRUE(ByteLevelDecode(ByteLevelEncode(all), &decoded));
  EXPECT_EQ(decoded, all);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(UnicodeToByte(ByteToUnicode(b)), b);
  decoded.clear();
  EXPECT_FALSE(ByteLevelDecode("Ġ日", &decoded));  // 日 is outside the table
  EXPECT_EQ(decoded, " 日");
}

TEST(UnicodeTest, Normalization) {
  std::string out;
  ASSERT_TRUE(Normalize(NormalizationForm::kNfc, "cafe\xCC\x81", &out));  // e + U+0301
  EXPECT_EQ(out, "caf\xC3\xA9");
  ASSERT_TRUE(Normalize(NormalizationForm::kNfd, "caf\xC3\xA9", &out));
  EXPECT_EQ(out, "cafe\xCC\x81");
  ASSERT_TRUE(Normalize(NormalizationForm::kNfkc, "ﬁ²", &out));
  EXPECT_EQ(out, "fi2");
  ASSERT_TRUE(Normalize(NormalizationForm::kNfc, "ascii only", &out));
  EXPECT_EQ(out, "ascii only");
  // Hangul jamo compose under NFC.
  ASSERT_TRUE(Normalize(NormalizationForm::kNfc, "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", &out));
  EXPECT_EQ(out, "한");
}

}  // namespace
}  // namespace dspark::tokenizer
