#include "common/base/sha256.h"

#include <string>

#include "gtest/gtest.h"

namespace dspark {
namespace {

// Expected values from FIPS 180-2 appendix B and coreutils sha256sum.
TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                      "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256Test, OneMillionAs) {
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Lengths around the 56-byte padding boundary and the 64-byte block size.
TEST(Sha256Test, PaddingBoundaries) {
  const std::pair<int, const char*> kCases[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
      {128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"},
  };
  for (const auto& [n, hex] : kCases) {
    EXPECT_EQ(Sha256Hex(std::string(n, 'a')), hex) << "n=" << n;
  }
}

// Feeding the same bytes in uneven chunks gives the one-shot digest.
TEST(Sha256Test, StreamingMatchesOneShot) {
  std::string data;
  for (int i = 0; i < 10007; ++i) data.push_back(static_cast<char>(i * 131 + 7));
  const std::string expected = Sha256Hex(data);
  for (size_t chunk : {1, 3, 63, 64, 65, 1000}) {
    Sha256 h;
    for (size_t pos = 0; pos < data.size(); pos += chunk) {
      h.Update(absl::string_view(data).substr(pos, chunk));
    }
    EXPECT_EQ(Sha256::ToHex(h.Finish()), expected) << "chunk=" << chunk;
  }
}

// Finish() resets, so one object can hash several messages.
TEST(Sha256Test, ReusableAfterFinish) {
  Sha256 h;
  h.Update("first message");
  h.Finish();
  h.Update("abc");
  EXPECT_EQ(Sha256::ToHex(h.Finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace dspark
