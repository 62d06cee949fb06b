#include "draft_worker/ngram/ngram_drafter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "draft_worker/drafter/draft_requests.h"

namespace dspark::drafter {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Hash of the n-gram t[0..n). Collisions are possible, so every hit is
// checked against the tokens themselves.
uint64_t HashTokens(const int32_t* t, int n) {
  uint64_t h = Mix(0x9E3779B97F4A7C15ull * static_cast<uint64_t>(n + 1));
  for (int i = 0; i < n; ++i) h = Mix(h ^ static_cast<uint32_t>(t[i]));
  return h;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NgramDrafter>> NgramDrafter::Create(
    const NgramDrafterOptions& options) {
  if (options.min_ngram < 1 || options.max_ngram < options.min_ngram) {
    return absl::InvalidArgumentError(absl::StrCat("ngram range [", options.min_ngram, ", ",
                                                   options.max_ngram, "] must satisfy ",
                                                   "1 <= min_ngram <= max_ngram"));
  }
  if (options.max_block < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_block ", options.max_block, " < 1"));
  }
  if (!(options.confidence_prior > 0 && options.confidence_prior < 1) ||
      !(options.prior_weight > 0) || !(options.window >= 1)) {
    return absl::InvalidArgumentError(
        "confidence_prior must be in (0, 1), prior_weight > 0 and window >= 1");
  }
  return std::unique_ptr<NgramDrafter>(new NgramDrafter(options));
}

NgramDrafter::NgramDrafter(const NgramDrafterOptions& options)
    : options_(options),
      stats_(options.max_ngram - options.min_ngram + 1,
             std::vector<PositionStats>(options.max_block)) {}

absl::Status NgramDrafter::Open(SessionId session) {
  if (sessions_.contains(session)) {
    return absl::AlreadyExistsError(absl::StrCat("session ", session, " is already open"));
  }
  Session& s = sessions_[session];
  s.index.resize(options_.max_ngram - options_.min_ngram + 1);
  return absl::OkStatus();
}

void NgramDrafter::Close(SessionId session) { sessions_.erase(session); }

absl::Status NgramDrafter::Fork(SessionId child, SessionId parent, int64_t prefix_len) {
  auto it = sessions_.find(parent);
  if (it == sessions_.end())
    return absl::InvalidArgumentError(absl::StrCat("unknown session ", parent));
  if (prefix_len < 0 || prefix_len > static_cast<int64_t>(it->second.history.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix ", prefix_len, " beyond session ", parent));
  }
  // Copied before Open: the map may rehash.
  const std::vector<int32_t> prefix(it->second.history.begin(),
                                    it->second.history.begin() + prefix_len);
  DSPARK_RETURN_IF_ERROR(Open(child));
  return Extend(child, prefix, {});
}

absl::Status NgramDrafter::Extend(SessionId session, absl::Span<const int32_t> tokens,
                                  absl::Span<const float> features) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown session ", session));
  }
  if (!features.empty()) {
    return absl::InvalidArgumentError("the ngram drafter reads no context features");
  }
  if (tokens.empty()) return absl::OkStatus();
  Session& s = it->second;

  // The verdict on the last block: tokens = [its last_token, accepted drafts...]
  // and, when the caller commits more at once, the token that followed them.
  if (s.has_block) {
    OpenBlock& b = s.block;
    const size_t k = b.tokens.size();
    if (b.accepted >= 0) {
      // Already counted; tokens[0] is the correction or bonus token.
      Learn(b, b.accepted, /*has_next=*/true, tokens[0]);
      s.has_block = false;
    } else if (tokens[0] != b.last_token) {
      s.has_block = false;  // not a verdict on this block: learn nothing
    } else {
      size_t a = 0;
      while (a < k && 1 + a < tokens.size() && tokens[1 + a] == b.tokens[a]) ++a;
      if (1 + a < tokens.size()) {
        Learn(b, static_cast<int>(a), /*has_next=*/true, tokens[1 + a]);
        s.has_block = false;
      } else if (a == k) {
        Learn(b, static_cast<int>(a), /*has_next=*/false, 0);
        s.has_block = false;
      } else {
        b.accepted = static_cast<int>(a);  // the next token tells about draft a
      }
    }
  }

  // Index every n-gram that ends at a new position.
  for (int32_t t : tokens) {
    s.history.push_back(t);
    const int32_t end = static_cast<int32_t>(s.history.size());  // just past the n-gram
    for (int n = options_.min_ngram; n <= options_.max_ngram && n <= end; ++n) {
      s.index[n - options_.min_ngram][HashTokens(&s.history[end - n], n)] = end;
    }
  }
  return absl::OkStatus();
}

absl::Status NgramDrafter::Draft(absl::Span<const DraftRequest> requests,
                                 std::vector<DraftBlock>* blocks) {
  DSPARK_RETURN_IF_ERROR(
      CheckDraftRequests(requests, options_.max_block, /*vocab=*/0,
                         [this](SessionId id) { return sessions_.contains(id); }));
  blocks->assign(requests.size(), DraftBlock{});
  for (size_t i = 0; i < requests.size(); ++i) {
    const DraftRequest& r = requests[i];
    Session& s = sessions_.find(r.session)->second;
    if (s.has_block) {
      // Without an Extend since, the block was dropped unverified.
      if (s.block.accepted >= 0) Learn(s.block, s.block.accepted, /*has_next=*/true, r.last_token);
      s.has_block = false;
    }
    DraftBlock& out = (*blocks)[i];
    const int n = Lookup(s, r, &out);
    if (n == 0) continue;
    for (size_t j = 0; j < out.tokens.size(); ++j) {
      out.q.push_back({{out.tokens[j], 1.0f}});
      out.confidence.push_back(static_cast<float>(Confidence(n, static_cast<int>(j))));
    }
    s.has_block = true;
    s.block = OpenBlock{.last_token = r.last_token, .tokens = out.tokens, .n = n};
  }
  return absl::OkStatus();
}

int NgramDrafter::Lookup(const Session& s, const DraftRequest& r, DraftBlock* block) const {
  // The sequence is history + [last_token]; `tail` holds its last tokens.
  const int64_t len = static_cast<int64_t>(s.history.size());
  const int64_t full = len + 1;
  std::vector<int32_t> tail;
  const int64_t take = std::min<int64_t>(options_.max_ngram, full);
  tail.reserve(take);
  tail.insert(tail.end(), s.history.end() - (take - 1), s.history.end());
  tail.push_back(r.last_token);

  for (int n = static_cast<int>(take); n >= options_.min_ngram; --n) {
    const int32_t* suffix = tail.data() + (take - n);
    const auto& index = s.index[n - options_.min_ngram];
    auto hit = index.find(HashTokens(suffix, n));
    if (hit == index.end()) continue;
    const int64_t p = hit->second;  // occurrence is history[p - n, p)
    if (!std::equal(suffix, suffix + n, s.history.begin() + (p - n))) continue;  // collision
    for (int64_t pos = p; pos < full && pos - p < r.max_tokens; ++pos) {
      block->tokens.push_back(pos < len ? s.history[pos] : r.last_token);
    }
    return n;
  }
  return 0;
}

double NgramDrafter::Confidence(int n, int pos) const {
  const PositionStats& st = stats_[n - options_.min_ngram][pos];
  return (options_.confidence_prior * options_.prior_weight + st.accepted) /
         (options_.prior_weight + st.attempts);
}

void NgramDrafter::Learn(const OpenBlock& b, int accepted, bool has_next, int32_t next) {
  std::vector<PositionStats>& st = stats_[b.n - options_.min_ngram];
  auto observe = [&](PositionStats& p, bool ok) {
    if (p.attempts >= options_.window) {
      p.attempts /= 2;
      p.accepted /= 2;
    }
    p.attempts += 1;
    p.accepted += ok ? 1 : 0;
  };
  const int k = static_cast<int>(b.tokens.size());
  for (int i = 0; i < std::min(accepted, k); ++i) observe(st[i], true);
  if (accepted < k && has_next) observe(st[accepted], next == b.tokens[accepted]);
}

}  // namespace dspark::drafter
