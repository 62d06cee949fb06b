// Tokenizer on small hand-built vocabularies: encode/decode rules, added
// tokens, BOS/EOS, and bad input (malformed files, bad ids, invalid UTF-8)
// giving errors rather than crashes.
#include "common/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/unicode.h"
#include "nlohmann/json.hpp"

namespace dspark::tokenizer {
namespace {

using Ids = std::vector<int32_t>;
using Json = nlohmann::json;

// Byte-level vocab: 256 single bytes (ids 0..255 in byte order), merges
// he, ll, hell, hello, Ġw; added tokens <|end|> (special), <tool>, <pad>.
Json ByteLevelJson() {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteLevelEncode(std::string(1, static_cast<char>(b)))] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["hello"] = 259;
  vocab["Ġw"] = 260;
  Json j;
  j["model"] = {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", Json::array({"h e", "l l", "he ll", "hell o", "Ġ w"})}};
  j["added_tokens"] = Json::array(
      {{{"id", 261}, {"content", "<|end|>"}, {"special", true}},
       {{"id", 262}, {"content", "<tool>"}, {"special", false}},
       {{"id", 263}, {"content", "<pad>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}}});
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}};
  return j;
}

std::unique_ptr<Tokenizer> Load(const Json& j, const std::string& config = "") {
  auto tok = Tokenizer::FromHfJson(j.dump(), config);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

Ids Enc(const Tokenizer& t, std::string_view text, bool special = true) {
  auto ids = t.Encode(text, false, special);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : Ids{};
}

TEST(TokenizerTest, ByteLevelBpeAndAddedTokens) {
  auto tok = Load(ByteLevelJson());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 264);
  EXPECT_EQ(Enc(*tok, "hello"), Ids{259});
  EXPECT_EQ(Enc(*tok, "hello wh"), (Ids{259, 260, 'h'}));
  EXPECT_EQ(Enc(*tok, "hello<|end|>"), (Ids{259, 261}));
  // Without parse_special the marker is plain text; <tool> is not special.
  Ids plain = Enc(*tok, "<|end|><tool>", /*special=*/false);
  EXPECT_EQ(plain.back(), 262);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 261), 0);
  // lstrip/rstrip absorb the surrounding spaces.
  EXPECT_EQ(Enc(*tok, "he <pad> he"), (Ids{256, 263, 256}));
  EXPECT_EQ(Enc(*tok, ""), Ids{});
  EXPECT_EQ(tok->TokenId("Ġw"), 260);
  EXPECT_EQ(tok->TokenText(259), "hello");
  EXPECT_EQ(tok->TokenText(9999), "");
  EXPECT_FALSE(tok->TokenId("nope").has_value());
}

TEST(TokenizerTest, DecodeRules) {
  auto tok = Load(ByteLevelJson());
  ASSERT_NE(tok, nullptr);
  auto text = tok->Decode(Ids{259, 260, 261, 'h'}, /*skip_special=*/false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "hello w<|end|>h");
  text = tok->Decode(Ids{259, 261}, /*skip_special=*/true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "hello");
  // A lone lead byte of a 4-byte character decodes to U+FFFD.
  text = tok->Decode(Ids{0xF0, 'a'}, false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "\xEF\xBF\xBD"
            "a");
  EXPECT_EQ(tok->Decode(Ids{264}, false).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tok->Decode(Ids{-1}, false).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tok->TokenBytes(1 << 30, false).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TokenizerTest, InvalidUtf8IsRejected) {
  auto tok = Load(ByteLevelJson());
  ASSERT_NE(tok, nullptr);
  for (std::string bad : std::vector<std::string>{"\xFF", "ok\xC3", "\xED\xA0\x80", "a\xC0\xAF"}) {
    auto ids = tok->Encode(bad, true, true);
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(TokenizerTest, BosEosFromTemplateAndConfig) {
  Json j = ByteLevelJson();
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", Json::array({{{"SpecialToken", {{"id", "<pad>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", "<|end|>"}, {"type_id", 0}}}}})},
      {"special_tokens",
       {{"<pad>", {{"id", "<pad>"}, {"ids", {263}}}},
        {"<|end|>", {{"id", "<|end|>"}, {"ids", {261}}}}}}};
  auto tok = Load(j);
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_TRUE(tok->add_eos());
  auto ids = tok->Encode("he", /*add_special=*/true, false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (Ids{263, 256, 261}));
  // tokenizer_config.json overrides the template.
  tok = Load(j, R"({"add_bos_token": false, "eos_token": {"content": "<|end|>"},
                    "chat_template": "{{ messages }}"})");
  ASSERT_NE(tok, nullptr);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->eos_id(), 261);
  EXPECT_EQ(tok->eos_token(), "<|end|>");
  EXPECT_EQ(tok->chat_template(), "{{ messages }}");
}

// SentencePiece-style: "▁" for spaces, byte fallback, dummy prefix.
TEST(TokenizerTest, CharBpeWithByteFallback) {
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  int next = 259;
  for (const char* t : {"▁", "h", "i", "▁h", "▁hi"}) vocab[t] = next++;
  Json j;
  j["model"] = {{"type", "BPE"},         {"vocab", vocab},
                {"byte_fallback", true}, {"unk_token", "<unk>"},
                {"fuse_unk", true},      {"merges", Json::array({"▁ h", "▁h i"})}};
  j["added_tokens"] = Json::array({{{"id", 1}, {"content", "<s>"}, {"special", true}},
                                   {{"id", 2}, {"content", "</s>"}, {"special", true}}});
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       Json::array({{{"type", "Prepend"}, {"prepend", "▁"}},
                    {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}};
  j["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       Json::array({{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  auto tok = Load(j, R"({"add_bos_token": true, "bos_token": "<s>"})");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->model_type(), ModelType::kCharBpe);
  Ids ids = Enc(*tok, "hi hé");
  // "▁hi" "▁h" then é -> <0xC3> <0xA9>
  EXPECT_EQ(ids, (Ids{263, 262, 3 + 0xC3, 3 + 0xA9}));
  auto text = tok->Decode(ids, false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "hi hé");
  auto with_bos = tok->Encode("hi", /*add_special=*/true, false);
  ASSERT_TRUE(with_bos.ok());
  EXPECT_EQ(*with_bos, (Ids{1, 263}));
  text = tok->Decode(*with_bos, /*skip_special=*/true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "hi");
}

TEST(TokenizerTest, ConcurrentEncodeIsConsistent) {
  auto tok = Load(ByteLevelJson());
  ASSERT_NE(tok, nullptr);
  const std::string text = "hello whello <tool> hell he<|end|> wow";
  const Ids want = Enc(*tok, text);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        auto ids = tok->Encode(text, false, true);
        if (!ids.ok() || *ids != want) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(TokenizerTest, MalformedTokenizerJsonIsAnError) {
  const std::vector<std::string> bad = {
      "",
      "{",
      "[]",
      R"({"model": {}})",
      R"({"model": {"type": "BPE", "vocab": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": "zero"}}})",
      R"({"model": {"type": "BPE", "vocab": {"a": -5}}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 4000000000}}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [1, 2]}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "added_tokens": [{"id": -1, "content": "x"}]})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "added_tokens": [{"content": "x"}]})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}},
          "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}},
          "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}})",
  };
  for (const std::string& j : bad) {
    auto tok = Tokenizer::FromHfJson(j, "");
    EXPECT_FALSE(tok.ok()) << j;
  }
  auto unigram = Tokenizer::FromHfJson(R"({"model": {"type": "Unigram", "vocab": []}})", "");
  EXPECT_EQ(unigram.status().code(), absl::StatusCode::kUnimplemented);
  auto lower = Tokenizer::FromHfJson(
      R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "normalizer": {"type": "Lowercase"}})", "");
  EXPECT_EQ(lower.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_FALSE(Tokenizer::FromHfJson(ByteLevelJson().dump(), "not json").ok());
  EXPECT_EQ(Tokenizer::FromHfDirectory("/nonexistent/dir").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TokenizerTest, MalformedSentencePieceModelIsAnError) {
  EXPECT_FALSE(Tokenizer::FromSentencePieceModel("").ok());
  EXPECT_FALSE(Tokenizer::FromSentencePieceModel("\x0A\xFF\xFF\xFF\xFF\x0F").ok());
  EXPECT_FALSE(Tokenizer::FromSentencePieceModel(std::string("\x0A\x03\x0A\x01", 4)).ok());
  // A well-formed piece but a Unigram model (the proto default).
  std::string piece = std::string("\x0A\x05\x0A\x03") + "abc";
  EXPECT_EQ(Tokenizer::FromSentencePieceModel(piece).status().code(),
            absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace dspark::tokenizer
