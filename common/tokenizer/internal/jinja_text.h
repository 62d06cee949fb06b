// Python `str` semantics over UTF-8 bytes for the Jinja interpreter: code
// point decoding, whitespace, strip/split/replace, case mapping and float
// repr, each matching CPython where chat templates can observe it. Pure
// functions; thread-safe.
//
// Invalid UTF-8 bytes decode to U+DC80..U+DCFF (Python's "surrogateescape")
// and encode back to the same byte, so slicing never alters input bytes.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"

namespace dspark::tokenizer::jinja {

// absl::StrCat for std::string_view pieces (Debian's Abseil has its own
// string_view type): Cat("a", sv, 42) == "a...42".
inline void CatPiece(std::string* out, std::string_view s) { out->append(s); }
inline void CatPiece(std::string* out, const char* s) { out->append(s); }
inline void CatPiece(std::string* out, const std::string& s) { out->append(s); }
inline void CatPiece(std::string* out, absl::string_view s) { out->append(s.data(), s.size()); }
template <std::integral T>
requires(!std::same_as<T, char> && !std::same_as<T, bool>) void CatPiece(std::string* out, T v) {
  out->append(std::to_string(v));
}
template <typename... Args>
void CatAppend(std::string* out, const Args&... args) {
  (CatPiece(out, args), ...);
}
template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (CatPiece(&out, args), ...);
  return out;
}

std::u32string DecodeUtf8(std::string_view s);
void AppendUtf8(char32_t c, std::string* out);
std::string EncodeUtf8(std::u32string_view s);
// Number of code points (len() of the Python string).
int64_t CodePointCount(std::string_view s);

// Linear-time substring search (Knuth-Morris-Pratt), so that `in`, find,
// count, split and replace stay linear on hostile input; std::string::find
// is O(haystack * needle) in the worst case.
class SubstringFinder {
 public:
  explicit SubstringFinder(std::string_view needle);
  // First occurrence starting at or after `from`, or npos.
  size_t Find(std::string_view hay, size_t from = 0) const;
  // Last occurrence ending at or before `end`, or npos.
  size_t RFind(std::string_view hay, size_t end) const;

 private:
  static std::vector<size_t> Failure(std::string_view p);

  std::string needle_;
  std::string reversed_;
  std::vector<size_t> fail_;
  std::vector<size_t> reversed_fail_;
};

// str.isspace() for one code point.
bool IsPySpace(char32_t c);
// str.isalpha() for one code point: cased letters plus the main letter
// blocks of other scripts (approximate outside them).
bool PyIsAlpha(char32_t c);

// str.strip / lstrip / rstrip; `chars` absent strips whitespace.
std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, bool left,
                    bool right);
// str.split / str.rsplit; `sep` absent splits on whitespace runs. maxsplit < 0
// means no limit. An empty `sep` is the caller's error to report.
std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit, bool from_right);
// str.splitlines() without keepends.
std::vector<std::string> PySplitLines(std::string_view s);
// str.replace(old, new, count); count < 0 replaces all.
std::string PyReplace(std::string_view s, std::string_view old, std::string_view repl,
                      int64_t count);

// Case mapping covers ASCII, Latin-1, Greek and Cyrillic; other scripts pass
// through unchanged.
char32_t PyToUpper(char32_t c);
char32_t PyToLower(char32_t c);
bool PyIsCased(char32_t c);
std::string PyUpper(std::string_view s);
std::string PyLower(std::string_view s);
std::string PyTitle(std::string_view s);       // str.title()
std::string PyCapitalize(std::string_view s);  // str.capitalize()
// Jinja's `title` filter: capitalises after "-", whitespace and opening brackets.
std::string JinjaTitle(std::string_view s);

// repr(float) / str(float): shortest round-trip digits, Python's layout.
std::string PyFloatRepr(double v);
// repr(str): quotes and escapes as CPython does.
std::string PyStringRepr(std::string_view s);

}  // namespace dspark::tokenizer::jinja
