// UTF-8 helpers for the tokenizers: strict validation, lossy decoding that is
// stable under streaming (WHATWG "maximal subpart" replacement), the GPT-2
// byte <-> unicode table used by byte-level BPE, and Unicode normalization
// (NFC/NFD/NFKC/NFKD through ICU). All functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace dspark::tokenizer {

// Debian's Abseil has its own string_view type; heterogeneous lookups in
// absl containers need it.
inline absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }

inline constexpr char32_t kReplacementChar = 0xFFFD;
// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's word-boundary marker.
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

// Appends the UTF-8 encoding of `cp` (must be a scalar value) to `out`.
void AppendUtf8(char32_t cp, std::string* out);

// Length in bytes of the UTF-8 sequence that starts with `lead` (1 for ASCII
// and for bytes that cannot start a sequence).
inline size_t Utf8SeqLen(uint8_t lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return lead < 0xF8 ? 4 : 1;
}

// Strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF). On
// failure `*error_offset` (if not null) gets the offset of the bad sequence.
bool IsValidUtf8(std::string_view s, size_t* error_offset = nullptr);

// Decodes `bytes` into valid UTF-8, replacing each maximal invalid subpart
// with U+FFFD. If `final` is false, an incomplete (but so far valid) sequence
// at the end is left undecoded. Returns the number of bytes consumed. Feeding
// a byte stream in pieces (carrying the unconsumed tail forward) yields
// exactly the output of decoding the concatenation at once.
size_t DecodeUtf8Lossy(std::string_view bytes, bool final, std::string* out);

// Convenience: DecodeUtf8Lossy(bytes, true, &result).
std::string SanitizeUtf8(std::string_view bytes);

// GPT-2 byte-level mapping: every byte maps to one printable code point
// ('Ġ' for space, 'Ċ' for '\n', ...).
char32_t ByteToUnicode(uint8_t b);
// Inverse of ByteToUnicode; -1 for code points outside the table.
int UnicodeToByte(char32_t cp);

// Decodes a byte-level token string ("Ġhello") into its raw bytes (" hello").
// Code points outside the GPT-2 table are kept as their UTF-8 encoding (that
// is what the Hugging Face ByteLevel decoder does). Returns false if the text
// contains any such code point.
bool ByteLevelDecode(std::string_view token_text, std::string* out);
// Encodes raw bytes into byte-level form (" hello" -> "Ġhello").
std::string ByteLevelEncode(std::string_view bytes);

enum class NormalizationForm { kNone, kNfc, kNfd, kNfkc, kNfkd };

// Normalizes valid UTF-8 `text` into `*out`. Returns false if ICU failed (the
// caller then keeps the text as is). Fast path: text that cannot change under
// the form (for NFC: no byte >= 0xCC) is copied without calling ICU.
bool Normalize(NormalizationForm form, std::string_view text, std::string* out);

}  // namespace dspark::tokenizer
