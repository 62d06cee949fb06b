#include "common/tokenizer/internal/jinja_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"

namespace dspark::tokenizer::jinja {
namespace {

constexpr char32_t kEscapeBase = 0xDC00;  // invalid byte b decodes to 0xDC00 + b

bool IsLineBreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

// Code points that repr() escapes (str.isprintable() is false), approximated
// by the ranges that occur in practice.
bool IsNonPrintable(char32_t c) {
  return c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
         (c >= 0x205F && c <= 0x206F) || c == 0x3000 || (c >= 0xD800 && c <= 0xF8FF) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB);
}

}  // namespace

std::u32string DecodeUtf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char b = s[i];
    int len = 0;
    char32_t cp = 0;
    if (b < 0x80) {
      len = 1;
      cp = b;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4;
      cp = b & 0x07;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const unsigned char cb = s[i + k];
      if ((cb & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cb & 0x3F);
    }
    // Reject overlong forms, surrogates and out-of-range values.
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
               (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))) {
      ok = false;
    }
    if (!ok) {
      out.push_back(kEscapeBase + b);
      ++i;
    } else {
      out.push_back(cp);
      i += len;
    }
  }
  return out;
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c >= kEscapeBase + 0x80 && c <= kEscapeBase + 0xFF) {
    out->push_back(static_cast<char>(c - kEscapeBase));
  } else if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string EncodeUtf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) AppendUtf8(c, &out);
  return out;
}

int64_t CodePointCount(std::string_view s) {
  bool ascii = true;
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      ascii = false;
      break;
    }
  }
  return ascii ? static_cast<int64_t>(s.size()) : static_cast<int64_t>(DecodeUtf8(s).size());
}

bool IsPySpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

SubstringFinder::SubstringFinder(std::string_view needle)
    : needle_(needle), reversed_(needle.rbegin(), needle.rend()) {
  fail_ = Failure(needle_);
  reversed_fail_ = Failure(reversed_);
}

std::vector<size_t> SubstringFinder::Failure(std::string_view p) {
  std::vector<size_t> fail(p.size(), 0);
  for (size_t i = 1, k = 0; i < p.size(); ++i) {
    while (k > 0 && p[i] != p[k]) k = fail[k - 1];
    if (p[i] == p[k]) ++k;
    fail[i] = k;
  }
  return fail;
}

size_t SubstringFinder::Find(std::string_view hay, size_t from) const {
  const size_t m = needle_.size();
  if (from > hay.size()) return std::string_view::npos;
  if (m == 0) return from;
  for (size_t i = from, k = 0; i < hay.size(); ++i) {
    while (k > 0 && hay[i] != needle_[k]) k = fail_[k - 1];
    if (hay[i] == needle_[k]) ++k;
    if (k == m) return i + 1 - m;
  }
  return std::string_view::npos;
}

size_t SubstringFinder::RFind(std::string_view hay, size_t end) const {
  const size_t m = reversed_.size();
  end = std::min(end, hay.size());
  if (m == 0) return end;
  for (size_t i = end, k = 0; i > 0; --i) {
    const char c = hay[i - 1];
    while (k > 0 && c != reversed_[k]) k = reversed_fail_[k - 1];
    if (c == reversed_[k]) ++k;
    if (k == m) return i - 1;
  }
  return std::string_view::npos;
}

bool PyIsAlpha(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (c == 0xAA || c == 0xB5 || c == 0xBA) return true;
  if (c >= 0xC0 && c <= 0x24F) return c != 0xD7 && c != 0xF7;             // Latin
  return (c >= 0x370 && c <= 0x3FF && c != 0x37E && c != 0x387) ||        // Greek
         (c >= 0x400 && c <= 0x52F && !(c >= 0x482 && c <= 0x489)) ||     // Cyrillic
         (c >= 0x5D0 && c <= 0x5EA) || (c >= 0x620 && c <= 0x64A) ||      // Hebrew, Arabic
         (c >= 0x904 && c <= 0x939) ||                                    // Devanagari
         (c >= 0x1E00 && c <= 0x1FFF) ||                                  // Latin/Greek ext.
         (c >= 0x3041 && c <= 0x30FF && c != 0x30FB) ||                   // Kana
         (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) ||  // CJK
         (c >= 0xAC00 && c <= 0xD7A3);                                    // Hangul
}

std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, bool left,
                    bool right) {
  const std::u32string u = DecodeUtf8(s);
  absl::flat_hash_set<char32_t> set;
  if (chars) {
    for (char32_t c : DecodeUtf8(*chars)) set.insert(c);
  }
  auto strip = [&](char32_t c) { return chars ? set.contains(c) : IsPySpace(c); };
  size_t b = 0, e = u.size();
  if (left) {
    while (b < e && strip(u[b])) ++b;
  }
  if (right) {
    while (e > b && strip(u[e - 1])) --e;
  }
  return EncodeUtf8(std::u32string_view(u).substr(b, e - b));
}

std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep) {
    // Separator split: byte search is exact for valid UTF-8.
    if (!from_right) {
      const SubstringFinder finder(*sep);
      size_t start = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        const size_t at = finder.Find(s, start);
        if (at == std::string_view::npos) break;
        parts.emplace_back(s.substr(start, at - start));
        start = at + sep->size();
      }
      parts.emplace_back(s.substr(start));
    } else {
      const SubstringFinder finder(*sep);
      size_t end = s.size();
      std::vector<std::string> rev;
      while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
        const size_t at = finder.RFind(s, end);
        if (at == std::string_view::npos) break;
        rev.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
        end = at;
      }
      rev.emplace_back(s.substr(0, end));
      parts.assign(rev.rbegin(), rev.rend());
    }
    return parts;
  }
  std::u32string u = DecodeUtf8(s);
  if (from_right) std::reverse(u.begin(), u.end());
  size_t i = 0;
  while (true) {
    while (i < u.size() && IsPySpace(u[i])) ++i;
    if (i == u.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      size_t e = u.size();
      while (e > i && IsPySpace(u[e - 1])) --e;
      std::u32string rest = u.substr(i, e - i);
      if (from_right) std::reverse(rest.begin(), rest.end());
      parts.push_back(EncodeUtf8(rest));
      break;
    }
    size_t j = i;
    while (j < u.size() && !IsPySpace(u[j])) ++j;
    std::u32string word = u.substr(i, j - i);
    if (from_right) std::reverse(word.begin(), word.end());
    parts.push_back(EncodeUtf8(word));
    i = j;
  }
  if (from_right) std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> PySplitLines(std::string_view s) {
  const std::u32string u = DecodeUtf8(s);
  std::vector<std::string> lines;
  size_t start = 0, i = 0;
  while (i < u.size()) {
    if (IsLineBreak(u[i])) {
      lines.push_back(EncodeUtf8(std::u32string_view(u).substr(start, i - start)));
      if (u[i] == '\r' && i + 1 < u.size() && u[i + 1] == '\n') ++i;
      start = ++i;
    } else {
      ++i;
    }
  }
  if (start < u.size()) lines.push_back(EncodeUtf8(std::u32string_view(u).substr(start)));
  return lines;
}

std::string PyReplace(std::string_view s, std::string_view old, std::string_view repl,
                      int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts `repl` before every code point and at the end.
    const std::u32string u = DecodeUtf8(s);
    int64_t n = 0;
    for (char32_t c : u) {
      if (count < 0 || n < count) {
        out.append(repl);
        ++n;
      }
      AppendUtf8(c, &out);
    }
    if (count < 0 || n < count) out.append(repl);
    return out;
  }
  const SubstringFinder finder(old);
  size_t start = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t at = finder.Find(s, start);
    if (at == std::string_view::npos) break;
    out.append(s.substr(start, at - start));
    out.append(repl);
    start = at + old.size();
    ++n;
  }
  out.append(s.substr(start));
  return out;
}

char32_t PyToUpper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

char32_t PyToLower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

bool PyIsCased(char32_t c) { return PyToUpper(c) != c || PyToLower(c) != c || c == 0xDF; }

std::string PyUpper(std::string_view s) {
  std::string out;
  for (char32_t c : DecodeUtf8(s)) {
    if (c == 0xDF) {
      out.append("SS");  // German sharp s
    } else {
      AppendUtf8(PyToUpper(c), &out);
    }
  }
  return out;
}

std::string PyLower(std::string_view s) {
  std::string out;
  for (char32_t c : DecodeUtf8(s)) AppendUtf8(PyToLower(c), &out);
  return out;
}

std::string PyTitle(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (char32_t c : DecodeUtf8(s)) {
    AppendUtf8(prev_cased ? PyToLower(c) : PyToUpper(c), &out);
    prev_cased = PyIsCased(c);
  }
  return out;
}

std::string PyCapitalize(std::string_view s) {
  std::string out;
  bool first = true;
  for (char32_t c : DecodeUtf8(s)) {
    AppendUtf8(first ? PyToUpper(c) : PyToLower(c), &out);
    first = false;
  }
  return out;
}

std::string JinjaTitle(std::string_view s) {
  // Splits into words at runs of [-\s({\[<]; each word gets its first code
  // point upper-cased and the rest lower-cased.
  auto is_sep = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPySpace(c);
  };
  std::string out;
  bool word_start = true;
  for (char32_t c : DecodeUtf8(s)) {
    if (is_sep(c)) {
      AppendUtf8(c, &out);
      word_start = true;
    } else {
      AppendUtf8(word_start ? PyToUpper(c) : PyToLower(c), &out);
      word_start = false;
    }
  }
  return out;
}

std::string PyFloatRepr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.2345e+17"
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e_at = sci.find('e');
  const int exp = std::atoi(sci.c_str() + e_at + 1);
  std::string digits;
  for (size_t i = 0; i < e_at; ++i) {
    if (sci[i] != '.') digits.push_back(sci[i]);
  }
  if (exp < -4 || exp >= 16) {
    std::string mant = digits.substr(0, 1);
    if (digits.size() > 1) mant += "." + digits.substr(1);
    return absl::StrFormat("%s%se%c%02d", sign, mant, exp < 0 ? '-' : '+', std::abs(exp));
  }
  std::string out;
  if (exp < 0) {
    out = "0." + std::string(-exp - 1, '0') + digits;
  } else if (static_cast<int>(digits.size()) <= exp + 1) {
    out = digits + std::string(exp + 1 - digits.size(), '0') + ".0";
  } else {
    out = digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
  }
  return sign + out;
}

std::string PyStringRepr(std::string_view s) {
  const std::u32string u = DecodeUtf8(s);
  const bool has_single = u.find(U'\'') != std::u32string::npos;
  const bool has_double = u.find(U'"') != std::u32string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : u) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c == '\t') {
      out.append("\\t");
    } else if (IsNonPrintable(c)) {
      if (c < 0x100) {
        out.append(absl::StrFormat("\\x%02x", static_cast<uint32_t>(c)));
      } else {
        out.append(absl::StrFormat("\\u%04x", static_cast<uint32_t>(c)));
      }
    } else {
      AppendUtf8(c, &out);
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace dspark::tokenizer::jinja
