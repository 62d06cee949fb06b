#include "common/tokenizer/incremental_detokenizer.h"

#include <algorithm>

#include "common/tokenizer/unicode.h"

namespace dspark::tokenizer {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

void IncrementalDetokenizer::SetStopStrings(std::vector<std::string> stop_strings) {
  stops_.clear();
  for (std::string& s : stop_strings) {
    if (!s.empty() && IsValidUtf8(s)) stops_.push_back(std::move(s));
  }
}

absl::StatusOr<std::string> IncrementalDetokenizer::Append(int32_t id) {
  absl::StatusOr<std::string_view> piece = tokenizer_.TokenBytes(id, skip_special_);
  if (!piece.ok()) return piece.status();
  if (stopped() || finished_) return std::string();
  std::string_view bytes = *piece;
  if (at_start_ && !bytes.empty()) {
    at_start_ = false;
    if (tokenizer_.strip_leading_space() && bytes[0] == ' ') bytes.remove_prefix(1);
  }
  pending_.append(bytes);
  std::string decoded;
  size_t used = DecodeUtf8Lossy(pending_, /*final=*/false, &decoded);
  pending_.erase(0, used);
  return Release(std::move(decoded), /*final=*/false);
}

std::string IncrementalDetokenizer::Finish() {
  if (finished_) return std::string();
  finished_ = true;
  if (stopped()) return std::string();
  std::string decoded;
  DecodeUtf8Lossy(pending_, /*final=*/true, &decoded);
  pending_.clear();
  return Release(std::move(decoded), /*final=*/true);
}

std::string IncrementalDetokenizer::Release(std::string decoded, bool final) {
  std::string text = std::move(held_);
  held_.clear();
  text.append(decoded);
  if (stops_.empty()) {
    emitted_.append(text);
    return text;
  }
  // Earliest match wins; at equal positions, the stop string listed first.
  size_t cut = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    size_t pos = text.find(stops_[i]);
    if (pos < cut) {
      cut = pos;
      stop_index_ = static_cast<int>(i);
    }
  }
  if (cut != std::string::npos) {
    text.resize(cut);
    emitted_.append(text);
    return text;
  }
  if (!final) {
    // Hold back the longest suffix that is a proper prefix of a stop string.
    size_t hold = 0;
    for (const std::string& s : stops_) {
      size_t max_len = std::min(s.size() - 1, text.size());
      for (size_t len = max_len; len > hold; --len) {
        if (text.compare(text.size() - len, len, s, 0, len) == 0) {
          hold = len;
          break;
        }
      }
    }
    held_ = text.substr(text.size() - hold);
    text.resize(text.size() - hold);
  }
  emitted_.append(text);
  return text;
}

}  // namespace dspark::tokenizer
