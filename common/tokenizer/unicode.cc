#include "common/tokenizer/unicode.h"

#include <array>

#include "unicode/bytestream.h"
#include "unicode/normalizer2.h"
#include "unicode/stringpiece.h"
#include "unicode/utypes.h"

namespace dspark::tokenizer {
namespace {

struct ByteTables {
  std::array<char32_t, 256> byte_to_cp;
  std::array<int16_t, 324> cp_to_byte;  // all mapped code points are < 324
};

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the
// other 68 bytes to U+0100.. in byte order.
const ByteTables& Tables() {
  static const ByteTables tables = [] {
    ByteTables t;
    t.cp_to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(next++);
      t.byte_to_cp[b] = cp;
      t.cp_to_byte[cp] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return tables;
}

// Valid second-byte range for a lead byte (WHATWG / Unicode table 3-7).
inline bool SecondByteOk(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0:
      return b >= 0xA0 && b <= 0xBF;
    case 0xED:
      return b >= 0x80 && b <= 0x9F;
    case 0xF0:
      return b >= 0x90 && b <= 0xBF;
    case 0xF4:
      return b >= 0x80 && b <= 0x8F;
    default:
      return b >= 0x80 && b <= 0xBF;
  }
}

// Expected total length for a valid lead byte, 0 if `lead` cannot start one.
inline int LeadLen(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

enum class SeqStatus { kValid, kInvalid, kTruncated };

// Examines the sequence at s[i]. kValid: `*len` bytes form a character.
// kInvalid: the first `*len` bytes (>= 1) are a maximal invalid subpart.
// kTruncated: the input ends inside a sequence that is valid so far.
SeqStatus Examine(std::string_view s, size_t i, size_t* len) {
  uint8_t lead = static_cast<uint8_t>(s[i]);
  int need = LeadLen(lead);
  if (need == 0) {
    *len = 1;
    return SeqStatus::kInvalid;
  }
  for (int k = 1; k < need; ++k) {
    if (i + k >= s.size()) {
      *len = s.size() - i;
      return SeqStatus::kTruncated;
    }
    uint8_t b = static_cast<uint8_t>(s[i + k]);
    bool ok = k == 1 ? SecondByteOk(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      *len = k;
      return SeqStatus::kInvalid;
    }
  }
  *len = need;
  return SeqStatus::kValid;
}

const icu::Normalizer2* IcuNormalizer(NormalizationForm form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case NormalizationForm::kNfc:
      n = icu::Normalizer2::getNFCInstance(status);
      break;
    case NormalizationForm::kNfd:
      n = icu::Normalizer2::getNFDInstance(status);
      break;
    case NormalizationForm::kNfkc:
      n = icu::Normalizer2::getNFKCInstance(status);
      break;
    case NormalizationForm::kNfkd:
      n = icu::Normalizer2::getNFKDInstance(status);
      break;
    case NormalizationForm::kNone:
      return nullptr;
  }
  return U_SUCCESS(status) ? n : nullptr;
}

}  // namespace

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(std::string_view s, size_t* error_offset) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    if (Examine(s, i, &len) != SeqStatus::kValid) {
      if (error_offset != nullptr) *error_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

size_t DecodeUtf8Lossy(std::string_view bytes, bool final, std::string* out) {
  size_t i = 0;
  out->reserve(out->size() + bytes.size());
  while (i < bytes.size()) {
    size_t len;
    switch (Examine(bytes, i, &len)) {
      case SeqStatus::kValid:
        out->append(bytes.data() + i, len);
        break;
      case SeqStatus::kInvalid:
        AppendUtf8(kReplacementChar, out);
        break;
      case SeqStatus::kTruncated:
        if (!final) return i;
        AppendUtf8(kReplacementChar, out);
        break;
    }
    i += len;
  }
  return i;
}

std::string SanitizeUtf8(std::string_view bytes) {
  std::string out;
  DecodeUtf8Lossy(bytes, /*final=*/true, &out);
  return out;
}

char32_t ByteToUnicode(uint8_t b) { return Tables().byte_to_cp[b]; }

int UnicodeToByte(char32_t cp) {
  return cp < Tables().cp_to_byte.size() ? Tables().cp_to_byte[cp] : -1;
}

bool ByteLevelDecode(std::string_view text, std::string* out) {
  bool all_mapped = true;
  size_t i = 0;
  while (i < text.size()) {
    size_t len;
    if (Examine(text, i, &len) != SeqStatus::kValid) {
      out->append(text.data() + i, len);  // not UTF-8: keep the bytes
      all_mapped = false;
      i += len;
      continue;
    }
    const auto* p = reinterpret_cast<const uint8_t*>(text.data() + i);
    char32_t cp = len == 1   ? p[0]
                  : len == 2 ? ((p[0] & 0x1F) << 6) | (p[1] & 0x3F)
                  : len == 3 ? ((p[0] & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F)
                             : ((p[0] & 0x07) << 18) | ((p[1] & 0x3F) << 12) |
                                   ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    int b = UnicodeToByte(cp);
    if (b >= 0) {
      out->push_back(static_cast<char>(b));
    } else {
      out->append(text.data() + i, len);
      all_mapped = false;
    }
    i += len;
  }
  return all_mapped;
}

std::string ByteLevelEncode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) AppendUtf8(ByteToUnicode(static_cast<uint8_t>(c)), &out);
  return out;
}

bool Normalize(NormalizationForm form, std::string_view text, std::string* out) {
  if (form == NormalizationForm::kNone) {
    out->assign(text);
    return true;
  }
  // Characters below U+0300 (lead byte < 0xCC) are NFC-stable and never
  // combine with what precedes them; for the other forms only ASCII is safe.
  const uint8_t limit = form == NormalizationForm::kNfc ? 0xCC : 0x80;
  bool may_change = false;
  for (char c : text) {
    if (static_cast<uint8_t>(c) >= limit) {
      may_change = true;
      break;
    }
  }
  if (!may_change) {
    out->assign(text);
    return true;
  }
  const icu::Normalizer2* n = IcuNormalizer(form);
  if (n == nullptr) return false;
  UErrorCode status = U_ZERO_ERROR;
  icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
  if (n->isNormalizedUTF8(piece, status) && U_SUCCESS(status)) {
    out->assign(text);
    return true;
  }
  status = U_ZERO_ERROR;
  out->clear();
  icu::StringByteSink<std::string> sink(out);
  n->normalizeUTF8(0, piece, sink, nullptr, status);
  return U_SUCCESS(status);
}

}  // namespace dspark::tokenizer
