#include "common/tokenizer/internal/jinja_lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer::jinja {
namespace {

// Byte length of the whitespace code point starting at s[i], or 0.
size_t SpaceLenAt(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  const unsigned char b = s[i];
  if (b < 0x80) return IsPySpace(b) ? 1 : 0;
  for (size_t len = 2; len <= 3 && i + len <= s.size(); ++len) {
    const std::u32string u = DecodeUtf8(s.substr(i, len));
    if (u.size() == 1 && u[0] >= 0x80 && u[0] < 0xD800 && IsPySpace(u[0])) return len;
  }
  return 0;
}

// Byte length of the whitespace code point ending just before s[end], or 0.
size_t SpaceLenBefore(std::string_view s, size_t end) {
  for (size_t len = 1; len <= 3 && len <= end; ++len) {
    if (SpaceLenAt(s, end - len) == len) return len;
  }
  return 0;
}

std::string_view RStrip(std::string_view s) {
  size_t end = s.size();
  while (size_t n = SpaceLenBefore(s, end)) end -= n;
  return s.substr(0, end);
}

bool AllSpace(std::string_view s) {
  size_t i = 0;
  while (size_t n = SpaceLenAt(s, i)) i += n;
  return i == s.size();
}

bool IsNameStart(unsigned char c) { return absl::ascii_isalpha(c) || c == '_' || c >= 0x80; }
bool IsNameChar(unsigned char c) { return IsNameStart(c) || absl::ascii_isdigit(c); }

constexpr std::string_view kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                           "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                           ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  absl::StatusOr<std::vector<Token>> Run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      const size_t open = FindTagStart(pos);
      if (open == std::string::npos) {
        EmitText(std::string_view(src_).substr(pos), pos);
        break;
      }
      const char type = src_[open + 1];
      size_t after = open + 2;
      char sign = 0;
      if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) {
        sign = src_[after];
        ++after;
      }
      std::string_view text = std::string_view(src_).substr(pos, open - pos);
      text = ApplyLeftControl(text, sign, type != '{');
      EmitText(text, pos);
      if (type == '#') {
        auto end = LexComment(open, after);
        if (!end.ok()) return end.status();
        pos = *end;
      } else if (size_t raw_end = MatchRawBegin(after); type == '%' && raw_end != 0) {
        auto end = LexRaw(open, raw_end);
        if (!end.ok()) return end.status();
        pos = *end;
      } else {
        auto end = LexTag(open, after, type == '%');
        if (!end.ok()) return end.status();
        pos = *end;
      }
    }
    Push(Token::Kind::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  Pos PosAt(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const size_t line = it - line_starts_.begin();
    return Pos{static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
  }

  absl::Status Error(size_t offset, std::string_view msg) const {
    const Pos p = PosAt(offset);
    return absl::InvalidArgumentError(Cat("line ", p.line, ":", p.col, ": ", msg));
  }

  Token& Push(Token::Kind kind, std::string text, size_t offset) {
    tokens_.push_back(Token{kind, std::move(text), 0, 0, PosAt(offset)});
    return tokens_.back();
  }

  void EmitText(std::string_view text, size_t offset) {
    if (!text.empty()) Push(Token::Kind::kText, std::string(text), offset);
  }

  size_t FindTagStart(size_t pos) const {
    while (true) {
      pos = src_.find('{', pos);
      if (pos == std::string::npos || pos + 1 >= src_.size()) return std::string::npos;
      const char c = src_[pos + 1];
      if (c == '{' || c == '%' || c == '#') return pos;
      ++pos;
    }
  }

  // "-" strips all whitespace before a tag; lstrip_blocks strips the spaces
  // between a line start and a block or comment tag unless "+" is given.
  std::string_view ApplyLeftControl(std::string_view text, char sign, bool lstrip) const {
    if (sign == '-') return RStrip(text);
    if (sign == '+' || !lstrip) return text;
    const size_t nl = text.rfind('\n');
    const size_t line_pos = nl == std::string_view::npos ? 0 : nl + 1;
    if ((line_pos > 0 || line_starting_) && line_pos < text.size() &&
        AllSpace(text.substr(line_pos))) {
      return text.substr(0, line_pos);
    }
    return text;
  }

  // Consumes an end delimiter's right-hand whitespace control: "-" eats all
  // whitespace, a plain block/comment end eats one newline (trim_blocks).
  size_t ApplyRightControl(size_t pos, char sign, bool trim_newline) {
    if (sign == '-') {
      while (size_t n = SpaceLenAt(src_, pos)) pos += n;
    } else if (sign == 0 && trim_newline && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    line_starting_ = pos > 0 && src_[pos - 1] == '\n';
    return pos;
  }

  // Matches "+%}", "-%}" or "%}" at pos; returns its length and sign.
  size_t MatchBlockEnd(size_t pos, std::string_view close, char* sign) const {
    if (src_.compare(pos, close.size(), close) == 0) {
      *sign = 0;
      return close.size();
    }
    if (pos < src_.size() && (src_[pos] == '-' || src_[pos] == '+') &&
        src_.compare(pos + 1, close.size(), close) == 0) {
      *sign = src_[pos];
      return close.size() + 1;
    }
    return 0;
  }

  absl::StatusOr<size_t> LexComment(size_t open, size_t pos) {
    for (; pos < src_.size(); ++pos) {
      char sign = 0;
      if (size_t n = MatchBlockEnd(pos, "#}", &sign)) return ApplyRightControl(pos + n, sign, true);
    }
    return Error(open, "missing end of comment tag");
  }

  // After "{%" and its sign: "\s*raw\s*(-%}|%})"; returns the offset after it or 0.
  size_t MatchRawBegin(size_t pos) const {
    while (size_t n = SpaceLenAt(src_, pos)) pos += n;
    if (src_.compare(pos, 3, "raw") != 0) return 0;
    pos += 3;
    while (size_t n = SpaceLenAt(src_, pos)) pos += n;
    if (src_.compare(pos, 2, "%}") == 0) return pos + 2;
    if (src_.compare(pos, 3, "-%}") == 0) {
      pos += 3;
      while (size_t n = SpaceLenAt(src_, pos)) pos += n;
      return pos;
    }
    return 0;
  }

  absl::StatusOr<size_t> LexRaw(size_t open, size_t body) {
    line_starting_ = src_[body - 1] == '\n';
    for (size_t p = src_.find("{%", body); p != std::string::npos; p = src_.find("{%", p + 1)) {
      size_t q = p + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      while (size_t n = SpaceLenAt(src_, q)) q += n;
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q += 6;
      while (size_t n = SpaceLenAt(src_, q)) q += n;
      char end_sign = 0;
      const size_t n = MatchBlockEnd(q, "%}", &end_sign);
      if (n == 0) continue;
      EmitText(ApplyLeftControl(std::string_view(src_).substr(body, p - body), sign, true), body);
      return ApplyRightControl(q + n, end_sign, true);
    }
    return Error(open, "missing end of raw directive");
  }

  absl::StatusOr<size_t> LexTag(size_t open, size_t pos, bool block) {
    Push(block ? Token::Kind::kBlockBegin : Token::Kind::kVarBegin, "", open);
    const std::string_view close = block ? "%}" : "}}";
    std::vector<char> brackets;
    while (true) {
      if (pos >= src_.size()) {
        return Error(open, block ? "missing end of block tag '%}'" : "missing end of tag '}}'");
      }
      char sign = 0;
      if (brackets.empty()) {
        if (size_t n = MatchBlockEnd(pos, close, &sign); n != 0 && (block || sign != '+')) {
          Push(block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, "", pos);
          return ApplyRightControl(pos + n, sign, block);
        }
      }
      if (size_t n = SpaceLenAt(src_, pos)) {
        pos += n;
        continue;
      }
      const unsigned char c = src_[pos];
      if (absl::ascii_isdigit(c)) {
        auto next = LexNumber(pos);
        if (!next.ok()) return next.status();
        pos = *next;
      } else if (IsNameStart(c)) {
        const size_t start = pos;
        while (pos < src_.size() && IsNameChar(src_[pos])) ++pos;
        Push(Token::Kind::kName, src_.substr(start, pos - start), start);
      } else if (c == '\'' || c == '"') {
        auto next = LexString(pos);
        if (!next.ok()) return next.status();
        pos = *next;
      } else {
        std::string_view op;
        for (std::string_view candidate : kOperators) {
          if (src_.compare(pos, candidate.size(), candidate) == 0) {
            op = candidate;
            break;
          }
        }
        if (op.empty()) return Error(pos, Cat("unexpected char '", src_.substr(pos, 1), "'"));
        if (op == "(" || op == "[" || op == "{") {
          brackets.push_back(op == "(" ? ')' : (op == "[" ? ']' : '}'));
        } else if (op == ")" || op == "]" || op == "}") {
          if (brackets.empty()) return Error(pos, Cat("unexpected '", op, "'"));
          if (brackets.back() != op[0]) {
            return Error(pos, Cat("unexpected '", op, "', expected '",
                                  std::string(1, brackets.back()), "'"));
          }
          brackets.pop_back();
        }
        Push(Token::Kind::kOp, std::string(op), pos);
        pos += op.size();
      }
    }
  }

  absl::StatusOr<size_t> LexNumber(size_t start) {
    auto digits = [&](size_t p, auto is_digit) {
      // (_?digit)+ with the first digit mandatory.
      const size_t begin = p;
      while (p < src_.size()) {
        if (is_digit(src_[p])) {
          ++p;
        } else if (src_[p] == '_' && p > begin && p + 1 < src_.size() && is_digit(src_[p + 1])) {
          ++p;
        } else {
          break;
        }
      }
      return p;
    };
    auto dec = [](char c) { return absl::ascii_isdigit(c); };
    size_t p = start;
    const char next = start + 1 < src_.size() ? absl::ascii_tolower(src_[start + 1]) : 0;
    if (src_[start] == '0' && (next == 'b' || next == 'o' || next == 'x')) {
      const int base = next == 'b' ? 2 : (next == 'o' ? 8 : 16);
      auto is_digit = [base](char c) {
        return base == 16 ? absl::ascii_isxdigit(c) : (c >= '0' && c < '0' + base);
      };
      p = digits(start + 2, is_digit);
      std::string text;
      for (size_t i = start + 2; i < p; ++i) {
        if (src_[i] != '_') text.push_back(src_[i]);
      }
      if (text.empty()) return Error(start, "invalid integer literal");
      errno = 0;
      const long long v = std::strtoll(text.c_str(), nullptr, base);
      if (errno == ERANGE) return Error(start, "integer literal too large");
      Push(Token::Kind::kInt, src_.substr(start, p - start), start).int_value = v;
      return p;
    }
    p = digits(start, dec);
    bool is_float = false;
    if (p + 1 < src_.size() && src_[p] == '.' && dec(src_[p + 1])) {
      p = digits(p + 1, dec);
      is_float = true;
    }
    if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && dec(src_[q])) {
        p = digits(q, dec);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = start; i < p; ++i) {
      if (src_[i] != '_') text.push_back(src_[i]);
    }
    if (is_float) {
      Push(Token::Kind::kFloat, text, start).float_value = std::strtod(text.c_str(), nullptr);
      return p;
    }
    errno = 0;
    const long long v = std::strtoll(text.c_str(), nullptr, 10);
    if (errno == ERANGE) return Error(start, "integer literal too large");
    Push(Token::Kind::kInt, text, start).int_value = v;
    return p;
  }

  // Python "unicode-escape" decoding of a quoted literal.
  absl::StatusOr<size_t> LexString(size_t start) {
    const char quote = src_[start];
    std::string value;
    size_t p = start + 1;
    auto hex = [&](size_t at, int n, char32_t* out) {
      if (at + n > src_.size()) return false;
      uint32_t v = 0;
      for (int i = 0; i < n; ++i) {
        const char c = src_[at + i];
        if (!absl::ascii_isxdigit(c)) return false;
        v = v * 16 + (absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10);
      }
      *out = v;
      return v <= 0x10FFFF;
    };
    while (true) {
      if (p >= src_.size()) return Error(start, "unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        value.push_back(c);
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) return Error(start, "unterminated string literal");
      const char e = src_[p + 1];
      p += 2;
      char32_t cp = 0;
      switch (e) {
        case '\n':
          break;
        case '\\':
        case '\'':
        case '"':
          value.push_back(e);
          break;
        case 'a':
          value.push_back('\a');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'n':
          value.push_back('\n');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          if (!hex(p, n, &cp))
            return Error(p - 2, Cat("truncated \\", std::string(1, e), " escape"));
          AppendUtf8(cp, &value);
          p += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            cp = e - '0';
            for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i) {
              cp = cp * 8 + (src_[p++] - '0');
            }
            AppendUtf8(cp, &value);
          } else {
            value.push_back('\\');
            value.push_back(e);
          }
      }
    }
    Push(Token::Kind::kString, std::move(value), start);
    return p + 1;
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  bool line_starting_ = true;
};

// Jinja's newline handling: "\r\n" and "\r" become "\n", and one trailing
// newline is dropped (keep_trailing_newline=False).
std::string NormalizeNewlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source) {
  return Lexer(NormalizeNewlines(source)).Run();
}

}  // namespace dspark::tokenizer::jinja
