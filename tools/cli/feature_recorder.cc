#include "tools/cli/feature_recorder.h"

#include <cstring>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace dspark::cli {

uint16_t FloatToHalfBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {
    // Subnormal half (or zero): value = m * 2^-24 with m = round(|f| * 2^24).
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25: to zero
    const uint32_t e = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t m = mant >> shift;
    const uint32_t rest = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits.
  uint32_t h = ((abs >> 13) - ((127 - 15) << 10));
  const uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

FeatureRecorder::FeatureRecorder(std::vector<int> layers, int dim)
    : layers_(std::move(layers)), row_(layers_.size() * static_cast<size_t>(dim)) {}

absl::Status FeatureRecorder::Open(drafter::SessionId session) {
  if (open_.count(session) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("session ", session, " is open"));
  }
  closed_.erase(session);
  open_[session];
  return absl::OkStatus();
}

absl::Status FeatureRecorder::Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                                     absl::Span<const float> features) {
  auto it = open_.find(session);
  if (it == open_.end()) return absl::NotFoundError(absl::StrCat("unknown session ", session));
  if (features.size() != tokens.size() * row_) {
    return absl::InvalidArgumentError(absl::StrCat("features have ", features.size(),
                                                   " floats, want ", tokens.size() * row_));
  }
  Recording& r = it->second;
  r.tokens.insert(r.tokens.end(), tokens.begin(), tokens.end());
  const size_t at = r.features.size();
  r.features.resize(at + features.size());
  for (size_t i = 0; i < features.size(); ++i) r.features[at + i] = FloatToHalfBits(features[i]);
  return absl::OkStatus();
}

absl::Status FeatureRecorder::Draft(absl::Span<const drafter::DraftRequest> requests,
                                    std::vector<drafter::DraftBlock>* blocks) {
  for (const drafter::DraftRequest& r : requests) {
    if (open_.count(r.session) == 0) {
      return absl::NotFoundError(absl::StrCat("unknown session ", r.session));
    }
  }
  blocks->assign(requests.size(), drafter::DraftBlock{});
  return absl::OkStatus();
}

absl::Status FeatureRecorder::Fork(drafter::SessionId child, drafter::SessionId parent,
                                   int64_t prefix_len) {
  auto it = open_.find(parent);
  if (it == open_.end()) return absl::NotFoundError(absl::StrCat("unknown session ", parent));
  if (open_.count(child) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("session ", child, " is open"));
  }
  const Recording& p = it->second;
  if (prefix_len < 0 || static_cast<size_t>(prefix_len) > p.tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("prefix ", prefix_len, " of a ",
                                                   p.tokens.size(), "-token session"));
  }
  Recording c;
  c.tokens.assign(p.tokens.begin(), p.tokens.begin() + prefix_len);
  c.features.assign(p.features.begin(), p.features.begin() + prefix_len * row_);
  closed_.erase(child);
  open_[child] = std::move(c);
  return absl::OkStatus();
}

void FeatureRecorder::Close(drafter::SessionId session) {
  auto it = open_.find(session);
  if (it == open_.end()) return;
  closed_[session] = std::move(it->second);
  open_.erase(it);
}

absl::StatusOr<FeatureRecorder::Recording> FeatureRecorder::Take(drafter::SessionId session) {
  auto it = closed_.find(session);
  if (it == closed_.end()) {
    return absl::NotFoundError(absl::StrCat("no closed recording for session ", session));
  }
  Recording r = std::move(it->second);
  closed_.erase(it);
  return r;
}

}  // namespace dspark::cli
