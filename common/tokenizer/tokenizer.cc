#include "common/tokenizer/tokenizer.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/unicode.h"

namespace dspark::tokenizer {
namespace {

// Pre-tokens up to this many bytes go through the word cache.
constexpr size_t kMaxCachedWord = 64;

// Parses "<0xAB>" into 0xAB; -1 if `text` is not a byte token.
int ParseByteToken(std::string_view text) {
  if (text.size() != 6 || !absl::StartsWith(AsAbsl(text), "<0x") || text[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    char c = text[i];
    int d = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                     : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

bool ProducibleByBpe(TokenKind k) {
  return k == TokenKind::kNormal || k == TokenKind::kByte || k == TokenKind::kUserDefined;
}

}  // namespace

void AddKnownEogIds(TokenizerSpec* spec) {
  static constexpr std::string_view kEog[] = {
      "<|im_end|>",    "<|eot_id|>",           "<|eom_id|>", "<end_of_turn>", "<|end|>",
      "<|endoftext|>", "<|end_of_text|>",      "<EOT>",      "<|return|>",    "<eos>",
      "</s>",          "<｜end▁of▁sentence｜>"};
  for (int32_t id = 0; id < static_cast<int32_t>(spec->tokens.size()); ++id) {
    if (id < static_cast<int32_t>(spec->kinds.size()) && spec->kinds[id] != TokenKind::kControl) {
      continue;
    }
    for (std::string_view e : kEog) {
      if (spec->tokens[id] == e) spec->eog_ids.push_back(id);
    }
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromSpec(TokenizerSpec spec) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  DSPARK_RETURN_IF_ERROR(t->Build(std::move(spec)));
  return t;
}

absl::Status Tokenizer::Build(TokenizerSpec spec) {
  const size_t n = spec.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("tokenizer has an empty vocabulary");
  if (n > static_cast<size_t>(INT32_MAX / 2)) {
    return absl::InvalidArgumentError("tokenizer vocabulary is too large");
  }
  if (spec.kinds.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer has ", n, " tokens but ", spec.kinds.size(), " token types"));
  }
  if (!spec.scores.empty() && spec.scores.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer has ", n, " tokens but ", spec.scores.size(), " scores"));
  }
  auto in_range = [n](int32_t id) { return id >= -1 && id < static_cast<int32_t>(n); };
  if (!in_range(spec.bos_id) || !in_range(spec.eos_id) || !in_range(spec.unk_id)) {
    return absl::InvalidArgumentError("special token id outside the vocabulary");
  }
  for (const AddedToken& a : spec.added_tokens) {
    if (a.id < 0 || a.id >= static_cast<int32_t>(n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("added token \"", a.content, "\" has id ", a.id, " outside the vocabulary"));
    }
    if (!IsValidUtf8(a.content)) {
      return absl::InvalidArgumentError(absl::StrCat("added token ", a.id, " is not UTF-8"));
    }
  }
  for (int32_t id : spec.eog_ids) {
    if (!in_range(id)) return absl::InvalidArgumentError("end-of-generation id out of range");
  }

  model_ = spec.model;
  tokens_ = std::move(spec.tokens);
  kinds_ = std::move(spec.kinds);
  const bool byte_level = model_ == ModelType::kByteLevelBpe;

  text_to_id_.reserve(n);
  symbol_to_id_.reserve(n);
  pieces_.resize(n);
  for (int32_t id = 0; id < static_cast<int32_t>(n); ++id) {
    const std::string& text = tokens_[id];
    if (text.empty()) continue;
    text_to_id_.try_emplace(text, id);
    const TokenKind kind = kinds_[id];
    const bool added_kind = kind == TokenKind::kControl || kind == TokenKind::kUserDefined ||
                            kind == TokenKind::kUnknown;
    std::string& piece = pieces_[id];
    if (byte_level) {
      if (added_kind && !spec.byte_decode_added_tokens) {
        piece = text;
      } else {
        bool mapped = ByteLevelDecode(text, &piece);
        if (mapped && ProducibleByBpe(kind)) symbol_to_id_.try_emplace(piece, id);
      }
    } else {
      int b = kind == TokenKind::kByte || spec.byte_fallback ? ParseByteToken(text) : -1;
      if (b >= 0) {
        piece.assign(1, static_cast<char>(b));
        kinds_[id] = TokenKind::kByte;
      } else {
        piece = absl::StrReplaceAll(text, {{AsAbsl(kSpmSpace), " "}});
      }
      if (ProducibleByBpe(kinds_[id])) symbol_to_id_.try_emplace(text, id);
      for (size_t p = text.find(kSpmSpace, 1); p != std::string::npos;
           p = text.find(kSpmSpace, p + kSpmSpace.size())) {
        size_t c = p - 1;
        while (c > 0 && (static_cast<uint8_t>(text[c]) & 0xC0) == 0x80) --c;
        std::string_view before = std::string_view(text).substr(c, p - c);
        if (before != kSpmSpace) joins_before_space_.insert(std::string(before));
      }
    }
  }
  for (const AddedToken& a : spec.added_tokens) text_to_id_.try_emplace(a.content, a.id);

  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  std::fill(std::begin(ascii_ids_), std::end(ascii_ids_), -1);
  all_byte_tokens_ = true;
  for (int b = 0; b < 256; ++b) {
    if (byte_level) {
      auto it = symbol_to_id_.find(std::string(1, static_cast<char>(b)));
      if (it != symbol_to_id_.end()) byte_ids_[b] = it->second;
    } else {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      auto it = text_to_id_.find(name);
      if (it != text_to_id_.end()) byte_ids_[b] = it->second;
      if (b < 128) {
        auto a = symbol_to_id_.find(std::string(1, static_cast<char>(b)));
        if (a != symbol_to_id_.end()) ascii_ids_[b] = a->second;
      }
    }
    if (byte_ids_[b] < 0) all_byte_tokens_ = false;
  }

  DSPARK_RETURN_IF_ERROR(BuildMerges(spec));

  added_ = AddedTokenMatcher(std::move(spec.added_tokens));
  DSPARK_ASSIGN_OR_RETURN(splitter_, RegexSplitter::Create(std::move(spec.split_steps)));
  text_ops_ = std::move(spec.text_ops);
  ignore_merges_ = spec.ignore_merges;
  byte_fallback_ = spec.byte_fallback;
  fuse_unk_ = spec.fuse_unk;
  strip_leading_space_ = spec.strip_leading_space;
  unk_id_ = spec.unk_id;
  bos_id_ = spec.bos_id;
  eos_id_ = spec.eos_id;
  add_bos_ = spec.add_bos && bos_id_ >= 0;
  add_eos_ = spec.add_eos && eos_id_ >= 0;
  if (eos_id_ >= 0) eos_ids_.push_back(eos_id_);
  for (int32_t id : spec.eog_ids) {
    if (id >= 0 && std::find(eos_ids_.begin(), eos_ids_.end(), id) == eos_ids_.end()) {
      eos_ids_.push_back(id);
    }
  }
  chat_template_ = std::move(spec.chat_template);
  return absl::OkStatus();
}

absl::Status Tokenizer::BuildMerges(const TokenizerSpec& spec) {
  const bool byte_level = model_ == ModelType::kByteLevelBpe;
  // Merge rules name tokens by their text in the model file.
  auto lookup = [&](const std::string& text) -> int32_t {
    auto it = text_to_id_.find(text);
    return it == text_to_id_.end() ? -1 : it->second;
  };
  if (!spec.merges.empty()) {
    int32_t rank = 0;
    for (const auto& [a, b] : spec.merges) {
      int32_t l = lookup(a), r = lookup(b), m = lookup(a + b);
      if (l >= 0 && r >= 0 && m >= 0) merger_.AddMerge(l, r, rank, m);
      ++rank;
    }
    return absl::OkStatus();
  }
  if (spec.scores.empty() || byte_level) return absl::OkStatus();
  // SentencePiece BPE: every split of a piece into two pieces is a rule,
  // ranked by the merged piece's score (higher first; equal scores share a
  // rank so that position breaks the tie).
  std::vector<int32_t> order;
  for (int32_t id = 0; id < static_cast<int32_t>(tokens_.size()); ++id) {
    if (kinds_[id] == TokenKind::kNormal || kinds_[id] == TokenKind::kUserDefined) {
      order.push_back(id);
    }
  }
  // NaN would break the sort's strict weak ordering: treat it as lowest.
  auto score = [&](int32_t id) {
    float v = spec.scores[id];
    return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v;
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t x, int32_t y) { return score(x) > score(y); });
  int32_t rank = -1;
  float last = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    int32_t id = order[i];
    if (i == 0 || score(id) != last) ++rank;
    last = score(id);
    const std::string& s = tokens_[id];
    for (size_t k = Utf8SeqLen(static_cast<uint8_t>(s[0])); k < s.size();
         k += Utf8SeqLen(static_cast<uint8_t>(s[k]))) {
      auto l = symbol_to_id_.find(AsAbsl(std::string_view(s).substr(0, k)));
      if (l == symbol_to_id_.end()) continue;
      auto r = symbol_to_id_.find(AsAbsl(std::string_view(s).substr(k)));
      if (r == symbol_to_id_.end()) continue;
      merger_.AddMerge(l->second, r->second, rank, id);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special,
                                                       bool parse_special) const {
  size_t bad = 0;
  if (!IsValidUtf8(text, &bad)) {
    return absl::InvalidArgumentError(
        absl::StrCat("text to encode is not valid UTF-8 (byte offset ", bad, ")"));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special && add_bos_) ids.push_back(bos_id_);
  std::vector<Segment> segments;
  added_.Split(text, parse_special, &segments);
  for (const Segment& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
    } else {
      DSPARK_RETURN_IF_ERROR(EncodeText(seg.text, seg.text.data() == text.data(), &ids));
    }
  }
  if (add_special && add_eos_) ids.push_back(eos_id_);
  return ids;
}

absl::Status Tokenizer::EncodeText(std::string_view text, bool at_input_start,
                                   std::vector<int32_t>* ids) const {
  std::string buf;
  if (!text_ops_.empty()) {
    buf.assign(text);
    std::string tmp;
    for (const TextOp& op : text_ops_) {
      switch (op.type) {
        case TextOp::Type::kNormalize:
          if (Normalize(op.form, buf, &tmp)) buf.swap(tmp);
          break;
        case TextOp::Type::kPrepend:
          if (buf.empty() || (op.first_only && !at_input_start) ||
              (op.only_if_missing && absl::StartsWith(buf, op.a))) {
            break;
          }
          buf.insert(0, op.a);
          break;
        case TextOp::Type::kReplace:
          if (!op.a.empty() && buf.find(op.a) != std::string::npos) {
            buf = absl::StrReplaceAll(buf, {{op.a, op.b}});
          }
          break;
      }
    }
    text = buf;
  }
  if (text.empty()) return absl::OkStatus();
  const bool char_bpe = model_ == ModelType::kCharBpe;
  if (splitter_->num_steps() == 0) {
    char_bpe ? EncodeCharWord(text, ids) : EncodeWord(text, ids);
    return absl::OkStatus();
  }
  thread_local std::vector<std::string_view> pieces;
  DSPARK_RETURN_IF_ERROR(splitter_->Split(text, &pieces));
  for (std::string_view p : pieces) char_bpe ? EncodeCharWord(p, ids) : EncodeWord(p, ids);
  return absl::OkStatus();
}

void Tokenizer::EncodeCharWord(std::string_view word, std::vector<int32_t>* ids) const {
  if (ignore_merges_) {  // the whole word may be a token: keep it whole
    EncodeWord(word, ids);
    return;
  }
  size_t start = 0;
  for (size_t p = word.find(kSpmSpace, 1); p != std::string_view::npos;
       p = word.find(kSpmSpace, p + kSpmSpace.size())) {
    size_t c = p - 1;
    while (c > start && (static_cast<uint8_t>(word[c]) & 0xC0) == 0x80) --c;
    std::string_view before = word.substr(c, p - c);
    if (before == kSpmSpace || joins_before_space_.contains(AsAbsl(before))) continue;
    EncodeWord(word.substr(start, p - start), ids);
    start = p;
  }
  EncodeWord(word.substr(start), ids);
}

void Tokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  const bool byte_level = model_ == ModelType::kByteLevelBpe;
  if (word.size() == 1) {
    auto b = static_cast<uint8_t>(word[0]);
    int32_t id = byte_level ? byte_ids_[b] : ascii_ids_[b];
    if (id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  if (ignore_merges_) {
    auto it = symbol_to_id_.find(AsAbsl(word));
    if (it != symbol_to_id_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWord;
  if (cacheable && cache_.Lookup(word, ids)) return;
  thread_local std::vector<int32_t> syms;
  syms.clear();
  if (byte_level) {
    ByteSymbols(word, &syms);
  } else {
    CharSymbols(word, &syms);
  }
  merger_.Merge(&syms);
  const size_t start = ids->size();
  for (int32_t s : syms) {
    if (s >= 0) {
      ids->push_back(s);
    } else if (unk_id_ >= 0) {
      ids->push_back(unk_id_);
    }
  }
  if (cacheable) cache_.Insert(word, ids->data() + start, ids->size() - start);
}

void Tokenizer::ByteSymbols(std::string_view word, std::vector<int32_t>* syms) const {
  for (char c : word) syms->push_back(byte_ids_[static_cast<uint8_t>(c)]);
}

void Tokenizer::CharSymbols(std::string_view word, std::vector<int32_t>* syms) const {
  bool last_unk = false;
  size_t i = 0;
  while (i < word.size()) {
    auto lead = static_cast<uint8_t>(word[i]);
    size_t len = std::min(Utf8SeqLen(lead), word.size() - i);
    int32_t id = -1;
    if (lead < 0x80) {
      id = ascii_ids_[lead];
    } else {
      auto it = symbol_to_id_.find(AsAbsl(word.substr(i, len)));
      if (it != symbol_to_id_.end()) id = it->second;
    }
    if (id >= 0) {
      syms->push_back(id);
      last_unk = false;
    } else if (byte_fallback_ && all_byte_tokens_) {
      for (size_t k = 0; k < len; ++k)
        syms->push_back(byte_ids_[static_cast<uint8_t>(word[i + k])]);
      last_unk = false;
    } else if (unk_id_ >= 0 && !(fuse_unk_ && last_unk)) {
      syms->push_back(unk_id_);
      last_unk = true;
    }
    i += len;
  }
}

absl::StatusOr<std::string_view> Tokenizer::TokenBytes(int32_t id, bool skip_special) const {
  if (id < 0 || id >= vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " is outside the vocabulary [0, ", vocab_size(), ")"));
  }
  if (skip_special && IsSpecial(id)) return std::string_view();
  return std::string_view(pieces_[id]);
}

absl::StatusOr<std::string> Tokenizer::Decode(std::span<const int32_t> ids,
                                              bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    DSPARK_ASSIGN_OR_RETURN(std::string_view piece, TokenBytes(id, skip_special));
    bytes.append(piece);
  }
  std::string_view view = bytes;
  if (strip_leading_space_ && !view.empty() && view[0] == ' ') view.remove_prefix(1);
  if (IsValidUtf8(view)) return std::string(view);
  return SanitizeUtf8(view);
}

std::string Tokenizer::TokenText(int32_t id) const {
  return id >= 0 && id < vocab_size() ? tokens_[id] : std::string();
}

std::optional<int32_t> Tokenizer::TokenId(std::string_view text) const {
  auto it = text_to_id_.find(AsAbsl(text));
  if (it == text_to_id_.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return false;
  return kinds_[id] == TokenKind::kControl || kinds_[id] == TokenKind::kUnknown;
}

}  // namespace dspark::tokenizer
