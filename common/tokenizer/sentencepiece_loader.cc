// Tokenizer::FromSentencePieceModel: a SentencePiece tokenizer.model
// (ModelProto, protobuf wire format, read by hand: only a few fields matter)
// -> TokenizerSpec. BPE models with the "identity" normalizer (Llama 2 and
// relatives); Unigram and precompiled normalization charsmaps are reported as
// Unimplemented.
#include <cstring>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/tokenizer.h"

namespace dspark::tokenizer {
namespace {

// Minimal protobuf wire-format reader.
class Wire {
 public:
  explicit Wire(std::string_view data) : data_(data) {}

  // Reads the next field. Returns false at the end; sets `error_` on bad input.
  bool Next(uint32_t* field, uint32_t* wire_type, uint64_t* varint, std::string_view* bytes) {
    if (pos_ >= data_.size() || !error_.empty()) return false;
    uint64_t key;
    if (!Varint(&key)) return false;
    *field = static_cast<uint32_t>(key >> 3);
    *wire_type = static_cast<uint32_t>(key & 7);
    switch (*wire_type) {
      case 0:
        return Varint(varint);
      case 1:
        return Fixed(8, bytes);
      case 2: {
        uint64_t len;
        if (!Varint(&len)) return false;
        if (len > data_.size() - pos_) return Fail("length past the end");
        return Fixed(static_cast<size_t>(len), bytes);
      }
      case 5:
        return Fixed(4, bytes);
      default:
        return Fail("unsupported wire type");
    }
  }
  const std::string& error() const { return error_; }

 private:
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return Fail("truncated varint");
      auto b = static_cast<uint8_t>(data_[pos_++]);
      *v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (b < 0x80) return true;
    }
    return Fail("varint too long");
  }
  bool Fixed(size_t n, std::string_view* out) {
    if (n > data_.size() - pos_) return Fail("truncated field");
    *out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool Fail(const char* what) {
    error_ = what;
    return false;
  }

  std::string_view data_;
  size_t pos_ = 0;
  std::string error_;
};

absl::Status WireError(const Wire& w) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.model: ", w.error()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromSentencePieceModel(
    const std::string& model_proto) {
  TokenizerSpec spec;
  int64_t model_type = 1;  // UNIGRAM is the proto default
  bool byte_fallback = false;
  int64_t unk_id = 0, bos_id = 1, eos_id = 2;
  bool add_dummy_prefix = true, remove_extra_whitespaces = true;
  std::string normalizer_name = "nmt_nfkc";
  std::string_view charsmap;

  Wire top(model_proto);
  uint32_t field, wt;
  uint64_t v;
  std::string_view bytes;
  while (top.Next(&field, &wt, &v, &bytes)) {
    if (field == 1 && wt == 2) {  // SentencePiece
      std::string piece;
      float score = 0;
      int64_t type = 1;
      Wire w(bytes);
      uint32_t f, t;
      uint64_t x;
      std::string_view b;
      while (w.Next(&f, &t, &x, &b)) {
        if (f == 1 && t == 2) piece.assign(b);
        if (f == 2 && t == 5) std::memcpy(&score, b.data(), 4);
        if (f == 3 && t == 0) type = static_cast<int64_t>(x);
      }
      if (!w.error().empty()) return WireError(w);
      spec.tokens.push_back(std::move(piece));
      spec.kinds.push_back(type >= 1 && type <= 6 ? static_cast<TokenKind>(type)
                                                  : TokenKind::kNormal);
      spec.scores.push_back(score);
    } else if (field == 2 && wt == 2) {  // TrainerSpec
      Wire w(bytes);
      uint32_t f, t;
      uint64_t x;
      std::string_view b;
      while (w.Next(&f, &t, &x, &b)) {
        if (t != 0) continue;
        if (f == 3) model_type = static_cast<int64_t>(x);
        if (f == 35) byte_fallback = x != 0;
        if (f == 40) unk_id = static_cast<int32_t>(x);
        if (f == 41) bos_id = static_cast<int32_t>(x);
        if (f == 42) eos_id = static_cast<int32_t>(x);
      }
      if (!w.error().empty()) return WireError(w);
    } else if (field == 3 && wt == 2) {  // NormalizerSpec
      Wire w(bytes);
      uint32_t f, t;
      uint64_t x;
      std::string_view b;
      while (w.Next(&f, &t, &x, &b)) {
        if (f == 1 && t == 2) normalizer_name.assign(b);
        if (f == 2 && t == 2) charsmap = b;
        if (f == 3 && t == 0) add_dummy_prefix = x != 0;
        if (f == 4 && t == 0) remove_extra_whitespaces = x != 0;
      }
      if (!w.error().empty()) return WireError(w);
    }
  }
  if (!top.error().empty()) return WireError(top);
  if (spec.tokens.empty()) return absl::InvalidArgumentError("tokenizer.model: no pieces");
  if (model_type != 2) {
    return absl::UnimplementedError(
        absl::StrCat("tokenizer.model: model type ", model_type, " (only BPE = 2 is supported)"));
  }
  if (!charsmap.empty() || remove_extra_whitespaces) {
    return absl::UnimplementedError(absl::StrCat("tokenizer.model: normalizer \"", normalizer_name,
                                                 "\" is not supported (identity only)"));
  }
  const auto n = static_cast<int64_t>(spec.tokens.size());
  auto valid = [n](int64_t id) { return id >= 0 && id < n ? static_cast<int32_t>(id) : -1; };
  spec.model = ModelType::kCharBpe;
  spec.byte_fallback = byte_fallback;
  spec.unk_id = valid(unk_id);
  spec.bos_id = valid(bos_id);
  spec.eos_id = valid(eos_id);
  spec.add_bos = true;  // what Llama-style models expect
  for (int32_t id = 0; id < n; ++id) {
    TokenKind k = spec.kinds[id];
    if (k == TokenKind::kControl || k == TokenKind::kUserDefined || k == TokenKind::kUnknown) {
      spec.added_tokens.push_back({id, spec.tokens[id], k != TokenKind::kUserDefined});
    }
  }
  if (add_dummy_prefix) {
    TextOp prepend;
    prepend.type = TextOp::Type::kPrepend;
    prepend.a = " ";
    spec.text_ops.push_back(prepend);
    spec.strip_leading_space = true;
  }
  TextOp replace;
  replace.type = TextOp::Type::kReplace;
  replace.a = " ";
  replace.b = std::string(kSpmSpace);
  spec.text_ops.push_back(replace);
  AddKnownEogIds(&spec);
  return FromSpec(std::move(spec));
}

}  // namespace dspark::tokenizer
