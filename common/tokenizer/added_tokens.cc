#include "common/tokenizer/added_tokens.h"

#include <algorithm>

namespace dspark::tokenizer {
namespace {

bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// Approximates HF's "word character" test: ASCII alphanumerics, '_', and any
// non-ASCII byte (letters of other scripts).
bool IsWordByte(char c) {
  auto u = static_cast<uint8_t>(c);
  return u >= 0x80 || u == '_' || (u >= '0' && u <= '9') ||
         ((u | 0x20) >= 'a' && (u | 0x20) <= 'z');
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  std::fill(std::begin(root_next_), std::end(root_next_), -1);
  nodes_.emplace_back();  // root
  for (int32_t t = 0; t < static_cast<int32_t>(tokens_.size()); ++t) {
    const std::string& s = tokens_[t].content;
    if (s.empty()) continue;
    int32_t node = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      auto b = static_cast<uint8_t>(s[i]);
      int32_t child = Child(node, b);
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
        auto& ch = nodes_[node].children;
        ch.insert(std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, int32_t{-1})),
                  {b, child});
        if (node == 0) root_next_[b] = child;
      }
      node = child;
    }
    // On duplicate content the first token wins.
    if (nodes_[node].token < 0) nodes_[node].token = t;
  }
}

int32_t AddedTokenMatcher::Child(int32_t node, uint8_t b) const {
  if (node == 0) return root_next_[b];
  const auto& ch = nodes_[node].children;
  for (const auto& [byte, idx] : ch) {
    if (byte == b) return idx;
    if (byte > b) break;
  }
  return -1;
}

int32_t AddedTokenMatcher::LongestAt(std::string_view text, size_t pos, bool parse_special,
                                     size_t* len) const {
  int32_t best = -1;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = Child(node, static_cast<uint8_t>(text[i]));
    if (node < 0) break;
    int32_t t = nodes_[node].token;
    if (t < 0 || (tokens_[t].special && !parse_special)) continue;
    const AddedToken& tok = tokens_[t];
    if (tok.single_word) {
      bool left_ok = pos == 0 || !IsWordByte(text[pos - 1]);
      bool right_ok = i + 1 >= text.size() || !IsWordByte(text[i + 1]);
      if (!left_ok || !right_ok) continue;
    }
    best = t;
    *len = i + 1 - pos;
  }
  return best;
}

void AddedTokenMatcher::Split(std::string_view text, bool parse_special,
                              std::vector<Segment>* out) const {
  out->clear();
  if (tokens_.empty()) {
    if (!text.empty()) out->push_back({text, -1});
    return;
  }
  size_t plain_begin = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (root_next_[static_cast<uint8_t>(text[pos])] < 0) {
      ++pos;
      continue;
    }
    size_t len = 0;
    int32_t t = LongestAt(text, pos, parse_special, &len);
    if (t < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[t];
    size_t plain_end = pos;
    if (tok.lstrip) {
      while (plain_end > plain_begin && IsSpace(text[plain_end - 1])) --plain_end;
    }
    if (plain_end > plain_begin) {
      out->push_back({text.substr(plain_begin, plain_end - plain_begin), -1});
    }
    out->push_back({{}, tok.id});
    pos += len;
    if (tok.rstrip) {
      while (pos < text.size() && IsSpace(text[pos])) ++pos;
    }
    plain_begin = pos;
  }
  if (plain_begin < text.size()) out->push_back({text.substr(plain_begin), -1});
}

}  // namespace dspark::tokenizer
