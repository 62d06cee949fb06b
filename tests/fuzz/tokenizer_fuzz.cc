// libFuzzer target for common/tokenizer. The first input byte picks what the
// rest is fed to:
//   0: text to Encode with a byte-level and a SentencePiece-style tokenizer
//      (must never crash; valid UTF-8 must round-trip through Decode),
//   1: ids (pairs of bytes) to Decode and to the streaming detokenizer
//      (joined deltas must equal Decode),
//   2: a tokenizer.json document,
//   3: a SentencePiece tokenizer.model.
// Malformed inputs must come back as errors, never as crashes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/tokenizer/incremental_detokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/unicode.h"

namespace {

using dspark::tokenizer::AddedToken;
using dspark::tokenizer::ByteLevelEncode;
using dspark::tokenizer::ModelType;
using dspark::tokenizer::TextOp;
using dspark::tokenizer::Tokenizer;
using dspark::tokenizer::TokenizerSpec;
using dspark::tokenizer::TokenKind;

// 256 byte tokens, a few merges and added tokens.
std::unique_ptr<Tokenizer> MakeByteLevel() {
  TokenizerSpec spec;
  spec.model = ModelType::kByteLevelBpe;
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(ByteLevelEncode(std::string(1, char(b))));
  for (const char* t : {"th", "the", "Ġthe", "in", "ing", "<|end|>", "<x>"})
    spec.tokens.push_back(t);
  spec.kinds.assign(spec.tokens.size(), TokenKind::kNormal);
  spec.kinds[261] = TokenKind::kControl;
  spec.kinds[262] = TokenKind::kUserDefined;
  spec.merges = {{"t", "h"}, {"th", "e"}, {"Ġ", "the"}, {"i", "n"}, {"in", "g"}};
  spec.added_tokens = {{261, "<|end|>", true}, {262, "<x>", false}};
  spec.split_steps = {{dspark::tokenizer::kLlama3Pattern}};
  TextOp nfc;
  nfc.form = dspark::tokenizer::NormalizationForm::kNfc;
  spec.text_ops = {nfc};
  spec.eos_id = 261;
  return *Tokenizer::FromSpec(std::move(spec));
}

// SentencePiece style: <unk>, byte tokens, "▁" pieces, scores.
std::unique_ptr<Tokenizer> MakeCharBpe() {
  TokenizerSpec spec;
  spec.model = ModelType::kCharBpe;
  spec.tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    spec.tokens.push_back(name);
  }
  for (const char* t : {"▁", "a", "b", "▁a", "ab", "▁ab", "日", "本"}) spec.tokens.push_back(t);
  spec.kinds.assign(spec.tokens.size(), TokenKind::kNormal);
  spec.kinds[0] = TokenKind::kUnknown;
  spec.kinds[1] = spec.kinds[2] = TokenKind::kControl;
  for (int b = 0; b < 256; ++b) spec.kinds[3 + b] = TokenKind::kByte;
  spec.scores.assign(spec.tokens.size(), 0.f);
  for (size_t i = 259; i < spec.scores.size(); ++i) spec.scores[i] = -static_cast<float>(i);
  spec.byte_fallback = true;
  spec.unk_id = 0;
  spec.bos_id = 1;
  spec.eos_id = 2;
  spec.add_bos = true;
  spec.added_tokens = {{1, "<s>", true}, {2, "</s>", true}};
  TextOp prepend;
  prepend.type = TextOp::Type::kPrepend;
  prepend.a = " ";
  TextOp replace;
  replace.type = TextOp::Type::kReplace;
  replace.a = " ";
  replace.b = "▁";
  spec.text_ops = {prepend, replace};
  spec.strip_leading_space = true;
  return *Tokenizer::FromSpec(std::move(spec));
}

void Check(bool ok) {
  if (!ok) std::abort();
}

void FuzzText(const Tokenizer& tok, const std::string& text, bool exact_round_trip) {
  for (bool special : {false, true}) {
    auto ids = tok.Encode(text, special, special);
    Check(ids.ok() == dspark::tokenizer::IsValidUtf8(text));
    if (!ids.ok()) continue;
    auto back = tok.Decode(*ids, /*skip_special=*/false);
    Check(back.ok());
    Check(dspark::tokenizer::IsValidUtf8(*back));
    if (exact_round_trip && !special) {
      std::string nfc;
      Check(dspark::tokenizer::Normalize(dspark::tokenizer::NormalizationForm::kNfc, text, &nfc));
      Check(*back == nfc);
    }
  }
}

void FuzzIds(const Tokenizer& tok, const uint8_t* data, size_t size) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < size; i += 2) {
    ids.push_back(static_cast<int32_t>(data[i]) | (static_cast<int32_t>(data[i + 1] & 1) << 8));
  }
  auto full = tok.Decode(ids, true);
  dspark::tokenizer::IncrementalDetokenizer d(tok, true);
  d.SetStopStrings({"the", "\xE6\x97\xA5"});
  std::string joined;
  bool bad = false;
  for (int32_t id : ids) {
    auto delta = d.Append(id);
    if (!delta.ok()) {
      bad = true;
      continue;
    }
    Check(dspark::tokenizer::IsValidUtf8(*delta));
    joined += *delta;
  }
  joined += d.Finish();
  Check(full.ok() == !bad);
  if (full.ok() && !d.stopped()) Check(joined == *full);
  if (full.ok() && d.stopped()) Check(full->compare(0, joined.size(), joined) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<Tokenizer> byte_level = MakeByteLevel();
  static const std::unique_ptr<Tokenizer> char_bpe = MakeCharBpe();
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 4;
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode) {
    case 0:
      FuzzText(*byte_level, rest, /*exact_round_trip=*/true);
      FuzzText(*char_bpe, rest, /*exact_round_trip=*/false);
      break;
    case 1:
      FuzzIds(*byte_level, data + 1, size - 1);
      FuzzIds(*char_bpe, data + 1, size - 1);
      break;
    case 2:
      if (auto tok = Tokenizer::FromHfJson(rest, ""); tok.ok()) {
        (void)(*tok)->Encode("Hello, world! 123 <s> 日本", true, true);
      }
      break;
    case 3:
      if (auto tok = Tokenizer::FromSentencePieceModel(rest); tok.ok()) {
        (void)(*tok)->Encode("Hello, world! 123 <s> 日本", true, true);
      }
      break;
  }
  return 0;
}
