// Finds added / special token text in raw input before pre-tokenization:
// leftmost-longest match over a byte trie (what HF tokenizers' Aho-Corasick
// split and llama.cpp's special-token partition produce), with the lstrip /
// rstrip / single_word options of HF added tokens.
//
// Immutable after construction; Split is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dspark::tokenizer {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = true;       // matched only when the caller parses specials
  bool lstrip = false;       // absorbs whitespace to its left
  bool rstrip = false;       // absorbs whitespace to its right
  bool single_word = false;  // must not touch a word character on either side
};

// One piece of input: either plain text to tokenize or a matched token.
struct Segment {
  std::string_view text;  // plain text (when id < 0)
  int32_t id = -1;        // matched added token
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  // Splits `text` into plain-text and token segments. Special tokens are
  // recognised only if `parse_special`. Empty text segments are omitted.
  void Split(std::string_view text, bool parse_special, std::vector<Segment>* out) const;

  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Node {
    // Children sorted by byte.
    std::vector<std::pair<uint8_t, int32_t>> children;
    int32_t token = -1;  // index into tokens_
  };
  int32_t Child(int32_t node, uint8_t b) const;
  // Longest allowed token starting at `pos`: returns its index (or -1) and
  // its length in *len.
  int32_t LongestAt(std::string_view text, size_t pos, bool parse_special, size_t* len) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  int32_t root_next_[256];  // root's children, -1 if none
};

}  // namespace dspark::tokenizer
