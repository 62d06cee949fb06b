// Pre-tokenization by regular expressions (PCRE2, UTF + UCP, JIT-compiled
// when available): a sequence of split steps, each applied to every piece the
// previous step produced, as the Hugging Face `Sequence[Split, ...]`
// pre-tokenizers and llama.cpp's per-family regex lists do.
//
//   DSPARK_ASSIGN_OR_RETURN(auto s, RegexSplitter::Create({{kGpt2Pattern}}));
//   std::vector<std::string_view> pieces;
//   DSPARK_RETURN_IF_ERROR(s->Split(text, &pieces));
//
// Immutable after Create; Split is thread-safe (match state is per thread).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dspark::tokenizer {

// What a step does with the text its pattern matches (Hugging Face's
// SplitDelimiterBehavior).
enum class SplitBehavior {
  kIsolated,            // matches and the text between them become pieces
  kRemoved,             // matches are dropped
  kMergedWithPrevious,  // each match is appended to the piece before it
  kMergedWithNext,      // each match is prepended to the piece after it
  kContiguous,          // runs of adjacent matches become one piece
};

struct SplitStep {
  std::string pattern;  // PCRE2 syntax (compatible with Rust regex / JS /u)
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;  // the text between matches is the delimiter
};

// Well-known patterns.
inline constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
inline constexpr const char* kLlama3Pattern =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
inline constexpr const char* kQwen2Pattern =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The split steps llama.cpp uses for a GGUF `tokenizer.ggml.pre` value of a
// byte-level BPE vocabulary. NotFound for families not supported here.
absl::StatusOr<std::vector<SplitStep>> GgufPreTokenizerSteps(const std::string& pre);

// Escapes `literal` so that it matches itself as a PCRE2 pattern.
std::string RegexEscape(std::string_view literal);

class RegexSplitter {
 public:
  // InvalidArgument (naming the pattern and PCRE2's message) if a pattern
  // does not compile.
  static absl::StatusOr<std::unique_ptr<RegexSplitter>> Create(std::vector<SplitStep> steps);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Splits valid UTF-8 `text` into `*pieces` (views into `text`, never
  // empty). With no steps the whole text is one piece. Errors only when
  // PCRE2 fails at match time (resource limits).
  absl::Status Split(std::string_view text, std::vector<std::string_view>* pieces) const;

  size_t num_steps() const { return steps_.size(); }

 private:
  struct Compiled;
  explicit RegexSplitter(std::vector<SplitStep> steps);
  absl::Status SplitOne(const Compiled& re, const SplitStep& step, std::string_view piece,
                        std::vector<std::string_view>* out) const;

  std::vector<SplitStep> steps_;
  std::vector<std::unique_ptr<Compiled>> compiled_;  // one per step
};

}  // namespace dspark::tokenizer
